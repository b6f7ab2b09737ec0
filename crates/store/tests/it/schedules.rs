//! Recurring passes (ERP polls, shipment polls, scan sweeps, …) are leased rows, so
//! that of many workers on one database exactly one runs each pass when it is due,
//! a dead worker's pass is taken over, and a draining worker gives its leases back.

use jiff::SignedDuration;
use shipledger_store::{Change, JobKind, JobState, ScheduleFinish, ScheduleTake, StoreError};

use crate::harness::{ACME, BETA, TestDb, claim, job, t};

const LEASE: SignedDuration = SignedDuration::from_mins(10);

fn take<'a>(connection: &'a str, name: &'a str, secs: i64, worker: &'a str, force: bool) -> ScheduleTake<'a> {
    ScheduleTake { connection, name, now: t(secs), lease: LEASE, force, worker }
}

fn finish<'a>(connection: &'a str, name: &'a str, token: &'a str, due: i64, error: Option<&'a str>, now: i64) -> ScheduleFinish<'a> {
    ScheduleFinish { connection, name, lease_token: token, next_due_at: t(due), error, now: t(now) }
}

pub async fn two_takers_racing_for_one_due_pass_get_it_once(db: &TestDb) -> anyhow::Result<()> {
    let other = db.open_another().await?;
    // Several rounds, each pass due, eight takers in two "processes" racing for it.
    for round in 0..5i64 {
        let now = round * 60;
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = if w % 2 == 0 { db.store.clone() } else { other.clone() };
            tasks.push(tokio::spawn(async move {
                let worker = format!("w{w}");
                let taken = store
                    .take_schedule(ScheduleTake {
                        connection: ACME,
                        name: "shipment_poll",
                        now: t(now),
                        lease: LEASE,
                        force: false,
                        worker: &worker,
                    })
                    .await?;
                anyhow::Ok(taken.map(|r| (worker, r)))
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            if let Some(won) = task.await?? {
                winners.push(won);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one taker wins, got {:?}", winners.iter().map(|w| &w.0).collect::<Vec<_>>());
        let (worker, record) = &winners[0];
        let token = record.lease_token.clone().expect("a lease token");
        assert!(token.starts_with(&format!("{worker}:")), "the token names its worker: {token}");
        assert_eq!(record.last_started_at, Some(t(now)));
        assert_eq!(record.lease_until, Some(t(now) + LEASE));
        db.store.finish_schedule(finish(ACME, "shipment_poll", &token, now + 60, None, now + 5)).await?;
    }
    let record = db.store.get_schedule(ACME, "shipment_poll").await?.expect("the pass exists");
    assert_eq!(record.runs, 5, "one pass per interval");
    assert_eq!(record.next_due_at, Some(t(300)));
    Ok(())
}

pub async fn a_pass_is_taken_only_when_due_or_forced_and_never_from_a_live_lease(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    // Never run: due now, and its record is made by the take.
    assert!(store.get_schedule(ACME, "erp_poll").await?.is_none());
    let first = store.take_schedule(take(ACME, "erp_poll", 0, "w1", false)).await?.expect("due when never run");
    assert_eq!(first.next_due_at, None);
    // Held: nobody takes it, forced or not, not even the same worker.
    assert!(store.take_schedule(take(ACME, "erp_poll", 1, "w2", false)).await?.is_none());
    assert!(store.take_schedule(take(ACME, "erp_poll", 1, "w2", true)).await?.is_none());
    assert!(store.take_schedule(take(ACME, "erp_poll", 1, "w1", true)).await?.is_none());
    // The same pass of another connection is another row.
    assert!(store.take_schedule(take(BETA, "erp_poll", 1, "w2", false)).await?.is_some());

    let token = first.lease_token.unwrap();
    store.finish_schedule(finish(ACME, "erp_poll", &token, 60, None, 2)).await?;
    // Not due until 60, unless forced.
    assert!(store.take_schedule(take(ACME, "erp_poll", 59, "w2", false)).await?.is_none());
    let forced = store.take_schedule(take(ACME, "erp_poll", 59, "w2", true)).await?.expect("forced");
    store.finish_schedule(finish(ACME, "erp_poll", forced.lease_token.as_deref().unwrap(), 120, None, 59)).await?;
    assert!(store.take_schedule(take(ACME, "erp_poll", 119, "w1", false)).await?.is_none());
    assert!(store.take_schedule(take(ACME, "erp_poll", 120, "w1", false)).await?.is_some(), "due at its time");
    Ok(())
}

pub async fn an_expired_pass_lease_is_taken_over_and_the_old_token_cannot_finish_it(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let dead = store.take_schedule(take(ACME, "scan_sweep", 0, "w1", false)).await?.unwrap();
    let lease_secs = LEASE.as_secs();
    // The worker died mid-pass; until its lease runs out nobody takes the pass.
    assert!(store.take_schedule(take(ACME, "scan_sweep", lease_secs - 1, "w2", true)).await?.is_none());
    let heir = store.take_schedule(take(ACME, "scan_sweep", lease_secs, "w2", false)).await?.expect("an expired lease is taken over");
    assert_ne!(heir.lease_token, dead.lease_token);
    assert_eq!(heir.last_started_at, Some(t(lease_secs)));

    // The first worker wakes up: its finish is refused and changes nothing.
    let late = store.finish_schedule(finish(ACME, "scan_sweep", dead.lease_token.as_deref().unwrap(), 9_999, None, lease_secs + 1)).await;
    assert!(
        matches!(&late, Err(StoreError::ScheduleLeaseLost { connection, name }) if connection == ACME && name == "scan_sweep"),
        "{late:?}"
    );
    let record = store.get_schedule(ACME, "scan_sweep").await?.unwrap();
    assert_eq!((record.runs, record.lease_token.clone()), (0, heir.lease_token.clone()));

    store.finish_schedule(finish(ACME, "scan_sweep", heir.lease_token.as_deref().unwrap(), lease_secs + 60, None, lease_secs + 2)).await?;
    let record = store.get_schedule(ACME, "scan_sweep").await?.unwrap();
    assert_eq!(record.runs, 1);
    assert_eq!(record.last_success_at, Some(t(lease_secs)), "the pass that counts is the heir's");
    assert_eq!((record.lease_token, record.lease_until), (None, None));
    Ok(())
}

pub async fn a_finished_pass_records_its_success_or_its_error(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let ok = store.take_schedule(take(ACME, "monitors", 10, "w1", false)).await?.unwrap();
    store.finish_schedule(finish(ACME, "monitors", ok.lease_token.as_deref().unwrap(), 70, None, 15)).await?;
    let failed = store.take_schedule(take(ACME, "monitors", 70, "w1", false)).await?.unwrap();
    assert_eq!(failed.last_success_at, Some(t(10)), "a take shows when the pass last worked");
    store
        .finish_schedule(finish(ACME, "monitors", failed.lease_token.as_deref().unwrap(), 130, Some("ShipStation answered 500"), 75))
        .await?;
    let record = store.get_schedule(ACME, "monitors").await?.unwrap();
    assert_eq!(record.last_success_at, Some(t(10)), "a failed pass is no success");
    assert_eq!(record.last_started_at, Some(t(70)));
    assert_eq!(record.last_error.as_deref(), Some("ShipStation answered 500"));
    assert_eq!((record.runs, record.next_due_at), (2, Some(t(130))));

    // Worked again: the error is gone.
    let again = store.take_schedule(take(ACME, "monitors", 130, "w1", false)).await?.unwrap();
    store.finish_schedule(finish(ACME, "monitors", again.lease_token.as_deref().unwrap(), 190, None, 131)).await?;
    let record = store.get_schedule(ACME, "monitors").await?.unwrap();
    assert_eq!((record.last_success_at, record.last_error), (Some(t(130)), None));

    // A success recorded without running (a full recheck covers a follow) keeps the
    // later time and never the due time.
    store.record_schedule_success(ACME, "monitors", t(100), t(140)).await?;
    store.record_schedule_success(ACME, "follow", t(100), t(140)).await?;
    let record = store.get_schedule(ACME, "monitors").await?.unwrap();
    assert_eq!((record.last_success_at, record.next_due_at), (Some(t(130)), Some(t(190))));
    let follow = store.get_schedule(ACME, "follow").await?.unwrap();
    assert_eq!((follow.last_success_at, follow.next_due_at, follow.runs), (Some(t(100)), None, 0));

    let listed = store.list_schedules(Some(ACME)).await?;
    let names: Vec<&str> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["follow", "monitors"]);
    assert!(store.list_schedules(Some(BETA)).await?.is_empty());
    assert_eq!(store.list_schedules(None).await?.len(), 2);
    Ok(())
}

pub async fn hastening_brings_a_pass_forward_but_never_back(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let taken = store.take_schedule(take(ACME, "shipment_poll", 0, "w1", false)).await?.unwrap();
    store.finish_schedule(finish(ACME, "shipment_poll", taken.lease_token.as_deref().unwrap(), 600, None, 1)).await?;
    store.hasten_schedule(ACME, "shipment_poll", t(30), t(20)).await?;
    assert_eq!(store.get_schedule(ACME, "shipment_poll").await?.unwrap().next_due_at, Some(t(30)));
    store.hasten_schedule(ACME, "shipment_poll", t(500), t(21)).await?;
    assert_eq!(store.get_schedule(ACME, "shipment_poll").await?.unwrap().next_due_at, Some(t(30)), "never later");
    assert!(store.take_schedule(take(ACME, "shipment_poll", 29, "w2", false)).await?.is_none());
    assert!(store.take_schedule(take(ACME, "shipment_poll", 30, "w2", false)).await?.is_some());
    // A pass never run is due now already: hastening it to later leaves it due.
    store.hasten_schedule(ACME, "scan_sweep", t(900), t(22)).await?;
    assert!(store.take_schedule(take(ACME, "scan_sweep", 23, "w2", false)).await?.is_some());
    Ok(())
}

pub async fn releasing_a_workers_leases_gives_back_only_that_workers_jobs_and_passes(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    for key in ["push:1", "push:2", "push:3"] {
        plan.jobs.push(job(JobKind::SyncOrder, key, t(0)));
    }
    store.commit(plan).await?;
    // "w1" holds two jobs and two passes; "w10" (whose name starts like w1's) one of each.
    let mine = store.claim_jobs(claim(JobKind::SyncOrder, t(60), "w1", 2)).await?;
    let theirs = store.claim_jobs(claim(JobKind::SyncOrder, t(60), "w10", 5)).await?;
    assert_eq!((mine.len(), theirs.len()), (2, 1));
    let poll = store.take_schedule(take(ACME, "shipment_poll", 1, "w1", false)).await?.unwrap();
    store.finish_schedule(finish(ACME, "shipment_poll", poll.lease_token.as_deref().unwrap(), 61, None, 2)).await?;
    let poll = store.take_schedule(take(ACME, "shipment_poll", 61, "w1", false)).await?.unwrap();
    store.take_schedule(take(BETA, "erp_poll", 61, "w1", false)).await?.unwrap();
    let sweep = store.take_schedule(take(ACME, "scan_sweep", 61, "w10", false)).await?.unwrap();

    let released = store.release_leases("w1", t(62)).await?;
    let mut ids: Vec<i64> = mine.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(released.jobs.iter().map(|j| j.0).collect::<Vec<_>>(), ids);
    assert!(released.jobs.iter().all(|(_, c, k)| c == ACME && k == "sync_order"));
    assert_eq!(
        released.schedules,
        [(ACME.to_string(), "shipment_poll".to_string()), (BETA.to_string(), "erp_poll".to_string())]
    );

    // Its jobs are pending again, runnable at once, keeping the attempt their claim
    // counted: the cut-short step may have made its write, so the next claim is a
    // retry (and a push reads back before it sends).
    for job in &mine {
        let back = store.get_job(job.id).await?.unwrap();
        assert_eq!((back.state, back.attempts, back.lease_token), (JobState::Pending, 1, None));
    }
    // The other worker's job and pass are still theirs.
    let still = store.get_job(theirs[0].id).await?.unwrap();
    assert_eq!((still.state, still.lease_token.clone()), (JobState::Running, theirs[0].lease_token.clone()));
    let sweep_now = store.get_schedule(ACME, "scan_sweep").await?.unwrap();
    assert_eq!(sweep_now.lease_token, sweep.lease_token);

    // The released pass keeps its due time (61: due), so the next worker takes it at once.
    let poll_now = store.get_schedule(ACME, "shipment_poll").await?.unwrap();
    assert_eq!((poll_now.lease_token, poll_now.next_due_at, poll_now.runs), (None, Some(t(61)), 1));
    assert!(store.take_schedule(take(ACME, "shipment_poll", 63, "w2", false)).await?.is_some());
    // And the drained worker's late finish is refused.
    let late = store.finish_schedule(finish(ACME, "shipment_poll", poll.lease_token.as_deref().unwrap(), 121, None, 64)).await;
    assert!(matches!(late, Err(StoreError::ScheduleLeaseLost { .. })), "{late:?}");
    let reclaimed = store.claim_jobs(claim(JobKind::SyncOrder, t(63), "w2", 5)).await?;
    assert_eq!(reclaimed.len(), 2, "the released jobs run at once on another worker");
    assert!(reclaimed.iter().all(|j| j.attempts == 2), "the claim after a drain is a retry: {reclaimed:?}");
    // Releasing again finds nothing.
    assert_eq!(store.release_leases("w1", t(65)).await?, Default::default());
    Ok(())
}

pub async fn a_renewed_pass_lease_is_not_taken_over_and_a_lost_one_cannot_be_renewed(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let lease_secs = LEASE.as_secs();
    let taken = store.take_schedule(take(ACME, "shipment_poll", 0, "w1", false)).await?.unwrap();
    let token = taken.lease_token.unwrap();
    // Still at work half-way through: renewed to a full lease from then.
    assert!(store.renew_schedule(ACME, "shipment_poll", &token, t(lease_secs / 2) + LEASE, t(lease_secs / 2)).await?);
    assert!(store.take_schedule(take(ACME, "shipment_poll", lease_secs, "w2", true)).await?.is_none(), "a renewed lease lives on");
    let heir = store.take_schedule(take(ACME, "shipment_poll", lease_secs / 2 + lease_secs, "w2", false)).await?;
    assert!(heir.is_some(), "once renewals stop, the lease runs out and is taken over");
    assert!(!store.renew_schedule(ACME, "shipment_poll", &token, t(10 * lease_secs), t(2 * lease_secs)).await?, "the old token renews nothing");
    let record = store.get_schedule(ACME, "shipment_poll").await?.unwrap();
    assert_eq!(record.lease_token, heir.unwrap().lease_token);
    assert_eq!(record.lease_until, Some(t(lease_secs / 2 + lease_secs) + LEASE));
    Ok(())
}
