//! The API's read-only records: shipments (one with its ERP lines and costs), cost
//! entries with their conversions, cost batches with their journal, reconciler runs
//! and their findings. Three brands on one deployment; a token for acme sees only
//! acme's (another brand's filter refused with 403, its records 404 by id or key), a
//! token for acme and beta pages through both and never gamma's. Every list pages
//! whole by its cursor without a repeat; a bad filter is a 400 problem naming the
//! field; an unknown id or key is a 404. On SQLite and on PostgreSQL.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::date;
use serde_json::{Value, json};
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::fx::{Conversion, RateSource};
use shipledger_core::journal::{JournalLine, JournalWrite, Window};
use shipledger_core::reconcile::Finding;
use shipledger_core::{Currency, Money};
use shipledger_store::{
    BatchMember, BatchState, Change, NewCostBatch, NewCostConversion, OrderLineRecord, OrderState, OrderUpsert, ReconcileMode, ReconcileState,
    ShipmentKind, ShipmentLine, ShipmentState, ShipmentUpsert, TokenRole, TokenScope,
};

use crate::api::{Api, start_with};
use crate::helpers::Backend;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_795_000_000 + secs).unwrap()
}

fn line(key: Option<&str>, sku: &str, quantity: i64) -> ShipmentLine {
    ShipmentLine { line_item_key: key.map(Into::into), sku: Some(sku.into()), quantity }
}

fn label(id: i64, erp_id: &str, created: i64, lines: Vec<ShipmentLine>) -> ShipmentUpsert {
    ShipmentUpsert {
        shipment_key: format!("label:{id}"),
        kind: ShipmentKind::Label,
        ss_id: id,
        ss_order_id: id + 1000,
        ss_order_key: Some(format!("key-{erp_id}")),
        erp_id: Some(erp_id.into()),
        carrier: "royal_mail".into(),
        service: Some("rm_tracked_48".into()),
        tracking_number: Some(format!("RM{id}GB")),
        ship_date: Some(date(2026, 11, 27)),
        cost_minor: Some(385),
        cost_currency: Some("GBP".into()),
        ss_created_at: t(created),
        voided: false,
        voided_at: None,
        lines,
        first_scan_at: None,
        tracking_status: None,
        state: ShipmentState::Packed,
        erp_fulfilment_id: None,
    }
}

fn order_line(erp_id: &str, line_id: &str, sku: Option<&str>, quantity: i64, physical: bool) -> OrderLineRecord {
    OrderLineRecord {
        connection: String::new(),
        erp_id: erp_id.into(),
        line_id: line_id.into(),
        sku: sku.map(Into::into),
        name: format!("{} ({line_id})", sku.unwrap_or("discount")),
        quantity,
        unit_weight_mg: Some(350_000),
        unit_price_minor: 1200,
        currency: "GBP".into(),
        physical,
    }
}

fn order(erp_id: &str, lines: Vec<OrderLineRecord>) -> OrderUpsert {
    OrderUpsert {
        erp_id: erp_id.into(),
        number: erp_id.to_uppercase(),
        state: OrderState::Pushed,
        snapshot: json!({}),
        snapshot_hash: "h".into(),
        erp_updated_at: t(0),
        order_key: format!("key-{erp_id}"),
        ss_order_id: Some(1),
        ss_status: Some("awaiting_shipment".into()),
        payment: None,
        pushed_hash: None,
        released_at: Some(t(1)),
        pushed_at: Some(t(2)),
        lines: Some(lines),
    }
}

fn postage(shipment: &ShipmentUpsert, charge: Charge, minor: i64) -> NewCostEntry {
    let label = LabelFacts {
        shipment_key: shipment.shipment_key.clone(),
        erp_id: shipment.erp_id.clone(),
        ss_order_id: shipment.ss_order_id,
        carrier: shipment.carrier.clone(),
        service: shipment.service.clone(),
        ship_date: shipment.ship_date,
        label_created_at: shipment.ss_created_at,
    };
    NewCostEntry::first(label, charge, Money::from_minor(minor, Currency::USD), CostSource::ShipstationV2)
}

/// 1 GBP = 1.25 USD.
fn to_gbp(e: &NewCostEntry) -> NewCostConversion {
    let conversion = Conversion::make(&e.entry_key, e.amount, Currency::GBP, "1.25".parse().unwrap(), rust_decimal::Decimal::ONE, date(2026, 11, 26), date(2026, 11, 27), RateSource::Erp)
        .unwrap();
    NewCostConversion { conversion, source_detail: "tryton:currency.currency.rate:3+1".into() }
}

/// Each brand: an order with two physical lines and a discount; six labels (one made
/// for an order merged into it, one voided, one scanned), a fulfillment; a label's
/// postage (converted) and insurance (waiting for a rate), the postage in a planned
/// batch; a reconciler run with two findings and their exceptions.
async fn seed(api: &Api, brand: &str) {
    let store = &api.store;
    let mut change = Change::new(brand, t(10));
    change.order = Some(order(&format!("{brand}-1"), vec![
        order_line("x", "L1", Some("MUG"), 2, true),
        order_line("x", "L2", Some("TEA"), 1, true),
        order_line("x", "D1", None, 1, false),
    ]));
    store.commit(change).await.unwrap();

    let erp = format!("{brand}-1");
    // Items: one by its line key, one by a SKU only one line has, one naming no line of the order.
    let first = label(8001, &erp, 100, vec![line(Some("L1"), "MUG", 2), line(None, "TEA", 1), line(Some("L9"), "SPOON", 1)]);
    let mut shipments = vec![first.clone()];
    for id in 8002..=8004 {
        shipments.push(label(id, &erp, 100, vec![line(Some("L1"), "MUG", 1)]));
    }
    shipments.push(ShipmentUpsert { shipment_key: format!("label:8005/{brand}-2"), erp_id: Some(format!("{brand}-2")), ..label(8005, &erp, 100, vec![]) });
    shipments.push(ShipmentUpsert { voided: true, voided_at: Some(t(150)), state: ShipmentState::Reversed, ..label(8006, &erp, 120, vec![]) });
    shipments.push(ShipmentUpsert { first_scan_at: Some(t(160)), state: ShipmentState::Completed, ..label(8007, &erp, 130, vec![]) });
    shipments.push(ShipmentUpsert {
        shipment_key: "fulfillment:9001".into(),
        kind: ShipmentKind::Fulfillment,
        cost_minor: None,
        cost_currency: None,
        ..label(9001, &erp, 140, vec![])
    });
    let mut change = Change::new(brand, t(200));
    change.shipments = shipments;
    let (p, i) = (postage(&first, Charge::Postage, 1234), postage(&first, Charge::Insurance, 150));
    change.cost_entries = vec![p.clone(), i.clone()];
    store.commit(change).await.unwrap();
    let mut change = Change::new(brand, t(210));
    change.cost_conversions = vec![to_gbp(&p)];
    store.commit(change).await.unwrap();

    let key = format!("{brand}/costs/2026-11-27..2026-11-27/r0");
    let day = Window { start: date(2026, 11, 27), end: date(2026, 11, 27) };
    let gbp = |minor| Money::from_minor(minor, Currency::GBP);
    let usd = Money::from_minor(1234, Currency::USD);
    let mut change = Change::new(brand, t(220));
    change.cost_batches.push(NewCostBatch {
        batch_key: key.clone(),
        window: day,
        revision: 0,
        journal: JournalWrite {
            key: key.clone(),
            date: day.end,
            memo: "shipledger shipping costs".into(),
            lines: vec![
                JournalLine { account: "5.1.3".into(), debit: gbp(987), credit: gbp(0), original: Some(usd), memo: Some("royal_mail USD".into()) },
                JournalLine { account: "2.1.1".into(), debit: gbp(0), credit: gbp(987), original: Some(usd), memo: None },
            ],
        },
        members: vec![BatchMember { entry_key: p.entry_key.clone(), carried_from: Some(Window { start: date(2026, 11, 26), end: date(2026, 11, 26) }) }],
        state: BatchState::Planned,
        detail: None,
        total: gbp(987),
    });
    store.commit(change).await.unwrap();

    let run = store.start_reconcile_run(brand, ReconcileMode::Full, t(0), t(300)).await.unwrap();
    let findings = vec![
        Finding { kind: ExceptionKind::PaidNotInShipStation, record_type: "order".into(), record_id: format!("{brand}-7"), detail: json!({"message": "paid, not in ShipStation"}) },
        Finding { kind: ExceptionKind::UnknownShipStationOrder, record_type: "shipstation_order".into(), record_id: "5550".into(), detail: json!({"message": "no ERP order"}) },
    ];
    let mut change = Change::new(brand, t(300));
    for f in &findings {
        change.raise(f.kind, &f.record_type, f.record_id.clone(), f.detail.clone());
    }
    store.commit(change).await.unwrap();
    store.finish_reconcile_run(run.id, ReconcileState::Done, json!({"keys": 12, "findings": {"paid_not_in_shipstation": 1}}), None, t(305)).await.unwrap();
    store.add_reconcile_findings(run.id, brand, &findings).await.unwrap();
}

/// Every item of a list, a page of `limit` at a time, following `next_cursor`.
async fn walk(api: &Api, path: &str, token: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..100 {
        let url = match &cursor {
            None => format!("{path}{sep}limit={limit}"),
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
        };
        let (status, page) = api.get(&url, token).await;
        assert_eq!(status, 200, "{url}: {page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
    panic!("{path}: more than 100 pages");
}

fn field<'a>(items: &'a [Value], name: &str) -> Vec<&'a str> {
    items.iter().map(|i| i[name].as_str().unwrap_or_default()).collect()
}

fn no_repeats(keys: &[(String, String)]) {
    let unique: BTreeSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a row repeated: {keys:?}");
}

fn bad(api_answer: (u16, Value), name: &str) {
    let (status, problem) = api_answer;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (400, Some(name)), "{problem}");
}

async fn the_api_shows_shipments_costs_and_reconciler_runs_each_brand_its_own(backend: Backend) {
    let Some(api) = start_with(backend, &["acme", "beta", "gamma"]).await else { return };
    for brand in ["acme", "beta", "gamma"] {
        seed(&api, brand).await;
    }
    let only = |names: &[&str]| TokenScope::Only(names.iter().map(|n| n.to_string()).collect());
    let acme = api.token("acme", TokenRole::Viewer, only(&["acme"])).await;
    let two = api.token("acme-beta", TokenRole::Viewer, only(&["acme", "beta"])).await;
    let admin = api.token("admin", TokenRole::Admin, TokenScope::All).await;

    // ---- shipments
    let (status, page) = api.get("/api/v1/shipments", &acme).await;
    assert_eq!(status, 200, "{page}");
    let all_acme = page["items"].as_array().unwrap().clone();
    assert_eq!(all_acme.len(), 8);
    assert!(all_acme.iter().all(|s| s["connection"] == "acme"), "an acme token lists acme's only");
    assert!(page["next_cursor"].is_null());
    for limit in [1, 3] {
        let walked = walk(&api, "/api/v1/shipments", &acme, limit).await;
        assert_eq!(walked, all_acme, "pages of {limit} are the whole list, in order");
    }
    // Two brands of three: pages cross both, never gamma's.
    let both = walk(&api, "/api/v1/shipments", &two, 3).await;
    let keys: Vec<(String, String)> = both.iter().map(|s| (s["connection"].as_str().unwrap().into(), s["shipment_key"].as_str().unwrap().into())).collect();
    no_repeats(&keys);
    assert_eq!(keys.len(), 16);
    assert_eq!(keys.iter().map(|k| k.0.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["acme", "beta"]));
    assert_eq!(walk(&api, "/api/v1/shipments", &admin, 5).await.len(), 24);

    let keys_of = |path: &'static str| {
        let api = &api;
        let acme = &acme;
        async move {
            let (status, page) = api.get(path, acme).await;
            assert_eq!(status, 200, "{path}: {page}");
            field(page["items"].as_array().unwrap(), "shipment_key").into_iter().map(String::from).collect::<Vec<_>>()
        }
    };
    assert_eq!(keys_of("/api/v1/shipments?kind=fulfillment").await, vec!["fulfillment:9001"]);
    assert_eq!(keys_of("/api/v1/shipments?voided=true").await, vec!["label:8006"]);
    assert_eq!(keys_of("/api/v1/shipments?voided=false").await.len(), 7);
    assert_eq!(keys_of("/api/v1/shipments?state=completed").await, vec!["label:8007"]);
    assert_eq!(keys_of("/api/v1/shipments?tracking_number=RM8003GB").await, vec!["label:8003"]);
    assert_eq!(keys_of("/api/v1/shipments?erp_id=acme-2").await, vec!["label:8005/acme-2"]);
    let awaiting = keys_of("/api/v1/shipments?awaiting_scan=true").await;
    assert_eq!(awaiting, vec!["label:8001", "label:8002", "label:8003", "label:8004", "label:8005/acme-2"]);
    let not_awaiting = keys_of("/api/v1/shipments?awaiting_scan=false&connection=acme").await;
    assert_eq!(not_awaiting, vec!["label:8006", "label:8007", "fulfillment:9001"]);
    assert_eq!(keys_of("/api/v1/shipments?awaiting_scan=true&kind=label&voided=false&limit=2").await.len(), 2);

    assert_eq!(api.get("/api/v1/shipments?connection=beta", &acme).await.0, 403);
    bad(api.get("/api/v1/shipments?kind=parcel", &acme).await, "kind");
    bad(api.get("/api/v1/shipments?voided=maybe", &acme).await, "voided");
    bad(api.get("/api/v1/shipments?awaiting_scan=1", &acme).await, "awaiting_scan");
    bad(api.get("/api/v1/shipments?state=lost", &acme).await, "state");
    bad(api.get("/api/v1/shipments?limit=501", &acme).await, "limit");
    bad(api.get("/api/v1/shipments?cursor=not-ours", &acme).await, "cursor");
    bad(api.get("/api/v1/shipments?cursor=MTIz", &acme).await, "cursor");

    // ---- one shipment: its lines mapped to the order's, its costs converted or waiting.
    let (status, detail) = api.get("/api/v1/connections/acme/shipments/label%3A8001", &acme).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["shipment"]["shipment_key"], "label:8001");
    assert_eq!(detail["shipment"]["cost_amount"], "3.85");
    assert_eq!(detail["shipment"]["awaiting_scan"], true);
    let mapped: Vec<(Value, Value)> = detail["lines"].as_array().unwrap().iter().map(|l| (l["sku"].clone(), l["erp_line"]["line_id"].clone())).collect();
    assert_eq!(mapped, vec![(json!("MUG"), json!("L1")), (json!("TEA"), json!("L2")), (json!("SPOON"), Value::Null)], "by key, by the one SKU, none");
    assert_eq!(detail["lines"][0]["erp_line"]["quantity"], 2);
    let costs = detail["cost_entries"].as_array().unwrap();
    assert_eq!(field(costs, "charge"), vec!["postage", "insurance"]);
    assert_eq!(costs[0]["amount"], json!({"amount": "12.34", "minor": 1234, "currency": "USD"}));
    assert_eq!(costs[0]["conversion"]["base"], json!({"amount": "9.87", "minor": 987, "currency": "GBP"}), "12.34 ÷ 1.25 = 9.872");
    assert_eq!((costs[0]["conversion"]["rate_from"].as_str(), costs[0]["conversion"]["rounding"].as_str()), (Some("1.25"), Some("half_even")));
    let exact: rust_decimal::Decimal = costs[0]["conversion"]["exact"].as_str().unwrap().parse().unwrap();
    assert_eq!(exact, "9.872".parse().unwrap(), "the quotient before rounding, exactly");
    assert!(costs[1]["conversion"].is_null(), "insurance waits for a rate");
    // A key with a slash in it, percent-encoded.
    let (status, merged) = api.get("/api/v1/connections/acme/shipments/label%3A8005%2Facme-2", &acme).await;
    assert_eq!((status, merged["shipment"]["erp_id"].as_str()), (200, Some("acme-2")), "{merged}");
    assert!(merged["lines"].as_array().unwrap().is_empty() && merged["cost_entries"].as_array().unwrap().is_empty());
    for path in ["/api/v1/connections/beta/shipments/label%3A8001", "/api/v1/connections/acme/shipments/label%3A4040", "/api/v1/connections/nobody/shipments/label%3A8001"] {
        assert_eq!(api.get(path, &acme).await.0, 404, "{path}");
    }
    assert_eq!(api.get("/api/v1/connections/beta/shipments/label%3A8001", &two).await.0, 200);
    // Text that is not UTF-8 once decoded is named, here and on the orders route.
    bad(api.get("/api/v1/connections/acme/shipments/label%FF", &acme).await, "shipment_key");
    bad(api.get("/api/v1/connections/acme/orders/acme%FF1", &acme).await, "erp_id");

    // ---- cost entries
    let entries = walk(&api, "/api/v1/cost-entries", &two, 1).await;
    assert_eq!(entries.len(), 4);
    assert!(entries.iter().all(|e| e["connection"] != "gamma"));
    let page_keys = |items: &[Value]| items.iter().map(|e| (e["connection"].as_str().unwrap().to_string(), e["entry_key"].as_str().unwrap().to_string())).collect::<Vec<_>>();
    no_repeats(&page_keys(&entries));
    let (_, converted) = api.get("/api/v1/cost-entries?converted=true", &acme).await;
    assert_eq!(field(converted["items"].as_array().unwrap(), "entry_key"), vec!["label:8001/postage/0"]);
    assert_eq!(converted["items"][0]["conversion"]["base"]["amount"], "9.87");
    let (_, waiting) = api.get("/api/v1/cost-entries?converted=false", &acme).await;
    assert_eq!(field(waiting["items"].as_array().unwrap(), "entry_key"), vec!["label:8001/insurance/0"]);
    let (_, by_label) = api.get("/api/v1/cost-entries?shipment_key=label%3A8001&erp_id=acme-1", &acme).await;
    assert_eq!(by_label["items"].as_array().unwrap().len(), 2);
    assert_eq!(api.get("/api/v1/cost-entries?connection=gamma", &two).await.0, 403);
    bad(api.get("/api/v1/cost-entries?batch=first", &acme).await, "batch");
    bad(api.get("/api/v1/cost-entries?converted=yes", &acme).await, "converted");
    bad(api.get("/api/v1/cost-entries?cursor=42", &acme).await, "cursor");
    bad(api.get("/api/v1/cost-entries?colour=red", &acme).await, "colour");

    // ---- cost batches
    let batches = walk(&api, "/api/v1/cost-batches", &admin, 1).await;
    assert_eq!(field(&batches, "connection"), vec!["acme", "beta", "gamma"]);
    let (_, page) = api.get("/api/v1/cost-batches?state=planned", &acme).await;
    let acme_batch = page["items"][0].clone();
    assert_eq!((acme_batch["connection"].as_str(), page["items"].as_array().unwrap().len()), (Some("acme"), 1));
    assert_eq!(acme_batch["total"], json!({"amount": "9.87", "minor": 987, "currency": "GBP"}));
    assert!(api.get("/api/v1/cost-batches?state=posted", &acme).await.1["items"].as_array().unwrap().is_empty());
    bad(api.get("/api/v1/cost-batches?state=sent", &acme).await, "state");
    let id = acme_batch["id"].as_i64().unwrap();
    let (status, detail) = api.get(&format!("/api/v1/cost-batches/{id}"), &acme).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["journal"]["lines"][0]["debit"]["amount"], "9.87");
    assert_eq!(detail["journal"]["lines"][0]["original"]["amount"], "12.34");
    assert_eq!(detail["entries"].as_array().unwrap().len(), 1);
    assert_eq!(detail["entries"][0]["carried_from"], "2026-11-26..2026-11-26");
    assert_eq!(detail["entries"][0]["entry"]["conversion"]["base"]["minor"], 987);
    let (_, in_batch) = api.get(&format!("/api/v1/cost-entries?batch={id}"), &acme).await;
    assert_eq!(field(in_batch["items"].as_array().unwrap(), "entry_key"), vec!["label:8001/postage/0"]);
    let beta_batch = batches[1]["id"].as_i64().unwrap();
    assert_eq!(api.get(&format!("/api/v1/cost-batches/{beta_batch}"), &acme).await.0, 404, "another brand's batch is not there");
    assert_eq!(api.get("/api/v1/cost-batches/987654", &acme).await.0, 404);
    bad(api.get("/api/v1/cost-batches/first", &acme).await, "id");

    // ---- reconciler runs and findings
    let (_, runs) = api.get("/api/v1/reconcile-runs", &acme).await;
    let runs = runs["items"].as_array().unwrap().clone();
    assert_eq!(field(&runs, "connection"), vec!["acme"]);
    let newest_first = walk(&api, "/api/v1/reconcile-runs", &admin, 1).await;
    assert_eq!(field(&newest_first, "connection"), vec!["gamma", "beta", "acme"]);
    assert_eq!(field(&walk(&api, "/api/v1/reconcile-runs", &two, 1).await, "connection"), vec!["beta", "acme"]);
    let run_id = runs[0]["id"].as_i64().unwrap();
    let (status, run) = api.get(&format!("/api/v1/reconcile-runs/{run_id}"), &acme).await;
    assert_eq!((status, run["state"].as_str(), run["stats"]["keys"].as_i64()), (200, Some("done"), Some(12)), "{run}");
    let findings = walk(&api, &format!("/api/v1/reconcile-runs/{run_id}/findings"), &acme, 1).await;
    assert_eq!(field(&findings, "kind"), vec!["paid_not_in_shipstation", "unknown_shipstation_order"]);
    assert_eq!(field(&findings, "owner"), vec!["ops", "ops"]);
    assert_eq!(field(&findings, "message"), vec!["paid, not in ShipStation", "no ERP order"]);
    assert_eq!(field(&findings, "record_id"), vec!["acme-7", "5550"]);
    for f in &findings {
        let exception = f["exception_id"].as_i64().expect("each opened an exception");
        let (status, e) = api.get(&format!("/api/v1/exceptions/{exception}"), &acme).await;
        assert_eq!((status, &e["kind"], &e["record_id"]), (200, &f["kind"], &f["record_id"]));
    }
    let (_, one_kind) = api.get(&format!("/api/v1/reconcile-runs/{run_id}/findings?kind=unknown_shipstation_order"), &acme).await;
    assert_eq!(field(one_kind["items"].as_array().unwrap(), "record_id"), vec!["5550"]);
    bad(api.get(&format!("/api/v1/reconcile-runs/{run_id}/findings?kind=mystery"), &acme).await, "kind");
    bad(api.get("/api/v1/reconcile-runs?cursor=yesterday", &acme).await, "cursor");
    assert_eq!(api.get("/api/v1/reconcile-runs?connection=beta", &acme).await.0, 403);
    let beta_run = newest_first[1]["id"].as_i64().unwrap();
    for path in [format!("/api/v1/reconcile-runs/{beta_run}"), format!("/api/v1/reconcile-runs/{beta_run}/findings"), "/api/v1/reconcile-runs/987654".into()] {
        assert_eq!(api.get(&path, &acme).await.0, 404, "{path}");
    }
    bad(api.get("/api/v1/reconcile-runs/latest", &acme).await, "id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_costs_and_reconciler_runs_are_shown_paged_and_scoped_by_connection_on_sqlite() {
    the_api_shows_shipments_costs_and_reconciler_runs_each_brand_its_own(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipments_costs_and_reconciler_runs_are_shown_paged_and_scoped_by_connection_on_postgres() {
    the_api_shows_shipments_costs_and_reconciler_runs_each_brand_its_own(Backend::Postgres).await;
}
