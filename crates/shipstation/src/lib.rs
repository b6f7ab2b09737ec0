//! shipledger's ShipStation client: the typed, polite, retrying way the rest of
//! shipledger talks to ShipStation. It owns the wire formats and the HTTP manners;
//! it never decides business flows (that is the engine's) and never stores anything
//! (that is the store's).
//!
//! # The central types
//!
//! - [`V1Client`] speaks the v1 API (`ssapi.shipstation.com`, HTTP Basic): orders,
//!   shipments (= labels), fulfillments, webhooks, stores, warehouses, carriers.
//!   [`V2Client`] speaks the parts of v2 (`api.shipstation.com/v2`, `API-Key`) that
//!   v1 lacks: label tracking (the only carrier-scan signal), v2 webhooks, inventory.
//!   Both are built from a [`ClientConfig`] whose `Debug` redacts the credentials.
//! - The wire models live in [`v1::model`] and [`v2::model`]. At this boundary, v1's
//!   offset-less US Pacific times become UTC [`jiff::Timestamp`]s, date-only fields
//!   become [`jiff::civil::Date`], and money becomes [`rust_decimal::Decimal`] read
//!   from the JSON number's own digits, never through `f64`. Unknown enum values
//!   ([`v1::model::OrderStatus`], [`v2::model::TrackingStatus`]) are kept, not refused.
//! - Every request goes through one loop (the private `transport` module): it asks
//!   the [`RateBudget`] for a slot, sends, reports the `X-Rate-Limit-*` headers back
//!   to the budget, and retries what [`is_retriable`] allows (429 after the announced
//!   reset, 5xx, timeouts, connection errors; exponential backoff with jitter, a
//!   bounded number of attempts). A client never sends a request its budget knows
//!   would be refused: it waits for the window instead, up to
//!   [`ClientConfig::max_rate_wait`].
//! - [`RateBudget`] is keyed by a fingerprint of the API key, so every client and
//!   every process using one key can share one budget. [`InMemoryRateBudget`] serves
//!   one process; a store-backed implementation plugs into the same trait. Time comes
//!   from shipledger's one [`Clock`](shipledger_core::clock::Clock) (`instant()` for
//!   rate windows, `now()` for `Retry-After` dates, `sleep()` for every wait), so
//!   tests inject a [`ManualClock`](shipledger_core::clock::ManualClock) and assert
//!   what the client would have waited instead of sleeping.
//! - [`Error`] names the failed request and what to do about it; the message of an
//!   API error is read from whichever shape ShipStation used (`Message`, `message`,
//!   `ExceptionMessage`, `ModelState`, v2 `errors[]`).
//! - [`verify_v2_webhook`] and [`WebhookKeys`] check the RSA-SHA256 signature of v2
//!   webhooks ([`v2::signature`] documents the exact signed message). v1 webhooks are
//!   unsigned hints: fetch their `resource_url` with [`V1Client::get_resource`] or
//!   [`V1Client::fetch_webhook_resource`], which fetch only a URL on the configured
//!   API or its `ssapiN` shards ([`resource_url_mismatch`] says why not).
//! - No request leaves the origins it may reach ([`redirect`]): a redirect to another
//!   scheme, host or port is never sent, so credentials never cross origins, and it
//!   fails as [`Error::RedirectRefused`], which is never retried.
//!
//! # Idempotency
//!
//! Retrying `createorder(s)` is safe only because the `orderKey` makes it an upsert,
//! so the client refuses orders without one. `webhooks/subscribe` is not idempotent
//! and is retried only when ShipStation cannot have processed it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), shipledger_shipstation::Error> {
//! use shipledger_shipstation::{ClientConfig, V1Client, v1::query::OrderFilter};
//!
//! let config = ClientConfig::v1("https://ssapi.shipstation.com".parse().unwrap(), "key", "secret");
//! let client = V1Client::new(config)?;
//! let orders = client
//!     .all_orders(&OrderFilter { order_number: Some("1001".into()), ..Default::default() })
//!     .await?;
//! // orderNumber is a prefix filter: compare exactly.
//! let exact: Vec<_> = orders.into_iter().filter(|o| o.order_number == "1001").collect();
//! # let _ = exact;
//! # Ok(())
//! # }
//! ```

pub mod budget;
pub mod config;
pub mod error;
pub mod redirect;
pub mod retry;
mod transport;
pub mod v1;
pub mod v2;
pub mod wire;

pub use budget::{Admission, InMemoryRateBudget, RateBudget, RateObservation, UnlimitedBudget};
pub use config::{ClientConfig, Secret};
pub use error::{Error, Result, TransportKind, error_message};
pub use retry::{Idempotency, is_retriable};
pub use v1::{
    ForeignReason, MAX_RESOURCE_URL_LEN, Pager, V1Client, WebhookResource, resource_url_allowed,
    resource_url_mismatch, with_shipment_items,
};
pub use v2::V2Client;
pub use v2::model::{label_id_to_shipment_id, shipment_id_to_label_id};
pub use v2::signature::{VerifyError, WebhookKeys, verify_v2_webhook};
