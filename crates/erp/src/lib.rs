//! ERP connectors: the `Erp` trait (ready orders with payment evidence, lines,
//! fulfilments, journals, stock) and one module per ERP. A connector knows nothing of
//! the store or of ShipStation.
//!
//! Nothing lives here yet: the trait and the sandbox ERP arrive with issue 3.
