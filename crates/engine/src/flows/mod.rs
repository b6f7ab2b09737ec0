//! The flows, one module each, named after what they do for the business:
//!
//! - [`release`]: ERP changes → release gate → a decision committed with its outbox job.
//! - [`monitors`]: scans overdue, orders waiting too long for a label.
//! - [`push`]: outbox `sync_order` jobs → ShipStation `createorders` → read back.
//! - [`shipments`]: ShipStation labels, voids, fulfillments and scans → ERP lines,
//!   written back packed then completed.
pub mod monitors;
pub mod push;
pub mod release;
pub mod shipments;
