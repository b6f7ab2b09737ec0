//! Authentication, the rate limit, unknown paths, and what a client configures itself from.

use reqwest::Method;
use serde_json::json;
use shipledger_sandbox::SandboxConfig;

use crate::helpers::{TestSandbox, order_body};

#[tokio::test]
async fn a_request_without_the_key_pair_is_refused_and_costs_nothing() {
    let sb = TestSandbox::start().await;
    let r = sb.http.get(format!("{}/orders", sb.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = sb.http.get(format!("{}/orders", sb.base)).basic_auth(&sb.key, Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = sb.v1(Method::GET, "/orders").send().await.unwrap();
    assert_eq!(r.headers()["x-rate-limit-remaining"], "39");
}

#[tokio::test]
async fn the_forty_first_request_in_a_window_gets_429_until_the_window_resets() {
    let sb = TestSandbox::start().await;
    let mut remaining = Vec::new();
    for _ in 0..40 {
        let r = sb.v1(Method::GET, "/stores").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-rate-limit-limit"], "40");
        remaining.push(r.headers()["x-rate-limit-remaining"].to_str().unwrap().parse::<u32>().unwrap());
        let reset: u64 = r.headers()["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "reset counts down seconds: {reset}");
    }
    assert_eq!(remaining.first(), Some(&39));
    assert_eq!(remaining.last(), Some(&0));
    let r = sb.v1(Method::GET, "/stores").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), json!({"message": "Too Many Requests"}));
    assert_eq!(sb.stats().await["rate_limited"], json!(1));

    // A minute later (on the sandbox's clock) the window is fresh.
    sb.control("/clock/advance", json!({"seconds": 60})).await;
    let r = sb.v1(Method::GET, "/stores").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-rate-limit-remaining"], "39");
}

#[tokio::test]
async fn paths_shipstation_does_not_have_answer_404_as_it_does() {
    let sb = TestSandbox::start().await;
    // shipstation-node's markshipped and pyshipstation's /orders/list are real bugs in the wild.
    let (status, body) = sb.post("/orders/markshipped", json!({"orderId": 1, "carrierCode": "ups"})).await;
    assert_eq!(status, 404);
    assert!(body["Message"].as_str().unwrap().contains("No HTTP resource was found"), "{body}");
    let r = sb.v1(Method::GET, "/orders/list").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = sb.v1(Method::GET, "/carriers?carrierCode=ups").send().await.unwrap();
    assert_eq!(r.status(), 200, "GET /carriers ignores the filter and lists all carriers");
    let r = sb.v1(Method::GET, "/no/such/thing").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = sb.v1(Method::GET, "/shipments/voidlabel").send().await.unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_client_can_configure_itself_from_stores_warehouses_and_carriers() {
    let sb = TestSandbox::start().await;
    let stores = sb.get("/stores").await;
    assert!(stores.as_array().unwrap().iter().any(|s| s["storeName"] == "ShipStation Manual Store" && s["marketplaceId"] == 0));
    let store_id = stores[0]["storeId"].as_i64().unwrap();
    let store = sb.get(&format!("/stores/{store_id}")).await;
    assert!(store["statusMappings"].is_array());
    let warehouses = sb.get("/warehouses").await;
    assert_eq!(warehouses[0]["isDefault"], json!(true));
    let carriers = sb.get("/carriers").await;
    let codes: Vec<&str> = carriers.as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"ups") && codes.contains(&"fedex"));
    let services = sb.get("/carriers/listservices?carrierCode=fedex").await;
    assert!(services.as_array().unwrap().iter().any(|s| s["code"] == "fedex_ground"));
    let packages = sb.get("/carriers/listpackages?carrierCode=ups").await;
    assert!(packages.as_array().unwrap().iter().any(|s| s["code"] == "package"));
    let r = sb.v1(Method::GET, "/carriers/getcarrier?carrierCode=nope").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_smaller_configured_limit_is_what_the_headers_report() {
    let sb = TestSandbox::with(SandboxConfig { rate_limit: 3, ..Default::default() }).await;
    for expected in ["2", "1", "0"] {
        let r = sb.v1(Method::GET, "/stores").send().await.unwrap();
        assert_eq!(r.headers()["x-rate-limit-limit"], "3");
        assert_eq!(r.headers()["x-rate-limit-remaining"], expected);
    }
    assert_eq!(sb.v1(Method::GET, "/stores").send().await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_refused_request_reports_the_window_of_the_key_it_named_without_spending_it() {
    let sb = TestSandbox::start().await;
    sb.v1(Method::GET, "/stores").send().await.unwrap();
    let r = sb.http.get(format!("{}/orders", sb.base)).basic_auth(&sb.key, Some("wrong")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-rate-limit-limit"], "40");
    assert_eq!(r.headers()["x-rate-limit-remaining"], "39", "the one request spent so far");
    let reset: u64 = r.headers()["x-rate-limit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset));
    let r = sb.http.get(format!("{}/orders", sb.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-rate-limit-remaining"], "40", "no key named: a fresh window");
    let r = sb.v1(Method::GET, "/stores").send().await.unwrap();
    assert_eq!(r.headers()["x-rate-limit-remaining"], "38", "the 401s cost nothing");
}

#[tokio::test]
async fn product_weights_are_exact_ounces_whatever_unit_the_line_used() {
    let sb = TestSandbox::start().await;
    let mut body = order_body("W1", "w1");
    body["items"][0]["weight"] = json!({"value": 0.5, "units": "pounds"});
    body["items"][1]["weight"] = json!({"value": 8, "units": "ounces"});
    sb.order(body).await;
    let mut grams = order_body("W2", "w2");
    grams["items"][0]["sku"] = json!("GRAMS-1");
    grams["items"][0]["weight"] = json!({"value": 226.796185, "units": "grams"});
    sb.order(grams).await;
    let products = sb.get("/products").await;
    let oz = |sku: &str| {
        products["products"].as_array().unwrap().iter().find(|p| p["sku"] == sku).unwrap()["weightOz"].to_string()
    };
    assert_eq!(oz("MUG-BLUE"), "8");
    assert_eq!(oz("TEA-EARL"), "8", "8 oz is 8, not 7.999993");
    assert_eq!(oz("GRAMS-1"), "8", "226.796185 g is exactly 8 oz");
}
