//! What the client does when ShipStation says no, says nothing, or is slow.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::json;
use shipledger_shipstation::v1::model::{Address, Order, OrderStatus};
use shipledger_shipstation::v1::query::OrderFilter;
use shipledger_shipstation::{Error, is_retriable};

use crate::support::{Mock, order_json, v1_client, v1_config, v2_client};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn an_order(key: &str) -> Order {
    Order::new(
        key,
        "1001",
        "2024-07-04T16:30:00Z".parse().unwrap(),
        OrderStatus::AwaitingShipment,
        Address {
            name: Some("A Buyer".into()),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn an_asp_net_message_and_a_lowercase_message_both_reach_the_caller() {
    let mock = Mock::start(
        Router::new()
            .route(
                "/orders/1",
                get(|| async {
                    (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"Message": "The request is invalid.", "ModelState": {"orderId": ["must be positive"]}})),
                    )
                }),
            )
            .route(
                "/orders/2",
                get(|| async { (StatusCode::BAD_REQUEST, Json(json!({"message": "orderId 2 is not allowed"}))) }),
            ),
    )
    .await;
    let client = v1_client(&mock);

    let upper = client.get_order(1).await.unwrap_err();
    let lower = client.get_order(2).await.unwrap_err();

    match &upper {
        Error::Api {
            status: 400,
            message,
            ..
        } => {
            assert!(message.contains("The request is invalid."), "{message}");
            assert!(message.contains("orderId: must be positive"), "{message}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(
        matches!(&lower, Error::Api { status: 400, message, .. } if message == "orderId 2 is not allowed"),
        "{lower:?}"
    );
    assert!(
        upper.to_string().contains("GET /orders/1"),
        "the message names the request: {upper}"
    );
    assert_eq!(mock.seen().len(), 2, "a 400 is not retried");
}

#[tokio::test]
async fn an_empty_500_is_retried_and_the_second_answer_wins() {
    let calls = counter();
    let seen = calls.clone();
    let mock = Mock::start(Router::new().route(
        "/orders/5",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                } else {
                    Json(order_json(5, "1005")).into_response()
                }
            }
        }),
    ))
    .await;

    let order = v1_client(&mock).get_order(5).await.unwrap();

    assert_eq!(order.order_number, "1005");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_that_keeps_failing_gives_up_after_the_retry_budget_with_the_message() {
    let mock = Mock::start(Router::new().route(
        "/orders/6",
        get(|| async {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"Message": "An error has occurred.", "ExceptionMessage": "Object reference not set to an instance of an object."})),
            )
        }),
    ))
    .await;

    let err = v1_client(&mock).get_order(6).await.unwrap_err();

    assert!(
        matches!(&err, Error::Api { status: 500, message, .. } if message.contains("Object reference")),
        "{err:?}"
    );
    assert_eq!(mock.seen().len(), 4, "one attempt plus max_retries = 3");
}

#[tokio::test]
async fn a_429_with_reset_one_second_is_waited_out_and_retried() {
    let calls = counter();
    let seen = calls.clone();
    let mock = Mock::start(Router::new().route(
        "/orders/9",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [
                            ("x-rate-limit-limit", "40"),
                            ("x-rate-limit-remaining", "0"),
                            ("x-rate-limit-reset", "1"),
                        ],
                        Json(json!({"message": "Too Many Requests"})),
                    )
                        .into_response()
                } else {
                    Json(order_json(9, "1009")).into_response()
                }
            }
        }),
    ))
    .await;

    let order = v1_client(&mock).get_order(9).await.unwrap();

    assert_eq!(order.order_id, Some(9));
    let seen = mock.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried after only {waited:?}"
    );
}

#[tokio::test]
async fn a_v2_429_honours_retry_after() {
    let calls = counter();
    let seen = calls.clone();
    let mock = Mock::start(Router::new().route(
        "/v2/labels/se-1/track",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], Json(json!({"request_id": "r", "errors": [
                        {"error_source": "shipstation", "error_type": "system", "error_code": "rate_limit_exceeded", "message": "slow down"}
                    ]})))
                        .into_response()
                } else {
                    Json(json!({"tracking_number": "1Z", "status_code": "IT", "events": []})).into_response()
                }
            }
        }),
    ))
    .await;

    let info = v2_client(&mock).track_label("se-1").await.unwrap();

    assert_eq!(info.tracking_number.as_deref(), Some("1Z"));
    let seen = mock.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(1));
}

#[tokio::test]
async fn not_found_and_bad_credentials_are_final_and_say_what_to_do() {
    let mock = Mock::start(Router::new().route(
        "/webhooks",
        get(|| async {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"Message": "Authorization has been denied for this request."})),
            )
        }),
    ))
    .await;
    let client = v1_client(&mock);

    let missing = client.get_order(404).await.unwrap_err();
    let denied = client.list_webhooks().await.unwrap_err();

    assert!(
        matches!(&missing, Error::NotFound { path, .. } if path == "/orders/404"),
        "{missing:?}"
    );
    assert!(missing.to_string().contains("merged"), "{missing}");
    assert!(
        matches!(&denied, Error::Unauthorized { status: 401, .. }),
        "{denied:?}"
    );
    assert!(denied.to_string().contains("API key"), "{denied}");
    assert_eq!(mock.seen().len(), 2, "neither was retried");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let calls = counter();
    let seen = calls.clone();
    let mock = Mock::start(Router::new().route(
        "/orders/3",
        get(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Json(order_json(3, "1003"))
            }
        }),
    ))
    .await;
    let mut config = v1_config(&mock);
    config.timeout = Duration::from_millis(300);
    let client =
        crate::support::v1_client_with(config, Arc::new(shipledger_core::clock::SystemClock));

    let order = client.get_order(3).await.unwrap();

    assert_eq!(order.order_id, Some(3));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rule_breaking_requests_never_leave_the_client() {
    let mock =
        Mock::start(Router::new().route("/orders/createorders", post(|| async { StatusCode::OK })))
            .await;
    let client = v1_client(&mock);

    let too_many: Vec<Order> = (0..101).map(|i| an_order(&format!("k{i}"))).collect();
    let err = client.create_orders(&too_many).await.unwrap_err();
    assert!(err.to_string().contains("at most 100"), "{err}");

    let mut keyless = an_order("k");
    keyless.order_key = None;
    let err = client.create_order(&keyless).await.unwrap_err();
    assert!(err.to_string().contains("orderKey"), "{err}");
    assert!(!is_retriable(
        &err,
        shipledger_shipstation::Idempotency::Idempotent
    ));

    let err = client
        .list_orders(&OrderFilter {
            page_size: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");

    assert!(mock.seen().is_empty());
}

#[tokio::test]
async fn credentials_never_show_in_debug_output() {
    let mock = Mock::start(Router::new()).await;
    let client = v1_client(&mock);
    let printed = format!("{client:?}");
    assert!(
        !printed.contains("test-key") && !printed.contains("test-secret"),
        "{printed}"
    );
}
