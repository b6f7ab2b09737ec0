//! Two `serve` processes on one PostgreSQL share the work instead of doing it twice:
//! the same day (orders to push, labels to ingest, scans to sweep, ERP write-backs)
//! run once by one engine and once by two engines ticking side by side, with
//! ShipStation answering some requests 429 and 500, costs no more than 5 % more
//! ShipStation calls, and every effect happens once: each order once in ShipStation,
//! each ERP fulfilment once, each poll once per interval.
//!
//! PostgreSQL only (SQLite has one writer per file; sharing it is not a deployment
//! shipledger offers): without `TEST_DATABASE_URL` the story prints SKIPPED.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};
use shipledger_core::clock::Clock;
use shipledger_engine::Engine;
use shipledger_engine::config::Policy;
use shipledger_engine::schedule::Scheduled;
use shipledger_erp::FulfilmentState;
use shipledger_sandbox::SandboxConfig;
use shipledger_store::{OrderState, ScheduleRecord};

use crate::helpers::{Backend, TestDb, World, paid_order};

const ORDERS: usize = 20;
/// Clock advances (one poll interval and a second each) after the first pass.
const ROUNDS: i64 = 4;

/// What one run of the day left behind.
struct Day {
    stats: Value,
    /// Requests ShipStation answered normally: every request minus those the
    /// sandbox refused by an injected fault or a spent window (their retries are the
    /// faults' cost, not the engines').
    answered: u64,
    schedules: BTreeMap<String, ScheduleRecord>,
    /// `(erp order, its fulfilment documents, every fulfilment write sent for it, in order)`.
    erp: Vec<(String, usize, Vec<(String, FulfilmentState)>)>,
    ss_orders_per_number: Vec<usize>,
    shipped: usize,
}

/// Tick the engines side by side (the second, when there is one, concurrently with
/// the first) until neither has anything left to do now.
async fn settle(first: &Engine, second: Option<&Engine>) {
    for _ in 0..60 {
        let (a, b) = tokio::join!(first.tick(), async {
            match second {
                Some(e) => Some(e.tick().await),
                None => None,
            }
        });
        let busy = a.expect("tick").busy() | b.transpose().expect("tick").is_some_and(|r| r.busy());
        if !busy {
            return;
        }
    }
    panic!("the engines did not settle in 60 ticks");
}

/// The day, with `engines` engines (1 or 2) on one PostgreSQL store. `None` without
/// PostgreSQL.
async fn run_the_day(engines: usize) -> Option<Day> {
    let db = TestDb::new(Backend::Postgres)?;
    // Short v1 windows, so that a 429 costs a wait of a second or two, not a minute.
    let config = SandboxConfig { rate_limit: 1_000, rate_window: Duration::from_secs(2), ..SandboxConfig::default() };
    let mut w = World::with(config, db).await;
    let clock = w.manual_clock();
    let interval = Policy::default().shipment_poll_interval;
    w.engine.connections[0].policy.shipment_poll_interval = interval;
    let step = SignedDuration::try_from(interval).unwrap() + SignedDuration::from_secs(1);
    let second = w.another_engine(clock.clone() as Arc<dyn Clock>).await;
    let other = (engines == 2).then_some(&second);
    assert_ne!(w.engine.worker, second.worker, "each engine is its own worker");

    // Faults on the v1 API (v2's 429s name a wait of up to a minute).
    w.put_faults(json!({"rate_429": 0.05, "rate_500": 0.05, "paths": ["/orders", "/shipments", "/fulfillments"]})).await;

    let numbers: Vec<String> = (1..=ORDERS).map(|i| format!("SO-{}", 500 + i)).collect();
    for n in &numbers {
        w.erp.put(paid_order(n));
    }
    settle(&w.engine, other).await;

    // The warehouse labels every order.
    let mut tracking = Vec::new();
    for n in &numbers {
        let order = w.store.get_order("acme-uk", n).await.unwrap().unwrap();
        let id = order.ss_order_id.unwrap_or_else(|| panic!("{n} was pushed"));
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
        tracking.push(label["trackingNumber"].as_str().unwrap().to_string());
    }
    for round in 1..=ROUNDS {
        w.pass(&clock, step).await;
        settle(&w.engine, other).await;
        // The carrier scans half the parcels after the first poll, the rest after the second.
        let scanned: &[String] = match round {
            1 => &tracking[..ORDERS / 2],
            2 => &tracking[ORDERS / 2..],
            _ => &[],
        };
        for t in scanned {
            w.control("/tracking/events", json!({"trackingNumber": t, "statusCode": "IT"})).await;
        }
    }
    w.put_faults(json!({})).await;

    let stats = w.stats().await;
    let refused = stats["rate_limited"].as_u64().unwrap() + stats["faults"]["500"].as_u64().unwrap_or(0);
    let answered = stats["requests_total"].as_u64().unwrap() - refused;
    let schedules = w.store.list_schedules(Some("acme-uk")).await.unwrap().into_iter().map(|r| (r.name.clone(), r)).collect();
    let mut erp = Vec::new();
    let mut shipped = 0;
    for n in &numbers {
        let writes: Vec<(String, FulfilmentState)> =
            w.erp.fulfilment_writes.lock().unwrap().iter().filter(|x| &x.erp_order_id == n).map(|x| (x.key.clone(), x.state)).collect();
        erp.push((n.clone(), w.erp_fulfilments(n).len(), writes));
        if w.store.get_order("acme-uk", n).await.unwrap().unwrap().state == OrderState::Shipped {
            shipped += 1;
        }
    }
    let mut ss_orders_per_number = Vec::new();
    for n in &numbers {
        ss_orders_per_number.push(w.ss_orders(n).await.len());
    }
    Some(Day { stats, answered, schedules, erp, ss_orders_per_number, shipped })
}

/// Every effect of the day happened once, and every recurring pass ran once per interval.
fn assert_once_each(day: &Day, who: &str) {
    assert_eq!(day.stats["duplicate_order_keys"], json!(0), "{who}: {}", day.stats);
    assert_eq!(day.stats["duplicate_order_numbers"], json!(0), "{who}: {}", day.stats);
    assert!(day.ss_orders_per_number.iter().all(|n| *n == 1), "{who}: each order once in ShipStation: {:?}", day.ss_orders_per_number);
    assert_eq!(day.shipped, ORDERS, "{who}: every order shipped");
    for (order, documents, writes) in &day.erp {
        assert_eq!(*documents, 1, "{who}: {order} has one ERP fulfilment");
        let states: Vec<FulfilmentState> = writes.iter().map(|(_, s)| *s).collect();
        assert_eq!(states, [FulfilmentState::Packed, FulfilmentState::Completed], "{who}: {order} packed, then completed, each sent once: {writes:?}");
        assert_eq!(writes[0].0, writes[1].0, "{who}: {order}: one fulfilment document");
    }
    // One shipment poll, scan sweep and monitors pass per interval: the first pass,
    // then one per clock advance, whoever ran it.
    for pass in [Scheduled::ShipmentPoll, Scheduled::ScanSweep, Scheduled::Monitors] {
        let record = day.schedules.get(pass.name()).unwrap_or_else(|| panic!("{who}: the {pass} pass is in the store"));
        assert_eq!(record.runs, 1 + ROUNDS, "{who}: {pass} once per interval: {record:?}");
        assert_eq!((record.lease_token.as_deref(), record.last_error.as_deref()), (None, None), "{who}: {record:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_under_faults_do_the_days_work_once_for_at_most_5_percent_more_calls() {
    let Some(one) = run_the_day(1).await else { return };
    let two = run_the_day(2).await.expect("PostgreSQL is configured");
    assert_once_each(&one, "one engine");
    assert_once_each(&two, "two engines");
    eprintln!(
        "ShipStation calls answered: one engine {}, two engines {} (all requests: {} and {}; faults {} and {}; by path {} and {})",
        one.answered,
        two.answered,
        one.stats["requests_total"],
        two.stats["requests_total"],
        one.stats["faults"],
        two.stats["faults"],
        one.stats["requests"],
        two.stats["requests"]
    );
    assert!(
        two.answered as f64 <= 1.05 * one.answered as f64,
        "two engines made {} ShipStation calls for the work one engine did with {}: {} against {}",
        two.answered,
        one.answered,
        two.stats["requests"],
        one.stats["requests"]
    );
}

crate::stories! {
    async fn a_second_engine_leaves_a_poll_the_first_did_until_its_interval_passes_and_takes_a_released_pass_at_once(w: World) {
        let clock = w.manual_clock();
        // An order of ours awaits shipment in ShipStation (released and pushed without
        // a scheduled pass), so the shipment poll has something to ask about.
        w.erp.put(paid_order("SO-1"));
        shipledger_engine::flows::release::poll(&w.engine, &w.engine.connections[0]).await.unwrap();
        shipledger_engine::flows::push::run(&w.engine, &w.engine.connections[0]).await.unwrap();
        assert_eq!(w.store.get_order("acme-uk", "SO-1").await.unwrap().unwrap().state, shipledger_store::OrderState::Pushed);
        let interval = Policy::default().shipment_poll_interval;
        w.engine.connections[0].policy.shipment_poll_interval = interval;
        let step = SignedDuration::try_from(interval).unwrap() + SignedDuration::from_secs(1);
        let second = w.another_engine(clock.clone() as Arc<dyn Clock>).await;
        let polls = |stats: &Value| stats["requests"]["GET /shipments"].as_u64().unwrap_or(0);
        let runs = |w: &World| {
            let store = w.store.clone();
            async move { store.get_schedule("acme-uk", "shipment_poll").await.unwrap().map_or(0, |r| r.runs) }
        };

        w.engine.tick().await.unwrap();
        let after_first = polls(&w.stats().await);
        assert!(after_first > 0, "the first engine polled ShipStation");
        assert_eq!(runs(&w).await, 1);
        // The other engine (another process) sees the poll done and not yet due.
        second.tick().await.unwrap();
        assert_eq!(polls(&w.stats().await), after_first, "no second poll within the interval");
        assert_eq!(runs(&w).await, 1);
        assert_eq!(
            second.schedule_due_at(&second.connections[0], Scheduled::ShipmentPoll).await.unwrap(),
            w.engine.schedule_due_at(&w.engine.connections[0], Scheduled::ShipmentPoll).await.unwrap(),
            "both engines read the one due time"
        );
        clock.advance(step);
        second.tick().await.unwrap();
        assert_eq!(runs(&w).await, 2, "once due, whichever engine looks first polls");
        assert!(polls(&w.stats().await) > after_first);

        // The first engine takes the next poll, then drains before finishing it: the
        // pass goes back at once, still due, and the other engine takes it.
        clock.advance(step);
        let held = w.engine.take_schedule(&w.engine.connections[0], Scheduled::ShipmentPoll, false).await.unwrap().expect("due");
        assert!(held.token.starts_with(&w.engine.worker), "the lease names its worker: {}", held.token);
        assert!(second.take_schedule(&second.connections[0], Scheduled::ShipmentPoll, true).await.unwrap().is_none());
        let released = w.engine.release_leases().await.unwrap();
        assert_eq!(released.schedules, [("acme-uk".to_string(), "shipment_poll".to_string())]);
        let taken = second.take_schedule(&second.connections[0], Scheduled::ShipmentPoll, false).await.unwrap();
        assert!(taken.is_some(), "a released pass keeps its due time");
        assert!(w.engine.finish_schedule(&w.engine.connections[0], held, true).await.is_err(), "the drained lease cannot finish");
        second.finish_schedule(&second.connections[0], taken.unwrap(), true).await.unwrap();
        assert_eq!(runs(&w).await, 3);
    }
}

/// `createorders` requests the sandbox has received so far (answered or still in
/// flight: the count is taken as a request arrives).
async fn createorders_received(w: &World) -> u64 {
    w.stats().await["requests"]["POST /orders/createorders"].as_u64().unwrap_or(0)
}

/// Wait (real time, at most 20 s) until the sandbox has received `n` createorders.
async fn until_createorders(w: &World, n: u64) {
    for _ in 0..1_000 {
        if createorders_received(w).await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sandbox never received {n} createorders");
}

mod shared {
    use super::*;

    crate::stories! {
        async fn a_push_that_outlives_its_jobs_lease_keeps_them_and_one_whose_lease_is_lost_sends_nothing_more(w: World) {
            let clock = w.manual_clock();
            // One order per createorders, each answered after 1.5 s: a push step of three
            // orders takes 4.5 s, while the stories' clock says minutes pass.
            w.engine.connections[0].policy.push_batch = 1;
            w.engine.renew_every = Duration::from_millis(50);
            let second = w.another_engine(clock.clone() as Arc<dyn Clock>).await;
            let conn = &w.engine.connections[0];
            w.put_faults(json!({"rate_slow": 1.0, "slow_ms": 1500, "paths": ["/orders/createorders"]})).await;

            // 1. Renewed: the first engine's step is still sending when 50 s have passed
            //    on the clock (its lease was 30 s), and the other engine finds nothing to claim.
            for n in ["SO-1", "SO-2", "SO-3"] {
                w.erp.put(paid_order(n));
            }
            shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
            let mut first = shipledger_engine::flows::push::PushReport::default();
            let (pushed, ()) = tokio::join!(shipledger_engine::flows::push::step(&w.engine, conn, &mut first), async {
                until_createorders(&w, 1).await;
                clock.advance(SignedDuration::from_secs(25));
                tokio::time::sleep(Duration::from_millis(300)).await;
                clock.advance(SignedDuration::from_secs(25));
                let mut other = shipledger_engine::flows::push::PushReport::default();
                let took = shipledger_engine::flows::push::step(&second, &second.connections[0], &mut other).await.unwrap();
                assert!(!took, "the other engine claims none of the renewed jobs: {other:?}");
            });
            assert!(pushed.unwrap());
            assert_eq!((first.requests, first.pushed), (3, 3), "{first:?}");
            assert_eq!(createorders_received(&w).await, 3, "one createorders per order, from one engine");

            // 2. Lost: the renewals stall (an hour apart) and the clock passes the lease
            //    while the first engine's first createorders is in flight; the other engine
            //    claims the three jobs. The first engine sends nothing more for them.
            w.engine.renew_every = Duration::from_secs(3_600);
            for n in ["SO-4", "SO-5", "SO-6"] {
                w.erp.put(paid_order(n));
            }
            shipledger_engine::flows::release::poll(&w.engine, conn).await.unwrap();
            let mut first = shipledger_engine::flows::push::PushReport::default();
            let mut other = shipledger_engine::flows::push::PushReport::default();
            let (_, ()) = tokio::join!(shipledger_engine::flows::push::step(&w.engine, conn, &mut first), async {
                until_createorders(&w, 4).await;
                clock.advance(SignedDuration::from_secs(31));
                let took = shipledger_engine::flows::push::step(&second, &second.connections[0], &mut other).await.unwrap();
                assert!(took, "the other engine takes over the jobs whose lease ran out");
            });
            assert_eq!(first.requests, 1, "after its lease was lost the first engine sent no other batch: {first:?}");
            w.put_faults(json!({})).await;
            for _ in 0..10 {
                clock.advance(SignedDuration::from_secs(60));
                w.settle().await;
            }
            for n in ["SO-1", "SO-2", "SO-3", "SO-4", "SO-5", "SO-6"] {
                assert_eq!(w.ss_orders(n).await.len(), 1, "{n} is in ShipStation once");
                assert_eq!(w.store.get_order("acme-uk", n).await.unwrap().unwrap().state, OrderState::Pushed, "{n}");
            }
            assert_eq!(w.stats().await["duplicate_order_keys"], json!(0));
            assert!(createorders_received(&w).await <= 7, "at most the lost order sent twice (by orderKey, one order): {}", w.stats().await["requests"]);
        }

        async fn an_erp_write_back_whose_lease_another_engine_took_over_is_not_written_twice(w: World) {
            let clock = w.manual_clock();
            // The first engine's renewals stall (an hour apart): its jobs' leases run out
            // with the clock while its step is still at work.
            w.engine.renew_every = Duration::from_secs(3_600);
            let second = w.another_engine(clock.clone() as Arc<dyn Clock>).await;
            let conn = &w.engine.connections[0];
            let orders = ["SO-1", "SO-2", "SO-3"];
            for n in orders {
                w.erp.put(paid_order(n));
            }
            w.settle().await;
            for n in orders {
                let id = w.store.get_order("acme-uk", n).await.unwrap().unwrap().ss_order_id.expect("pushed");
                w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
            }
            // The shipment poll plans the three write-backs; the ERP now takes 1.5 s a write.
            let polled = shipledger_engine::flows::shipments::poll(&w.engine, conn).await.unwrap();
            assert_eq!(polled.new, 3, "{polled:?}");
            *w.erp.write_delay.lock().unwrap() = Duration::from_millis(1_500);

            // The first engine claims the three and sends the first; while that write is
            // in flight the clock passes the lease and the other engine claims all three.
            let mut first = shipledger_engine::flows::shipments::ShipmentReport::default();
            let mut other = shipledger_engine::flows::shipments::ShipmentReport::default();
            let (worked, ()) = tokio::join!(shipledger_engine::flows::write_fulfilment::step(&w.engine, conn, &mut first), async {
                for _ in 0..1_000 {
                    if !w.erp.fulfilment_writes.lock().unwrap().is_empty() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 1, "the first engine's first write is in flight");
                clock.advance(SignedDuration::from_secs(31));
                let took = shipledger_engine::flows::write_fulfilment::step(&second, &second.connections[0], &mut other).await.unwrap();
                assert!(took, "the other engine takes over the write-backs whose lease ran out");
            });
            assert!(worked.unwrap());

            // The first engine wrote only the one in flight when its lease was lost; the
            // other engine wrote all three. Each label is one ERP fulfilment, packed.
            assert_eq!(first.written, 1, "after its lease was lost the first engine wrote nothing more: {first:?}");
            assert_eq!(other.written, 3, "{other:?}");
            let writes: Vec<String> = w.erp.fulfilment_writes.lock().unwrap().iter().map(|x| x.key.clone()).collect();
            assert_eq!(writes.len(), 4, "three write-backs, and the one in flight made again by its new holder: {writes:?}");
            let twice: Vec<&String> = writes.iter().filter(|k| writes.iter().filter(|o| o == k).count() > 1).collect();
            assert_eq!(twice.len(), 2, "only the write in flight was made twice: {writes:?}");
            for n in orders {
                let docs = w.erp_fulfilments(n);
                assert_eq!(docs.len(), 1, "{n}: one ERP fulfilment");
                assert_eq!(docs[0].state, FulfilmentState::Packed, "{n}");
            }
            let done = w
                .store
                .list_jobs(shipledger_store::JobFilter {
                    kind: Some(shipledger_store::JobKind::WriteFulfilment),
                    state: Some(shipledger_store::JobState::Done),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(done.len(), 3, "every write-back is done, by the engine that held it");
        }

        async fn two_engines_share_one_v2_budget_of_200_a_minute_and_get_no_429(w: World) {
            // Two engines built from one configuration, as two `serve` processes would be,
            // each with its own connections to the store.
            let base = w.sandbox.base_url();
            let toml = format!(
                r#"
                [store]
                url = "{store}"
                [[connections]]
                name = "acme-uk"
                [connections.erp]
                kind = "sandbox"
                url = "{base}"
                api_key_env = "ERP_KEY"
                [connections.shipstation]
                base_url = "{base}"
                api_key_env = "SS_KEY"
                api_secret_env = "SS_SECRET"
                v2_base_url = "{base}"
                v2_api_key_env = "SS_V2_KEY"
                "#,
                store = w.store_url(),
            );
            let env = |name: &str| {
                Some(match name {
                    "ERP_KEY" => "erp-key",
                    "SS_KEY" => "sandbox-key",
                    "SS_SECRET" => "sandbox-secret",
                    "SS_V2_KEY" => "sandbox-v2-key",
                    _ => return None,
                }.to_string())
            };
            let config = shipledger_engine::config::Config::parse(&toml, "two-engines.toml", &env).unwrap();
            let mut engines = Vec::new();
            for _ in 0..2 {
                let store = shipledger_store::open(&w.store_url()).await.unwrap();
                let clock: Arc<dyn Clock> = Arc::new(shipledger_core::clock::SystemClock);
                engines.push(Arc::new(Engine::from_config(&config, store, clock).unwrap()));
            }
            // 150 tracking requests from each engine at once: 300 against 200 a minute.
            let mut calls = tokio::task::JoinSet::new();
            for engine in &engines {
                for i in 0..150 {
                    let engine = engine.clone();
                    calls.spawn(async move {
                        let v2 = engine.connections[0].shipstation_v2.as_ref().expect("v2 is configured");
                        let _ = v2.get_tracking("ups", &format!("1Z-NONE-{i}")).await;
                    });
                }
            }
            let v2_requests = |stats: &Value| {
                stats["requests"].as_object().unwrap().iter().filter(|(k, _)| k.contains(" /v2/")).map(|(_, n)| n.as_u64().unwrap()).sum::<u64>()
            };
            for _ in 0..500 {
                if v2_requests(&w.stats().await) >= 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // The rest wait in the shared budget for the next window, instead of being sent.
            tokio::time::sleep(Duration::from_millis(700)).await;
            let stats = w.stats().await;
            calls.abort_all();
            assert_eq!(v2_requests(&stats), 200, "both engines together sent one window's 200: {}", stats["requests"]);
            assert_eq!(stats["rate_limited_v2"], json!(0), "no v2 request was refused 429");
        }
    }
}
