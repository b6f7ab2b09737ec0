//! shipledger's HTTP surface: webhook receivers, the REST API, the dashboard,
//! `/metrics` and health. It decides nothing itself; it hands work to the engine.
//!
//! Nothing lives here yet: the webhook receivers arrive with issue 4.
