//! The client spends ShipStation's rate limit like money: it never sends a request
//! it knows will be refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use shipledger_core::clock::ManualClock;
use shipledger_shipstation::{Error, InMemoryRateBudget, V1Client};

use crate::support::{Mock, order_json, v1_client, v1_client_with, v1_config};

/// A fixed-window limiter like ShipStation's: `limit` requests per `window`, reset
/// announced in whole seconds (rounded up), 429 beyond the limit.
#[derive(Default)]
struct Window {
    started: Option<Instant>,
    used: u32,
    refused: u32,
    admitted_at: Vec<Instant>,
}

fn limited_mock_router(limit: u32, window: Duration, state: Arc<Mutex<Window>>) -> Router {
    Router::new().route(
        "/orders/{id}",
        get(move || {
            let state = state.clone();
            async move {
                let now = Instant::now();
                let mut w = state.lock().unwrap();
                if w.started.is_none_or(|s| now >= s + window) {
                    w.started = Some(now);
                    w.used = 0;
                }
                let left = w.started.unwrap() + window - now;
                let reset = left.as_millis().div_ceil(1000).to_string();
                if w.used >= limit {
                    w.refused += 1;
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [
                            ("x-rate-limit-limit", limit.to_string()),
                            ("x-rate-limit-remaining", "0".into()),
                            ("x-rate-limit-reset", reset),
                        ],
                        Json(json!({"message": "Too Many Requests"})),
                    )
                        .into_response();
                }
                w.used += 1;
                w.admitted_at.push(now);
                let remaining = (limit - w.used).to_string();
                (
                    [
                        ("x-rate-limit-limit", limit.to_string()),
                        ("x-rate-limit-remaining", remaining),
                        ("x-rate-limit-reset", reset),
                    ],
                    Json(order_json(1, "1001")),
                )
                    .into_response()
            }
        }),
    )
}

#[tokio::test]
async fn the_client_waits_for_a_new_window_instead_of_exceeding_the_limit() {
    let state = Arc::new(Mutex::new(Window::default()));
    let window = Duration::from_secs(1);
    let mock = Mock::start(limited_mock_router(3, window, state.clone())).await;
    let client = v1_client(&mock);

    for _ in 0..7 {
        client.get_order(1).await.unwrap();
    }

    let w = state.lock().unwrap();
    assert_eq!(w.refused, 0, "the server never had to refuse a request");
    assert_eq!(w.admitted_at.len(), 7);
    // No more than 3 requests inside any one-second window.
    for (i, first) in w.admitted_at.iter().enumerate() {
        let within = w.admitted_at[i..]
            .iter()
            .filter(|t| **t - *first < window)
            .count();
        assert!(
            within <= 3,
            "{within} requests within {window:?} of request {i}"
        );
    }
    assert_eq!(mock.seen().len(), 7);
}

#[tokio::test]
async fn a_spent_budget_makes_the_client_wait_before_sending_not_after() {
    let mock = Mock::start(Router::new().route(
        "/orders/{id}",
        get(|| async {
            (
                [
                    ("x-rate-limit-limit", "40"),
                    ("x-rate-limit-remaining", "0"),
                    ("x-rate-limit-reset", "30"),
                ],
                Json(order_json(1, "1001")),
            )
        }),
    ))
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = v1_client_with(v1_config(&mock), clock.clone());

    client.get_order(1).await.unwrap();
    assert!(clock.sleeps().is_empty());
    client.get_order(1).await.unwrap();

    // The second request waited the announced 30 s (+ margin) on the injected clock.
    assert_eq!(clock.sleeps(), [Duration::from_millis(30_100)]);
    assert_eq!(mock.seen().len(), 2);
}

#[tokio::test]
async fn clients_that_share_a_budget_share_the_window() {
    let mock = Mock::start(Router::new().route(
        "/orders/{id}",
        get(|| async {
            (
                [
                    ("x-rate-limit-limit", "40"),
                    ("x-rate-limit-remaining", "0"),
                    ("x-rate-limit-reset", "20"),
                ],
                Json(order_json(1, "1001")),
            )
        }),
    ))
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let budget =
        Arc::new(InMemoryRateBudget::with_clock(clock.clone()).with_margin(Duration::ZERO));
    let first = V1Client::with_budget(v1_config(&mock), budget.clone(), clock.clone()).unwrap();
    let second = V1Client::with_budget(v1_config(&mock), budget, clock.clone()).unwrap();
    assert_eq!(first.budget_key(), second.budget_key());

    first.get_order(1).await.unwrap();
    second.get_order(1).await.unwrap();

    assert_eq!(
        clock.sleeps(),
        [Duration::from_secs(20)],
        "the second client waited for the first one's window"
    );
}

#[tokio::test]
async fn a_window_longer_than_the_caller_will_wait_fails_fast_without_sending() {
    let mock = Mock::start(Router::new().route(
        "/orders/{id}",
        get(|| async {
            (
                [
                    ("x-rate-limit-limit", "40"),
                    ("x-rate-limit-remaining", "0"),
                    ("x-rate-limit-reset", "600"),
                ],
                Json(order_json(1, "1001")),
            )
        }),
    ))
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let client = v1_client_with(v1_config(&mock), clock.clone());

    client.get_order(1).await.unwrap();
    let err = client.get_order(1).await.unwrap_err();

    match &err {
        Error::RateLimited {
            retry_after: Some(wait),
            ..
        } => assert!(*wait >= Duration::from_secs(600)),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(mock.seen().len(), 1, "the second request was never sent");
    assert!(clock.sleeps().is_empty());
}
