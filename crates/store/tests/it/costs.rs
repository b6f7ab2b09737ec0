//! The cost ledger in the store: an entry is recorded once however often it is
//! planned, with the label it came from and in the same commit; a reversal points at
//! what it reverses; entries list by connection, order, shipment and label time, a
//! page at a time; and nothing, not even a hand-written statement, changes one.

use shipledger_core::cost::{Charge, CostKind, CostSource, LabelFacts, NewCostEntry, entry_key, reversal_key};
use shipledger_core::{Currency, Money};
use shipledger_store::{Change, CostCursor, CostEntryFilter, StoreError};

use crate::harness::{ACME, BETA, TestDb, t};
use crate::shipments::label;

fn facts(shipment_id: i64, erp_id: &str, created: i64) -> LabelFacts {
    LabelFacts {
        shipment_key: format!("label:{shipment_id}"),
        erp_id: Some(erp_id.into()),
        ss_order_id: shipment_id + 1000,
        carrier: "royal_mail".into(),
        service: Some("rm_tracked_48".into()),
        ship_date: Some("2025-03-01".parse().unwrap()),
        label_created_at: t(created),
    }
}

fn postage(shipment_id: i64, erp_id: &str, created: i64, minor: i64, currency: Currency) -> NewCostEntry {
    let label = facts(shipment_id, erp_id, created);
    NewCostEntry {
        entry_key: entry_key(&label.shipment_key, &Charge::Postage, 0),
        kind: CostKind::Label,
        charge: Charge::Postage,
        revision: 0,
        amount: Money::from_minor(minor, currency),
        occurred_at: label.label_created_at,
        label,
        source: CostSource::ShipstationV1,
        reverses_key: None,
    }
}

fn reversal(of: &NewCostEntry, at: i64) -> NewCostEntry {
    NewCostEntry {
        entry_key: reversal_key(&of.entry_key),
        kind: CostKind::VoidReversal,
        amount: of.amount.neg(),
        occurred_at: t(at),
        reverses_key: Some(of.entry_key.clone()),
        ..of.clone()
    }
}

fn all(connection: &str) -> CostEntryFilter {
    CostEntryFilter { connection: Some(connection.into()), ..Default::default() }
}

pub async fn a_labels_cost_is_recorded_once_with_the_label_however_often_it_is_planned(db: &TestDb) -> anyhow::Result<()> {
    let entry = postage(8001, "SO-1", 100, 385, Currency::GBP);
    let mut change = Change::new(ACME, t(200));
    change.shipments.push(label(8001, 9001, Some("SO-1"), 100));
    change.cost_entries.push(entry.clone());
    let first = db.store.commit(change.clone()).await?;
    assert_eq!(first.cost_entries_recorded, vec!["label:8001/postage/0".to_string()]);
    let again = db.store.commit(Change { now: Some(t(300)), ..change }).await?;
    assert!(again.cost_entries_recorded.is_empty(), "the second plan of the same key records nothing");

    let listed = db.store.list_cost_entries(all(ACME)).await?;
    assert_eq!(listed.len(), 1);
    let got = &listed[0];
    assert_eq!(got.entry, entry, "the entry reads back as written");
    assert_eq!(got.amount, Money::from_minor(385, Currency::GBP));
    assert_eq!(got.recorded_at, t(200), "recorded by the first commit, untouched by the second");
    assert_eq!(got.reverses, None);
    assert_eq!(db.store.get_cost_entry(got.id).await?.as_ref(), Some(got));
    assert_eq!(db.store.get_cost_entry_by_key(ACME, "label:8001/postage/0").await?.as_ref(), Some(got));
    assert_eq!(db.store.get_cost_entry_by_key(BETA, "label:8001/postage/0").await?, None, "entries belong to their connection");
    assert!(db.store.list_cost_entries(all(BETA)).await?.is_empty());
    Ok(())
}

pub async fn a_reversal_points_at_the_entry_it_reverses_and_one_of_an_unknown_entry_writes_nothing(db: &TestDb) -> anyhow::Result<()> {
    let charge = postage(8002, "SO-2", 100, 895, Currency::USD);
    // A label first seen voided: its charge and the charge's reversal in one change.
    let mut change = Change::new(ACME, t(200));
    change.cost_entries.push(charge.clone());
    change.cost_entries.push(reversal(&charge, 150));
    db.store.commit(change).await?;
    let listed = db.store.list_cost_entries(CostEntryFilter { shipment_key: Some("label:8002".into()), ..all(ACME) }).await?;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].kind, CostKind::VoidReversal);
    assert_eq!(listed[1].reverses, Some(listed[0].id));
    assert_eq!(listed[1].reverses_key.as_deref(), Some("label:8002/postage/0"));
    assert_eq!(listed[0].amount.minor() + listed[1].amount.minor(), 0, "the label nets to zero");

    let stray = postage(8003, "SO-3", 100, 500, Currency::USD);
    let mut bad = Change::new(ACME, t(300));
    bad.shipments.push(label(8003, 9003, Some("SO-3"), 100));
    bad.cost_entries.push(reversal(&stray, 250));
    let err = db.store.commit(bad).await.expect_err("a reversal of nothing is refused");
    assert!(matches!(err, StoreError::Database(ref m) if m.contains("label:8003/postage/0")), "{err}");
    assert!(db.store.get_shipment(ACME, "label:8003").await?.is_none(), "nothing of that change was written");
    assert!(db.store.get_cost_entry_by_key(ACME, "label:8003/postage/0/void").await?.is_none());
    Ok(())
}

pub async fn cost_entries_list_by_order_and_label_time_a_page_at_a_time(db: &TestDb) -> anyhow::Result<()> {
    let mut change = Change::new(ACME, t(1_000));
    // Recorded out of label order: the list is by label time.
    for (id, erp, created) in [(8013, "SO-B", 300), (8011, "SO-A", 100), (8012, "SO-A", 200), (8014, "SO-B", 300)] {
        change.cost_entries.push(postage(id, erp, created, 100 + id, Currency::GBP));
    }
    db.store.commit(change).await?;
    let mut other = Change::new(BETA, t(1_000));
    other.cost_entries.push(postage(8011, "SO-A", 100, 1, Currency::USD));
    db.store.commit(other).await?;

    let keys = |list: &[shipledger_store::CostEntry]| list.iter().map(|e| e.label.shipment_key.clone()).collect::<Vec<_>>();
    let everything = db.store.list_cost_entries(all(ACME)).await?;
    assert_eq!(keys(&everything), ["label:8011", "label:8012", "label:8013", "label:8014"]);
    let a = db.store.list_cost_entries(CostEntryFilter { erp_id: Some("SO-A".into()), ..all(ACME) }).await?;
    assert_eq!(keys(&a), ["label:8011", "label:8012"]);
    let window = db.store.list_cost_entries(CostEntryFilter { since: Some(t(200)), until: Some(t(300)), ..all(ACME) }).await?;
    assert_eq!(keys(&window), ["label:8012"], "since is inclusive, until exclusive");
    assert_eq!(db.store.list_cost_entries(CostEntryFilter::default()).await?.len(), 5, "no connection: all of them");

    // Pages of two, by cursor, over two entries at the same label time.
    let mut pages = Vec::new();
    let mut after: Option<CostCursor> = None;
    loop {
        let page = db.store.list_cost_entries(CostEntryFilter { after, limit: 2, ..all(ACME) }).await?;
        let Some(last) = page.last() else { break };
        after = Some(CostCursor::after(last));
        pages.push(keys(&page));
    }
    assert_eq!(pages, vec![vec!["label:8011", "label:8012"], vec!["label:8013", "label:8014"]]);
    Ok(())
}

pub async fn nothing_changes_or_deletes_a_recorded_entry(db: &TestDb) -> anyhow::Result<()> {
    let mut change = Change::new(ACME, t(200));
    change.cost_entries.push(postage(8021, "SO-1", 100, 385, Currency::GBP));
    db.store.commit(change).await?;
    let update = db.execute("UPDATE cost_entries SET amount_minor = 1 WHERE entry_key = 'label:8021/postage/0'").await;
    assert!(update.is_err(), "an UPDATE is refused by the database itself");
    let delete = db.execute("DELETE FROM cost_entries WHERE entry_key = 'label:8021/postage/0'").await;
    assert!(delete.is_err(), "a DELETE is refused too");
    let kept = db.store.get_cost_entry_by_key(ACME, "label:8021/postage/0").await?.expect("still there");
    assert_eq!(kept.amount, Money::from_minor(385, Currency::GBP));
    Ok(())
}

pub async fn an_entry_planned_from_a_ledger_another_worker_has_since_written_is_refused_whole(db: &TestDb) -> anyhow::Result<()> {
    // Two workers read the same ledger and both plan the label's first revision, with
    // different amounts: the second must not be dropped silently under the first's key.
    let first = postage(8010, "SO-10", 100, 895, Currency::USD);
    let mut seen = Change::new(ACME, t(200));
    seen.shipments.push(label(8010, 9010, Some("SO-10"), 100));
    seen.cost_entries.push(first.clone());
    db.store.commit(seen).await?;
    let revision = |minor: i64| NewCostEntry {
        entry_key: entry_key(&first.label.shipment_key, &Charge::Postage, 1),
        kind: CostKind::Revision,
        revision: 1,
        amount: Money::from_minor(minor, Currency::USD),
        ..first.clone()
    };
    let mut a = Change::new(ACME, t(300));
    a.cost_entries.push(revision(125));
    db.store.commit(a.clone()).await?;
    let mut b = Change::new(ACME, t(301));
    b.cost_entries.push(revision(205));
    b.events.push(shipledger_store::NewEvent::shipment("label:8010", shipledger_store::EventKind::CostRecorded, serde_json::json!({})));
    match db.store.commit(b).await {
        Err(StoreError::CostEntryMoved { entry_key, .. }) => assert_eq!(entry_key, "label:8010/postage/1"),
        other => panic!("the stale plan must be refused, got {other:?}"),
    }
    let events = db.store.timeline(ACME, "shipment", "label:8010").await?;
    assert!(events.iter().all(|e| e.kind != shipledger_store::EventKind::CostRecorded), "nothing of the refused change is written: {events:?}");
    // The same entry planned again is still idempotent.
    db.store.commit(Change { now: Some(t(302)), ..a }).await?;
    let net: i64 = db.store.list_cost_entries(all(ACME)).await?.iter().map(|e| e.amount.minor()).sum();
    assert_eq!(net, 895 + 125);
    Ok(())
}
