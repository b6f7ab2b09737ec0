//! What the metrics read: the kinds a commit opened and closed, and the two grouped
//! counts that seed and refresh the gauges.

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{Change, JobKind, JobState, JobStats, OpenExceptions};

use crate::harness::{ACME, BETA, TestDb, claim, job, t};

pub async fn a_commit_names_the_kinds_it_opened_and_closed_and_the_open_ones_are_counted_per_connection(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut hold = Change::new(ACME, t(0));
    hold.raise(ExceptionKind::HeldUnpaid, "order", "1001", json!({}));
    hold.raise(ExceptionKind::HeldUnpaid, "order", "1002", json!({}));
    hold.raise(ExceptionKind::HeldUnknownSku, "order", "1002", json!({}));
    let outcome = store.commit(hold).await?;
    assert_eq!(outcome.opened_kinds, [ExceptionKind::HeldUnpaid, ExceptionKind::HeldUnpaid, ExceptionKind::HeldUnknownSku]);

    // Seen again (refreshed, not opened) and one cleared.
    let mut again = Change::new(ACME, t(10));
    again.raise(ExceptionKind::HeldUnpaid, "order", "1001", json!({}));
    again.clear(ExceptionKind::HeldUnknownSku, "order", "1002");
    again.clear(ExceptionKind::HeldMissingWeight, "order", "1002");
    let outcome = store.commit(again).await?;
    assert!(outcome.opened_kinds.is_empty());
    assert_eq!(outcome.closed_kinds, [ExceptionKind::HeldUnknownSku]);

    let mut beta = Change::new(BETA, t(20));
    beta.raise(ExceptionKind::HeldUnpaid, "order", "B1", json!({}));
    store.commit(beta).await?;

    assert_eq!(
        store.count_open_exceptions().await?,
        [
            OpenExceptions { connection: ACME.into(), kind: ExceptionKind::HeldUnpaid, count: 2 },
            OpenExceptions { connection: BETA.into(), kind: ExceptionKind::HeldUnpaid, count: 1 },
        ]
    );
    Ok(())
}

pub async fn job_stats_count_pending_and_running_jobs_with_the_earliest_due_time(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    plan.jobs = vec![job(JobKind::SyncOrder, "p1", t(5)), job(JobKind::SyncOrder, "p2", t(3)), job(JobKind::SyncOrder, "p3", t(9))];
    store.commit(plan).await?;
    let mut beta = Change::new(BETA, t(0));
    beta.jobs = vec![job(JobKind::WriteFulfilment, "c1", t(7))];
    store.commit(beta).await?;
    // The earliest-due push is claimed: running from then on.
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(4), "w", 1)).await?;
    assert_eq!(claimed.len(), 1);

    let stats = store.job_stats().await?;
    let row = |connection: &str, kind: &str, state, count, earliest| JobStats {
        connection: connection.into(),
        kind: kind.into(),
        state,
        count,
        earliest_run_at: Some(earliest),
    };
    assert_eq!(
        stats,
        [
            row(ACME, "sync_order", JobState::Pending, 2, t(5)),
            row(ACME, "sync_order", JobState::Running, 1, t(3)),
            row(BETA, "write_fulfilment", JobState::Pending, 1, t(7)),
        ]
    );
    Ok(())
}
