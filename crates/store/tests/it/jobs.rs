//! The outbox: leases, expiry, retries, and many claimers.

use std::collections::HashSet;

use jiff::SignedDuration;
use shipledger_store::{Attempt, Change, JobClaim, UnknownJobs, JobFinish, JobState, RunnableJobs, StoreError};

use shipledger_store::JobKind;
use crate::harness::{ACME, BETA, TestDb, claim, job, spec, t};

async fn plan(
    db: &TestDb,
    connection: &str,
    jobs: Vec<shipledger_store::NewJob>,
) -> anyhow::Result<Vec<i64>> {
    let mut change = Change::new(connection, t(0));
    change.jobs = jobs;
    Ok(db.store.commit(change).await?.jobs_planned)
}

fn finish(job_id: i64, token: &str, state: JobState, error: Option<&str>) -> Change {
    let mut change = Change::new(ACME, t(100));
    change.finish_job = Some(JobFinish {
        job_id,
        lease_token: token.into(),
        state,
        error: error.map(Into::into),
    });
    change
}

pub async fn two_concurrent_claimers_never_get_the_same_job(db: &TestDb) -> anyhow::Result<()> {
    plan(
        db,
        ACME,
        (0..60)
            .map(|i| job(JobKind::SyncOrder, &format!("push:{i}"), t(0)))
            .collect(),
    )
    .await?;
    // Two stores on one database: two processes.
    let other = db.open_another().await?;
    let mut tasks = Vec::new();
    for worker in 0..10 {
        let store = if worker % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let name = format!("worker-{worker}");
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_jobs(claim(JobKind::SyncOrder, t(1), &name, 3))
                    .await?;
                if batch.is_empty() {
                    return anyhow::Ok(mine);
                }
                mine.extend(batch.into_iter().map(|job| job.id));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await?? {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 60, "every job was claimed");
    Ok(())
}

pub async fn an_expired_lease_makes_a_job_claimable_again_and_the_old_token_cannot_finish_it(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let ids = plan(db, ACME, vec![job(JobKind::SyncOrder, "push:1", t(0))]).await?;

    let first = store.claim_jobs(claim(JobKind::SyncOrder, t(0), "w1", 5)).await?;
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!(
        (first.id, first.state, first.attempts),
        (ids[0], JobState::Running, 1)
    );
    assert_eq!(first.lease_until, Some(t(30)));
    let old_token = first.lease_token.clone().expect("a lease token");
    assert!(old_token.starts_with("w1"), "{old_token}");

    // Still leased: nobody else gets it.
    assert!(
        store
            .claim_jobs(claim(JobKind::SyncOrder, t(29), "w2", 5))
            .await?
            .is_empty()
    );

    // The worker died; its lease ran out.
    let second = store
        .claim_jobs(claim(JobKind::SyncOrder, t(30), "w2", 5))
        .await?;
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].id, second[0].attempts), (ids[0], 2));
    let new_token = second[0].lease_token.clone().unwrap();
    assert_ne!(new_token, old_token);

    // The old worker wakes up: it can neither finish nor retry the job.
    let late = store
        .commit(finish(ids[0], &old_token, JobState::Done, None))
        .await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );
    let late = store
        .retry_job(ids[0], &old_token, t(60), "timeout", Attempt::Counted, t(40))
        .await;
    assert!(
        matches!(late, Err(StoreError::LeaseLost { .. })),
        "{late:?}"
    );

    store
        .commit(finish(ids[0], &new_token, JobState::Done, None))
        .await?;
    let done = store.get_job(ids[0]).await?.unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!((done.lease_token, done.lease_until), (None, None));
    assert_eq!(done.updated_at, t(100));
    // Done is done.
    assert!(
        store
            .claim_jobs(claim(JobKind::SyncOrder, t(1000), "w3", 5))
            .await?
            .is_empty()
    );
    let again = store
        .commit(finish(ids[0], &new_token, JobState::Done, None))
        .await;
    assert!(
        matches!(again, Err(StoreError::LeaseLost { .. })),
        "{again:?}"
    );
    Ok(())
}

pub async fn a_job_whose_payload_cannot_be_read_is_finished_dead_and_the_rest_of_its_kind_still_run(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let ids = plan(
        db,
        ACME,
        vec![job(JobKind::SyncOrder, "push:1", t(0)), job(JobKind::SyncOrder, "push:2", t(0)), job(JobKind::SyncOrder, "push:3", t(0))],
    )
    .await?;
    // Someone edited push:2 by hand: its order id is a number and its hash is gone.
    db.execute(&format!("UPDATE jobs SET payload = '{{\"erp_id\": 1002}}' WHERE id = {}", ids[1])).await?;

    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(10), "w1", 5)).await?;
    let got: Vec<(i64, i64)> = claimed.iter().map(|j| (j.id, j.attempts)).collect();
    assert_eq!(got, vec![(ids[0], 1), (ids[2], 1)], "the readable jobs are claimed and returned");
    assert!(claimed.iter().all(|j| j.state == JobState::Running && j.lease_token.is_some()));

    let mut counts = store.count_jobs(ACME).await?;
    counts.sort();
    assert_eq!(
        counts,
        vec![("sync_order".to_string(), JobState::Running, 2), ("sync_order".to_string(), JobState::Dead, 1)],
    );
    let why = db.text(&format!("SELECT last_error FROM jobs WHERE id = {}", ids[1])).await?.unwrap_or_default();
    assert!(why.starts_with(&format!("job {}'s payload cannot be read: ", ids[1])), "{why}");
    assert!(why.contains("sync_order") && why.contains("set it back to pending"), "{why}");
    let lease = db.text(&format!("SELECT lease_token FROM jobs WHERE id = {}", ids[1])).await?;
    assert_eq!(lease, None, "the dead job holds no lease");

    // The admin can find it; nothing is claimed again.
    let unreadable = store.unreadable_jobs(ACME).await?;
    assert_eq!(unreadable, vec![UnknownJobs { kind: "sync_order".into(), count: 1, ids: vec![ids[1]] }]);
    assert!(store.unreadable_jobs(BETA).await?.is_empty());
    assert!(store.claim_jobs(claim(JobKind::SyncOrder, t(1000), "w2", 5)).await?.len() == 2, "the two leases ran out; the dead job stays dead");
    assert_eq!(store.count_jobs(ACME).await?.iter().find(|c| c.1 == JobState::Dead).map(|c| c.2), Some(1));

    // A job that failed for another reason is not mistaken for one.
    let other = plan(db, ACME, vec![job(JobKind::WriteFulfilment, "label:9", t(0))]).await?;
    let mine = store.claim_jobs(claim(JobKind::WriteFulfilment, t(1000), "w2", 5)).await?;
    store.commit(finish(other[0], mine[0].lease_token.as_deref().unwrap(), JobState::Dead, Some("the ERP refused it"))).await?;
    assert_eq!(store.unreadable_jobs(ACME).await?.len(), 1);
    Ok(())
}

pub async fn a_rate_limited_push_put_back_has_not_spent_an_attempt(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let ids = plan(db, ACME, vec![job(JobKind::SyncOrder, "push:1", t(0))]).await?;
    // ShipStation answered 429 with Retry-After seven times in a row.
    for minute in 0..7 {
        let now = t(minute * 60);
        let claimed = store.claim_jobs(claim(JobKind::SyncOrder, now, "w1", 1)).await?;
        assert_eq!((claimed[0].id, claimed[0].attempts), (ids[0], 1), "429 number {}", minute + 1);
        let token = claimed[0].lease_token.clone().unwrap();
        store
            .retry_job(ids[0], &token, t(minute * 60 + 60), "ShipStation asked to wait 60 s", Attempt::NotCounted, now)
            .await?;
        let waiting = store.get_job(ids[0]).await?.unwrap();
        assert_eq!((waiting.state, waiting.attempts, waiting.next_run_at), (JobState::Pending, 0, t(minute * 60 + 60)));
    }
    // Then a 503: that attempt is counted.
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(420), "w1", 1)).await?;
    let token = claimed[0].lease_token.clone().unwrap();
    store.retry_job(ids[0], &token, t(480), "ShipStation answered 503", Attempt::Counted, t(420)).await?;
    let waiting = store.get_job(ids[0]).await?.unwrap();
    assert_eq!(waiting.attempts, 1, "one real failure, not eight");
    assert_eq!(waiting.last_error.as_deref(), Some("ShipStation answered 503"));
    Ok(())
}

pub async fn a_retried_job_waits_for_its_next_run_and_keeps_its_payload(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let ids = plan(db, ACME, vec![job(JobKind::SyncOrder, "push:1", t(0))]).await?;
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(0), "w1", 1)).await?;
    let token = claimed[0].lease_token.clone().unwrap();

    store
        .retry_job(ids[0], &token, t(60), "ShipStation answered 503", Attempt::Counted, t(5))
        .await?;
    let waiting = store.get_job(ids[0]).await?.unwrap();
    assert_eq!(waiting.state, JobState::Pending);
    assert_eq!(waiting.next_run_at, t(60));
    assert_eq!(
        waiting.last_error.as_deref(),
        Some("ShipStation answered 503")
    );
    assert_eq!((waiting.lease_token, waiting.lease_until), (None, None));
    // The token is spent.
    let twice = store.retry_job(ids[0], &token, t(60), "again", Attempt::Counted, t(6)).await;
    assert!(
        matches!(twice, Err(StoreError::LeaseLost { .. })),
        "{twice:?}"
    );

    assert!(
        store
            .claim_jobs(claim(JobKind::SyncOrder, t(59), "w1", 1))
            .await?
            .is_empty()
    );
    let again = store
        .claim_jobs(claim(JobKind::SyncOrder, t(60), "w1", 1))
        .await?;
    assert_eq!((again[0].id, again[0].attempts), (ids[0], 2));
    assert_eq!(again[0].spec, spec(JobKind::SyncOrder, "push:1"));

    let missing = store.retry_job(999_999, "x", t(60), "e", Attempt::Counted, t(60)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(store.get_job(999_999).await?, None);
    Ok(())
}

pub async fn jobs_are_claimed_oldest_first_by_kind_and_connection(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    plan(
        db,
        ACME,
        vec![
            job(JobKind::SyncOrder, "push:late", t(20)),
            job(JobKind::SyncOrder, "push:early", t(10)),
            job(JobKind::WriteFulfilment, "cancel:1", t(0)),
            job(JobKind::SyncOrder, "push:future", t(500)),
        ],
    )
    .await?;
    plan(db, BETA, vec![job(JobKind::SyncOrder, "beta:push", t(0))]).await?;

    let acme_only = JobClaim {
        connection: Some(ACME),
        lease: SignedDuration::from_hours(1),
        ..claim(JobKind::SyncOrder, t(100), "w", 1)
    };
    let first = store.claim_jobs(acme_only.clone()).await?;
    assert_eq!(first[0].idempotency_key, "push:early");
    let rest = store
        .claim_jobs(JobClaim {
            limit: 10,
            ..acme_only
        })
        .await?;
    assert_eq!(
        rest.iter()
            .map(|j| j.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["push:late"]
    );

    // Any connection, oldest first.
    let any = store
        .claim_jobs(claim(JobKind::SyncOrder, t(1000), "w", 10))
        .await?;
    assert_eq!(
        any.iter()
            .map(|j| j.idempotency_key.as_str())
            .collect::<Vec<_>>(),
        ["beta:push", "push:future"]
    );
    assert!(
        store
            .claim_jobs(claim(JobKind::SyncOrder, t(1000), "w", 0))
            .await?
            .is_empty()
    );

    let counts = store.count_jobs(ACME).await?;
    assert_eq!(
        counts,
        [
            ("sync_order".to_string(), JobState::Running, 3),
            ("write_fulfilment".to_string(), JobState::Pending, 1)
        ]
    );
    let pending = store
        .list_jobs(shipledger_store::JobFilter {
            state: Some(JobState::Pending),
            ..Default::default()
        })
        .await?;
    assert_eq!(pending.len(), 1);
    let limited = store
        .list_jobs(shipledger_store::JobFilter {
            limit: 2,
            ..Default::default()
        })
        .await?;
    assert_eq!(limited.len(), 2);
    let by_kind = store
        .list_jobs(shipledger_store::JobFilter {
            kind: Some(JobKind::WriteFulfilment),
            ..Default::default()
        })
        .await?;
    assert_eq!(by_kind[0].idempotency_key, "cancel:1");
    Ok(())
}

pub async fn a_job_that_gives_up_is_dead_with_its_error(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let ids = plan(db, ACME, vec![job(JobKind::SyncOrder, "push:1", t(0))]).await?;
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(0), "w1", 1)).await?;
    let token = claimed[0].lease_token.clone().unwrap();

    // Finishing as "pending" is not a way to finish.
    let odd = store
        .commit(finish(ids[0], &token, JobState::Pending, None))
        .await;
    assert!(odd.is_err());

    store
        .commit(finish(
            ids[0],
            &token,
            JobState::Dead,
            Some("rejected 8 times"),
        ))
        .await?;
    let dead = store.get_job(ids[0]).await?.unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("rejected 8 times"));
    assert!(
        store
            .claim_jobs(claim(JobKind::SyncOrder, t(10_000), "w2", 1))
            .await?
            .is_empty()
    );

    // A job of another connection is not this change's to finish.
    let mut wrong = finish(ids[0], &token, JobState::Done, None);
    wrong.connection = BETA.into();
    assert!(matches!(
        store.commit(wrong).await,
        Err(StoreError::NotFound { .. })
    ));
    Ok(())
}

/// Webhook hints planned at three moments, one retried later, one on another
/// connection: what a claim would take is counted with when the first and the last of
/// those were planned, and nothing is claimed by asking.
pub async fn runnable_jobs_are_counted_with_when_the_first_and_last_were_planned(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let hint = |key: &str, at: i64| {
        let mut change = Change::new(ACME, t(at));
        change.jobs = vec![job(JobKind::IngestV1Webhook, key, t(at))];
        change
    };
    assert_eq!(store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(0)).await?, RunnableJobs::default(), "none yet");
    for (key, at) in [("hint:a", 10), ("hint:b", 20), ("hint:c", 30)] {
        store.commit(hint(key, at)).await?;
    }
    let mut other = Change::new(BETA, t(40));
    other.jobs = vec![job(JobKind::IngestV1Webhook, "beta:hint", t(40))];
    store.commit(other).await?;
    plan(db, ACME, vec![job(JobKind::SyncOrder, "push:1", t(0))]).await?;

    let at = |n: i64| Some(t(n));
    let runnable = store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(25)).await?;
    assert_eq!(runnable, RunnableJobs { count: 2, first_planned_at: at(10), last_planned_at: at(20) }, "the one due at 30 is not runnable at 25");
    let runnable = store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(60)).await?;
    assert_eq!(runnable, RunnableJobs { count: 3, first_planned_at: at(10), last_planned_at: at(30) });

    // Claimed, then the first put back to run at 200: not runnable before then, and
    // once due it is counted by when it was planned, not when it was put back.
    let claimed = store
        .claim_jobs(JobClaim { connection: Some(ACME), ..claim(JobKind::IngestV1Webhook, t(60), "w", 10) })
        .await?;
    assert_eq!(claimed.len(), 3);
    assert_eq!(store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(61)).await?.count, 0, "leased jobs are not runnable");
    let first = claimed.iter().find(|j| j.idempotency_key == "hint:a").unwrap();
    store
        .retry_job(first.id, first.lease_token.as_deref().unwrap(), t(200), "poll failed", Attempt::Counted, t(61))
        .await?;
    assert_eq!(store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(80)).await?.count, 0, "the other two are still leased");
    let later = store.runnable_jobs(ACME, JobKind::IngestV1Webhook, t(200)).await?;
    assert_eq!(later, RunnableJobs { count: 3, first_planned_at: at(10), last_planned_at: at(30) }, "put back and expired leases count again");
    assert_eq!(
        store.runnable_jobs(BETA, JobKind::IngestV1Webhook, t(200)).await?,
        RunnableJobs { count: 1, first_planned_at: at(40), last_planned_at: at(40) }
    );
    let still = store.list_jobs(shipledger_store::JobFilter { connection: Some(ACME.into()), kind: Some(JobKind::IngestV1Webhook), ..Default::default() }).await?;
    assert!(still.iter().all(|j| j.attempts == 1), "asking claims nothing: {still:?}");
    Ok(())
}

pub async fn a_claims_jobs_are_renewed_together_and_a_job_taken_over_is_no_longer_renewed(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    for key in ["push:1", "push:2", "push:3"] {
        plan.jobs.push(job(JobKind::SyncOrder, key, t(0)));
    }
    store.commit(plan).await?;
    // One claim of three jobs, leased for 30 s: they share the claim's token.
    let mine = store.claim_jobs(claim(JobKind::SyncOrder, t(0), "w1", 3)).await?;
    assert_eq!(mine.len(), 3);
    let token = mine[0].lease_token.clone().unwrap();
    assert!(mine.iter().all(|j| j.lease_token.as_deref() == Some(token.as_str())), "one claim, one token");
    let mut ids: Vec<i64> = mine.iter().map(|j| j.id).collect();
    ids.sort();

    // Renewed at 20 s until 50 s: at 40 s (past the claim's lease) nobody can take them.
    assert_eq!(store.renew_jobs(&token, t(50), t(20)).await?, ids);
    assert!(store.claim_jobs(claim(JobKind::SyncOrder, t(40), "w2", 5)).await?.is_empty(), "renewed leases hold");

    // One job finished: the next renewal no longer names it.
    let mut done = Change::new(ACME, t(41));
    done.finish_job = Some(JobFinish { job_id: ids[0], lease_token: token.clone(), state: JobState::Done, error: None });
    store.commit(done).await?;
    assert_eq!(store.renew_jobs(&token, t(75), t(45)).await?, ids[1..].to_vec());

    // The renewals stop (the worker stalled): at 80 s another worker takes the two
    // left over, and the first worker's next renewal holds nothing.
    let theirs = store.claim_jobs(claim(JobKind::SyncOrder, t(80), "w2", 5)).await?;
    assert_eq!(theirs.iter().map(|j| j.id).collect::<Vec<_>>(), ids[1..].to_vec());
    assert_eq!(store.renew_jobs(&token, t(110), t(81)).await?, Vec::<i64>::new());
    let still = store.get_job(ids[1]).await?.unwrap();
    assert_eq!(still.lease_until, Some(t(110)), "the other worker's lease stands: {still:?}");
    assert_eq!(still.lease_token, theirs[0].lease_token);
    Ok(())
}
