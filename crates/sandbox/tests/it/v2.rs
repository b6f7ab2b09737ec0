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
