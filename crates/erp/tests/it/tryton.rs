//! The Tryton connector against a real Tryton 8.2 (from PyPI; `scripts/tryton.sh`):
//! each test gets its own clone of the seeded shop (a GBP company; SHOP-1001 paid,
//! SHOP-1002 paid with three lines, SHOP-1003 unpaid, SHOP-1004 paid with a
//! weightless gift box) and checks what Tryton itself then shows.

use jiff::civil::date;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use shipledger_core::money::{Currency, Money};
use shipledger_core::order::{ErpOrder, ErpOrderStatus, PaymentState};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::release::{GatePolicy, Verdict, check};
use shipledger_erp::tryton::{TrytonClient, TrytonSettings};
use shipledger_erp::{Cursor, Erp, ErpError, FulfilmentState, FulfilmentWrite, JournalLine, JournalWrite, Package, StockAdjustment};

#[path = "../support/tryton_db.rs"]
mod tryton_db;
use tryton_db::TrytonDb;

fn client(db: &TrytonDb) -> TrytonClient {
    let settings = TrytonSettings { journal_party: Some("Royal Mail".into()), ..Default::default() };
    TrytonClient::new(&db.url, &db.key, settings).unwrap()
}

async fn tryton_get(db: &TrytonDb, path: &str, fields: &[&str], domain: Option<Value>) -> Value {
    db.get(path, fields, domain).await
}

async fn tryton_button(db: &TrytonDb, path: &str) {
    db.button(path).await
}

async fn all_orders(erp: &TrytonClient) -> Vec<ErpOrder> {
    let mut out = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let page = erp.changed_orders(cursor.as_ref(), 1).await.unwrap();
        let Some(last) = page.last() else { return out };
        cursor = Some(Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() });
        out.extend(page);
    }
}

fn by_reference<'a>(orders: &'a [ErpOrder], db: &TrytonDb, reference: &str) -> &'a ErpOrder {
    let sale = db.seed["sales"].as_array().unwrap().iter().find(|s| s["reference"] == reference).unwrap();
    let id = sale["id"].as_i64().unwrap().to_string();
    orders.iter().find(|o| o.erp_id == id).unwrap_or_else(|| panic!("{reference} (sale {id}) is ready"))
}

fn line_of(order: &ErpOrder, sku: &str) -> String {
    order.lines.iter().find(|l| l.sku.as_deref() == Some(sku)).unwrap_or_else(|| panic!("{} has {sku}", order.number)).line_id.clone()
}

fn label(order: &ErpOrder, n: u32, tracking: &str, lines: Vec<(String, u32)>, state: FulfilmentState) -> FulfilmentWrite {
    FulfilmentWrite {
        key: format!("shipledger:tryton-test:label:{n}"),
        erp_order_id: order.erp_id.clone(),
        state,
        lines,
        packages: vec![Package {
            carrier: "royal_mail".into(),
            service: Some("tracked_48".into()),
            tracking_number: tracking.into(),
            ship_date: Some(date(2026, 11, 24)),
            cost: Some(Money::from_minor(410, Currency::USD)),
        }],
    }
}

async fn shipments_of(db: &TrytonDb, sale_id: &str) -> Vec<Value> {
    db.shipments_of(sale_id.parse().unwrap()).await
}

#[tokio::test]
async fn ready_sales_arrive_with_skus_weights_and_payment_evidence_and_the_gate_holds_the_unpaid_and_the_weightless() {
    let Some(db) = TrytonDb::create("ready") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    assert_eq!(orders.len(), 4, "the four processing sales, each once, paged one at a time");
    let ids: std::collections::BTreeSet<_> = orders.iter().map(|o| o.erp_id.clone()).collect();
    assert_eq!(ids.len(), 4);

    let multi = by_reference(&orders, &db, "SHOP-1002");
    assert_eq!(multi.customer_reference.as_deref(), Some("SHOP-1002"), "the sale's customer reference comes along");
    assert_eq!(multi.currency, "GBP");
    assert_eq!(multi.payment.state, PaymentState::Captured);
    assert!(multi.payment.source.starts_with("tryton:account.payment:"), "{}", multi.payment.source);
    let goods: Vec<_> = multi.physical_lines().map(|l| (l.sku.clone().unwrap(), l.quantity, l.unit_weight)).collect();
    assert_eq!(
        goods,
        vec![
            ("TEE-BLK-M".into(), 2, Some(shipledger_core::weight::Weight::from_grams(200))),
            ("MUG-WHT".into(), 1, Some(shipledger_core::weight::Weight::from_grams(450))),
            ("HOOD-GRY-L".into(), 1, Some(shipledger_core::weight::Weight::from_grams(700))),
        ]
    );
    assert_eq!(multi.lines.len(), 3, "the shipping charge line is not a parcel item");
    assert_eq!(multi.shipping_paid, Some(Money::from_minor(395, Currency::GBP)), "it is what the customer paid for shipping");
    assert_eq!(multi.ship_to.country.as_deref(), Some("GB"));
    assert!(multi.ship_to.street1.is_some() && multi.ship_to.postal_code.is_some() && multi.ship_to.city.is_some());

    let skus: Vec<String> = orders.iter().flat_map(|o| o.lines.iter().filter_map(|l| l.sku.clone())).collect();
    let products = erp.products(&skus).await.unwrap();
    let gift = products.iter().find(|p| p.sku == "GIFT-CARD-BOX").expect("the gift box is a known product");
    assert_eq!(gift.unit_weight, None);

    let verdict = |o: &ErpOrder| check(o, |sku| products.iter().find(|p| p.sku == sku).cloned(), &GatePolicy::default());
    assert!(matches!(verdict(multi), Verdict::Release { .. }), "{:?}", verdict(multi));
    assert!(matches!(verdict(by_reference(&orders, &db, "SHOP-1001")), Verdict::Release { .. }));
    let unpaid = by_reference(&orders, &db, "SHOP-1003");
    assert_eq!(unpaid.payment.state, PaymentState::Unpaid);
    let Verdict::Hold { findings } = verdict(unpaid) else { panic!("the unpaid sale is held") };
    assert!(findings.iter().any(|f| f.kind == ExceptionKind::HeldUnpaid), "{findings:?}");
    let Verdict::Hold { findings } = verdict(by_reference(&orders, &db, "SHOP-1004")) else { panic!("the weightless sale is held") };
    assert!(findings.iter().any(|f| f.kind == ExceptionKind::HeldMissingWeight), "{findings:?}");
    let us = by_reference(&orders, &db, "SHOP-1004");
    assert_eq!((us.ship_to.country.as_deref(), us.ship_to.region.as_deref()), (Some("US"), Some("NY")));

    // Nothing new after the last sale.
    let last = orders.last().unwrap();
    assert!(erp.changed_orders(Some(&Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() }), 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn two_parcels_are_two_tryton_shipments_packed_with_their_tracking_and_done_on_their_scans() {
    let Some(db) = TrytonDb::create("parcels") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let sale = by_reference(&orders, &db, "SHOP-1002");
    let (tee, mug, hood) = (line_of(sale, "TEE-BLK-M"), line_of(sale, "MUG-WHT"), line_of(sale, "HOOD-GRY-L"));

    // Parcel 1: one of the two T-shirts and the mug.
    let first = label(sale, 1, "RM100000001GB", vec![(tee.clone(), 1), (mug.clone(), 1)], FulfilmentState::Packed);
    let packed = erp.record_fulfilment(&first).await.unwrap();
    assert_eq!(packed.state, FulfilmentState::Packed);
    assert_eq!(packed.lines, {
        let mut l = vec![(tee.clone(), 1), (mug.clone(), 1)];
        l.sort();
        l
    });
    assert_eq!(packed.packages[0].tracking_number, "RM100000001GB");
    assert_eq!(packed.packages[0].cost, Some(Money::from_minor(410, Currency::USD)));
    // The same write again (a retried job) changes nothing.
    assert_eq!(erp.record_fulfilment(&first).await.unwrap().id, packed.id);
    let parcels = tryton_get(&db, "stock.package", &["shipping_reference"], Some(json!([["shipping_reference", "=", "RM100000001GB"]]))).await;
    assert_eq!(parcels.as_array().unwrap().len(), 1, "one Tryton package for the label, however often it is written");

    // Parcel 2: the rest, which Tryton put in a new waiting shipment.
    let second = label(sale, 2, "RM100000002GB", vec![(tee.clone(), 1), (hood.clone(), 1)], FulfilmentState::Packed);
    assert_eq!(erp.record_fulfilment(&second).await.unwrap().state, FulfilmentState::Packed);
    let beyond = label(sale, 3, "RM100000003GB", vec![(hood.clone(), 1)], FulfilmentState::Packed);
    let err = erp.record_fulfilment(&beyond).await.unwrap_err();
    assert!(matches!(err, ErpError::Refused { .. }), "nothing is left to ship: {err:?}");

    // First scans complete them, one at a time.
    let done = erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Completed, ..first.clone() }).await.unwrap();
    assert_eq!(done.state, FulfilmentState::Completed);
    let again = erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Completed, ..first.clone() }).await.unwrap();
    assert_eq!(again.id, done.id, "a repeated completion is recognised as done");
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_state"], None).await;
    assert_eq!(state["shipment_state"], "partially shipped");
    erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Completed, ..second.clone() }).await.unwrap();

    let docs = erp.fulfilments(&sale.erp_id).await.unwrap();
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|d| d.state == FulfilmentState::Completed));
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_state"], None).await;
    assert_eq!(state["shipment_state"], "sent", "Tryton itself says the sale is shipped");
    let mut refs: Vec<String> = shipments_of(&db, &sale.erp_id)
        .await
        .iter()
        .filter(|s| s["state"] == "done")
        .map(|s| s["shipping_reference"].as_str().unwrap().to_string())
        .collect();
    refs.sort();
    assert_eq!(refs, ["RM100000001GB", "RM100000002GB"]);
}

#[tokio::test]
async fn a_voided_label_cancels_its_packed_shipment_and_the_goods_wait_for_the_next_label() {
    let Some(db) = TrytonDb::create("void") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let sale = by_reference(&orders, &db, "SHOP-1001");
    let lines: Vec<(String, u32)> = sale.physical_lines().map(|l| (l.line_id.clone(), l.quantity)).collect();

    let voided = label(sale, 10, "RM200000001GB", lines.clone(), FulfilmentState::Packed);
    erp.record_fulfilment(&voided).await.unwrap();
    let cancelled = erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Cancelled, ..voided.clone() }).await.unwrap();
    assert_eq!(cancelled.state, FulfilmentState::Cancelled);
    assert_eq!(cancelled.packages[0].tracking_number, "RM200000001GB", "our record still names the voided label");
    // In Tryton the dead number is marked on the cancelled shipment and its parcel,
    // so looking the number up finds no parcel that seems to be on its way.
    let by_number = |number: &'static str| {
        let db = &db;
        async move {
            let shipments = tryton_get(db, "stock.shipment.out", &["state"], Some(json!([["shipping_reference", "=", number]]))).await;
            let packages = tryton_get(db, "stock.package", &["id"], Some(json!([["shipping_reference", "=", number]]))).await;
            (shipments.as_array().unwrap().len(), packages.as_array().unwrap().len())
        }
    };
    assert_eq!(by_number("RM200000001GB").await, (0, 0), "no shipment or parcel carries the voided number as live");
    assert_eq!(by_number("VOID-RM200000001GB").await, (1, 1), "the cancelled shipment and its parcel keep it, marked");
    // Cancelling twice is the same cancellation.
    assert_eq!(erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Cancelled, ..voided.clone() }).await.unwrap().id, cancelled.id);

    let live = label(sale, 11, "RM200000002GB", lines.clone(), FulfilmentState::Completed);
    let done = erp.record_fulfilment(&live).await.unwrap();
    assert_eq!(done.state, FulfilmentState::Completed);
    let shipments = shipments_of(&db, &sale.erp_id).await;
    let done_refs: Vec<_> = shipments.iter().filter(|s| s["state"] == "done").map(|s| s["shipping_reference"].clone()).collect();
    assert_eq!(done_refs, vec![json!("RM200000002GB")], "only the live number is on a done shipment");
    assert_eq!(by_number("RM200000002GB").await, (1, 1), "the live number finds the live shipment and its parcel");
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_state"], None).await;
    assert_eq!(state["shipment_state"], "sent");

    // A label voided after the parcel was done: Tryton is not asked to undo it.
    let err = erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Cancelled, ..live }).await.unwrap_err();
    let ErpError::Refused { message, .. } = err else { panic!("expected a refusal") };
    assert!(message.contains("done"), "{message}");
}

#[tokio::test]
async fn a_shipping_cost_journal_posts_in_gbp_with_the_usd_original_once_and_an_unbalanced_one_leaves_nothing() {
    let Some(db) = TrytonDb::create("journal") else { return };
    let erp = client(&db);
    assert_eq!(erp.base_currency().await.unwrap(), Currency::GBP);
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let usd = erp.fx_quote(Currency::USD, Currency::GBP, today).await.unwrap().expect("Tryton has a USD rate");
    assert_eq!((usd.rate_from, usd.rate_to), (Decimal::new(125, 2), Decimal::ONE), "1 GBP = 1.25 USD lately, GBP's own rate 1");
    let old = erp.fx_quote(Currency::GBP, Currency::USD, date(2026, 1, 1)).await.unwrap().unwrap();
    assert_eq!((old.rate_from, old.rate_to, old.date), (Decimal::ONE, Decimal::new(127, 2), date(2000, 1, 1)));
    assert!(usd.source.starts_with("tryton:currency.currency.rate:"), "{}", usd.source);

    let gbp = |m| Money::from_minor(m, Currency::GBP);
    let cost = Money::from_minor(640, Currency::USD);
    let converted = gbp(512); // 6.40 USD at 1.25
    let mut journal = JournalWrite {
        key: "costs:tryton-test:2026-11-24".into(),
        date: today,
        memo: "ShipStation shipping costs".into(),
        lines: vec![
            JournalLine { account: "5.1.3".into(), debit: converted, credit: gbp(0), original: Some(cost), memo: Some("label RM1".into()) },
            JournalLine { account: "2.1.1".into(), debit: gbp(0), credit: gbp(500), original: Some(cost), memo: None },
        ],
    };
    let err = erp.post_journal(&journal).await.unwrap_err();
    let ErpError::Refused { message, .. } = &err else { panic!("expected Refused, got {err:?}") };
    assert!(message.to_lowercase().contains("balance"), "Tryton's own words: {message}");
    let drafts = tryton_get(&db, "account.move", &["state"], Some(json!([["description", "like", "%costs:tryton-test%"]]))).await;
    assert_eq!(drafts, json!([]), "the refused move is not left behind");

    journal.lines[1].credit = converted;
    let posted = erp.post_journal(&journal).await.unwrap();
    assert!(posted.posted);
    assert_eq!(posted.lines.len(), 2);
    assert!(posted.lines.iter().all(|l| l.original == Some(cost)));
    assert_eq!(erp.post_journal(&journal).await.unwrap().id, posted.id, "the same key is not posted twice");

    let moves = tryton_get(
        &db,
        "account.move",
        &["state", "lines.debit", "lines.credit", "lines.second_currency.code", "lines.amount_second_currency"],
        Some(json!([["description", "like", "%costs:tryton-test%"]])),
    )
    .await;
    let moves = moves.as_array().unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["state"], "posted");
    let dec = |v: &Value| v["decimal"].as_str().unwrap().parse::<Decimal>().unwrap();
    let lines = moves[0]["lines"].as_array().unwrap();
    let debit: Decimal = lines.iter().map(|l| dec(&l["debit"])).sum();
    let credit: Decimal = lines.iter().map(|l| dec(&l["credit"])).sum();
    assert_eq!((debit, credit), (Decimal::new(512, 2), Decimal::new(512, 2)), "balanced in GBP");
    assert!(lines.iter().all(|l| l["second_currency"]["code"] == "USD"));
    // The USD original carries the line's sign: + on the debit, - on the credit.
    for l in lines {
        let second = dec(&l["amount_second_currency"]);
        let balance = dec(&l["debit"]) - dec(&l["credit"]);
        assert_eq!(second.is_sign_negative(), balance.is_sign_negative(), "{l}");
        assert_eq!(second.abs(), Decimal::new(640, 2));
    }
}

#[tokio::test]
async fn stock_is_read_from_the_warehouse_and_adjusted_once_per_key() {
    let Some(db) = TrytonDb::create("stock") else { return };
    let erp = client(&db);
    let before = erp.stock("MUG-WHT").await.unwrap();
    assert!(before.on_hand > 0, "{before:?}");
    let adjustment = StockAdjustment { key: "adj:tryton-test:1".into(), sku: "MUG-WHT".into(), delta: -3, reason: "damaged in the warehouse".into() };
    let after = erp.adjust_stock(&adjustment).await.unwrap();
    assert_eq!(after.on_hand, before.on_hand - 3);
    assert_eq!(erp.adjust_stock(&adjustment).await.unwrap().on_hand, before.on_hand - 3, "the same key adjusts once");
    assert!(matches!(erp.stock("NO-SUCH-SKU").await, Err(ErpError::NotFound { .. })));
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_says_where_to_look() {
    let Some(db) = TrytonDb::create("auth") else { return };
    let erp = TrytonClient::new(&db.url, "not-the-key", TrytonSettings::default()).unwrap();
    let err = erp.changed_orders(None, 10).await.unwrap_err();
    assert!(matches!(err, ErpError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("API key"), "{err}");
}

#[tokio::test]
async fn a_shipment_a_clerk_already_assigned_is_still_trimmed_to_the_parcel() {
    let Some(db) = TrytonDb::create("assigned") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let sale = by_reference(&orders, &db, "SHOP-1002");
    let waiting = shipments_of(&db, &sale.erp_id).await;
    assert_eq!(waiting.len(), 1);
    tryton_button(&db, &format!("stock.shipment.out/{}/assign_try", waiting[0]["id"])).await;

    let only_the_mug = label(sale, 20, "RM300000001GB", vec![(line_of(sale, "MUG-WHT"), 1)], FulfilmentState::Packed);
    let packed = erp.record_fulfilment(&only_the_mug).await.unwrap();
    assert_eq!(packed.lines, vec![(line_of(sale, "MUG-WHT"), 1)], "only the mug is in the packed shipment");
    let rest = shipments_of(&db, &sale.erp_id).await;
    assert!(rest.iter().any(|s| s["state"] == "waiting"), "the T-shirts and the hoodie wait for their own label: {rest:?}");
}

#[tokio::test]
async fn a_void_interrupted_after_tryton_cancelled_the_shipment_is_finished_on_the_retry() {
    let Some(db) = TrytonDb::create("voidresume") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let sale = by_reference(&orders, &db, "SHOP-1001");
    let lines: Vec<(String, u32)> = sale.physical_lines().map(|l| (l.line_id.clone(), l.quantity)).collect();
    let write = label(sale, 30, "RM400000001GB", lines.clone(), FulfilmentState::Packed);
    erp.record_fulfilment(&write).await.unwrap();
    // The process died right after Tryton cancelled the shipment.
    let packed = shipments_of(&db, &sale.erp_id).await;
    tryton_button(&db, &format!("stock.shipment.out/{}/cancel", packed[0]["id"])).await;
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_state"], None).await;
    assert_eq!(state["shipment_state"], "exception", "Tryton now waits for someone to handle it");

    let retried = erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Cancelled, ..write }).await.unwrap();
    assert_eq!(retried.state, FulfilmentState::Cancelled);
    let marked = tryton_get(&db, &format!("stock.shipment.out/{}", packed[0]["id"]), &["shipping_reference", "packages.shipping_reference"], None).await;
    assert_eq!(marked["shipping_reference"], "VOID-RM400000001GB", "the retry marks the dead number too");
    assert_eq!(marked["packages"][0]["shipping_reference"], "VOID-RM400000001GB");
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_state"], None).await;
    assert_eq!(state["shipment_state"], "waiting", "the goods wait for the next label again");
    let next = label(sale, 31, "RM400000002GB", lines, FulfilmentState::Completed);
    assert_eq!(erp.record_fulfilment(&next).await.unwrap().state, FulfilmentState::Completed);
}

fn gate(order: &ErpOrder, products: &[shipledger_core::order::Product]) -> Verdict {
    check(order, |sku| products.iter().find(|p| p.sku == sku).cloned(), &GatePolicy::default())
}

fn held_for(verdict: &Verdict) -> Vec<ExceptionKind> {
    match verdict {
        Verdict::Hold { findings } => findings.iter().map(|f| f.kind).collect(),
        Verdict::Release { .. } => Vec::new(),
    }
}

async fn read_one(erp: &TrytonClient, id: &str) -> ErpOrder {
    let mut read = erp.orders(&[id.to_string()]).await.unwrap();
    assert_eq!(read.len(), 1, "sale {id} read by id");
    read.remove(0)
}

#[tokio::test]
async fn a_held_sale_read_again_by_id_shows_the_weight_set_on_its_product_and_the_postal_code_fixed_on_its_address() {
    let Some(db) = TrytonDb::create("recheck") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let last = orders.last().unwrap();
    let feed_end = Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() };
    let weightless = by_reference(&orders, &db, "SHOP-1004").clone();
    let skus: Vec<String> = weightless.lines.iter().filter_map(|l| l.sku.clone()).collect();
    assert_eq!(held_for(&gate(&weightless, &erp.products(&skus).await.unwrap())), [ExceptionKind::HeldMissingWeight]);

    // The clerk sets the weight where the hold message says: on the product.
    let mug = tryton_get(&db, &format!("product.template/{}", db.id("/products/MUG-WHT/template_id")), &["weight_uom"], None).await;
    let kg = mug["weight_uom"].as_i64().or_else(|| mug["weight_uom"]["id"].as_i64()).expect("the kilogram's id");
    db.send(
        reqwest::Method::PUT,
        &format!("product.template/{}", db.id("/products/GIFT-CARD-BOX/template_id")),
        json!({"weight": 0.12, "weight_uom": kg}),
    )
    .await;
    assert!(erp.changed_orders(Some(&feed_end), 10).await.unwrap().is_empty(), "the sale itself did not change: the feed never shows the fix");
    let fixed = read_one(&erp, &weightless.erp_id).await;
    let gift = fixed.lines.iter().find(|l| l.sku.as_deref() == Some("GIFT-CARD-BOX")).unwrap();
    assert_eq!(gift.unit_weight, Some(shipledger_core::weight::Weight::from_grams(120)));
    assert!(matches!(gate(&fixed, &erp.products(&skus).await.unwrap()), Verdict::Release { .. }));

    // The postal code: missing on the customer's address, then fixed there.
    let sale = by_reference(&orders, &db, "SHOP-1001");
    let addr = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["shipment_address"], None).await;
    let addr = addr["shipment_address"].as_i64().or_else(|| addr["shipment_address"]["id"].as_i64()).expect("the address id");
    db.send(reqwest::Method::PUT, &format!("party.address/{addr}"), json!({"postal_code": null})).await;
    let blank = read_one(&erp, &sale.erp_id).await;
    let products = erp.products(&["MUG-WHT".to_string()]).await.unwrap();
    assert_eq!(held_for(&gate(&blank, &products)), [ExceptionKind::HeldIncompleteAddress]);
    db.send(reqwest::Method::PUT, &format!("party.address/{addr}"), json!({"postal_code": "SW1A 1AA"})).await;
    let again = read_one(&erp, &sale.erp_id).await;
    assert_eq!(again.ship_to.postal_code.as_deref(), Some("SW1A 1AA"));
    assert!(matches!(gate(&again, &products), Verdict::Release { .. }));

    // Several at once, unknown ids absent.
    let ids = vec![weightless.erp_id.clone(), "999999".into(), "not-a-sale".into(), sale.erp_id.clone()];
    let both: Vec<String> = erp.orders(&ids).await.unwrap().into_iter().map(|o| o.erp_id).collect();
    assert_eq!(both, vec![weightless.erp_id.clone(), sale.erp_id.clone()], "in the order asked");
}

#[tokio::test]
async fn a_sale_whose_shipment_is_cancelled_is_on_hold_and_once_its_moves_are_ignored_it_is_withdrawn_with_trytons_reason() {
    let Some(db) = TrytonDb::create("withdrawn") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let sale = by_reference(&orders, &db, "SHOP-1001").clone();
    assert_eq!((sale.status, sale.status_reason.as_deref()), (ErpOrderStatus::Open, None));

    let shipment = shipments_of(&db, &sale.erp_id).await;
    tryton_button(&db, &format!("stock.shipment.out/{}/cancel", shipment[0]["id"])).await;
    let cancelled = read_one(&erp, &sale.erp_id).await;
    assert_eq!(cancelled.status, ErpOrderStatus::OnHold, "Tryton waits for someone to handle the shipment exception");
    assert!(cancelled.status_reason.as_deref().unwrap().contains("shipment was cancelled"), "{:?}", cancelled.status_reason);

    // Handle the shipment exception as the wizard does: ignore the cancelled moves.
    let moves = tryton_get(&db, "stock.move", &["state", "origin"], Some(json!([["origin.sale", "=", sale.erp_id.parse::<i64>().unwrap(), "sale.line"]]))).await;
    for m in moves.as_array().unwrap() {
        assert_eq!(m["state"], "cancelled");
        let line = m["origin"].as_str().and_then(|o| o.strip_prefix("sale.line,")).expect("a sale line origin");
        db.send(reqwest::Method::PUT, &format!("sale.line/{line}"), json!({"moves_ignored": [["add", [m["id"]]]]})).await;
    }
    tryton_button(&db, &format!("sale.sale/{}/process", sale.erp_id)).await;
    let state = tryton_get(&db, &format!("sale.sale/{}", sale.erp_id), &["state", "shipment_state"], None).await;
    assert_eq!((state["state"].as_str(), state["shipment_state"].as_str()), (Some("done"), Some("none")), "done with nothing shipped");
    let last = orders.last().unwrap();
    let after = erp.changed_orders(Some(&Cursor { updated_at: last.updated_at, erp_id: last.erp_id.clone() }), 10).await.unwrap();
    assert!(after.iter().all(|o| o.erp_id != sale.erp_id), "a done sale is not in the ready set: only a read by id sees it");

    let withdrawn = read_one(&erp, &sale.erp_id).await;
    assert_eq!(withdrawn.status, ErpOrderStatus::Cancelled);
    assert_eq!(
        withdrawn.status_reason.as_deref(),
        Some("sale done in Tryton with its shipment cancelled and the moves ignored: nothing is left to ship")
    );
}

#[tokio::test]
async fn a_sale_paid_by_a_submitted_or_processing_payment_is_authorised_only_until_the_payment_succeeds() {
    let Some(db) = TrytonDb::create("authorised") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;
    let unpaid = by_reference(&orders, &db, "SHOP-1003").clone();
    let seed = db.seed["sales"].as_array().unwrap().iter().find(|s| s["reference"] == "SHOP-1003").unwrap().clone();
    let party = tryton_get(&db, &format!("sale.sale/{}", unpaid.erp_id), &["party"], None).await;
    let party = party["party"].as_i64().or_else(|| party["party"]["id"].as_i64()).unwrap();
    let payment = db
        .send(
            reqwest::Method::POST,
            "account.payment",
            json!({
                "company": db.id("/company/id"), "journal": db.id("/payment_journal_id"), "kind": "receivable",
                "party": party, "origin": format!("sale.sale,{}", unpaid.erp_id),
                "amount": {"__class__": "Decimal", "decimal": seed["total_amount"].as_str().unwrap()},
                "date": {"__class__": "date", "year": 2026, "month": 11, "day": 24},
            }),
        )
        .await;
    let pid = payment.as_i64().or_else(|| payment["id"].as_i64()).or_else(|| payment[0]["id"].as_i64()).expect("the payment id");
    let mut states = Vec::new();
    tryton_button(&db, &format!("account.payment/{pid}/submit")).await;
    states.push(("submitted", read_one(&erp, &unpaid.erp_id).await.payment.state));
    // Tryton's "Process Payments" wizard is not on the REST API: a clerk runs it.
    db.proteus(&format!("payment = Model.get('account.payment')({pid})\npayment.click('process_wizard')\npayment.reload()\nassert payment.state == 'processing', payment.state"));
    states.push(("processing", read_one(&erp, &unpaid.erp_id).await.payment.state));
    tryton_button(&db, &format!("account.payment/{pid}/succeed")).await;
    states.push(("succeeded", read_one(&erp, &unpaid.erp_id).await.payment.state));
    assert_eq!(
        states,
        [("submitted", PaymentState::Authorised), ("processing", PaymentState::Authorised), ("succeeded", PaymentState::Captured)],
        "only a succeeded payment is money"
    );
    let captured = read_one(&erp, &unpaid.erp_id).await;
    assert_eq!(captured.payment.source, format!("tryton:account.payment:{pid}"));
    assert!(matches!(gate(&captured, &erp.products(&["HOOD-GRY-L".to_string()]).await.unwrap()), Verdict::Release { .. }));
}

#[tokio::test]
async fn sales_whose_product_or_address_changed_are_named_although_the_sales_themselves_did_not_change() {
    let Some(db) = TrytonDb::create("touched") else { return };
    let erp = client(&db);
    let sale_of = |reference: &str| {
        db.seed["sales"].as_array().unwrap().iter().find(|s| s["reference"] == reference).unwrap()["id"].as_i64().unwrap().to_string()
    };
    // Nothing in the seed is newer than a moment from now.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
    assert!(erp.orders_touched_since(later).await.unwrap().is_empty());

    let before = jiff::Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let untouched = erp.orders_touched_since(before).await.unwrap();
    let mug = tryton_get(&db, &format!("product.template/{}", db.id("/products/MUG-WHT/template_id")), &["weight_uom"], None).await;
    let kg = mug["weight_uom"].as_i64().or_else(|| mug["weight_uom"]["id"].as_i64()).unwrap();
    db.send(
        reqwest::Method::PUT,
        &format!("product.template/{}", db.id("/products/GIFT-CARD-BOX/template_id")),
        json!({"weight": 0.12, "weight_uom": kg}),
    )
    .await;
    let touched = erp.orders_touched_since(before).await.unwrap();
    assert!(touched.contains(&sale_of("SHOP-1004")), "the gift box's sale: {touched:?}");
    assert!(!untouched.contains(&sale_of("SHOP-1004")), "{untouched:?}");
    assert!(!touched.contains(&sale_of("SHOP-1002")), "a sale without the gift box: {touched:?}");

    let addr = tryton_get(&db, &format!("sale.sale/{}", sale_of("SHOP-1003")), &["shipment_address"], None).await;
    let addr = addr["shipment_address"].as_i64().or_else(|| addr["shipment_address"]["id"].as_i64()).unwrap();
    db.send(reqwest::Method::PUT, &format!("party.address/{addr}"), json!({"postal_code": "EH2 2PR"})).await;
    let touched = erp.orders_touched_since(before).await.unwrap();
    assert!(touched.contains(&sale_of("SHOP-1003")) && touched.contains(&sale_of("SHOP-1004")), "{touched:?}");
}

/// A Tryton REST decimal (`{"__class__": "Decimal", "decimal": "1.25"}`).
fn tryton_decimal(v: &Value) -> Decimal {
    let text = v.get("decimal").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| v.to_string());
    text.trim_matches('"').parse().unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[tokio::test]
async fn a_quote_is_trytons_own_rate_rows_and_converting_by_it_matches_trytons_compute() {
    let Some(db) = TrytonDb::create("fxquote") else { return };
    let erp = client(&db);
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let q = erp.fx_quote(Currency::USD, Currency::GBP, today).await.unwrap().expect("Tryton has a USD rate");
    // The rows the quote names, read straight from Tryton: USD's latest, GBP's own.
    let ids: Vec<i64> = q.source.rsplit(':').next().unwrap().split('+').map(|i| i.parse().unwrap()).collect();
    assert_eq!(ids, vec![db.id("/rates/1/id"), ids[1]], "USD's row is the seed's recent one: {}", q.source);
    let usd_row = db.get(&format!("currency.currency.rate/{}", ids[0]), &["rate", "currency.code"], None).await;
    let gbp_row = db.get(&format!("currency.currency.rate/{}", ids[1]), &["rate", "currency.code"], None).await;
    assert_eq!(usd_row["currency"]["code"], "USD", "{usd_row}");
    assert_eq!(gbp_row["currency"]["code"], "GBP", "{gbp_row}");
    assert_eq!((q.rate_from, q.rate_to), (tryton_decimal(&usd_row["rate"]), tryton_decimal(&gbp_row["rate"])));
    let recent: jiff::civil::Date = db.seed.pointer("/rates/1/date").and_then(Value::as_str).unwrap().parse().unwrap();
    assert_eq!(q.date, recent, "the USD row's date; GBP's own (of 2000) does not age the quote");

    // Tryton's own currency.currency.compute on the same amount and day.
    let amount = Money::from_minor(1_234_567, Currency::USD);
    let ours = shipledger_core::fx::Conversion::make("k", amount, Currency::GBP, q.rate_from, q.rate_to, q.date, today, shipledger_core::fx::RateSource::Erp).unwrap();
    let out = std::env::temp_dir().join(format!("{}-compute.txt", db.name));
    db.proteus(&format!(
        "import datetime\nfrom decimal import Decimal\nfrom trytond.pool import Pool\nfrom trytond.transaction import Transaction\n\
         with Transaction().start(DB, 0, readonly=True):\n    C = Pool(DB).get('currency.currency')\n    usd, = C.search([('code', '=', 'USD')])\n    gbp, = C.search([('code', '=', 'GBP')])\n\
         \x20   with Transaction().set_context(date=datetime.date({}, {}, {})):\n        r = C.compute(usd, Decimal('12345.67'), gbp)\n\
         open({:?}, 'w').write(str(r))\n",
        today.year(),
        today.month(),
        today.day(),
        out.display().to_string()
    ));
    let theirs: Decimal = std::fs::read_to_string(&out).unwrap().trim().parse().unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(ours.base.to_decimal(), theirs, "the same rule as Tryton's: 12,345.67 × 1 ÷ 1.25");
    assert_eq!(ours.base, Money::from_minor(987_654, Currency::GBP));
}

/// Costs of one window as cost batching plans them: USD and EUR labels converted at
/// Tryton's own rates (1 GBP = 1.25 USD lately, 1.17 EUR), read from Tryton.
async fn batched_journal(erp: &TrytonClient, day: jiff::civil::Date) -> (JournalWrite, Vec<shipledger_core::fx::Conversion>) {
    use shipledger_core::cost::{Charge, CostEntry, CostKind, CostSource, LabelFacts, NewCostEntry};
    use shipledger_core::fx::{Conversion, RateSource};
    use shipledger_core::journal::{CarrierAccountKind, CostBatch, JournalAccounts, PeriodState, PlanContext, build_journal, plan_batches};
    let at = day.at(12, 0, 0, 0).to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
    let entry = |key: &str, carrier: &str, amount: Money| CostEntry {
        id: 0,
        connection: "acme-tryton".into(),
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
    let mut entries = Vec::new();
    let mut conversions = Vec::new();
    for e in [
        entry("label:1/postage/0", "royal_mail", Money::from_minor(640, Currency::USD)),
        entry("label:2/postage/0", "royal_mail", Money::from_minor(333, Currency::USD)),
        entry("label:3/postage/0", "dhl", Money::from_minor(1015, Currency::EUR)),
    ] {
        // Tryton's rate of the currency against GBP (1 GBP = rate units).
        let q = erp.fx_quote(e.amount.currency(), Currency::GBP, day).await.unwrap().expect("Tryton has the rate");
        let c = Conversion::make(e.entry_key.clone(), e.amount, Currency::GBP, q.rate_from, q.rate_to, q.date, day, RateSource::Erp).unwrap();
        conversions.push(c.clone());
        entries.push((e, Some(c)));
    }
    let posted = std::collections::BTreeSet::new();
    let ctx = PlanContext { connection: "acme-tryton", policy: CostBatch::Daily, tz: &jiff::tz::TimeZone::UTC, posted: &posted, revisions: &Default::default(), today: day, until: Some(day) };
    let plan = plan_batches(&entries, &ctx, |_| PeriodState::Open);
    let accounts = JournalAccounts {
        shipping_expense: "5.1.3".into(),
        shipping_expense_by_carrier: Default::default(),
        prepaid_postage: None,
        accrued_shipping: Some("2.1.1".into()),
        carrier_accounts: Default::default(),
        default_kind: CarrierAccountKind::Accrued,
        journal: "MISC".into(),
    };
    (build_journal(&plan.batches[0], &accounts).unwrap(), conversions)
}

#[tokio::test]
async fn a_batched_journal_in_usd_and_eur_posts_balanced_with_second_currency_amounts_tryton_shows() {
    let Some(db) = TrytonDb::create("batched") else { return };
    let erp = client(&db);
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    assert_eq!(erp.period_state(today).await.unwrap(), shipledger_erp::PeriodState::Open, "the seed opens this year's periods");
    let (journal, conversions) = batched_journal(&erp, today).await;
    // Recomputed from the label costs and the seed's rates: 6.40/1.25 = 5.12,
    // 3.33/1.25 = 2.664 → 2.66, 10.15/1.17 = 8.675... → 8.68.
    let sum: i64 = conversions.iter().map(|c| c.base.minor()).sum();
    assert_eq!(sum, 512 + 266 + 868);
    let posted = erp.post_journal(&journal).await.unwrap();
    assert!(posted.posted);
    posted.verify(&journal).unwrap();
    assert_eq!(erp.post_journal(&journal).await.unwrap().id, posted.id, "the batch key posts once");

    let moves = tryton_get(
        &db,
        "account.move",
        &["state", "lines.account.code", "lines.debit", "lines.credit", "lines.second_currency.code", "lines.amount_second_currency"],
        Some(json!([["description", "like", format!("%[{}]", journal.key)]])),
    )
    .await;
    let moves = moves.as_array().unwrap();
    assert_eq!(moves.len(), 1, "one move for the batch");
    assert_eq!(moves[0]["state"], "posted");
    let dec = |v: &Value| v["decimal"].as_str().unwrap().parse::<Decimal>().unwrap();
    let mut lines: Vec<(String, Decimal, Decimal, String, Decimal)> = moves[0]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["account."]["code"].as_str().or(l["account"]["code"].as_str()).unwrap_or_default().to_string(),
                dec(&l["debit"]),
                dec(&l["credit"]),
                l["second_currency."]["code"].as_str().or(l["second_currency"]["code"].as_str()).unwrap_or_default().to_string(),
                dec(&l["amount_second_currency"]),
            )
        })
        .collect();
    lines.sort_by(|a, b| (a.3.clone(), a.0.clone()).cmp(&(b.3.clone(), b.0.clone())));
    let d = |m: i64| Decimal::new(m, 2);
    assert_eq!(
        lines,
        vec![
            ("2.1.1".into(), d(0), d(868), "EUR".into(), d(-1015)),
            ("5.1.3".into(), d(868), d(0), "EUR".into(), d(1015)),
            ("2.1.1".into(), d(0), d(778), "USD".into(), d(-973)),
            ("5.1.3".into(), d(778), d(0), "USD".into(), d(973)),
        ],
        "balanced in GBP, each line with its second currency"
    );
    let debit: Decimal = lines.iter().map(|l| l.1).sum();
    assert_eq!(debit, d(sum), "the journal's base total is the sum of the conversions");
}

#[tokio::test]
async fn a_closed_tryton_period_is_reported_closed_and_never_written() {
    let Some(db) = TrytonDb::create("closedperiod") else { return };
    let erp = client(&db);
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // A day of last year's fiscal year (seeded with monthly periods, no moves).
    let last_year = jiff::civil::date(today.year() - 1, today.month(), 15);
    let day_json = json!({"__class__": "date", "year": last_year.year(), "month": last_year.month(), "day": last_year.day()});
    let periods = tryton_get(
        &db,
        "account.period",
        &["state"],
        Some(json!([["type", "=", "standard"], ["start_date", "<=", day_json], ["end_date", ">=", day_json]])),
    )
    .await;
    let id = periods[0]["id"].as_i64().expect("a period for last year");
    assert_eq!(erp.period_state(last_year).await.unwrap(), shipledger_erp::PeriodState::Open);
    tryton_button(&db, &format!("account.period/{id}/close")).await;
    assert_eq!(erp.period_state(last_year).await.unwrap(), shipledger_erp::PeriodState::Closed);
    assert_eq!(erp.period_state(jiff::civil::date(1990, 1, 1)).await.unwrap(), shipledger_erp::PeriodState::Missing);

    let (journal, _) = batched_journal(&erp, last_year).await;
    let err = erp.post_journal(&journal).await.unwrap_err();
    let ErpError::PeriodNotOpen { date: day, state, .. } = &err else { panic!("expected PeriodNotOpen, got {err:?}") };
    assert_eq!((*day, *state), (last_year, shipledger_erp::PeriodState::Closed));
    let message = err.to_string();
    assert!(message.contains("closed") && message.contains(&last_year.to_string()), "{message}");
    let moves = tryton_get(&db, "account.move", &["state"], Some(json!([["description", "like", format!("%[{}]", journal.key)]]))).await;
    assert_eq!(moves, json!([]), "nothing written into the closed period");
}

#[tokio::test]
async fn the_tryton_ledger_check_names_a_missing_account_and_finds_the_journal_and_todays_period() {
    let Some(db) = TrytonDb::create("ledgercheck") else { return };
    let erp = client(&db);
    let accounts = shipledger_core::journal::JournalAccounts {
        shipping_expense: "5.1.3".into(),
        shipping_expense_by_carrier: std::collections::BTreeMap::from([("ups".to_string(), "9.9.9".to_string())]),
        prepaid_postage: None,
        accrued_shipping: Some("2.1.1".into()),
        carrier_accounts: Default::default(),
        default_kind: shipledger_core::journal::CarrierAccountKind::Accrued,
        journal: "MISC".into(),
    };
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    // The company's own zone is read (the seed leaves it unset or names an IANA zone).
    let zone = erp.company_timezone().await.unwrap();
    assert!(zone.as_deref().is_none_or(|z| jiff::tz::TimeZone::get(z).is_ok()), "{zone:?}");
    let items = shipledger_erp::check_ledger(&erp, &accounts, today).await;
    let got: Vec<(String, shipledger_erp::CheckStatus)> = items.iter().map(|i| (i.what.clone(), i.status)).collect();
    use shipledger_erp::CheckStatus as S;
    assert_eq!(
        got,
        vec![
            ("account 2.1.1".to_string(), S::Ok),
            ("account 5.1.3".to_string(), S::Ok),
            ("account 9.9.9".to_string(), S::Failed),
            ("journal MISC".to_string(), S::Ok),
            (format!("period of {today}"), S::Ok),
        ],
        "{items:?}"
    );
}

/// What the connector says these sales invoiced, in one call.
async fn invoiced_of(erp: &TrytonClient, sales: &[&str]) -> shipledger_erp::Invoiced {
    let ids: Vec<String> = sales.iter().map(|s| s.to_string()).collect();
    erp.invoiced(&ids).await.unwrap().expect("the Tryton connector reports invoicing")
}

async fn invoiced(erp: &TrytonClient, sale: &str) -> std::collections::BTreeMap<String, u32> {
    invoiced_of(erp, &[sale]).await.remove(sale).unwrap_or_else(|| panic!("sale {sale} is in the answer"))
}

#[tokio::test]
async fn invoiced_quantities_are_what_tryton_posted_to_the_customer_less_credit_notes_and_never_a_draft() {
    use std::collections::BTreeMap;
    let Some(db) = TrytonDb::create("invoiced") else { return };
    let erp = client(&db);
    let orders = all_orders(&erp).await;

    // Invoiced when processed (invoice method `order`), posted and paid, then shipped:
    // every goods line in full, under the order's line ids; the shipping charge is no
    // parcel item, so it is not among them.
    let shop = by_reference(&orders, &db, "SHOP-1002").clone();
    let lines: BTreeMap<String, u32> = shop.physical_lines().map(|l| (l.line_id.clone(), l.quantity)).collect();
    let parcel = label(&shop, 30, "RM300000001GB", lines.clone().into_iter().collect(), FulfilmentState::Packed);
    erp.record_fulfilment(&parcel).await.unwrap();
    erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Completed, ..parcel }).await.unwrap();
    assert_eq!(invoiced(&erp, &shop.erp_id).await, lines);

    // Invoiced on fulfilment: nothing until goods leave; then Tryton drafts an invoice
    // for what left, which is no revenue until the accountant posts it.
    let placed = db.place_sale("SHOP-2001", "Alice Smith", &[("TEE-BLK-M", 2), ("MUG-WHT", 1)], "fulfillment").await;
    let sale = read_one(&erp, &placed.to_string()).await;
    assert!(db.invoices_of(placed).await.is_empty());
    assert_eq!(invoiced(&erp, &sale.erp_id).await, BTreeMap::new(), "a sale with nothing invoiced maps to an empty map");
    let tee = line_of(&sale, "TEE-BLK-M");
    let first = label(&sale, 31, "RM300000002GB", vec![(tee.clone(), 1)], FulfilmentState::Packed);
    erp.record_fulfilment(&first).await.unwrap();
    erp.record_fulfilment(&FulfilmentWrite { state: FulfilmentState::Completed, ..first }).await.unwrap();
    let drafts = db.invoices_of(placed).await;
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    assert_eq!(drafts[0]["state"], "draft", "Tryton drafted the invoice of what shipped: {drafts:?}");
    assert_eq!(invoiced(&erp, &sale.erp_id).await, BTreeMap::new(), "shipped, its invoice still a draft: nothing invoiced");
    db.post_invoice(drafts[0]["id"].as_i64().unwrap()).await;
    assert_eq!(invoiced(&erp, &sale.erp_id).await, BTreeMap::from([(tee.clone(), 1)]), "the one T-shirt of two that was posted");

    // A credit note for one of SHOP-1002's two T-shirts takes it off once posted.
    let invoice = db.invoices_of(shop.erp_id.parse().unwrap()).await;
    let [paid] = invoice.as_slice() else { panic!("SHOP-1002 has its one invoice: {invoice:?}") };
    assert_eq!(paid["state"], "paid");
    let shop_tee = line_of(&shop, "TEE-BLK-M");
    db.credit_invoice(paid["id"].as_i64().unwrap(), false, Some((shop_tee.parse().unwrap(), -1)));
    let mut less = lines.clone();
    *less.get_mut(&shop_tee).unwrap() = 1;
    assert_eq!(invoiced(&erp, &shop.erp_id).await, less);

    // Refunded: the credit note is posted and the invoice it credits cancelled, so
    // neither counts (the unpaid SHOP-1003's posted invoice).
    let unpaid = by_reference(&orders, &db, "SHOP-1003").clone();
    let invoice = db.invoices_of(unpaid.erp_id.parse().unwrap()).await;
    assert_eq!(invoice[0]["state"], "posted");
    db.credit_invoice(invoice[0]["id"].as_i64().unwrap(), true, None);
    let after = db.invoices_of(unpaid.erp_id.parse().unwrap()).await;
    let mut states: Vec<&str> = after.iter().map(|i| i["state"].as_str().unwrap()).collect();
    states.sort();
    assert_eq!(states, ["cancelled", "paid"], "the invoice cancelled, its credit note posted and reconciled with it");

    // All at once (one call, two requests): every sale asked for, ids that name no
    // sale absent.
    let all = invoiced_of(&erp, &[&shop.erp_id, &sale.erp_id, &unpaid.erp_id, "999999", "not-a-sale"]).await;
    assert_eq!(
        all,
        BTreeMap::from([
            (shop.erp_id.clone(), less),
            (sale.erp_id.clone(), BTreeMap::from([(tee, 1)])),
            (unpaid.erp_id.clone(), BTreeMap::new()),
            ("999999".to_string(), BTreeMap::new()),
        ])
    );
}
