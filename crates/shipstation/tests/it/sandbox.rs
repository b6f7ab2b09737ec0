//! Stories against the shipledger sandbox (a local ShipStation): idempotent order
//! creation, prefix search, labels with their lines, v2 tracking, and the rate limit.

use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use shipledger_shipstation::v1::model::{Address, Order, OrderItem, OrderStatus};
use shipledger_shipstation::v1::query::{OrderFilter, ShipmentFilter};
use shipledger_shipstation::v2::model::TrackingStatus;
use shipledger_shipstation::{ClientConfig, V1Client, V2Client, label_id_to_shipment_id};

async fn sandbox(config: SandboxConfig) -> SandboxHandle {
    Sandbox::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox starts")
}

fn v1(sb: &SandboxHandle) -> V1Client {
    V1Client::new(ClientConfig::v1(
        sb.base_url().parse().unwrap(),
        "sandbox-key",
        "sandbox-secret",
    ))
    .unwrap()
}

fn v2(sb: &SandboxHandle) -> V2Client {
    V2Client::new(ClientConfig::v2(
        sb.base_url().parse().unwrap(),
        "sandbox-v2-key",
    ))
    .unwrap()
}

async fn control(sb: &SandboxHandle, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", sb.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success(),
        "control {path} answered {status}: {text}"
    );
    serde_json::from_str(&text).unwrap()
}

async fn stats(sb: &SandboxHandle) -> Value {
    reqwest::get(format!("{}/_sandbox/stats", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn order(key: &str, number: &str) -> Order {
    let mut order = Order::new(
        key,
        number,
        "2024-07-04T16:30:00Z".parse().unwrap(),
        OrderStatus::AwaitingShipment,
        Address {
            name: Some("Ada Lovelace".into()),
            street1: Some("1 Main St".into()),
            city: Some("Austin".into()),
            state: Some("TX".into()),
            postal_code: Some("78701".into()),
            country: Some("US".into()),
            ..Default::default()
        },
    );
    order.items = vec![
        OrderItem {
            line_item_key: Some("L1".into()),
            sku: Some("MUG".into()),
            name: "Mug".into(),
            quantity: 1,
            unit_price: Some(Decimal::from_str("12.345").unwrap()),
            ..Default::default()
        },
        OrderItem {
            line_item_key: Some("L2".into()),
            sku: Some("TEA".into()),
            name: "Tea".into(),
            quantity: 2,
            unit_price: Some(Decimal::from_str("0.1").unwrap()),
            ..Default::default()
        },
    ];
    order
}

#[tokio::test]
async fn sending_the_same_order_key_twice_leaves_one_order() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = v1(&sb);

    let first = client
        .create_orders(&[order("erp:acme:1", "SB-1")])
        .await
        .unwrap();
    // The retry after a lost answer: same key, so an update, not a second order.
    let second = client
        .create_orders(&[order("erp:acme:1", "SB-1")])
        .await
        .unwrap();

    assert!(
        !first.has_errors && !second.has_errors,
        "{first:?} {second:?}"
    );
    assert_eq!(first.results[0].order_id, second.results[0].order_id);
    let found = client
        .all_orders(&OrderFilter {
            order_number: Some("SB-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let stored = &found[0];
    assert_eq!(stored.order_key.as_deref(), Some("erp:acme:1"));
    assert_eq!(
        stored.items[0].unit_price,
        Some(Decimal::from_str("12.345").unwrap())
    );
    assert_eq!(
        stored.order_date,
        Some("2024-07-04T16:30:00Z".parse().unwrap()),
        "Pacific round trip"
    );
}

#[tokio::test]
async fn the_order_number_filter_is_a_prefix_match_so_callers_compare_exactly() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = v1(&sb);
    for (key, number) in [("k100", "SB-100"), ("k1001", "SB-1001"), ("k200", "SB-200")] {
        client.create_order(&order(key, number)).await.unwrap();
    }

    let found = client
        .all_orders(&OrderFilter {
            order_number: Some("SB-100".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut numbers: Vec<&str> = found.iter().map(|o| o.order_number.as_str()).collect();
    numbers.sort();
    assert_eq!(numbers, ["SB-100", "SB-1001"]);
    assert_eq!(
        found.iter().filter(|o| o.order_number == "SB-100").count(),
        1
    );
}

#[tokio::test]
async fn a_label_for_part_of_an_order_lists_with_exactly_its_lines() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = v1(&sb);
    let created = client
        .create_order(&order("erp:acme:7", "SB-7"))
        .await
        .unwrap();
    let order_id = created.order_id.unwrap();

    let label = control(
        &sb,
        &format!("/_sandbox/orders/{order_id}/labels"),
        json!({"carrierCode": "ups", "serviceCode": "ups_ground", "shipmentCost": "7.25", "currency": "USD",
               "items": [{"lineItemKey": "L1", "quantity": 1}]}),
    )
    .await;

    let shipments = client
        .all_shipments(&ShipmentFilter {
            order_id: Some(order_id),
            include_shipment_items: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(shipments.len(), 1);
    let shipment = &shipments[0];
    assert_eq!(
        Some(shipment.shipment_id),
        label_id_to_shipment_id(label["labelId"].as_str().unwrap())
    );
    assert_eq!(
        shipment.shipment_cost,
        Some(Decimal::from_str("7.25").unwrap())
    );
    assert!(!shipment.voided);
    let items = shipment
        .shipment_items
        .as_ref()
        .expect("includeShipmentItems=true returns items");
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].line_item_key.as_deref(), items[0].quantity),
        (Some("L1"), 1)
    );

    let without = client
        .list_shipments(&ShipmentFilter {
            order_id: Some(order_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        without.items[0].shipment_items, None,
        "no items unless asked"
    );
}

#[tokio::test]
async fn a_carrier_scan_shows_up_in_v2_label_tracking() {
    let sb = sandbox(SandboxConfig::default()).await;
    let client = v1(&sb);
    let order_id = client
        .create_order(&order("erp:acme:8", "SB-8"))
        .await
        .unwrap()
        .order_id
        .unwrap();
    let label = control(
        &sb,
        &format!("/_sandbox/orders/{order_id}/labels"),
        json!({"carrierCode": "ups", "serviceCode": "ups_ground", "shipmentCost": "7.25", "currency": "usd"}),
    )
    .await;
    let label_id = label["labelId"].as_str().unwrap().to_owned();
    let tracking_number = label["shipment"]["trackingNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    let v2 = v2(&sb);

    let before = v2.track_label(&label_id).await.unwrap();
    assert!(
        !before.is_carrier_accepted(),
        "a fresh label is not a scan: {before:?}"
    );

    control(
        &sb,
        "/_sandbox/tracking/events",
        json!({"trackingNumber": tracking_number, "statusCode": "IT", "statusDetailCode": "IN_TRANSIT"}),
    )
    .await;

    let got = v2.get_label(&label_id).await.unwrap();
    assert_eq!(
        got.tracking_number.as_deref(),
        Some(tracking_number.as_str())
    );
    let cost = got.shipment_cost.expect("v2 labels carry money");
    assert_eq!(
        (cost.currency, cost.amount),
        (
            shipledger_core::Currency::USD,
            Decimal::from_str("7.25").unwrap()
        )
    );

    let tracking = v2.track_label(&label_id).await.unwrap();
    assert_eq!(tracking.status_code, Some(TrackingStatus::InTransit));
    let scan = tracking
        .first_carrier_acceptance()
        .expect("the IT event is the acceptance");
    assert!(scan.occurred_at.is_some());
    let by_number = v2.get_tracking("ups", &tracking_number).await.unwrap();
    assert_eq!(by_number.status_code, Some(TrackingStatus::InTransit));
}

#[tokio::test]
async fn forty_one_quick_requests_wait_for_the_window_instead_of_being_refused() {
    let sb = sandbox(SandboxConfig {
        rate_limit: 40,
        rate_window: Duration::from_secs(3),
        ..Default::default()
    })
    .await;
    let client = v1(&sb);

    let started = std::time::Instant::now();
    for _ in 0..41 {
        client.list_warehouses().await.unwrap();
    }

    let stats = stats(&sb).await;
    assert_eq!(
        stats["rate_limited_v1"],
        json!(0),
        "no 429 was ever served: {stats}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the 41st request waited for the next window"
    );
}

#[tokio::test]
async fn a_signed_track_webhook_from_the_sandbox_verifies_and_carries_the_scan() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use shipledger_shipstation::v2::model::{CreateWebhook, TrackingInfo, WebhookPayload};
    use shipledger_shipstation::v2::signature::{
        KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
    };
    use shipledger_shipstation::{WebhookKeys, verify_v2_webhook};
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let inbox = received.clone();
    let receiver = crate::support::Mock::start(axum::Router::new().route(
        "/hooks/track",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            inbox.lock().unwrap().push((headers, body));
            async { axum::http::StatusCode::NO_CONTENT }
        }),
    ))
    .await;
    let sb = sandbox(SandboxConfig::default()).await;
    let v2 = v2(&sb);
    let hook = v2
        .create_webhook(&CreateWebhook {
            event: "track".into(),
            url: receiver.url("/hooks/track").to_string(),
            headers: Vec::new(),
            name: Some("scans".into()),
            store_id: None,
        })
        .await
        .unwrap();
    assert!(
        v2.list_webhooks()
            .await
            .unwrap()
            .iter()
            .any(|h| h.webhook_id == hook.webhook_id)
    );
    let order_id = v1(&sb)
        .create_order(&order("erp:acme:9", "SB-9"))
        .await
        .unwrap()
        .order_id
        .unwrap();
    let label = control(
        &sb,
        &format!("/_sandbox/orders/{order_id}/labels"),
        json!({"carrierCode": "ups", "shipmentCost": "5"}),
    )
    .await;
    let tracking_number = label["shipment"]["trackingNumber"]
        .as_str()
        .unwrap()
        .to_owned();

    control(&sb, "/_sandbox/tracking/events", json!({"trackingNumber": tracking_number, "statusCode": "AC", "statusDetailCode": "COLLECTION_MADE"})).await;
    control(&sb, "/_sandbox/webhooks/flush", json!({})).await;

    let deliveries = received.lock().unwrap().clone();
    let (headers, body) = deliveries.last().expect("a track webhook arrived");
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = jiff::Timestamp::now();
    let window = Duration::from_secs(300);
    verify_v2_webhook(
        &sb.webhook_public_key_pem(),
        &header(KEY_ID_HEADER),
        &header(SIGNATURE_HEADER),
        &header(TIMESTAMP_HEADER),
        body,
        now,
        window,
    )
    .expect("the sandbox signs timestamp.body like ShipStation");
    let jwks = reqwest::get(format!("{}/jwks", sb.base_url()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let keys = WebhookKeys::from_jwks(&jwks).unwrap();
    keys.verify(
        &header(KEY_ID_HEADER),
        &header(SIGNATURE_HEADER),
        &header(TIMESTAMP_HEADER),
        body,
        now,
        window,
    )
    .expect("the JWKS key verifies too");
    let mut tampered = body.to_vec();
    tampered.push(b'\n');
    assert!(
        keys.verify(
            &header(KEY_ID_HEADER),
            &header(SIGNATURE_HEADER),
            &header(TIMESTAMP_HEADER),
            &tampered,
            now,
            window
        )
        .is_err()
    );

    let payload: WebhookPayload = serde_json::from_slice(body).unwrap();
    assert!(payload.is_tracking(), "{}", payload.resource_type);
    let info: TrackingInfo = payload.data_as().expect("track payloads are fat").unwrap();
    assert!(info.is_carrier_accepted());

    v2.delete_webhook(&hook.webhook_id).await.unwrap();
    assert!(v2.list_webhooks().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_operators_day_touches_every_call_the_engine_needs() {
    use shipledger_shipstation::v1::model::{MarkAsShipped, SubscribeWebhook, WebhookEvent};
    use shipledger_shipstation::v1::query::FulfillmentFilter;
    use shipledger_shipstation::v2::{InventoryFilter, LabelFilter};

    let sb = sandbox(SandboxConfig::default()).await;
    let client = v1(&sb);

    // Account lookups.
    let stores = client.list_stores(false).await.unwrap();
    assert!(!stores.is_empty(), "there is at least the manual store");
    client.list_warehouses().await.unwrap();
    let carriers = client.list_carriers().await.unwrap();
    if let Some(carrier) = carriers.first() {
        client.list_services(&carrier.code).await.unwrap();
        client.list_packages(&carrier.code).await.unwrap();
    }

    // Hold an order, release it, then mark it shipped outside ShipStation.
    let order_id = client
        .create_order(&order("erp:acme:10", "SB-10"))
        .await
        .unwrap()
        .order_id
        .unwrap();
    let held = client
        .hold_until(order_id, jiff::civil::date(2030, 1, 1))
        .await
        .unwrap();
    assert!(held.success, "{held:?}");
    assert_eq!(
        client.get_order(order_id).await.unwrap().order_status,
        OrderStatus::OnHold
    );
    client.restore_from_hold(order_id).await.unwrap();
    assert_eq!(
        client.get_order(order_id).await.unwrap().order_status,
        OrderStatus::AwaitingShipment
    );
    client
        .mark_as_shipped(&MarkAsShipped {
            order_id,
            carrier_code: "usps".into(),
            ship_date: Some(jiff::civil::date(2024, 7, 5)),
            tracking_number: Some("9400TEST".into()),
            notify_customer: false,
            notify_sales_channel: false,
        })
        .await
        .unwrap();
    let fulfillments = client
        .all_fulfillments(&FulfillmentFilter {
            order_id: Some(order_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(fulfillments.len(), 1);
    assert_eq!(fulfillments[0].tracking_number.as_deref(), Some("9400TEST"));
    assert!(
        client
            .all_shipments(&ShipmentFilter {
                order_id: Some(order_id),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    // v1 webhooks.
    let sub = client
        .subscribe_webhook(&SubscribeWebhook {
            target_url: "http://127.0.0.1:9/hooks".into(),
            event: WebhookEvent::ShipNotify,
            store_id: None,
            friendly_name: Some("ship notify".into()),
        })
        .await
        .unwrap();
    let hooks = client.list_webhooks().await.unwrap();
    assert!(
        hooks
            .iter()
            .any(|h| h.webhook_id == sub.id && h.hook_type == WebhookEvent::ShipNotify)
    );
    client.unsubscribe_webhook(sub.id).await.unwrap();
    assert!(
        client
            .list_webhooks()
            .await
            .unwrap()
            .iter()
            .all(|h| h.webhook_id != sub.id)
    );

    // Delete is a soft delete: the order is gone from the API.
    let gone = client
        .create_order(&order("erp:acme:11", "SB-11"))
        .await
        .unwrap()
        .order_id
        .unwrap();
    client.delete_order(gone).await.unwrap();

    // v2.
    let v2 = v2(&sb);
    v2.list_labels(&LabelFilter::default()).await.unwrap();
    v2.list_inventory(&InventoryFilter::default())
        .await
        .unwrap();
    let connected = carriers
        .first()
        .map(|c| c.code.clone())
        .unwrap_or_else(|| "ups".into());
    v2.start_tracking(&connected, "1ZOUTSIDE").await.unwrap();
    v2.stop_tracking(&connected, "1ZOUTSIDE").await.unwrap();
}
