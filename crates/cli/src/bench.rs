//! `shipledger bench SCENARIO`: the measuring instrument of issue 11. Each scenario
//! starts, in this process and on 127.0.0.1, the sandbox ShipStation (v1 40 requests a
//! minute, v2 200), the sandbox ERP, a SQLite store in a temporary directory, the
//! engine (through its public API: `Engine::new`, `prepare`, `run` with a 60 s poll
//! interval) and shipledger's HTTP server, plays one workload and prints ratios
//! measured in the same run. Requests are counted by the sandbox's own statistics and
//! outcomes are read from the sandbox's and the ERP's own state, never from the
//! engine, and never through their APIs (so the instrument adds nothing to what it
//! counts).
//!
//! Time is real: nothing is compressed, so the scenarios take minutes (`push` about
//! one to two, `ingest` twice the label window plus the drains, `scans` the scan
//! window plus the drain, `intake` seconds). The figures, their targets and the JSON
//! field names are in the README (section "Measuring: shipledger bench").

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, SystemClock};
use shipledger_core::release::GatePolicy;
use shipledger_engine::config::Policy;
use shipledger_engine::{Connection, Engine};
use shipledger_sandbox::erp::model::FulfilmentStatus;
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig, SandboxErpHandle};
use shipledger_sandbox::traffic::{Traffic, TrafficConfig, TrafficShares};
use shipledger_sandbox::{Faults, Sandbox, SandboxConfig, SandboxHandle, SimulationConfig};
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::{OrderState, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::output::Format;

mod reconcile;

const CONNECTION: &str = "bench";
/// ShipStation's real limits, fixed so runs compare.
const V1_PER_MINUTE: u32 = 40;
const V2_PER_MINUTE: u32 = 200;
/// The engine's poll interval (ERP and shipments), fixed so runs compare.
const POLL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Orders backlogged in the ERP, pushed to ShipStation.
    Push,
    /// Labels made by the warehouse, ingested with webhooks and again without.
    Ingest,
    /// Carrier scans (most labels never scanned, some webhooks lost) to ERP completed.
    Scans,
    /// Webhook intake through the real receiver against a no-op handler.
    Intake,
    /// The reconciler: its diff over a million staged orders against a PostgreSQL
    /// `FULL OUTER JOIN`, and its ShipStation requests per order (full, incremental).
    Reconcile,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Push => "push",
            Scenario::Ingest => "ingest",
            Scenario::Scans => "scans",
            Scenario::Intake => "intake",
            Scenario::Reconcile => "reconcile",
        }
    }
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Seed of the orders, the warehouse and the faults.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Exit 1 when any figure misses its target.
    #[arg(long)]
    check: bool,
    /// Orders (push) or labels (ingest, scans). The figure is 2,000; smaller
    /// counts are for trying the instrument.
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Seconds over which the warehouse makes the labels (ingest) or the carrier
    /// scans them (scans).
    #[arg(long, default_value_t = 300)]
    window: u64,
    /// Seconds after the workload to wait for the engine to finish before the
    /// figures are taken as they stand (what is left is reported).
    #[arg(long, default_value_t = 600)]
    drain_timeout: u64,
    /// intake: webhook deliveries sent to each handler.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// intake: deliveries in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// reconcile: orders staged on each side for the diff (the figure).
    #[arg(long, default_value_t = 1_000_000)]
    staged: usize,
    /// reconcile: the PostgreSQL server the staged diff runs on (a database of its
    /// own is made there and dropped after). Default: `TEST_DATABASE_URL`, else
    /// postgres://postgres@127.0.0.1:5432/postgres.
    #[arg(long)]
    database_url: Option<String>,
}

/// One figure compared with its target.
struct Target {
    name: String,
    goal: String,
    value: Value,
    pass: bool,
}

/// What a scenario measured.
struct Outcome {
    parameters: Value,
    figures: Value,
    targets: Vec<Target>,
    notes: Vec<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let outcome = match args.scenario {
        Scenario::Push => push(&args).await?,
        Scenario::Ingest => ingest(&args).await?,
        Scenario::Scans => scans(&args).await?,
        Scenario::Intake => intake(&args).await?,
        Scenario::Reconcile => reconcile::run(&args).await?,
    };
    let seconds = started.elapsed().as_secs_f64();
    let pass = outcome.targets.iter().all(|t| t.pass);
    let report = json!({
        "scenario": args.scenario.name(),
        "seed": args.seed,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "parameters": outcome.parameters,
        "seconds": round(seconds, 1),
        "figures": outcome.figures,
        "targets": outcome.targets.iter().map(|t| json!({
            "name": t.name, "target": t.goal, "value": t.value, "result": if t.pass { "PASS" } else { "MISS" },
        })).collect::<Vec<_>>(),
        "pass": pass,
        "notes": outcome.notes,
    });
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&report)?),
        Format::Table => print_table(&report),
    }
    if args.check && !pass {
        let missed: Vec<&str> = outcome.targets.iter().filter(|t| !t.pass).map(|t| t.name.as_str()).collect();
        bail!("bench {}: {} missed its target", args.scenario.name(), missed.join(", "));
    }
    Ok(())
}

fn print_table(report: &Value) {
    println!(
        "shipledger bench {} (seed {}, {} build, {} s)",
        report["scenario"].as_str().unwrap_or(""),
        report["seed"],
        plain(&report["build"]),
        report["seconds"]
    );
    let mut rows = Vec::new();
    flatten("", &report["parameters"], &mut rows);
    println!();
    print!("{}", crate::output::table(&["parameter", "value"], &rows));
    let mut rows = Vec::new();
    flatten("", &report["figures"], &mut rows);
    println!();
    print!("{}", crate::output::table(&["figure", "value"], &rows));
    let rows: Vec<Vec<String>> = report["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| vec![plain(&t["name"]), plain(&t["value"]), plain(&t["target"]), plain(&t["result"])])
        .collect();
    println!();
    print!("{}", crate::output::table(&["target", "value", "goal", "result"], &rows));
    for note in report["notes"].as_array().into_iter().flatten() {
        println!("note: {}", plain(note));
    }
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&name, v, rows);
            }
        }
        other => rows.push(vec![prefix.to_string(), plain(other)]),
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

/// `x` cut down (never up) to `places` decimals: a figure judged against a floor is
/// shown no better than it was measured, so the shown figure and the verdict agree
/// (0.2497 is shown 0.249 and misses 0.25, not 0.25 and a MISS).
fn floor_to(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).floor() / p
}

/// A ratio, `None` when there is nothing to divide by.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Nearest-rank percentile of `samples` (seconds), where `missing` more samples are
/// known only to be larger than every measured one (work not done by the end): the
/// answer is `None` when the rank falls among those.
pub(crate) fn percentile(samples: &[f64], missing: usize, p: f64) -> Option<f64> {
    let n = samples.len() + missing;
    if n == 0 {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * n as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// Look at a condition every `every` until `look` says it holds (`(true, value)`) or
/// `deadline` has passed since `started`, printing the line `progress` makes of the
/// latest look every 10 s. The last look's value, and whether the condition held.
async fn wait_until<T>(
    started: Instant,
    every: Duration,
    deadline: Duration,
    mut look: impl AsyncFnMut() -> anyhow::Result<(bool, T)>,
    progress: impl Fn(&T) -> String,
) -> anyhow::Result<(T, bool)> {
    let mut said = Instant::now();
    loop {
        let (done, value) = look().await?;
        if done || started.elapsed() > deadline {
            return Ok((value, done));
        }
        if said.elapsed() >= Duration::from_secs(10) {
            eprintln!("bench: [{:>4}s] {}", started.elapsed().as_secs(), progress(&value));
            said = Instant::now();
        }
        tokio::time::sleep(every).await;
    }
}

// ---------------------------------------------------------------------------------
// The rig: both sandboxes, the store, the engine and the server of one run.

/// Which webhooks ShipStation sends shipledger in a run.
#[derive(Clone, Copy)]
struct Hooks {
    ship_notify: bool,
    track: bool,
}

struct Rig {
    _dir: tempfile::TempDir,
    shipstation: SandboxHandle,
    erp: SandboxErpHandle,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    orders: usize,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Something per tracking number.
type ByNumber<T> = BTreeMap<String, T>;
/// An ERP fulfilment's (packed at, completed at).
type Packed = (Option<Timestamp>, Option<Timestamp>);

/// The sandbox's request counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    v1: u64,
    v2: u64,
    rate_limited: u64,
    webhooks_delivered: u64,
    webhooks_dropped: u64,
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            v1: self.v1 - before.v1,
            v2: self.v2 - before.v2,
            rate_limited: self.rate_limited - before.rate_limited,
            webhooks_delivered: self.webhooks_delivered - before.webhooks_delivered,
            webhooks_dropped: self.webhooks_dropped - before.webhooks_dropped,
        }
    }

    fn total(self) -> u64 {
        self.v1 + self.v2
    }

    fn json(self) -> Value {
        json!({"total": self.total(), "v1": self.v1, "v2": self.v2, "rate_limited": self.rate_limited})
    }
}

impl Rig {
    /// Everything up, `orders` good orders waiting in the ERP, the engine not yet running.
    async fn start(seed: u64, orders: usize, hooks: Hooks) -> anyhow::Result<Rig> {
        Rig::start_at(seed, orders, hooks, (V1_PER_MINUTE, V2_PER_MINUTE), |_| {}).await
    }

    /// [`Rig::start`] with ShipStation's limits per minute (v1, v2) raised or lowered,
    /// and the connection's policy tuned by `tune`.
    async fn start_at(
        seed: u64,
        orders: usize,
        hooks: Hooks,
        (v1_per_minute, v2_per_minute): (u32, u32),
        tune: impl FnOnce(&mut Policy),
    ) -> anyhow::Result<Rig> {
        let dir = tempfile::tempdir().context("making a temporary directory")?;
        let ss_config = SandboxConfig { seed, rate_limit: v1_per_minute, v2_rate_limit: v2_per_minute, ..SandboxConfig::default() };
        let (ss_key, ss_secret, ss_v2_key) = (ss_config.api_key.clone(), ss_config.api_secret.clone(), ss_config.v2_api_key.clone());
        let shipstation = Sandbox::start(ss_config, "127.0.0.1:0".parse()?).await?;
        let erp_config = SandboxErpConfig { seed, ..SandboxErpConfig::default() };
        let erp_key = erp_config.api_key.clone();
        let erp = SandboxErp::start(erp_config, "127.0.0.1:0".parse()?).await?;

        // The backlog: releasable orders only (paid, weighed, known SKUs, whole addresses).
        let plan = Traffic::plan(TrafficConfig {
            orders,
            seed,
            spread: SignedDuration::from_secs(1),
            shares: TrafficShares::none(),
        });
        plan.apply(&erp.base_url()).await.context("placing the backlog in the sandbox ERP")?;

        let store_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store: Arc<dyn Store> = shipledger_store::open(&store_url).await.context("opening the bench store")?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let budget = Arc::new(shipledger_engine::budget::StoreRateBudget::new(store.clone(), clock.clone(), 0));
        let base: url::Url = shipstation.base_url().parse()?;
        let connection = Connection {
            name: CONNECTION.into(),
            erp: Arc::new(shipledger_erp::sandbox::SandboxErpClient::new(&erp.base_url(), &erp_key)?),
            shipstation: V1Client::with_budget(ClientConfig::v1(base.clone(), ss_key.clone(), ss_secret.clone()), budget, clock.clone())?,
            shipstation_v2: Some(shipledger_shipstation::V2Client::with_budget(
                ClientConfig::v2(base.clone(), ss_v2_key.clone()),
                Arc::new(shipledger_shipstation::InMemoryRateBudget::with_clock(clock.clone())),
                clock.clone(),
            )?),
            account_currency: shipledger_core::Currency::USD,
            // The reconciler runs only where a scenario asks for it (`reconcile`): its
            // reads would count in the other scenarios' requests.
            policy: Policy { poll_interval: POLL, shipment_poll_interval: POLL, reconcile_interval: None, ..Policy::default() },
            gate: GatePolicy::default(),
            store_id: None,
            store_ids: Vec::new(),
            accounts: None,
        };
        let mut connection = connection;
        tune(&mut connection.policy);
        let engine = Arc::new(Engine::new(store.clone(), clock.clone(), vec![connection]));
        engine.prepare().await?;

        let token = crate::token::webhook_token();
        let keys = shipledger_server::load_webhook_keys(&format!("{}/jwks", shipstation.base_url()).parse()?)
            .await
            .map_err(|e| anyhow::anyhow!("loading the sandbox's v2 webhook keys: {e}"))?;
        let server_hooks = shipledger_server::ConnectionHooks {
            name: CONNECTION.into(),
            token: Some(token.clone()),
            shipstation_base: base,
            v2_keys: Some(keys),
        };
        let server = shipledger_server::Server::bind("127.0.0.1:0".parse()?, store.clone(), clock, vec![server_hooks]).await?.wake_on_intake(engine.waker());
        let server_addr = server.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let server_task = tokio::spawn(async move {
            if let Err(e) = server.run(stop_rx).await {
                tracing::warn!(error = %e, "the bench's shipledger server stopped");
            }
        });
        subscribe(&shipstation, server_addr, &token, hooks, (&ss_key, &ss_secret), &ss_v2_key).await?;
        Ok(Rig { _dir: dir, shipstation, erp, store, engine, orders, stop, tasks: vec![server_task] })
    }

    /// Stop the engine and shipledger's server (ShipStation and the ERP stay up).
    async fn halt(&mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            // An engine waiting on a spent budget is not waited for past a few seconds.
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                abort.abort();
            }
        }
    }

    fn run_engine(&mut self) {
        let engine = self.engine.clone();
        let stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move { engine.run(stop).await }));
    }

    /// The sandbox's request counters per endpoint (`GET /v2/labels`, ...).
    fn endpoints(&self) -> BTreeMap<String, u64> {
        let s = self.shipstation.stats();
        s["requests"].as_object().into_iter().flatten().map(|(path, n)| (path.clone(), n.as_u64().unwrap_or(0))).collect()
    }

    /// The first-scan (`AC`) track webhooks the sandbox dropped, read from its
    /// delivery log through the control API (not counted as a request): the floor of
    /// the track calls a run needs, since nothing else tells of those scans. `None`
    /// when the log (the latest 2,000 deliveries) no longer holds every first scan.
    async fn first_scan_webhooks_dropped(&self, scanned: usize) -> anyhow::Result<Option<u64>> {
        let log: Value = reqwest::get(format!("{}/_sandbox/webhooks/deliveries", self.shipstation.base_url())).await?.json().await?;
        let scans: Vec<&str> = log["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["event"] == "track" && d["body"]["data"]["status_code"] == "AC")
            .map(|d| d["state"].as_str().unwrap_or(""))
            .collect();
        let dropped = scans.iter().filter(|s| **s == "dropped").count() as u64;
        Ok((scans.len() >= scanned).then_some(dropped))
    }

    fn counts(&self) -> Counts {
        let s = self.shipstation.stats();
        let mut c = Counts {
            rate_limited: s["rate_limited"].as_u64().unwrap_or(0),
            webhooks_delivered: s["webhooks"]["delivered"].as_u64().unwrap_or(0),
            webhooks_dropped: s["webhooks"]["dropped"].as_u64().unwrap_or(0),
            ..Counts::default()
        };
        for (path, n) in s["requests"].as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            if path.split_whitespace().nth(1).is_some_and(|p| p.starts_with("/v2/")) {
                c.v2 += n;
            } else {
                c.v1 += n;
            }
        }
        c
    }

    /// Wait until every backlogged order is in ShipStation and the engine has
    /// nothing left to do for them; `Err` past `timeout`.
    async fn drain_pushes(&self, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let look = async || -> anyhow::Result<(bool, (u64, usize))> {
            let by_state = self.store.count_orders_by_state(CONNECTION).await?;
            let pushed: u64 = by_state
                .iter()
                .filter(|(s, _)| matches!(s, OrderState::Pushed | OrderState::Shipped))
                .map(|(_, n)| n)
                .sum();
            let in_shipstation = self.shipstation.read_world(|w| w.orders.values().filter(|o| o.visible()).count());
            let done = pushed as usize == self.orders && in_shipstation >= self.orders && !self.engine.has_pending_work().await?;
            Ok((done, (pushed, in_shipstation)))
        };
        let progress = |(pushed, in_shipstation): &(u64, usize)| {
            let c = self.counts();
            format!(
                "pushing: {pushed} of {} orders pushed, {in_shipstation} in ShipStation, {} requests, {} × 429",
                self.orders,
                c.total(),
                c.rate_limited
            )
        };
        let ((pushed, _), done) = wait_until(started, Duration::from_millis(250), timeout, look, progress).await?;
        if !done {
            bail!("the backlog was not drained after {} s: {pushed} of {} orders pushed", timeout.as_secs(), self.orders);
        }
        Ok(started.elapsed())
    }

    /// Every backlogged order in ShipStation exactly once, and nothing else there.
    async fn check_exactly_once(&self) -> anyhow::Result<()> {
        let records = self
            .store
            .list_orders(shipledger_store::OrderFilter { connection: Some(CONNECTION.into()), ..Default::default() })
            .await?;
        let (per_key, total) = self.shipstation.read_world(|w| {
            let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
            for o in w.orders.values().filter(|o| o.visible()) {
                *per_key.entry(o.order_key.clone()).or_default() += 1;
            }
            (per_key, w.orders.values().filter(|o| o.visible()).count())
        });
        let wrong: Vec<&str> = records
            .iter()
            .filter(|r| per_key.get(&r.order_key).copied().unwrap_or(0) != 1)
            .map(|r| r.erp_id.as_str())
            .collect();
        if records.len() != self.orders || total != self.orders || !wrong.is_empty() {
            bail!(
                "not every order is in ShipStation exactly once: {} ERP orders recorded, {total} orders in ShipStation for {} backlogged, {} not exactly once (first: {:?})",
                records.len(),
                self.orders,
                wrong.len(),
                wrong.iter().take(5).collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    /// ShipStation's live labels: tracking number → when the label was made.
    fn labels(&self) -> ByNumber<Timestamp> {
        self.shipstation.read_world(|w| {
            w.shipments.values().filter(|s| !s.voided).map(|s| (s.tracking_number.clone(), s.create_date)).collect()
        })
    }

    /// The carrier's first physical scan (AC) per tracking number.
    fn first_scans(&self) -> ByNumber<Timestamp> {
        self.shipstation.read_world(|w| {
            w.tracking
                .values()
                .filter_map(|t| {
                    let first = t.events.iter().filter(|e| e.status_code == "AC").map(|e| e.occurred_at).min()?;
                    Some((t.tracking_number.clone(), first))
                })
                .collect()
        })
    }

    /// The ERP's fulfilments per tracking number: (packed at, completed at).
    fn erp_packages(&self) -> ByNumber<Packed> {
        let world = self.erp.snapshot();
        let mut out = BTreeMap::new();
        for f in world.fulfilments.values().filter(|f| f.state != FulfilmentStatus::Cancelled) {
            let packed = f.packed_at.or(f.completed_at).or(Some(f.created_at));
            let completed = if f.state == FulfilmentStatus::Completed { f.completed_at.or(Some(f.updated_at)) } else { None };
            for p in &f.packages {
                out.insert(p.tracking_number.clone(), (packed, completed));
            }
        }
        out
    }

    async fn stop(mut self) {
        self.halt().await;
        self.shipstation.shutdown().await;
        self.erp.shutdown().await;
    }
}

async fn subscribe(
    shipstation: &SandboxHandle,
    server: SocketAddr,
    token: &str,
    hooks: Hooks,
    (key, secret): (&str, &str),
    v2_key: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let ss = shipstation.base_url();
    if hooks.ship_notify {
        http.post(format!("{ss}/webhooks/subscribe"))
            .basic_auth(key, Some(secret))
            .json(&json!({"target_url": format!("http://{server}/webhooks/shipstation/{CONNECTION}/{token}"), "event": "SHIP_NOTIFY", "friendly_name": "shipledger bench"}))
            .send()
            .await?
            .error_for_status()?;
    }
    if hooks.track {
        http.post(format!("{ss}/v2/environment/webhooks"))
            .header("API-Key", v2_key)
            .json(&json!({"url": format!("http://{server}/webhooks/shipstation-v2/{CONNECTION}"), "event": "track", "name": "shipledger bench"}))
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

fn fixed_parameters(args: &BenchArgs) -> serde_json::Map<String, Value> {
    let mut p = serde_json::Map::new();
    p.insert("v1_requests_per_minute".into(), json!(V1_PER_MINUTE));
    p.insert("v2_requests_per_minute".into(), json!(V2_PER_MINUTE));
    p.insert("poll_interval_seconds".into(), json!(POLL.as_secs()));
    p.insert("orders".into(), json!(args.orders));
    p
}

// ---------------------------------------------------------------------------------
// push

async fn push(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let mut rig = Rig::start(args.seed, args.orders, Hooks { ship_notify: false, track: false }).await?;
    let before = rig.counts();
    eprintln!("bench: push: {} orders backlogged in the ERP; starting the engine", args.orders);
    rig.run_engine();
    let drained = rig.drain_pushes(Duration::from_secs(args.drain_timeout)).await;
    let used = rig.counts().since(before);
    let checked = match &drained {
        Ok(_) => rig.check_exactly_once().await,
        Err(_) => Ok(()),
    };
    rig.stop().await;
    let drained = drained?;
    checked?;
    let per_request = ratio(args.orders as u64, used.total());
    let mut parameters = fixed_parameters(args);
    parameters.insert("drain_timeout_seconds".into(), json!(args.drain_timeout));
    Ok(Outcome {
        parameters: Value::Object(parameters),
        figures: json!({
            "orders_in_shipstation_exactly_once": args.orders,
            "requests": used.json(),
            "orders_per_request": per_request.map(|r| round(r, 2)),
            "rate_limited": used.rate_limited,
            "drain_seconds": round(drained.as_secs_f64(), 1),
        }),
        targets: vec![
            Target {
                name: "orders_per_request".into(),
                goal: ">= 80".into(),
                value: json!(per_request.map(|r| round(r, 2))),
                pass: per_request.is_some_and(|r| r >= 80.0),
            },
            Target { name: "rate_limited".into(), goal: "0".into(), value: json!(used.rate_limited), pass: used.rate_limited == 0 },
        ],
        notes: vec!["requests include the engine's verification reads (every ShipStation request the sandbox counted)".into()],
    })
}

// ---------------------------------------------------------------------------------
// ingest

async fn ingest(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let with = ingest_once(args, true).await?;
    let without = ingest_once(args, false).await?;
    let per_label = with["requests_per_label"].as_f64();
    // A run cut short makes few requests: the ratio counts only once every label is in.
    let all_packed = with["labels_not_packed"] == json!(0);
    let mut parameters = fixed_parameters(args);
    parameters.insert("label_window_seconds".into(), json!(args.window));
    parameters.insert("drain_timeout_seconds".into(), json!(args.drain_timeout));
    Ok(Outcome {
        parameters: Value::Object(parameters),
        targets: vec![Target {
            name: "with_webhooks.requests_per_label".into(),
            goal: "<= 0.05, every label packed".into(),
            value: json!(per_label),
            pass: all_packed && per_label.is_some_and(|r| r <= 0.05),
        }],
        figures: json!({"with_webhooks": with, "without_webhooks": without}),
        notes: vec![
            "labels made by the sandbox warehouse switched on over the pushed backlog, each at a uniform random time in the window; one label per order (no splits, no voids)".into(),
            "latency: from the label's creation in ShipStation to the ERP fulfilment's packed time; null when that percentile was not reached by the end".into(),
        ],
    })
}

async fn ingest_once(args: &BenchArgs, webhooks: bool) -> anyhow::Result<Value> {
    let what = if webhooks { "with webhooks" } else { "without webhooks" };
    let mut rig = Rig::start(args.seed, args.orders, Hooks { ship_notify: webhooks, track: false }).await?;
    eprintln!("bench: ingest {what}: pushing the {} orders first", args.orders);
    rig.run_engine();
    rig.drain_pushes(Duration::from_secs(args.drain_timeout)).await?;
    let before = rig.counts();
    let started = Instant::now();
    rig.shipstation
        .set_simulation(SimulationConfig {
            enabled: true,
            label_delay_secs: [0, args.window],
            split_share: 0.0,
            void_share: 0.0,
            scan_share: 0.0,
            ..SimulationConfig::default()
        })
        .map_err(anyhow::Error::msg)?;
    eprintln!("bench: ingest {what}: the warehouse makes {} labels over {} s", args.orders, args.window);
    let deadline = Duration::from_secs(args.window + args.drain_timeout);
    let look = async || {
        let labels = rig.labels();
        let packages = rig.erp_packages();
        let packed = labels.keys().filter(|n| packages.get(*n).is_some_and(|(p, _)| p.is_some())).count();
        Ok((labels.len() >= args.orders && packed == labels.len(), (labels, packages, packed)))
    };
    let progress = |(labels, _, packed): &(ByNumber<Timestamp>, ByNumber<Packed>, usize)| {
        let c = rig.counts().since(before);
        format!("ingest {what}: {} labels, {packed} packed in the ERP, {} requests, {} × 429", labels.len(), c.total(), c.rate_limited)
    };
    let ((labels, packages, _), _) = wait_until(started, Duration::from_secs(1), deadline, look, progress).await?;
    let seconds = started.elapsed().as_secs_f64();
    let used = rig.counts().since(before);
    rig.stop().await;

    let latencies: Vec<f64> = labels
        .iter()
        .filter_map(|(n, made)| packages.get(n).and_then(|(p, _)| *p).map(|p| seconds_between(*made, p)))
        .collect();
    let unpacked = labels.len() - latencies.len();
    Ok(json!({
        "labels": labels.len(),
        "labels_packed": latencies.len(),
        "labels_not_packed": unpacked,
        "requests": used.json(),
        "requests_per_label": ratio(used.total(), labels.len() as u64).map(|r| round(r, 3)),
        "webhooks_delivered": used.webhooks_delivered,
        "label_to_packed_seconds": {
            "p50": percentile(&latencies, unpacked, 50.0).map(|s| round(s, 1)),
            "p99": percentile(&latencies, unpacked, 99.0).map(|s| round(s, 1)),
        },
        "seconds": round(seconds, 1),
    }))
}

// ---------------------------------------------------------------------------------
// scans

/// The simulated carrier scans a label this long after it is made at the earliest,
/// so that labels are in the ERP (packed) before their scans come.
const FIRST_SCAN_AFTER: u64 = 120;
/// Labels are made within this many seconds of the warehouse starting.
const LABEL_SPREAD: u64 = 30;
const SCAN_SHARE: f64 = 0.3;
const TRACK_WEBHOOK_DROP: f64 = 0.3;

async fn scans(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let mut rig = Rig::start(args.seed, args.orders, Hooks { ship_notify: false, track: true }).await?;
    rig.shipstation
        .set_faults(Faults { webhook_drop: TRACK_WEBHOOK_DROP, webhook_events: vec!["track".into()], ..Faults::default() })
        .map_err(anyhow::Error::msg)?;
    eprintln!("bench: scans: pushing the {} orders first", args.orders);
    rig.run_engine();
    rig.drain_pushes(Duration::from_secs(args.drain_timeout)).await?;
    let before = rig.counts();
    let endpoints_before = rig.endpoints();
    let started = Instant::now();
    rig.shipstation
        .set_simulation(SimulationConfig {
            enabled: true,
            label_delay_secs: [0, LABEL_SPREAD],
            split_share: 0.0,
            void_share: 0.0,
            scan_share: SCAN_SHARE,
            scan_delay_secs: [FIRST_SCAN_AFTER, FIRST_SCAN_AFTER + args.window],
            // Nothing after the first scan within the run: in transit comes 3 h later.
            deliver_delay_secs: [7 * 24 * 3600, 7 * 24 * 3600],
            ..SimulationConfig::default()
        })
        .map_err(anyhow::Error::msg)?;
    eprintln!(
        "bench: scans: {} labels within {LABEL_SPREAD} s, {:.0} % scanned {FIRST_SCAN_AFTER}–{} s after their label, {:.0} % of track webhooks dropped",
        args.orders,
        SCAN_SHARE * 100.0,
        FIRST_SCAN_AFTER + args.window,
        TRACK_WEBHOOK_DROP * 100.0
    );
    let scans_over = Duration::from_secs(LABEL_SPREAD + FIRST_SCAN_AFTER + args.window + 1);
    let deadline = scans_over + Duration::from_secs(args.drain_timeout);
    let look = async || {
        let labels = rig.labels();
        let scans = rig.first_scans();
        let packages = rig.erp_packages();
        let completed = scans.keys().filter(|n| packages.get(*n).is_some_and(|(_, c)| c.is_some())).count();
        let all_scans_made = started.elapsed() > scans_over && labels.len() >= args.orders;
        Ok((all_scans_made && completed == scans.len(), (labels, scans, packages, completed)))
    };
    let progress = |(labels, scans, packages, completed): &(ByNumber<Timestamp>, ByNumber<Timestamp>, ByNumber<Packed>, usize)| {
        let c = rig.counts().since(before);
        let packed = labels.keys().filter(|n| packages.contains_key(*n)).count();
        format!(
            "scans: {} labels ({packed} packed), {} scanned, {completed} of them completed, {} requests, {} × 429",
            labels.len(),
            scans.len(),
            c.total(),
            c.rate_limited
        )
    };
    let ((labels, scans, packages, _), _) = wait_until(started, Duration::from_secs(1), deadline, look, progress).await?;
    let seconds = started.elapsed().as_secs_f64();
    let used = rig.counts().since(before);
    let by_endpoint: BTreeMap<String, u64> = rig
        .endpoints()
        .into_iter()
        .map(|(path, n)| (n - endpoints_before.get(&path).copied().unwrap_or(0), path))
        .filter(|(n, _)| *n > 0)
        .map(|(n, path)| (path, n))
        .collect();
    let scan_webhooks_dropped = rig.first_scan_webhooks_dropped(scans.len()).await?;
    rig.stop().await;

    let latencies: Vec<f64> = scans
        .iter()
        .filter_map(|(n, scanned)| packages.get(n).and_then(|(_, c)| *c).map(|c| seconds_between(*scanned, c)))
        .collect();
    let not_completed = scans.len() - latencies.len();
    let completed_unscanned = labels
        .keys()
        .filter(|n| !scans.contains_key(*n) && packages.get(*n).is_some_and(|(_, c)| c.is_some()))
        .count();
    let poll = POLL.as_secs_f64();
    let p50 = percentile(&latencies, not_completed, 50.0);
    let p99 = percentile(&latencies, not_completed, 99.0);
    let per_label = ratio(used.total(), labels.len() as u64);
    let mut parameters = fixed_parameters(args);
    parameters.insert("scan_share".into(), json!(SCAN_SHARE));
    parameters.insert("track_webhooks_dropped_share".into(), json!(TRACK_WEBHOOK_DROP));
    parameters.insert("scan_window_seconds".into(), json!(args.window));
    parameters.insert("drain_timeout_seconds".into(), json!(args.drain_timeout));
    Ok(Outcome {
        parameters: Value::Object(parameters),
        figures: json!({
            "labels": labels.len(),
            "scanned": scans.len(),
            "scanned_completed": latencies.len(),
            "scanned_not_completed": not_completed,
            "completed_without_a_scan": completed_unscanned,
            "track_webhooks_delivered": used.webhooks_delivered,
            "track_webhooks_dropped": used.webhooks_dropped,
            "scan_to_completed_seconds": {"p50": p50.map(|s| round(s, 1)), "p99": p99.map(|s| round(s, 1))},
            "scan_to_completed_poll_intervals": {"p50": p50.map(|s| round(s / poll, 2)), "p99": p99.map(|s| round(s / poll, 2))},
            "first_scan_webhooks_dropped": scan_webhooks_dropped,
            "requests": used.json(),
            "requests_by_endpoint": by_endpoint,
            "requests_per_label": per_label.map(|r| round(r, 3)),
            "seconds": round(seconds, 1),
        }),
        targets: vec![
            Target {
                name: "every_scanned_label_completed".into(),
                goal: "true".into(),
                value: json!(not_completed == 0 && !scans.is_empty()),
                pass: not_completed == 0 && !scans.is_empty(),
            },
            Target {
                name: "scan_to_completed_poll_intervals.p99".into(),
                goal: "<= 2".into(),
                value: json!(p99.map(|s| round(s / poll, 2))),
                pass: p99.is_some_and(|s| s <= 2.0 * poll),
            },
            Target {
                name: "requests_per_label".into(),
                goal: "<= 0.1, every scanned label completed".into(),
                value: json!(per_label.map(|r| round(r, 3))),
                pass: not_completed == 0 && per_label.is_some_and(|r| r <= 0.1),
            },
            Target {
                name: "completed_without_a_scan".into(),
                goal: "0".into(),
                value: json!(completed_unscanned),
                pass: completed_unscanned == 0,
            },
        ],
        notes: vec![
            "labels reach the ERP by the shipment poll (no SHIP_NOTIFY subscription): the figure is about scans".into(),
            "latency: from the carrier's first scan (AC) to the ERP fulfilment's completed time; null when that percentile was not reached by the end".into(),
            "requests: every ShipStation request from the first label to the end, per label".into(),
            "first_scan_webhooks_dropped: scans no webhook told of; each costs at least one track call (GET /v2/tracking), the floor of what a run can spend".into(),
        ],
    })
}

// ---------------------------------------------------------------------------------
// intake

/// What one load run measured.
struct Load {
    ok: usize,
    failed: usize,
    seconds: f64,
    latencies_ms: Vec<f64>,
}

impl Load {
    fn per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }

    fn json(&self) -> Value {
        json!({
            "acknowledged": self.ok,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "requests_per_second": round(self.per_second(), 1),
            "latency_ms": {
                "p50": percentile(&self.latencies_ms, 0, 50.0).map(|x| round(x, 2)),
                "p99": percentile(&self.latencies_ms, 0, 99.0).map(|x| round(x, 2)),
            },
        })
    }
}

/// Send `count` distinct v1 webhook deliveries to `url`, `concurrency` at a time.
async fn drive(http: &reqwest::Client, url: &str, resource_base: &str, tag: &str, count: usize, concurrency: usize) -> Load {
    use futures::StreamExt;
    let started = Instant::now();
    let results: Vec<Option<f64>> = futures::stream::iter(0..count)
        .map(|i| {
            let body = json!({
                "resource_url": format!("{resource_base}/shipments?storeID=1&batchId={i}&includeShipmentItems=False&run={tag}"),
                "resource_type": "SHIP_NOTIFY",
            })
            .to_string();
            async move {
                let sent = Instant::now();
                let answer = http.post(url).header("content-type", "application/json").body(body).send().await;
                match answer {
                    Ok(r) if r.status().is_success() => Some(sent.elapsed().as_secs_f64() * 1000.0),
                    _ => None,
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let latencies_ms: Vec<f64> = results.iter().flatten().copied().collect();
    Load { ok: latencies_ms.len(), failed: results.len() - latencies_ms.len(), seconds, latencies_ms }
}

/// The SQLite store's durability, as SQLite reports it on the store's writer.
struct Durability {
    journal_mode: String,
    synchronous: String,
}

async fn durability(store: &shipledger_store::sqlite::SqliteStore) -> anyhow::Result<Durability> {
    let (journal_mode, synchronous) = store.durability().await.context("reading the bench store's journal mode and synchronous setting")?;
    Ok(Durability { journal_mode, synchronous })
}

fn power_loss_statement(d: &Durability) -> (bool, String) {
    match (d.journal_mode.as_str(), d.synchronous.as_str()) {
        ("WAL", "NORMAL") => (
            false,
            "journal_mode=WAL, synchronous=NORMAL: a commit is written to the WAL before it returns, so it survives the process's death, but the WAL is fsynced only at checkpoints: a power cut or OS crash can lose the last transactions acknowledged since the last checkpoint (the database stays consistent)".into(),
        ),
        ("WAL", "FULL") | ("WAL", "EXTRA") => (
            true,
            format!("journal_mode=WAL, synchronous={}: every commit fsyncs the WAL before it returns and a delivery is answered 2xx only after its batch committed, so an acknowledged webhook also survives a power cut or OS crash (as far as the disk honours fsync)", d.synchronous),
        ),
        ("MEMORY", _) => (false, "an in-memory database: nothing survives the process".into()),
        (mode, "FULL") | (mode, "EXTRA") => (true, format!("journal_mode={mode}, synchronous={}: every commit is fsynced before it returns, so an acknowledged webhook also survives a power cut", d.synchronous)),
        (mode, sync) => (false, format!("journal_mode={mode}, synchronous={sync}: commits are not fsynced before they return; a power cut can lose acknowledged webhooks")),
    }
}

/// Rounds of the intake bench: the no-op handler and shipledger's receiver take
/// turns, so a machine that slows down or speeds up during the run weighs on both.
const INTAKE_ROUNDS: usize = 4;

/// Several [`Load`]s as one: every delivery and every second of them.
fn combined(loads: &[Load]) -> Load {
    Load {
        ok: loads.iter().map(|l| l.ok).sum(),
        failed: loads.iter().map(|l| l.failed).sum(),
        seconds: loads.iter().map(|l| l.seconds).sum(),
        latencies_ms: loads.iter().flat_map(|l| l.latencies_ms.iter().copied()).collect(),
    }
}

async fn intake(args: &BenchArgs) -> anyhow::Result<Outcome> {
    use std::hash::{BuildHasher, Hasher};
    let dir = tempfile::tempdir().context("making a temporary directory")?;
    let db = dir.path().join("intake.db");
    let sqlite = Arc::new(
        shipledger_store::sqlite::SqliteStore::open(&format!("sqlite://{}", db.display())).await.context("opening the bench store")?,
    );
    let store: Arc<dyn Store> = sqlite.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    store.ensure_connection(CONNECTION, clock.now()).await?;
    // The configured ShipStation: never called (the receiver only stores).
    let resource_base = "http://127.0.0.1:9";
    let token = crate::token::webhook_token();
    let hooks = shipledger_server::ConnectionHooks {
        name: CONNECTION.into(),
        token: Some(token.clone()),
        shipstation_base: resource_base.parse()?,
        v2_keys: None,
    };
    // As `serve` wires it, with a waker nobody waits on (there is no engine here).
    let woken = Arc::new(tokio::sync::Notify::new());
    let server = shipledger_server::Server::bind("127.0.0.1:0".parse()?, store.clone(), clock, vec![hooks]).await?.wake_on_intake(woken);
    let real_addr = server.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let real = tokio::spawn(server.run(stop_rx.clone()));

    // The no-op handler: the same route, reads the body, answers 200.
    let noop_app = axum::Router::new().route(
        "/webhooks/shipstation/{connection}/{token}",
        axum::routing::post(|_body: axum::body::Bytes| async { axum::http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let noop_addr = listener.local_addr()?;
    let mut noop_stop = stop_rx.clone();
    let noop = tokio::spawn(async move {
        axum::serve(listener, noop_app)
            .with_graceful_shutdown(async move {
                let _ = noop_stop.wait_for(|s| *s).await;
            })
            .await
    });

    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let path = format!("/webhooks/shipstation/{CONNECTION}/{token}");
    let tag = format!("{:x}", std::collections::hash_map::RandomState::new().build_hasher().finish());
    let warmup = args.requests.min(200) / 4;
    let rounds = INTAKE_ROUNDS.min(args.requests.max(1));
    eprintln!(
        "bench: intake: {} deliveries, {} at a time, to a no-op handler and to shipledger's receiver, taking turns in {rounds} rounds",
        args.requests, args.concurrency
    );
    let noop_url = format!("http://{noop_addr}{path}");
    let real_url = format!("http://{real_addr}{path}");
    drive(&http, &noop_url, resource_base, &format!("{tag}w0"), warmup, args.concurrency).await;
    drive(&http, &real_url, resource_base, &format!("{tag}w1"), warmup, args.concurrency).await;
    let (mut noop_loads, mut real_loads) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // The requests spread over the rounds, the first ones taking the remainder.
        let count = args.requests / rounds + usize::from(round < args.requests % rounds);
        noop_loads.push(drive(&http, &noop_url, resource_base, &format!("{tag}n{round}"), count, args.concurrency).await);
        real_loads.push(drive(&http, &real_url, resource_base, &format!("{tag}r{round}"), count, args.concurrency).await);
    }
    let noop_load = combined(&noop_loads);
    let real_load = combined(&real_loads);
    let round_shares: Vec<f64> = noop_loads
        .iter()
        .zip(&real_loads)
        .map(|(n, r)| if n.per_second() > 0.0 { round(r.per_second() / n.per_second(), 3) } else { 0.0 })
        .collect();
    let _ = stop.send(true);
    let _ = real.await;
    let _ = noop.await;

    // Every acknowledged delivery is a job in the store.
    let stored: u64 = store
        .count_jobs(CONNECTION)
        .await?
        .iter()
        .filter(|(kind, _, _)| kind == "ingest_v1_webhook")
        .map(|(_, _, n)| n)
        .sum();
    let acknowledged = (real_load.ok + warmup) as u64;
    let d = durability(&sqlite).await?;
    let (survives_power_loss, power) = power_loss_statement(&d);
    let share = if noop_load.per_second() > 0.0 { real_load.per_second() / noop_load.per_second() } else { 0.0 };
    if real_load.failed > 0 || noop_load.failed > 0 {
        bail!("intake: {} deliveries to shipledger's receiver and {} to the no-op handler were not acknowledged", real_load.failed, noop_load.failed);
    }
    if stored != acknowledged {
        bail!("intake: {acknowledged} deliveries were acknowledged but {stored} are in the store");
    }
    let mut parameters = serde_json::Map::new();
    parameters.insert("requests".into(), json!(args.requests));
    parameters.insert("concurrency".into(), json!(args.concurrency));
    parameters.insert("warmup".into(), json!(warmup));
    parameters.insert("rounds".into(), json!(rounds));
    parameters.insert("store".into(), json!("sqlite file"));
    parameters.insert("max_batch".into(), json!(shipledger_server::intake::MAX_BATCH));
    parameters.insert("queue".into(), json!(shipledger_server::intake::QUEUE));
    Ok(Outcome {
        parameters: Value::Object(parameters),
        figures: json!({
            "noop": noop_load.json(),
            "shipledger": real_load.json(),
            "share_of_noop_rate": floor_to(share, 3),
            "share_of_noop_rate_by_round": round_shares,
            "stored_jobs": stored,
            "crash_safety": {
                "survives_sigkill": true,
                "survives_power_loss": survives_power_loss,
                "journal_mode": d.journal_mode,
                "synchronous": d.synchronous,
                "group_commit": true,
            },
        }),
        targets: vec![Target {
            name: "share_of_noop_rate".into(),
            goal: ">= 0.25".into(),
            value: json!(floor_to(share, 3)),
            pass: share >= 0.25,
        }],
        notes: vec![
            format!("acknowledged webhooks survive SIGKILL: each is answered 2xx only after the transaction holding it committed (this run: {acknowledged} acknowledged, {stored} stored; the crash tests in crates/cli/tests/it/crash.rs kill a server mid-stream)"),
            format!("power loss: {power}"),
            format!(
                "group commit: deliveries arriving together are stored in one transaction (at most {} per transaction, at most {} waiting; a full queue answers 503 with Retry-After), one fsync per batch instead of one per delivery; a failed batch answers every delivery in it 503 and stores none",
                shipledger_server::intake::MAX_BATCH,
                shipledger_server::intake::QUEUE
            ),
            format!("the two handlers take turns in {rounds} rounds of the same route and body; the share is the receiver's total rate over the no-op handler's"),
            "journal_mode and synchronous read from the store's writer connection (PRAGMA journal_mode, PRAGMA synchronous)".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn a_percentile_is_the_nearest_rank_and_unknown_when_it_falls_on_work_not_done() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 0, 50.0), Some(50.0));
        assert_eq!(percentile(&samples, 0, 99.0), Some(99.0));
        assert_eq!(percentile(&samples[..98], 2, 99.0), None, "two of 100 never done: p99 is past the run");
        assert_eq!(percentile(&samples[..99], 1, 99.0), Some(99.0));
        assert_eq!(percentile(&[], 0, 50.0), None);
    }
}
