//! Paging by cursor: every list the API pages through (shipments, cost entries, cost
//! batches, reconcile runs and findings) reads back whole, page by page, at every
//! page size, with rows that tie on the leading sort column (the same creation time,
//! the same label time, the same window and revision, on two connections): nothing
//! is skipped, nothing repeated, in the order of the unpaged list. The filters the
//! API offers narrow them (kind, voided; batch, converted; id), and a finding names
//! the exception its run opened or refreshed.

use jiff::civil::date;
use serde_json::json;
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::fx::{Conversion, RateSource};
use shipledger_core::journal::{JournalWrite, Window};
use shipledger_core::reconcile::Finding;
use shipledger_core::{Currency, Money};
use shipledger_store::{
    BatchCursor, BatchMember, BatchState, Change, CostBatchFilter, CostBatchRecord, CostCursor, CostEntryFilter, ExceptionAct, ExceptionAction,
    NewCostBatch, NewCostConversion, ReconcileFindingFilter, ReconcileMode, ReconcileRunFilter, ShipmentCursor, ShipmentFilter, ShipmentKind,
    ShipmentRecord, ShipmentUpsert,
};

use crate::harness::{ACME, BETA, TestDb, t};
use crate::shipments::label;

/// Read a list whole, `limit` rows a page, each page after the cursor of the last row
/// of the one before; stops at the first short page.
async fn paged<T, C>(limit: u32, mut page: impl AsyncFnMut(Option<C>, u32) -> anyhow::Result<Vec<T>>, cursor: impl Fn(&T) -> C) -> anyhow::Result<Vec<T>> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let rows = page(after.take(), limit).await?;
        assert!(rows.len() <= limit as usize, "a page holds at most its limit");
        let full = rows.len() == limit as usize;
        after = rows.last().map(&cursor);
        all.extend(rows);
        if !full {
            return Ok(all);
        }
    }
}

fn shipment_ids(rows: &[ShipmentRecord]) -> Vec<(String, String)> {
    rows.iter().map(|s| (s.connection.clone(), s.shipment_key.clone())).collect()
}

fn no_repeats<T: Ord + Clone + std::fmt::Debug>(rows: &[T]) {
    let mut seen = rows.to_vec();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), rows.len(), "a row repeated: {rows:?}");
}

pub async fn shipments_page_by_cursor_through_ties_without_skipping_or_repeating(db: &TestDb) -> anyhow::Result<()> {
    // Keys that sort differently by bytes and by a language's collation, most of them
    // made at the same instant, on both connections.
    let mut acme: Vec<ShipmentUpsert> = [(10, 100), (9, 100), (1, 100), (2, 50), (3, 200)].iter().map(|&(id, at)| label(id, id + 900, Some("SO-1"), at)).collect();
    acme.push(ShipmentUpsert { shipment_key: "Label:1".into(), ..label(11, 911, Some("SO-1"), 100) });
    acme.push(ShipmentUpsert { shipment_key: "label:1/SO-2".into(), erp_id: Some("SO-2".into()), ..label(1, 901, Some("SO-1"), 100) });
    acme.push(ShipmentUpsert { shipment_key: "fulfillment:4".into(), kind: ShipmentKind::Fulfillment, ..label(4, 904, Some("SO-3"), 100) });
    acme.push(ShipmentUpsert { voided: true, voided_at: Some(t(150)), ..label(5, 905, Some("SO-3"), 100) });
    let beta: Vec<ShipmentUpsert> = [(10, 100), (9, 100), (1, 100)].iter().map(|&(id, at)| label(id, id + 900, Some("SO-1"), at)).collect();
    for (connection, shipments) in [(ACME, acme.clone()), (BETA, beta.clone())] {
        let mut change = Change::new(connection, t(300));
        change.shipments = shipments;
        db.store.commit(change).await?;
    }

    let everything = db.store.list_shipments(ShipmentFilter::default()).await?;
    assert_eq!(everything.len(), acme.len() + beta.len());
    no_repeats(&shipment_ids(&everything));
    assert!(everything.windows(2).all(|w| w[0].ss_created_at <= w[1].ss_created_at), "oldest first");
    for limit in 1..=4 {
        let read = paged(
            limit,
            async |after, limit| Ok(db.store.list_shipments(ShipmentFilter { after, limit, ..Default::default() }).await?),
            ShipmentCursor::after,
        )
        .await?;
        assert_eq!(shipment_ids(&read), shipment_ids(&everything), "pages of {limit}");
    }

    // The filters narrow it, and page the same way.
    let of = |filter: ShipmentFilter| async move { anyhow::Ok(shipment_ids(&db.store.list_shipments(filter).await?)) };
    let fulfillments = of(ShipmentFilter { kind: Some(ShipmentKind::Fulfillment), ..Default::default() }).await?;
    assert_eq!(fulfillments, vec![(ACME.to_string(), "fulfillment:4".to_string())]);
    let voided = of(ShipmentFilter { voided: Some(true), ..Default::default() }).await?;
    assert_eq!(voided, vec![(ACME.to_string(), "label:5".to_string())]);
    let live_acme_labels = of(ShipmentFilter { connection: Some(ACME.into()), kind: Some(ShipmentKind::Label), voided: Some(false), ..Default::default() }).await?;
    assert_eq!(live_acme_labels.len(), acme.len() - 2);
    let read = paged(
        2,
        async |after, limit| {
            let filter = ShipmentFilter { connection: Some(ACME.into()), kind: Some(ShipmentKind::Label), voided: Some(false), after, limit, ..Default::default() };
            Ok(db.store.list_shipments(filter).await?)
        },
        ShipmentCursor::after,
    )
    .await?;
    assert_eq!(shipment_ids(&read), live_acme_labels);
    Ok(())
}

fn entry(connection_tag: i64, shipment_id: i64, charge: Charge, minor: i64, created: i64) -> NewCostEntry {
    let label = LabelFacts {
        shipment_key: format!("label:{shipment_id}"),
        erp_id: Some(format!("SO-{connection_tag}")),
        ss_order_id: shipment_id + 1000,
        carrier: "ups".into(),
        service: None,
        ship_date: Some(date(2026, 11, 27)),
        label_created_at: t(created),
    };
    NewCostEntry::first(label, charge, Money::from_minor(minor, Currency::USD), CostSource::ShipstationV1)
}

fn to_gbp(e: &NewCostEntry) -> NewCostConversion {
    let conversion = Conversion::make(
        &e.entry_key,
        e.amount,
        Currency::GBP,
        "1.25".parse().unwrap(),
        rust_decimal::Decimal::ONE,
        date(2026, 11, 26),
        date(2026, 11, 27),
        RateSource::Erp,
    )
    .unwrap();
    NewCostConversion { conversion, source_detail: "fx_fixed USD/GBP".into() }
}

fn batch(key: &str, window: Window, revision: u32, members: &[&NewCostEntry]) -> NewCostBatch {
    let zero = Money::from_minor(0, Currency::GBP);
    NewCostBatch {
        batch_key: key.into(),
        window,
        revision,
        journal: JournalWrite { key: key.into(), date: window.end, memo: "shipping costs".into(), lines: vec![] },
        members: members.iter().map(|e| BatchMember { entry_key: e.entry_key.clone(), carried_from: None }).collect(),
        state: BatchState::Planned,
        detail: None,
        total: zero,
    }
}

pub async fn cost_entries_page_through_equal_label_times_and_filter_by_batch_and_conversion(db: &TestDb) -> anyhow::Result<()> {
    // Five labels made at the same second (postage and insurance each), one before, one after.
    let mut entries = Vec::new();
    for id in 1..=5 {
        entries.push(entry(1, id, Charge::Postage, 100 + id, 100));
        entries.push(entry(1, id, Charge::Insurance, 10 + id, 100));
    }
    entries.push(entry(1, 6, Charge::Postage, 106, 50));
    entries.push(entry(1, 7, Charge::Postage, 107, 200));
    let mut change = Change::new(ACME, t(300));
    change.cost_entries = entries.clone();
    db.store.commit(change).await?;
    let mut change = Change::new(BETA, t(300));
    change.cost_entries = vec![entry(2, 1, Charge::Postage, 501, 100), entry(2, 2, Charge::Postage, 502, 100)];
    db.store.commit(change).await?;
    // Some converted, some in a batch.
    let mut change = Change::new(ACME, t(310));
    change.cost_conversions = [0, 3, 4, 10].iter().map(|&i| to_gbp(&entries[i])).collect();
    db.store.commit(change).await?;
    let day = Window { start: date(2026, 11, 27), end: date(2026, 11, 27) };
    let mut change = Change::new(ACME, t(320));
    change.cost_batches.push(batch("acme/costs/day/r0", day, 0, &[&entries[3], &entries[5], &entries[11]]));
    db.store.commit(change).await?;
    let batch_id = db.store.list_cost_batches(CostBatchFilter::default()).await?[0].id;

    let keys = |rows: &[shipledger_store::CostEntry]| rows.iter().map(|e| (e.connection.clone(), e.entry_key.clone())).collect::<Vec<_>>();
    let everything = db.store.list_cost_entries(CostEntryFilter::default()).await?;
    assert_eq!(everything.len(), entries.len() + 2);
    no_repeats(&keys(&everything));
    for limit in 1..=4 {
        let read = paged(
            limit,
            async |after, limit| Ok(db.store.list_cost_entries(CostEntryFilter { after, limit, ..Default::default() }).await?),
            CostCursor::after,
        )
        .await?;
        assert_eq!(keys(&read), keys(&everything), "pages of {limit}");
    }

    let listed = |filter: CostEntryFilter| async move { anyhow::Ok(db.store.list_cost_entries(filter).await?.into_iter().map(|e| e.entry_key.clone()).collect::<Vec<_>>()) };
    let mut in_batch = listed(CostEntryFilter { batch_id: Some(batch_id), ..Default::default() }).await?;
    in_batch.sort();
    let mut want: Vec<String> = [3, 5, 11].iter().map(|&i| entries[i].entry_key.clone()).collect();
    want.sort();
    assert_eq!(in_batch, want, "the batch's entries, and only those");
    assert!(listed(CostEntryFilter { batch_id: Some(batch_id + 1000), ..Default::default() }).await?.is_empty());
    let converted = listed(CostEntryFilter { connection: Some(ACME.into()), converted: Some(true), ..Default::default() }).await?;
    let waiting = listed(CostEntryFilter { connection: Some(ACME.into()), converted: Some(false), ..Default::default() }).await?;
    assert_eq!(converted.len(), 4);
    assert_eq!(converted.len() + waiting.len(), entries.len(), "converted or waiting, never both nor neither");
    assert!(converted.iter().all(|k| !waiting.contains(k)));
    // Paging with a filter reads the same rows; the conversions of a page are those of its converted entries.
    let read = paged(
        1,
        async |after, limit| Ok(db.store.list_cost_entries(CostEntryFilter { converted: Some(true), after, limit, ..Default::default() }).await?),
        CostCursor::after,
    )
    .await?;
    assert_eq!(read.into_iter().map(|e| e.entry_key.clone()).collect::<Vec<_>>(), converted);
    let conversions = db.store.list_cost_conversions(CostEntryFilter { batch_id: Some(batch_id), ..Default::default() }).await?;
    assert_eq!(conversions.iter().map(|c| c.conversion.entry_key.clone()).collect::<Vec<_>>(), vec![entries[3].entry_key.clone()]);
    Ok(())
}

pub async fn cost_batches_page_through_equal_windows_and_revisions_and_one_is_found_by_id(db: &TestDb) -> anyhow::Result<()> {
    let w = |start: i8, end: i8| Window { start: date(2026, 11, start), end: date(2026, 11, end) };
    // Same connection, start and revision twice (a day and a week from the same date).
    for (connection, key, window, revision) in [
        (ACME, "a/27/r0", w(27, 27), 0),
        (ACME, "a/27-29/r0", w(27, 29), 0),
        (ACME, "a/27/r1", w(27, 27), 1),
        (ACME, "a/26/r0", w(26, 26), 0),
        (BETA, "b/27/r0", w(27, 27), 0),
        (BETA, "b/27-28/r0", w(27, 28), 0),
    ] {
        let mut change = Change::new(connection, t(100));
        change.cost_batches.push(batch(key, window, revision, &[]));
        db.store.commit(change).await?;
    }
    let keys = |rows: &[CostBatchRecord]| rows.iter().map(|b| b.batch_key.clone()).collect::<Vec<_>>();
    let everything = db.store.list_cost_batches(CostBatchFilter::default()).await?;
    assert_eq!(everything.len(), 6);
    no_repeats(&keys(&everything));
    assert_eq!(&keys(&everything)[..4], ["a/26/r0", "a/27/r0", "a/27-29/r0", "a/27/r1"], "by connection, window start, revision, then id");
    for limit in 1..=4 {
        let read = paged(
            limit,
            async |after, limit| Ok(db.store.list_cost_batches(CostBatchFilter { after, limit, ..Default::default() }).await?),
            BatchCursor::after,
        )
        .await?;
        assert_eq!(keys(&read), keys(&everything), "pages of {limit}");
    }
    let one = &everything[2];
    let found = db.store.list_cost_batches(CostBatchFilter { id: Some(one.id), ..Default::default() }).await?;
    assert_eq!(found, vec![one.clone()]);
    assert!(db.store.list_cost_batches(CostBatchFilter { id: Some(one.id), connection: Some(BETA.into()), ..Default::default() }).await?.is_empty());
    assert!(db.store.list_cost_batches(CostBatchFilter { id: Some(-1), ..Default::default() }).await?.is_empty());
    Ok(())
}

fn finding(record_id: &str) -> Finding {
    Finding { kind: ExceptionKind::PaidNotInShipStation, record_type: "order".into(), record_id: record_id.into(), detail: json!({"message": "paid, not in ShipStation"}) }
}

async fn run_finding(db: &TestDb, connection: &str, at: i64, records: &[&str]) -> anyhow::Result<i64> {
    let run = db.store.start_reconcile_run(connection, ReconcileMode::Full, t(0), t(at)).await?;
    let mut change = Change::new(connection, t(at));
    let findings: Vec<Finding> = records.iter().map(|r| finding(r)).collect();
    for f in &findings {
        change.raise(f.kind, &f.record_type, f.record_id.clone(), f.detail.clone());
    }
    db.store.commit(change).await?;
    db.store.finish_reconcile_run(run.id, shipledger_store::ReconcileState::Done, json!({}), None, t(at + 5)).await?;
    db.store.add_reconcile_findings(run.id, connection, &findings).await?;
    Ok(run.id)
}

pub async fn reconcile_runs_page_newest_first_and_each_finding_names_the_exception_its_run_opened_or_refreshed(db: &TestDb) -> anyhow::Result<()> {
    let first = run_finding(db, ACME, 100, &["SO-1", "SO-2", "SO-3"]).await?;
    let beta = run_finding(db, BETA, 120, &["SO-1"]).await?;
    let live = db.store.list_exceptions(shipledger_store::ExceptionFilter { connection: Some(ACME.into()), ..Default::default() }).await?;
    let id_of = |record: &str| live.iter().find(|e| e.record_id == record).unwrap().id;
    let (so1, so2, so3) = (id_of("SO-1"), id_of("SO-2"), id_of("SO-3"));
    // Between the runs, SO-2's is resolved (the next run opens another) and SO-3's ignored (not raised again).
    for (id, action) in [(so2, ExceptionAction::Resolve), (so3, ExceptionAction::Ignore)] {
        db.store.act_on_exception(ExceptionAct { id, action, actor: "cli:ana".into(), note: Some("seen".into()), at: t(150) }).await?;
    }
    let second = run_finding(db, ACME, 200, &["SO-1", "SO-2", "SO-3"]).await?;
    let reopened = db
        .store
        .list_exceptions(shipledger_store::ExceptionFilter { connection: Some(ACME.into()), record_id: Some("SO-2".into()), live: true, ..Default::default() })
        .await?[0]
        .id;
    assert_ne!(reopened, so2);

    let linked = |run_id: i64| async move {
        let rows = db.store.list_reconcile_findings(ReconcileFindingFilter { run_id: Some(run_id), ..Default::default() }).await?;
        anyhow::Ok(rows.into_iter().map(|f| (f.record_id, f.exception_id)).collect::<Vec<_>>())
    };
    let s = |r: &str| r.to_string();
    assert_eq!(linked(first).await?, vec![(s("SO-1"), Some(so1)), (s("SO-2"), Some(so2)), (s("SO-3"), Some(so3))]);
    assert_eq!(linked(second).await?, vec![(s("SO-1"), Some(so1)), (s("SO-2"), Some(reopened)), (s("SO-3"), None)], "refreshed, reopened, ignored");
    let beta_exception = db.store.list_exceptions(shipledger_store::ExceptionFilter { connection: Some(BETA.into()), ..Default::default() }).await?[0].id;
    assert_eq!(linked(beta).await?, vec![(s("SO-1"), Some(beta_exception))], "its own connection's exception");

    // Findings page by id; runs newest first, by the id before.
    let everything = db.store.list_reconcile_findings(ReconcileFindingFilter { run_id: Some(second), ..Default::default() }).await?;
    let read = paged(
        2,
        async |after_id, limit| Ok(db.store.list_reconcile_findings(ReconcileFindingFilter { run_id: Some(second), after_id, limit, ..Default::default() }).await?),
        |f| f.id,
    )
    .await?;
    assert_eq!(read, everything);
    let runs = paged(
        1,
        async |before_id, limit| Ok(db.store.list_reconcile_runs(ReconcileRunFilter { connection: Some(ACME.into()), before_id, limit, ..Default::default() }).await?),
        |r| r.id,
    )
    .await?;
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![second, first]);
    Ok(())
}
