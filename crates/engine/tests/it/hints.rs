//! v1 webhooks are hints: a burst of them is answered by one incremental poll of the
//! configured ShipStation API, never by fetching each hint's URL. Every label comes
//! in with its ERP write-back planned for a handful of requests, a hint pointing
//! elsewhere is refused as ever, a hint that arrives while a poll runs waits for the
//! next one, and a failed poll leaves its hints to be retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::SignedDuration;
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, ManualClock};
use shipledger_core::exception::ExceptionKind;
use shipledger_engine::flows::ingest_v1_webhook;
use shipledger_store::{
    Change, ExceptionFilter, ExceptionState, IngestV1Webhook, Job, JobFilter, JobKind, JobState, NewJob, Phase, ShipmentFilter,
};

use crate::helpers::{World, paid_order};

/// Orders released and pushed to the sandbox ShipStation: their ShipStation ids.
async fn pushed(w: &World, prefix: &str, n: usize) -> Vec<i64> {
    for i in 0..n {
        w.erp.put(paid_order(&format!("{prefix}-{i:03}")));
    }
    w.settle().await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let order = w.store.get_order("acme-uk", &format!("{prefix}-{i:03}")).await.unwrap().unwrap();
        ids.push(order.ss_order_id.expect("pushed"));
    }
    ids
}

/// The warehouse buys a label for the order.
async fn label(w: &World, ss_order_id: i64) -> Value {
    w.control(&format!("/orders/{ss_order_id}/labels"), json!({})).await
}

/// A hint as the receiver stores it: now on the engine's clock, keyed by `key`.
async fn hint(w: &World, clock: &ManualClock, resource_type: &str, resource_url: String, key: &str) {
    let mut change = Change::new("acme-uk", clock.now());
    change.jobs.push(NewJob::new(
        IngestV1Webhook { resource_url, resource_type: resource_type.into(), received_at: Some(clock.now()) },
        format!("v1hook:{key}"),
        clock.now(),
    ));
    w.store.commit(change).await.unwrap();
}

fn ship_notify_url(w: &World, batch: usize) -> String {
    format!("{}/shipments?storeID=1&batchId={batch}&includeShipmentItems=true", w.sandbox.base_url())
}

/// v1 requests the sandbox has answered so far (every path but `/v2`).
async fn v1_requests(w: &World) -> u64 {
    let stats = w.stats().await;
    stats["requests"].as_object().unwrap().iter().filter(|(path, _)| !path.contains(" /v2")).map(|(_, n)| n.as_u64().unwrap()).sum()
}

async fn requests_to(w: &World, path: &str) -> u64 {
    w.stats().await["requests"][path].as_u64().unwrap_or(0)
}

async fn hints(w: &World) -> Vec<Job> {
    w.store
        .list_jobs(JobFilter { kind: Some(JobKind::IngestV1Webhook), ..Default::default() })
        .await
        .unwrap()
}

async fn in_state(w: &World, state: JobState) -> usize {
    hints(w).await.iter().filter(|j| j.state == state).count()
}

async fn labels_stored(w: &World) -> usize {
    w.store
        .list_shipments(ShipmentFilter { connection: Some("acme-uk".into()), ..Default::default() })
        .await
        .unwrap()
        .iter()
        .filter(|s| s.erp_id.is_some())
        .count()
}

async fn packed_writes_planned(w: &World) -> usize {
    w.store
        .list_jobs(JobFilter { kind: Some(JobKind::WriteFulfilment), ..Default::default() })
        .await
        .unwrap()
        .iter()
        .filter(|j| matches!(&j.spec, shipledger_store::JobSpec::WriteFulfilment(f) if f.phase == Phase::Packed))
        .count()
}

/// A port on 127.0.0.1 that counts the connections made to it (another origin than
/// the sandbox's: same host, another port).
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, hits)
}

/// The wait after which a burst of hints counts as over.
fn quiet(w: &World) -> SignedDuration {
    SignedDuration::try_from(w.engine.connections[0].policy.webhook_coalesce).unwrap()
}

crate::stories! {
    async fn two_hundred_ship_notify_hints_are_one_poll_every_label_is_ingested_and_a_foreign_one_is_refused(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "H", 200).await;
        let (foreign_port, foreign_hits) = counting_listener().await;
        for (n, id) in orders.iter().enumerate() {
            label(&w, *id).await;
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, n), &format!("batch-{n}")).await;
            if n == 100 {
                let probe = format!("http://127.0.0.1:{foreign_port}/shipments?batchId={n}&includeShipmentItems=true");
                hint(&w, &clock, "SHIP_NOTIFY", probe, "probe").await;
            }
        }
        let conn = &w.engine.connections[0];
        let before = v1_requests(&w).await;

        // The burst has just arrived: nothing is taken yet.
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        assert_eq!(v1_requests(&w).await, before, "no request while the burst may go on");
        assert_eq!(in_state(&w, JobState::Pending).await, 201);

        clock.advance(quiet(&w));
        let report = ingest_v1_webhook::run(&w.engine, conn).await.unwrap();

        let requests = v1_requests(&w).await - before;
        assert!(requests <= 5, "{requests} v1 requests for 200 hints");
        assert_eq!(report.new, 200, "{report:?}");
        assert_eq!(labels_stored(&w).await, 200, "every label is ingested for its ERP order");
        assert_eq!(packed_writes_planned(&w).await, 200, "and its packed write-back planned");
        assert_eq!((in_state(&w, JobState::Done).await, in_state(&w, JobState::Dead).await), (200, 1));
        assert_eq!(foreign_hits.load(Ordering::SeqCst), 0, "nothing was asked of the other origin");
        let refused = hints(&w).await.into_iter().find(|j| j.idempotency_key == "v1hook:probe").unwrap();
        assert_eq!(refused.state, JobState::Dead);
        assert!(refused.last_error.as_deref().unwrap_or_default().contains("not fetched"), "{refused:?}");
        let exceptions = w
            .store
            .list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), kind: Some(ExceptionKind::WebhookForeignHost), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(exceptions.len(), 1, "{exceptions:?}");
        assert_eq!(exceptions[0].detail["reason"], json!("port"));
        assert_eq!(exceptions[0].record_id, format!("127.0.0.1:{foreign_port}"));

        // The same labels seen again by the scheduled poll: nothing twice.
        w.settle().await;
        assert_eq!(labels_stored(&w).await, 200);
        assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 200, "one packed write per label");
    }

    async fn a_burst_of_two_hundred_hints_over_ten_seconds_costs_one_poll(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "B", 40).await;
        let conn = &w.engine.connections[0];
        let before = requests_to(&w, "GET /shipments").await;
        // A label every quarter second, each announced by several webhooks (ShipStation
        // sends one per batch and store, and repeats them), over ten seconds; the engine
        // looks at its inbox after every one.
        for n in 0..200 {
            if n % 5 == 0 {
                label(&w, orders[n / 5]).await;
            }
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, n / 5), &format!("burst-{n}")).await;
            ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
            clock.advance(SignedDuration::from_millis(50));
        }
        assert_eq!(requests_to(&w, "GET /shipments").await, before, "not one poll while the burst goes on");
        clock.advance(quiet(&w));
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        assert_eq!(requests_to(&w, "GET /shipments").await - before, 1, "one poll once it is over");
        assert_eq!(in_state(&w, JobState::Done).await, 200);
        assert_eq!(labels_stored(&w).await, 40);
        assert_eq!(packed_writes_planned(&w).await, 40);
    }

    async fn a_steady_stream_of_hints_is_answered_once_the_oldest_has_waited_the_longest_wait(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "S", 40).await;
        let conn = &w.engine.connections[0];
        let longest = SignedDuration::try_from(conn.policy.webhook_coalesce_max).unwrap();
        let before = requests_to(&w, "GET /shipments").await;
        // A label and its webhook every second for 40 seconds: the newest hint is never
        // five seconds old, yet the first hints must not wait for the stream to stop.
        let started = clock.now();
        for (n, id) in orders.iter().enumerate() {
            label(&w, *id).await;
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, n), &format!("stream-{n}")).await;
            ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
            let waited = clock.now().duration_since(started);
            let done = in_state(&w, JobState::Done).await;
            if waited < longest {
                assert_eq!(done, 0, "hint {n}: the oldest has waited {waited:?}, less than {longest:?}");
            } else if waited == longest {
                assert_eq!(done, n + 1, "hint {n}: the oldest has waited {longest:?}: every hint so far is answered");
            }
            clock.advance(SignedDuration::from_secs(1));
        }
        assert_eq!(requests_to(&w, "GET /shipments").await - before, 1, "one poll during the stream");
        clock.advance(quiet(&w));
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        assert_eq!(requests_to(&w, "GET /shipments").await - before, 2, "and one for the rest once it stopped");
        assert_eq!(in_state(&w, JobState::Done).await, 40);
        assert_eq!(labels_stored(&w).await, 40);
    }

    async fn a_hint_stored_while_its_poll_runs_is_left_for_the_next_run(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "D", 3).await;
        let conn = &w.engine.connections[0];
        for (n, id) in orders[..2].iter().enumerate() {
            label(&w, *id).await;
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, n), &format!("early-{n}")).await;
        }
        clock.advance(quiet(&w));
        // ShipStation answers the poll slowly; while it is on its way, the warehouse
        // labels the third order and its webhook is stored.
        w.put_faults(json!({"rate_slow": 1.0, "slow_ms": 1500, "paths": ["/shipments"]})).await;
        let polls = requests_to(&w, "GET /shipments").await;
        let late = async {
            while requests_to(&w, "GET /shipments").await == polls {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            label(&w, orders[2]).await;
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, 2), "late").await;
        };
        let (run, ()) = tokio::join!(ingest_v1_webhook::run(&w.engine, conn), late);
        run.unwrap();
        w.put_faults(json!({})).await;

        let state = |key: &'static str| {
            let w = &w;
            async move { hints(w).await.into_iter().find(|j| j.idempotency_key == key).unwrap().state }
        };
        assert_eq!((state("v1hook:early-0").await, state("v1hook:early-1").await), (JobState::Done, JobState::Done));
        assert_eq!(state("v1hook:late").await, JobState::Pending, "stored after the poll started: not covered by it");

        clock.advance(quiet(&w));
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        assert_eq!(state("v1hook:late").await, JobState::Done, "the next run answers it");
        assert_eq!(labels_stored(&w).await, 3);
        assert_eq!(packed_writes_planned(&w).await, 3);
    }

    async fn a_failed_poll_leaves_its_hints_to_be_retried_and_they_are_answered_once_shipstation_is_back(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "E", 2).await;
        let conn = &w.engine.connections[0];
        for (n, id) in orders.iter().enumerate() {
            label(&w, *id).await;
            hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, n), &format!("fail-{n}")).await;
        }
        clock.advance(quiet(&w));
        w.put_faults(json!({"rate_500": 1.0, "paths": ["/shipments"]})).await;
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        for job in hints(&w).await {
            assert_eq!((job.state, job.attempts), (JobState::Pending, 1), "retried, one attempt spent: {job:?}");
            assert!(job.next_run_at > clock.now(), "after a backoff");
            assert!(job.last_error.is_some());
        }
        assert_eq!(labels_stored(&w).await, 0);

        w.put_faults(json!({})).await;
        clock.advance(SignedDuration::from_secs(3));
        ingest_v1_webhook::run(&w.engine, conn).await.unwrap();
        assert_eq!(in_state(&w, JobState::Done).await, 2, "a retried hint is not held back for a burst: it has waited enough");
        assert_eq!(labels_stored(&w).await, 2);
    }

    async fn a_poll_refused_with_a_rate_limit_puts_its_hints_back_without_spending_an_attempt(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "R", 1).await;
        label(&w, orders[0]).await;
        hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, 0), "limited").await;
        clock.advance(quiet(&w));
        // A client that will not wait out a long rate window (its own budget, so the
        // story's other requests are not held up): the 429 comes back as a named wait.
        let sandbox: url::Url = w.sandbox.base_url().parse().unwrap();
        let mut config = shipledger_shipstation::ClientConfig::v1(sandbox, "sandbox-key", "sandbox-secret");
        config.max_rate_wait = std::time::Duration::from_millis(1);
        let budget = Arc::new(shipledger_shipstation::InMemoryRateBudget::new());
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        w.engine.connections[0].shipstation = shipledger_shipstation::V1Client::with_budget(config, budget, clock_dyn).unwrap();
        w.put_faults(json!({"rate_429": 1.0, "paths": ["/shipments"]})).await;

        ingest_v1_webhook::run(&w.engine, &w.engine.connections[0]).await.unwrap();

        let job = hints(&w).await.pop().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Pending, 0), "a rate limit is a wait, not an attempt: {job:?}");
        assert!(job.next_run_at > clock.now(), "it waits for the window ShipStation named");
        assert_eq!(labels_stored(&w).await, 0);
    }

    async fn a_fulfillment_shipped_hint_polls_the_orders_marked_shipped_not_the_labels(w: World) {
        let clock = w.manual_clock();
        let orders = pushed(&w, "M", 1).await;
        w.control(&format!("/orders/{}/mark-shipped", orders[0]), json!({"carrierCode": "DHL", "trackingNumber": "JD01"})).await;
        let url = format!("{}/fulfillments?storeID=1&batchId=9", w.sandbox.base_url());
        hint(&w, &clock, "FULFILLMENT_SHIPPED", url, "marked").await;
        hint(&w, &clock, "ORDER_NOTIFY", format!("{}/orders?storeID=1&importBatch=x", w.sandbox.base_url()), "orders").await;
        clock.advance(quiet(&w));
        let (labels, fulfillments) = (requests_to(&w, "GET /shipments").await, requests_to(&w, "GET /fulfillments").await);

        ingest_v1_webhook::run(&w.engine, &w.engine.connections[0]).await.unwrap();

        assert_eq!(requests_to(&w, "GET /shipments").await, labels, "no label poll for it");
        assert_eq!(requests_to(&w, "GET /fulfillments").await - fulfillments, 1);
        assert_eq!(in_state(&w, JobState::Done).await, 2, "the ORDER_NOTIFY needs nothing and is done too");
        let completed = w
            .store
            .list_jobs(JobFilter { kind: Some(JobKind::WriteFulfilment), ..Default::default() })
            .await
            .unwrap()
            .into_iter()
            .filter(|j| matches!(&j.spec, shipledger_store::JobSpec::WriteFulfilment(f) if f.phase == Phase::Completed))
            .count();
        assert_eq!(completed, 1, "the order marked shipped elsewhere is completed in the ERP");
    }

    async fn hints_whose_lease_another_engine_took_over_during_a_poll_get_no_second_poll_from_the_first(w: World) {
        let clock = w.manual_clock();
        // The first engine's renewals stall (an hour apart): its hints' leases run out
        // with the clock while its labels poll is still waiting for ShipStation.
        w.engine.renew_every = std::time::Duration::from_secs(3_600);
        w.engine.connections[0].policy.webhook_coalesce = std::time::Duration::ZERO;
        let second = w.another_engine(clock.clone() as Arc<dyn Clock>).await;
        let conn = &w.engine.connections[0];
        hint(&w, &clock, "SHIP_NOTIFY", ship_notify_url(&w, 1), "labelled").await;
        hint(&w, &clock, "FULFILLMENT_SHIPPED", format!("{}/fulfillments?storeID=1&batchId=9", w.sandbox.base_url()), "marked").await;
        // ShipStation answers the labels poll after 1.5 s.
        w.put_faults(json!({"rate_slow": 1.0, "slow_ms": 1500, "paths": ["/shipments"]})).await;
        let (labels, fulfillments) = (requests_to(&w, "GET /shipments").await, requests_to(&w, "GET /fulfillments").await);

        let mut first = shipledger_engine::flows::shipments::ShipmentReport::default();
        let mut other = shipledger_engine::flows::shipments::ShipmentReport::default();
        let (worked, ()) = tokio::join!(ingest_v1_webhook::step(&w.engine, conn, &mut first), async {
            for _ in 0..1_000 {
                if requests_to(&w, "GET /shipments").await > labels {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            // The first engine's labels poll is in flight; the clock passes the lease and
            // the other engine claims both hints and answers them.
            clock.advance(SignedDuration::from_secs(31));
            let took = ingest_v1_webhook::step(&second, &second.connections[0], &mut other).await.unwrap();
            assert!(took, "the other engine takes over the hints whose lease ran out");
        });
        assert!(worked.unwrap());

        // The labels poll in flight could not be called back; the fulfillments poll, for
        // a hint no longer the first engine's, was made once, by the other engine.
        assert_eq!(requests_to(&w, "GET /shipments").await - labels, 2, "each engine's labels poll");
        assert_eq!(requests_to(&w, "GET /fulfillments").await - fulfillments, 1, "one fulfillments poll, by the hint's holder");
        assert_eq!(in_state(&w, JobState::Done).await, 2, "both hints are done, by the engine that held them");
        assert_eq!(in_state(&w, JobState::Running).await, 0);
    }
}
