//! An in-memory ERP, a sandbox ShipStation and an engine over a fresh SQLite store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use shipledger_core::clock::{Clock, ManualClock, SystemClock};
use shipledger_core::money::{Currency, Money};
use shipledger_core::order::{Address, ErpLine, ErpOrder, ErpOrderStatus, PaymentEvidence, PaymentState, Product};
use shipledger_core::release::GatePolicy;
use shipledger_core::weight::Weight;
use shipledger_engine::config::Policy;
use shipledger_engine::{Connection, Engine};
use shipledger_erp::{
    BoxFuture, Cursor, Erp, ErpError, FulfilmentRecord, FulfilmentState, FulfilmentWrite, FxQuote, JournalRecord,
    JournalWrite, StockAdjustment, StockLevel,
};
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::Store;

/// An ERP that keeps orders in memory and serves the change feed like a real one.
#[derive(Default)]
pub struct FakeErp {
    pub orders: Mutex<Vec<ErpOrder>>,
    pub products: Mutex<HashMap<String, Product>>,
    /// Fulfilment documents by our key, with every write in order.
    pub fulfilments: Mutex<Vec<FulfilmentRecord>>,
    pub fulfilment_writes: Mutex<Vec<FulfilmentWrite>>,
    /// Requests `orders` (read by id) would have made, at most 100 ids each.
    pub reads_by_id: Mutex<u64>,
    /// Orders whose products or address changed, for the next `orders_touched_since`.
    pub touched: Mutex<Vec<String>>,
    /// Refuse, like a real ERP, a new document whose lines go beyond what the order's
    /// other (not cancelled) documents leave of each line; off unless a story says so.
    pub checks_quantities: std::sync::atomic::AtomicBool,
    /// The writes refused, with why.
    pub refused: Mutex<Vec<(FulfilmentWrite, String)>>,
    /// Failures the next fulfilment writes meet, one per write, before any is recorded.
    pub write_failures: Mutex<std::collections::VecDeque<ErpError>>,
    /// While set, the order reads (the change feed, orders by id, what was touched,
    /// products) never answer, like an ERP whose searches hang; fulfilment writes and
    /// their read-backs still go through.
    pub reads_stalled: std::sync::atomic::AtomicBool,
    /// Order reads that met the stall (each still hangs).
    pub stalled_reads: std::sync::atomic::AtomicU64,
    /// How long each fulfilment write takes to answer once it has arrived (and been
    /// kept in `fulfilment_writes`): an ERP that is slow to write; none unless a story
    /// says so.
    pub write_delay: Mutex<std::time::Duration>,
    /// Writes that reach the ERP and are recorded there, whose answer is then lost
    /// (an `Unavailable` error, as when the connection drops after the ERP committed);
    /// none unless a story says so.
    pub answers_lost: std::sync::atomic::AtomicU32,
    /// Fulfilment reads (a write's read-back, say) that fail, `Unavailable`, before
    /// reads answer again; none unless a story says so.
    pub read_failures: std::sync::atomic::AtomicU32,
    /// While a story holds this lock, a fulfilment write that has arrived (and been
    /// kept in `fulfilment_writes`) waits before the ERP records and answers it: a
    /// write in flight for as long as the story says.
    pub write_gate: tokio::sync::Mutex<()>,
    /// The rate table, Tryton's way (units of a currency per 1 GBP, from a date on).
    /// `None`: a fresh rate every day (USD 1.25, EUR 1.17), dated the day asked for.
    pub fx_rates: Mutex<Option<Vec<(Currency, jiff::civil::Date, rust_decimal::Decimal)>>>,
    /// Invoicing a story sets by hand, per order (quantity per line); an order not
    /// named is invoiced on shipment: what its completed fulfilments carry.
    pub invoiced: Mutex<HashMap<String, std::collections::BTreeMap<String, u32>>>,
    /// The journals posted, in order, each once by its key (every period is open).
    pub journals: Mutex<Vec<JournalRecord>>,
    tick: Mutex<i64>,
}

impl FakeErp {
    pub fn new() -> Arc<FakeErp> {
        let erp = FakeErp::default();
        for (sku, grams) in [("MUG", Some(350)), ("TEA", Some(250)), ("BOX", None), ("CARD", Some(0))] {
            erp.products.lock().unwrap().insert(
                sku.into(),
                Product { sku: sku.into(), name: sku.into(), unit_weight: grams.map(Weight::from_grams), active: true },
            );
        }
        Arc::new(erp)
    }

    /// Hang for ever while reads are stalled.
    async fn read_gate(&self) {
        use std::sync::atomic::Ordering;
        if self.reads_stalled.load(Ordering::SeqCst) {
            self.stalled_reads.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    }

    fn stamp(&self) -> Timestamp {
        let mut t = self.tick.lock().unwrap();
        *t += 1;
        Timestamp::from_second(1_790_000_000).unwrap() + SignedDuration::from_millis(*t)
    }

    /// Add or replace an order; its `updated_at` moves on.
    pub fn put(&self, mut order: ErpOrder) {
        order.updated_at = self.stamp();
        let mut orders = self.orders.lock().unwrap();
        orders.retain(|o| o.erp_id != order.erp_id);
        orders.push(order);
    }

    /// Change an order behind the change feed's back (its `updated_at` stays), as
    /// when the ERP changes something the feed does not follow.
    pub fn edit_quietly(&self, erp_id: &str, f: impl FnOnce(&mut ErpOrder)) {
        let mut orders = self.orders.lock().unwrap();
        f(orders.iter_mut().find(|o| o.erp_id == erp_id).expect("order exists"));
    }

    /// Change an order in place; its `updated_at` moves on.
    pub fn edit(&self, erp_id: &str, f: impl FnOnce(&mut ErpOrder)) {
        let stamp = self.stamp();
        let mut orders = self.orders.lock().unwrap();
        let order = orders.iter_mut().find(|o| o.erp_id == erp_id).expect("order exists");
        f(order);
        order.updated_at = stamp;
    }

    /// One write as the ERP takes it: one document per key, packed → completed, and a
    /// completed fulfilment cannot be completed again or cancelled.
    fn record(&self, w: &FulfilmentWrite) -> Result<FulfilmentRecord, ErpError> {
        let mut docs = self.fulfilments.lock().unwrap();
        let refuse = |m: &str| {
            self.refused.lock().unwrap().push((w.clone(), m.to_string()));
            Err(ErpError::Refused { what: format!("fulfilment {}", w.key), message: m.into() })
        };
        let stamp = Timestamp::now();
        if let Some(doc) = docs.iter_mut().find(|d| d.key == w.key) {
            match (doc.state, w.state) {
                (FulfilmentState::Completed, FulfilmentState::Completed) => return refuse("already completed"),
                (FulfilmentState::Completed, FulfilmentState::Cancelled) => return refuse("a completed fulfilment cannot be cancelled"),
                (FulfilmentState::Cancelled, _) => return refuse("cancelled"),
                (a, b) if a == b => return Ok(doc.clone()),
                _ => {
                    doc.state = w.state;
                    doc.packages = w.packages.clone();
                    doc.updated_at = stamp;
                    return Ok(doc.clone());
                }
            }
        }
        if self.checks_quantities.load(std::sync::atomic::Ordering::SeqCst) {
            let orders = self.orders.lock().unwrap();
            let order = orders.iter().find(|o| o.erp_id == w.erp_order_id).expect("the order exists");
            for (line, q) in &w.lines {
                let ordered = order.lines.iter().find(|l| &l.line_id == line).map_or(0, |l| i64::from(l.quantity));
                let taken: i64 = docs
                    .iter()
                    .filter(|d| d.erp_order_id == w.erp_order_id && d.state != FulfilmentState::Cancelled)
                    .flat_map(|d| d.lines.iter().filter(|(l, _)| l == line).map(|(_, q)| i64::from(*q)))
                    .sum();
                if taken + i64::from(*q) > ordered {
                    drop(orders);
                    return refuse(&format!("line {line} is for {ordered} and {taken} are already on other fulfilments"));
                }
            }
        }
        let doc = FulfilmentRecord {
            id: format!("FUL-{}", docs.len() + 1),
            key: w.key.clone(),
            erp_order_id: w.erp_order_id.clone(),
            state: w.state,
            lines: w.lines.clone(),
            packages: w.packages.clone(),
            updated_at: stamp,
        };
        docs.push(doc.clone());
        Ok(doc)
    }
}

/// Take one from a story's count, if any is left.
fn take_one(count: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering;
    count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

fn unused<T>() -> BoxFuture<'static, Result<T, ErpError>> {
    Box::pin(async { Err(ErpError::Refused { what: "this call".into(), message: "not part of this fake".into() }) })
}

impl Erp for FakeErp {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn changed_orders<'a>(&'a self, since: Option<&'a Cursor>, limit: u32) -> BoxFuture<'a, Result<Vec<ErpOrder>, ErpError>> {
        Box::pin(async move {
            self.read_gate().await;
            let mut orders: Vec<ErpOrder> = self
                .orders
                .lock()
                .unwrap()
                .iter()
                .filter(|o| since.is_none_or(|c| (o.updated_at, o.erp_id.as_str()) > (c.updated_at, c.erp_id.as_str())))
                .cloned()
                .collect();
            orders.sort_by(|a, b| (a.updated_at, &a.erp_id).cmp(&(b.updated_at, &b.erp_id)));
            orders.truncate(limit as usize);
            Ok(orders)
        })
    }

    fn orders<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Vec<ErpOrder>, ErpError>> {
        Box::pin(async move {
            self.read_gate().await;
            *self.reads_by_id.lock().unwrap() += erp_ids.len().div_ceil(shipledger_erp::ORDERS_PER_READ) as u64;
            let orders = self.orders.lock().unwrap();
            Ok(erp_ids.iter().filter_map(|id| orders.iter().find(|o| &o.erp_id == id).cloned()).collect())
        })
    }

    fn orders_touched_since<'a>(&'a self, _since: Timestamp) -> BoxFuture<'a, Result<Vec<String>, ErpError>> {
        Box::pin(async move {
            self.read_gate().await;
            Ok(std::mem::take(&mut *self.touched.lock().unwrap()))
        })
    }

    fn products<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<Product>, ErpError>> {
        Box::pin(async move {
            self.read_gate().await;
            let products = self.products.lock().unwrap();
            Ok(skus.iter().filter_map(|s| products.get(s).cloned()).collect())
        })
    }

    /// Like a real ERP ([`FakeErp::record`]), once the story's delay, gate and
    /// failures have had their say.
    fn record_fulfilment<'a>(&'a self, w: &'a FulfilmentWrite) -> BoxFuture<'a, Result<FulfilmentRecord, ErpError>> {
        Box::pin(async move {
            self.fulfilment_writes.lock().unwrap().push(w.clone());
            let delay = *self.write_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            drop(self.write_gate.lock().await);
            if let Some(failure) = self.write_failures.lock().unwrap().pop_front() {
                return Err(failure);
            }
            let answer = self.record(w);
            if answer.is_ok() && take_one(&self.answers_lost) {
                return Err(ErpError::Unavailable { url: "fake://erp".into(), detail: "the connection dropped before the answer came".into() });
            }
            answer
        })
    }
    fn fulfilments<'a>(&'a self, erp_order_id: &'a str) -> BoxFuture<'a, Result<Vec<FulfilmentRecord>, ErpError>> {
        Box::pin(async move {
            if take_one(&self.read_failures) {
                return Err(ErpError::Unavailable { url: "fake://erp".into(), detail: "the read timed out".into() });
            }
            Ok(self.fulfilments.lock().unwrap().iter().filter(|d| d.erp_order_id == erp_order_id).cloned().collect())
        })
    }
    fn base_currency(&self) -> BoxFuture<'_, Result<Currency, ErpError>> {
        Box::pin(async { Ok(Currency::GBP) })
    }
    fn fx_quote<'a>(&'a self, from: Currency, to: Currency, date: jiff::civil::Date) -> BoxFuture<'a, Result<Option<FxQuote>, ErpError>> {
        Box::pin(async move {
            let rate_of = |c: Currency| -> Option<(rust_decimal::Decimal, jiff::civil::Date)> {
                if c == Currency::GBP {
                    return Some((rust_decimal::Decimal::ONE, date));
                }
                match &*self.fx_rates.lock().unwrap() {
                    None => match c {
                        Currency::USD => Some((rust_decimal::Decimal::new(125, 2), date)),
                        Currency::EUR => Some((rust_decimal::Decimal::new(117, 2), date)),
                        _ => None,
                    },
                    Some(table) => table.iter().filter(|(cur, d, _)| *cur == c && *d <= date).max_by_key(|(_, d, _)| *d).map(|(_, d, r)| (*r, *d)),
                }
            };
            let (Some(f), Some(t)) = (rate_of(from), rate_of(to)) else { return Ok(None) };
            let dated = [(from, f.1), (to, t.1)].into_iter().filter(|(c, _)| *c != Currency::GBP).map(|(_, d)| d).min().unwrap_or(date);
            Ok(Some(FxQuote { from, to, rate_from: f.0, rate_to: t.0, date: dated, source: format!("fake:{from}+{to}") }))
        })
    }
    fn invoiced<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Option<shipledger_erp::Invoiced>, ErpError>> {
        Box::pin(async move {
            let set = self.invoiced.lock().unwrap();
            let docs = self.fulfilments.lock().unwrap();
            let mut out = shipledger_erp::Invoiced::new();
            for id in erp_ids {
                let lines = set.get(id).cloned().unwrap_or_else(|| {
                    let mut lines = std::collections::BTreeMap::new();
                    for d in docs.iter().filter(|d| &d.erp_order_id == id && d.state == FulfilmentState::Completed) {
                        for (line, qty) in &d.lines {
                            *lines.entry(line.clone()).or_insert(0) += qty;
                        }
                    }
                    lines
                });
                out.insert(id.clone(), lines);
            }
            Ok(Some(out))
        })
    }
    /// Posted as written, once per key (posting a key again answers the move it has).
    fn post_journal<'a>(&'a self, journal: &'a JournalWrite) -> BoxFuture<'a, Result<JournalRecord, ErpError>> {
        Box::pin(async move {
            let mut journals = self.journals.lock().unwrap();
            if let Some(had) = journals.iter().find(|j| j.key == journal.key) {
                return Ok(had.clone());
            }
            let record = JournalRecord { id: format!("MOVE-{}", journals.len() + 1), key: journal.key.clone(), date: journal.date, posted: true, lines: journal.lines.clone() };
            journals.push(record.clone());
            Ok(record)
        })
    }
    fn period_state<'a>(&'a self, _: jiff::civil::Date) -> BoxFuture<'a, Result<shipledger_core::journal::PeriodState, ErpError>> {
        Box::pin(async { Ok(shipledger_core::journal::PeriodState::Open) })
    }
    fn stock<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<StockLevel, ErpError>> {
        unused()
    }
    fn adjust_stock<'a>(&'a self, _: &'a StockAdjustment) -> BoxFuture<'a, Result<StockLevel, ErpError>> {
        unused()
    }
}

fn gbp(minor: i64) -> Money {
    Money::from_minor(minor, Currency::GBP)
}

/// A paid, complete two-line order.
pub fn paid_order(erp_id: &str) -> ErpOrder {
    ErpOrder {
        erp_id: erp_id.into(),
        number: erp_id.into(),
        status: ErpOrderStatus::Open,
        status_reason: None,
        currency: "GBP".into(),
        placed_at: Timestamp::from_second(1_790_000_000).unwrap(),
        updated_at: Timestamp::UNIX_EPOCH,
        customer_email: Some("ada@example.com".into()),
        ship_to: Address {
            name: Some("Ada Lovelace".into()),
            street1: Some("12 St James's Sq".into()),
            city: Some("London".into()),
            postal_code: Some("SW1Y 4JH".into()),
            country: Some("GB".into()),
            ..Address::default()
        },
        bill_to: None,
        lines: vec![
            ErpLine {
                line_id: format!("{erp_id}-1"),
                sku: Some("MUG".into()),
                name: "Blue mug".into(),
                quantity: 2,
                unit_price: gbp(1250),
                unit_weight: None,
                physical: true,
            },
            ErpLine {
                line_id: format!("{erp_id}-2"),
                sku: Some("TEA".into()),
                name: "Earl Grey".into(),
                quantity: 1,
                unit_price: gbp(2000),
                unit_weight: Some(Weight::from_grams(260)),
                physical: true,
            },
        ],
        shipping_paid: Some(gbp(495)),
        tax_paid: None,
        payment: PaymentEvidence {
            state: PaymentState::Captured,
            source: format!("payment:PAY-{erp_id}"),
            amount: gbp(4995),
            at: Some(Timestamp::from_second(1_790_000_100).unwrap()),
        },
        requested_service: None,
        customer_reference: None,
    }
}

/// Which store a story runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one story: a file on SQLite, a new database on PostgreSQL
/// (dropped when the story ends). `None` when PostgreSQL is not configured (outside CI).
pub struct TestDb {
    pub url: String,
    drop_pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: format!("sqlite://{}", dir.path().join("store.db").display()),
                drop_pg: None,
                _dir: dir,
            }),
            Backend::Postgres => {
                let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
                    assert!(std::env::var("CI").is_err(), "CI must set TEST_DATABASE_URL");
                    eprintln!("SKIPPED: TEST_DATABASE_URL is not set; this PostgreSQL story did not run");
                    return None;
                };
                let name = format!("shipledger_engine_{}", rand::random::<u32>());
                psql(&admin, &format!("CREATE DATABASE {name}"));
                let (base, _) = admin.rsplit_once('/').expect("TEST_DATABASE_URL names a database");
                Some(TestDb { url: format!("{base}/{name}"), drop_pg: Some((admin, name)), _dir: dir })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.drop_pg {
            psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

fn psql(admin: &str, sql: &str) {
    let out = std::process::Command::new("psql")
        .arg(admin)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Stamp a story once per store backend: `stories! { fn name(w: World) { ... } }`.
#[macro_export]
macro_rules! stories {
    ($(async fn $name:ident($w:ident: World) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                #[allow(unused_mut)]
                async fn $name() {
                    let mut $w = $crate::helpers::World::on($crate::helpers::Backend::Sqlite).await.expect("sqlite always runs");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                #[allow(unused_mut)]
                async fn $name() {
                    let Some(mut $w) = $crate::helpers::World::on($crate::helpers::Backend::Postgres).await else { return };
                    $body
                }
            )*
        }
    };
}

pub struct World {
    pub erp: Arc<FakeErp>,
    pub sandbox: SandboxHandle,
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub http: reqwest::Client,
    _db: TestDb,
}

impl World {
    /// A world whose ShipStation allows plenty of requests, so stories need not wait
    /// for rate windows, and whose engine polls shipments on every pass.
    pub async fn on(backend: Backend) -> Option<World> {
        let db = TestDb::new(backend)?;
        Some(World::with(SandboxConfig { rate_limit: 1_000, ..SandboxConfig::default() }, db).await)
    }

    pub async fn with(config: SandboxConfig, db: TestDb) -> World {
        let (key, secret) = (config.api_key.clone(), config.api_secret.clone());
        let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let store = shipledger_store::open(&db.url).await.unwrap();
        let erp = FakeErp::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let connection = acme_connection(&sandbox, (key, secret), erp.clone(), store.clone());
        let engine = Engine::new(store.clone(), clock, vec![connection]);
        engine.prepare().await.unwrap();
        World { erp, sandbox, store, engine, http: reqwest::Client::new(), _db: db }
    }

    /// Another engine on the same store, ERP and ShipStation, as another `serve`
    /// process would be: its own store connections, its own worker name, the given
    /// clock, the same policy as the world's engine.
    pub async fn another_engine(&self, clock: Arc<dyn Clock>) -> Engine {
        let store = shipledger_store::open(&self.store_url()).await.unwrap();
        let credentials = ("sandbox-key".to_string(), "sandbox-secret".to_string());
        let mut connection = acme_connection(&self.sandbox, credentials, self.erp.clone(), store.clone());
        connection.policy = self.engine.connections[0].policy.clone();
        Engine::new(store, clock, vec![connection])
    }
}

/// The `acme-uk` connection to the sandbox ShipStation and `erp`, its v1 budget kept
/// in `store`.
fn acme_connection(sandbox: &SandboxHandle, (key, secret): (String, String), erp: Arc<FakeErp>, store: Arc<dyn Store>) -> Connection {
    let mut client_config = ClientConfig::v1(sandbox.base_url().parse().unwrap(), key, secret);
    client_config.backoff_base = std::time::Duration::from_millis(50);
    client_config.backoff_max = std::time::Duration::from_millis(500);
    // The ShipStation client and its budget keep real time: the sandbox they talk
    // to keeps its own (real time plus whatever a story advances it by), and a
    // story's manual clock moves only shipledger's decisions (see `manual_clock`).
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let budget = Arc::new(shipledger_engine::budget::StoreRateBudget::new(store.clone(), clock.clone(), 0));
    let shipstation = V1Client::with_budget(client_config, budget, clock.clone()).unwrap();
    Connection {
        name: "acme-uk".into(),
        erp: erp.clone(),
        shipstation,
        shipstation_v2: Some(
            shipledger_shipstation::V2Client::new(ClientConfig::v2(sandbox.base_url().parse().unwrap(), "sandbox-v2-key"))
                .unwrap(),
        ),
        account_currency: shipledger_core::Currency::USD,
        policy: Policy {
            max_push_attempts: 4,
            // Poll ShipStation on every pass: these stories are about what a poll
            // finds, not when it is due, and `settle` runs on real time. The story
            // of the interval itself sets the default back and moves a manual clock
            // past it (shipments.rs: a label made again before the old one's void
            // is seen).
            shipment_poll_interval: std::time::Duration::ZERO,
            // The scheduled reconciler stays out of stories about other flows (its
            // reads would count in theirs); its own stories turn it on.
            reconcile_interval: None,
            ..Policy::default()
        },
        gate: GatePolicy::default(),
        store_id: None,
        store_ids: Vec::new(),
        accounts: None,
    }
}

impl World {
    /// From now on the engine's time moves only when the returned clock is advanced
    /// (it starts at the real time, so ShipStation's answers stay recent). Call it
    /// first in a story: it starts a new engine, which has polled nothing yet.
    pub fn manual_clock(&mut self) -> Arc<ManualClock> {
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let connections = std::mem::take(&mut self.engine.connections);
        self.engine = Engine::new(self.store.clone(), clock.clone(), connections);
        clock
    }

    /// The URL of the store the story runs on.
    pub fn store_url(&self) -> String {
        self._db.url.clone()
    }

    /// Tick until nothing is runnable (bounded). The tick's future is boxed: a debug
    /// build's is large, and a story awaiting many settles in one function would
    /// otherwise hold a copy of it per await in its own frame.
    pub async fn settle(&self) {
        for _ in 0..50 {
            let report = Box::pin(self.engine.tick()).await.expect("tick");
            if !report.busy() {
                return;
            }
        }
        panic!("the engine did not settle in 50 ticks");
    }

    pub async fn stats(&self) -> Value {
        self.http.get(format!("{}/_sandbox/stats", self.sandbox.base_url())).send().await.unwrap().json().await.unwrap()
    }

    pub async fn ss_orders(&self, number: &str) -> Vec<Value> {
        let page: Value = self
            .http
            .get(format!("{}/orders?orderNumber={number}&pageSize=500", self.sandbox.base_url()))
            .basic_auth("sandbox-key", Some("sandbox-secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["orders"].as_array().unwrap().iter().filter(|o| o["orderNumber"] == number).cloned().collect()
    }

    /// Time passes for both systems: shipledger's manual `clock` and the sandbox
    /// ShipStation's own virtual clock move forward by `by`.
    pub async fn pass(&self, clock: &ManualClock, by: SignedDuration) {
        clock.advance(by);
        self.control("/clock/advance", serde_json::json!({"seconds": by.as_secs()})).await;
    }

    /// POST to the sandbox's control API.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self.http.post(format!("{}/_sandbox{path}", self.sandbox.base_url())).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "control {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// The ERP's fulfilment documents of an order.
    pub fn erp_fulfilments(&self, erp_id: &str) -> Vec<FulfilmentRecord> {
        self.erp.fulfilments.lock().unwrap().iter().filter(|d| d.erp_order_id == erp_id).cloned().collect()
    }

    pub async fn put_faults(&self, faults: Value) {
        let r = self.http.put(format!("{}/_sandbox/faults", self.sandbox.base_url())).json(&faults).send().await.unwrap();
        assert!(r.status().is_success());
    }
}
