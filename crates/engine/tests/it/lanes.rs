//! Lanes keep one wait from holding up the rest: with brand A's ERP hanging on its
//! reads, or A's ShipStation v1 budget spent, brand B's write-backs and A's own ERP
//! writes still happen; each lane's one step does one unit of its own work and says
//! when it has nothing to do; stopping the engine gives back what it held.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, SystemClock};
use shipledger_core::release::GatePolicy;
use shipledger_engine::config::Policy;
use shipledger_engine::lanes::{Lane, LaneLimits, Step};
use shipledger_engine::schedule::Scheduled;
use shipledger_engine::{Connection, Engine};
use shipledger_erp::FulfilmentState;
use shipledger_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::{IngestV1Webhook, JobFilter, JobKind, JobState, NewJob, Store};
use tokio::sync::watch;

use crate::helpers::{Backend, FakeErp, TestDb, paid_order};

/// One brand: its own ERP and its own ShipStation account.
struct Brand {
    name: &'static str,
    erp: Arc<FakeErp>,
    sandbox: SandboxHandle,
    /// The key the account's v1 rate budget is kept under in the store.
    budget_key: String,
}

/// Two brands on one engine and one store.
struct Brands {
    a: Brand,
    b: Brand,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    http: reqwest::Client,
    _db: TestDb,
}

impl Brands {
    async fn on(backend: Backend) -> Option<Brands> {
        Brands::with_limits(backend, LaneLimits::default()).await
    }

    /// Two brands on an engine that runs at most `limits` steps of each lane kind at
    /// once across both.
    async fn with_limits(backend: Backend, limits: LaneLimits) -> Option<Brands> {
        let db = TestDb::new(backend)?;
        let store = shipledger_store::open(&db.url).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut brands = Vec::new();
        let mut connections = Vec::new();
        for name in ["brand-a", "brand-b"] {
            let (key, secret) = (format!("{name}-key"), format!("{name}-secret"));
            let config = SandboxConfig { api_key: key.clone(), api_secret: secret.clone(), rate_limit: 1_000, ..SandboxConfig::default() };
            let sandbox = Sandbox::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
            let mut client_config = ClientConfig::v1(sandbox.base_url().parse().unwrap(), key, secret);
            client_config.backoff_base = Duration::from_millis(50);
            client_config.backoff_max = Duration::from_millis(500);
            let budget_key = client_config.budget_key("v1");
            let budget = Arc::new(shipledger_engine::budget::StoreRateBudget::new(store.clone(), clock.clone(), 0));
            let erp = FakeErp::new();
            connections.push(Connection {
                name: name.into(),
                erp: erp.clone(),
                shipstation: V1Client::with_budget(client_config, budget, clock.clone()).unwrap(),
                shipstation_v2: None,
                account_currency: shipledger_core::Currency::USD,
                // ShipStation is polled every second: the engine runs on real time here.
                policy: Policy { shipment_poll_interval: Duration::from_secs(1), ..Policy::default() },
                gate: GatePolicy::default(),
                store_id: None,
                store_ids: Vec::new(),
                accounts: None,
            });
            brands.push(Brand { name, erp, sandbox, budget_key });
        }
        let mut engine = Engine::new(store.clone(), clock, connections);
        engine.lane_limits = limits;
        engine.prepare().await.unwrap();
        let b = brands.pop().unwrap();
        let a = brands.pop().unwrap();
        Some(Brands { a, b, store, engine: Arc::new(engine), http: reqwest::Client::new(), _db: db })
    }

    fn conn(&self, brand: &Brand) -> &Connection {
        self.engine.connections.iter().find(|c| c.name == brand.name).unwrap()
    }

    /// Tick until nothing is runnable (bounded).
    async fn settle(&self) {
        for _ in 0..50 {
            if !self.engine.tick().await.expect("tick").busy() {
                return;
            }
        }
        panic!("the engine did not settle in 50 ticks");
    }

    /// Each brand's order pushed to its ShipStation and labelled there; returns each
    /// label's tracking number.
    async fn labelled(&self, a_order: &str, b_order: &str) {
        self.a.erp.put(paid_order(a_order));
        self.b.erp.put(paid_order(b_order));
        self.settle().await;
        for (brand, order) in [(&self.a, a_order), (&self.b, b_order)] {
            let id = self.store.get_order(brand.name, order).await.unwrap().unwrap().ss_order_id.expect("pushed");
            control(&self.http, &brand.sandbox, &format!("/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
        }
    }

    /// Run the engine until `done` holds (checked every 50 ms, for at most a minute),
    /// then stop it and wait for its drain.
    async fn run_until(&self, what: &str, mut done: impl AsyncFnMut() -> bool) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let running = tokio::spawn(self.engine.clone().run(stop_rx));
        let mut reached = false;
        for _ in 0..1_200 {
            if done().await {
                reached = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(true).unwrap();
        running.await.expect("the engine's run ends without a panic");
        assert!(reached, "the engine never got to: {what}");
    }

    fn packed(brand: &Brand, order: &str) -> bool {
        brand.erp.fulfilments.lock().unwrap().iter().any(|d| d.erp_order_id == order && d.state == FulfilmentState::Packed)
    }

    async fn running_jobs(&self) -> Vec<shipledger_store::Job> {
        self.store.list_jobs(JobFilter { state: Some(JobState::Running), ..Default::default() }).await.unwrap()
    }
}

async fn control(http: &reqwest::Client, sandbox: &SandboxHandle, path: &str, body: Value) -> Value {
    let r = http.post(format!("{}/_sandbox{path}", sandbox.base_url())).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "control {path}: {}", r.status());
    r.json().await.unwrap()
}

async fn orders_in_shipstation(http: &reqwest::Client, brand: &Brand) -> u64 {
    let stats: Value = http.get(format!("{}/_sandbox/stats", brand.sandbox.base_url())).send().await.unwrap().json().await.unwrap();
    stats["orders"].as_u64().unwrap()
}

macro_rules! brand_stories {
    ($(async fn $name:ident($w:ident: Brands) $body:block)*) => {
        mod sqlite_brands {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $w = Brands::on(Backend::Sqlite).await.expect("sqlite always runs");
                    $body
                }
            )*
        }
        mod postgres_brands {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($w) = Brands::on(Backend::Postgres).await else { return };
                    $body
                }
            )*
        }
    };
}

brand_stories! {
    async fn with_brand_as_erp_hanging_on_reads_both_brands_labels_are_still_written_back(w: Brands) {
        w.labelled("A-1", "B-1").await;
        // A's ERP stops answering order reads, and A's ERP poll is due at once: A's
        // read lane goes into a read that never returns.
        w.a.erp.reads_stalled.store(true, Ordering::SeqCst);
        w.engine.hasten_schedule(w.conn(&w.a), Scheduled::ErpPoll, w.engine.clock.now()).await.unwrap();

        let (a, b) = (&w.a, &w.b);
        w.run_until("both labels packed in their ERPs", async || Brands::packed(a, "A-1") && Brands::packed(b, "B-1")).await;

        assert!(w.a.erp.stalled_reads.load(Ordering::SeqCst) >= 1, "A's ERP read was under way (and hung) meanwhile");
        // The hung poll was cancelled by the drain and its lease given back: it can be
        // taken again at once, and no job is left leased to the stopped engine.
        let again = w.engine.take_schedule(w.conn(&w.a), Scheduled::ErpPoll, true).await.unwrap();
        assert!(again.is_some(), "the drain gave the hung ERP poll back");
        assert!(w.running_jobs().await.is_empty(), "no job is left leased to the stopped engine");
        // B's ERP was read and written as usual; each brand got exactly its own label.
        assert_eq!(w.a.erp.fulfilments.lock().unwrap().len(), 1);
        assert_eq!(w.b.erp.fulfilments.lock().unwrap().len(), 1);
    }

    async fn with_brand_as_v1_budget_spent_its_erp_write_backs_and_brand_bs_still_go_through(w: Brands) {
        w.labelled("A-1", "B-1").await;
        // A's shipment poll sees the label and plans its write-back (A's ERP writes
        // lane has not run yet).
        let conn_a = w.conn(&w.a);
        w.engine.hasten_schedule(conn_a, Scheduled::ShipmentPoll, w.engine.clock.now()).await.unwrap();
        let mut found = 0;
        for _ in 0..5 {
            if let Step::Worked(report) = w.engine.try_execute_one(conn_a, Lane::ShipStationV1).await.unwrap() {
                found += report.shipments.new;
            }
        }
        assert_eq!(found, 1, "A's label was found by its shipment poll");
        assert!(!Brands::packed(&w.a, "A-1"), "not written back yet");

        // A new order for A, and A's v1 budget spent for the next 90 s: A's v1 lane
        // waits in its budget (push and shipment poll alike).
        w.a.erp.put(paid_order("A-2"));
        let now = w.engine.clock.now();
        w.engine.hasten_schedule(conn_a, Scheduled::ErpPoll, now).await.unwrap();
        w.store.rate_observe(&w.a.budget_key, 40, 0, now + SignedDuration::from_secs(90), now).await.unwrap();
        let before = orders_in_shipstation(&w.http, &w.a).await;

        let (a, b, store) = (&w.a, &w.b, &w.store);
        w.run_until("A's and B's labels packed and A-2 released", async || {
            let released = store.get_order("brand-a", "A-2").await.unwrap().is_some_and(|o| o.state == shipledger_store::OrderState::Released);
            Brands::packed(a, "A-1") && Brands::packed(b, "B-1") && released
        })
        .await;

        // All that while A's v1 lane was held by its budget: A-2 never reached
        // ShipStation, and its push is still planned, not lost.
        assert_eq!(orders_in_shipstation(&w.http, &w.a).await, before, "A's v1 budget was spent: nothing was pushed");
        let pending = w
            .store
            .list_jobs(JobFilter { connection: Some("brand-a".into()), kind: Some(JobKind::SyncOrder), state: Some(JobState::Pending), limit: 0 })
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "A-2's push waits for A's budget");
        assert!(w.running_jobs().await.is_empty(), "no job is left leased to the stopped engine");
    }
}

/// One v1 step at a time across both brands (`[lanes] shipstation_v1 = 1`), and
/// brand A's v1 budget spent for 100 s while A's shipment poll is due: A's step waits
/// in its budget, but it lends the v1 permit back while it sleeps, so brand B (its own
/// account, its own budget) still polls its shipments — B-1's label is written back —
/// and pushes B-2, one v1 step after another.
async fn a_brand_waiting_for_its_spent_v1_budget_does_not_keep_the_other_brand_from_shipstation(backend: Backend) {
    let limits = LaneLimits { shipstation_v1: 1, ..LaneLimits::default() };
    let Some(w) = Brands::with_limits(backend, limits).await else { return };
    w.labelled("A-1", "B-1").await;
    let now = w.engine.clock.now();
    w.store.rate_observe(&w.a.budget_key, 40, 0, now + SignedDuration::from_secs(100), now).await.unwrap();
    w.engine.hasten_schedule(w.conn(&w.a), Scheduled::ShipmentPoll, now).await.unwrap();
    // B's new order is released by B's next ERP poll, then needs its own v1 step.
    w.b.erp.put(paid_order("B-2"));
    w.engine.hasten_schedule(w.conn(&w.b), Scheduled::ErpPoll, now).await.unwrap();
    let (a_before, b_before) = (orders_in_shipstation(&w.http, &w.a).await, orders_in_shipstation(&w.http, &w.b).await);

    let (b, http) = (&w.b, &w.http);
    w.run_until("B-1 written back and B-2 in B's ShipStation", async || {
        Brands::packed(b, "B-1") && orders_in_shipstation(http, b).await == b_before + 1
    })
    .await;

    // A waited in its budget all along: its label was never polled, so never written
    // back, and nothing reached A's ShipStation.
    assert!(!Brands::packed(&w.a, "A-1"), "A's shipment poll waits for A's budget");
    assert_eq!(orders_in_shipstation(&w.http, &w.a).await, a_before);
    let b2 = w.store.get_order("brand-b", "B-2").await.unwrap().expect("B-2 was released");
    assert!(b2.ss_order_id.is_some(), "B-2's push was recorded: {b2:?}");
    assert!(w.running_jobs().await.is_empty(), "no job is left leased to the stopped engine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_brand_waiting_for_its_spent_v1_budget_does_not_keep_the_other_brand_from_shipstation() {
    a_brand_waiting_for_its_spent_v1_budget_does_not_keep_the_other_brand_from_shipstation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_brand_waiting_for_its_spent_v1_budget_does_not_keep_the_other_brand_from_shipstation() {
    a_brand_waiting_for_its_spent_v1_budget_does_not_keep_the_other_brand_from_shipstation(Backend::Postgres).await;
}

crate::stories! {
    async fn each_lanes_step_does_one_unit_of_its_own_work_and_says_when_it_is_idle(w: World) {
        // ShipStation is polled at its usual interval, so a poll that ran is not due again.
        w.engine.connections[0].policy.shipment_poll_interval = Policy::default().shipment_poll_interval;
        let conn = &w.engine.connections[0];
        w.erp.put(paid_order("SO-1"));

        // The ERP reads: the poll releases the order (and plans its push, which is
        // not this lane's); then the recheck and follow, the converter and the cost
        // batches; then nothing is due until the next poll.
        let Step::Worked(first) = w.engine.try_execute_one(conn, Lane::ErpReads).await.unwrap() else { panic!("the poll was due") };
        assert_eq!((first.poll.seen, first.poll.released), (1, 1));
        assert_eq!(first.push.requests, 0);
        let next_due = idle_after(&w.engine, conn, Lane::ErpReads, 4).await;
        assert!(next_due.expect("the poll is scheduled") > w.engine.clock.now(), "the next poll is in the future");
        assert!(w.ss_orders("SO-1").await.is_empty(), "reading the ERP pushed nothing");

        // The v1 lane: the shipment poll (never ran), then the push; then idle until
        // the next shipment poll.
        let mut pushed = 0;
        for _ in 0..2 {
            let Step::Worked(r) = w.engine.try_execute_one(conn, Lane::ShipStationV1).await.unwrap() else { panic!("v1 work was due") };
            pushed += r.push.pushed;
        }
        assert_eq!(pushed, 1);
        assert_eq!(w.ss_orders("SO-1").await.len(), 1);
        assert!(idle_after(&w.engine, conn, Lane::ShipStationV1, 0).await.is_some_and(|due| due > w.engine.clock.now()));

        // The ERP writes: nothing planned yet, and no schedule of its own.
        assert_eq!(w.engine.try_execute_one(conn, Lane::ErpWrites).await.unwrap(), Step::Idle { next_due: None });
        // A label: the v1 lane's poll (hastened, as a webhook would) plans the
        // write-back, and the ERP writes lane does it in one step.
        let id = w.store.get_order("acme-uk", "SO-1").await.unwrap().unwrap().ss_order_id.unwrap();
        w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.engine.hasten_schedule(conn, Scheduled::ShipmentPoll, w.engine.clock.now()).await.unwrap();
        let Step::Worked(r) = w.engine.try_execute_one(conn, Lane::ShipStationV1).await.unwrap() else { panic!("the poll was hastened") };
        assert_eq!(r.shipments.new, 1);
        assert!(w.erp_fulfilments("SO-1").is_empty(), "the v1 lane writes nothing to the ERP");
        let Step::Worked(r) = w.engine.try_execute_one(conn, Lane::ErpWrites).await.unwrap() else { panic!("a write-back was planned") };
        assert_eq!(r.shipments.written, 1);
        assert_eq!(w.erp_fulfilments("SO-1")[0].state, FulfilmentState::Packed);
        assert_eq!(w.engine.try_execute_one(conn, Lane::ErpWrites).await.unwrap(), Step::Idle { next_due: None });

        // The v2 lane's sweep and the intake lane's monitors each run once, then wait.
        for lane in [Lane::ShipStationV2, Lane::Intake] {
            assert!(matches!(w.engine.try_execute_one(conn, lane).await.unwrap(), Step::Worked(_)), "{lane}'s pass was due");
            assert!(idle_after(&w.engine, conn, lane, 0).await.is_some_and(|due| due > w.engine.clock.now()), "{lane} waits for its next pass");
        }
    }

    async fn a_backlog_of_pushes_does_not_keep_a_v1_webhook_hint_waiting(w: World) {
        w.engine.connections[0].policy.shipment_poll_interval = Policy::default().shipment_poll_interval;
        // One order per createorders, so a push step sends ten orders (push::BATCHES_PER_RUN
        // batches of one) and 25 orders are three push steps.
        w.engine.connections[0].policy.push_batch = 1;
        // The hint is taken as soon as it is stored (no burst to wait for).
        w.engine.connections[0].policy.webhook_coalesce = std::time::Duration::ZERO;
        let conn = &w.engine.connections[0];
        for n in 1..=25 {
            w.erp.put(paid_order(&format!("SO-{n}")));
        }
        assert!(matches!(w.engine.try_execute_one(conn, Lane::ErpReads).await.unwrap(), Step::Worked(_)));
        // A SHIP_NOTIFY hint arrives behind the push backlog.
        let now = w.engine.clock.now();
        let mut hint = shipledger_store::Change::new("acme-uk", now);
        hint.jobs.push(NewJob::new(
            IngestV1Webhook {
                resource_url: format!("{}/shipments?trackingNumber=1Z-NONE&includeShipmentItems=True", w.sandbox.base_url()),
                resource_type: "SHIP_NOTIFY".into(),
                received_at: None,
            },
            "v1hook:1Z-NONE",
            now,
        ));
        w.store.commit(hint).await.unwrap();

        // The shipment poll (never ran), one push step, then the hint — not two more pushes.
        for _ in 0..3 {
            assert!(matches!(w.engine.try_execute_one(conn, Lane::ShipStationV1).await.unwrap(), Step::Worked(_)));
        }
        let jobs = |kind, state| w.store.list_jobs(JobFilter { kind: Some(kind), state: Some(state), ..Default::default() });
        assert_eq!(jobs(JobKind::IngestV1Webhook, JobState::Done).await.unwrap().len(), 1, "the hint was taken in turn");
        assert_eq!(jobs(JobKind::SyncOrder, JobState::Pending).await.unwrap().len(), 15, "two push steps still wait");
        // The backlog then drains, ten orders a step.
        for expected in [10, 5] {
            let Step::Worked(r) = w.engine.try_execute_one(conn, Lane::ShipStationV1).await.unwrap() else { panic!("pushes were due") };
            assert_eq!(r.push.pushed, expected);
        }
        assert!(matches!(w.engine.try_execute_one(conn, Lane::ShipStationV1).await.unwrap(), Step::Idle { .. }));
    }
}

/// Step `lane` until it is idle, expecting at most `work` more units first; its
/// `next_due`.
async fn idle_after(engine: &Engine, conn: &Connection, lane: Lane, work: usize) -> Option<jiff::Timestamp> {
    for _ in 0..=work {
        if let Step::Idle { next_due } = engine.try_execute_one(conn, lane).await.unwrap() {
            return next_due;
        }
    }
    panic!("{lane} was still working after {work} more steps");
}

mod idle {
    use super::*;

    crate::stories! {
        async fn an_idle_engine_reads_to_find_nothing_due_and_writes_nothing(w: World) {
            // Every pass runs once, then is not due for an hour: an engine with nothing to
            // do looks every second (IDLE_CAP) in each lane, and only reads.
            let hour = Duration::from_secs(3_600);
            let mut connections = std::mem::take(&mut w.engine.connections);
            connections[0].policy = Policy {
                poll_interval: hour,
                shipment_poll_interval: hour,
                held_recheck_interval: hour,
                ..connections[0].policy.clone()
            };
            let counting = Arc::new(counting::CountingStore { inner: w.store.clone(), writes: Default::default() });
            let engine = Arc::new(Engine::new(counting.clone(), Arc::new(SystemClock), connections));
            let (stop_tx, stop_rx) = watch::channel(false);
            let running = tokio::spawn(engine.clone().run(stop_rx));

            // The first look takes every pass (never run) and finishes it.
            let passes = [Scheduled::ErpPoll, Scheduled::Recheck, Scheduled::ShipmentPoll, Scheduled::ScanSweep, Scheduled::Monitors];
            let mut all_ran = false;
            for _ in 0..100 {
                let records = w.store.list_schedules(Some("acme-uk")).await.unwrap();
                all_ran = passes.iter().all(|p| records.iter().any(|r| r.name == p.name() && r.runs >= 1 && r.lease_token.is_none()));
                if all_ran {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(all_ran, "every pass ran once: {:?}", w.store.list_schedules(Some("acme-uk")).await.unwrap());
            tokio::time::sleep(Duration::from_millis(500)).await;

            // Then, for three seconds (three looks of each of its five lanes at least),
            // nothing is due and nothing is runnable.
            let before = counting.writes.lock().unwrap().len();
            tokio::time::sleep(Duration::from_secs(3)).await;
            let idle: Vec<&str> = counting.writes.lock().unwrap()[before..].to_vec();
            stop_tx.send(true).unwrap();
            running.await.unwrap();
            eprintln!("store writes by an idle engine in 3 s: {} ({idle:?})", idle.len());
            assert!(idle.is_empty(), "an idle engine wrote to the store: {idle:?}");
        }
    }
}

mod counting {
    #![allow(clippy::all)]
    use std::sync::Arc;
    use jiff::Timestamp;
    use shipledger_store::*;

    /// A store that counts the calls that write (open a write transaction), for the
    /// story of an idle engine; everything else is passed through.
    pub struct CountingStore {
        pub inner: Arc<dyn Store>,
        pub writes: std::sync::Mutex<Vec<&'static str>>,
    }

    impl CountingStore {
        fn wrote(&self, what: &'static str) {
            self.writes.lock().unwrap().push(what);
        }
    }

    impl Store for CountingStore {
        fn ensure_connection<'a>(&'a self, name: &'a str, now: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.wrote("ensure_connection");
            self.inner.ensure_connection(name, now)
        }
        fn commit<'a>(&'a self, change: Change) -> BoxFuture<'a, Result<CommitOutcome>> {
            self.wrote("commit");
            self.inner.commit(change)
        }
        fn commit_batch<'a>(&'a self, changes: &'a [Change]) -> BoxFuture<'a, Result<Vec<CommitOutcome>>> {
            self.wrote("commit_batch");
            self.inner.commit_batch(changes)
        }
        fn count_labels_created<'a>(&'a self, connection: &'a str, from: Timestamp, to: Timestamp) -> BoxFuture<'a, Result<u64>> {
            self.inner.count_labels_created(connection, from, to)
        }
        fn shipment_poll_can_find<'a>(&'a self, connection: &'a str, orders_since: Timestamp, labels_since: Timestamp) -> BoxFuture<'a, Result<bool>> {
            self.inner.shipment_poll_can_find(connection, orders_since, labels_since)
        }
        fn get_order<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
            self.inner.get_order(connection, erp_id)
        }
        fn get_order_by_key<'a>(&'a self, connection: &'a str, order_key: &'a str) -> BoxFuture<'a, Result<Option<OrderRecord>>> {
            self.inner.get_order_by_key(connection, order_key)
        }
        fn list_orders<'a>(&'a self, filter: OrderFilter) -> BoxFuture<'a, Result<Vec<OrderRecord>>> {
            self.inner.list_orders(filter)
        }
        fn order_lines<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<OrderLineRecord>>> {
            self.inner.order_lines(connection, erp_id)
        }
        fn count_orders_by_state<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(OrderState, u64)>>> {
            self.inner.count_orders_by_state(connection)
        }
        fn claim_jobs<'a>(&'a self, claim: JobClaim<'a>) -> BoxFuture<'a, Result<Vec<Job>>> {
            self.wrote("claim_jobs");
            self.inner.claim_jobs(claim)
        }
        fn retry_job<'a>(&'a self, job_id: i64, lease_token: &'a str, next_run_at: Timestamp, error: &'a str, attempt: Attempt, now: Timestamp,) -> BoxFuture<'a, Result<()>> {
            self.wrote("retry_job");
            self.inner.retry_job(job_id, lease_token, next_run_at, error, attempt, now)
        }
        fn get_job<'a>(&'a self, job_id: i64) -> BoxFuture<'a, Result<Option<Job>>> {
            self.inner.get_job(job_id)
        }
        fn list_jobs<'a>(&'a self, filter: JobFilter) -> BoxFuture<'a, Result<Vec<Job>>> {
            self.inner.list_jobs(filter)
        }
        fn count_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<(String, JobState, u64)>>> {
            self.inner.count_jobs(connection)
        }
        fn unknown_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::UnknownJobs>>> {
            self.inner.unknown_jobs(connection)
        }
        fn unreadable_jobs<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::UnknownJobs>>> {
            self.inner.unreadable_jobs(connection)
        }
        fn runnable_jobs<'a>(&'a self, connection: &'a str, kind: shipledger_store::JobKind, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::RunnableJobs>> {
            self.inner.runnable_jobs(connection, kind, now)
        }
        fn job_stats<'a>(&'a self) -> BoxFuture<'a, Result<Vec<JobStats>>> {
            self.inner.job_stats()
        }
        fn get_watermark<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
            self.inner.get_watermark(connection, name)
        }
        fn renew_jobs<'a>(&'a self, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<Vec<i64>>> {
            self.wrote("renew_jobs");
            self.inner.renew_jobs(lease_token, lease_until, now)
        }
        fn release_leases<'a>(&'a self, worker: &'a str, now: Timestamp) -> BoxFuture<'a, Result<ReleasedLeases>> {
            self.wrote("release_leases");
            self.inner.release_leases(worker, now)
        }
        fn take_schedule<'a>(&'a self, take: ScheduleTake<'a>) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
            self.wrote("take_schedule");
            self.inner.take_schedule(take)
        }
        fn finish_schedule<'a>(&'a self, finish: ScheduleFinish<'a>) -> BoxFuture<'a, Result<()>> {
            self.wrote("finish_schedule");
            self.inner.finish_schedule(finish)
        }
        fn renew_schedule<'a>(&'a self, connection: &'a str, name: &'a str, lease_token: &'a str, lease_until: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<bool>> {
            self.wrote("renew_schedule");
            self.inner.renew_schedule(connection, name, lease_token, lease_until, now)
        }
        fn record_schedule_success<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.wrote("record_schedule_success");
            self.inner.record_schedule_success(connection, name, at, now)
        }
        fn hasten_schedule<'a>(&'a self, connection: &'a str, name: &'a str, at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.wrote("hasten_schedule");
            self.inner.hasten_schedule(connection, name, at, now)
        }
        fn get_schedule<'a>(&'a self, connection: &'a str, name: &'a str) -> BoxFuture<'a, Result<Option<ScheduleRecord>>> {
            self.inner.get_schedule(connection, name)
        }
        fn list_schedules<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ScheduleRecord>>> {
            self.inner.list_schedules(connection)
        }
        fn timeline<'a>(&'a self, connection: &'a str, record_type: &'a str, record_id: &'a str) -> BoxFuture<'a, Result<Vec<EventRecord>>> {
            self.inner.timeline(connection, record_type, record_id)
        }
        fn order_timeline<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<Vec<TimelineEntry>>> {
            self.inner.order_timeline(connection, erp_id)
        }
        fn list_exceptions<'a>(&'a self, filter: ExceptionFilter) -> BoxFuture<'a, Result<Vec<ExceptionRecord>>> {
            self.inner.list_exceptions(filter)
        }
        fn get_exception<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<ExceptionRecord>>> {
            self.inner.get_exception(id)
        }
        fn count_open_exceptions<'a>(&'a self) -> BoxFuture<'a, Result<Vec<OpenExceptions>>> {
            self.inner.count_open_exceptions()
        }
        fn act_on_exception<'a>(&'a self, act: shipledger_store::ExceptionAct) -> BoxFuture<'a, Result<shipledger_store::ExceptionActed>> {
            self.wrote("act_on_exception");
            self.inner.act_on_exception(act)
        }
        fn list_exception_audit<'a>(
            &'a self,
            filter: shipledger_store::ExceptionAuditFilter,
        ) -> BoxFuture<'a, Result<Vec<shipledger_store::ExceptionAudit>>> {
            self.inner.list_exception_audit(filter)
        }
        fn order_overrides<'a>(&'a self, connection: &'a str, erp_id: &'a str) -> BoxFuture<'a, Result<std::collections::BTreeMap<String, String>>> {
            self.inner.order_overrides(connection, erp_id)
        }
        fn create_api_token<'a>(
            &'a self,
            token: shipledger_store::NewApiToken,
            now: Timestamp,
        ) -> BoxFuture<'a, Result<shipledger_store::ApiTokenRecord>> {
            self.inner.create_api_token(token, now)
        }
        fn list_api_tokens<'a>(&'a self) -> BoxFuture<'a, Result<Vec<shipledger_store::ApiTokenRecord>>> {
            self.inner.list_api_tokens()
        }
        fn api_token_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::ApiTokenRecord>>> {
            self.inner.api_token_by_hash(hash)
        }
        fn revoke_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ApiTokenRecord>> {
            self.inner.revoke_api_token(id, now)
        }
        fn touch_api_token<'a>(&'a self, id: i64, now: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.inner.touch_api_token(id, now)
        }
        fn stage_ss_orders<'a>(&'a self, connection: &'a str, orders: &'a [shipledger_store::StagedSsOrder]) -> BoxFuture<'a, Result<()>> {
            self.inner.stage_ss_orders(connection, orders)
        }
        fn stage_ss_merges<'a>(&'a self, connection: &'a str, into: i64, absorbed: &'a [i64], modified_at: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.inner.stage_ss_merges(connection, into, absorbed, modified_at)
        }
        fn stage_ss_shipments<'a>(&'a self, connection: &'a str, shipments: &'a [shipledger_store::StagedSsShipment]) -> BoxFuture<'a, Result<()>> {
            self.inner.stage_ss_shipments(connection, shipments)
        }
        fn stage_erp_orders<'a>(&'a self, connection: &'a str, orders: &'a [shipledger_store::StagedErpOrder]) -> BoxFuture<'a, Result<()>> {
            self.inner.stage_erp_orders(connection, orders)
        }
        fn resolve_recon_keys<'a>(&'a self, connection: &'a str) -> BoxFuture<'a, Result<shipledger_store::ResolvedKeys>> {
            self.inner.resolve_recon_keys(connection)
        }
        fn page_ss_orders<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedSsOrder>>> {
            self.inner.page_ss_orders(connection, after, limit)
        }
        fn page_ss_shipments<'a>(&'a self, connection: &'a str, after: Option<(&'a str, i64)>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedSsShipment>>> {
            self.inner.page_ss_shipments(connection, after, limit)
        }
        fn page_erp_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::StagedErpOrder>>> {
            self.inner.page_erp_orders(connection, after, limit)
        }
        fn page_ledger_orders<'a>(&'a self, connection: &'a str, after: Option<&'a str>, limit: u32) -> BoxFuture<'a, Result<Vec<(String, shipledger_core::reconcile::LedgerSide)>>> {
            self.inner.page_ledger_orders(connection, after, limit)
        }
        fn start_reconcile_run<'a>(&'a self, connection: &'a str, mode: shipledger_store::ReconcileMode, since: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ReconcileRun>> {
            self.inner.start_reconcile_run(connection, mode, since, now)
        }
        fn finish_reconcile_run<'a>(&'a self, id: i64, state: shipledger_store::ReconcileState, stats: serde_json::Value, error: Option<String>, now: Timestamp) -> BoxFuture<'a, Result<shipledger_store::ReconcileRun>> {
            self.inner.finish_reconcile_run(id, state, stats, error, now)
        }
        fn abandon_reconcile_runs<'a>(&'a self, connection: &'a str, why: &'a str, now: Timestamp) -> BoxFuture<'a, Result<u64>> {
            self.wrote("abandon_reconcile_runs");
            self.inner.abandon_reconcile_runs(connection, why, now)
        }
        fn get_reconcile_run<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<shipledger_store::ReconcileRun>>> {
            self.inner.get_reconcile_run(id)
        }
        fn list_reconcile_runs<'a>(&'a self, filter: shipledger_store::ReconcileRunFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::ReconcileRun>>> {
            self.inner.list_reconcile_runs(filter)
        }
        fn add_reconcile_findings<'a>(&'a self, run_id: i64, connection: &'a str, findings: &'a [shipledger_core::reconcile::Finding]) -> BoxFuture<'a, Result<()>> {
            self.inner.add_reconcile_findings(run_id, connection, findings)
        }
        fn list_reconcile_findings<'a>(&'a self, filter: shipledger_store::ReconcileFindingFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::ReconcileFindingRecord>>> {
            self.inner.list_reconcile_findings(filter)
        }
        fn get_shipment<'a>(&'a self, connection: &'a str, shipment_key: &'a str) -> BoxFuture<'a, Result<Option<ShipmentRecord>>> {
            self.inner.get_shipment(connection, shipment_key)
        }
        fn list_shipments<'a>(&'a self, filter: ShipmentFilter) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>> {
            self.inner.list_shipments(filter)
        }
        fn list_cost_entries<'a>(&'a self, filter: shipledger_store::CostEntryFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostEntry>>> {
            self.inner.list_cost_entries(filter)
        }
        fn get_cost_entry<'a>(&'a self, id: i64) -> BoxFuture<'a, Result<Option<shipledger_store::CostEntry>>> {
            self.inner.get_cost_entry(id)
        }
        fn get_cost_entry_by_key<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostEntry>>> {
            self.inner.get_cost_entry_by_key(connection, entry_key)
        }
        fn list_cost_conversions<'a>(&'a self, filter: shipledger_store::CostEntryFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostConversion>>> {
            self.inner.list_cost_conversions(filter)
        }
        fn get_cost_conversion<'a>(&'a self, connection: &'a str, entry_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostConversion>>> {
            self.inner.get_cost_conversion(connection, entry_key)
        }
        fn get_carrier_invoice<'a>(&'a self, connection: &'a str, carrier: &'a str, number: &'a str) -> BoxFuture<'a, Result<Option<CarrierInvoiceRecord>>> {
            self.inner.get_carrier_invoice(connection, carrier, number)
        }
        fn list_carrier_invoices<'a>(&'a self, connection: Option<&'a str>) -> BoxFuture<'a, Result<Vec<CarrierInvoiceRecord>>> {
            self.inner.list_carrier_invoices(connection)
        }
        fn list_invoice_charges<'a>(&'a self, filter: InvoiceChargeFilter) -> BoxFuture<'a, Result<Vec<InvoiceChargeRecord>>> {
            self.inner.list_invoice_charges(filter)
        }
        fn uninvoiced_labels<'a>(&'a self, connection: &'a str, carrier: &'a str, from: jiff::civil::Date, to: jiff::civil::Date) -> BoxFuture<'a, Result<Vec<ShipmentRecord>>> {
            self.inner.uninvoiced_labels(connection, carrier, from, to)
        }
        fn list_cost_batches<'a>(&'a self, filter: shipledger_store::CostBatchFilter) -> BoxFuture<'a, Result<Vec<shipledger_store::CostBatchRecord>>> {
            self.inner.list_cost_batches(filter)
        }
        fn get_cost_batch<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Option<shipledger_store::CostBatchRecord>>> {
            self.inner.get_cost_batch(connection, batch_key)
        }
        fn cost_batch_members<'a>(&'a self, connection: &'a str, batch_key: &'a str) -> BoxFuture<'a, Result<Vec<shipledger_store::BatchMember>>> {
            self.inner.cost_batch_members(connection, batch_key)
        }
        fn unconverted_cost_entries<'a>(&'a self, connection: &'a str, after_id: Option<i64>, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::CostEntry>>> {
            self.inner.unconverted_cost_entries(connection, after_id, limit)
        }
        fn scans_due<'a>(&'a self, connection: &'a str, now: Timestamp, limit: u32) -> BoxFuture<'a, Result<Vec<shipledger_store::AwaitingScan>>> {
            self.inner.scans_due(connection, now, limit)
        }
        fn scans_awaiting<'a>(&'a self, connection: &'a str, tracking_numbers: &'a [String]) -> BoxFuture<'a, Result<Vec<shipledger_store::AwaitingScan>>> {
            self.inner.scans_awaiting(connection, tracking_numbers)
        }
        fn mark_scans_checked<'a>(&'a self, connection: &'a str, checks: &'a [shipledger_store::ScanCheck]) -> BoxFuture<'a, Result<()>> {
            self.wrote("mark_scans_checked");
            self.inner.mark_scans_checked(connection, checks)
        }
        fn rate_take<'a>(&'a self, key: &'a str, reserve: u32, now: Timestamp) -> BoxFuture<'a, Result<Option<Timestamp>>> {
            self.wrote("rate_take");
            self.inner.rate_take(key, reserve, now)
        }
        fn rate_take_counted<'a>(&'a self, key: &'a str, limit: u32, window: jiff::SignedDuration, reserve: u32, now: Timestamp,) -> BoxFuture<'a, Result<Option<Timestamp>>> {
            self.wrote("rate_take_counted");
            self.inner.rate_take_counted(key, limit, window, reserve, now)
        }
        fn rate_observe<'a>(&'a self, key: &'a str, limit: u32, remaining: u32, reset_at: Timestamp, now: Timestamp) -> BoxFuture<'a, Result<()>> {
            self.wrote("rate_observe");
            self.inner.rate_observe(key, limit, remaining, reset_at, now)
        }
    }
}

/// A drain that cuts a push short after its `createorders` went out: the job goes
/// back, and the next run reads ShipStation back before sending anything.
async fn a_drained_push_is_read_back_on_restart_not_sent_again(backend: Backend) {
    let Some(db) = TestDb::new(backend) else { return };
    // One v1 request per 10 s window: the push's createorders spends it, and its
    // read-back waits in the budget for the next window (the step is in flight).
    let config = SandboxConfig { rate_limit: 1, rate_window: Duration::from_secs(10), ..SandboxConfig::default() };
    let mut w = crate::helpers::World::with(config, db).await;
    let hour = Duration::from_secs(3_600);
    w.engine.connections[0].policy.shipment_poll_interval = hour;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let conn = &w.engine.connections[0];
    w.erp.put(paid_order("SO-1"));
    shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
    // The shipment poll has just run (it would spend the window first).
    let poll = w.engine.take_schedule(conn, Scheduled::ShipmentPoll, true).await.unwrap().unwrap();
    w.engine.finish_schedule(conn, poll, true).await.unwrap();

    let engine = Arc::new(w.another_engine(clock.clone()).await);
    let (stop_tx, stop_rx) = watch::channel(false);
    let running = tokio::spawn(engine.clone().run(stop_rx));
    let sent = |stats: &Value| stats["requests"]["POST /orders/createorders"].as_u64().unwrap_or(0);
    for _ in 0..500 {
        if sent(&w.stats().await) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sent(&w.stats().await), 1, "the push sent its createorders");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_tx.send(true).unwrap();
    running.await.unwrap();
    // (Counted through the sandbox's own stats: a GET of ShipStation would spend the window.)
    assert_eq!(w.stats().await["orders"], json!(1), "the order reached ShipStation before the drain");
    let jobs = w.store.list_jobs(JobFilter { kind: Some(JobKind::SyncOrder), ..Default::default() }).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Pending, 1), "given back, the attempt kept: {:?}", jobs[0]);

    // Restarted: the push reads back first, finds the order, and sends nothing.
    let restarted = w.another_engine(clock).await;
    let mut report = shipledger_engine::flows::push::PushReport::default();
    assert!(shipledger_engine::flows::push::step(&restarted, &restarted.connections[0], &mut report).await.unwrap());
    assert_eq!((report.requests, report.pushed), (0, 1), "{report:?}");
    assert_eq!(sent(&w.stats().await), 1, "no second createorders");
    let stats = w.stats().await;
    assert_eq!((stats["orders"].clone(), stats["duplicate_order_keys"].clone()), (json!(1), json!(0)), "in ShipStation exactly once");
    let order = w.store.get_order("acme-uk", "SO-1").await.unwrap().unwrap();
    assert_eq!(order.state, shipledger_store::OrderState::Pushed);
    let timeline = w.store.timeline("acme-uk", "order", "SO-1").await.unwrap();
    assert!(
        timeline.iter().any(|e| e.detail["message"].as_str().is_some_and(|m| m.contains("read back before retrying"))),
        "the restart recorded what it read back: {timeline:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_drained_push_is_read_back_on_restart_not_sent_again() {
    a_drained_push_is_read_back_on_restart_not_sent_again(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_drained_push_is_read_back_on_restart_not_sent_again() {
    a_drained_push_is_read_back_on_restart_not_sent_again(Backend::Postgres).await;
}
