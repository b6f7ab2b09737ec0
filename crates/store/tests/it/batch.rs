//! Group commit: many independent decisions (a burst of webhook deliveries) stored in
//! one transaction, every one of them or none.

use serde_json::json;
use shipledger_store::{
    Change, EventKind, JobFilter, JobFinish, JobKind, JobState, NewEvent, OrderState, RecordType, StoreError,
};

use crate::harness::{ACME, BETA, TestDb, claim, job, order, t};

/// A v1 webhook delivery as the receiver stores it: its job and its `received` event.
fn delivery(connection: &str, key: &str, at: i64) -> Change {
    let mut change = Change::new(connection, t(at));
    change.jobs.push(job(JobKind::IngestV1Webhook, key, t(at)));
    change.events.push(NewEvent::new(
        RecordType::Webhook,
        "SHIP_NOTIFY",
        EventKind::Received,
        json!({"idempotency_key": key}),
    ));
    change
}

fn webhook_keys(jobs: &[shipledger_store::Job]) -> Vec<&str> {
    let mut keys: Vec<&str> = jobs.iter().map(|j| j.idempotency_key.as_str()).collect();
    keys.sort();
    keys
}

pub async fn a_burst_of_deliveries_is_stored_in_one_batch_with_an_outcome_each(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    // One delivery arrived earlier and is already in the inbox.
    store.commit(delivery(ACME, "v1hook:earlier", 0)).await?;

    let batch = vec![
        delivery(ACME, "v1hook:a", 1),
        delivery(ACME, "v1hook:earlier", 1), // ShipStation sent it again
        delivery(ACME, "v1hook:b", 1),
        delivery(ACME, "v1hook:a", 2), // delivered twice within the burst
        delivery(BETA, "v1hook:a", 2), // another brand's key is its own
    ];
    let outcomes = store.commit_batch(&batch).await?;
    assert_eq!(outcomes.len(), 5, "one outcome per change, in order");
    let planned: Vec<(usize, usize)> = outcomes.iter().map(|o| (o.jobs_planned.len(), o.jobs_skipped.len())).collect();
    assert_eq!(planned, [(1, 0), (0, 1), (1, 0), (0, 1), (1, 0)]);
    assert_eq!(outcomes[1].jobs_skipped, ["v1hook:earlier"]);
    assert_eq!(outcomes[3].jobs_skipped, ["v1hook:a"]);

    let acme = store.list_jobs(JobFilter { connection: Some(ACME.into()), ..Default::default() }).await?;
    assert_eq!(webhook_keys(&acme), ["v1hook:a", "v1hook:b", "v1hook:earlier"], "one job per key, ever");
    let beta = store.list_jobs(JobFilter { connection: Some(BETA.into()), ..Default::default() }).await?;
    assert_eq!(webhook_keys(&beta), ["v1hook:a"]);
    // Every delivery, duplicates included, is on the webhooks' timeline, as with one commit each.
    assert_eq!(store.timeline(ACME, "webhook", "SHIP_NOTIFY").await?.len(), 5);
    assert_eq!(store.timeline(BETA, "webhook", "SHIP_NOTIFY").await?.len(), 1);

    // The planned jobs are ordinary inbox jobs: the engine claims them.
    let claimed = store.claim_jobs(claim(JobKind::IngestV1Webhook, t(3), "w1", 10)).await?;
    assert_eq!(claimed.len(), 4);
    assert!(store.commit_batch(&[]).await?.is_empty(), "an empty batch is nothing to do");

    // A batch in which one change also writes an order keeps the same rules.
    let mut released = delivery(ACME, "v1hook:c", 5);
    released.order = Some(order("1001", "SO-1001", OrderState::Released));
    let outcomes = store.commit_batch(&[delivery(ACME, "v1hook:b", 5), released, delivery(ACME, "v1hook:c", 5)]).await?;
    let planned: Vec<(usize, usize)> = outcomes.iter().map(|o| (o.jobs_planned.len(), o.jobs_skipped.len())).collect();
    assert_eq!(planned, [(0, 1), (1, 0), (0, 1)]);
    assert_eq!(store.get_order(ACME, "1001").await?.map(|o| o.state), Some(OrderState::Released));
    assert_eq!(store.timeline(ACME, "webhook", "SHIP_NOTIFY").await?.len(), 8);
    Ok(())
}

pub async fn a_batch_with_one_failing_change_stores_none_of_it(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    plan.jobs.push(job(JobKind::SyncOrder, "push:1", t(0)));
    store.commit(plan).await?;
    let claimed = store.claim_jobs(claim(JobKind::SyncOrder, t(1), "w1", 1)).await?;
    let job_id = claimed[0].id;

    // The third change finishes a job whose lease is somebody else's: the whole batch,
    // the deliveries before and after it included, is rolled back.
    let mut lost = Change::new(ACME, t(2));
    lost.finish_job = Some(JobFinish { job_id, lease_token: "somebody-else".into(), state: JobState::Done, error: None });
    let batch = vec![delivery(ACME, "v1hook:a", 2), delivery(BETA, "v1hook:b", 2), lost, delivery(ACME, "v1hook:c", 2)];
    let failed = store.commit_batch(&batch).await;
    assert!(matches!(failed, Err(StoreError::LeaseLost { job_id: id }) if id == job_id), "{failed:?}");

    let all = store.list_jobs(JobFilter::default()).await?;
    assert_eq!(webhook_keys(&all), ["push:1"], "no delivery of the failed batch is stored");
    assert!(store.timeline(ACME, "webhook", "SHIP_NOTIFY").await?.is_empty());
    assert!(store.timeline(BETA, "webhook", "SHIP_NOTIFY").await?.is_empty());
    assert_eq!(store.get_job(job_id).await?.unwrap().state, JobState::Running, "the job stays with its worker");

    // A change for a connection never registered fails the batch the same way.
    let batch = vec![delivery(ACME, "v1hook:a", 3), delivery("nobody", "v1hook:x", 3)];
    let err = store.commit_batch(&batch).await.expect_err("unknown connection");
    assert!(err.to_string().contains("ensure_connection"), "{err}");
    assert_eq!(webhook_keys(&store.list_jobs(JobFilter::default()).await?), ["push:1"]);

    // Sent again (ShipStation retries what was answered 5xx), the deliveries are stored once.
    let outcomes = store.commit_batch(&[delivery(ACME, "v1hook:a", 4), delivery(ACME, "v1hook:c", 4)]).await?;
    assert!(outcomes.iter().all(|o| o.jobs_planned.len() == 1));
    assert_eq!(webhook_keys(&store.list_jobs(JobFilter::default()).await?), ["push:1", "v1hook:a", "v1hook:c"]);
    Ok(())
}

pub async fn batches_committed_from_many_tasks_at_once_never_fail_with_busy(db: &TestDb) -> anyhow::Result<()> {
    let other = db.open_another().await?;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = if i % 2 == 0 { db.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let batch: Vec<_> = (0..25).map(|j| delivery(ACME, &format!("v1hook:{i}-{j}"), i)).collect();
            store.commit_batch(&batch).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await??.len(), 25);
    }
    assert_eq!(db.store.list_jobs(JobFilter::default()).await?.len(), 300);
    Ok(())
}
