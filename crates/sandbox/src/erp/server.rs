//! Start-up and plumbing of the sandbox ERP: the config, the shared state behind one
//! mutex, bearer-token auth for `/api/`, the JSON error shape, and the optional state
//! file (one JSON document, written atomically a moment after changes and on
//! shutdown, read back at start).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shipledger_core::money::Currency;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::model::{ErpWorld, Refusal};
use crate::clock::VirtualClock;

/// How a sandbox ERP is started.
#[derive(Clone)]
pub struct SandboxErpConfig {
    /// The bearer token `/api/` requires.
    pub api_key: String,
    /// The company's base currency (journals post in it). GBP by default.
    pub base_currency: Currency,
    /// Seed of the FX rate table's random walk.
    pub seed: u64,
    /// Keep state in this JSON file across restarts (memory only when `None`).
    pub state_path: Option<PathBuf>,
}

impl Default for SandboxErpConfig {
    fn default() -> Self {
        SandboxErpConfig { api_key: "sandbox-erp-key".into(), base_currency: Currency::GBP, seed: 1, state_path: None }
    }
}

impl std::fmt::Debug for SandboxErpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxErpConfig")
            .field("api_key", &"<redacted>")
            .field("base_currency", &self.base_currency)
            .field("seed", &self.seed)
            .field("state_path", &self.state_path)
            .finish()
    }
}

/// Why a sandbox ERP could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxErpError {
    #[error("cannot listen on {addr}: {source}; pick a free port or use port 0")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the sandbox ERP state file {path}: {detail}; move it away to start empty")]
    State { path: PathBuf, detail: String },
    #[error("the sandbox ERP needs an API key; pass --api-key")]
    NoApiKey,
}

pub(crate) struct ErpShared {
    pub config: SandboxErpConfig,
    pub clock: VirtualClock,
    pub world: Mutex<ErpWorld>,
    pub dirty: Notify,
}

impl ErpShared {
    pub fn with_world<R>(&self, f: impl FnOnce(&mut ErpWorld) -> R) -> R {
        let mut world = self.world.lock().expect("sandbox ERP lock poisoned");
        let out = f(&mut world);
        drop(world);
        self.dirty.notify_one();
        out
    }

    pub fn read_world<R>(&self, f: impl FnOnce(&ErpWorld) -> R) -> R {
        let world = self.world.lock().expect("sandbox ERP lock poisoned");
        f(&world)
    }

    pub fn fresh_world(&self) -> ErpWorld {
        ErpWorld::new(self.config.base_currency, self.config.seed, self.clock.now().to_zoned(jiff::tz::TimeZone::UTC).date())
    }
}

/// The sandbox ERP's entry point.
pub struct SandboxErp;

impl SandboxErp {
    /// Bind `listen` (port 0 picks a free port) and serve until the handle is shut
    /// down or dropped.
    pub async fn start(config: SandboxErpConfig, listen: SocketAddr) -> Result<SandboxErpHandle, SandboxErpError> {
        if config.api_key.trim().is_empty() {
            return Err(SandboxErpError::NoApiKey);
        }
        let listener = TcpListener::bind(listen).await.map_err(|source| SandboxErpError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| SandboxErpError::Bind { addr: listen, source })?;
        let base_url = format!("http://{addr}");

        let loaded = match &config.state_path {
            Some(path) => load(path)?,
            None => None,
        };
        let shared = Arc::new(ErpShared {
            clock: VirtualClock::new(),
            world: Mutex::new(ErpWorld::new(config.base_currency, config.seed, jiff::civil::date(2000, 1, 1))),
            dirty: Notify::new(),
            config,
        });
        let world = loaded.unwrap_or_else(|| shared.fresh_world());
        *shared.world.lock().expect("fresh lock") = world;

        let mut running = crate::persist::Running::new();
        if let Some(path) = shared.config.state_path.clone() {
            running.keep_saved(shared.clone(), |s| &s.dirty, |s, path| s.read_world(|w| crate::persist::write(w, path)), path);
        }
        running.serve(listener, router(shared.clone()));
        tracing::info!(%addr, "sandbox ERP listening");
        Ok(SandboxErpHandle { addr, base_url, shared, running })
    }
}

fn router(shared: Arc<ErpShared>) -> Router {
    let api = super::routes::routes().route_layer(axum::middleware::from_fn_with_state(shared.clone(), auth));
    Router::new()
        .merge(api)
        .merge(super::control::routes())
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("the sandbox ERP has no {}", uri.path()))
        })
        .with_state(shared)
}

/// `/api/` needs `Authorization: Bearer <api_key>`; counts requests; plays injected
/// faults.
async fn auth(State(shared): State<Arc<ErpShared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let stat = format!("{} {}", request.method(), fold_ids(&path));
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let ok = token.is_some_and(|t| constant_time_eq(t, &shared.config.api_key));
    let (fault, latency_ms) = shared.with_world(|w| {
        *w.stats.requests.entry(stat).or_default() += 1;
        if !ok {
            w.stats.unauthorized += 1;
            return (false, 0);
        }
        if w.fail_next > 0 {
            w.fail_next -= 1;
            w.stats.faults_injected += 1;
            return (true, w.latency_ms);
        }
        (false, w.latency_ms)
    });
    if latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    if !ok {
        let detail = if token.is_none() { "send Authorization: Bearer <api key>" } else { "the API key is not valid" };
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail.to_string()).into_response();
    }
    if fault {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the ERP is temporarily unavailable (injected fault)".into()).into_response();
    }
    next.run(request).await
}

fn fold_ids(path: &str) -> String {
    let mut segs: Vec<&str> = path.split('/').collect();
    for i in 1..segs.len() {
        if matches!(segs[i - 1], "orders" | "journals" | "stock") && segs[i] != "adjustments" && !segs[i].is_empty() {
            segs[i] = "{id}";
        }
    }
    segs.join("/")
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// `{"error": {"code", "message"}}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: String) -> ApiError {
        ApiError { status, code, message }
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message.into())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            Refusal::NoRate(m) => ApiError::new(StatusCode::NOT_FOUND, "no_rate", m),
            Refusal::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", m),
            Refusal::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            Refusal::Unprocessable(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

/// Parse a JSON body (empty means the type's default, when it has one).
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("the request body does not parse: {e}")))
}

/// A running sandbox ERP. Dropping it stops the server; [`SandboxErpHandle::shutdown`]
/// also writes the state file.
pub struct SandboxErpHandle {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<ErpShared>,
    running: crate::persist::Running,
}

impl SandboxErpHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the API under `/api`, control under `/_sandbox`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The ERP's virtual clock (also moved by `POST /_sandbox/clock/advance`).
    pub fn clock(&self) -> &VirtualClock {
        &self.shared.clock
    }

    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// Statistics, as `GET /_sandbox/stats` returns them.
    pub fn stats(&self) -> serde_json::Value {
        super::control::stats_json(&self.shared)
    }

    /// A copy of the whole ERP, for assertions.
    pub fn snapshot(&self) -> ErpWorld {
        self.shared.read_world(Clone::clone)
    }

    /// Stop serving and write the state file.
    pub async fn shutdown(mut self) {
        self.running.stop().await;
        if let Some(path) = &self.shared.config.state_path
            && let Err(e) = self.shared.read_world(|w| crate::persist::write(w, path))
        {
            tracing::warn!(error = %e, "could not write the sandbox ERP state file");
        }
    }
}


fn load(path: &Path) -> Result<Option<ErpWorld>, SandboxErpError> {
    crate::persist::read(path).map_err(|detail| SandboxErpError::State { path: path.to_path_buf(), detail })
}

