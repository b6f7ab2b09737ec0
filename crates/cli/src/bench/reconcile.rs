//! `shipledger bench reconcile`: the reconciler measured in two parts.
//!
//! 1. **The diff over staged copies** (PostgreSQL, `--staged` orders on each side, a
//!    million by default). The ERP's orders, the ledger's orders, ShipStation's orders
//!    and its labels are staged in a database of the bench's own, with drift seeded on
//!    a few keys in a thousand. Then the same diff runs twice over the same tables:
//!    shipledger's (`compare_copies`: four byte-ordered copies read a page at a time
//!    and merged by key) and a baseline that lets PostgreSQL join them (one `FULL
//!    OUTER JOIN` streamed to this process and judged by the same `core` diff). Wall
//!    time and peak RSS (VmHWM, reset before each with `/proc/self/clear_refs`) of
//!    each; the two must agree on every finding, or the run fails.
//! 2. **Requests per reconciled order** (HTTP): `--orders` orders pushed to the
//!    sandbox ShipStation (its limits raised so the push is quick), then a full run,
//!    then 1 % of the orders put on hold in ShipStation and an incremental run; the
//!    sandbox counts every request. The incremental run must find exactly the held
//!    orders (a status mismatch each).
//!
//! Part 1 runs first, before any sandbox starts, so the RSS it reports is the diff's
//! and the staging's leftovers, not a sandbox's world.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::TryStreamExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use shipledger_core::order::{ErpOrderStatus, order_key};
use shipledger_core::reconcile::{self as diff, DiffPolicy, ErpSide, FulfilmentView, LedgerSide, Record, SsOrderView, SsShipmentView};
use shipledger_engine::flows::reconcile::{self, Progress, Quiet, ReconcileOptions};
use shipledger_store::{StagedErpOrder, StagedSsOrder, StagedSsShipment, Store};
use sqlx::Row;

use super::{BenchArgs, CONNECTION, Hooks, Outcome, Rig, Target, fixed_parameters, ratio, round};

/// Keys generated and staged at a time.
const CHUNK: usize = 500;
/// ShipStation's limits in the HTTP part: raised, so the push takes seconds.
const RAISED_PER_MINUTE: u32 = 100_000;
/// The share of orders changed before the incremental run (per mille).
const CHANGED_PER_MILLE: usize = 10;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<Outcome> {
    let staged = Box::pin(staged_diff(args)).await?;
    let http = Box::pin(requests_per_order(args)).await?;
    let speedup = ratio_f(staged.join.seconds, staged.ours.seconds);
    let full_per_order = ratio(http.full.requests, http.full.keys);
    let incremental_per_order = ratio(http.incremental.requests, http.incremental.keys);
    let mut parameters = fixed_parameters(args);
    parameters.insert("staged_orders".into(), json!(args.staged));
    parameters.insert("v1_requests_per_minute".into(), json!(RAISED_PER_MINUTE));
    parameters.insert("v2_requests_per_minute".into(), json!(RAISED_PER_MINUTE));
    parameters.insert("changed_share_percent".into(), json!(CHANGED_PER_MILLE as f64 / 10.0));
    Ok(Outcome {
        parameters: Value::Object(parameters),
        figures: json!({
            "staged": {
                "rows": staged.rows,
                "staging_seconds": round(staged.staging_seconds, 1),
                "keys": staged.ours.keys,
                "findings": staged.ours.findings,
                "shipledger_diff": {"seconds": round(staged.ours.seconds, 2), "peak_rss_mb": round(staged.ours.peak_rss_mb, 1)},
                "postgres_full_outer_join": {"seconds": round(staged.join.seconds, 2), "peak_rss_mb": round(staged.join.peak_rss_mb, 1)},
                "speedup_over_join": speedup.map(|r| round(r, 2)),
            },
            "http": {
                "orders": args.orders,
                "full": http.full.json(),
                "incremental": http.incremental.json(),
                "changed_orders": http.changed,
            },
        }),
        targets: vec![
            Target {
                name: "staged.speedup_over_join".into(),
                goal: "> 1 (faster than the join)".into(),
                value: json!(speedup.map(|r| round(r, 2))),
                pass: speedup.is_some_and(|r| r > 1.0),
            },
            Target {
                name: "staged.shipledger_diff.peak_rss_mb".into(),
                goal: "<= 200".into(),
                value: json!(round(staged.ours.peak_rss_mb, 1)),
                pass: staged.ours.peak_rss_mb <= 200.0,
            },
            Target {
                name: "http.full.shipstation_requests_per_order".into(),
                goal: "<= 0.01".into(),
                value: json!(full_per_order.map(|r| round(r, 5))),
                pass: full_per_order.is_some_and(|r| r <= 0.01),
            },
            Target {
                name: "http.incremental.shipstation_requests".into(),
                goal: "< the full run's".into(),
                value: json!(http.incremental.requests),
                pass: http.incremental.requests < http.full.requests,
            },
        ],
        notes: vec![
            "staged: both diffs judge the same four tables with the same core diff; they agreed on every finding (the run fails otherwise)".into(),
            "staged: peak RSS is the process's VmHWM, reset just before each diff; it includes what the staging left allocated".into(),
            format!(
                "http: requests are every ShipStation request the sandbox counted during the run; per order = requests / keys judged ({} incremental per order)",
                incremental_per_order.map(|r| format!("{:.5}", r)).unwrap_or_else(|| "-".into())
            ),
            "http: the ERP is read one order's fulfilments at a time (the Erp trait has no batched read yet), so a full run costs about one ERP request per order".into(),
        ],
    })
}

fn ratio_f(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

// ---------------------------------------------------------------------------------
// Part 1: the staged diff.

struct Timed {
    keys: u64,
    findings: BTreeMap<String, u64>,
    seconds: f64,
    peak_rss_mb: f64,
}

struct Staged {
    rows: u64,
    staging_seconds: f64,
    ours: Timed,
    join: Timed,
}

/// A progress line on stderr every 10 s.
struct Every10s(std::sync::Mutex<Instant>, &'static str);

impl Progress for Every10s {
    fn step(&self, what: &str, done: u64) {
        let mut last = self.0.lock().expect("progress lock");
        if last.elapsed() >= Duration::from_secs(10) {
            eprintln!("bench: reconcile: {}: {what}: {done}", self.1);
            *last = Instant::now();
        }
    }
}

fn progress(what: &'static str) -> Every10s {
    Every10s(std::sync::Mutex::new(Instant::now()), what)
}

/// The bench's own database on the server at `--database-url`, dropped when this goes.
struct BenchDb {
    admin: sqlx::PgPool,
    name: String,
    url: String,
}

impl BenchDb {
    async fn create(server_url: &str) -> anyhow::Result<BenchDb> {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(server_url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {} (--database-url)", redact(server_url)))?;
        let name = format!("shipledger_bench_reconcile_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.context("creating the bench's database")?;
        let mut url: url::Url = server_url.parse().context("--database-url is not a URL")?;
        url.set_path(&format!("/{name}"));
        Ok(BenchDb { admin, name, url: url.to_string() })
    }

    async fn drop(self) {
        if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&self.admin).await {
            eprintln!("bench: reconcile: could not drop the bench database {}: {e}", self.name);
        }
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match url.parse::<url::Url>() {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

fn server_url(args: &BenchArgs) -> String {
    args.database_url
        .clone()
        .or_else(|| std::env::var("TEST_DATABASE_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn staged_diff(args: &BenchArgs) -> anyhow::Result<Staged> {
    let db = BenchDb::create(&server_url(args)).await?;
    let outcome = Box::pin(staged_diff_in(args, &db)).await;
    db.drop().await;
    outcome
}

async fn staged_diff_in(args: &BenchArgs, db: &BenchDb) -> anyhow::Result<Staged> {
    let store = shipledger_store::open(&db.url).await.context("opening the bench's store")?;
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db.url).await?;
    let now = Timestamp::now();
    store.ensure_connection(CONNECTION, now).await?;

    let started = Instant::now();
    let mut rows = 0u64;
    let mut said = Instant::now();
    for from in (0..args.staged).step_by(CHUNK) {
        let keys: Vec<Key> = (from..(from + CHUNK).min(args.staged)).map(|i| Key::new(i, now)).collect();
        rows += Box::pin(stage(store.as_ref(), &pool, &keys, now)).await?;
        if said.elapsed() >= Duration::from_secs(10) {
            eprintln!("bench: reconcile: staging: {} of {} keys, {rows} rows, {} s", from + keys.len(), args.staged, started.elapsed().as_secs());
            said = Instant::now();
        }
    }
    sqlx::query("ANALYZE").execute(&pool).await?;
    let staging_seconds = started.elapsed().as_secs_f64();
    eprintln!("bench: reconcile: staged {rows} rows for {} keys in {staging_seconds:.0} s; diffing", args.staged);

    let policy = DiffPolicy {
        now,
        grace: SignedDuration::from_hours(1),
        invoice_grace: SignedDuration::from_hours(24),
        awaiting_after: SignedDuration::from_hours(72),
    };
    let ours = measure(async {
        let c = reconcile::compare_copies(store.as_ref(), CONNECTION, &policy, &progress("shipledger's diff")).await?;
        Ok((c.keys, c.findings))
    })
    .await?;
    eprintln!("bench: reconcile: shipledger's diff: {} keys in {:.1} s; the join", ours.keys, ours.seconds);
    let join = measure(join_diff(&pool, &policy)).await?;
    if (ours.keys, &ours.findings) != (join.keys, &join.findings) {
        bail!(
            "the two diffs disagree: shipledger's judged {} keys and found {:?}; the join judged {} and found {:?}",
            ours.keys,
            ours.findings,
            join.keys,
            join.findings
        );
    }
    pool.close().await;
    Ok(Staged { rows, staging_seconds, ours, join })
}

async fn measure(work: impl std::future::Future<Output = anyhow::Result<(u64, BTreeMap<String, u64>)>>) -> anyhow::Result<Timed> {
    reset_peak_rss();
    let started = Instant::now();
    let (keys, findings) = work.await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Timed { keys, findings, seconds, peak_rss_mb: peak_rss_mb() })
}

/// Start the process's peak RSS again from its RSS now (Linux: `5` to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS (VmHWM) in MB; 0 where /proc is not there.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The baseline: PostgreSQL joins the four copies (ShipStation's orders and labels
/// grouped by key), streamed here row by row and judged by the same diff.
async fn join_diff(pool: &sqlx::PgPool, policy: &DiffPolicy) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    const JOIN: &str = "
        WITH e AS (SELECT order_key, body FROM recon_erp_orders WHERE connection = $1),
             l AS (SELECT order_key, erp_id, number, state, ss_order_id, pushed_at FROM orders WHERE connection = $1),
             s AS (SELECT root_key, json_agg(body ORDER BY ss_order_id) AS bodies FROM recon_ss_orders WHERE connection = $1 GROUP BY root_key),
             h AS (SELECT root_key, json_agg(body ORDER BY shipment_id) AS bodies FROM recon_ss_shipments WHERE connection = $1 GROUP BY root_key)
        SELECT COALESCE(e.order_key, l.order_key, s.root_key, h.root_key) AS key,
               e.body AS erp, l.erp_id, l.number, l.state, l.ss_order_id, l.pushed_at,
               s.bodies AS orders, h.bodies AS labels
          FROM e
          FULL OUTER JOIN l ON l.order_key = e.order_key
          FULL OUTER JOIN s ON s.root_key = COALESCE(e.order_key, l.order_key)
          FULL OUTER JOIN h ON h.root_key = COALESCE(e.order_key, l.order_key, s.root_key)";
    let mut keys = 0u64;
    let mut findings: BTreeMap<String, u64> = BTreeMap::new();
    let tell = progress("the join");
    let mut stream = sqlx::query(JOIN).bind(CONNECTION).fetch(pool);
    while let Some(row) = stream.try_next().await? {
        let erp: Option<Value> = row.try_get("erp")?;
        let erp_id: Option<String> = row.try_get("erp_id")?;
        let ledger = match erp_id {
            Some(erp_id) => Some(LedgerSide {
                erp_id,
                number: row.try_get("number")?,
                state: row.try_get("state")?,
                ss_order_id: row.try_get("ss_order_id")?,
                pushed_at: row.try_get::<Option<i64>, _>("pushed_at")?.and_then(|ms| Timestamp::from_millisecond(ms).ok()),
            }),
            None => None,
        };
        let orders: Option<Value> = row.try_get("orders")?;
        let labels: Option<Value> = row.try_get("labels")?;
        let record = Record {
            key: row.try_get("key")?,
            erp: erp.map(serde_json::from_value::<ErpSide>).transpose()?,
            ledger,
            ss_orders: orders.map(serde_json::from_value::<Vec<SsOrderView>>).transpose()?.unwrap_or_default(),
            ss_shipments: labels.map(serde_json::from_value::<Vec<SsShipmentView>>).transpose()?.unwrap_or_default(),
            same_number: None,
        };
        keys += 1;
        if keys.is_multiple_of(10_000) {
            tell.step("comparing", keys);
        }
        for f in diff::diff(&record, policy) {
            *findings.entry(f.kind.code().to_string()).or_default() += 1;
        }
    }
    Ok((keys, findings))
}

/// What key `i` is on each side: most agree (half shipped, half waiting for a
/// label); one in a thousand of each of five kinds of drift.
struct Key {
    erp_id: String,
    key: String,
    ss_order_id: i64,
    erp: Option<ErpSide>,
    ledger: Option<LedgerSide>,
    ss_order: Option<SsOrderView>,
    label: Option<SsShipmentView>,
}

impl Key {
    fn new(i: usize, now: Timestamp) -> Key {
        let erp_id = format!("SO-{i:07}");
        let key = order_key(CONNECTION, &erp_id);
        let ss_order_id = 10_000_000 + i as i64;
        let placed = now - SignedDuration::from_hours(48);
        let pushed = now - SignedDuration::from_hours(47);
        let tracking = format!("1ZBENCH{i:09}");
        let lines: BTreeMap<String, u32> = [(format!("{erp_id}/1"), 1u32)].into();
        let drift = i % 1000;
        let shipped = i.is_multiple_of(2) && drift >= 5;
        let erp_status = if drift == 2 { ErpOrderStatus::Cancelled } else { ErpOrderStatus::Open };
        let fulfilment = (shipped || drift == 4).then(|| FulfilmentView {
            id: format!("F-{i}"),
            live: true,
            completed: true,
            // Drift 4: the ERP's fulfilment carries another tracking number.
            tracking: vec![if drift == 4 { format!("1ZOTHER{i:09}") } else { tracking.clone() }],
            lines: lines.iter().map(|(l, q)| (l.clone(), *q)).collect(),
            updated_at: placed,
        });
        let erp = ErpSide {
            erp_id: erp_id.clone(),
            number: erp_id.clone(),
            status: erp_status,
            paid: true,
            lines: lines.clone(),
            placed_at: placed,
            updated_at: placed,
            invoiced: Some(if fulfilment.is_some() { lines.clone() } else { BTreeMap::new() }),
            fulfilments: fulfilment.into_iter().collect(),
        };
        // Drift 1: in ShipStation only (made by hand); drift 0: never reached it.
        let in_ledger = drift != 1;
        let in_shipstation = drift != 0;
        let ss_shipped = shipped || drift == 3 || drift == 4;
        let ss_order = in_shipstation.then(|| SsOrderView {
            ss_order_id,
            order_key: Some(key.clone()),
            order_number: erp_id.clone(),
            store_id: Some(1),
            status: if ss_shipped { "shipped".into() } else { "awaiting_shipment".into() },
            parent_id: None,
            merged_into: None,
            created_at: Some(pushed),
            ship_by: None,
        });
        // Drift 3: a label ShipStation has and the ERP never heard of.
        let label = (in_shipstation && ss_shipped).then(|| SsShipmentView {
            shipment_id: 50_000_000 + i as i64,
            ss_order_id,
            tracking_number: Some(tracking.clone()),
            carrier: "ups".into(),
            voided: false,
            created_at: Some(pushed + SignedDuration::from_hours(1)),
            voided_at: None,
            fulfillment: false,
        });
        let ledger = in_ledger.then(|| LedgerSide {
            erp_id: erp_id.clone(),
            number: erp_id.clone(),
            state: if !in_shipstation {
                "released".into()
            } else if ss_shipped {
                "shipped".into()
            } else {
                "pushed".into()
            },
            ss_order_id: in_shipstation.then_some(ss_order_id),
            pushed_at: in_shipstation.then_some(pushed),
        });
        Key { erp_id, key, ss_order_id, erp: in_ledger.then_some(erp), ledger, ss_order, label }
    }
}

/// Stage `keys` on every side; the rows written.
async fn stage(store: &dyn Store, pool: &sqlx::PgPool, keys: &[Key], now: Timestamp) -> anyhow::Result<u64> {
    let erp: Vec<StagedErpOrder> = keys
        .iter()
        .filter_map(|k| k.erp.clone().map(|view| StagedErpOrder { order_key: k.key.clone(), view }))
        .collect();
    let orders: Vec<StagedSsOrder> = keys
        .iter()
        .filter_map(|k| k.ss_order.clone().map(|view| StagedSsOrder { root_key: k.key.clone(), modified_at: now, view }))
        .collect();
    let labels: Vec<StagedSsShipment> = keys
        .iter()
        .filter_map(|k| k.label.clone().map(|view| StagedSsShipment { root_key: k.key.clone(), view }))
        .collect();
    store.stage_erp_orders(CONNECTION, &erp).await?;
    store.stage_ss_orders(CONNECTION, &orders).await?;
    store.stage_ss_shipments(CONNECTION, &labels).await?;
    // The ledger's orders, as the push flow leaves them (the columns the reconciler
    // reads; the snapshot is not judged).
    let ledger: Vec<(&Key, &LedgerSide)> = keys.iter().filter_map(|k| k.ledger.as_ref().map(|l| (k, l))).collect();
    if !ledger.is_empty() {
        let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "INSERT INTO orders (connection, erp_id, number, state, snapshot, snapshot_hash, erp_updated_at, order_key, ss_order_id, pushed_at, created_at, updated_at) ",
        );
        let at = now.as_millisecond();
        insert.push_values(&ledger, |mut row, (k, l)| {
            row.push_bind(CONNECTION)
                .push_bind(&k.erp_id)
                .push_bind(&l.number)
                .push_bind(&l.state)
                .push("'{}'::jsonb")
                .push_bind("")
                .push_bind(at)
                .push_bind(&k.key)
                .push_bind(l.ss_order_id.filter(|id| *id == k.ss_order_id))
                .push_bind(l.pushed_at.map(|t| t.as_millisecond()))
                .push_bind(at)
                .push_bind(at);
        });
        insert.build().execute(pool).await.context("staging the ledger's orders")?;
    }
    Ok((erp.len() + orders.len() + labels.len() + ledger.len()) as u64)
}

// ---------------------------------------------------------------------------------
// Part 2: requests per reconciled order.

struct HttpRun {
    keys: u64,
    requests: u64,
    erp_requests: u64,
    findings: BTreeMap<String, u64>,
}

impl HttpRun {
    fn json(&self) -> Value {
        json!({
            "keys": self.keys,
            "shipstation_requests": self.requests,
            "shipstation_requests_per_order": ratio(self.requests, self.keys).map(|r| round(r, 5)),
            "erp_requests": self.erp_requests,
            "erp_requests_per_order": ratio(self.erp_requests, self.keys).map(|r| round(r, 5)),
            "findings": self.findings,
        })
    }
}

struct Http {
    full: HttpRun,
    incremental: HttpRun,
    changed: usize,
}

async fn requests_per_order(args: &BenchArgs) -> anyhow::Result<Http> {
    // The orders were placed moments ago: no grace for a flow still carrying them
    // across (nothing is, once the push has drained).
    let no_grace = |p: &mut shipledger_engine::config::Policy| p.reconcile_grace = Duration::ZERO;
    let hooks = Hooks { ship_notify: false, track: false };
    let mut rig = Rig::start_at(args.seed, args.orders, hooks, (RAISED_PER_MINUTE, RAISED_PER_MINUTE), no_grace).await?;
    eprintln!("bench: reconcile: pushing {} orders to the sandbox ShipStation", args.orders);
    rig.run_engine();
    let drained = rig.drain_pushes(Duration::from_secs(args.drain_timeout)).await;
    rig.halt().await;
    let outcome = match drained {
        Ok(_) => Box::pin(measure_runs(&rig)).await,
        Err(e) => Err(e),
    };
    rig.stop().await;
    outcome
}

/// The two runs, in the sandboxes' time: the orders were pushed an hour before the
/// full run and one of them (a canary, on each side) was touched just before it; an
/// hour after it, 1 % are held in ShipStation. So the incremental run's windows hold
/// what changed since the full run (and the canary, inside their overlap), as a daily
/// run's would, not every order pushed minutes before.
async fn measure_runs(rig: &Rig) -> anyhow::Result<Http> {
    let engine = rig.engine.clone();
    let conn = &engine.connections[0];
    let http = reqwest::Client::new();
    let config = shipledger_sandbox::SandboxConfig::default();
    let ss = rig.shipstation.base_url();
    let erp = rig.erp.base_url();
    let post = async |url: String, body: Value, auth: bool| -> anyhow::Result<()> {
        let request = http.post(&url).json(&body);
        let request = if auth { request.basic_auth(&config.api_key, Some(&config.api_secret)) } else { request };
        let r = request.send().await?;
        if !r.status().is_success() {
            bail!("{url}: {} {}", r.status(), r.text().await.unwrap_or_default());
        }
        Ok(())
    };
    let advance_an_hour = async || -> anyhow::Result<()> {
        post(format!("{ss}/_sandbox/clock/advance"), json!({"seconds": 3600}), false).await?;
        post(format!("{erp}/_sandbox/clock/advance"), json!({"seconds": 3600}), false).await
    };
    let one = async |full: bool| -> anyhow::Result<HttpRun> {
        let before = rig.counts();
        let report = reconcile::run(&engine, conn, &ReconcileOptions { since: None, full }, &Quiet).await?;
        let used = rig.counts().since(before);
        Ok(HttpRun { keys: report.stats.keys, requests: used.total(), erp_requests: report.stats.erp_requests, findings: report.stats.findings })
    };
    let ids: Vec<i64> = rig.shipstation.read_world(|w| {
        let mut ids: Vec<i64> = w.orders.values().filter(|o| o.visible()).map(|o| o.order_id).collect();
        ids.sort_unstable();
        ids
    });
    let Some((&canary, rest)) = ids.split_first() else { bail!("no order reached ShipStation") };
    let canary_erp = rig
        .store
        .list_orders(shipledger_store::OrderFilter { connection: Some(CONNECTION.into()), ..Default::default() })
        .await?
        .into_iter()
        .find(|o| o.ss_order_id == Some(canary))
        .map(|o| o.erp_id)
        .context("the canary order is not in the ledger")?;

    advance_an_hour().await?;
    post(format!("{ss}/orders/holduntil"), json!({"orderId": canary, "holdUntilDate": "2099-01-01"}), true).await?;
    post(format!("{ss}/orders/restorefromhold"), json!({"orderId": canary}), true).await?;
    post(format!("{erp}/_sandbox/orders/{canary_erp}/touch"), json!({}), false).await?;
    eprintln!("bench: reconcile: a full run");
    let full = Box::pin(one(true)).await?;
    if !full.findings.is_empty() {
        bail!("the full run found drift where there is none: {:?}", full.findings);
    }

    // An hour later the warehouse has put 1 % of the orders on hold in ShipStation.
    advance_an_hour().await?;
    let changed: Vec<i64> = rest.iter().copied().step_by(1000 / CHANGED_PER_MILLE).collect();
    for id in &changed {
        post(format!("{ss}/orders/holduntil"), json!({"orderId": id, "holdUntilDate": "2099-01-01"}), true).await?;
    }
    eprintln!("bench: reconcile: {} orders held in ShipStation; an incremental run", changed.len());
    let incremental = Box::pin(one(false)).await?;
    let mismatches = incremental.findings.get("status_mismatch").copied().unwrap_or(0);
    if mismatches != changed.len() as u64 || incremental.findings.len() != 1 {
        bail!("the incremental run should find the {} held orders, and only them, as status mismatches; it found {:?}", changed.len(), incremental.findings);
    }
    Ok(Http { full, incremental, changed: changed.len() })
}
