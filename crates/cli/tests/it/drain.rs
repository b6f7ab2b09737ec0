//! A busy `shipledger serve` stops within 5 s of SIGTERM (and `sync` of Ctrl-C's
//! SIGINT) and loses nothing: with two
//! thousand orders being read from the ERP and pushed to a ShipStation that answers
//! every order request only after 20 s, SIGTERM lands while pushes are in flight and
//! a thousand more wait. The process exits in time, leaves no job leased to itself,
//! and a `sync --once` afterwards (ShipStation answering normally) takes every order
//! to ShipStation exactly once. Runs on SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.
//!
//! The 5 s bound is the contract operators rely on (a supervisor's stop timeout),
//! so it is asserted; nothing else here is timed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Sandbox, SandboxConfig};
use shipledger_store::{JobFilter, JobKind, JobState, Store};

use crate::support::{Process, TestConfig, wait_until, write_config};

const ORDERS: usize = 2_000;
/// The exit bound after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(5);

fn shipledger(args: &[&str], config: &Path, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_shipledger"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env("DRAIN_SS_KEY", "drain-key")
        .env("DRAIN_SS_SECRET", "drain-secret")
        .env("DRAIN_ERP_KEY", "drain-erp-key")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
    c
}

/// Jobs of `kind` in `state` on the connection.
async fn jobs(store: &dyn Store, kind: JobKind, state: JobState) -> Vec<shipledger_store::Job> {
    store
        .list_jobs(JobFilter { connection: Some("drain".into()), kind: Some(kind), state: Some(state), limit: 0 })
        .await
        .unwrap()
}

/// How the running engine is started and told to stop.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `shipledger serve`, SIGTERM (a supervisor stopping it).
    ServeSigterm,
    /// `shipledger sync`, SIGINT (Ctrl-C at a terminal).
    SyncCtrlC,
}

async fn a_busy_serve_stops_within_five_seconds_of_sigterm_and_loses_no_work(store_url: String) {
    a_busy_engine_stops_within_five_seconds_and_loses_no_work(store_url, Stop::ServeSigterm).await;
}

async fn a_busy_engine_stops_within_five_seconds_and_loses_no_work(store_url: String, stop: Stop) {
    let dir = tempfile::tempdir().unwrap();
    let ss = Sandbox::start(
        SandboxConfig { api_key: "drain-key".into(), api_secret: "drain-secret".into(), rate_limit: 1_000, seed: 5, ..SandboxConfig::default() },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let erp = SandboxErp::start(SandboxErpConfig { api_key: "drain-erp-key".into(), seed: 5, ..SandboxErpConfig::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let plan = Traffic::plan(TrafficConfig { orders: ORDERS, seed: 5, shares: TrafficShares::none(), ..TrafficConfig::default() });
    plan.apply(&erp.base_url()).await.unwrap();
    // Every order request (createorders and its read-backs) is answered after 20 s.
    let http = reqwest::Client::new();
    let slow = json!({"rate_slow": 1.0, "slow_ms": 20_000, "paths": ["/orders"]});
    let r = http.put(format!("{}/_sandbox/faults", ss.base_url())).json(&slow).send().await.unwrap();
    assert!(r.status().is_success());

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(
        dir.path(),
        &TestConfig {
            store_url: &store_url,
            listen: Some(&format!("127.0.0.1:{port}")),
            connection: "drain",
            env: "DRAIN",
            erp: &erp.base_url(),
            ss: &ss.base_url(),
            v2: false,
            webhooks: false,
            policy: "poll_interval = \"1s\"",
        },
    );
    let log = dir.path().join("engine.log");
    let (command, signal) = match stop {
        Stop::ServeSigterm => ("serve", libc::SIGTERM),
        Stop::SyncCtrlC => ("sync", libc::SIGINT),
    };
    let mut running = Process(shipledger(&[command], &config, &log).spawn().expect("the shipledger binary runs"));

    // Up (its store migrated), then busy: a thousand pushes waiting and one in flight.
    wait_until("the engine to be up", Duration::from_secs(60), &log, async || match stop {
        Stop::ServeSigterm => http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status().is_success()),
        Stop::SyncCtrlC => std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sync running")),
    })
    .await;
    let store = shipledger_store::open(&store_url).await.unwrap();
    wait_until("a thousand pushes queued with one in flight", Duration::from_secs(180), &log, async || {
        jobs(store.as_ref(), JobKind::SyncOrder, JobState::Pending).await.len() >= 1_000
            && !jobs(store.as_ref(), JobKind::SyncOrder, JobState::Running).await.is_empty()
    })
    .await;

    let pid = libc::pid_t::try_from(running.0.id()).unwrap();
    let sent = Instant::now();
    // SAFETY: `kill` only sends a signal to the child this test started (and still owns).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "{stop:?}: signal sent");
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > STOP_WITHIN * 4 {
            break running.0.try_wait().unwrap().unwrap_or_else(|| panic!("{command} still running {:?} after {stop:?}", sent.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = sent.elapsed();
    eprintln!("{command} exited {took:?} after {stop:?}");
    let tail = || std::fs::read_to_string(&log).unwrap_or_default().lines().rev().take(30).collect::<Vec<_>>().join("\n");
    assert!(took <= STOP_WITHIN, "{command} took {took:?} to exit after {stop:?}; log:\n{}", tail());
    assert!(status.success(), "{command} exited with {status}; log:\n{}", tail());

    // Nothing is left leased to the stopped process: every job it held is back to run.
    let leased: Vec<String> = store
        .list_jobs(JobFilter { connection: Some("drain".into()), state: Some(JobState::Running), limit: 0, ..Default::default() })
        .await
        .unwrap()
        .iter()
        .map(|j| format!("job {} ({}) leased until {:?}", j.id, j.kind(), j.lease_until))
        .collect();
    assert!(leased.is_empty(), "jobs still leased after the drain: {leased:?}");

    // Nothing was lost: with ShipStation answering normally, one `sync --once` takes
    // every order there exactly once (a push cut short is sent again, idempotently).
    let r = http.put(format!("{}/_sandbox/faults", ss.base_url())).json(&json!({})).send().await.unwrap();
    assert!(r.status().is_success());
    let out = shipledger(&["sync", "--once"], &config, &log).output().unwrap();
    assert!(out.status.success(), "sync --once failed; log:\n{}", tail());
    let stats = ss.stats();
    assert_eq!(stats["orders"].as_u64(), Some(ORDERS as u64), "every order reached ShipStation: {stats}");
    assert_eq!(stats["duplicate_order_keys"], json!(0), "none twice: {stats}");
    assert!(stats["faults"]["slow"].as_u64().unwrap_or(0) > 0, "the slow answers were injected: {stats}");
    for state in [JobState::Pending, JobState::Running, JobState::Dead] {
        let left = jobs(store.as_ref(), JobKind::SyncOrder, state).await;
        assert!(left.is_empty(), "{} push job(s) {state} after the rerun, e.g. {:?}", left.len(), left.first().map(|j| &j.last_error));
    }
    assert_eq!(jobs(store.as_ref(), JobKind::SyncOrder, JobState::Done).await.len(), ORDERS);
    drop(running);
    ss.shutdown().await;
    erp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_serve_stops_within_five_seconds_of_sigterm_and_loses_no_work_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drain.db").display());
    a_busy_serve_stops_within_five_seconds_of_sigterm_and_loses_no_work(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_serve_stops_within_five_seconds_of_sigterm_and_loses_no_work_on_postgres() {
    crate::crash::on_postgres(a_busy_serve_stops_within_five_seconds_of_sigterm_and_loses_no_work).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sync_stops_within_five_seconds_of_ctrl_c_and_loses_no_work_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drain.db").display());
    a_busy_engine_stops_within_five_seconds_and_loses_no_work(url, Stop::SyncCtrlC).await;
}
