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
use shipledger_engine::lanes::{Lane, Step};
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
            });
            brands.push(Brand { name, erp, sandbox, budget_key });
        }
        let engine = Engine::new(store.clone(), clock, connections);
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

crate::stories! {
    async fn each_lanes_step_does_one_unit_of_its_own_work_and_says_when_it_is_idle(w: World) {
        // ShipStation is polled at its usual interval, so a poll that ran is not due again.
        w.engine.connections[0].policy.shipment_poll_interval = Policy::default().shipment_poll_interval;
        let conn = &w.engine.connections[0];
        w.erp.put(paid_order("SO-1"));

        // The ERP reads: the poll releases the order (and plans its push, which is
        // not this lane's); then the recheck and follow; then nothing is due until
        // the next poll.
        let Step::Worked(first) = w.engine.try_execute_one(conn, Lane::ErpReads).await.unwrap() else { panic!("the poll was due") };
        assert_eq!((first.poll.seen, first.poll.released), (1, 1));
        assert_eq!(first.push.requests, 0);
        let next_due = idle_after(&w.engine, conn, Lane::ErpReads, 3).await;
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
