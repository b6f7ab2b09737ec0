//! v2: API-Key auth, its own rate limit, signed track webhooks, tracking subscriptions
//! and inventory.

use base64::Engine;
use reqwest::Method;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::Sha256;
use shipledger_sandbox::SandboxConfig;
use shipledger_sandbox::signing::signed_message;

use crate::helpers::{Receiver, TestSandbox, order_body};

#[tokio::test]
async fn v2_wants_its_own_key_and_says_when_to_retry_after_its_limit() {
    let sb = TestSandbox::with(SandboxConfig { v2_rate_limit: 2, ..Default::default() }).await;
    let r = sb.http.get(format!("{}/v2/labels", sb.base)).basic_auth(&sb.key, Some(&sb.secret)).send().await.unwrap();
    assert_eq!(r.status(), 401, "v1 credentials do not open v2");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["error_code"], json!("unauthorized"));
    assert_eq!(sb.v2_get("/v2/labels").await.0, 200);
    assert_eq!(sb.v2_get("/v2/labels").await.0, 200);
    let r = sb.http.get(format!("{}/v2/labels", sb.base)).header("api-key", &sb.v2_key).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["error_code"], json!("rate_limit_exceeded"));
}

#[tokio::test]
async fn track_webhooks_are_signed_with_the_published_key_over_timestamp_and_raw_body() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    let (status, hook) = sb
        .v2_send(Method::POST, "/v2/environment/webhooks", Some(json!({"url": receiver.url, "event": "track", "name": "erp"})))
        .await;
    assert_eq!(status, 201);
    assert!(hook["webhook_id"].as_str().unwrap().starts_with("se-"));
    let (status, _) = sb
        .v2_send(Method::POST, "/v2/environment/webhooks", Some(json!({"url": receiver.url, "event": "track"})))
        .await;
    assert_eq!(status, 409);
    let id = sb.order(order_body("T1", "t1")).await["orderId"].as_i64().unwrap();
    let (_, label) = sb.control(&format!("/orders/{id}/labels"), json!({})).await;
    sb.control("/tracking/events", json!({"trackingNumber": label["trackingNumber"], "statusCode": "IT"})).await;
    sb.flush().await;

    let key: Value = sb.http.get(format!("{}/_sandbox/webhook-key", sb.base)).send().await.unwrap().json().await.unwrap();
    let public = rsa::RsaPublicKey::from_public_key_pem(key["public_key_pem"].as_str().unwrap()).unwrap();
    let verifier = VerifyingKey::<Sha256>::new(public);
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(headers["x-shipengine-rsa-sha256-key-id"].to_str().unwrap(), key["key_id"].as_str().unwrap());
    let timestamp = headers["x-shipengine-timestamp"].to_str().unwrap();
    let sent: jiff::Timestamp = timestamp.parse().unwrap();
    assert!(jiff::Timestamp::now().duration_since(sent).as_secs().abs() < 60);
    let sig = base64::engine::general_purpose::STANDARD
        .decode(headers["x-shipengine-rsa-sha256-signature"].to_str().unwrap())
        .unwrap();
    let sig = Signature::try_from(sig.as_slice()).unwrap();
    assert!(verifier.verify(&signed_message(timestamp, body), &sig).is_ok());
    let mut tampered = body.to_vec();
    tampered[5] ^= 1;
    assert!(verifier.verify(&signed_message(timestamp, &tampered), &sig).is_err());
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["data"]["status_code"], json!("IT"));
    let jwks: Value = sb.http.get(format!("{}/jwks", sb.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], key["key_id"]);
}

#[tokio::test]
async fn tracking_can_be_started_for_a_number_from_outside_shipstation() {
    let sb = TestSandbox::start().await;
    let (status, _) = sb.v2_get("/v2/tracking?carrier_code=ups&tracking_number=1ZEXTERNAL").await;
    assert_eq!(status, 404);
    let (status, _) = sb.v2_send(Method::POST, "/v2/tracking/start?carrier_code=ups&tracking_number=1ZEXTERNAL", None).await;
    assert_eq!(status, 204);
    let (status, t) = sb.v2_get("/v2/tracking?carrier_code=ups&tracking_number=1ZEXTERNAL").await;
    assert_eq!(status, 200);
    assert_eq!(t["status_code"], json!("NY"));
    sb.control("/tracking/events", json!({"trackingNumber": "1ZEXTERNAL", "statusCode": "DE"})).await;
    let (_, t) = sb.v2_get("/v2/tracking?carrier_code=ups&tracking_number=1ZEXTERNAL").await;
    assert_eq!(t["status_code"], json!("DE"));
    assert!(t["actual_delivery_date"].is_string());
    let (status, _) = sb.v2_send(Method::POST, "/v2/tracking/stop?carrier_code=ups&tracking_number=1ZEXTERNAL", None).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn inventory_moves_by_transaction_and_answers_per_location() {
    let sb = TestSandbox::start().await;
    let (status, wh) = sb.v2_send(Method::POST, "/v2/inventory_warehouses", Some(json!({"name": "Leeds"}))).await;
    assert_eq!(status, 200);
    let (_, loc) = sb
        .v2_send(Method::POST, "/v2/inventory_locations", Some(json!({"name": "A-01", "inventory_warehouse_id": wh["inventory_warehouse_id"]})))
        .await;
    let loc_id = loc["inventory_location_id"].clone();
    let change = |kind: &str, qty: i64| json!({"transaction_type": kind, "inventory_location_id": loc_id, "sku": "MUG-BLUE", "quantity": qty});
    assert_eq!(sb.v2_send(Method::POST, "/v2/inventory", Some(change("increment", 10))).await.0, 204);
    assert_eq!(sb.v2_send(Method::POST, "/v2/inventory", Some(change("decrement", 3))).await.0, 204);
    assert_eq!(sb.v2_send(Method::POST, "/v2/inventory", Some(change("decrement", 30))).await.0, 400);
    let (_, inv) = sb.v2_get("/v2/inventory?sku=MUG-BLUE").await;
    assert_eq!(inv["inventory"][0]["on_hand"], json!(7));
    assert_eq!(inv["inventory"][0]["available"], json!(7));
    assert_eq!(sb.v2_send(Method::POST, "/v2/inventory", Some(change("adjust", 2))).await.0, 204);
    let (_, inv) = sb.v2_get("/v2/inventory?sku=MUG-BLUE&group_by=warehouse").await;
    assert_eq!(inv["inventory"][0]["on_hand"], json!(2));
    assert_eq!(inv["inventory"][0]["inventory_warehouse_id"], wh["inventory_warehouse_id"]);
    let path = format!("/v2/inventory_warehouses/{}", wh["inventory_warehouse_id"].as_str().unwrap());
    assert_eq!(sb.v2_send(Method::DELETE, &path, None).await.0, 400, "stock on hand blocks the delete");
    assert_eq!(sb.v2_send(Method::DELETE, &format!("{path}?remove_inventory=1"), None).await.0, 204);
}

/// The label ids of a `/v2/labels` page, in the order listed.
fn label_ids(page: &Value) -> Vec<String> {
    page["labels"].as_array().unwrap().iter().map(|l| l["label_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn labels_sorted_by_modified_at_put_the_ones_whose_tracking_moved_or_were_voided_first() {
    let sb = TestSandbox::start().await;
    let mut labels = Vec::new();
    for n in 1..=4 {
        let mut body = order_body(&format!("M{n}"), &format!("m{n}"));
        body["weight"] = json!({"value": 1, "units": "pounds"});
        let id = sb.order(body).await["orderId"].as_i64().unwrap();
        let (_, label) = sb.control(&format!("/orders/{id}/labels"), json!({})).await;
        labels.push((label["labelId"].as_str().unwrap().to_string(), label["trackingNumber"].as_str().unwrap().to_string()));
        // Each label is made a minute after the one before.
        sb.control("/clock/advance", json!({"seconds": 60})).await;
    }
    let ids = |picks: &[usize]| picks.iter().map(|i| labels[*i].0.clone()).collect::<Vec<_>>();
    let (status, page) = sb.v2_get("/v2/labels?label_status=completed&sort_by=modified_at&sort_dir=desc").await;
    assert_eq!(status, 200);
    assert_eq!(label_ids(&page), ids(&[3, 2, 1, 0]), "nothing moved yet: newest made first");
    assert!(page["labels"].as_array().unwrap().iter().all(|l| l["tracking_status"] == json!("unknown")));
    // Package weights in v2's shape: `{value, unit}`, not v1's `{value, units}`.
    let weight = &page["labels"][0]["packages"][0]["weight"];
    assert_eq!(weight["unit"], json!("ounce"), "{weight}");
    assert_eq!(weight["value"], json!(16), "a pound is 16 ounces: {weight}");

    // The carrier accepts the oldest parcel; an electronic notice arrives for the second.
    sb.control("/tracking/events", json!({"trackingNumber": labels[1].1, "statusCode": "NY", "statusDetailCode": "ELEC_ADVICE_RECD_BY_CARRIER"})).await;
    sb.control("/clock/advance", json!({"seconds": 60})).await;
    sb.control("/tracking/events", json!({"trackingNumber": labels[0].1, "statusCode": "AC", "statusDetailCode": "RECEIVED_BY_CARRIER"})).await;
    let (_, page) = sb.v2_get("/v2/labels?label_status=completed&sort_by=modified_at&sort_dir=desc").await;
    assert_eq!(label_ids(&page), ids(&[0, 1, 3, 2]), "the scanned label, then the one with a notice, then the rest by creation");
    let status_of = |page: &Value, id: &str| page["labels"].as_array().unwrap().iter().find(|l| l["label_id"] == json!(id)).unwrap()["tracking_status"].clone();
    assert_eq!(status_of(&page, &labels[0].0), json!("in_transit"));
    assert_eq!(status_of(&page, &labels[1].0), json!("unknown"), "an electronic notice is no movement");

    // Delivered, it is modified again; sorted by creation nothing changes.
    sb.control("/clock/advance", json!({"seconds": 60})).await;
    sb.control("/tracking/events", json!({"trackingNumber": labels[2].1, "statusCode": "DE"})).await;
    let (_, page) = sb.v2_get("/v2/labels?sort_by=modified_at&sort_dir=desc&page_size=2").await;
    assert_eq!(label_ids(&page), ids(&[2, 0]));
    assert_eq!(status_of(&page, &labels[2].0), json!("delivered"));
    assert_eq!(page["pages"], json!(2));
    let (_, page) = sb.v2_get("/v2/labels?sort_by=modified_at&sort_dir=desc&page_size=2&page=2").await;
    assert_eq!(label_ids(&page), ids(&[1, 3]));
    let (_, page) = sb.v2_get("/v2/labels?sort_by=created_at").await;
    assert_eq!(label_ids(&page), ids(&[0, 1, 2, 3]));

    // A void moves a label too, and it leaves the completed ones.
    sb.control("/clock/advance", json!({"seconds": 60})).await;
    sb.control(&format!("/labels/{}/void", labels[3].0), json!({})).await;
    let (_, page) = sb.v2_get("/v2/labels?sort_by=modified_at&sort_dir=desc").await;
    assert_eq!(label_ids(&page)[0], labels[3].0);
    let (_, page) = sb.v2_get("/v2/labels?label_status=completed&sort_by=modified_at&sort_dir=desc").await;
    assert_eq!(label_ids(&page), ids(&[2, 0, 1]));

    // Any other sort is refused the way ShipStation refuses it.
    let (status, body) = sb.v2_get("/v2/labels?sort_by=ship_date").await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["error_code"], json!("invalid_field_value"));
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("sort_by"), "{body}");
}
