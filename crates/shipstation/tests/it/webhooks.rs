//! v1 webhooks are thin hints: the client fetches what they point at.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde_json::json;
use shipledger_shipstation::WebhookResource;
use shipledger_shipstation::v1::model::{WebhookEvent, WebhookPayload};

use crate::support::{Mock, v1_client};

#[tokio::test]
async fn a_ship_notify_is_fetched_with_its_shipment_items() {
    let mock = Mock::start(Router::new().route(
        "/shipments",
        get(|Query(q): Query<HashMap<String, String>>| async move {
            let with_items = q.get("includeShipmentItems").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let items = with_items.then(|| json!([{"lineItemKey": "L1", "sku": "MUG", "name": "Mug", "quantity": 2}]));
            Json(json!({"shipments": [{"shipmentId": 55, "orderId": 9, "trackingNumber": "1Z", "voided": false,
                "shipmentItems": items}], "total": 1, "page": 1, "pages": 1}))
        }),
    ))
    .await;
    let payload: WebhookPayload = serde_json::from_value(json!({
        "resource_url": mock.url("/shipments?storeID=12&batchId=99&includeShipmentItems=False").as_str(),
        "resource_type": "SHIP_NOTIFY"
    }))
    .unwrap();
    assert_eq!(payload.resource_type, WebhookEvent::ShipNotify);

    let resource = v1_client(&mock)
        .fetch_webhook_resource(&payload)
        .await
        .unwrap();

    let WebhookResource::Shipments(shipments) = resource else {
        panic!("expected shipments")
    };
    let items = shipments[0]
        .shipment_items
        .as_ref()
        .expect("items were asked for");
    assert_eq!(
        (items[0].line_item_key.as_deref(), items[0].quantity),
        (Some("L1"), 2)
    );
    let seen = &mock.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/shipments")
    );
    assert_eq!(seen.param("batchId").as_deref(), Some("99"));
    assert_eq!(seen.param("storeID").as_deref(), Some("12"));
    assert_eq!(seen.param("includeShipmentItems").as_deref(), Some("true"));
}
