//! The sandbox ERP's rules over HTTP, and the traffic plan that feeds it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig, SandboxErpHandle};
use shipledger_sandbox::traffic::{Expected, OrderKind, Traffic, TrafficConfig, TrafficShares};

const KEY: &str = "erp-test-key";

struct TestErp {
    handle: SandboxErpHandle,
    http: reqwest::Client,
    base: String,
}

impl TestErp {
    async fn start() -> TestErp {
        TestErp::with(SandboxErpConfig { api_key: KEY.into(), ..Default::default() }).await
    }

    async fn with(config: SandboxErpConfig) -> TestErp {
        let handle = SandboxErp::start(config, "127.0.0.1:0".parse().unwrap()).await.expect("the sandbox ERP starts");
        let base = handle.base_url();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        TestErp { handle, http, base }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>, auth: bool) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if auth {
            req = req.bearer_auth(KEY);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn api_get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, true).await
    }

    async fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), true).await
    }

    async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.send(method.clone(), path, body, false).await;
        assert!(status < 300, "{method} {path}: {status} {v}");
        v
    }

    async fn add_products(&self) {
        self.control(
            reqwest::Method::POST,
            "/_sandbox/products",
            Some(json!({"products": [
                {"sku": "MUG", "name": "Mug", "weight": 350, "on_hand": 10},
                {"sku": "TEA", "name": "Tea", "weight": "0.125", "weight_uom": "kg", "on_hand": 50},
                {"sku": "SACHET", "name": "Sample sachet", "weight": 0, "on_hand": 100},
            ]})),
        )
        .await;
    }

    /// A GBP order for `qty` mugs, captured; answers its id.
    async fn order(&self, qty: u32) -> String {
        let v = self.control(reqwest::Method::POST, "/_sandbox/orders", Some(order_body(qty))).await;
        v["order"]["id"].as_str().unwrap().to_string()
    }

    async fn stock(&self, sku: &str) -> (i64, i64) {
        let (s, v) = self.api_get(&format!("/api/stock/{sku}")).await;
        assert_eq!(s, 200, "{v}");
        (v["on_hand"].as_i64().unwrap(), v["reserved"].as_i64().unwrap())
    }
}

fn order_body(qty: u32) -> Value {
    json!({
        "currency": "GBP",
        "ship_to": {"name": "Ada Lovelace", "street1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
        "lines": [
            {"sku": "MUG", "name": "Mug", "quantity": qty, "unit_price": "12.50"},
            {"name": "Discount", "quantity": 1, "unit_price": -1, "physical": false}
        ],
        "shipping": 3.95,
        "payment": {"state": "captured"}
    })
}

fn ids(page: &Value) -> Vec<String> {
    page["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_erp_api_turns_away_a_caller_without_the_bearer_key() {
    let erp = TestErp::start().await;
    let (status, v) = erp.send(reqwest::Method::GET, "/api/company", None, false).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = erp.http.get(format!("{}/api/company", erp.base)).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, v) = erp.api_get("/api/company").await;
    assert_eq!((status, v["base_currency"].as_str()), (200, Some("GBP")));
    // The control API is open, like the ShipStation sandbox's.
    let stats = erp.control(reqwest::Method::GET, "/_sandbox/stats", None).await;
    assert_eq!(stats["unauthorized"], 2);
}

#[tokio::test]
async fn the_change_feed_reads_strictly_after_its_cursor_even_when_orders_share_a_millisecond() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    let bulk: Vec<Value> = (1..=5).map(order_body).collect();
    let v = erp.control(reqwest::Method::POST, "/_sandbox/orders/bulk", Some(json!({"orders": bulk}))).await;
    let created: Vec<&Value> = v["orders"].as_array().unwrap().iter().map(|o| &o["order"]).collect();
    let stamp = created[0]["updated_at_ms"].as_i64().unwrap();
    assert!(created.iter().all(|o| o["updated_at_ms"].as_i64() == Some(stamp)), "a bulk import shares one millisecond");

    // Two at a time, each page strictly after the last one's (updated_at, id).
    let mut seen = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let path = match &cursor {
            None => "/api/orders?limit=2".to_string(),
            Some((ms, id)) => format!("/api/orders?updated_after_ms={ms}&after_id={id}&limit=2"),
        };
        let (status, page) = erp.api_get(&path).await;
        assert_eq!(status, 200, "{page}");
        let page_ids = ids(&page);
        if page_ids.is_empty() {
            assert!(page["next"].is_null());
            break;
        }
        seen.extend(page_ids);
        cursor = Some((page["next"]["updated_after_ms"].as_i64().unwrap(), page["next"]["after_id"].as_str().unwrap().to_string()));
    }
    let expected: Vec<String> = created.iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(seen, expected, "each order once, in (updated_at, id) order");

    // The cursor is strict: sitting on the third order gives the fourth and fifth.
    let (_, page) = erp.api_get(&format!("/api/orders?updated_after_ms={stamp}&after_id={}", expected[2])).await;
    assert_eq!(ids(&page), expected[3..].to_vec());

    // A change to the first order moves it to the end of the feed, after every cursor handed out.
    erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{}/touch", expected[0]), None).await;
    let (_, page) = erp.api_get(&format!("/api/orders?updated_after_ms={stamp}&after_id={}", expected[4])).await;
    assert_eq!(ids(&page), vec![expected[0].clone()]);

    let (status, v) = erp.api_get("/api/orders?limit=0").await;
    assert_eq!(status, 400, "{v}");
}

#[tokio::test]
async fn completing_a_completed_fulfilment_is_refused_and_packing_again_returns_the_same_document() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    let id = erp.order(2).await;
    let (_, order) = erp.api_get(&format!("/api/orders/{id}")).await;
    let line = order["lines"][0]["id"].as_str().unwrap().to_string();
    let packed = json!({
        "key": "ful:1", "state": "packed", "lines": [{"line_id": line, "quantity": 2}],
        "packages": [{"carrier": "royal_mail", "service": "tracked_48", "tracking_number": "RM123GB", "ship_date": "2025-06-30", "cost": {"amount": "3.20", "currency": "GBP"}}]
    });
    let path = format!("/api/orders/{id}/fulfilments");
    let (status, first) = erp.api_post(&path, packed.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["state"], "packed");
    let (status, again) = erp.api_post(&path, packed.clone()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "the same key and state is the same document");

    let mut completed = packed.clone();
    completed["state"] = json!("completed");
    let (status, done) = erp.api_post(&path, completed.clone()).await;
    assert_eq!((status, done["state"].as_str()), (200, Some("completed")), "{done}");
    assert_eq!(done["id"], first["id"]);

    let (status, refused) = erp.api_post(&path, completed).await;
    assert_eq!(status, 409);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("already completed") && message.contains(first["id"].as_str().unwrap()), "{message}");
    let (status, refused) = erp.api_post(&path, packed).await;
    assert_eq!(status, 409, "a completed fulfilment never moves back: {refused}");

    let (_, list) = erp.api_get(&path).await;
    assert_eq!(list["fulfilments"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_fulfilment_beyond_the_order_line_or_on_a_cancelled_order_is_refused() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    let id = erp.order(2).await;
    let line = format!("SOL-{}-1", id.trim_start_matches("SO-"));
    let path = format!("/api/orders/{id}/fulfilments");
    let (status, v) = erp.api_post(&path, json!({"key": "a", "state": "packed", "lines": [{"line_id": line, "quantity": 1}]})).await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = erp.api_post(&path, json!({"key": "b", "state": "packed", "lines": [{"line_id": line, "quantity": 2}]})).await;
    assert_eq!(status, 422);
    assert!(v["error"]["message"].as_str().unwrap().contains("beyond the order line"), "{v}");
    let (status, _) = erp.api_post(&path, json!({"key": "c", "state": "packed", "lines": [{"line_id": "nope", "quantity": 1}]})).await;
    assert_eq!(status, 422);

    // Cancelling cancels the packed fulfilment with it; nothing more may be fulfilled.
    erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/cancel"), None).await;
    let (_, list) = erp.api_get(&path).await;
    assert_eq!(list["fulfilments"][0]["state"], "cancelled");
    let (status, v) = erp.api_post(&path, json!({"key": "d", "state": "packed", "lines": [{"line_id": line, "quantity": 1}]})).await;
    assert_eq!(status, 409);
    assert!(v["error"]["message"].as_str().unwrap().contains("cancelled"), "{v}");
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    let id = erp.order(1).await;
    let line = format!("SOL-{}-1", id.trim_start_matches("SO-"));
    let (status, _) = erp
        .api_post(&format!("/api/orders/{id}/fulfilments"), json!({"key": "k", "state": "completed", "lines": [{"line_id": line, "quantity": 1}]}))
        .await;
    assert_eq!(status, 201);
    let (status, v) = erp.send(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/cancel"), None, false).await;
    assert_eq!(status, 409);
    assert!(v["error"]["message"].as_str().unwrap().contains("has shipped"), "{v}");
}

#[tokio::test]
async fn an_unbalanced_journal_is_refused_with_its_totals_and_a_balanced_one_posts_once() {
    let erp = TestErp::start().await;
    let gbp = |a: &str| json!({"amount": a, "currency": "GBP"});
    let unbalanced = json!({
        "key": "costs:2025-06-30", "date": "2025-06-30", "memo": "Shipping costs",
        "lines": [
            {"account": "5100 Carriage", "debit": gbp("10.00"), "credit": gbp("0"), "original": {"amount": "12.66", "currency": "USD"}},
            {"account": "2100 Accrued carriage", "debit": gbp("0"), "credit": gbp("9.50")}
        ]
    });
    let (status, v) = erp.api_post("/api/journals", unbalanced.clone()).await;
    assert_eq!(status, 422);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not balance") && message.contains("10.00 GBP") && message.contains("9.50 GBP"), "{message}");

    let mut balanced = unbalanced.clone();
    balanced["lines"][1]["credit"] = gbp("10.00");
    let (status, first) = erp.api_post("/api/journals", balanced.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("JNL-"));
    assert_eq!(first["posted"], true);
    let (status, again) = erp.api_post("/api/journals", balanced).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "the same key is the same journal");
    let (status, read) = erp.api_get(&format!("/api/journals/{}", first["id"].as_str().unwrap())).await;
    assert_eq!((status, &read["lines"][0]["original"]["currency"]), (200, &json!("USD")));

    let mut foreign = unbalanced;
    foreign["key"] = json!("other");
    foreign["lines"][1]["credit"] = json!({"amount": "10.00", "currency": "USD"});
    let (status, v) = erp.api_post("/api/journals", foreign).await;
    assert_eq!(status, 422);
    assert!(v["error"]["message"].as_str().unwrap().contains("base currency GBP"), "{v}");
    assert_eq!(erp.handle.stats()["journals"], 1);
}

#[tokio::test]
async fn stock_is_reserved_by_orders_released_on_cancel_and_taken_off_hand_when_shipped() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    assert_eq!(erp.stock("MUG").await, (10, 0));
    let first = erp.order(3).await;
    let second = erp.order(2).await;
    assert_eq!(erp.stock("MUG").await, (10, 5));

    erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{second}/cancel"), None).await;
    assert_eq!(erp.stock("MUG").await, (10, 3), "a cancelled order releases its reservation");

    let line = format!("SOL-{}-1", first.trim_start_matches("SO-"));
    let path = format!("/api/orders/{first}/fulfilments");
    erp.api_post(&path, json!({"key": "p", "state": "packed", "lines": [{"line_id": line, "quantity": 2}]})).await;
    assert_eq!(erp.stock("MUG").await, (10, 3), "packing keeps the reservation");
    let (status, _) = erp.api_post(&path, json!({"key": "p", "state": "completed"})).await;
    assert_eq!(status, 200);
    assert_eq!(erp.stock("MUG").await, (8, 1), "shipping takes the goods and their reservation off hand");

    let adjust = json!({"key": "count:1", "sku": "MUG", "delta": 5, "reason": "stock count"});
    let (status, v) = erp.api_post("/api/stock/adjustments", adjust.clone()).await;
    assert_eq!((status, &v["stock"]["on_hand"]), (201, &json!(13)));
    let (status, v) = erp.api_post("/api/stock/adjustments", adjust).await;
    assert_eq!((status, &v["stock"]["on_hand"]), (200, &json!(13)), "one adjustment per key");
    let (status, v) = erp.api_post("/api/stock/adjustments", json!({"key": "count:2", "sku": "MUG", "delta": -100, "reason": "oops"})).await;
    assert_eq!(status, 422, "{v}");
    let (status, _) = erp.api_get("/api/stock/NOPE").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_rate_on_a_weekend_is_fridays_and_a_date_before_the_table_has_none() {
    let erp = TestErp::start().await;
    for (rate, date) in [("0.61", "2001-03-02"), ("0.62", "2001-03-05")] {
        erp.control(reqwest::Method::POST, "/_sandbox/fx", Some(json!({"currency": "USD", "rate": rate, "date": date}))).await;
    }
    let (status, v) = erp.api_get("/api/fx?from=USD&to=GBP&date=2001-03-04").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["rate"].to_string().as_str(), v["date"].as_str()), ("0.61", Some("2001-03-02")));
    let (_, v) = erp.api_get("/api/fx?from=USD&to=GBP&date=2001-03-05").await;
    assert_eq!(v["rate"].to_string(), "0.62");
    let (_, v) = erp.api_get("/api/fx?from=GBP&to=USD&date=2001-03-04").await;
    assert_eq!(v["rate"].to_string(), "1.6393442623", "the inverse, to ten places");

    let (status, v) = erp.api_get("/api/fx?from=USD&to=GBP&date=2001-03-01").await;
    assert_eq!((status, v["error"]["code"].as_str()), (404, Some("no_rate")));
    // The seeded table covers recent weekdays for USD and EUR.
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let (status, v) = erp.api_get(&format!("/api/fx?from=EUR&to=USD&date={today}")).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["source"].as_str().unwrap().contains("cross"), "{v}");
}

#[tokio::test]
async fn the_payment_state_moves_forward_and_every_change_bumps_the_order() {
    let erp = TestErp::start().await;
    erp.add_products().await;
    let mut body = order_body(1);
    body["payment"] = json!({"state": "authorised", "method": "card"});
    let v = erp.control(reqwest::Method::POST, "/_sandbox/orders", Some(body)).await;
    let id = v["order"]["id"].as_str().unwrap().to_string();
    let before = v["order"]["updated_at_ms"].as_i64().unwrap();
    assert_eq!(v["order"]["payments"][0]["state"], "authorised");
    assert_eq!(v["order"]["payments"][0]["amount"].to_string(), "15.45", "the order total: 12.50 - 1 + 3.95");

    erp.control(reqwest::Method::POST, "/_sandbox/clock/advance", Some(json!({"seconds": 3600}))).await;
    let v = erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/payment"), Some(json!({"state": "captured"}))).await;
    let pay = &v["order"]["payments"][0];
    assert_eq!(pay["state"], "captured");
    assert!(pay["captured_at"].is_string());
    assert!(v["order"]["updated_at_ms"].as_i64().unwrap() >= before + 3_600_000, "the virtual clock stamps the change");

    let (status, _) = erp.send(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/payment"), Some(json!({"state": "authorised"})), false).await;
    assert_eq!(status, 409, "a capture does not go back to an authorisation");

    let v = erp
        .control(reqwest::Method::PUT, &format!("/_sandbox/orders/{id}/ship-to"), Some(json!({"name": "Ada", "street1": "1 New Rd", "city": "Bath", "postal_code": "BA1 1AA", "country": "GB"})))
        .await;
    assert_eq!(v["order"]["ship_to"]["city"], "Bath");
    let v = erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/hold"), Some(json!({"reason": "fraud review"}))).await;
    assert_eq!((v["order"]["status"].as_str(), v["order"]["hold_reason"].as_str()), (Some("on_hold"), Some("fraud review")));
    let v = erp.control(reqwest::Method::POST, &format!("/_sandbox/orders/{id}/release"), None).await;
    assert_eq!(v["order"]["status"], "open");
    let line = v["order"]["lines"][0]["id"].as_str().unwrap().to_string();
    let v = erp.control(reqwest::Method::PATCH, &format!("/_sandbox/orders/{id}/lines/{line}"), Some(json!({"quantity": 4, "weight": 0}))).await;
    assert_eq!((v["order"]["lines"][0]["quantity"].as_u64(), v["order"]["total"].to_string().as_str()), (Some(4), "52.95"));
    assert_eq!(erp.stock("MUG").await.1, 4);
}

#[tokio::test]
async fn the_state_file_keeps_the_erp_across_a_restart() {
    let path = std::env::temp_dir().join(format!("shipledger-erp-state-{}-{}.json", std::process::id(), Timestamp::now().as_nanosecond()));
    let config = SandboxErpConfig { api_key: KEY.into(), state_path: Some(path.clone()), ..Default::default() };
    let erp = TestErp::with(config.clone()).await;
    erp.add_products().await;
    let id = erp.order(2).await;
    erp.handle.shutdown().await;

    let erp = TestErp::with(config).await;
    let (status, v) = erp.api_get(&format!("/api/orders/{id}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(erp.stock("MUG").await, (10, 2));
    let next = erp.order(1).await;
    assert_ne!(next, id, "ids continue after a restart");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_injected_fault_answers_503_then_the_erp_recovers() {
    let erp = TestErp::start().await;
    erp.control(reqwest::Method::PUT, "/_sandbox/faults", Some(json!({"fail_next": 1}))).await;
    let (status, _) = erp.api_get("/api/company").await;
    assert_eq!(status, 503);
    let (status, _) = erp.api_get("/api/company").await;
    assert_eq!(status, 200);
}

// ----- traffic ------------------------------------------------------------------

#[test]
fn the_traffic_plan_is_the_same_for_a_seed_and_shares_its_bad_orders_as_configured() {
    let config = TrafficConfig { orders: 1000, seed: 42, ..Default::default() };
    let a = Traffic::plan(config.clone());
    let b = Traffic::plan(config.clone());
    assert_eq!(a, b, "deterministic for a seed");
    assert_ne!(Traffic::plan(TrafficConfig { seed: 43, ..config.clone() }).orders, a.orders);

    let summary = a.summary();
    assert_eq!(summary.generated, 1000);
    let shares = TrafficShares::default();
    for (kind, share) in [
        ("unpaid", shares.unpaid),
        ("authorised_only", shares.authorised_only),
        ("captured_later", shares.captured_later),
        ("zero_weight", shares.zero_weight),
        ("unknown_sku", shares.unknown_sku),
        ("incomplete_address", shares.incomplete_address),
        ("duplicate", shares.duplicate),
        ("later_cancellation", shares.later_cancellation),
        ("ship_to_correction", shares.ship_to_correction),
    ] {
        let n = summary.by_kind.get(kind).copied().unwrap_or(0) as f64;
        assert!((n / 1000.0 - share).abs() < 0.005, "{kind}: {n} of 1000, configured {share}");
    }
    assert_eq!(summary.by_expected["held:unpaid"], 100);
    assert_eq!(summary.by_expected["cancelled"], 40);
    assert_eq!(summary.later_actions["capture"], 30);

    // Realistic: several countries and currencies, HK without postcodes, multi-line,
    // multi-quantity and discount lines.
    let countries: BTreeSet<String> = a.orders.iter().filter_map(|o| o.order.ship_to.country.clone()).collect();
    assert!(["GB", "US", "IE", "DE", "FR", "NL", "HK"].iter().all(|c| countries.contains(*c)), "{countries:?}");
    let currencies: BTreeSet<&str> = a.orders.iter().map(|o| o.order.currency.as_str()).collect();
    assert_eq!(currencies, BTreeSet::from(["EUR", "GBP", "USD"]));
    assert!(a.orders.iter().filter(|o| o.order.ship_to.country.as_deref() == Some("HK")).all(|o| o.order.ship_to.postal_code.is_none()));
    assert!(a.orders.iter().any(|o| o.order.lines.len() == 4));
    assert!(a.orders.iter().any(|o| o.order.lines.iter().any(|l| l.quantity > 1)));
    assert!(a.orders.iter().any(|o| o.order.lines.iter().any(|l| !l.physical)));
    // Later actions come after their order's creation, and the plan reads in time order.
    for w in a.actions.windows(2) {
        assert!(w[0].at <= w[1].at);
    }
    for o in &a.orders {
        assert!(a.actions.iter().filter(|x| x.reference == o.reference).all(|x| x.at >= o.at));
        assert_eq!(o.expected, o.kinds[0].expected());
    }
}

#[tokio::test]
async fn played_traffic_lands_in_the_erp_with_its_catalogue_duplicates_and_later_actions() {
    let erp = TestErp::start().await;
    let shares = TrafficShares { duplicate: 0.1, later_cancellation: 0.1, captured_later: 0.1, ..Default::default() };
    let plan = Traffic::plan(TrafficConfig { orders: 60, seed: 7, shares, ..Default::default() });
    let applied = plan.apply(&erp.base).await.unwrap();
    assert_eq!(applied.len(), plan.actions.len());
    assert!(applied.iter().all(|a| a.outcome == "ok"), "{applied:?}");

    let stats = erp.handle.stats();
    let summary = plan.summary();
    assert_eq!(stats["orders"], 60, "a re-sent order is the same order: {stats}");
    assert_eq!(stats["products"], 30);
    assert_eq!(stats["duplicates_received"], summary.by_kind["duplicate"]);
    assert_eq!(stats["orders_by_status"]["cancelled"], summary.by_kind["later_cancellation"]);

    // Captured-later orders end captured; authorised-only ones stay authorised.
    let world = erp.handle.snapshot();
    let by_ref: BTreeMap<&str, _> = world.orders.values().map(|o| (o.external_ref.as_deref().unwrap(), o)).collect();
    for o in &plan.orders {
        let erp_order = by_ref[o.reference.as_str()];
        let pay = erp_order.payments.last().map(|p| p.state.as_str()).unwrap_or("none");
        match o.kinds[0] {
            OrderKind::CapturedLater => assert_eq!(pay, "captured"),
            OrderKind::AuthorisedOnly => assert_eq!(pay, "authorised"),
            OrderKind::Good => assert_eq!(pay, "captured"),
            _ => {}
        }
        if o.expected == Expected::Cancelled {
            assert_eq!(erp_order.status.as_str(), "cancelled");
        }
        assert!(erp_order.payments.len() <= 1, "a re-send opens no second payment");
    }
}

#[tokio::test]
async fn a_paced_feeder_plays_only_what_is_due_by_the_clock() {
    let erp = TestErp::start().await;
    let plan = Traffic::plan(TrafficConfig { orders: 40, seed: 3, spread: SignedDuration::from_mins(30), ..Default::default() });
    let start = erp.handle.clock().now();
    let mut feeder = plan.feeder(&erp.base, start);
    let halfway = start + SignedDuration::from_mins(15);
    let first = feeder.step(halfway).await.unwrap();
    let due = plan.actions.iter().filter(|a| a.at <= SignedDuration::from_mins(15)).count();
    assert_eq!(first.len(), due);
    assert!(!feeder.is_done());
    assert!(feeder.next_due().unwrap() > halfway);
    let rest = feeder.step(start + plan.duration()).await.unwrap();
    assert_eq!(first.len() + rest.len(), plan.actions.len());
    assert!(feeder.is_done());
    assert_eq!(erp.handle.stats()["orders"], 40);
}
