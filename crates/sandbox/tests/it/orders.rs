//! Orders: upserts by orderKey, full replaces, list filters, holds, splits and merges.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestSandbox, order_body};

#[tokio::test]
async fn two_createorders_with_the_same_order_key_leave_one_order_with_the_second_version() {
    let sb = TestSandbox::start().await;
    let mut body = order_body("1001", "erp:acme:SO-1001");
    let (s1, r1) = sb.post("/orders/createorders", json!([body.clone()])).await;
    body["shipTo"]["street1"] = json!("1 New Street");
    let (s2, r2) = sb.post("/orders/createorders", json!([body])).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(r1["hasErrors"], json!(false));
    assert_eq!(r1["results"][0]["orderId"], r2["results"][0]["orderId"]);
    let list = sb.get("/orders?orderNumber=1001").await;
    assert_eq!(list["total"], json!(1));
    assert_eq!(list["orders"][0]["shipTo"]["street1"], json!("1 New Street"));
    let stats = sb.stats().await;
    assert_eq!(stats["orders"], json!(1));
    assert_eq!(stats["duplicate_order_keys"], json!(0));
}

#[tokio::test]
async fn orders_without_an_order_key_duplicate_and_the_stats_count_them() {
    let sb = TestSandbox::start().await;
    let mut body = order_body("2001", "");
    body.as_object_mut().unwrap().remove("orderKey");
    let a = sb.order(body.clone()).await;
    let b = sb.order(body).await;
    assert_ne!(a["orderId"], b["orderId"]);
    assert_ne!(a["orderKey"], b["orderKey"], "ShipStation generates a key when none is sent");
    assert_eq!(sb.stats().await["duplicate_order_numbers"], json!(1));
}

#[tokio::test]
async fn times_go_in_and_out_as_pacific_wall_clock_without_an_offset() {
    let sb = TestSandbox::start().await;
    let mut body = order_body("3001", "k-3001");
    // 01:30 on the US fall-back night happens twice; ShipStation gives no offset.
    body["orderDate"] = json!("2024-11-03 01:30:00");
    let order = sb.order(body).await;
    assert_eq!(order["orderDate"], json!("2024-11-03T01:30:00.0000000"));
    let created = order["createDate"].as_str().unwrap();
    assert_eq!(created.len(), "2015-06-29T08:46:27.0000000".len(), "{created}");
    assert!(!created.ends_with('Z'));
    assert!(order["items"][0]["createDate"].as_str().unwrap().len() == "2015-07-16T14:00:34.823".len());
    // Query by a Pacific window that contains the order date.
    let list = sb.get("/orders?orderDateStart=2024-11-03%2001:00:00&orderDateEnd=2024-11-03%2002:00:00").await;
    assert_eq!(list["total"], json!(1));
    let list = sb.get("/orders?orderDateStart=2024-11-03%2002:00:00").await;
    assert_eq!(list["total"], json!(0));
}

#[tokio::test]
async fn order_number_filter_is_starts_with_and_pages_are_wrapped() {
    let sb = TestSandbox::start().await;
    for (n, key) in [("100", "a"), ("1000", "b"), ("100038-1", "c"), ("2000", "d")] {
        sb.order(order_body(n, key)).await;
    }
    let list = sb.get("/orders?orderNumber=100&pageSize=2&page=1").await;
    assert_eq!(list["total"], json!(3));
    assert_eq!(list["pages"], json!(2));
    assert_eq!(list["orders"].as_array().unwrap().len(), 2);
    let page2 = sb.get("/orders?orderNumber=100&pageSize=2&page=2").await;
    assert_eq!(page2["orders"].as_array().unwrap().len(), 1);
    let r = sb.v1(Method::GET, "/orders?pageSize=501").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["ModelState"]["pageSize"].is_array(), "{body}");
    let desc = sb.get("/orders?sortBy=OrderDate&sortDir=DESC").await;
    assert_eq!(desc["total"], json!(4));
}

#[tokio::test]
async fn a_body_missing_required_fields_is_refused_with_model_state() {
    let sb = TestSandbox::start().await;
    let (status, body) = sb.post("/orders/createorder", json!({"orderNumber": "x"})).await;
    assert_eq!(status, 400);
    assert_eq!(body["Message"], json!("The request is invalid."));
    assert!(body["ModelState"].is_object());
    let (status, _) = sb.post("/orders/createorder", json!("not an order")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_bulk_create_reports_each_order_and_saves_the_good_ones() {
    let sb = TestSandbox::start().await;
    let good = order_body("4001", "k-4001");
    let mut bad = order_body("4002", "k-4002");
    bad["orderStatus"] = json!("teleported");
    let (status, result) = sb.post("/orders/createorders", json!([good, bad])).await;
    assert_eq!(status, 200);
    assert_eq!(result["hasErrors"], json!(true));
    assert_eq!(result["results"][0]["success"], json!(true));
    assert_eq!(result["results"][1]["success"], json!(false));
    assert!(result["results"][1]["errorMessage"].as_str().unwrap().contains("teleported"));
    assert_eq!(sb.stats().await["orders"], json!(1));
    let too_many: Vec<_> = (0..101).map(|i| order_body(&format!("B{i}"), &format!("b{i}"))).collect();
    let (status, _) = sb.post("/orders/createorders", json!(too_many)).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn shipped_and_cancelled_orders_refuse_updates_and_store_id_is_fixed_at_creation() {
    let sb = TestSandbox::start().await;
    let stores = sb.get("/stores").await;
    let second_store = stores[1]["storeId"].clone();
    let mut body = order_body("5001", "k-5001");
    body["advancedOptions"] = json!({"storeId": second_store, "customField1": "SO-5001"});
    let order = sb.order(body.clone()).await;
    assert_eq!(order["advancedOptions"]["storeId"], second_store);
    assert_eq!(order["advancedOptions"]["customField1"], json!("SO-5001"));
    body["advancedOptions"] = json!({"storeId": stores[0]["storeId"]});
    let updated = sb.order(body.clone()).await;
    assert_eq!(updated["advancedOptions"]["storeId"], second_store);
    assert_eq!(updated["advancedOptions"]["customField1"], json!(null), "updates are full replaces");

    body["orderStatus"] = json!("cancelled");
    let cancelled = sb.order(body.clone()).await;
    assert_eq!(cancelled["orderStatus"], json!("cancelled"));
    body["orderStatus"] = json!("awaiting_shipment");
    let (status, refusal) = sb.post("/orders/createorder", body).await;
    assert_eq!(status, 400);
    assert!(refusal["Message"].as_str().unwrap().contains("cancelled"), "{refusal}");
}

#[tokio::test]
async fn a_hold_lasts_until_its_date_and_a_restore_ends_it_early() {
    let sb = TestSandbox::start().await;
    let order = sb.order(order_body("6001", "k-6001")).await;
    let id = order["orderId"].clone();
    let today = sb.http.get(format!("{}/_sandbox/clock", sb.base)).send().await.unwrap().json::<serde_json::Value>().await.unwrap();
    let date = &today["pacific"].as_str().unwrap()[..10];
    let tomorrow: jiff::civil::Date = date.parse::<jiff::civil::Date>().unwrap().tomorrow().unwrap();
    let (status, r) = sb.post("/orders/holduntil", json!({"orderId": id, "holdUntilDate": tomorrow.to_string()})).await;
    assert_eq!((status, r["success"].clone()), (200, json!(true)));
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("on_hold"));
    sb.control("/clock/advance", json!({"seconds": 2 * 86_400})).await;
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("awaiting_shipment"));

    sb.post("/orders/holduntil", json!({"orderId": id, "holdUntilDate": "2099-01-01"})).await;
    let (status, _) = sb.post("/orders/restorefromhold", json!({"orderId": id})).await;
    assert_eq!(status, 200);
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("awaiting_shipment"));
}

#[tokio::test]
async fn a_split_child_points_to_its_parent_and_a_merged_away_order_vanishes() {
    let sb = TestSandbox::start().await;
    let order = sb.order(order_body("7001", "k-7001")).await;
    let id = order["orderId"].as_i64().unwrap();
    let (status, child) = sb.control(&format!("/orders/{id}/split"), json!({"items": [{"lineItemKey": "L2"}]})).await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["advancedOptions"]["parentId"], json!(id));
    assert_eq!(child["advancedOptions"]["mergedOrSplit"], json!(true));
    assert_eq!(child["orderNumber"], json!("7001-1"));
    assert_eq!(child["items"][0]["lineItemKey"], json!("L2"));
    let parent = sb.get(&format!("/orders/{id}")).await;
    assert_eq!(parent["items"].as_array().unwrap().len(), 1);

    let a = sb.order(order_body("7100", "k-7100")).await["orderId"].as_i64().unwrap();
    let b = sb.order(order_body("7101", "k-7101")).await["orderId"].as_i64().unwrap();
    let (status, survivor) = sb.control("/orders/merge", json!({"orderIds": [a, b]})).await;
    assert_eq!(status, 200);
    assert_eq!(survivor["advancedOptions"]["mergedIds"], json!([b]));
    assert_eq!(survivor["items"].as_array().unwrap().len(), 4);
    assert_eq!(sb.v1(Method::GET, &format!("/orders/{b}")).send().await.unwrap().status(), 404);
    assert_eq!(sb.get("/orders?orderNumber=7101").await["total"], json!(0));
}

#[tokio::test]
async fn a_deleted_order_is_hidden_from_lists() {
    let sb = TestSandbox::start().await;
    let id = sb.order(order_body("8001", "k-8001")).await["orderId"].clone();
    let r = sb.v1(Method::DELETE, &format!("/orders/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sb.get("/orders?orderNumber=8001").await["total"], json!(0));
}

#[tokio::test]
async fn a_refused_order_makes_no_product_and_an_accepted_one_makes_one_per_sku() {
    let sb = TestSandbox::start().await;
    let mut refused = order_body("R1", "r1");
    refused["advancedOptions"] = json!({"storeId": 999});
    let (status, body) = sb.post("/orders/createorder", refused).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(sb.get("/products").await["total"], json!(0), "a refused order's SKUs are not seen");
    let order = sb.order(order_body("R2", "r2")).await;
    let products = sb.get("/products").await;
    assert_eq!(products["total"], json!(2));
    for item in order["items"].as_array().unwrap() {
        let product = products["products"].as_array().unwrap().iter().find(|p| p["sku"] == item["sku"]).unwrap();
        assert_eq!(item["productId"], product["productId"], "the line carries its SKU's product id");
    }
}
