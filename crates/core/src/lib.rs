//! shipledger's domain: the types and rules every other crate shares, with no IO.
//!
//! - [`money`]: `Money`, an amount in integer minor units of an ISO 4217 currency.
//! - [`weight`]: `Weight`, an exact mass in milligrams with conversions to the units
//!   ShipStation and ERPs use.
//! - [`time`]: UTC timestamps inside, and the ShipStation v1 boundary where times are
//!   US Pacific wall-clock strings without an offset.
//! - [`order`]: the ERP's orders, lines, addresses, products and payment evidence, and
//!   the deterministic ShipStation `orderKey`.
//! - [`release`]: the release gate — captured payment and pre-flight checks.
//! - [`exception`]: exception kinds, each with its owner and severity.
//! - [`cost`]: the cost ledger's entries (one per charge of a label, never edited) and
//!   the rule that plans them from a reading of a label.
//! - [`cost_model`]: a label's expected cost from its peers (carrier, service, weight
//!   band; median and MAD on exact decimals), and the labels far above it.
//! - [`fx`]: conversion as the ERP does it (exact, rounded once, half-even) and the
//!   ECB reference-rate CSV.
//! - [`invoice`]: carrier invoices read (normalised CSV or a carrier's layout through a
//!   mapping), their adjustments to the cost ledger and the label-vs-invoice variance.
//! - [`journal`]: posting windows, batch planning (carry-over, period states) and the
//!   one balanced journal per batch in the base currency.
//! - [`reconcile`]: the pure three-way diff of one order (ERP, ledger, ShipStation)
//!   into typed findings.
//! - [`shipment`]: line mapping — which ERP lines ShipStation's shipments cover.
//! - [`json`]: exact decimals in JSON numbers, never through a float.
//! - [`clock`]: the one clock (UTC now, a monotonic instant, waiting), manual in tests.
//! - [`retry`]: the one retry policy: errors classify themselves, one backoff decides.
//! - [`metrics`]: the metrics' names and the one way an external request is counted.

pub mod json;

pub mod clock;
pub mod close;
pub mod cost;
pub mod cost_model;
pub mod retry;

pub mod exception;
pub mod fx;
pub mod invoice;
pub mod journal;
pub mod margin;
pub mod metrics;
pub mod money;
pub mod order;
pub mod overrides;
pub mod reconcile;
pub mod release;
pub mod shipment;
pub mod time;
pub mod weight;

pub use money::{Currency, Money, MoneyError, Rounding};
pub use time::TimeError;
pub use weight::{Weight, WeightError, WeightUnit};
