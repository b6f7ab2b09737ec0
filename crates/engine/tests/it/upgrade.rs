//! An upgrade: a store made by the previous release (its schema, and its rows exactly
//! as its code wrote them; `crates/store/tests/fixtures/`, captured by
//! `capture_previous_release.rs.txt` at that release) opens with this one on SQLite
//! and PostgreSQL, every job it holds reads as a typed job, and the work it left
//! pending still runs: the order it had released reaches ShipStation, the label it
//! had seen is packed in the ERP.

use std::path::PathBuf;

use shipledger_erp::FulfilmentState;
use shipledger_sandbox::SandboxConfig;
use shipledger_store::{JobFilter, JobKind, JobSpec, JobState, OrderState, Phase};

use crate::helpers::{Backend, TestDb, World};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures").join(name)
}

/// A database holding the previous release's store, before this release opens it.
fn previous_release(backend: Backend) -> Option<TestDb> {
    let db = TestDb::new(backend)?;
    match backend {
        Backend::Sqlite => {
            let path = db.url.strip_prefix("sqlite://").expect("a sqlite URL");
            std::fs::copy(fixture("previous-release.sqlite.db"), path).expect("the SQLite fixture is copied");
        }
        Backend::Postgres => {
            let out = std::process::Command::new("psql")
                .arg(&db.url)
                .args(["-v", "ON_ERROR_STOP=1", "-q", "-f"])
                .arg(fixture("previous-release.pg.sql"))
                .output()
                .expect("psql runs");
            assert!(out.status.success(), "loading the PostgreSQL fixture: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Some(db)
}

async fn the_previous_release_s_pending_jobs_still_run(backend: Backend) {
    let Some(db) = previous_release(backend) else { return };
    let w = World::with(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, db).await;

    // Every job the previous release stored reads as a typed job of a known kind.
    let jobs = w.store.list_jobs(JobFilter::default()).await.expect("every stored job decodes");
    let pending: Vec<(JobKind, JobState)> = jobs.iter().map(|j| (j.kind(), j.state)).collect();
    assert_eq!(
        pending,
        [(JobKind::SyncOrder, JobState::Done), (JobKind::WriteFulfilment, JobState::Pending), (JobKind::SyncOrder, JobState::Pending)]
    );
    let JobSpec::WriteFulfilment(write) = &jobs[1].spec else { panic!("{:?}", jobs[1].spec) };
    assert_eq!(write.phase, Phase::Packed);
    let JobSpec::SyncOrder(sync) = &jobs[2].spec else { panic!("{:?}", jobs[2].spec) };
    assert_eq!(sync.erp_id, "SO-OLD-1");
    assert_eq!(w.store.timeline("acme-uk", "order", "SO-OLD-2").await.unwrap().len(), 2, "the old timeline reads too");

    w.settle().await;

    let jobs = w.store.list_jobs(JobFilter::default()).await.unwrap();
    assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
    let released = w.store.get_order("acme-uk", "SO-OLD-1").await.unwrap().unwrap();
    assert_eq!(released.state, OrderState::Pushed, "the order released before the upgrade is in ShipStation");
    assert_eq!(w.ss_orders("SO-OLD-1").await.len(), 1);
    let docs = w.erp_fulfilments("SO-OLD-2");
    assert_eq!(docs.len(), 1, "the label seen before the upgrade is written to the ERP once");
    assert_eq!(docs[0].state, FulfilmentState::Packed);
    let shipment = w.store.get_shipment("acme-uk", &write.shipment_key).await.unwrap().unwrap();
    assert_eq!(docs[0].packages[0].tracking_number, shipment.tracking_number.clone().unwrap());
    let story: Vec<String> = w.store.timeline("acme-uk", "shipment", &write.shipment_key).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(story, ["label_seen", "erp_packed"]);
}

#[tokio::test]
async fn a_sqlite_store_of_the_previous_release_migrates_and_its_pending_jobs_still_run() {
    the_previous_release_s_pending_jobs_still_run(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_postgres_store_of_the_previous_release_migrates_and_its_pending_jobs_still_run() {
    the_previous_release_s_pending_jobs_still_run(Backend::Postgres).await;
}

/// Run SQL on a story's database behind the store's back, as another program would.
fn sql(w: &World, statement: &str) {
    let url = w.store_url();
    let out = match url.strip_prefix("sqlite://") {
        Some(path) => std::process::Command::new("sqlite3").arg(path).arg(statement).output(),
        None => std::process::Command::new("psql").arg(&url).args(["-v", "ON_ERROR_STOP=1", "-q", "-c", statement]).output(),
    }
    .expect("the database client runs");
    assert!(out.status.success(), "{statement}: {}", String::from_utf8_lossy(&out.stderr));
}

crate::stories! {
    async fn jobs_of_a_kind_this_version_does_not_know_are_raised_to_the_admin_by_name_and_never_run(w: World) {
        use shipledger_core::exception::{ExceptionKind, Owner};
        use shipledger_store::{ExceptionFilter, ExceptionState, StoreError};

        // A newer release sharing the store planned carrier-invoice imports this one cannot run.
        for key in ["invoice:2026-05", "invoice:2026-06"] {
            sql(&w, &format!(
                "INSERT INTO jobs (connection, kind, idempotency_key, payload, state, attempts, next_run_at, created_at, updated_at) \
                 VALUES ('acme-uk', 'import_invoice', '{key}', '{{}}', 'pending', 0, 0, 0, 0)"
            ));
        }
        w.erp.put(crate::helpers::paid_order("SO-900"));
        w.settle().await;

        assert_eq!(w.ss_orders("SO-900").await.len(), 1, "known work still runs");
        let open = w
            .store
            .list_exceptions(ExceptionFilter { kind: Some(ExceptionKind::JobKindUnknown), state: Some(ExceptionState::Open), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(open.len(), 1, "one exception per unknown kind: {open:?}");
        let e = &open[0];
        assert_eq!((e.owner, e.record_type.as_str(), e.record_id.as_str()), (Owner::Admin, "job_kind", "import_invoice"));
        assert_eq!(e.detail["count"], 2);
        let ids: Vec<i64> = e.detail["job_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(ids.len(), 2);
        let message = e.detail["message"].as_str().unwrap();
        assert!(message.contains("\"import_invoice\"") && message.contains(&ids[0].to_string()) && message.contains("sync_order"), "{message}");

        // Reading one names it; counting shows it; nothing waits for it.
        let read = w.store.get_job(ids[0]).await;
        assert!(matches!(&read, Err(StoreError::UnknownJobKind { job_id, kind }) if *job_id == ids[0] && kind == "import_invoice"), "{read:?}");
        assert!(read.unwrap_err().to_string().contains(&format!("job {} has kind \"import_invoice\"", ids[0])));
        let counts = w.store.count_jobs("acme-uk").await.unwrap();
        assert!(counts.contains(&("import_invoice".to_string(), JobState::Pending, 2)), "{counts:?}");
        assert!(!w.engine.has_pending_work().await.unwrap(), "jobs that never run here are not waited for");

        // Once they are dealt with (the newer release ran them), the exception closes.
        sql(&w, "UPDATE jobs SET state = 'done' WHERE kind = 'import_invoice'");
        w.engine.tick().await.unwrap();
        let open = w
            .store
            .list_exceptions(ExceptionFilter { kind: Some(ExceptionKind::JobKindUnknown), state: Some(ExceptionState::Open), ..Default::default() })
            .await
            .unwrap();
        assert!(open.is_empty(), "{open:?}");
    }

    async fn a_push_whose_payload_cannot_be_read_is_set_aside_for_the_admin_and_the_other_pushes_still_run(w: World) {
        use shipledger_core::exception::{ExceptionKind, Owner};
        use shipledger_store::{ExceptionFilter, ExceptionState};

        // Someone planned a push by hand, with the order id as a number and no hash.
        sql(&w, "INSERT INTO jobs (connection, kind, idempotency_key, payload, state, attempts, next_run_at, created_at, updated_at) \
                 VALUES ('acme-uk', 'sync_order', 'by-hand:901', '{\"erp_id\": 901}', 'pending', 0, 0, 0, 0)");
        w.erp.put(crate::helpers::paid_order("SO-900"));
        w.settle().await;

        assert_eq!(w.ss_orders("SO-900").await.len(), 1, "the readable push still runs");
        let pushed = w.store.get_order("acme-uk", "SO-900").await.unwrap().unwrap();
        assert_eq!(pushed.state, OrderState::Pushed);
        let unreadable = w.store.unreadable_jobs("acme-uk").await.unwrap();
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert_eq!((unreadable[0].kind.as_str(), unreadable[0].count), ("sync_order", 1));
        let id = unreadable[0].ids[0];
        let counts = w.store.count_jobs("acme-uk").await.unwrap();
        assert!(counts.contains(&("sync_order".to_string(), JobState::Dead, 1)), "the hand-made job is dead, not waiting: {counts:?}");
        assert!(!w.engine.has_pending_work().await.unwrap());

        let open = w
            .store
            .list_exceptions(ExceptionFilter { kind: Some(ExceptionKind::JobPayloadUnreadable), state: Some(ExceptionState::Open), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        let e = &open[0];
        assert_eq!((e.owner, e.record_type.as_str(), e.record_id.as_str()), (Owner::Admin, "job_kind", "sync_order"));
        assert_eq!(e.detail["job_ids"], serde_json::json!([id]));
        let message = e.detail["message"].as_str().unwrap();
        assert!(message.contains(&id.to_string()) && message.contains("set the job back to pending"), "{message}");

        // The admin deletes it: the exception closes.
        sql(&w, "DELETE FROM jobs WHERE idempotency_key = 'by-hand:901'");
        w.engine.tick().await.unwrap();
        let open = w
            .store
            .list_exceptions(ExceptionFilter { kind: Some(ExceptionKind::JobPayloadUnreadable), state: Some(ExceptionState::Open), ..Default::default() })
            .await
            .unwrap();
        assert!(open.is_empty(), "{open:?}");
    }
}
