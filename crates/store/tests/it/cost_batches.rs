//! Cost batches in the store: a batch is planned with its frozen journal, its entries
//! and its posting job in one commit; an entry is in one live batch at most, so two
//! planners racing for a window post it once; a batch moves planned → posted or
//! planned → withdrawn only from the state its writer read; a withdrawn batch frees
//! its entries for the next plan; a posted one never changes, and none is deleted.

use jiff::civil::date;
use shipledger_core::cost::{Charge, CostSource, LabelFacts, NewCostEntry};
use shipledger_core::journal::{JournalLine, JournalWrite, Window};
use shipledger_core::{Currency, Money};
use shipledger_store::{
    BatchMember, BatchMove, BatchState, Change, CostBatchFilter, CostEntryFilter, EventKind, JobFilter, JobKind, NewCostBatch, NewEvent, NewJob,
    PostJournal, RecordType, StoreError,
};

use crate::harness::{ACME, BETA, TestDb, t};

fn entry(shipment_id: i64, minor: i64) -> NewCostEntry {
    let label = LabelFacts {
        shipment_key: format!("label:{shipment_id}"),
        erp_id: Some("SO-1".into()),
        ss_order_id: shipment_id + 1000,
        carrier: "ups".into(),
        service: None,
        ship_date: Some(date(2026, 11, 27)),
        label_created_at: t(100 + shipment_id),
    };
    NewCostEntry::first(label, Charge::Postage, Money::from_minor(minor, Currency::USD), CostSource::ShipstationV1)
}

fn gbp(minor: i64) -> Money {
    Money::from_minor(minor, Currency::GBP)
}

const DAY: Window = Window { start: date(2026, 11, 27), end: date(2026, 11, 27) };

fn key(revision: u32) -> String {
    format!("{ACME}/costs/2026-11-27..2026-11-27/r{revision}")
}

fn journal(key: &str, minor: i64) -> JournalWrite {
    let zero = gbp(0);
    JournalWrite {
        key: key.into(),
        date: DAY.end,
        memo: "shipledger shipping costs".into(),
        lines: vec![
            JournalLine { account: "5.1.3".into(), debit: gbp(minor), credit: zero, original: Some(Money::from_minor(minor * 5 / 4, Currency::USD)), memo: None },
            JournalLine { account: "2.1.1".into(), debit: zero, credit: gbp(minor), original: Some(Money::from_minor(minor * 5 / 4, Currency::USD)), memo: None },
        ],
    }
}

fn planning(revision: u32, entries: &[&NewCostEntry], minor: i64, at: i64) -> Change {
    let key = key(revision);
    let mut change = Change::new(ACME, t(at));
    change.cost_batches.push(NewCostBatch {
        batch_key: key.clone(),
        window: DAY,
        revision,
        journal: journal(&key, minor),
        members: entries
            .iter()
            .enumerate()
            .map(|(i, e)| BatchMember { entry_key: e.entry_key.clone(), carried_from: (i == 0).then_some(Window { start: date(2026, 11, 26), end: date(2026, 11, 26) }) })
            .collect(),
        state: BatchState::Planned,
        detail: None,
        total: gbp(minor),
    });
    change.jobs.push(NewJob::new(PostJournal { batch_key: key.clone() }, format!("post_journal:{key}"), t(at)));
    change.events.push(NewEvent::new(RecordType::CostBatch, key.as_str(), EventKind::BatchPlanned, serde_json::json!({"why": "due"})));
    change
}

async fn record(db: &TestDb, entries: &[&NewCostEntry]) -> anyhow::Result<()> {
    let mut change = Change::new(ACME, t(150));
    change.cost_entries.extend(entries.iter().map(|e| (*e).clone()));
    db.store.commit(change).await?;
    Ok(())
}

async fn unbatched(db: &TestDb) -> anyhow::Result<Vec<String>> {
    let filter = CostEntryFilter { connection: Some(ACME.into()), unbatched: true, ..Default::default() };
    let entries: Vec<String> = db.store.list_cost_entries(filter).await?.into_iter().map(|e| e.entry_key.clone()).collect();
    Ok(entries)
}

pub async fn a_batch_is_planned_with_its_journal_entries_and_posting_job_and_its_entries_leave_the_unbatched(db: &TestDb) -> anyhow::Result<()> {
    let (a, b, c) = (entry(8101, 1000), entry(8102, 250), entry(8103, 99));
    record(db, &[&a, &b, &c]).await?;
    assert_eq!(unbatched(db).await?.len(), 3);
    let outcome = db.store.commit(planning(0, &[&a, &b], 1000, 200)).await?;
    assert_eq!(outcome.cost_batches_planned, vec![key(0)]);
    assert_eq!(outcome.jobs_planned.len(), 1);

    let got = db.store.get_cost_batch(ACME, &key(0)).await?.expect("planned");
    assert_eq!((got.state, got.window, got.revision, got.entry_count, got.carried_over), (BatchState::Planned, DAY, 0, 2, 1));
    assert_eq!(got.journal, journal(&key(0), 1000), "the journal reads back exactly as frozen");
    assert_eq!(got.total, gbp(1000));
    assert_eq!((got.planned_at, got.posted_at, got.erp_move_id.as_deref()), (t(200), None, None));
    let members = db.store.cost_batch_members(ACME, &key(0)).await?;
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].entry_key, a.entry_key);
    assert_eq!(members[0].carried_from, Some(Window { start: date(2026, 11, 26), end: date(2026, 11, 26) }));
    assert_eq!(members[1].carried_from, None);
    assert_eq!(unbatched(db).await?, vec![c.entry_key.clone()], "only the entry in no batch is left to place");
    let conversions_filter = CostEntryFilter { connection: Some(ACME.into()), unbatched: true, ..Default::default() };
    assert!(db.store.list_cost_conversions(conversions_filter).await?.is_empty(), "the same filter lists conversions");

    let jobs = db.store.list_jobs(JobFilter { connection: Some(ACME.into()), kind: Some(JobKind::PostJournal), ..Default::default() }).await?;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].spec, PostJournal { batch_key: key(0) }.into());
    assert_eq!(db.store.timeline(ACME, "cost_batch", &key(0)).await?.len(), 1);
    let listed = db.store.list_cost_batches(CostBatchFilter { connection: Some(ACME.into()), ..Default::default() }).await?;
    assert_eq!(listed, vec![got]);
    assert!(db.store.list_cost_batches(CostBatchFilter { connection: Some(BETA.into()), ..Default::default() }).await?.is_empty());
    assert!(db.store.list_cost_batches(CostBatchFilter { state: Some(BatchState::Posted), ..Default::default() }).await?.is_empty());
    assert_eq!(db.store.list_cost_batches(CostBatchFilter { from: Some(date(2026, 11, 28)), ..Default::default() }).await?.len(), 0);
    assert_eq!(db.store.list_cost_batches(CostBatchFilter { to: Some(date(2026, 11, 27)), ..Default::default() }).await?.len(), 1);
    Ok(())
}

pub async fn two_planners_racing_for_one_window_plan_it_once_and_the_loser_writes_nothing(db: &TestDb) -> anyhow::Result<()> {
    let (a, b) = (entry(8101, 1000), entry(8102, 250));
    record(db, &[&a, &b]).await?;
    let (x, y) = tokio::join!(db.store.commit(planning(0, &[&a, &b], 1250, 200)), db.store.commit(planning(0, &[&a, &b], 1250, 201)));
    assert_eq!([&x, &y].iter().filter(|r| r.is_ok()).count(), 1, "{x:?} {y:?}");
    let lost = if x.is_err() { x } else { y };
    assert!(matches!(lost, Err(StoreError::CostBatchMoved { .. })), "{lost:?}");
    assert_eq!(db.store.list_jobs(JobFilter { kind: Some(JobKind::PostJournal), ..Default::default() }).await?.len(), 1);
    assert_eq!(db.store.timeline(ACME, "cost_batch", &key(0)).await?.len(), 1, "the loser's event was not written");

    // Another key that takes an entry already in a live batch is refused whole too.
    let err = db.store.commit(planning(1, &[&b], 250, 300)).await.unwrap_err();
    assert!(matches!(&err, StoreError::CostBatchMoved { detail, .. } if detail.contains(&b.entry_key)), "{err:?}");
    assert!(db.store.get_cost_batch(ACME, &key(1)).await?.is_none());
    Ok(())
}

pub async fn a_batch_moves_only_from_the_state_its_writer_read_and_a_posted_one_never_changes(db: &TestDb) -> anyhow::Result<()> {
    let a = entry(8101, 1000);
    record(db, &[&a]).await?;
    db.store.commit(planning(0, &[&a], 1000, 200)).await?;
    let posting = |from: BatchState, at: i64| {
        let mut change = Change::new(ACME, t(at));
        change.batch_moves.push(BatchMove { batch_key: key(0), from, to: BatchState::Posted, erp_move_id: Some("MOVE-7".into()), detail: None });
        change.events.push(NewEvent::new(RecordType::CostBatch, key(0), EventKind::JournalPosted, serde_json::json!({})));
        change
    };
    db.store.commit(posting(BatchState::Planned, 300)).await?;
    let got = db.store.get_cost_batch(ACME, &key(0)).await?.unwrap();
    assert_eq!((got.state, got.erp_move_id.as_deref(), got.posted_at), (BatchState::Posted, Some("MOVE-7"), Some(t(300))));

    // A second poster that read it planned writes nothing, not even its event.
    let err = db.store.commit(posting(BatchState::Planned, 301)).await.unwrap_err();
    assert!(matches!(err, StoreError::CostBatchMoved { .. }), "{err:?}");
    assert_eq!(db.store.timeline(ACME, "cost_batch", &key(0)).await?.iter().filter(|e| e.kind == EventKind::JournalPosted).count(), 1);
    assert!(db.execute("UPDATE cost_batches SET total_minor = 1").await.is_err(), "a posted batch is refused an UPDATE by the database");
    assert!(db.execute("DELETE FROM cost_batches").await.is_err(), "no batch is deleted");
    assert!(unbatched(db).await?.is_empty(), "a posted batch keeps its entries");
    Ok(())
}

pub async fn a_withdrawn_batch_frees_its_entries_for_the_next_revision(db: &TestDb) -> anyhow::Result<()> {
    let a = entry(8101, 1000);
    record(db, &[&a]).await?;
    db.store.commit(planning(0, &[&a], 1000, 200)).await?;
    let mut change = Change::new(ACME, t(300));
    change.batch_moves.push(BatchMove {
        batch_key: key(0),
        from: BatchState::Planned,
        to: BatchState::Withdrawn,
        erp_move_id: None,
        detail: Some("the period is closed".into()),
    });
    db.store.commit(change).await?;
    let got = db.store.get_cost_batch(ACME, &key(0)).await?.unwrap();
    assert_eq!((got.state, got.detail.as_deref(), got.posted_at), (BatchState::Withdrawn, Some("the period is closed"), None));
    assert_eq!(unbatched(db).await?, vec![a.entry_key.clone()], "free again");
    assert_eq!(db.store.cost_batch_members(ACME, &key(0)).await?.len(), 1, "the withdrawn batch still says what it held");
    db.store.commit(planning(1, &[&a], 1000, 400)).await?;
    assert!(unbatched(db).await?.is_empty());
    let all = db.store.list_cost_batches(CostBatchFilter { connection: Some(ACME.into()), ..Default::default() }).await?;
    assert_eq!(all.iter().map(|b| (b.revision, b.state)).collect::<Vec<_>>(), vec![(0, BatchState::Withdrawn), (1, BatchState::Planned)]);
    Ok(())
}
