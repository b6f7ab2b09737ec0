//! `shipledger check-config` (with `--connect`, every system reached read only), `sync`
//! and `serve`: the engine over a configuration file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shipledger_engine::Engine;
use shipledger_core::clock::SystemClock;
use shipledger_engine::config::Config;
use shipledger_engine::metrics::MeteredStore;
use shipledger_erp::CheckStatus;
use shipledger_store::Store;
use tokio::sync::watch;

/// How often `serve` and `demo` count orders and jobs again for their gauges.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(2);

/// A configuration problem: exit code 2.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::Error::new(BadConfig(e.to_string())))
}

/// The configuration for commands that only read the store (no secrets needed).
pub fn load_config_for_reading(path: &Path) -> anyhow::Result<Config> {
    Config::load_for_reading(path).map_err(|e| anyhow::Error::new(BadConfig(e.to_string())))
}

pub async fn check_config(path: &Path, connect: bool) -> anyhow::Result<()> {
    let config = load_config(path)?;
    println!("{}: ok", path.display());
    println!("  store: {}", redact_url(&config.store_url));
    if let Some(listen) = config.listen {
        println!("  server: {listen}");
    }
    if let Some(public) = &config.public_url {
        println!("  public url: {public}");
    }
    for c in &config.connections {
        println!("  connection {}:", c.name);
        println!("    erp: {} at {} (key from ${})", c.erp.kind, c.erp.url, c.erp.api_key.env);
        println!(
            "    shipstation: {} (key from ${}, secret from ${})",
            c.shipstation.base_url, c.shipstation.api_key.env, c.shipstation.api_secret.env
        );
        println!(
            "    policy: fulfil_on {:?}, scan overdue after {:?}, currencies {}, poll every {:?}",
            c.policy.fulfil_on,
            c.policy.scan_overdue_after,
            if c.policy.currencies.is_empty() {
                "any".to_string()
            } else {
                c.policy.currencies.iter().map(|c| c.code()).collect::<Vec<_>>().join(",")
            },
            c.policy.poll_interval
        );
    }
    if connect {
        check_connections(&config).await?;
    }
    Ok(())
}

/// `check-config --connect`: one table row per item checked, then an error (exit 1)
/// naming every failed item, if any.
async fn check_connections(config: &Config) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut warnings = 0;
    for c in &config.connections {
        let report = shipledger_engine::check::check_connection(c, config.public_url.as_ref()).await;
        for (system, item) in report.items() {
            let status = match item.status {
                CheckStatus::Ok => "ok",
                CheckStatus::Warning => {
                    warnings += 1;
                    "warning"
                }
                CheckStatus::Failed => {
                    failed.push(format!("{} {system} {}: {}", c.name, item.what, item.detail));
                    "FAILED"
                }
            };
            rows.push(vec![c.name.clone(), system.to_string(), item.what.clone(), status.to_string(), item.detail.clone()]);
        }
    }
    println!();
    print!("{}", crate::output::table(&["connection", "system", "check", "status", "detail"], &rows));
    println!();
    if failed.is_empty() {
        println!("check-config --connect: every system is reachable with valid credentials and has what it needs ({warnings} warning(s))");
        return Ok(());
    }
    anyhow::bail!("check-config --connect: {} check(s) failed:\n  {}", failed.len(), failed.join("\n  "))
}

/// A store URL without its password.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    shipledger_store::open(&config.store_url)
        .await
        .with_context(|| format!("opening the store {}", redact_url(&config.store_url)))
}

pub(crate) async fn engine(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Arc<Engine>> {
    let engine = Engine::from_config(config, store, Arc::new(SystemClock))?;
    engine.prepare().await?;
    Ok(Arc::new(engine))
}

pub async fn sync(path: &Path, once: bool) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let engine = engine(&config, open_store(&config).await?).await?;
    if once {
        // One pass now, whenever another process last ran each recurring pass (their
        // due times live in the store): bring every pass forward to now (one another
        // worker is running keeps its lease), then drain the outbox of everything
        // runnable now.
        // The reconciler is not part of a sync (`shipledger reconcile` runs it).
        use shipledger_engine::schedule::Scheduled;
        let passes: Vec<Scheduled> = Scheduled::ALL.iter().copied().filter(|p| *p != Scheduled::Reconcile).collect();
        for c in &engine.connections {
            engine.hasten_now(c, &passes).await?;
        }
        let mut total = shipledger_engine::TickReport::default();
        loop {
            let report = engine.tick().await?;
            total.poll.seen += report.poll.seen;
            total.poll.released += report.poll.released;
            total.poll.held += report.poll.held;
            total.push.pushed += report.push.pushed;
            total.push.requests += report.push.requests;
            total.push.failed += report.push.failed;
            if !report.busy() {
                break;
            }
        }
        println!(
            "sync: {} order change(s) read, {} released, {} held, {} pushed in {} createorders request(s), {} failed",
            total.poll.seen, total.poll.released, total.poll.held, total.push.pushed, total.push.requests, total.push.failed
        );
        if engine.has_pending_work().await? {
            println!("sync: some work waits for a retry later; run sync again or keep `shipledger sync` running");
        }
        for c in &engine.connections {
            for u in engine.store.unknown_jobs(&c.name).await? {
                let ids: Vec<String> = u.ids.iter().map(i64::to_string).collect();
                println!(
                    "sync: {}: {} job(s) of kind {:?} are not run by this version (ids {}); `shipledger exceptions list` shows its job_kind_unknown exception",
                    c.name,
                    u.count,
                    u.kind,
                    ids.join(", ")
                );
            }
            for u in engine.store.unreadable_jobs(&c.name).await? {
                let ids: Vec<String> = u.ids.iter().map(i64::to_string).collect();
                println!(
                    "sync: {}: {} job(s) of kind {:?} were finished dead because their payload cannot be read (ids {}); `shipledger exceptions list` shows its job_payload_unreadable exception",
                    c.name,
                    u.count,
                    u.kind,
                    ids.join(", ")
                );
            }
        }
        return Ok(());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        eprintln!("stopping: finishing the steps in flight");
        let _ = stop_tx.send(true);
    });
    tracing::info!(connections = config.connections.len(), "sync running; Ctrl-C or SIGTERM stops it");
    engine.run(stop_rx).await;
    Ok(())
}

pub async fn serve(path: &Path) -> anyhow::Result<()> {
    let config = load_config(path)?;
    let listen = config.listen.unwrap_or_else(|| "127.0.0.1:8080".parse().expect("a valid address"));
    // The metrics recorder before any client or store is built, so nothing they
    // record is lost; the store metered so that its gauges move as it commits.
    shipledger_engine::metrics::recorder();
    let store = MeteredStore::wrap(open_store(&config).await?).await.context("counting the store's jobs and exceptions for the metrics")?;
    let engine = engine(&config, store.clone()).await?;
    let hooks = shipledger_server::hooks_from_config(&config).await.map_err(anyhow::Error::msg)?;
    // A stored webhook wakes the engine's idle lanes at once.
    let server = shipledger_server::Server::bind(listen, engine.store.clone(), engine.clock.clone(), hooks)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?
        .wake_on_intake(engine.waker())
        .api(
            config
                .connections
                .iter()
                .map(|c| shipledger_server::api::ApiConnection { name: c.name.clone(), policy: c.policy.clone() })
                .collect(),
        );
    println!("shipledger serving on http://{} (/healthz, /readyz, /metrics, /api/v1)", server.local_addr()?);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        eprintln!("stopping: finishing the steps in flight");
        let _ = stop_tx.send(true);
    });
    let names = config.connections.iter().map(|c| c.name.clone()).collect();
    tokio::spawn(store.run_refresh(names, GAUGE_REFRESH, stop_rx.clone()));
    // The engine drains on the signal (steps in flight finish or are cancelled within
    // its grace, their leases given back) while the server stops taking requests.
    let worker = tokio::spawn(engine.clone().run(stop_rx.clone()));
    server.run(stop_rx).await?;
    let _ = worker.await;
    Ok(())
}
