//! The names of shipledger's metrics, and the one way a call to an external system
//! (ShipStation v1 and v2, an ERP) is counted: [`ExternalRequest`] records the request
//! counter, the latency histogram, 429s and the client's own retries together, so
//! every connector reports the same series with the same labels.
//!
//! Recording goes through the `metrics` facade: without an installed recorder (a
//! library test) it costs nothing and goes nowhere; `shipledger serve` and `demo`
//! install the Prometheus one (`shipledger_engine::metrics::recorder`).
//!
//! Labels stay bounded: an endpoint is a template of the request's path
//! ([`endpoint_template`]: `/orders/{id}`, never an id or a query string) and a
//! status is the HTTP code, or `transport_error` when no answer came.

use std::time::Duration;

/// Requests sent to an external system, by `system`, `endpoint`, `method` and `status`.
pub const EXTERNAL_REQUESTS: &str = "shipledger_external_requests_total";
/// How long each of those requests took, by `system`, `endpoint` and `method` (a histogram).
pub const EXTERNAL_REQUEST_DURATION: &str = "shipledger_external_request_duration_seconds";
/// Requests answered 429 (rate limited), by `system` and `endpoint`.
pub const EXTERNAL_RATE_LIMITED: &str = "shipledger_external_rate_limited_total";
/// Requests the client itself sent again after a failure, by `system` and `endpoint`.
pub const EXTERNAL_RETRIES: &str = "shipledger_external_retries_total";
/// Requests left in the current rate window of a budget `key` (a fingerprint of the
/// API key, never the key), as the last response's `X-Rate-Limit-Remaining` said.
pub const RATE_BUDGET_REMAINING: &str = "shipledger_rate_budget_remaining";

/// Latency buckets, in seconds, for every request histogram: from a local sandbox's
/// few milliseconds to ShipStation's slow `createorders` batches.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The external systems shipledger calls, as the `system` label says them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    ShipStationV1,
    ShipStationV2,
    Erp,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::ShipStationV1 => "shipstation_v1",
            System::ShipStationV2 => "shipstation_v2",
            System::Erp => "erp",
        }
    }
}

/// The path of a request as a bounded label: `base_path` (the client's configured
/// base, e.g. a Tryton database's `/shop/`) is taken off, and every segment that
/// holds an identifier — any digit, except a version marker such as `v2` — becomes
/// `{id}`. `/orders/123` → `/orders/{id}`; `/v2/shipments/se-77/tracking` →
/// `/v2/shipments/{id}/tracking`.
pub fn endpoint_template(base_path: &str, path: &str) -> String {
    let base = base_path.trim_end_matches('/');
    let rest = path.strip_prefix(base).filter(|r| r.is_empty() || r.starts_with('/')).unwrap_or(path);
    let segments: Vec<&str> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if is_identifier(s) { "{id}" } else { s })
        .collect();
    format!("/{}", segments.join("/"))
}

/// A segment names a resource or an action only when it reads like one: lower-case
/// letters, `_` and `.` (`createorders`, `sale.sale`), at most 40 long, or an API
/// version (`v2`). Anything else (a number, an ERP order id like `SO-1`, a SKU like
/// `MUG-LARGE`, a key) is an identifier, so labels stay few and carry no data.
fn is_identifier(segment: &str) -> bool {
    let version = segment.len() > 1
        && segment.starts_with('v')
        && segment[1..].bytes().all(|b| b.is_ascii_digit());
    let word = segment.len() <= 40 && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
    !version && !word
}

/// One request to an external system, named by its templated endpoint; record what
/// became of each attempt.
#[derive(Debug, Clone)]
pub struct ExternalRequest {
    system: System,
    endpoint: String,
    method: String,
}

impl ExternalRequest {
    /// `endpoint` is already a template ([`endpoint_template`]).
    pub fn new(system: System, method: &str, endpoint: String) -> ExternalRequest {
        ExternalRequest { system, endpoint, method: method.to_string() }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An attempt the system answered with HTTP `status` after `elapsed`.
    pub fn answered(&self, status: u16, elapsed: Duration) {
        self.record(status_label(status), elapsed);
        if status == 429 {
            metrics::counter!(EXTERNAL_RATE_LIMITED, "system" => self.system.as_str(), "endpoint" => self.endpoint.clone())
                .increment(1);
        }
    }

    /// An attempt that got no answer (connect failure, timeout, a broken body).
    pub fn failed(&self, elapsed: Duration) {
        self.record("transport_error", elapsed);
    }

    /// The client is sending this request again.
    pub fn retried(&self) {
        metrics::counter!(EXTERNAL_RETRIES, "system" => self.system.as_str(), "endpoint" => self.endpoint.clone()).increment(1);
    }

    fn record(&self, status: &'static str, elapsed: Duration) {
        let system = self.system.as_str();
        metrics::counter!(
            EXTERNAL_REQUESTS,
            "system" => system,
            "endpoint" => self.endpoint.clone(),
            "method" => self.method.clone(),
            "status" => status
        )
        .increment(1);
        metrics::histogram!(
            EXTERNAL_REQUEST_DURATION,
            "system" => system,
            "endpoint" => self.endpoint.clone(),
            "method" => self.method.clone()
        )
        .record(elapsed.as_secs_f64());
    }
}

/// What a rate-limit header said was left of a budget key's window.
pub fn rate_budget_remaining(key: &str, remaining: u32) {
    metrics::gauge!(RATE_BUDGET_REMAINING, "key" => key.to_string()).set(f64::from(remaining));
}

/// HTTP status codes as static labels: the common ones by code, any other by class.
fn status_label(status: u16) -> &'static str {
    const CODES: &[&str] =
        &["200", "201", "202", "204", "400", "401", "403", "404", "409", "422", "429", "500", "502", "503", "504"];
    let code = status.to_string();
    if let Some(known) = CODES.iter().find(|c| **c == code) {
        return known;
    }
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_a_path_become_a_placeholder_and_named_endpoints_stay() {
        assert_eq!(endpoint_template("/", "/orders/createorders"), "/orders/createorders");
        assert_eq!(endpoint_template("/", "/orders/123456"), "/orders/{id}");
        assert_eq!(endpoint_template("", "/shipments"), "/shipments");
        assert_eq!(endpoint_template("/", "/v2/shipments/se-77/tracking"), "/v2/shipments/{id}/tracking");
        assert_eq!(endpoint_template("/", "/"), "/");
    }

    #[test]
    fn an_erp_order_id_or_a_sku_without_digits_is_an_identifier_too() {
        assert_eq!(endpoint_template("/", "/api/stock/MUG-LARGE"), "/api/stock/{id}");
        assert_eq!(endpoint_template("/", "/api/orders/SO-A/fulfilments"), "/api/orders/{id}/fulfilments");
        assert_eq!(endpoint_template("/", "/api/stock/blue-mug"), "/api/stock/{id}");
    }

    #[test]
    fn the_clients_base_path_is_not_part_of_the_endpoint() {
        // A Tryton database's REST path: the database name is configuration, the
        // model is bounded, the record id is not.
        assert_eq!(endpoint_template("/shop2024/", "/shop2024/rest/model/sale.sale/42"), "/rest/model/sale.sale/{id}");
        assert_eq!(endpoint_template("/shop2024/", "/shop2024/rest/model/sale.sale/42/process"), "/rest/model/sale.sale/{id}/process");
        // A base that is only a prefix of a segment is not taken off.
        assert_eq!(endpoint_template("/api", "/apix/orders"), "/apix/orders");
    }

    #[test]
    fn a_long_opaque_token_counts_as_an_identifier() {
        let token = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
        assert_eq!(endpoint_template("/", &format!("/labels/{token}")), "/labels/{id}");
    }

    #[test]
    fn statuses_are_their_code_or_their_class() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(599), "5xx");
    }
}
