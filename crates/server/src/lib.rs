//! shipledger's HTTP surface: health, readiness, Prometheus metrics and the
//! ShipStation webhook receivers ([`webhooks`]); the REST API and the dashboard arrive
//! with later issues. It decides nothing itself: it reads the store and hands work to
//! the engine through the store's outbox.
//!
//! | path | answers |
//! | --- | --- |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when the store answers, 503 otherwise |
//! | `GET /metrics` | the process's Prometheus metrics ([`metrics`]): external requests, rate budgets, orders, jobs, open exceptions, webhook intake |
//! | `POST /webhooks/shipstation/{connection}/{token}` | a v1 webhook, stored as an `ingest_v1_webhook` job (200), or 404 / 400 / 413 / 503 |
//! | `POST /webhooks/shipstation-v2/{connection}` | a signed v2 `track` webhook, stored as an `ingest_v2_track` job (200), or 404 / 400 / 401 / 413 / 503 |
//! | `/api/v1/...` | the REST API ([`api`]), bearer tokens with roles; its OpenAPI 3.1 document at `/api/v1/openapi.json` |
//!
//! Concurrent deliveries are stored together, one transaction per batch, by one
//! committer task ([`intake`]); each is answered 200 only once its batch committed.
//! A server given a waker ([`Server::wake_on_intake`]) signals it after each batch
//! that planned work, so the engine's idle lanes take it at once.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use shipledger_core::clock::Clock;
use shipledger_store::{ExceptionFilter, Store};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub mod api;
pub mod intake;
mod metrics;
pub mod webhooks;

pub use metrics::WEBHOOKS_RECEIVED;

pub use webhooks::{
    ConnectionHooks, MAX_WEBHOOK_BODY, hooks_from_config, load_webhook_keys, resource_url_allowed, resource_url_mismatch,
    with_shipment_items,
};

#[derive(Clone)]
pub(crate) struct AppState {
    store: Arc<dyn Store>,
    /// The process's one clock: the receivers stamp deliveries and judge the v2
    /// signature window with it.
    clock: Arc<dyn Clock>,
    hooks: Arc<Vec<ConnectionHooks>>,
    /// Where accepted deliveries go to be stored in the next batch.
    inbox: intake::Inbox,
}

/// A bound HTTP server; [`Server::local_addr`] lets a test start it on port 0.
pub struct Server {
    listener: TcpListener,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hooks: Vec<ConnectionHooks>,
    wake: Option<Arc<Notify>>,
    queue: usize,
    max_batch: usize,
    api: Vec<api::ApiConnection>,
}

impl Server {
    /// Listen on `addr`, serving the webhooks of the connections `hooks` describes.
    /// `clock` is the one the engine runs on (a
    /// [`SystemClock`](shipledger_core::clock::SystemClock) in production). `/metrics`
    /// renders the process's recorder, installed here if nothing installed it before;
    /// for the store's gauges to move, `store` is the process's `MeteredStore`
    /// (`shipledger_engine::metrics`).
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hooks: Vec<ConnectionHooks>,
    ) -> std::io::Result<Server> {
        shipledger_engine::metrics::recorder();
        ::metrics::describe_counter!(WEBHOOKS_RECEIVED, "Webhook deliveries received, by connection, source (v1, v2) and outcome.");
        let listener = TcpListener::bind(addr).await?;
        Ok(Server { listener, store, clock, hooks, wake: None, queue: intake::QUEUE, max_batch: intake::MAX_BATCH, api: Vec::new() })
    }

    /// Signal `waker` (`notify_waiters`) whenever a batch of webhook deliveries
    /// planned new work: `serve` passes the engine's
    /// [`Engine::waker`](shipledger_engine::Engine::waker), so an idle lane takes a
    /// stored hint at once instead of at its next idle check.
    pub fn wake_on_intake(mut self, waker: Arc<Notify>) -> Server {
        self.wake = Some(waker);
        self
    }

    /// Let at most `queue` deliveries wait for the committer (more are answered 503
    /// with `Retry-After`) and store at most `max_batch` per transaction; the
    /// defaults are [`intake::QUEUE`] and [`intake::MAX_BATCH`].
    pub fn intake_limits(mut self, queue: usize, max_batch: usize) -> Server {
        self.queue = queue.max(1);
        self.max_batch = max_batch.max(1);
        self
    }

    /// Serve the REST API for these connections (their policies give the SLAs).
    pub fn api(mut self, connections: Vec<api::ApiConnection>) -> Server {
        self.api = connections;
        self
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `stop` turns true; the deliveries already taken are stored and
    /// answered before this returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        let Server { listener, store, clock, hooks, wake, queue, max_batch, api: api_connections } = self;
        let (inbox, deliveries) = intake::Inbox::new(queue);
        let committer = tokio::spawn(intake::commit_loop(store.clone(), deliveries, max_batch, wake));
        let api_state = api::ApiState { store: store.clone(), clock: clock.clone(), connections: Arc::new(api_connections) };
        let state = AppState { store, clock, hooks: Arc::new(hooks), inbox };
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::render))
            .merge(webhooks::routes())
            .with_state(state)
            .merge(api::router(api_state));
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        // The router (and with it every sender to the committer) is gone: the
        // committer stores what is still queued and ends.
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "the webhook committer ended abnormally");
        }
        served
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let probe = state.store.list_exceptions(ExceptionFilter { limit: 1, ..Default::default() }).await;
    match probe {
        Ok(_) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}\n")),
    }
}
