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
use tokio::sync::watch;

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
}

/// A bound HTTP server; [`Server::local_addr`] lets a test start it on port 0.
pub struct Server {
    listener: TcpListener,
    app: Router,
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
        let state = AppState { store, clock, hooks: Arc::new(hooks) };
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::render))
            .merge(webhooks::routes())
            .with_state(state);
        Ok(Server { listener, app })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let probe = state.store.list_exceptions(ExceptionFilter { limit: 1, ..Default::default() }).await;
    match probe {
        Ok(_) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}\n")),
    }
}
