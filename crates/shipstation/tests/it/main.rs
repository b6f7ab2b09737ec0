//! Integration tests of the ShipStation client: against small axum mocks that play
//! ShipStation's quirks on purpose, and against the shipledger sandbox.

mod errors_and_retries;
mod exact_values;
mod metrics;
mod pagination;
mod rate_budget;
mod redirects;
mod sandbox;
mod support;
mod webhooks;
