//! The sandbox ShipStation, exercised over HTTP the way integrators meet the real one.

mod helpers;

mod account;
mod erp;
mod orders;
mod shipments;
mod faults_and_state;
mod v2;
mod webhooks;
