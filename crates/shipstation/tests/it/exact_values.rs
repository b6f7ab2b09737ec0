//! Money keeps its digits and Pacific times become the right instants.

use std::str::FromStr;

use axum::Json;
use axum::Router;
use axum::routing::get;
use rust_decimal::Decimal;
use serde_json::json;
use shipledger_core::Currency;
use shipledger_shipstation::v1::query::ShipmentFilter;

use crate::support::{Mock, v1_client, v2_client};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[tokio::test]
async fn label_costs_keep_their_exact_decimals_so_they_add_up() {
    // Raw JSON: serde_json::json! would go through f64 itself.
    let body = r#"{"shipments":[
        {"shipmentId":1,"orderId":10,"shipmentCost":0.1,"insuranceCost":0.2,"voided":false},
        {"shipmentId":2,"orderId":11,"shipmentCost":12.345,"insuranceCost":0,"voided":false},
        {"shipmentId":3,"orderId":12,"shipmentCost":1234567.89,"insuranceCost":null,"voided":false}
    ],"total":3,"page":1,"pages":1}"#;
    let mock = Mock::start(Router::new().route(
        "/shipments",
        get(move || async move { ([("content-type", "application/json")], body) }),
    ))
    .await;

    let page = v1_client(&mock)
        .list_shipments(&ShipmentFilter::default())
        .await
        .unwrap();

    let first = &page.items[0];
    assert_eq!(
        first.shipment_cost.unwrap() + first.insurance_cost.unwrap(),
        dec("0.3")
    );
    assert_eq!(page.items[1].shipment_cost, Some(dec("12.345")));
    assert_eq!(page.items[2].shipment_cost, Some(dec("1234567.89")));
    assert_eq!(page.items[2].insurance_cost, None);
}

#[tokio::test]
async fn pacific_times_in_an_order_become_the_right_utc_instants() {
    let mock = Mock::start(Router::new().route(
        "/orders/77",
        get(|| async {
            Json(json!({
                "orderId": 77, "orderNumber": "77", "orderKey": "k-77", "orderStatus": "shipped",
                // Summer: PDT, UTC-7.
                "orderDate": "2024-07-04T09:30:00.0000000",
                // Winter: PST, UTC-8; items use 3 fractional digits.
                "createDate": "2024-01-15T08:00:00.1230000",
                "modifyDate": null,
                "shipDate": "2024-07-05",
                "billTo": {"name": "A"}, "shipTo": {"name": "A"},
                "items": [{"name": "Mug", "quantity": 1, "createDate": "2024-01-15T08:00:00.123"}]
            }))
        }),
    ))
    .await;

    let order = v1_client(&mock).get_order(77).await.unwrap();

    assert_eq!(
        order.order_date.unwrap().to_string(),
        "2024-07-04T16:30:00Z"
    );
    assert_eq!(
        order.create_date.unwrap().to_string(),
        "2024-01-15T16:00:00.123Z"
    );
    assert_eq!(order.items[0].create_date, order.create_date);
    assert_eq!(order.modify_date, None);
    assert_eq!(order.ship_date, Some(jiff::civil::date(2024, 7, 5)));
}

#[tokio::test]
async fn a_v2_label_with_a_lowercase_currency_code_is_understood() {
    let body = r#"{"label_id":"se-123","status":"completed","shipment_id":"se-900","tracking_number":"1Z999",
        "carrier_code":"ups","service_code":"ups_ground","created_at":"2024-03-01T10:00:00.657Z",
        "ship_date":"2024-03-01T00:00:00Z","voided":false,"voided_at":null,
        "shipment_cost":{"currency":"usd","amount":7.25},"insurance_cost":{"currency":"Usd","amount":0.1},
        "packages":[{"package_id":1,"tracking_number":"1Z999","weight":{"value":12.5,"unit":"ounce"}}]}"#;
    let mock = Mock::start(Router::new().route(
        "/v2/labels/se-123",
        get(move || async move { ([("content-type", "application/json")], body) }),
    ))
    .await;

    let label = v2_client(&mock).get_label("se-123").await.unwrap();

    let cost = label.shipment_cost.unwrap();
    assert_eq!((cost.currency, cost.amount), (Currency::USD, dec("7.25")));
    assert_eq!(label.insurance_cost.unwrap().amount, dec("0.1"));
    assert_eq!(label.v1_shipment_id(), Some(123));
    assert_eq!(label.ship_date, Some(jiff::civil::date(2024, 3, 1)));
    assert_eq!(
        label.packages[0].weight.as_ref().unwrap().value,
        dec("12.5")
    );
}
