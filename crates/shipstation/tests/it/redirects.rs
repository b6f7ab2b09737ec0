//! A request never leaves the origin it may reach: a redirect elsewhere is not sent,
//! so the credentials go nowhere else, and it is a final error, never retried.

use axum::Json;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use shipledger_shipstation::v1::model::{Page, Shipment};
use shipledger_shipstation::v1::query::OrderFilter;
use shipledger_shipstation::{Error, Idempotency, MAX_RESOURCE_URL_LEN, is_retriable};

use crate::support::{Mock, order_json, v1_client, v2_client};

/// A listener that must never be asked anything.
async fn elsewhere() -> Mock {
    Mock::start(Router::new().fallback(|| async { Json(json!({"orders": [], "shipments": [], "page": 1, "pages": 1})) })).await
}

/// A route that answers `status` with `Location: to`.
fn redirect(status: StatusCode, to: String) -> axum::routing::MethodRouter {
    get(move || {
        let to = to.clone();
        async move { (status, [(header::LOCATION, to)]).into_response() }
    })
}

fn refused_to(err: &Error) -> &str {
    match err {
        Error::RedirectRefused { to, .. } => to,
        other => panic!("expected a refused redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_to_another_host_is_never_followed_and_fails_once_without_retry() {
    let other = elsewhere().await;
    let target = format!("http://localhost:{}/orders?page=1", other.base.port().unwrap());
    let mock = Mock::start(Router::new().route("/orders", redirect(StatusCode::FOUND, target.clone()))).await;

    let err = v1_client(&mock).list_orders(&OrderFilter::default()).await.unwrap_err();

    assert_eq!(refused_to(&err), target);
    assert!(!is_retriable(&err, Idempotency::Idempotent));
    let message = err.to_string();
    assert!(message.contains("GET /orders") && message.contains(&target) && message.contains("not followed"), "{message}");
    assert!(other.seen().is_empty(), "the other host was never asked: {:?}", other.seen());
    assert_eq!(mock.seen().len(), 1, "not retried");
}

#[tokio::test]
async fn a_redirect_to_another_port_or_scheme_of_the_same_host_is_refused_too() {
    let other = elsewhere().await;
    let port = format!("http://127.0.0.1:{}/orders/7", other.base.port().unwrap());
    let mock = Mock::start(
        Router::new()
            .route("/orders/7", redirect(StatusCode::TEMPORARY_REDIRECT, port.clone()))
            .route(
                "/orders/8",
                // The same host and port, over https.
                get(|headers: HeaderMap| async move {
                    let host = headers[header::HOST].to_str().unwrap().to_string();
                    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, format!("https://{host}/orders/8"))])
                }),
            ),
    )
    .await;
    let client = v1_client(&mock);

    assert_eq!(refused_to(&client.get_order(7).await.unwrap_err()), port);
    let err = client.get_order(8).await.unwrap_err();
    assert_eq!(refused_to(&err), format!("https://127.0.0.1:{}/orders/8", mock.base.port().unwrap()));
    assert!(other.seen().is_empty());
    assert_eq!(mock.seen().len(), 2);
}

#[tokio::test]
async fn a_refused_redirect_target_is_repeated_without_its_password_and_at_most_2048_characters_long() {
    let secret = "http://ops:hunter2@localhost:1/orders/1".to_string();
    let long = format!("http://localhost:1/orders/2?x={}", "y".repeat(5_000));
    let mock = Mock::start(
        Router::new()
            .route("/orders/1", redirect(StatusCode::FOUND, secret))
            .route("/orders/2", redirect(StatusCode::FOUND, long.clone())),
    )
    .await;
    let client = v1_client(&mock);

    let with_password = client.get_order(1).await.unwrap_err();
    assert_eq!(refused_to(&with_password), "http://ops:redacted@localhost:1/orders/1");
    assert!(!with_password.to_string().contains("hunter2"), "{with_password}");
    let too_long = client.get_order(2).await.unwrap_err();
    let shown = refused_to(&too_long);
    assert_eq!(shown.chars().count(), 2049, "2,048 characters and an ellipsis");
    assert!(shown.ends_with('…') && long.starts_with(shown.trim_end_matches('…')));
}

#[tokio::test]
async fn a_redirect_within_the_configured_origin_is_followed_with_the_credentials() {
    let mock = Mock::start(
        Router::new().route("/orders/5", redirect(StatusCode::FOUND, "/orders/5/moved".into())).route(
            "/orders/5/moved",
            get(|headers: HeaderMap| async move {
                if headers.get(header::AUTHORIZATION).is_none() {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"Message": "no credentials"}))).into_response();
                }
                Json(order_json(5, "1005")).into_response()
            }),
        ),
    )
    .await;

    let order = v1_client(&mock).get_order(5).await.unwrap();

    assert_eq!(order.order_id, Some(5));
    let paths: Vec<String> = mock.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/orders/5", "/orders/5/moved"]);
}

#[tokio::test]
async fn a_redirect_loop_on_the_configured_origin_ends_after_ten_hops_and_is_not_retried() {
    let mock = Mock::start(Router::new().route("/orders/9", redirect(StatusCode::FOUND, "/orders/9".into()))).await;

    let err = v1_client(&mock).get_order(9).await.unwrap_err();

    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(!is_retriable(&err, Idempotency::Idempotent));
    assert_eq!(mock.seen().len(), 11, "the request and ten redirects, once");
}

#[tokio::test]
async fn a_v2_api_key_never_follows_a_redirect_to_another_host() {
    let other = elsewhere().await;
    let target = format!("http://localhost:{}/v2/labels/se-1", other.base.port().unwrap());
    let mock = Mock::start(Router::new().route("/v2/labels/se-1", redirect(StatusCode::PERMANENT_REDIRECT, target.clone()))).await;

    let err = v2_client(&mock).get_label("se-1").await.unwrap_err();

    assert_eq!(refused_to(&err), target);
    assert!(other.seen().is_empty(), "the API-Key header went nowhere else");
}

#[tokio::test]
async fn a_webhook_resource_is_fetched_only_from_the_configured_api_and_only_its_redirects_are_followed() {
    let other = elsewhere().await;
    let target = format!("http://localhost:{}/shipments?batchId=1", other.base.port().unwrap());
    let mock = Mock::start(
        Router::new()
            .route("/shipments", redirect(StatusCode::FOUND, target.clone()))
            .route("/shipments/here", redirect(StatusCode::FOUND, "/shipments/there".into()))
            .route("/shipments/there", get(|| async { Json(json!({"shipments": [], "total": 0, "page": 1, "pages": 0})) })),
    )
    .await;
    let client = v1_client(&mock);

    let redirected = client.get_resource::<Value>(&mock.url("/shipments?batchId=1")).await.unwrap_err();
    assert_eq!(refused_to(&redirected), target);

    let foreign = client.get_resource::<Value>(&target.parse().unwrap()).await.unwrap_err();
    assert!(matches!(&foreign, Error::InvalidRequest(m) if m.contains("its host is not")), "{foreign:?}");
    let other_port = client.get_resource::<Value>(&other.url("/shipments?batchId=1")).await.unwrap_err();
    assert!(matches!(&other_port, Error::InvalidRequest(m) if m.contains("its port is not")), "{other_port:?}");

    let long = mock.url(&format!("/shipments?batchId={}", "9".repeat(MAX_RESOURCE_URL_LEN)));
    let too_long = client.get_resource::<Value>(&long).await.unwrap_err();
    assert!(matches!(&too_long, Error::InvalidRequest(m) if m.contains("2048")), "{too_long:?}");

    let page: Page<Shipment> = client.get_resource(&mock.url("/shipments/here")).await.unwrap();
    assert!(page.items.is_empty());

    assert!(other.seen().is_empty(), "nothing went to the other host: {:?}", other.seen());
    let paths: Vec<String> = mock.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/shipments", "/shipments/here", "/shipments/there"], "the long URL was never sent");
}
