//! The cli crate's single integration-test binary (DESIGN §4: one per crate).

mod api_schema;
mod bench;
mod check;
mod costs;
mod crash;
mod demo;
mod drain;
mod exceptions;
mod fidelity;
mod ledger;
mod metrics;
mod reconcile;
mod serve;
mod shipments;
mod support;
mod timeline;
mod tryton;
