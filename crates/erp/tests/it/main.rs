//! The sandbox ERP connector against a running sandbox ERP: the five operations as
//! shipledger uses them, the ERP's refusals, and the traffic the demo plays.

mod tryton;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::civil::date;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shipledger_core::money::{Currency, Money};
use shipledger_core::order::{ErpOrder, ErpOrderStatus, PaymentState};
use shipledger_core::release::{GatePolicy, Verdict, check};
use shipledger_core::weight::Weight;
use shipledger_erp::sandbox::SandboxErpClient;
use shipledger_erp::{
    Cursor, Erp, ErpError, FulfilmentState, FulfilmentWrite, JournalLine, JournalWrite, Package, StockAdjustment,
};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig, SandboxErpHandle};
use shipledger_sandbox::traffic::{Expected, OrderKind, Traffic, TrafficConfig, TrafficPlan};

const KEY: &str = "connector-test-key";

struct Setup {
    erp: SandboxErpHandle,
    client: SandboxErpClient,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    let erp = SandboxErp::start(SandboxErpConfig { api_key: KEY.into(), ..Default::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the sandbox ERP starts");
    let client = SandboxErpClient::new(&erp.base_url(), KEY).unwrap();
    Setup { erp, client, http: reqwest::Client::new() }
}

impl Setup {
    async fn control(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let r = self.http.request(method, format!("{}{path}", self.erp.base_url())).json(&body).send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn play(&self, orders: usize, seed: u64) -> TrafficPlan {
        let plan = Traffic::plan(TrafficConfig { orders, seed, ..Default::default() });
        plan.apply(&self.erp.base_url()).await.expect("the plan plays");
        plan
    }

    async fn all_orders(&self) -> Vec<ErpOrder> {
        let mut out = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = self.client.changed_orders(cursor.as_ref(), 100).await.unwrap();
            let Some(last) = page.last() else { return out };
            cursor = Some(Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() });
            out.extend(page);
        }
    }

    /// A captured GBP order for two mugs (known product, 350 g); answers it.
    async fn mug_order(&self, payment: Value) -> ErpOrder {
        self.control(
            reqwest::Method::POST,
            "/_sandbox/products",
            json!({"products": [{"sku": "MUG", "name": "Mug", "weight": 350, "on_hand": 20}]}),
        )
        .await;
        let v = self
            .control(
                reqwest::Method::POST,
                "/_sandbox/orders",
                json!({
                    "currency": "GBP",
                    "ship_to": {"name": "Ada Lovelace", "street1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"},
                    "lines": [{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": "12.50"}],
                    "shipping": "3.95",
                    "payment": payment,
                }),
            )
            .await;
        let id = v["order"]["id"].as_str().unwrap().to_string();
        self.all_orders().await.into_iter().find(|o| o.erp_id == id).expect("the order is in the feed")
    }
}

#[tokio::test]
async fn paging_through_250_generated_orders_100_at_a_time_sees_each_exactly_once() {
    let s = setup().await;
    let plan = s.play(250, 11).await;
    assert!(plan.summary().by_kind.get("duplicate").copied().unwrap_or(0) > 0, "re-sent orders are part of the test");

    let mut pages = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = s.client.changed_orders(cursor.as_ref(), 100).await.unwrap();
        let Some(last) = page.last() else { break };
        let next = Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() };
        if let Some(prev) = &cursor {
            assert!(page.iter().all(|o| Cursor { updated_at: o.updated_at, erp_id: o.erp_id.clone() } > *prev), "strictly after the cursor");
        }
        // The watermark survives being stored as text.
        cursor = Cursor::from_watermark(&next.to_watermark());
        assert_eq!(cursor.as_ref(), Some(&next));
        pages.push(page.len());
    }
    assert_eq!(pages, vec![100, 100, 50]);
    let orders = s.all_orders().await;
    let ids: BTreeSet<&str> = orders.iter().map(|o| o.erp_id.as_str()).collect();
    assert_eq!((orders.len(), ids.len()), (250, 250), "each order exactly once");
    let refs: BTreeSet<&str> = orders.iter().map(|o| o.number.as_str()).collect();
    assert!(plan.orders.iter().all(|o| refs.contains(o.reference.as_str())));
}

#[tokio::test]
async fn an_authorised_only_order_says_authorised_and_names_its_payment_document() {
    let s = setup().await;
    let order = s.mug_order(json!({"state": "authorised", "method": "card"})).await;
    let p = &order.payment;
    assert_eq!(p.state, PaymentState::Authorised);
    assert!(p.source.starts_with("payment:PAY-"), "{}", p.source);
    assert_eq!(p.amount, Money::from_minor(2895, Currency::GBP), "two mugs and shipping");
    assert!(p.at.is_some());
    assert_eq!(order.lines[0].unit_price, Money::from_minor(1250, Currency::GBP));
    assert_eq!(order.shipping_paid, Some(Money::from_minor(395, Currency::GBP)));
    assert_eq!(order.status, ErpOrderStatus::Open);

    // Captured later: the same document now says captured.
    s.control(reqwest::Method::POST, &format!("/_sandbox/orders/{}/payment", order.erp_id), json!({"state": "captured"})).await;
    let after = s.client.changed_orders(Some(&Cursor { updated_at: order.updated_at, erp_id: order.erp_id.clone() }), 10).await.unwrap();
    assert_eq!(after.len(), 1, "the capture puts the order back in the feed");
    assert_eq!((after[0].payment.state, &after[0].payment.source), (PaymentState::Captured, &p.source));
}

#[tokio::test]
async fn an_order_without_a_payment_document_is_unpaid_on_no_evidence() {
    let s = setup().await;
    let order = s.mug_order(Value::Null).await;
    assert_eq!(order.payment.state, PaymentState::Unpaid);
    assert_eq!(order.payment.source, "none");
    assert!(order.payment.amount.is_zero());
}

#[tokio::test]
async fn products_come_back_for_known_skus_and_unknown_ones_are_simply_absent() {
    let s = setup().await;
    s.play(5, 2).await;
    let skus: Vec<String> = ["COF-BEAN-250", "SAMPLE-SACHET", "GIFTBOX-DELUXE", "NOT-A-SKU", "MUG-ENAMEL-BLU"].map(String::from).to_vec();
    let products = s.client.products(&skus).await.unwrap();
    let by_sku: BTreeMap<&str, _> = products.iter().map(|p| (p.sku.as_str(), p)).collect();
    assert_eq!(by_sku.len(), 4);
    assert!(!by_sku.contains_key("NOT-A-SKU"));
    assert_eq!(by_sku["COF-BEAN-250"].unit_weight, Some(Weight::from_grams(270)));
    assert_eq!(by_sku["SAMPLE-SACHET"].unit_weight, Some(Weight::ZERO), "a zero weight stays zero");
    assert_eq!(by_sku["GIFTBOX-DELUXE"].unit_weight, None, "a missing weight stays missing");
    assert!(!by_sku["MUG-ENAMEL-BLU"].active);
    assert!(s.client.products(&[]).await.unwrap().is_empty());
    // More SKUs than one request carries.
    let many: Vec<String> = (0..120).map(|i| format!("NOPE-{i}")).chain(["TOTE-CANVAS".to_string()]).collect();
    assert_eq!(s.client.products(&many).await.unwrap().len(), 1);
}

#[tokio::test]
async fn orders_read_by_id_come_back_whatever_their_status_with_the_erps_reason_and_in_batches() {
    let s = setup().await;
    let open = s.mug_order(json!({"state": "captured"})).await;
    let held = s.mug_order(json!({"state": "captured"})).await;
    let cancelled = s.mug_order(json!({"state": "captured"})).await;
    s.control(reqwest::Method::POST, &format!("/_sandbox/orders/{}/hold", held.erp_id), json!({"reason": "fraud review"})).await;
    s.control(reqwest::Method::POST, &format!("/_sandbox/orders/{}/cancel", cancelled.erp_id), json!({"reason": "customer changed their mind"})).await;
    // A product fixed in the master changes no order: only a read by id and the
    // product master show it.
    s.control(reqwest::Method::POST, "/_sandbox/products", json!({"products": [{"sku": "MUG", "name": "Mug", "weight": 360}]})).await;

    let ids: Vec<String> = [&cancelled.erp_id, "SO-NOT-THERE", &open.erp_id, &held.erp_id].map(|s| s.to_string()).to_vec();
    let read = s.client.orders(&ids).await.unwrap();
    let got: Vec<(&str, ErpOrderStatus, Option<&str>)> =
        read.iter().map(|o| (o.erp_id.as_str(), o.status, o.status_reason.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (cancelled.erp_id.as_str(), ErpOrderStatus::Cancelled, Some("cancelled in the sandbox ERP: customer changed their mind")),
            (open.erp_id.as_str(), ErpOrderStatus::Open, None),
            (held.erp_id.as_str(), ErpOrderStatus::OnHold, Some("on hold in the sandbox ERP: fraud review")),
        ],
        "in the order asked, the unknown id absent"
    );
    assert_eq!(read[1], open, "the same order the feed gave");
    assert!(s.client.orders(&[]).await.unwrap().is_empty());

    // More ids than one request carries: read 100 at a time.
    let before = s.erp.stats()["requests"].clone();
    let many: Vec<String> = (0..230).map(|i| format!("SO-NOPE-{i}")).chain([open.erp_id.clone()]).collect();
    assert_eq!(s.client.orders(&many).await.unwrap().len(), 1);
    let after = s.erp.stats()["requests"].clone();
    assert_eq!(requests_by_id(&after) - requests_by_id(&before), 3, "{before} → {after}");
}

fn requests_by_id(requests: &Value) -> u64 {
    requests.as_object().map(|m| m.iter().filter(|(k, _)| k.starts_with("GET /api/orders")).filter_map(|(_, v)| v.as_u64()).sum()).unwrap_or(0)
}

#[tokio::test]
async fn a_fulfilment_is_packed_then_completed_and_completing_it_again_is_refused() {
    let s = setup().await;
    let order = s.mug_order(json!({"state": "captured"})).await;
    let line = order.lines[0].line_id.clone();
    let package = Package {
        carrier: "royal_mail".into(),
        service: Some("tracked_48".into()),
        tracking_number: "RM123456785GB".into(),
        ship_date: Some(date(2025, 6, 30)),
        cost: Some(Money::from_minor(320, Currency::GBP)),
    };
    let mut write = FulfilmentWrite {
        key: format!("ful:{}:1", order.erp_id),
        erp_order_id: order.erp_id.clone(),
        state: FulfilmentState::Packed,
        lines: vec![(line.clone(), 2)],
        packages: vec![package.clone()],
    };
    let packed = s.client.record_fulfilment(&write).await.unwrap();
    assert_eq!((packed.state, packed.lines.clone(), packed.packages.clone()), (FulfilmentState::Packed, vec![(line.clone(), 2)], vec![package]));
    let again = s.client.record_fulfilment(&write).await.unwrap();
    assert_eq!(again.id, packed.id, "packing again with the same key is the same document");

    write.state = FulfilmentState::Completed;
    let completed = s.client.record_fulfilment(&write).await.unwrap();
    assert_eq!((completed.id.as_str(), completed.state), (packed.id.as_str(), FulfilmentState::Completed));

    let err = s.client.record_fulfilment(&write).await.unwrap_err();
    let ErpError::Refused { message, .. } = &err else { panic!("expected Refused, got {err:?}") };
    assert!(message.contains("already completed"), "{message}");
    assert!(!err.is_retriable());

    let read = s.client.fulfilments(&order.erp_id).await.unwrap();
    assert_eq!(read, vec![completed]);
    let stock = s.client.stock("MUG").await.unwrap();
    assert_eq!((stock.on_hand, stock.reserved), (18, 0), "shipped goods leave stock");

    let beyond = FulfilmentWrite { key: "ful:other".into(), state: FulfilmentState::Packed, lines: vec![(line, 1)], ..write.clone() };
    assert!(matches!(s.client.record_fulfilment(&beyond).await, Err(ErpError::Refused { .. })), "more than the order line");
    let missing = FulfilmentWrite { erp_order_id: "SO-99999".into(), key: "x".into(), ..write };
    assert!(matches!(s.client.record_fulfilment(&missing).await, Err(ErpError::NotFound { .. })));
}

#[tokio::test]
async fn a_balanced_journal_posts_once_and_an_unbalanced_one_is_refused_with_its_totals() {
    let s = setup().await;
    let gbp = |m| Money::from_minor(m, Currency::GBP);
    let mut journal = JournalWrite {
        key: "costs:acme-uk:2025-06-30".into(),
        date: date(2025, 6, 30),
        memo: "Shipping costs 30 June".into(),
        lines: vec![
            JournalLine { account: "5100".into(), debit: gbp(1000), credit: gbp(0), original: Some(Money::from_minor(1266, Currency::USD)), memo: Some("label RM1".into()) },
            JournalLine { account: "2100".into(), debit: gbp(0), credit: gbp(950), original: None, memo: None },
        ],
    };
    let err = s.client.post_journal(&journal).await.unwrap_err();
    let ErpError::Refused { message, .. } = &err else { panic!("expected Refused, got {err:?}") };
    assert!(message.contains("10.00 GBP") && message.contains("9.50 GBP"), "{message}");

    journal.lines[1].credit = gbp(1000);
    let posted = s.client.post_journal(&journal).await.unwrap();
    assert!(posted.posted && posted.id.starts_with("JNL-"));
    assert_eq!(posted.lines, journal.lines);
    assert_eq!(s.client.post_journal(&journal).await.unwrap().id, posted.id, "the same key is not posted twice");
    assert_eq!(s.erp.stats()["journals"], 1);
}

#[tokio::test]
async fn the_fx_quote_is_the_latest_rate_on_or_before_the_date_unrounded_and_none_before_the_table() {
    let s = setup().await;
    s.control(reqwest::Method::POST, "/_sandbox/fx", json!({"currency": "USD", "rate": "0.78915", "date": "2001-06-29"})).await;
    s.control(reqwest::Method::POST, "/_sandbox/fx", json!({"currency": "EUR", "rate": "0.8321", "date": "2001-06-28"})).await;
    let q = s.client.fx_quote(Currency::USD, Currency::GBP, date(2001, 7, 1)).await.unwrap().expect("a rate");
    // 1 USD = 0.78915 GBP: amount × 0.78915 ÷ 1.
    assert_eq!((q.rate_from, q.rate_to, q.date), (Decimal::ONE, "0.78915".parse::<Decimal>().unwrap(), date(2001, 6, 29)));
    assert!(q.source.starts_with("sandbox-erp:"), "{}", q.source);
    // A cross rate keeps both values, never their rounded ratio, and the older date.
    let cross = s.client.fx_quote(Currency::USD, Currency::EUR, date(2001, 7, 1)).await.unwrap().expect("a cross rate");
    assert_eq!((cross.rate_from, cross.rate_to, cross.date), ("0.8321".parse::<Decimal>().unwrap(), "0.78915".parse::<Decimal>().unwrap(), date(2001, 6, 28)));
    let c = shipledger_core::fx::Conversion::make("k", shipledger_core::Money::from_minor(1_000_000, Currency::USD), Currency::EUR, cross.rate_from, cross.rate_to, cross.date, date(2001, 7, 1), shipledger_core::fx::RateSource::Erp).unwrap();
    // 10,000.00 × 0.78915 ÷ 0.8321 = 9483.83608...
    assert_eq!(c.base.minor(), 948_384);
    assert_eq!(s.client.fx_quote(Currency::USD, Currency::GBP, date(2001, 6, 28)).await.unwrap(), None);
    assert_eq!(s.client.base_currency().await.unwrap(), Currency::GBP);
    // Recent weekdays are seeded for USD and EUR.
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let eur = s.client.fx_quote(Currency::EUR, Currency::GBP, today).await.unwrap().expect("a seeded rate");
    assert!(eur.rate_to > Decimal::new(5, 1) && eur.rate_to < Decimal::new(15, 1) && eur.rate_from == Decimal::ONE, "{eur:?}");
}

#[tokio::test]
async fn stock_is_read_and_adjusted_once_per_key() {
    let s = setup().await;
    s.mug_order(json!({"state": "captured"})).await;
    let level = s.client.stock("MUG").await.unwrap();
    assert_eq!((level.on_hand, level.reserved), (20, 2), "an open order reserves its lines");
    let adj = StockAdjustment { key: "count:2025-06".into(), sku: "MUG".into(), delta: -3, reason: "stock count".into() };
    assert_eq!(s.client.adjust_stock(&adj).await.unwrap().on_hand, 17);
    assert_eq!(s.client.adjust_stock(&adj).await.unwrap().on_hand, 17, "the same key applies once");
    let too_much = StockAdjustment { key: "count:x".into(), delta: -100, ..adj };
    assert!(matches!(s.client.adjust_stock(&too_much).await, Err(ErpError::Refused { .. })));
    assert!(matches!(s.client.stock("NOPE").await, Err(ErpError::NotFound { .. })));
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_an_unreachable_or_failing_erp_is_retriable() {
    let s = setup().await;
    let wrong = SandboxErpClient::new(&s.erp.base_url(), "wrong").unwrap();
    assert!(matches!(wrong.base_currency().await, Err(ErpError::Unauthorized { .. })));

    s.control(reqwest::Method::PUT, "/_sandbox/faults", json!({"fail_next": 1})).await;
    let err = s.client.base_currency().await.unwrap_err();
    assert!(matches!(err, ErpError::Unavailable { .. }) && err.is_retriable(), "{err:?}");
    assert!(s.client.base_currency().await.is_ok());

    let base = s.erp.base_url();
    s.erp.shutdown().await;
    let gone = SandboxErpClient::with_timeouts(&base, KEY, Duration::from_secs(1), Duration::from_secs(2)).unwrap();
    let err = gone.changed_orders(None, 10).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test]
async fn every_generated_order_meets_the_release_gate_as_its_plan_expects() {
  // Three seeds here; 25 seeds of 300 orders were checked by hand as well.
  for seed in [5u64, 6, 7] {
    let s = setup().await;
    let plan = s.play(200, seed).await;
    let orders = s.all_orders().await;
    let skus: Vec<String> = orders.iter().flat_map(|o| o.lines.iter().filter_map(|l| l.sku.clone())).collect::<BTreeSet<_>>().into_iter().collect();
    let master: BTreeMap<String, _> = s.client.products(&skus).await.unwrap().into_iter().map(|p| (p.sku.clone(), p)).collect();
    let by_number: BTreeMap<&str, &ErpOrder> = orders.iter().map(|o| (o.number.as_str(), o)).collect();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for planned in &plan.orders {
        let order = by_number[planned.reference.as_str()];
        let verdict = check(order, |sku| master.get(sku).cloned(), &GatePolicy::default());
        let got = match (&order.status, &verdict) {
            (ErpOrderStatus::Cancelled, _) => Expected::Cancelled,
            (_, Verdict::Release { .. }) => Expected::Released,
            (_, Verdict::Hold { findings }) => {
                assert_eq!(findings.len(), 1, "{} ({:?}) has one reason to hold: {findings:?}", planned.reference, planned.kinds);
                Expected::Held(findings[0].kind)
            }
        };
        assert_eq!(got, planned.expected, "{} ({:?}): {verdict:?}", planned.reference, planned.kinds);
        *outcomes.entry(got.to_string()).or_default() += 1;
        if planned.kinds.contains(&OrderKind::ShipToCorrection) {
            assert_ne!(order.ship_to, planned.order.ship_to, "the corrected address is the one the ERP holds");
        }
    }
    assert_eq!(outcomes, plan.summary().by_expected);
  }
}

/// A journal built the way cost batching builds it: one window, USD and EUR labels of
/// two carriers, converted at the sandbox ERP's own rates.
fn two_currency_journal(key_day: jiff::civil::Date) -> shipledger_erp::JournalWrite {
    use shipledger_core::cost::{Charge, CostEntry, CostKind, CostSource, LabelFacts, NewCostEntry};
    use shipledger_core::fx::{Conversion, RateSource};
    use shipledger_core::journal::{CostBatch, PeriodState, PlanContext, build_journal, plan_batches};
    let at = key_day.at(12, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    let entry = |key: &str, carrier: &str, amount: Money| CostEntry {
        id: 0,
        connection: "acme-uk".into(),
        entry: NewCostEntry {
            entry_key: key.into(),
            kind: CostKind::Label,
            charge: Charge::Postage,
            revision: 0,
            amount,
            label: LabelFacts { shipment_key: key.into(), erp_id: None, ss_order_id: 1, carrier: carrier.into(), service: None, ship_date: None, label_created_at: at },
            occurred_at: at,
            source: CostSource::ShipstationV2,
            reverses_key: None,
        },
        reverses: None,
        recorded_at: at,
    };
    // Rates against GBP as Tryton quotes them: 1 GBP = 1.25 USD = 1.15 EUR.
    let rate = |c: Currency| if c == Currency::USD { Decimal::new(125, 2) } else { Decimal::new(115, 2) };
    let entries: Vec<_> = [entry("label:1/postage/0", "ups", Money::from_minor(640, Currency::USD)),
        entry("label:2/postage/0", "ups", Money::from_minor(333, Currency::USD)),
        entry("label:3/postage/0", "stamps_com", Money::from_minor(1015, Currency::EUR))]
    .into_iter()
    .map(|e| {
        let c = Conversion::make(e.entry_key.clone(), e.amount, Currency::GBP, rate(e.amount.currency()), Decimal::ONE, key_day, key_day, RateSource::Erp).unwrap();
        (e, Some(c))
    })
    .collect();
    let posted = BTreeSet::new();
    let ctx = PlanContext { connection: "acme-uk", policy: CostBatch::Daily, tz: &jiff::tz::TimeZone::UTC, posted: &posted, revisions: &Default::default(), today: key_day, until: Some(key_day) };
    let plan = plan_batches(&entries, &ctx, |_| PeriodState::Open);
    build_journal(&plan.batches[0], &shipledger_sandbox::erp::model::chart_accounts()).unwrap()
}

#[tokio::test]
async fn a_batched_journal_in_usd_and_eur_posts_with_its_second_currency_amounts_read_back() {
    let s = setup().await;
    let journal = two_currency_journal(date(2025, 6, 30));
    // 6.40 USD → 5.12, 3.33 USD → 2.66 (2.664), 10.15 EUR → 8.83 (8.826...).
    let totals: Vec<(String, i64, i64, Option<Money>)> = journal.lines.iter().map(|l| (l.account.clone(), l.debit.minor(), l.credit.minor(), l.original)).collect();
    assert_eq!(
        totals,
        vec![
            ("5.1.3".into(), 883, 0, Some(Money::from_minor(1015, Currency::EUR))),
            ("1.1.9".into(), 0, 883, Some(Money::from_minor(1015, Currency::EUR))),
            ("5.1.3".into(), 512 + 266, 0, Some(Money::from_minor(973, Currency::USD))),
            ("2.1.1".into(), 0, 512 + 266, Some(Money::from_minor(973, Currency::USD))),
        ]
    );
    let posted = s.client.post_journal(&journal).await.unwrap();
    assert!(posted.posted);
    posted.verify(&journal).unwrap();
    let read = s.erp_get(&format!("/api/journals/{}", posted.id)).await;
    assert_eq!(read["lines"][2]["original"], json!({"amount": "9.73", "currency": "USD"}));
    assert_eq!(s.client.post_journal(&journal).await.unwrap().id, posted.id, "the batch key posts once");
}

#[tokio::test]
async fn a_closed_sandbox_period_is_reported_and_never_written() {
    let s = setup().await;
    assert_eq!(s.client.period_state(date(2025, 6, 30)).await.unwrap(), shipledger_erp::PeriodState::Open);
    s.control(reqwest::Method::PUT, "/_sandbox/periods/2025-06", json!({"state": "closed"})).await;
    s.control(reqwest::Method::PUT, "/_sandbox/periods/2025-05", json!({"state": "locked"})).await;
    assert_eq!(s.client.period_state(date(2025, 6, 1)).await.unwrap(), shipledger_erp::PeriodState::Closed);
    assert_eq!(s.client.period_state(date(2025, 5, 31)).await.unwrap(), shipledger_erp::PeriodState::Locked);
    assert_eq!(s.client.period_state(date(2025, 7, 1)).await.unwrap(), shipledger_erp::PeriodState::Open);
    let err = s.client.post_journal(&two_currency_journal(date(2025, 6, 30))).await.unwrap_err();
    let ErpError::PeriodNotOpen { date: day, state, .. } = &err else { panic!("expected PeriodNotOpen, got {err:?}") };
    assert_eq!((*day, *state), (date(2025, 6, 30), shipledger_erp::PeriodState::Closed));
    let message = err.to_string();
    assert!(message.contains("2025-06-30") && message.contains("closed") && message.contains("next open period"), "{message}");
    assert_eq!(s.erp.stats()["journals"], 0, "nothing written");
    // Reopened, it posts.
    s.control(reqwest::Method::PUT, "/_sandbox/periods/2025-06", json!({"state": "open"})).await;
    assert!(s.client.post_journal(&two_currency_journal(date(2025, 6, 30))).await.unwrap().posted);
}

#[tokio::test]
async fn the_ledger_check_names_an_account_the_chart_lacks_and_todays_period() {
    use shipledger_core::journal::{CarrierAccountKind, JournalAccounts};
    let s = setup().await;
    let accounts = JournalAccounts {
        shipping_expense: "5.1.3".into(),
        shipping_expense_by_carrier: BTreeMap::from([("ups".to_string(), "5.9.9".to_string())]),
        prepaid_postage: None,
        accrued_shipping: Some("2.1.1".into()),
        carrier_accounts: BTreeMap::new(),
        default_kind: CarrierAccountKind::Accrued,
        journal: "COSTS".into(),
    };
    let today = date(2025, 6, 30);
    let items = shipledger_erp::check_ledger(&s.client, &accounts, today).await;
    let status = |what: &str| items.iter().find(|i| i.what == what).map(|i| i.status).unwrap_or_else(|| panic!("{what}: {items:?}"));
    use shipledger_erp::CheckStatus as S;
    assert_eq!((status("account 5.1.3"), status("account 2.1.1"), status("account 5.9.9")), (S::Ok, S::Ok, S::Failed));
    assert_eq!((status("journal COSTS"), status("period of 2025-06-30")), (S::Failed, S::Ok));
    let missing = items.iter().find(|i| i.what == "account 5.9.9").unwrap();
    assert!(missing.detail.contains("5.9.9") && missing.detail.contains("[connections.accounts]"), "{}", missing.detail);
    // Once the chart holds them and the month is closed, the accounts pass and the period fails.
    s.control(reqwest::Method::POST, "/_sandbox/accounts", json!({"accounts": ["5.9.9"], "journals": ["COSTS"]})).await;
    s.control(reqwest::Method::PUT, "/_sandbox/periods/2025-06", json!({"state": "closed"})).await;
    let items = shipledger_erp::check_ledger(&s.client, &accounts, today).await;
    let failed: Vec<&str> = items.iter().filter(|i| i.status == S::Failed).map(|i| i.what.as_str()).collect();
    assert_eq!(failed, vec!["period of 2025-06-30"]);
}

impl Setup {
    /// `GET` on the sandbox ERP's API with the key, the body as JSON.
    async fn erp_get(&self, path: &str) -> Value {
        let r = self.http.get(format!("{}{path}", self.erp.base_url())).bearer_auth(KEY).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}
