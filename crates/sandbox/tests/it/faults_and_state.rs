//! Injected faults, and state that survives a restart.

use reqwest::Method;
use serde_json::json;
use shipledger_sandbox::SandboxConfig;

use crate::helpers::{TestSandbox, order_body};

#[tokio::test]
async fn injected_429s_and_500s_look_like_shipstations_own() {
    let sb = TestSandbox::start().await;
    sb.put_control("/faults", json!({"rate_429": 1.0})).await;
    let r = sb.v1(Method::GET, "/orders").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("x-rate-limit-reset"));
    sb.put_control("/faults", json!({"rate_500": 1.0, "paths": ["/orders/createorders"]})).await;
    assert_eq!(sb.v1(Method::GET, "/orders").send().await.unwrap().status(), 200, "other paths are spared");
    let (status, body) = sb.post("/orders/createorders", json!([order_body("F1", "f1")])).await;
    assert_eq!(status, 500);
    assert_eq!(body["Message"], json!("An error has occurred."));
    assert_eq!(sb.stats().await["orders"], json!(0));
    let (status, _) = sb.put_control("/faults", json!({"rate_500": 2.0})).await;
    assert_eq!(status, 400, "a share above 1 is refused");
}

#[tokio::test]
async fn a_lost_answer_still_leaves_its_effect_and_a_retry_with_the_key_does_not_duplicate() {
    let sb = TestSandbox::start().await;
    sb.put_control("/faults", json!({"rate_500_after": 1.0})).await;
    let (status, _) = sb.post("/orders/createorders", json!([order_body("F2", "f2")])).await;
    assert_eq!(status, 500);
    sb.put_control("/faults", json!({})).await;
    let (status, _) = sb.post("/orders/createorders", json!([order_body("F2", "f2")])).await;
    assert_eq!(status, 200);
    let stats = sb.stats().await;
    assert_eq!(stats["orders"], json!(1));
    assert_eq!(stats["duplicate_order_keys"], json!(0));
}

#[tokio::test]
async fn createorders_can_fail_for_part_of_a_batch() {
    let sb = TestSandbox::start().await;
    sb.put_control("/faults", json!({"createorders_fail": 0.5})).await;
    let batch: Vec<_> = (0..40).map(|i| order_body(&format!("P{i}"), &format!("p{i}"))).collect();
    let (status, result) = sb.post("/orders/createorders", json!(batch)).await;
    assert_eq!(status, 200);
    assert_eq!(result["hasErrors"], json!(true));
    let ok = result["results"].as_array().unwrap().iter().filter(|r| r["success"] == json!(true)).count();
    assert!(ok > 0 && ok < 40, "{ok} of 40 saved");
    assert_eq!(sb.stats().await["orders"], json!(ok));
}

#[tokio::test]
async fn slow_answers_arrive_late_but_arrive() {
    let sb = TestSandbox::start().await;
    sb.put_control("/faults", json!({"rate_slow": 1.0, "slow_ms": 300})).await;
    let started = std::time::Instant::now();
    assert_eq!(sb.v1(Method::GET, "/stores").send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn with_a_state_file_orders_and_labels_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("shipledger-sandbox-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = SandboxConfig { state_path: Some(path.clone()), ..Default::default() };
    let sb = TestSandbox::with(config.clone()).await;
    let id = sb.order(order_body("K1", "k1")).await["orderId"].as_i64().unwrap();
    sb.control(&format!("/orders/{id}/labels"), json!({})).await;
    let open = sb.order(order_body("K2", "k2")).await["orderId"].as_i64().unwrap();
    sb.handle.shutdown().await;
    let sb = TestSandbox::with(config).await;
    let order = sb.get(&format!("/orders/{id}")).await;
    assert_eq!(order["orderStatus"], json!("shipped"));
    assert_eq!(sb.get("/shipments").await["total"], json!(1));
    let again = sb.order(order_body("K2", "k2")).await;
    assert_eq!(again["orderId"].as_i64(), Some(open), "the orderKey index came back too");
    let (status, _) = sb.post("/orders/createorder", order_body("K1", "k1")).await;
    assert_eq!(status, 400, "and the shipped order is still locked");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn with_a_state_file_products_stores_warehouses_and_funds_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("shipledger-sandbox-account-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = SandboxConfig { state_path: Some(path.clone()), ..Default::default() };
    let sb = TestSandbox::with(config.clone()).await;
    sb.order(order_body("P1", "p1")).await;
    let products = sb.get("/products?sku=MUG-BLUE").await;
    let mug = products["products"][0].clone();
    let mug_id = mug["productId"].as_i64().unwrap();
    let mut renamed = mug.clone();
    renamed["name"] = json!("Blue mug, large");
    let r = sb.v1(reqwest::Method::PUT, &format!("/products/{mug_id}")).json(&renamed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = sb.post("/stores/deactivate", json!({"storeId": 310002})).await;
    assert_eq!(status, 200);
    let (status, wh) = sb
        .post("/warehouses/createwarehouse", json!({"warehouseName": "Annex", "originAddress": {"name": "Annex", "city": "Austin", "country": "US"}}))
        .await;
    assert_eq!(status, 200, "{wh}");
    let (status, _) = sb.post("/carriers/addfunds", json!({"carrierCode": "stamps_com", "amount": 10})).await;
    assert_eq!(status, 200);
    sb.handle.shutdown().await;

    let sb = TestSandbox::with(config).await;
    let product = sb.get(&format!("/products/{mug_id}")).await;
    assert_eq!(product["name"], json!("Blue mug, large"));
    // A SKU seen before the restart keeps its product; a new one gets a new id.
    sb.order(order_body("P2", "p2")).await;
    let mut other = order_body("P3", "p3");
    other["items"][0]["sku"] = json!("AAA-NEW");
    sb.order(other).await;
    let listed = sb.get("/products").await;
    let ids: Vec<(String, i64)> = listed["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["sku"].as_str().unwrap().to_string(), p["productId"].as_i64().unwrap()))
        .collect();
    assert!(ids.contains(&("MUG-BLUE".into(), mug_id)), "{ids:?}");
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.iter().all(|(sku, id)| sku == "MUG-BLUE" || *id != mug_id), "{ids:?}");
    let stores = sb.get("/stores").await;
    assert!(stores.as_array().unwrap().iter().all(|s| s["storeId"] != json!(310002)), "{stores}");
    let warehouses = sb.get("/warehouses").await;
    assert!(warehouses.as_array().unwrap().iter().any(|w| w["warehouseId"] == wh["warehouseId"]), "{warehouses}");
    let carriers = sb.get("/carriers").await;
    let stamps = carriers.as_array().unwrap().iter().find(|c| c["code"] == "stamps_com").unwrap().clone();
    assert_eq!(stamps["balance"], json!(260));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_state_file_from_before_products_were_kept_gets_one_product_per_sku_on_start() {
    let dir = std::env::temp_dir().join(format!("shipledger-sandbox-old-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = SandboxConfig { state_path: Some(path.clone()), ..Default::default() };
    let sb = TestSandbox::with(config.clone()).await;
    let id = sb.order(order_body("O1", "o1")).await["orderId"].as_i64().unwrap();
    sb.handle.shutdown().await;
    // Make it look like an older sandbox's file: no products, no product ids.
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state.as_object_mut().unwrap().remove("products");
    state["ids"].as_object_mut().unwrap().remove("product");
    for item in state["orders"][id.to_string()]["items"].as_array_mut().unwrap() {
        item["product_id"] = serde_json::Value::Null;
    }
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();

    let sb = TestSandbox::with(config).await;
    let products = sb.get("/products").await;
    assert_eq!(products["total"], json!(2), "{products}");
    let order = sb.get(&format!("/orders/{id}")).await;
    for item in order["items"].as_array().unwrap() {
        let product = products["products"].as_array().unwrap().iter().find(|p| p["sku"] == item["sku"]).unwrap();
        assert_eq!(item["productId"], product["productId"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}
