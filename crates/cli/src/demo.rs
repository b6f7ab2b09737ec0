//! `shipledger demo`: the whole product on one machine with nothing installed. It
//! starts the sandbox ShipStation (its simulated warehouse on) and the sandbox ERP on
//! their own ports, a SQLite store in a directory, the engine and shipledger's HTTP
//! server, and feeds the ERP a deterministic stream of realistic orders — bad ones
//! included — over a short stretch of real time. The engine runs its lanes as `serve`
//! does. With `--until-idle` it stops once every generated order is pushed, cancelled
//! or held, the warehouse and carrier are still and nothing is left to do, and
//! `--report` writes what happened as JSON, counted by asking each system.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_core::release::GatePolicy;
use shipledger_core::clock::{Clock, SystemClock};
use shipledger_engine::config::Policy;
use shipledger_engine::{Connection, Engine};
use shipledger_sandbox::erp::{SandboxErp, SandboxErpConfig};
use shipledger_engine::schedule::Scheduled;
use shipledger_sandbox::traffic::{Expected, Traffic, TrafficConfig};
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle, SimulationConfig};
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_engine::metrics::MeteredStore;
use shipledger_store::{ExceptionFilter, OrderFilter, OrderState, Store};
use tokio::sync::watch;

const CONNECTION: &str = "demo";
/// The simulated carrier scans a label this many seconds after it is made, or never.
const SCAN_DELAY: [u64; 2] = [3, 10];

#[derive(Args)]
pub struct DemoArgs {
    /// Where shipledger's own HTTP server listens (health, metrics).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Orders the traffic generator makes.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Seed of the traffic, the warehouse and the faults: the same seed, the same run.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Exit once every generated order is pushed, cancelled or held and no work is left.
    #[arg(long)]
    until_idle: bool,
    /// Write the run's report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Keep the store (demo.db) in this directory instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds of real time over which the orders and their later changes arrive
    /// (default: one second per 50 orders, 5–60 s).
    #[arg(long)]
    spread: Option<u64>,
    /// Give up (exit 1) if not idle after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// With --until-idle: keep shipledger's server (health, metrics) up this many
    /// seconds after the report, so the run's final metrics can be scraped.
    #[arg(long, default_value_t = 0)]
    linger: u64,
    /// Write the logs here (default: `shipledger.log` in `--dir`, or a
    /// `shipledger-demo-<pid>.log` in the system's temporary directory, which
    /// outlives the demo's temporary store).
    #[arg(long)]
    log: Option<PathBuf>,
}

impl DemoArgs {
    /// Where this run's logs go.
    pub fn log_path(&self) -> PathBuf {
        match (&self.log, &self.dir) {
            (Some(path), _) => path.clone(),
            (None, Some(dir)) => dir.join("shipledger.log"),
            (None, None) => std::env::temp_dir().join(format!("shipledger-demo-{}.log", std::process::id())),
        }
    }
}

/// A non-blocking writer appending to `path` (its directory made if missing), and the
/// guard that flushes it when dropped. `tracing-appender` does the buffering on its own
/// thread, so a burst of log lines never slows the demo nor lands on its display.
pub fn log_writer(path: &std::path::Path) -> std::io::Result<(tracing_appender::non_blocking::NonBlocking, tracing_appender::non_blocking::WorkerGuard)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(tracing_appender::non_blocking(file))
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    eprintln!("shipledger demo: logs go to {}", args.log_path().display());
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir().context("making a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let spread = args.spread.unwrap_or_else(|| (args.orders as u64 / 50).clamp(5, 60));

    // The metrics recorder first, so that nothing the clients record is lost.
    shipledger_engine::metrics::recorder();

    // The two systems shipledger keeps in agreement. The warehouse and carrier tell
    // every story of the demo (splits into a next parcel, voids made again, scans and
    // deliveries), each a few seconds apart, so 500 orders settle in about a
    // minute. Labels wait a little longer than the spread, so the shop's changes
    // (captures, cancellations, corrections) reach ShipStation before the warehouse
    // acts on them.
    let simulation = SimulationConfig {
        enabled: true,
        label_delay_secs: [spread + 3, spread + 12],
        void_delay_secs: [2, 6],
        next_parcel_delay_secs: [2, 6],
        scan_delay_secs: SCAN_DELAY,
        deliver_delay_secs: [5, 20],
        // Two currencies of postage: the FedEx account bills in euros, the others in
        // the ShipStation account's dollars; the ERP keeps its books in pounds.
        carrier_currencies: BTreeMap::from([("fedex".to_string(), "EUR".to_string())]),
        ..SimulationConfig::default()
    };
    // ShipStation's own limit (40 requests a minute); the budget is respected.
    let ss_config = SandboxConfig {
        seed: args.seed,
        simulation: Some(simulation),
        rate_limit: 40,
        ..SandboxConfig::default()
    };
    let (ss_key, ss_secret) = (ss_config.api_key.clone(), ss_config.api_secret.clone());
    let ss_v2_key = ss_config.v2_api_key.clone();
    let shipstation = Sandbox::start(ss_config, "127.0.0.1:0".parse()?).await?;
    let erp_config = SandboxErpConfig { seed: args.seed, ..SandboxErpConfig::default() };
    let erp_key = erp_config.api_key.clone();
    let erp = SandboxErp::start(erp_config, "127.0.0.1:0".parse()?).await?;

    // shipledger itself.
    let store_url = format!("sqlite://{}", dir.join("demo.db").display());
    let metered = MeteredStore::wrap(shipledger_store::open(&store_url).await.context("opening the demo store")?).await?;
    let store: Arc<dyn Store> = metered.clone();
    // The one clock of this process: the engine, the rate budget, both ShipStation
    // clients and the webhook receivers read it.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let budget = Arc::new(shipledger_engine::budget::StoreRateBudget::new(store.clone(), clock.clone(), 0));
    let client_config = ClientConfig::v1(shipstation.base_url().parse()?, ss_key, ss_secret);
    let client = V1Client::with_budget(client_config, budget, clock.clone())?;
    let connection = Connection {
        name: CONNECTION.into(),
        erp: Arc::new(shipledger_erp::sandbox::SandboxErpClient::new(&erp.base_url(), &erp_key)?),
        shipstation: client,
        shipstation_v2: Some(shipledger_shipstation::V2Client::with_budget(
            ClientConfig::v2(shipstation.base_url().parse()?, ss_v2_key.clone()),
            Arc::new(shipledger_shipstation::InMemoryRateBudget::with_clock(clock.clone())),
            clock.clone(),
        )?),
        account_currency: shipledger_core::Currency::USD,
        // The ERP is read every second (it is local and orders arrive by the second),
        // ShipStation every 10 s (webhooks bring labels and scans sooner).
        policy: Policy {
            poll_interval: Duration::from_secs(1),
            shipment_poll_interval: Duration::from_secs(10),
            ..Policy::default()
        },
        gate: GatePolicy::default(),
        store_id: None,
        store_ids: Vec::new(),
        accounts: Some(shipledger_sandbox::erp::model::chart_accounts()),
    };
    let engine = Engine::new(store.clone(), clock.clone(), vec![connection]);
    engine.prepare().await?;
    let webhook_token = crate::token::webhook_token();
    let hooks = shipledger_server::ConnectionHooks {
        name: CONNECTION.into(),
        token: Some(webhook_token.clone()),
        shipstation_base: shipstation.base_url().parse()?,
        v2_keys: Some(
            shipledger_server::load_webhook_keys(&format!("{}/jwks", shipstation.base_url()).parse()?)
                .await
                .map_err(|e| anyhow::anyhow!("loading the sandbox's v2 webhook keys: {e}"))?,
        ),
    };
    let server = shipledger_server::Server::bind(args.listen, store.clone(), clock.clone(), vec![hooks]).await?.wake_on_intake(engine.waker());
    let server_addr = server.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let server_task = tokio::spawn(server.run(stop_rx.clone()));
    tokio::spawn(metered.run_refresh(vec![CONNECTION.to_string()], crate::run::GAUGE_REFRESH, stop_rx.clone()));

    // A configuration for this run, so `exceptions` and `timeline` can read its store.
    let config_path = dir.join("shipledger.toml");
    std::fs::write(
        &config_path,
        format!(
            "# Written by `shipledger demo`: the demo's store and its (now stopped) sandboxes.\n\
             [store]\nurl = \"{store_url}\"\n\n\
             [[connections]]\nname = \"{CONNECTION}\"\n\n\
             [connections.erp]\nkind = \"sandbox\"\nurl = \"{erp}\"\napi_key_env = \"SHIPLEDGER_DEMO_ERP_KEY\"\n\n\
             [connections.shipstation]\nbase_url = \"{ss}\"\napi_key_env = \"SHIPLEDGER_DEMO_SS_KEY\"\napi_secret_env = \"SHIPLEDGER_DEMO_SS_SECRET\"\n\n\
             [connections.accounts]\nshipping_expense = \"5.1.3\"\naccrued_shipping = \"2.1.1\"\nprepaid_postage = \"1.1.9\"\n\n\
             [connections.accounts.carrier_accounts]\nstamps_com = \"prepaid\"\n",
            erp = erp.base_url(),
            ss = shipstation.base_url(),
        ),
    )
    .with_context(|| format!("writing {}", config_path.display()))?;

    eprintln!("shipledger demo (seed {}, {} orders over {spread} s)", args.seed, args.orders);
    eprintln!("  ShipStation sandbox: {}   (control: {}/_sandbox/stats)", shipstation.base_url(), shipstation.base_url());
    eprintln!("  ERP sandbox:         {}   (control: {}/_sandbox/stats)", erp.base_url(), erp.base_url());
    eprintln!("  shipledger:          http://{server_addr}/metrics   store: {store_url}");
    eprintln!("  webhooks (v1):       http://{server_addr}/webhooks/shipstation/{CONNECTION}/{webhook_token}");
    eprintln!("  webhooks (v2):       http://{server_addr}/webhooks/shipstation-v2/{CONNECTION}");

    // ShipStation tells shipledger about labels and scans by webhook; polling catches
    // what they miss (and voids, which v1 never announces).
    subscribe_webhooks(&shipstation.base_url(), &format!("http://{server_addr}"), &webhook_token).await?;

    let plan = Traffic::plan(TrafficConfig {
        orders: args.orders,
        seed: args.seed,
        spread: SignedDuration::from_secs(spread as i64),
        ..TrafficConfig::default()
    });
    // The plan's later actions (captures, cancellations, corrections) are spread over
    // hours of shop time; the demo plays that time faster so they all happen within
    // the spread.
    let start = Timestamp::now();
    let speed = (plan.duration().as_secs_f64() / spread as f64).max(1.0);
    let shop_time = move || {
        let elapsed = Timestamp::now().duration_since(start).as_secs_f64();
        start + SignedDuration::from_secs_f64(elapsed * speed)
    };
    let mut feeder = plan.feeder(&erp.base_url(), start);
    let started = Instant::now();
    // The display has its own task: it moves while an engine pass waits on a budget.
    let progress = Arc::new(Progress::new());
    let display = tokio::spawn(show_progress(
        progress.clone(),
        store.clone(),
        shipstation.base_url(),
        erp.base_url(),
        plan.orders.len() as u64,
        started,
    ));
    // The engine's lanes (ERP reads, ERP writes, ShipStation v1, v2 and intake), each
    // on its own task as `serve` runs them, so a wait on one budget holds up nothing
    // else. They drain on `engine_stop`: once idle, on Ctrl-C, or on the timeout.
    let engine = Arc::new(engine);
    let (engine_stop, engine_stop_rx) = watch::channel(false);
    let worker = tokio::spawn(engine.clone().run(engine_stop_rx));
    let mut interrupted = false;
    let mut timed_out = false;
    // When the warehouse and the carrier last had nothing left to do.
    let mut still_since: Option<Timestamp> = None;
    let mut ctrl_c = Box::pin(crate::shutdown_signal());
    loop {
        feeder.step(shop_time()).await.context("feeding orders to the ERP")?;
        if !feeder.is_done() || !world_is_still(&shipstation) {
            still_since = None;
        } else if still_since.is_none() && args.until_idle {
            // Nothing more will happen in either system: every pass that reads them
            // runs once more now (as a webhook hint would have it), and the demo is
            // idle once each has worked since and left no job behind.
            let now = clock.now();
            still_since = Some(now);
            for c in &engine.connections {
                for what in FINAL_PASSES {
                    engine.hasten_schedule(c, what, now).await?;
                }
            }
            engine.wake();
        }
        if args.until_idle
            && let Some(since) = still_since
            && is_idle(&engine, &store, &erp, since).await?
        {
            break;
        }
        if args.until_idle && started.elapsed() > Duration::from_secs(args.timeout) {
            timed_out = true;
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = &mut ctrl_c => { interrupted = true; break; }
        }
    }
    // The lanes drain: steps in flight finish (or are cancelled after the engine's
    // grace, their leases given back) before anything is counted.
    let _ = engine_stop.send(true);
    let _ = worker.await;
    if timed_out {
        display.abort();
        progress.done();
        anyhow::bail!("the demo was not idle after {} s; see the exceptions and the store at {store_url}", args.timeout);
    }
    display.abort();
    progress.done();

    // Month end, early: today's costs are converted and posted now (`costs post
    // --until today`), so the report can show the journals.
    let costs = post_costs(&engine, &store, &erp).await?;
    // The month's close report, as `shipledger close-report --period` gives it.
    let conn = &engine.connections[0];
    let tz = conn.policy.company_timezone(conn.erp.as_ref()).await.unwrap_or(jiff::tz::TimeZone::UTC);
    let period = shipledger_core::close::Period::of(Timestamp::now().to_zoned(tz).date());
    let close = shipledger_engine::close::report(&engine, conn, period).await.context("the demo's close report")?;
    if let Some(dir) = &args.dir {
        let path = dir.join(format!("close-report-{period}.md"));
        std::fs::write(&path, crate::close::markdown(&close)).with_context(|| format!("writing the close report to {}", path.display()))?;
    }

    // The report, each figure asked of the system that owns it.
    let ss_stats = shipstation.stats();
    let by_state = store.count_orders_by_state(CONNECTION).await?;
    let open = store
        .list_exceptions(ExceptionFilter {
            connection: Some(CONNECTION.into()),
            live: true,
            limit: 0,
            ..Default::default()
        })
        .await?;
    let mut exceptions_open: BTreeMap<String, u64> = BTreeMap::new();
    for e in &open {
        *exceptions_open.entry(e.kind.code().to_string()).or_default() += 1;
    }
    let held_orders = store
        .list_orders(OrderFilter { connection: Some(CONNECTION.into()), state: Some(OrderState::Held), ..Default::default() })
        .await?;
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    for o in &held_orders {
        let reasons: Vec<&str> = open
            .iter()
            .filter(|e| e.record_id == o.erp_id && e.kind.code().starts_with("held_"))
            .map(|e| e.kind.code().trim_start_matches("held_"))
            .collect();
        if reasons.is_empty() {
            *held.entry("erp_hold".into()).or_default() += 1;
        }
        for r in reasons {
            *held.entry(r.to_string()).or_default() += 1;
        }
    }
    let count = |s: OrderState| by_state.iter().find(|(x, _)| *x == s).map(|(_, n)| *n).unwrap_or(0);

    // Did each planned order end as the plan says it should?
    let mut mismatches = Vec::new();
    for planned in &plan.orders {
        let Some(erp_id) = feeder.erp_id(&planned.reference) else { continue };
        let record = store.get_order(CONNECTION, erp_id).await?;
        let actual = record.as_ref().map(|r| r.state);
        let ok = match (planned.expected, actual) {
            (Expected::Released, Some(OrderState::Pushed | OrderState::Shipped)) => true,
            (Expected::Held(kind), Some(OrderState::Held)) => {
                open.iter().any(|e| e.record_id == erp_id && e.kind == kind)
            }
            (Expected::Cancelled, Some(OrderState::Cancelled)) => true,
            // A cancellation that came after the warehouse shipped is refused by
            // ShipStation and raised for ops: that is the right outcome too.
            (Expected::Cancelled, Some(OrderState::Pushed)) => {
                open.iter().any(|e| e.record_id == erp_id && e.kind.code() == "change_after_shipment")
            }
            _ => false,
        };
        if !ok {
            mismatches.push(json!({
                "reference": planned.reference, "erp_id": erp_id, "expected": planned.expected.to_string(),
                "actual": actual.map(|s| s.as_str()),
            }));
        }
    }

    // One ShipStation order per released ERP order, none for the others: counted over
    // every order the account holds, as `GET /orders` lists them (not those merged
    // away or deleted), read in process like every ShipStation figure of the report,
    // so that it waits on no rate limit and adds nothing to the requests it counts.
    let per_key: BTreeMap<String, u64> = shipstation.read_world(|w| {
        let mut per_key = BTreeMap::new();
        for o in w.orders.values().filter(|o| o.visible() && o.active) {
            *per_key.entry(o.order_key.clone()).or_default() += 1;
        }
        per_key
    });
    let all_records = store
        .list_orders(OrderFilter { connection: Some(CONNECTION.into()), ..Default::default() })
        .await?;
    let released_not_exactly_once: Vec<&str> = all_records
        .iter()
        .filter(|r| r.released_at.is_some() && per_key.get(&r.order_key).copied().unwrap_or(0) != 1)
        .map(|r| r.erp_id.as_str())
        .collect();
    let unreleased_in_shipstation: Vec<&str> = all_records
        .iter()
        .filter(|r| r.released_at.is_none() && per_key.contains_key(&r.order_key))
        .map(|r| r.erp_id.as_str())
        .collect();
    let held_without_exception: Vec<&str> = held_orders
        .iter()
        .filter(|o| !open.iter().any(|e| e.record_id == o.erp_id))
        .map(|o| o.erp_id.as_str())
        .collect();

    let fulfilment = fulfilment_report(&shipstation, &erp, &all_records);

    let summary = plan.summary();
    let report = json!({
        "seed": args.seed,
        "idle": !interrupted,
        "elapsed_seconds": started.elapsed().as_secs_f64().round(),
        "orders": {
            "generated": summary.generated,
            "released": all_records.iter().filter(|o| o.released_at.is_some()).count(),
            "pushed": count(OrderState::Pushed),
            "cancelled": count(OrderState::Cancelled),
            "held": held,
            "by_state": by_state.iter().map(|(s, n)| (s.as_str().to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "expected": summary.by_expected,
            "by_kind": summary.by_kind,
            "outcome_mismatches": mismatches,
        },
        "shipstation": {
            "orders": ss_stats["orders"],
            "duplicate_order_keys": ss_stats["duplicate_order_keys"],
            "duplicate_order_numbers": ss_stats["duplicate_order_numbers"],
            "requests": {
                "createorders": ss_stats["requests"]["POST /orders/createorders"].as_u64().unwrap_or(0),
                "total": ss_stats["requests_total"],
            },
            "rate_limited": ss_stats["rate_limited"],
            "shipments": ss_stats["shipments"],
        },
        "fulfilment": fulfilment,
        "costs": costs["figures"],
        "exceptions": {"open": exceptions_open},
        "close": close,
        "checks": {
            "cost_entries_not_in_a_posted_journal": costs["not_posted"],
            "journals_not_equal_to_their_conversions": costs["unequal"],
            "released_orders_not_exactly_once_in_shipstation": released_not_exactly_once,
            "unreleased_orders_in_shipstation": unreleased_in_shipstation,
            "held_orders_without_an_open_exception": held_without_exception,
        },
    });
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    print_summary(&report);
    if args.dir.is_some() {
        println!(
            "inspect: shipledger exceptions list --config {0}   shipledger timeline --config {0} <ERP order id>",
            config_path.display()
        );
    }

    if !args.until_idle && !interrupted {
        eprintln!("running until Ctrl-C");
        crate::shutdown_signal().await;
    } else if args.linger > 0 && !interrupted {
        eprintln!("metrics at http://{server_addr}/metrics for {} s more", args.linger);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.linger)) => {}
            _ = crate::shutdown_signal() => {}
        }
    }
    let _ = stop_tx.send(true);
    let _ = server_task.await;
    shipstation.shutdown().await;
    erp.shutdown().await;
    Ok(())
}

fn print_summary(report: &Value) {
    let o = &report["orders"];
    let s = &report["shipstation"];
    println!(
        "orders: {} generated, {} released, {} pushed, {} cancelled, held {}",
        o["generated"], o["released"], o["pushed"], o["cancelled"], o["held"]
    );
    println!(
        "shipstation: {} orders, {} duplicate orderKeys, {} createorders of {} requests, {} rate-limited",
        s["orders"], s["duplicate_order_keys"], s["requests"]["createorders"], s["requests"]["total"], s["rate_limited"]
    );
    let f = &report["fulfilment"];
    println!(
        "fulfilment: {} completed, {} partially shipped, {} label(s) awaiting a scan, {} completed before the first scan, {} line quantity mismatch(es)",
        f["completed"], f["partially_shipped"], f["awaiting_scan"], f["completed_before_first_scan"], f["line_quantity_mismatches"]
    );
    let k = &report["costs"];
    println!(
        "costs: {} entries ({}), {} converted to {} {}, {} waiting for a rate, {} journal(s) posted ({} in the ERP)",
        k["entries"], k["by_currency"], k["converted"], k["converted_total"], k["base_currency"], k["waiting_for_rate"], k["batches_posted"], k["erp_journals"]
    );
    println!("open exceptions: {}", report["exceptions"]["open"]);
    let v = &report["close"]["verdict"];
    let blockers: Vec<String> = v["blockers"].as_array().into_iter().flatten().map(|b| format!("{} {}", b["code"].as_str().unwrap_or(""), b["record"].as_str().unwrap_or(""))).collect();
    println!(
        "close report {}: {}{}",
        report["close"]["period"].as_str().unwrap_or(""),
        v["summary"].as_str().unwrap_or(""),
        if blockers.is_empty() { String::new() } else { format!(" ({})", blockers.join("; ")) }
    );
    let mismatches = o["outcome_mismatches"].as_array().map(Vec::len).unwrap_or(0);
    println!("orders that did not end as planned: {mismatches}");
    let c = &report["checks"];
    let n = |k: &str| c[k].as_array().map(Vec::len).unwrap_or(0);
    println!(
        "checks: {} released order(s) not exactly once in ShipStation, {} unreleased order(s) in ShipStation, {} held order(s) without an exception, {} cost entr(ies) not in a posted journal, {} journal(s) not equal to their conversions",
        n("released_orders_not_exactly_once_in_shipstation"),
        n("unreleased_orders_in_shipstation"),
        n("held_orders_without_an_open_exception"),
        n("cost_entries_not_in_a_posted_journal"),
        n("journals_not_equal_to_their_conversions"),
    );
}

/// What the progress display shows, each counted by the system that owns it: the
/// ERP (orders generated, fulfilments packed and completed), the store (released,
/// pushed, held, open exceptions) and ShipStation (labels, requests, 429s).
struct Figures {
    planned: u64,
    generated: u64,
    released: u64,
    pushed: u64,
    held: u64,
    labelled: u64,
    packed: u64,
    completed: u64,
    open_exceptions: u64,
    requests: u64,
    rate_limited: u64,
    elapsed: Duration,
}

impl Figures {
    /// Three short lines (orders, fulfilment, costs) so that a narrow terminal shows
    /// them whole; joined by `sep`.
    fn text(&self, sep: &str) -> String {
        format!(
            "orders  {}/{} generated, {} released, {} pushed, {} held{sep}labels  {}, {} packed, {} completed{sep}other   {} open exception(s), {} ShipStation requests, {} × 429",
            self.generated,
            self.planned,
            self.released,
            self.pushed,
            self.held,
            self.labelled,
            self.packed,
            self.completed,
            self.open_exceptions,
            self.requests,
            self.rate_limited
        )
    }
}

/// Count everything the display shows, twice a second, until aborted: the store
/// directly, the two sandboxes through their control APIs (which count no request).
async fn show_progress(progress: Arc<Progress>, store: Arc<dyn Store>, ss: String, erp: String, planned: u64, started: Instant) {
    let http = reqwest::Client::new();
    let stats = async |url: &str| -> Value {
        match http.get(format!("{url}/_sandbox/stats")).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    };
    loop {
        let counts = store.count_orders_by_state(CONNECTION).await.unwrap_or_default();
        let open_exceptions = store
            .list_exceptions(ExceptionFilter {
                connection: Some(CONNECTION.into()),
                live: true,
                limit: 0,
                ..Default::default()
            })
            .await
            .map(|e| e.len() as u64)
            .unwrap_or(0);
        let (ss, erp) = (stats(&ss).await, stats(&erp).await);
        let in_state = |states: &[OrderState]| counts.iter().filter(|(s, _)| states.contains(s)).map(|(_, n)| n).sum::<u64>();
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        progress.show(&Figures {
            planned,
            generated: n(&erp["orders"]),
            released: in_state(&[OrderState::Released, OrderState::Pushed, OrderState::Shipped]),
            pushed: in_state(&[OrderState::Pushed, OrderState::Shipped]),
            held: in_state(&[OrderState::Held]),
            labelled: n(&ss["shipments"]).saturating_sub(n(&ss["shipments_voided"])),
            packed: n(&erp["fulfilments_by_state"]["packed"]),
            completed: n(&erp["fulfilments_by_state"]["completed"]),
            open_exceptions,
            requests: n(&ss["requests_total"]),
            rate_limited: n(&ss["rate_limited"]),
            elapsed: started.elapsed(),
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// On a terminal, a live status line drawn by `indicatif` (it redraws in place at a
/// bounded rate, keeps the elapsed time itself, and clears cleanly when done);
/// otherwise a plain line every few seconds.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Progress {
    fn new() -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .expect("a valid progress template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, last: std::sync::Mutex::new(None) }
    }

    fn show(&self, figures: &Figures) {
        match &self.bar {
            Some(bar) => bar.set_message(figures.text("\n  ")),
            None => {
                let mut last = self.last.lock().expect("progress lock");
                if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                    eprintln!("[{:>4}s] {}", figures.elapsed.as_secs(), figures.text(" | "));
                    *last = Some(Instant::now());
                }
            }
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The passes that read the two systems: once the world is still, each must have
/// worked once more before the demo calls itself idle.
const FINAL_PASSES: [Scheduled; 4] = [Scheduled::ErpPoll, Scheduled::Follow, Scheduled::ShipmentPoll, Scheduled::ScanSweep];

/// Has the simulated warehouse and carrier nothing left to do? No order waits for a
/// label (or is on hold), and no label has a void or a physical scan still to come
/// (an electronic notice or a delivery may: they change nothing shipledger writes).
/// Read from the sandbox's own state, in process.
fn world_is_still(shipstation: &SandboxHandle) -> bool {
    shipstation.read_world(|w| {
        let waiting = w
            .orders
            .values()
            .any(|o| o.visible() && matches!(o.order_status.as_str(), "awaiting_shipment" | "on_hold"));
        let planned = w
            .sim_plans
            .values()
            .any(|p| p.next_label_at.is_some() || p.labels.iter().any(|l| l.void_at.is_some() || l.scan_at.is_some()));
        !waiting && !planned
    })
}

/// Is shipledger done with a world that has been still since `since`? Every ERP
/// order is known and settled (pushed, shipped, cancelled or held), every pass that
/// reads the two systems has worked since, and no job is left to run.
async fn is_idle(engine: &Engine, store: &Arc<dyn Store>, erp: &shipledger_sandbox::erp::SandboxErpHandle, since: Timestamp) -> anyhow::Result<bool> {
    let counts = store.count_orders_by_state(CONNECTION).await?;
    let seen: u64 = counts.iter().map(|(_, n)| n).sum();
    let settled = counts
        .iter()
        .all(|(s, _)| matches!(s, OrderState::Pushed | OrderState::Shipped | OrderState::Cancelled | OrderState::Held));
    if !settled || seen != erp.snapshot().orders.len() as u64 {
        return Ok(false);
    }
    for what in FINAL_PASSES {
        let worked = store.get_schedule(CONNECTION, what.name()).await?.and_then(|r| r.last_success_at);
        if worked.is_none_or(|at| at < since) {
            return Ok(false);
        }
    }
    Ok(!engine.has_pending_work().await?)
}

async fn subscribe_webhooks(ss: &str, server: &str, token: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for event in ["SHIP_NOTIFY", "FULFILLMENT_SHIPPED"] {
        http.post(format!("{ss}/webhooks/subscribe"))
            .basic_auth("sandbox-key", Some("sandbox-secret"))
            .json(&json!({"target_url": format!("{server}/webhooks/shipstation/{CONNECTION}/{token}"), "event": event, "friendly_name": "shipledger demo"}))
            .send()
            .await?
            .error_for_status()?;
    }
    http.post(format!("{ss}/v2/environment/webhooks"))
        .header("API-Key", "sandbox-v2-key")
        .json(&json!({"url": format!("{server}/webhooks/shipstation-v2/{CONNECTION}"), "event": "track", "name": "shipledger demo"}))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// When the carrier first physically scanned each tracking number it knows (`None`:
/// not yet), by the rule shipledger applies to what ShipStation tells it
/// ([`is_carrier_acceptance`]). Read from the sandbox ShipStation's tracking records
/// in process, so the report spends none of the v2 budget (one track call per label
/// would be minutes of it) and adds nothing to the request counts it reports.
///
/// [`is_carrier_acceptance`]: shipledger_shipstation::v2::model::is_carrier_acceptance
fn first_scans(shipstation: &SandboxHandle) -> BTreeMap<String, Option<Timestamp>> {
    use shipledger_shipstation::v2::model::{TrackingStatus, is_carrier_acceptance};
    shipstation.read_world(|w| {
        w.tracking
            .values()
            .map(|t| {
                let first = t
                    .events
                    .iter()
                    .filter(|e| is_carrier_acceptance(e.status_code.parse::<TrackingStatus>().ok().as_ref(), e.status_detail_code.as_deref()))
                    .map(|e| e.occurred_at)
                    .min();
                (t.tracking_number.clone(), first)
            })
            .collect()
    })
}

/// A label as ShipStation's `GET /shipments?includeShipmentItems=true` shows it: its
/// order, tracking number, whether it is voided, and its (line key, quantity) items.
struct Label {
    order_key: Option<String>,
    order_id: Option<i64>,
    tracking_number: String,
    voided: bool,
    items: Vec<(Option<String>, i64)>,
}

/// Every label of the account (not those of orders merged away), read in process.
fn labels(shipstation: &SandboxHandle) -> Vec<Label> {
    shipstation.read_world(|w| {
        w.shipments
            .values()
            .filter(|s| s.order_id.is_none_or(|id| w.orders.get(&id).is_some_and(|o| o.visible())))
            .map(|s| Label {
                order_key: s.order_key.clone(),
                order_id: s.order_id,
                tracking_number: s.tracking_number.clone(),
                voided: s.voided,
                items: s.items.iter().map(|i| (i.line_item_key.clone(), i.quantity)).collect(),
            })
            .collect()
    })
}

/// The fulfilment figures, each computed by asking both sides: the ERP's fulfilment
/// documents against ShipStation's live labels, line by line, and the carrier's own
/// tracking records for when each parcel was first scanned.
fn fulfilment_report(
    shipstation: &SandboxHandle,
    erp: &shipledger_sandbox::erp::SandboxErpHandle,
    records: &[shipledger_store::OrderRecord],
) -> Value {
    use shipledger_sandbox::erp::model::FulfilmentStatus;
    let labels = labels(shipstation);
    let world = erp.snapshot();
    let by_key: BTreeMap<&str, &shipledger_store::OrderRecord> = records.iter().map(|r| (r.order_key.as_str(), r)).collect();
    let by_ss_id: BTreeMap<i64, &str> = records.iter().filter_map(|r| Some((r.ss_order_id?, r.erp_id.as_str()))).collect();

    // ShipStation's live quantities per (ERP order, line), and scan times per tracking number.
    let mut ss_qty: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut live_numbers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut voided_numbers = std::collections::BTreeSet::new();
    for l in &labels {
        let erp_id = l
            .order_key
            .as_deref()
            .and_then(|k| by_key.get(k).map(|r| r.erp_id.clone()))
            .or_else(|| l.order_id.and_then(|id| by_ss_id.get(&id).map(|s| s.to_string())));
        let Some(erp_id) = erp_id else { continue };
        let number = l.tracking_number.clone();
        if l.voided {
            voided_numbers.insert(number);
            continue;
        }
        live_numbers.entry(erp_id.clone()).or_default().push(number);
        for (line, quantity) in &l.items {
            if let Some(line) = line {
                *ss_qty.entry((erp_id.clone(), line.clone())).or_default() += quantity;
            }
        }
    }
    let scans = first_scans(shipstation);
    let mut first_scan: BTreeMap<String, Option<Timestamp>> = BTreeMap::new();
    for l in labels.iter().filter(|l| !l.voided) {
        first_scan.insert(l.tracking_number.clone(), scans.get(&l.tracking_number).copied().flatten());
    }

    // The ERP's quantities per (order, line) on fulfilments that are not cancelled.
    let mut erp_qty: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut completed_before_scan = Vec::new();
    let mut completed_with_voided = Vec::new();
    for f in world.fulfilments.values().filter(|f| f.state != FulfilmentStatus::Cancelled) {
        for line in &f.lines {
            *erp_qty.entry((f.order_id.clone(), line.line_id.clone())).or_default() += i64::from(line.quantity);
        }
        if f.state == FulfilmentStatus::Completed {
            for p in &f.packages {
                if voided_numbers.contains(&p.tracking_number) {
                    completed_with_voided.push(json!({"fulfilment": f.id, "tracking": p.tracking_number}));
                }
                // A label's completion must follow its first scan; an order marked
                // shipped elsewhere has no label to scan.
                if let Some(scan) = first_scan.get(&p.tracking_number) {
                    let early = match (scan, f.completed_at) {
                        (Some(scan), Some(done)) => done < *scan,
                        (None, _) => true,
                        _ => false,
                    };
                    if early {
                        completed_before_scan.push(json!({"fulfilment": f.id, "tracking": p.tracking_number}));
                    }
                }
            }
        }
    }
    let keys: std::collections::BTreeSet<&(String, String)> = ss_qty.keys().chain(erp_qty.keys()).collect();
    let mismatches: Vec<Value> = keys
        .into_iter()
        .filter(|k| ss_qty.get(*k).copied().unwrap_or(0) != erp_qty.get(*k).copied().unwrap_or(0))
        .map(|(o, l)| json!({"order": o, "line": l, "shipstation": ss_qty.get(&(o.clone(), l.clone())), "erp": erp_qty.get(&(o.clone(), l.clone()))}))
        .collect();

    // Per order: completed (every physical line shipped, every live label scanned and
    // completed in the ERP with all its live tracking numbers), or partially shipped.
    let mut completed = 0;
    let mut partially = 0;
    let mut scanned_not_completed = Vec::new();
    for r in records.iter().filter(|r| r.ss_order_id.is_some()) {
        let Some(order) = world.orders.get(&r.erp_id) else { continue };
        let physical: Vec<(String, i64)> = order
            .lines
            .iter()
            .filter(|l| l.physical)
            .map(|l| (l.id.clone(), i64::from(l.quantity)))
            .collect();
        let shipped: Vec<i64> = physical.iter().map(|(l, _)| ss_qty.get(&(r.erp_id.clone(), l.clone())).copied().unwrap_or(0)).collect();
        let all_shipped = physical.iter().zip(&shipped).all(|((_, q), s)| s >= q);
        let any_shipped = shipped.iter().any(|s| *s > 0);
        let numbers = live_numbers.get(&r.erp_id).cloned().unwrap_or_default();
        let all_scanned = !numbers.is_empty() && numbers.iter().all(|n| first_scan.get(n).is_some_and(Option::is_some));
        let erp_completed: std::collections::BTreeSet<&str> = world
            .fulfilments
            .values()
            .filter(|f| f.order_id == r.erp_id && f.state == FulfilmentStatus::Completed)
            .flat_map(|f| f.packages.iter().map(|p| p.tracking_number.as_str()))
            .collect();
        if all_shipped && all_scanned {
            if numbers.iter().all(|n| erp_completed.contains(n.as_str())) {
                completed += 1;
            } else {
                scanned_not_completed.push(json!(r.erp_id));
            }
        } else if any_shipped && !all_shipped {
            partially += 1;
        }
    }
    let awaiting_scan = first_scan.values().filter(|s| s.is_none()).count();
    json!({
        "completed": completed,
        "partially_shipped": partially,
        "awaiting_scan": awaiting_scan,
        "completed_before_first_scan": completed_before_scan.len(),
        "line_quantity_mismatches": mismatches.len(),
        "checks": {
            "labelled_and_scanned_but_not_completed": scanned_not_completed,
            "completed_before_first_scan": completed_before_scan,
            "completed_with_a_voided_tracking_number": completed_with_voided,
            "line_quantity_mismatches": mismatches,
        },
    })
}

/// Convert and post every cost window up to today, then count: entries per currency,
/// converted and waiting, the base total, batches posted, journals the ERP holds;
/// and the checks: entries in no posted journal, journals whose total is not the sum
/// of their entries' conversions.
async fn post_costs(engine: &Engine, store: &Arc<dyn Store>, erp: &shipledger_sandbox::erp::SandboxErpHandle) -> anyhow::Result<Value> {
    use shipledger_store::{BatchState, CostBatchFilter, CostEntryFilter};
    let conn = &engine.connections[0];
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    shipledger_engine::flows::journals::post_now(engine, conn, Some(today)).await.context("posting the demo's costs")?;
    let all = CostEntryFilter { connection: Some(CONNECTION.into()), ..Default::default() };
    let entries = store.list_cost_entries(all.clone()).await?;
    let conversions = store.list_cost_conversions(all).await?;
    let by_key: BTreeMap<&str, &shipledger_store::CostConversion> = conversions.iter().map(|c| (c.conversion.entry_key.as_str(), c)).collect();
    let by_currency: BTreeMap<String, String> = shipledger_core::cost::net_by_currency(entries.iter().map(|e| &e.entry))
        .into_iter()
        .map(|m| (m.currency().code().to_string(), m.to_decimal().to_string()))
        .collect();
    let base = conversions.first().map(|c| c.conversion.base.currency()).unwrap_or(shipledger_core::Currency::GBP);
    let converted_total: i64 = conversions.iter().map(|c| c.conversion.base.minor()).sum();
    let batches = store.list_cost_batches(CostBatchFilter { connection: Some(CONNECTION.into()), ..Default::default() }).await?;
    let mut in_posted: std::collections::BTreeSet<String> = Default::default();
    let mut unequal = Vec::new();
    for b in batches.iter().filter(|b| b.state == BatchState::Posted) {
        let members = store.cost_batch_members(CONNECTION, &b.batch_key).await?;
        let sum: i64 = members.iter().filter_map(|m| by_key.get(m.entry_key.as_str())).map(|c| c.conversion.base.minor()).sum();
        if sum != b.total.minor() {
            unequal.push(json!({"batch": b.batch_key, "journal": b.total.minor(), "conversions": sum}));
        }
        in_posted.extend(members.into_iter().map(|m| m.entry_key));
    }
    let not_posted: Vec<&str> = entries.iter().filter(|e| !in_posted.contains(&e.entry_key)).map(|e| e.entry_key.as_str()).collect();
    Ok(json!({
        "figures": {
            "entries": entries.len(),
            "by_currency": by_currency,
            "converted": conversions.len(),
            "waiting_for_rate": entries.len() - conversions.len(),
            "base_currency": base.code(),
            "converted_total": shipledger_core::Money::from_minor(converted_total, base).to_decimal().to_string(),
            "batches_posted": batches.iter().filter(|b| b.state == BatchState::Posted).count(),
            "erp_journals": erp.stats()["journals"],
        },
        "not_posted": not_posted,
        "unequal": unequal,
    }))
}
