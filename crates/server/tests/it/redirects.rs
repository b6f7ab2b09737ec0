//! No forged data through a redirect: deliveries the receiver accepts, pointing at the
//! configured ShipStation, whose poll that host answers with a redirect to another
//! one. The engine never sends that request, ingests nothing, writes nothing to the
//! ERP and raises one security exception that names the redirect and its target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::clock::SystemClock;
use shipledger_engine::config::Policy;
use shipledger_engine::flows::shipments::inbox;
use shipledger_engine::{Connection, Engine};
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::{Change, IngestV1Webhook, JobKind, JobState, NewJob, ShipmentFilter};

use crate::helpers::FakeErp;
use crate::{CONNECTION, Shipledger, TOKEN, counting_listener, hooks, on_both_stores, ship_notify};

/// A stand-in for the configured ShipStation that answers every request with a 302 to
/// the same path and query on `target`, counting what it is asked.
async fn redirecting_to(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let to = format!("http://{target}{}", uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// The engine of the connection whose ShipStation is at `base`, over `sl`'s store.
fn engine(sl: &Shipledger, base: SocketAddr, erp: Arc<FakeErp>) -> Engine {
    let mut config = ClientConfig::v1(format!("http://{base}").parse().unwrap(), "ss-key", "ss-secret");
    config.backoff_base = std::time::Duration::from_millis(10);
    let connection = Connection {
        name: CONNECTION.into(),
        erp,
        shipstation: V1Client::new(config).unwrap(),
        shipstation_v2: None,
        account_currency: shipledger_core::Currency::USD,
        // Hints are taken as soon as they are stored: these stories are about what the
        // poll they ask for may reach, not about how a burst is waited for.
        policy: Policy { max_push_attempts: 4, webhook_coalesce: std::time::Duration::ZERO, ..Policy::default() },
        gate: Default::default(),
        store_id: None,
        store_ids: Vec::new(),
        accounts: None,
    };
    Engine::new(sl.store.clone(), Arc::new(SystemClock), vec![connection])
}

on_both_stores! {
    async fn a_redirect_from_the_allowed_host_to_another_is_never_followed_ingests_nothing_and_raises_one_security_exception(backend) {
        let (elsewhere, elsewhere_hits) = counting_listener().await;
        let (allowed, allowed_hits) = redirecting_to(elsewhere).await;
        let Some(sl) = Shipledger::on(backend, vec![hooks(&format!("http://{allowed}"))]).await else { return };
        let erp = FakeErp::new();
        let engine = engine(&sl, allowed, erp.clone());

        // Two deliveries the receiver rightly accepts: they point at the configured host.
        let first = format!("http://{allowed}/shipments?storeID=1&batchId=2");
        let second = format!("http://{allowed}/fulfillments?storeID=1&batchId=3");
        assert_eq!(sl.post(&sl.v1_url(TOKEN), ship_notify(&first)).await, 200);
        let fulfilled = json!({"resource_url": second, "resource_type": "FULFILLMENT_SHIPPED"}).to_string();
        assert_eq!(sl.post(&sl.v1_url(TOKEN), fulfilled).await, 200);
        assert_eq!(sl.jobs("ingest_v1_webhook").await.len(), 2);

        inbox(&engine, &engine.connections[0]).await.unwrap();
        // Later passes find nothing left to retry.
        inbox(&engine, &engine.connections[0]).await.unwrap();

        assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0, "no request reached the other host");
        assert_eq!(allowed_hits.load(Ordering::SeqCst), 2, "one poll of labels and one of fulfillments, never again");
        let stored = sl.store.list_shipments(ShipmentFilter { connection: Some(CONNECTION.into()), limit: 100, ..Default::default() }).await.unwrap();
        assert!(stored.is_empty(), "nothing ingested: {stored:?}");
        assert!(sl.jobs(JobKind::WriteFulfilment.as_str()).await.is_empty(), "no ERP write planned");
        assert!(erp.fulfilment_writes.lock().unwrap().is_empty(), "nothing written to the ERP");
        for job in sl.jobs("ingest_v1_webhook").await {
            assert_eq!(job.state, JobState::Dead, "finished, never retried: {job:?}");
            assert!(job.last_error.as_deref().unwrap_or_default().contains("redirected"), "{job:?}");
        }

        let exceptions = sl.exceptions(ExceptionKind::WebhookForeignHost).await;
        assert_eq!(exceptions.len(), 1, "{exceptions:?}");
        let e = &exceptions[0];
        assert_eq!((e.owner, e.record_id.as_str(), e.occurrences), (Owner::Admin, elsewhere.to_string().as_str(), 2));
        assert_eq!(e.detail["reason"], json!("redirect"));
        // Nothing is fetched from a hint's URL: what was redirected is the poll each
        // hint asked for, of the configured API (labels, then fulfillments).
        let targets: Vec<&str> = e.detail["offending_urls"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
        assert_eq!(targets.len(), 2, "both targets kept: {targets:?}");
        assert!(targets[0].starts_with(&format!("http://{elsewhere}/shipments?")), "{targets:?}");
        assert!(targets[1].starts_with(&format!("http://{elsewhere}/fulfillments?")), "{targets:?}");
        let second_target = targets[1].to_string();
        assert_eq!(e.detail["redirect_to"], json!(second_target));
        assert_eq!(e.detail["resource_url"], json!(second), "the hint it was for");
        let message = e.detail["message"].as_str().unwrap();
        assert!(message.contains("redirect") && message.contains(&second_target) && message.contains("not followed"), "{message}");
    }

    async fn a_stored_webhook_job_with_an_oversized_resource_url_is_finished_without_a_request_or_a_retry(backend) {
        let (elsewhere, _) = counting_listener().await;
        let (allowed, allowed_hits) = redirecting_to(elsewhere).await;
        let Some(sl) = Shipledger::on(backend, vec![hooks(&format!("http://{allowed}"))]).await else { return };
        let engine = engine(&sl, allowed, FakeErp::new());
        // As a receiver without the length check stored it.
        let huge = format!("http://{allowed}/shipments?batchId={}", "9".repeat(1_500_000));
        let now = jiff::Timestamp::now();
        let mut change = Change::new(CONNECTION, now);
        change.jobs.push(NewJob::new(
            IngestV1Webhook { resource_url: huge, resource_type: "SHIP_NOTIFY".into(), received_at: None },
            "v1hook:huge",
            now,
        ));
        sl.store.commit(change).await.unwrap();

        inbox(&engine, &engine.connections[0]).await.unwrap();

        assert_eq!(allowed_hits.load(Ordering::SeqCst), 0, "never fetched");
        let jobs = sl.jobs("ingest_v1_webhook").await;
        assert_eq!(jobs[0].state, JobState::Dead, "{:?}", jobs[0].state);
        assert!(jobs[0].last_error.as_deref().unwrap_or_default().contains("more than the 2048 accepted"), "{:?}", jobs[0].last_error);
    }
}

#[tokio::test]
async fn the_v2_webhook_keys_are_never_fetched_through_a_redirect_to_another_origin() {
    let (elsewhere, elsewhere_hits) = counting_listener().await;
    let (keys_host, _) = redirecting_to(elsewhere).await;

    let err = shipledger_server::load_webhook_keys(&format!("http://{keys_host}/jwks").parse().unwrap()).await.unwrap_err();

    assert!(err.contains("redirected") && err.contains(&format!("http://{elsewhere}/jwks")) && err.contains("not followed"), "{err}");
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_v2_webhook_keys_follow_a_redirect_within_their_origin() {
    let sandbox = shipledger_sandbox::Sandbox::start(Default::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let jwks = reqwest::get(format!("{}/jwks", sandbox.base_url())).await.unwrap().text().await.unwrap();
    let app = axum::Router::new()
        .route("/old", axum::routing::get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/jwks")]) }))
        .route("/jwks", axum::routing::get(move || async move { jwks }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let keys = shipledger_server::load_webhook_keys(&format!("http://{addr}/old").parse().unwrap()).await.unwrap();

    assert!(!keys.is_empty());
}
