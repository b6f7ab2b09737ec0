//! Labels, split shipping, voids, re-labels and carrier scans, seen consistently through
//! `/shipments`, `/v2/labels`, the stats and the webhooks a receiver gets.

use serde_json::{Value, json};

use crate::helpers::{Receiver, TestSandbox, order_body};

#[tokio::test]
async fn one_order_through_label_second_label_void_relabel_and_scans_stays_consistent_everywhere() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    for event in ["SHIP_NOTIFY", "ITEM_SHIP_NOTIFY"] {
        let (status, _) = sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": event})).await;
        assert_eq!(status, 201);
    }
    let (status, _) = sb
        .v2_send(reqwest::Method::POST, "/v2/environment/webhooks", Some(json!({"url": receiver.url, "event": "track"})))
        .await;
    assert_eq!(status, 201);

    let order = sb.order(order_body("9001", "erp:acme:SO-9001")).await;
    let id = order["orderId"].as_i64().unwrap();

    // Parcel 1: the mugs only.
    let (status, first) = sb
        .control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups", "shipmentCost": 7.25, "currency": "USD", "items": [{"lineItemKey": "L1"}]}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("awaiting_shipment"));
    // Parcel 2: the remaining line.
    let (_, second) = sb
        .control(&format!("/orders/{id}/labels"), json!({"carrierCode": "fedex", "shipmentCost": "11.40", "currency": "usd"}))
        .await;
    assert_eq!(second["shipment"]["shipmentItems"][0]["lineItemKey"], json!("L2"));
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("shipped"));
    // Nothing is left to label.
    let (status, _) = sb.control(&format!("/orders/{id}/labels"), json!({})).await;
    assert_eq!(status, 400);

    // The second label is voided and made again.
    let second_id = second["shipment"]["shipmentId"].as_i64().unwrap();
    let (status, voided) = sb.control(&format!("/shipments/{second_id}/void"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(voided["voided"], json!(true));
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("awaiting_shipment"));
    let (_, third) = sb
        .control(&format!("/orders/{id}/labels"), json!({"carrierCode": "fedex", "shipmentCost": 11.40, "trackingNumber": "794600000042"}))
        .await;
    assert_eq!(third["trackingNumber"], json!("794600000042"));
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("shipped"));

    // The carrier: an electronic notice, then real scans, for parcel 1; parcel 3 is accepted.
    let first_tracking = first["trackingNumber"].as_str().unwrap().to_string();
    for (code, detail) in [("NY", "ELEC_ADVICE_RECD_BY_CARRIER"), ("AC", "RECEIVED_BY_CARRIER"), ("IT", "IN_TRANSIT"), ("DE", "DELIVERED")] {
        let (status, _) = sb
            .control("/tracking/events", json!({"trackingNumber": first_tracking, "statusCode": code, "statusDetailCode": detail}))
            .await;
        assert_eq!(status, 200);
    }
    sb.control("/tracking/events", json!({"trackingNumber": "794600000042", "statusCode": "AC", "occurredAt": "2024-07-02T16:00:00Z"})).await;

    // /shipments: three labels, one voided with its date, items only on request.
    let shipments = sb.get(&format!("/shipments?orderId={id}&includeShipmentItems=true")).await;
    assert_eq!(shipments["total"], json!(3));
    let list = shipments["shipments"].as_array().unwrap();
    let live: Vec<&Value> = list.iter().filter(|s| s["voided"] == json!(false)).collect();
    assert_eq!(live.len(), 2);
    let void = list.iter().find(|s| s["voided"] == json!(true)).unwrap();
    assert!(void["voidDate"].is_string());
    let shipped_qty: i64 = live.iter().flat_map(|s| s["shipmentItems"].as_array().unwrap()).map(|i| i["quantity"].as_i64().unwrap()).sum();
    assert_eq!(shipped_qty, 3, "two mugs and one tea, once each");
    assert!(sb.get(&format!("/shipments?orderId={id}")).await["shipments"][0]["shipmentItems"].is_null());
    let voids = sb.get("/shipments?voidDateStart=2000-01-01%2000:00:00").await;
    assert_eq!(voids["total"], json!(1));

    // v2: the label ids are the v1 shipment ids, the cost carries its currency.
    let first_label = first["labelId"].as_str().unwrap();
    assert_eq!(first_label, format!("se-{}", first["shipment"]["shipmentId"]));
    let (status, label) = sb.v2_get(&format!("/v2/labels/{first_label}")).await;
    assert_eq!(status, 200);
    assert_eq!(label["shipment_cost"], json!({"currency": "usd", "amount": 7.25}));
    assert_eq!(label["tracking_status"], json!("delivered"));
    let (_, track) = sb.v2_get(&format!("/v2/labels/{first_label}/track")).await;
    assert_eq!(track["status_code"], json!("DE"));
    assert_eq!(track["events"].as_array().unwrap().len(), 4);
    let (_, voided_label) = sb.v2_get(&format!("/v2/labels/se-{second_id}")).await;
    assert_eq!(voided_label["status"], json!("voided"));
    let (_, by_number) = sb.v2_get("/v2/tracking?carrier_code=fedex&tracking_number=794600000042").await;
    assert_eq!(by_number["status_code"], json!("AC"));
    assert_eq!(by_number["events"][0]["occurred_at"], json!("2024-07-02T16:00:00.000Z"));

    // The stats agree.
    let stats = sb.stats().await;
    assert_eq!(stats["shipments"], json!(3));
    assert_eq!(stats["shipments_voided"], json!(1));
    assert_eq!(stats["tracking_events"], json!(5));

    // The receiver: SHIP_NOTIFY and ITEM_SHIP_NOTIFY per label, each resource URL
    // answering exactly that label; one signed track webhook per scan.
    sb.flush().await;
    let bodies = receiver.bodies();
    let ship: Vec<&Value> = bodies.iter().filter(|b| b["resource_type"] == "SHIP_NOTIFY").collect();
    assert_eq!(ship.len(), 3);
    let item_ship: Vec<&Value> = bodies.iter().filter(|b| b["resource_type"] == "ITEM_SHIP_NOTIFY").collect();
    assert_eq!(item_ship.len(), 3);
    let mut fetched = Vec::new();
    for hook in &item_ship {
        let url = hook["resource_url"].as_str().unwrap();
        assert!(url.starts_with(&sb.base), "{url}");
        let page: Value = sb.http.get(url).basic_auth(&sb.key, Some(&sb.secret)).send().await.unwrap().json().await.unwrap();
        assert_eq!(page["total"], json!(1));
        assert!(page["shipments"][0]["shipmentItems"].is_array());
        fetched.push(page["shipments"][0]["shipmentId"].as_i64().unwrap());
    }
    fetched.sort();
    let mut all_ids: Vec<i64> = list.iter().map(|s| s["shipmentId"].as_i64().unwrap()).collect();
    all_ids.sort();
    assert_eq!(fetched, all_ids);
    let tracks: Vec<&Value> = bodies.iter().filter(|b| b["resource_type"] == "API_TRACK").collect();
    assert_eq!(tracks.len(), 5);
    assert_eq!(tracks.last().unwrap()["data"]["tracking_number"], json!("794600000042"));
}

#[tokio::test]
async fn a_label_cannot_take_more_than_is_left_on_a_line() {
    let sb = TestSandbox::start().await;
    let id = sb.order(order_body("9101", "k-9101")).await["orderId"].as_i64().unwrap();
    let (status, err) = sb.control(&format!("/orders/{id}/labels"), json!({"items": [{"lineItemKey": "L1", "quantity": 3}]})).await;
    assert_eq!(status, 400);
    assert!(err["error"].as_str().unwrap().contains("L1"), "{err}");
    let (status, _) = sb.control(&format!("/orders/{id}/labels"), json!({"items": [{"lineItemKey": "L1", "quantity": 1}]})).await;
    assert_eq!(status, 200);
    let (status, _) = sb.control(&format!("/orders/{id}/labels"), json!({"items": [{"lineItemKey": "L1", "quantity": 1}]})).await;
    assert_eq!(status, 200);
    let (status, _) = sb.control(&format!("/orders/{id}/labels"), json!({"items": [{"lineItemKey": "L1", "quantity": 1}]})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_order_marked_shipped_elsewhere_is_a_fulfillment_and_not_a_shipment() {
    let sb = TestSandbox::start().await;
    let receiver = Receiver::start().await;
    sb.post("/webhooks/subscribe", json!({"target_url": receiver.url, "event": "FULFILLMENT_SHIPPED"})).await;
    let id = sb.order(order_body("9201", "k-9201")).await["orderId"].as_i64().unwrap();
    let (status, r) = sb
        .post("/orders/markasshipped", json!({"orderId": id, "carrierCode": "usps", "trackingNumber": "9400111", "shipDate": "2024-07-03"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["orderNumber"], json!("9201"));
    let other = sb.order(order_body("9202", "k-9202")).await["orderId"].as_i64().unwrap();
    let (status, _) = sb.control(&format!("/orders/{other}/mark-shipped"), json!({"carrierCode": "DHL", "trackingNumber": "JD0001"})).await;
    assert_eq!(status, 200);
    assert_eq!(sb.get("/shipments").await["total"], json!(0));
    let f = sb.get("/fulfillments").await;
    assert_eq!(f["total"], json!(2));
    assert_eq!(f["fulfillments"][0]["trackingNumber"], json!("9400111"));
    assert_eq!(f["fulfillments"][0]["shipDate"], json!("2024-07-03"));
    assert_eq!(sb.get(&format!("/orders/{id}")).await["orderStatus"], json!("shipped"));
    sb.flush().await;
    let hooks = receiver.bodies();
    assert_eq!(hooks.len(), 2);
    let url = hooks[0]["resource_url"].as_str().unwrap();
    let page: Value = sb.http.get(url).basic_auth(&sb.key, Some(&sb.secret)).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["total"], json!(1));
}

#[tokio::test]
async fn the_simulated_warehouse_labels_splits_and_the_carrier_scans_on_the_virtual_clock() {
    let sb = TestSandbox::start().await;
    let (status, _) = sb
        .put_control("/simulation", json!({
            "enabled": true, "label_delay_secs": [60, 600], "split_share": 1.0, "void_share": 0.3,
            "void_delay_secs": [60, 120], "scan_share": 0.7, "scan_delay_secs": [600, 1200],
            "deliver_delay_secs": [3600, 7200]
        }))
        .await;
    assert_eq!(status, 200);
    for n in 0..12 {
        sb.order(order_body(&format!("S{n}"), &format!("s{n}"))).await;
    }
    for _ in 0..60 {
        sb.control("/clock/advance", json!({"seconds": 600})).await;
    }
    let stats = sb.stats().await;
    assert_eq!(stats["orders_by_status"]["shipped"], json!(12), "{stats}");
    let shipments = sb.get("/shipments?pageSize=500").await;
    let list = shipments["shipments"].as_array().unwrap();
    let live: Vec<&Value> = list.iter().filter(|s| s["voided"] == json!(false)).collect();
    let shipped_units: i64 = live
        .iter()
        .flat_map(|s| s["shipmentItems"].as_array().cloned().unwrap_or_default())
        .map(|i| i["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(shipped_units, 0, "items are listed only on request");
    let with_items = sb.get("/shipments?pageSize=500&includeShipmentItems=true").await;
    let shipped_units: i64 = with_items["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["voided"] == json!(false))
        .flat_map(|s| s["shipmentItems"].as_array().cloned().unwrap())
        .map(|i| i["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(shipped_units, 12 * 3, "live labels cover every unit exactly once");
    let live = live.len();
    assert!(live > 12, "two-line orders went out in more than one parcel: {live} live labels");
    assert!(list.len() > live, "some labels were voided and re-made");
    let (_, labels) = sb.v2_get("/v2/labels?page_size=500").await;
    let tracked = labels["labels"].as_array().unwrap().iter().filter(|l| l["tracking_status"] != json!("unknown")).count();
    assert!(tracked > 0 && tracked < live, "some parcels were scanned, some never: {tracked} of {live}");
}

#[tokio::test]
async fn getrates_and_createlabel_refuse_what_shipstation_requires_and_name_the_field() {
    let sb = TestSandbox::start().await;
    let rate = json!({"carrierCode": "ups", "fromPostalCode": "78701", "toCountry": "US", "toPostalCode": "78756",
                      "weight": {"value": 16, "units": "ounces"}});
    let (status, body) = sb.post("/shipments/getrates", rate.clone()).await;
    assert_eq!(status, 400, "UPS needs toState: {body}");
    assert!(body["ModelState"]["rateOptions.toState"].is_array(), "{body}");
    let mut no_weight = rate.clone();
    no_weight["toState"] = json!("TX");
    no_weight["weight"] = json!({"value": 0, "units": "ounces"});
    let (status, body) = sb.post("/shipments/getrates", no_weight).await;
    assert_eq!(status, 400);
    assert!(body["ModelState"]["rateOptions.weight"].is_array(), "{body}");
    let mut other_service = rate.clone();
    other_service["toState"] = json!("TX");
    other_service["serviceCode"] = json!("fedex_ground");
    let (status, body) = sb.post("/shipments/getrates", other_service).await;
    assert_eq!(status, 400);
    assert!(body["Message"].as_str().unwrap().contains("fedex_ground"), "{body}");
    // A gram weight is priced by its ounces: 1000 g is 35.27 oz, three started pounds.
    let mut grams = rate.clone();
    grams["toState"] = json!("TX");
    grams["serviceCode"] = json!("ups_ground");
    grams["weight"] = json!({"value": 1000, "units": "grams"});
    let (status, rates) = sb.post("/shipments/getrates", grams).await;
    assert_eq!(status, 200, "{rates}");
    assert_eq!(rates, json!([{"serviceName": "UPS® Ground", "serviceCode": "ups_ground", "shipmentCost": 7, "otherCost": 0.28}]));

    let (status, body) = sb
        .post("/shipments/createlabel", json!({"carrierCode": "ups", "serviceCode": "ups_ground", "packageCode": "package",
                                                "shipDate": "2024-03-04", "weight": {"value": 3, "units": "pounds"},
                                                "shipTo": {"name": "A", "country": "US"}}))
        .await;
    assert_eq!(status, 400, "shipFrom is required: {body}");
    assert!(body["ModelState"]["shipmentOptions.shipFrom"].is_array(), "{body}");
    assert_eq!(sb.get("/shipments").await["total"], json!(0), "a refused label leaves nothing behind");
}

#[tokio::test]
async fn a_label_without_an_order_is_tracked_and_voided_like_any_other() {
    let sb = TestSandbox::start().await;
    let address = json!({"name": "A", "street1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"});
    let (status, label) = sb
        .post("/shipments/createlabel", json!({"carrierCode": "stamps_com", "serviceCode": "usps_priority_mail",
                                                "packageCode": "package", "shipDate": "2024-03-04",
                                                "weight": {"value": 20, "units": "ounces"},
                                                "shipFrom": address, "shipTo": address}))
        .await;
    assert_eq!(status, 200, "{label}");
    let tracking = label["trackingNumber"].as_str().unwrap().to_string();
    let (status, track) = sb.v2_get(&format!("/v2/labels/se-{}/track", label["shipmentId"])).await;
    assert_eq!(status, 200, "{track}");
    assert_eq!(track["tracking_number"], json!(tracking));
    let (status, voided) = sb.post("/shipments/voidlabel", json!({"shipmentId": label["shipmentId"]})).await;
    assert_eq!((status, voided["approved"].clone()), (200, json!(true)), "{voided}");
    let listed = sb.get(&format!("/shipments?trackingNumber={tracking}")).await;
    assert_eq!(listed["shipments"][0]["voided"], json!(true), "{listed}");
    assert_eq!(listed["shipments"][0]["orderId"], Value::Null);
}

#[tokio::test]
async fn a_warehouse_switched_on_over_a_backlog_labels_every_waiting_order_once_within_the_label_window() {
    let sb = TestSandbox::start().await;
    for n in 0..30 {
        sb.order(order_body(&format!("B{n}"), &format!("b{n}"))).await;
    }
    let switched_on = sb.handle.clock().now();
    sb.handle
        .set_simulation(shipledger_sandbox::SimulationConfig {
            enabled: true,
            label_delay_secs: [0, 600],
            split_share: 0.0,
            void_share: 0.0,
            scan_share: 0.0,
            ..Default::default()
        })
        .unwrap();
    // The warehouse plans the backlog on its next pass (run at once by a zero advance).
    sb.control("/clock/advance", json!({"seconds": 0})).await;
    // Half the window: some labelled, not all.
    sb.control("/clock/advance", json!({"seconds": 300})).await;
    let halfway = sb.handle.read_world(|w| w.shipments.len());
    assert!(halfway > 0 && halfway < 30, "labels spread over the window: {halfway} of 30 at half time");
    sb.control("/clock/advance", json!({"seconds": 301})).await;
    let (labels, orders_labelled, latest) = sb.handle.read_world(|w| {
        let orders: std::collections::BTreeSet<Option<i64>> = w.shipments.values().map(|s| s.order_id).collect();
        (w.shipments.len(), orders.len(), w.shipments.values().map(|s| s.create_date).max())
    });
    assert_eq!((labels, orders_labelled), (30, 30), "one label per waiting order");
    let latest = latest.unwrap();
    // Real time passes too while the test runs: allow it, but not a second window.
    assert!(latest.duration_since(switched_on) <= jiff::SignedDuration::from_secs(600 + 60), "last label at {latest}, window from {switched_on}");
}
