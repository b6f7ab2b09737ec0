//! Reading whole v1 lists page by page, whatever `pages` claims.

use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::{Value, json};
use shipledger_shipstation::v1::query::{OrderFilter, ShipmentFilter};
use std::collections::HashMap;

use crate::support::{Mock, order_json, v1_client};

#[tokio::test]
async fn a_list_that_claims_zero_pages_still_yields_every_order() {
    // ShipStation's own examples answer `"pages": 0` next to `"total": 3`.
    let mock = Mock::start(Router::new().route(
        "/orders",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let orders: Vec<Value> = match q.get("page").map(String::as_str) {
                Some("1") => vec![order_json(1, "1001"), order_json(2, "1002")],
                Some("2") => vec![order_json(3, "1003")],
                _ => vec![],
            };
            Json(json!({"orders": orders, "total": 3, "page": 1, "pages": 0}))
        }),
    ))
    .await;

    let orders = v1_client(&mock)
        .all_orders(&OrderFilter::default())
        .await
        .unwrap();

    let numbers: Vec<&str> = orders.iter().map(|o| o.order_number.as_str()).collect();
    assert_eq!(numbers, ["1001", "1002", "1003"]);
    let pages: Vec<String> = mock
        .seen()
        .iter()
        .map(|s| s.param("page").unwrap())
        .collect();
    assert_eq!(pages, ["1", "2", "3"], "it reads until an empty page");
}

#[tokio::test]
async fn a_list_with_a_page_count_stops_at_its_last_page() {
    let mock = Mock::start(Router::new().route(
        "/orders",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let page: i64 = q["page"].parse().unwrap();
            Json(json!({"orders": [order_json(page, &format!("N{page}"))], "total": 2, "page": page, "pages": 2}))
        }),
    ))
    .await;

    let orders = v1_client(&mock)
        .all_orders(&OrderFilter {
            page_size: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(orders.len(), 2);
    assert_eq!(mock.seen().len(), 2, "no request for a third page");
    assert_eq!(mock.seen()[0].param("pageSize").as_deref(), Some("1"));
}

#[tokio::test]
async fn a_server_that_ignores_the_page_parameter_does_not_trap_the_pager() {
    let mock = Mock::start(Router::new().route(
        "/shipments",
        get(|| async {
            Json(json!({"shipments": [{"shipmentId": 7, "orderId": 1, "voided": false}], "total": 1, "page": 1, "pages": 0}))
        }),
    ))
    .await;

    let shipments = v1_client(&mock)
        .all_shipments(&ShipmentFilter::default())
        .await
        .unwrap();

    assert_eq!(shipments.len(), 1);
    assert_eq!(mock.seen().len(), 2, "the repeated page ends the loop");
}

#[tokio::test]
async fn a_record_that_moves_to_the_next_page_is_returned_once() {
    // A live list shifts while it is read: order 2 shows up on both pages.
    let mock = Mock::start(Router::new().route(
        "/orders",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let orders = match q["page"].as_str() {
                "1" => vec![order_json(1, "A"), order_json(2, "B")],
                "2" => vec![order_json(2, "B"), order_json(3, "C")],
                _ => vec![],
            };
            Json(json!({"orders": orders, "total": 3, "page": 1, "pages": 2}))
        }),
    ))
    .await;

    let orders = v1_client(&mock)
        .all_orders(&OrderFilter::default())
        .await
        .unwrap();

    let ids: Vec<i64> = orders.iter().map(|o| o.order_id.unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
}
