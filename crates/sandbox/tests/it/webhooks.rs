//! Webhook subscriptions and their delivery: at least once, retried, with resource
//! URLs the sandbox answers.

use serde_json::{Value, json};

use crate::helpers::{Receiver, TestSandbox, order_body};

#[tokio::test]
async fn subscriptions_are_listed_in_shipstations_pascal_case_wrapper_and_can_be_removed() {
    let sb = TestSandbox::start().await;
    let (status, created) = sb
        .post("/webhooks/subscribe", json!({"target_url": "http://127.0.0.1:9/x", "event": "ORDER_NOTIFY", "store_id": null, "friendly_name": "erp"}))
        .await;
    assert_eq!(status, 201);
    let list = sb.get("/webhooks").await;
    let hook = &list["webhooks"][0];
    assert_eq!(hook["WebHookID"], created["id"]);
    assert_eq!(hook["HookType"], json!("ORDER_NOTIFY"));
    assert_eq!(hook["Url"], json!("http://127.0.0.1:9/x"));
    let (status, _) = sb.post("/webhooks/subscribe", json!({"target_url": "http://x", "event": "NOPE"})).await;
    assert_eq!(status, 400);
    let r = sb.v1(reqwest::Method::DELETE, &format!("/webhooks/{}", created["id"])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sb.get("/webhooks").await["webhooks"], json!([]));
}

#[tokio::test]
async fn new_orders_notify_with_a_batch_url_that_lists_exactly_them() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": "ORDER_NOTIFY"})).await;
    sb.post("/orders/createorders", json!([order_body("A1", "a1"), order_body("A2", "a2")])).await;
    sb.post("/orders/createorders", json!([order_body("A3", "a3")])).await;
    // An update is not a new order.
    sb.post("/orders/createorders", json!([order_body("A3", "a3")])).await;
    sb.flush().await;
    let hooks = receiver.bodies();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let url = hooks[0]["resource_url"].as_str().unwrap();
    assert!(url.contains("storeID=") && url.contains("importBatch="), "{url}");
    let page: Value = sb.http.get(url).basic_auth(&sb.key, Some(&sb.secret)).send().await.unwrap().json().await.unwrap();
    let numbers: Vec<&str> = page["orders"].as_array().unwrap().iter().map(|o| o["orderNumber"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["A1", "A2"]);
}

#[tokio::test]
async fn a_receiver_that_fails_is_retried_until_it_answers() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    *receiver.fail_first.lock().unwrap() = 2;
    sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": "ORDER_NOTIFY"})).await;
    sb.order(order_body("R1", "r1")).await;
    sb.flush().await;
    assert_eq!(receiver.bodies().len(), 1);
    let stats = sb.stats().await;
    assert_eq!(stats["webhooks"]["delivered"], json!(1));
    assert_eq!(stats["webhooks"]["attempts"], json!(3));
}

#[tokio::test]
async fn dropped_and_duplicated_deliveries_are_injected_on_request() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": "ORDER_NOTIFY"})).await;
    sb.put_control("/faults", json!({"webhook_duplicate": 1.0})).await;
    sb.order(order_body("D1", "d1")).await;
    sb.flush().await;
    assert_eq!(receiver.bodies().len(), 2);
    sb.put_control("/faults", json!({"webhook_drop": 1.0})).await;
    sb.order(order_body("D2", "d2")).await;
    sb.flush().await;
    assert_eq!(receiver.bodies().len(), 2);
    let stats = sb.stats().await;
    assert_eq!(stats["webhooks"]["dropped"], json!(1));
    assert_eq!(stats["webhooks"]["duplicated"], json!(1));
}

#[tokio::test]
async fn webhook_faults_limited_to_track_lose_the_carriers_scans_but_never_a_label_notice() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": "SHIP_NOTIFY"})).await;
    let (status, _) = sb
        .v2_send(reqwest::Method::POST, "/v2/environment/webhooks", Some(json!({"url": receiver.url, "event": "track"})))
        .await;
    assert_eq!(status, 201);
    let (status, _) = sb.put_control("/faults", json!({"webhook_drop": 1.0, "webhook_events": ["track"]})).await;
    assert_eq!(status, 200);
    let order = sb.order(order_body("W1", "w1")).await;
    let (status, label) = sb.control(&format!("/orders/{}/labels", order["orderId"]), json!({})).await;
    assert_eq!(status, 200, "{label}");
    let (status, _) = sb
        .control("/tracking/events", json!({"trackingNumber": label["trackingNumber"], "statusCode": "AC"}))
        .await;
    assert_eq!(status, 200);
    sb.flush().await;
    let types: Vec<Value> = receiver.bodies().iter().map(|b| b["resource_type"].clone()).collect();
    assert_eq!(types, [json!("SHIP_NOTIFY")], "the label notice arrived, the scan did not");
    let stats = sb.stats().await;
    assert_eq!(stats["webhooks"]["dropped"], json!(1));
    assert_eq!(stats["webhooks"]["delivered"], json!(1));
}
