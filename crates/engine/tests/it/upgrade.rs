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
