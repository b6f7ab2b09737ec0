//! Exceptions: one open per kind and record, owned, filtered, closed, resolved.

use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner, Severity};
use shipledger_store::{
    Change, ExceptionAct, ExceptionActed, ExceptionAction, ExceptionAuditFilter, ExceptionClose, ExceptionFilter, ExceptionOpen,
    ExceptionState, JobFinish, JobKind, JobState, StoreError,
};

use crate::harness::{ACME, BETA, TestDb, claim, job, t};

fn open(kind: ExceptionKind, record_id: &str, message: &str) -> ExceptionOpen {
    ExceptionOpen {
        kind,
        record_type: "order".into(),
        record_id: record_id.into(),
        detail: json!({"message": message}),
        job_id: None,
    }
}

fn close(kind: ExceptionKind, record_id: &str) -> ExceptionClose {
    ExceptionClose {
        kind,
        record_type: "order".into(),
        record_id: record_id.into(),
    }
}

pub async fn a_second_open_of_the_same_exception_refreshes_it_and_after_closing_a_new_one_opens(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "line L1 has no weight",
    ));
    let opened = store.commit(change).await?.exceptions_opened;
    assert_eq!(opened.len(), 1);

    let mut change = Change::new(ACME, t(60));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "lines L1, L2 have no weight",
    ));
    assert!(
        store.commit(change).await?.exceptions_opened.is_empty(),
        "refreshed, not opened"
    );

    let all = store.list_exceptions(ExceptionFilter::default()).await?;
    assert_eq!(all.len(), 1);
    let refreshed = &all[0];
    assert_eq!(refreshed.id, opened[0]);
    assert_eq!(refreshed.occurrences, 2);
    assert_eq!((refreshed.first_seen, refreshed.last_seen), (t(0), t(60)));
    assert_eq!(
        refreshed.detail,
        json!({"message": "lines L1, L2 have no weight"})
    );
    assert_eq!(
        (refreshed.owner, refreshed.severity),
        (Owner::Ops, Severity::Error)
    );
    assert_eq!(refreshed.state, ExceptionState::Open);

    // The weight was fixed in the ERP: the condition cleared.
    let mut change = Change::new(ACME, t(120));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldMissingWeight, "1001"));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldUnpaid, "1001"));
    assert_eq!(store.commit(change).await?.exceptions_closed, 1);
    let closed = store.get_exception(opened[0]).await?.unwrap();
    assert_eq!(
        (closed.state, closed.last_seen),
        (ExceptionState::Closed, t(120))
    );

    // Broken again later: a new exception, counted from one.
    let mut change = Change::new(ACME, t(300));
    change.open_exceptions.push(open(
        ExceptionKind::HeldMissingWeight,
        "1001",
        "line L1 has no weight",
    ));
    let reopened = store.commit(change).await?.exceptions_opened;
    assert_eq!(reopened.len(), 1);
    assert_ne!(reopened[0], opened[0]);
    let fresh = store.get_exception(reopened[0]).await?.unwrap();
    assert_eq!((fresh.occurrences, fresh.first_seen), (1, t(300)));
    assert_eq!(
        store
            .list_exceptions(ExceptionFilter::default())
            .await?
            .len(),
        2
    );
    Ok(())
}

pub async fn exceptions_filter_by_owner_state_and_kind(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldUnpaid, "1001", "authorised only"));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldMissingWeight, "1001", "no weight"));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldMissingWeight, "1002", "no weight"));
    store.commit(change).await?;
    let mut change = Change::new(BETA, t(1));
    change
        .open_exceptions
        .push(open(ExceptionKind::HeldUnpaid, "1001", "unpaid"));
    store.commit(change).await?;
    let mut change = Change::new(ACME, t(2));
    change
        .close_exceptions
        .push(close(ExceptionKind::HeldMissingWeight, "1002"));
    store.commit(change).await?;

    let acme = |filter: ExceptionFilter| ExceptionFilter {
        connection: Some(ACME.into()),
        ..filter
    };
    let finance = store
        .list_exceptions(acme(ExceptionFilter {
            owner: Some(Owner::Finance),
            ..Default::default()
        }))
        .await?;
    assert_eq!(finance.len(), 1);
    assert_eq!(
        (finance[0].kind, finance[0].severity),
        (ExceptionKind::HeldUnpaid, Severity::Warning)
    );

    let open_ops = store
        .list_exceptions(acme(ExceptionFilter {
            owner: Some(Owner::Ops),
            state: Some(ExceptionState::Open),
            ..Default::default()
        }))
        .await?;
    assert_eq!(
        open_ops
            .iter()
            .map(|e| e.record_id.as_str())
            .collect::<Vec<_>>(),
        ["1001"]
    );

    let weight = store
        .list_exceptions(acme(ExceptionFilter {
            kind: Some(ExceptionKind::HeldMissingWeight),
            ..Default::default()
        }))
        .await?;
    assert_eq!(weight.len(), 2);
    let on_1001 = store
        .list_exceptions(acme(ExceptionFilter {
            record_type: Some("order".into()),
            record_id: Some("1001".into()),
            ..Default::default()
        }))
        .await?;
    assert_eq!(on_1001.len(), 2);
    let everyone_unpaid = store
        .list_exceptions(ExceptionFilter {
            kind: Some(ExceptionKind::HeldUnpaid),
            ..Default::default()
        })
        .await?;
    assert_eq!(everyone_unpaid.len(), 2);
    let one = store
        .list_exceptions(ExceptionFilter {
            limit: 1,
            ..Default::default()
        })
        .await?;
    assert_eq!(one.len(), 1);
    Ok(())
}

fn act(id: i64, action: ExceptionAction, note: Option<&str>, at: i64) -> ExceptionAct {
    ExceptionAct { id, action, actor: "ana@ops".into(), note: note.map(str::to_string), at: t(at) }
}

fn refused(result: Result<ExceptionActed, StoreError>) -> String {
    match result {
        Err(StoreError::ActionRefused { why, .. }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub async fn an_exception_is_acknowledged_assigned_and_resolved_each_step_audited_and_on_the_timeline(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(ExceptionKind::PushRejected, "1001", "bad address"));
    let id = store.commit(change).await?.exceptions_opened[0];

    let acked = store.act_on_exception(act(id, ExceptionAction::Acknowledge, None, 10)).await?;
    assert_eq!((acked.exception.state, acked.exception.acknowledged_at), (ExceptionState::Acknowledged, Some(t(10))));
    // Acknowledged is still live: raised again, the same one is refreshed.
    let mut change = Change::new(ACME, t(20));
    change.open_exceptions.push(open(ExceptionKind::PushRejected, "1001", "bad address, again"));
    assert!(store.commit(change).await?.exceptions_opened.is_empty());
    let refreshed = store.get_exception(id).await?.unwrap();
    assert_eq!((refreshed.state, refreshed.occurrences), (ExceptionState::Acknowledged, 2));

    let assigned = store
        .act_on_exception(act(id, ExceptionAction::Assign { to: Some("ben".into()) }, Some("ben knows the customer"), 30))
        .await?;
    assert_eq!(assigned.exception.assignee.as_deref(), Some("ben"));
    assert_eq!(assigned.audit.before["assignee"], json!(null));
    assert_eq!(assigned.audit.after["assignee"], "ben");
    let bens = store
        .list_exceptions(ExceptionFilter { assignee: Some("ben".into()), live: true, ..Default::default() })
        .await?;
    assert_eq!(bens.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);

    // Resolving needs a note saying how; refused without one, nothing written.
    let why = refused(store.act_on_exception(act(id, ExceptionAction::Resolve, Some("  "), 40)).await);
    assert!(why.contains("note"), "{why}");
    let resolved = store
        .act_on_exception(act(id, ExceptionAction::Resolve, Some("fixed by hand in ShipStation"), 50))
        .await?;
    assert_eq!((resolved.exception.state, resolved.exception.ended_at), (ExceptionState::Resolved, Some(t(50))));
    assert_eq!(store.get_exception(id).await?.unwrap(), resolved.exception);
    assert_eq!(resolved.exception.age(t(9_999)), jiff::SignedDuration::from_secs(50), "age stops at the end");

    // Ended: every further action is refused and says so.
    let why = refused(store.act_on_exception(act(id, ExceptionAction::Acknowledge, None, 60)).await);
    assert!(why.contains("resolved already"), "{why}");

    // The audit log: shipledger opened it, then each person's step, before and after.
    let audit = store.list_exception_audit(ExceptionAuditFilter { exception_id: Some(id), ..Default::default() }).await?;
    let steps: Vec<_> = audit.iter().map(|a| (a.action.as_str(), a.actor.as_str(), a.at)).collect();
    assert_eq!(
        steps,
        vec![
            ("opened", "shipledger", t(0)),
            ("acknowledge", "ana@ops", t(10)),
            ("assign", "ana@ops", t(30)),
            ("resolve", "ana@ops", t(50)),
        ]
    );
    assert_eq!((audit[1].before["state"].as_str(), audit[1].after["state"].as_str()), (Some("open"), Some("acknowledged")));
    assert_eq!((audit[3].before["state"].as_str(), audit[3].after["state"].as_str()), (Some("acknowledged"), Some("resolved")));
    assert_eq!(audit[3].note.as_deref(), Some("fixed by hand in ShipStation"));

    // The record's timeline names who did what.
    let timeline = store.timeline(ACME, "order", "1001").await?;
    let kinds: Vec<_> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["exception_acknowledged", "exception_assigned", "exception_resolved"]);
    assert_eq!(timeline[2].detail["actor"], "ana@ops");
    assert_eq!(timeline[2].detail["note"], "fixed by hand in ShipStation");
    assert!(timeline[1].detail["message"].as_str().unwrap().contains("assigned exception"), "{}", timeline[1].detail);

    let missing = store.act_on_exception(act(424_242, ExceptionAction::Acknowledge, None, 70)).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })), "{missing:?}");
    Ok(())
}

pub async fn an_exception_closes_by_itself_when_its_condition_clears_even_acknowledged_and_the_audit_says_so(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(ExceptionKind::HeldMissingWeight, "1001", "no weight"));
    let id = store.commit(change).await?.exceptions_opened[0];
    store.act_on_exception(act(id, ExceptionAction::Acknowledge, Some("asking the warehouse"), 5)).await?;

    let mut change = Change::new(ACME, t(90));
    change.close_exceptions.push(close(ExceptionKind::HeldMissingWeight, "1001"));
    assert_eq!(store.commit(change).await?.exceptions_closed, 1);
    let closed = store.get_exception(id).await?.unwrap();
    assert_eq!((closed.state, closed.ended_at), (ExceptionState::Closed, Some(t(90))));
    let audit = store.list_exception_audit(ExceptionAuditFilter { exception_id: Some(id), ..Default::default() }).await?;
    let last = audit.last().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("closed", "shipledger"));
    assert_eq!(last.before["state"], "acknowledged");
    assert_eq!(store.count_open_exceptions().await?, vec![]);
    Ok(())
}

pub async fn an_ignored_exception_is_not_raised_again_on_its_record_but_a_resolved_one_is(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(ExceptionKind::OrphanShipment, "1001", "no order"));
    change.open_exceptions.push(open(ExceptionKind::HeldUnpaid, "1001", "authorised only"));
    let ids = store.commit(change).await?.exceptions_opened;
    let why = refused(store.act_on_exception(act(ids[0], ExceptionAction::Ignore, None, 5)).await);
    assert!(why.contains("note"), "{why}");
    store.act_on_exception(act(ids[0], ExceptionAction::Ignore, Some("a sample shipment"), 10)).await?;
    store.act_on_exception(act(ids[1], ExceptionAction::Resolve, Some("paid by phone"), 10)).await?;

    // Both conditions are seen again.
    let mut change = Change::new(ACME, t(60));
    change.open_exceptions.push(open(ExceptionKind::OrphanShipment, "1001", "no order"));
    change.open_exceptions.push(open(ExceptionKind::HeldUnpaid, "1001", "authorised only"));
    let opened = store.commit(change).await?.exceptions_opened;
    assert_eq!(opened.len(), 1, "only the resolved one's kind opens anew");
    let again = store.get_exception(opened[0]).await?.unwrap();
    assert_eq!(again.kind, ExceptionKind::HeldUnpaid);
    let ignored = store.get_exception(ids[0]).await?.unwrap();
    assert_eq!((ignored.state, ignored.occurrences), (ExceptionState::Ignored, 1));
    // On another record the same kind still opens.
    let mut change = Change::new(ACME, t(70));
    change.open_exceptions.push(open(ExceptionKind::OrphanShipment, "1002", "no order"));
    assert_eq!(store.commit(change).await?.exceptions_opened.len(), 1);
    Ok(())
}

pub async fn retrying_an_exception_re_arms_the_given_up_job_behind_it_once(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    plan.jobs.push(job(JobKind::WriteFulfilment, "acme/fulfil/1", t(0)));
    store.commit(plan).await?;
    let claimed = store.claim_jobs(claim(JobKind::WriteFulfilment, t(1), "w1", 10)).await?;
    assert_eq!(claimed.len(), 1);
    let dead = &claimed[0];

    // The job is given up with its exception (the engine names the job on it).
    let mut give_up = Change::new(ACME, t(2));
    give_up.open_exceptions.push(ExceptionOpen { job_id: Some(dead.id), ..open(ExceptionKind::TrackingWriteBackFailed, "1001", "ERP refused") });
    give_up.finish_job = Some(JobFinish {
        job_id: dead.id,
        lease_token: dead.lease_token.clone().unwrap(),
        state: JobState::Dead,
        error: Some("ERP refused".into()),
    });
    let id = store.commit(give_up).await?.exceptions_opened[0];
    assert_eq!(store.get_exception(id).await?.unwrap().job_id, Some(dead.id));

    let retried = store.act_on_exception(act(id, ExceptionAction::Retry, Some("the ERP is fixed"), 100)).await?;
    assert_eq!(retried.exception.state, ExceptionState::Open, "it stays live until the job succeeds");
    assert_eq!(retried.audit.before["job"]["state"], "dead");
    assert_eq!(retried.audit.after["job"]["state"], "pending");
    assert_eq!(retried.audit.after["job"]["attempts"], 0);
    let job_now = store.get_job(dead.id).await?.unwrap();
    assert_eq!((job_now.state, job_now.attempts, job_now.next_run_at), (JobState::Pending, 0, t(100)));
    // Due now, so the next claim takes it.
    let again = store.claim_jobs(claim(JobKind::WriteFulfilment, t(101), "w2", 10)).await?;
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), vec![dead.id]);

    // While it runs, a second retry is refused: it is being worked on.
    let why = refused(store.act_on_exception(act(id, ExceptionAction::Retry, None, 102)).await);
    assert!(why.contains("running"), "{why}");

    // An exception with no job behind it has nothing to retry.
    let mut change = Change::new(ACME, t(110));
    change.open_exceptions.push(open(ExceptionKind::HeldUnpaid, "1002", "authorised only"));
    let unpaid = store.commit(change).await?.exceptions_opened[0];
    let why = refused(store.act_on_exception(act(unpaid, ExceptionAction::Retry, None, 111)).await);
    assert!(why.contains("no job behind it"), "{why}");
    Ok(())
}

pub async fn the_audit_trail_cannot_be_rewritten(db: &TestDb) -> anyhow::Result<()> {
    let store = &db.store;
    let mut change = Change::new(ACME, t(0));
    change.open_exceptions.push(open(ExceptionKind::PushRejected, "1001", "bad address"));
    store.commit(change).await?;
    assert!(db.execute("UPDATE exception_actions SET actor = 'someone else'").await.is_err());
    assert!(db.execute("DELETE FROM exception_actions").await.is_err());
    assert_eq!(store.list_exception_audit(ExceptionAuditFilter::default()).await?.len(), 1);
    Ok(())
}
