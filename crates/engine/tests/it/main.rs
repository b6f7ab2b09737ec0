//! The engine's stories: orders released or held, pushed exactly once, kept in line
//! with the ERP, against the sandbox ShipStation and an in-memory ERP.

mod helpers;

mod close;
mod costs;
mod edit;
mod fx;
mod journals;
mod hints;
mod invoices;
mod push;
mod reconcile;
mod release;
mod shipments;
mod two_engines;
mod upgrade;
mod lifecycle;
mod lanes;
mod scans;
mod polls;
