//! What the client counts: each attempt by templated endpoint and status, its
//! latency, a 429, its own retry, and what the rate headers say is left of the key's
//! window (under the key's fingerprint, never the key).

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{Mock, order_json, v1_client, v1_config};

#[tokio::test]
async fn a_429_then_an_answer_is_two_requests_one_rate_limited_one_retry_and_the_budget_left() {
    // This test binary's process has no other recorder (nextest runs each test alone).
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(shipledger_core::metrics::LATENCY_BUCKETS)
        .unwrap()
        .install_recorder()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let mock = Mock::start(Router::new().route(
        "/orders/{id}",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                let remaining = if n == 0 { "0" } else { "39" };
                let headers = [("x-rate-limit-limit", "40"), ("x-rate-limit-remaining", remaining), ("x-rate-limit-reset", "1")];
                if n == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, headers, Json(json!({"message": "Too Many Requests"}))).into_response()
                } else {
                    (headers, Json(order_json(4711, "1009"))).into_response()
                }
            }
        }),
    ))
    .await;

    v1_client(&mock).get_order(4711).await.unwrap();

    let text = metrics.render();
    let labels = r#"system="shipstation_v1",endpoint="/orders/{id}""#;
    for line in [
        format!(r#"shipledger_external_requests_total{{{labels},method="GET",status="429"}} 1"#),
        format!(r#"shipledger_external_requests_total{{{labels},method="GET",status="200"}} 1"#),
        format!(r#"shipledger_external_rate_limited_total{{{labels}}} 1"#),
        format!(r#"shipledger_external_retries_total{{{labels}}} 1"#),
        format!(r#"shipledger_external_request_duration_seconds_count{{{labels},method="GET"}} 2"#),
        format!(r#"shipledger_rate_budget_remaining{{key="{}"}} 39"#, v1_config(&mock).budget_key("v1")),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    assert!(!text.contains("4711"), "an id is never a label:\n{text}");
    assert!(!text.contains("test-key"), "the API key is never a label:\n{text}");
}
