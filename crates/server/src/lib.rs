//! shipledger's HTTP surface: health, readiness, Prometheus metrics and the
//! ShipStation webhook receivers ([`webhooks`]); the REST API and the dashboard arrive
//! with later issues. It decides nothing itself: it reads the store and hands work to
//! the engine through the store's outbox.
//!
//! | path | answers |
//! | --- | --- |
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when the store answers, 503 otherwise |
//! | `GET /metrics` | orders by state, outbox jobs by kind and state, open exceptions by kind and owner, per connection |
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
use shipledger_store::{ExceptionFilter, ExceptionState, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub mod webhooks;

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
    /// Listen on `addr`, serving the connections `hooks` describes (their names are
    /// also the connections `/metrics` reports). `clock` is the one the engine runs on
    /// (a [`SystemClock`](shipledger_core::clock::SystemClock) in production).
    pub async fn bind(
        addr: SocketAddr,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        hooks: Vec<ConnectionHooks>,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let state = AppState { store, clock, hooks: Arc::new(hooks) };
        let app = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
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

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    out.push_str("# HELP shipledger_orders Orders by shipledger state.\n# TYPE shipledger_orders gauge\n");
    let mut jobs = String::from("# HELP shipledger_jobs Outbox jobs by kind and state.\n# TYPE shipledger_jobs gauge\n");
    for c in state.hooks.iter().map(|h| &h.name) {
        match state.store.count_orders_by_state(c).await {
            Ok(counts) => {
                for (s, n) in counts {
                    out.push_str(&format!("shipledger_orders{{connection=\"{}\",state=\"{s}\"}} {n}\n", label(c)));
                }
            }
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}\n")),
        }
        if let Ok(counts) = state.store.count_jobs(c).await {
            for (kind, s, n) in counts {
                jobs.push_str(&format!(
                    "shipledger_jobs{{connection=\"{}\",kind=\"{}\",state=\"{s}\"}} {n}\n",
                    label(c),
                    label(&kind)
                ));
            }
        }
    }
    out.push_str(&jobs);
    out.push_str("# HELP shipledger_exceptions_open Open exceptions by kind and owner.\n# TYPE shipledger_exceptions_open gauge\n");
    let open = state
        .store
        .list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), limit: 100_000, ..Default::default() })
        .await
        .unwrap_or_default();
    let mut counts = std::collections::BTreeMap::new();
    for e in open {
        *counts.entry((e.connection, e.kind.code(), e.owner.to_string())).or_insert(0u64) += 1;
    }
    for ((c, kind, owner), n) in counts {
        out.push_str(&format!(
            "shipledger_exceptions_open{{connection=\"{}\",kind=\"{kind}\",owner=\"{owner}\"}} {n}\n",
            label(&c)
        ));
    }
    (StatusCode::OK, out)
}
