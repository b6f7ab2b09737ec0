//! The engine: the flows (release, push, shipments, costs) as job handlers, the
//! scheduler, the reconciler runner and alert routing. It is the only place where
//! flows are decided; it talks to the outside world only through the `store`,
//! `shipstation` and `erp` crates, and takes an injected clock.
//!
//! Nothing lives here yet: the first flows arrive with issue 3.
