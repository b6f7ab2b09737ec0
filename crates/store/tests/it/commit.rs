//! Committing a decision: everything or nothing, one job per idempotency key.

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{
    Change, ExceptionFilter, ExceptionOpen, JobFilter, JobFinish, JobState, OrderState, StoreError,
    WatermarkMove,
};

use shipledger_store::JobKind;
use crate::harness::{ACME, BETA, TestDb, claim, event, job, line, order, spec, t};

pub async fn a_committed_change_is_all_or_nothing(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    plan.jobs.push(job(JobKind::SyncOrder, "push:1", t(0)));
    store.commit(plan).await?;
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(1), "w1", 1)).await?;
    let job_id = claimed[0].id;

    // A change whose finished job is no longer ours (a wrong token) leaves nothing behind.
    let mut change = Change::new(ACME, t(2));
    change.order = Some(order("1001", "SO-1001", OrderState::Pushed));
    change.jobs.push(job(JobKind::SyncOrder, "update:1", t(2)));
    change.events.push(event("1001", "pushed"));
    change.open_exceptions.push(ExceptionOpen {
        kind: ExceptionKind::PushUnverified,
        record_type: "order".into(),
        record_id: "1001".into(),
        detail: json!({"message": "not read back"}),
        job_id: None,
    });
    change.watermark = Some(WatermarkMove::new("erp_orders", None, "cursor-2"));
    change.finish_job = Some(JobFinish {
        job_id,
        lease_token: "somebody-else".into(),
        state: JobState::Done,
        error: None,
    });
    let lost = store.commit(change.clone()).await;
    assert!(
        matches!(lost, Err(StoreError::LeaseLost { job_id: id }) if id == job_id),
        "{lost:?}"
    );
    assert_nothing_of(db, "1001").await?;
    let running = store.get_job(job_id).await?.unwrap();
    assert_eq!(
        running.state,
        JobState::Running,
        "the job stays with its worker"
    );

    // A part failing midway (the order is written, then its second line clashes with
    // the first) rolls back what was already written.
    change.finish_job = None;
    change.order.as_mut().unwrap().lines = Some(vec![line("L1", "MUG", 1), line("L1", "TEA", 1)]);
    let clash = store.commit(change.clone()).await;
    assert!(matches!(clash, Err(StoreError::Database(_))), "{clash:?}");
    assert_nothing_of(db, "1001").await?;

    // So does an order key another order already holds.
    let mut holder = Change::new(ACME, t(3));
    holder.order = Some(order("2002", "SO-2002", OrderState::Released));
    store.commit(holder).await?;
    let order = change.order.as_mut().unwrap();
    order.lines = None;
    order.order_key = "key-2002".into();
    let clash = store.commit(change).await;
    assert!(matches!(clash, Err(StoreError::Database(_))), "{clash:?}");
    assert_nothing_of(db, "1001").await?;
    Ok(())
}

async fn assert_nothing_of(db: &TestDb, erp_id: &str) -> anyhow::Result<()> {
    let store = &db.store;
    assert_eq!(store.get_order(ACME, erp_id).await?, None);
    let jobs = store
        .list_jobs(JobFilter {
            connection: Some(ACME.into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        jobs.iter()
            .map(|j| j.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["push:1"]
    );
    assert!(store.timeline(ACME, "order", erp_id).await?.is_empty());
    assert!(
        store
            .list_exceptions(ExceptionFilter::default())
            .await?
            .is_empty()
    );
    assert_eq!(store.get_watermark(ACME, "erp_orders").await?, None);
    Ok(())
}

pub async fn a_change_records_the_order_its_lines_jobs_events_and_watermark(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut first = order("1001", "SO-1001", OrderState::Released);
    first.payment = Some(json!({"captured": true, "amount_minor": 2598}));
    first.released_at = Some(t(5));
    first.lines = Some(vec![line("L1", "MUG", 2), line("L2", "TEA", 1)]);
    let mut change = Change::new(ACME, t(5));
    change.order = Some(first);
    change
        .jobs
        .push(job(JobKind::SyncOrder, "push:1001:hash-1001", t(5)));
    change.events.push(event("1001", "released"));
    change.watermark = Some(WatermarkMove::new("erp_orders", None, "2025-03-01T08:59:00Z"));
    let outcome = store.commit(change).await?;
    assert_eq!(outcome.jobs_planned.len(), 1);
    assert!(outcome.jobs_skipped.is_empty());

    let saved = store
        .get_order(ACME, "1001")
        .await?
        .expect("the order is saved");
    assert_eq!(saved.connection, ACME);
    assert_eq!(saved.state, OrderState::Released);
    assert_eq!(saved.snapshot, json!({"id": "1001", "lines": 1}));
    assert_eq!(
        saved.payment,
        Some(json!({"captured": true, "amount_minor": 2598}))
    );
    assert_eq!(saved.erp_updated_at, t(-60));
    assert_eq!(saved.released_at, Some(t(5)));
    assert_eq!(saved.pushed_at, None);
    assert_eq!((saved.created_at, saved.updated_at), (t(5), t(5)));
    let lines = store.order_lines(ACME, "1001").await?;
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.line_id.as_str(), l.quantity))
            .collect::<Vec<_>>(),
        [("L1", 2), ("L2", 1)]
    );
    assert_eq!(lines[0].connection, ACME);
    assert_eq!(lines[0].erp_id, "1001");
    assert_eq!(lines[0].unit_weight_mg, Some(250_000));
    assert!(lines[0].physical);

    // Pushed: the record is edited and written back; lines left alone (None).
    let mut pushed = shipledger_store::OrderUpsert::from_record(&saved);
    pushed.state = OrderState::Pushed;
    pushed.ss_order_id = Some(987_654_321_012);
    pushed.ss_status = Some("awaiting_shipment".into());
    pushed.pushed_hash = Some("hash-1001".into());
    pushed.pushed_at = Some(t(9));
    let mut change = Change::new(ACME, t(9));
    change.order = Some(pushed);
    store.commit(change).await?;
    let saved = store.get_order(ACME, "1001").await?.unwrap();
    assert_eq!(saved.state, OrderState::Pushed);
    assert_eq!(saved.ss_order_id, Some(987_654_321_012));
    assert_eq!(saved.ss_status.as_deref(), Some("awaiting_shipment"));
    assert_eq!(
        (saved.created_at, saved.updated_at),
        (t(5), t(9)),
        "created_at is kept"
    );
    assert_eq!(store.order_lines(ACME, "1001").await?.len(), 2);

    // Lines given again replace every line.
    let mut edited = shipledger_store::OrderUpsert::from_record(&saved);
    edited.lines = Some(vec![line("L3", "POT", 4)]);
    let mut change = Change::new(ACME, t(10));
    change.order = Some(edited);
    store.commit(change).await?;
    let lines = store.order_lines(ACME, "1001").await?;
    assert_eq!(
        lines.iter().map(|l| l.line_id.as_str()).collect::<Vec<_>>(),
        ["L3"]
    );

    let jobs = store.list_jobs(JobFilter::default()).await?;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Pending);
    assert_eq!(jobs[0].attempts, 0);
    assert_eq!(jobs[0].spec, spec(JobKind::SyncOrder, "push:1001:hash-1001"));
    assert_eq!(
        store.get_watermark(ACME, "erp_orders").await?.as_deref(),
        Some("2025-03-01T08:59:00Z")
    );
    assert_eq!(store.timeline(ACME, "order", "1001").await?.len(), 1);
    Ok(())
}

pub async fn planning_the_same_idempotency_key_twice_plans_one_job(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.jobs.push(job(JobKind::SyncOrder, "push:1001", t(0)));
    let first = store.commit(change.clone()).await?;
    assert_eq!(first.jobs_planned.len(), 1);

    // The same decision made again (a retry, a second worker) plans nothing new.
    change.jobs.push(job(JobKind::SyncOrder, "push:1002", t(0)));
    let again = store.commit(change).await?;
    assert_eq!(again.jobs_skipped, ["push:1001"]);
    assert_eq!(again.jobs_planned.len(), 1);
    assert_ne!(again.jobs_planned[0], first.jobs_planned[0]);

    // Twice in one change: once.
    let mut twice = Change::new(ACME, t(1));
    twice.jobs.push(job(JobKind::WriteFulfilment, "cancel:1001", t(1)));
    twice.jobs.push(job(JobKind::WriteFulfilment, "cancel:1001", t(1)));
    let outcome = store.commit(twice).await?;
    assert_eq!(
        (outcome.jobs_planned.len(), outcome.jobs_skipped.len()),
        (1, 1)
    );

    // The key is unique per connection: another brand has its own.
    let mut other = Change::new(BETA, t(1));
    other.jobs.push(job(JobKind::SyncOrder, "push:1001", t(1)));
    assert_eq!(store.commit(other).await?.jobs_planned.len(), 1);

    let acme = store
        .list_jobs(JobFilter {
            connection: Some(ACME.into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(acme.len(), 3);
    Ok(())
}

pub async fn a_change_without_a_time_is_stamped_with_the_clock(db: &TestDb) -> anyhow::Result<()> {
    let before = jiff::Timestamp::now();
    let mut change = Change {
        connection: ACME.into(),
        ..Default::default()
    };
    change.events.push(event("1001", "label_seen"));
    db.store.commit(change).await?;
    let after = jiff::Timestamp::now();
    let events = db.store.timeline(ACME, "order", "1001").await?;
    let at = events[0].at;
    // Stored to the millisecond.
    assert!(
        at >= before - jiff::SignedDuration::from_millis(1) && at <= after,
        "{before} <= {at} <= {after}"
    );
    Ok(())
}

pub async fn a_change_for_an_unregistered_connection_says_how_to_fix_it(
    db: &TestDb,
) -> anyhow::Result<()> {
    let mut change = Change::new("nobody", t(0));
    change.order = Some(order("1", "SO-1", OrderState::Received));
    let err = db
        .store
        .commit(change)
        .await
        .expect_err("unknown connection");
    assert!(err.to_string().contains("ensure_connection"), "{err}");
    Ok(())
}

pub async fn many_workers_committing_at_once_never_fail_with_busy(
    db: &TestDb,
) -> anyhow::Result<()> {
    let other = db.open_another().await?;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let id = format!("{}", 5000 + i);
            let mut change = Change::new(ACME, t(i));
            change.order = Some(order(&id, &format!("SO-{id}"), OrderState::Released));
            change
                .jobs
                .push(job(JobKind::SyncOrder, &format!("push:{id}"), t(i)));
            change.events.push(event(&id, "released"));
            // Each writer its own watermark: one name is moved by one writer at a time.
            change.watermark = Some(WatermarkMove::new(format!("erp_orders_{i}"), None, format!("{i:04}")));
            store.commit(change).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let counts = db.store.count_orders_by_state(ACME).await?;
    assert_eq!(counts, [(OrderState::Released, 60)]);
    assert_eq!(db.store.list_jobs(JobFilter::default()).await?.len(), 60);
    Ok(())
}
