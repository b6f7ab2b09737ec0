//! `GET /metrics`: the process's Prometheus recorder rendered in the text exposition
//! format (`shipledger_engine::metrics::recorder`). A scrape reads no store: the
//! gauges of orders, jobs and open exceptions are kept by the engine's
//! `MeteredStore` as it commits and refreshes them. Also the webhook intake counter,
//! one increment per delivery the receivers answer.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// Webhook deliveries received, by `connection`, `source` (`v1`, `v2`) and `outcome`.
pub const WEBHOOKS_RECEIVED: &str = "shipledger_webhooks_received_total";

/// Which receiver a delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    V1,
    V2,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored in the inbox as a job.
    Accepted,
    /// Already in the inbox (ShipStation sent it again).
    Duplicate,
    /// Verified but of a kind shipledger does not ingest; noted and acknowledged.
    Ignored,
    /// The connection has no receiver of this kind configured.
    NotConfigured,
    /// A v1 delivery with the wrong token.
    RefusedToken,
    /// A v2 delivery without the signature headers.
    Unsigned,
    /// A v2 delivery whose signature did not verify (or was stale).
    RefusedSignature,
    /// A body over the receivers' limit.
    TooLarge,
    /// A body that is not a webhook (not JSON, no resource URL, a URL too long).
    BadRequest,
    /// A v1 resource URL off the configured ShipStation API.
    ForeignHost,
    /// The store could not keep it (answered 503 so it is sent again).
    StoreFailed,
    /// The intake queue was full (answered 503 with `Retry-After`; nothing stored).
    Busy,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::NotConfigured => "not_configured",
            Outcome::RefusedToken => "refused_token",
            Outcome::Unsigned => "unsigned",
            Outcome::RefusedSignature => "refused_signature",
            Outcome::TooLarge => "too_large",
            Outcome::BadRequest => "bad_request",
            Outcome::ForeignHost => "foreign_host",
            Outcome::StoreFailed => "store_failed",
            Outcome::Busy => "busy",
        }
    }
}

/// Count one delivery to a configured connection (deliveries to unknown connection
/// names are not counted: their names would be unbounded labels).
pub(crate) fn webhook(connection: &str, source: Source, outcome: Outcome) {
    let source = match source {
        Source::V1 => "v1",
        Source::V2 => "v2",
    };
    metrics::counter!(WEBHOOKS_RECEIVED, "connection" => connection.to_string(), "source" => source, "outcome" => outcome.as_str())
        .increment(1);
}

pub(crate) async fn render() -> impl IntoResponse {
    let text = shipledger_engine::metrics::recorder().render();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
