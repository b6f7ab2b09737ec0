//! A faithful local ShipStation.
//!
//! ShipStation has no sandbox: integrators test against live accounts. This crate is
//! one, quirks included, so shipledger's tests, its demo and its users' own tests run
//! offline. One port serves:
//!
//! - **v1** at the root (`/orders`, `/shipments`, `/fulfillments`, `/webhooks`, stores,
//!   warehouses, carriers, products, customers, users): Basic auth, the fixed-window
//!   rate limit with its `X-Rate-Limit-*` headers on every answer, US Pacific times
//!   without an offset, `orderKey` upserts, ASP.NET-shaped errors and a 404 for every
//!   path ShipStation does not have;
//! - **v2**, the parts shipledger uses (`/v2/labels`, `/v2/tracking`,
//!   `/v2/environment/webhooks`, `/v2/inventory`): `API-Key` auth, 200 requests a minute
//!   with `Retry-After`, `se-` ids that match the v1 integers, RSA-SHA256 signed `track`
//!   webhooks;
//! - a **control API** under `/_sandbox/` (see [`control`]) that plays the warehouse and
//!   the carriers: labels for all or some lines, voids, splits, merges, carrier scans,
//!   orders marked shipped elsewhere, a simulated warehouse that does all of it on its
//!   own, fault injection, statistics and a virtual clock.
//!
//! The central type is [`World`](state::World): every order, label, fulfilment,
//! webhook subscription and tracking history, behind one mutex. HTTP handlers lock it,
//! change it and queue webhook deliveries, which a background task sends with retries.
//! State lives in memory; [`SandboxConfig::state_path`] keeps it in a JSON file across
//! restarts.

#![recursion_limit = "256"]

pub mod clock;
pub mod control;
pub mod erp;
mod delivery;
mod error;
mod faults;
mod gate;
pub(crate) mod persist;
mod query;
pub mod signing;
pub mod simulator;
pub mod state;
pub mod traffic;
mod v1;
mod v2;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use clock::VirtualClock;
pub use faults::Faults;
pub use simulator::SimulationConfig;

/// How a sandbox is started: the credentials it accepts, its rate limits, where it
/// keeps its state and the seed of every random choice it makes.
#[derive(Clone)]
pub struct SandboxConfig {
    /// v1 API key (the Basic auth user name).
    pub api_key: String,
    /// v1 API secret (the Basic auth password).
    pub api_secret: String,
    /// v2 `API-Key` header value.
    pub v2_api_key: String,
    /// v1 requests allowed per window (ShipStation: 40).
    pub rate_limit: u32,
    /// v1 window length (ShipStation: 60 s, fixed windows).
    pub rate_window: Duration,
    /// v2 requests allowed per minute (ShipStation: 200).
    pub v2_rate_limit: u32,
    /// Keep state in this JSON file across restarts (memory only when `None`).
    pub state_path: Option<PathBuf>,
    /// Seed of the simulator's and the fault injector's random choices.
    pub seed: u64,
    /// Start the simulated warehouse and carrier at once.
    pub simulation: Option<SimulationConfig>,
    /// Base of webhook delivery retries (doubles each time, six attempts).
    pub webhook_retry_base: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            api_key: "sandbox-key".into(),
            api_secret: "sandbox-secret".into(),
            v2_api_key: "sandbox-v2-key".into(),
            rate_limit: 40,
            rate_window: Duration::from_secs(60),
            v2_rate_limit: 200,
            state_path: None,
            seed: 1,
            simulation: None,
            webhook_retry_base: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .field("v2_api_key", &"<redacted>")
            .field("rate_limit", &self.rate_limit)
            .field("rate_window", &self.rate_window)
            .field("v2_rate_limit", &self.v2_rate_limit)
            .field("state_path", &self.state_path)
            .field("seed", &self.seed)
            .field("simulation", &self.simulation)
            .finish()
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}; pick a free port or use port 0")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the sandbox state file {path}: {detail}; move it away to start empty")]
    State { path: PathBuf, detail: String },
    #[error("cannot make the webhook signing key: {0}")]
    Key(String),
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub config: SandboxConfig,
    pub clock: VirtualClock,
    pub world: Mutex<state::World>,
    pub rng: Mutex<ChaCha8Rng>,
    pub signer: signing::Signer,
    pub outbox: delivery::Outbox,
    /// Set when the world changed and the state file is behind.
    pub dirty: Notify,
    pub base_url: String,
}

impl Shared {
    /// Run `f` on the world; marks the state file as behind.
    pub fn with_world<R>(&self, f: impl FnOnce(&mut state::World) -> R) -> R {
        let mut world = self.world.lock().expect("sandbox world lock poisoned");
        let out = f(&mut world);
        drop(world);
        self.dirty.notify_one();
        out
    }

    pub fn read_world<R>(&self, f: impl FnOnce(&state::World) -> R) -> R {
        let world = self.world.lock().expect("sandbox world lock poisoned");
        f(&world)
    }
}

/// The sandbox's entry point.
pub struct Sandbox;

impl Sandbox {
    /// Bind `listen` (port 0 picks a free port) and serve until the handle is shut
    /// down or dropped.
    pub async fn start(config: SandboxConfig, listen: SocketAddr) -> Result<SandboxHandle, SandboxError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| SandboxError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind { addr: listen, source })?;
        let base_url = format!("http://{addr}");

        let clock = VirtualClock::new();
        let world = match &config.state_path {
            Some(path) => persist::read(path).map_err(|detail| SandboxError::State { path: path.clone(), detail })?,
            None => None,
        };
        let mut world: state::World = world.unwrap_or_else(|| state::World::new(clock.now()));
        world.backfill_products(clock.now());
        world.backfill_label_times();
        let signer = signing::Signer::generate(config.seed).map_err(SandboxError::Key)?;
        let shared = Arc::new(Shared {
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed)),
            clock,
            world: Mutex::new(world),
            signer,
            outbox: delivery::Outbox::new(),
            dirty: Notify::new(),
            base_url: base_url.clone(),
            config,
        });
        if let Some(sim) = shared.config.simulation.clone() {
            // A simulation given at start-up wins over a persisted one.
            shared.with_world(|w| w.simulation = sim);
        }

        let mut running = persist::Running::new();
        running.spawn(delivery::run(shared.clone(), running.stop_signal()));
        running.spawn(simulator::run(shared.clone(), running.stop_signal()));
        if let Some(path) = shared.config.state_path.clone() {
            running.keep_saved(shared.clone(), |s| &s.dirty, |s, path| s.read_world(|w| persist::write(w, path)), path);
        }
        running.serve(listener, router(shared.clone()));
        tracing::info!(%addr, "sandbox shipstation listening");
        Ok(SandboxHandle { addr, base_url, shared, running })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(v1::routes())
        .merge(v2::routes())
        .merge(control::routes())
        .fallback(error::unknown_path)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate::gate))
        .with_state(shared)
}

/// A running sandbox. Dropping it stops the server; [`SandboxHandle::shutdown`] also
/// waits for in-flight work and writes the state file.
pub struct SandboxHandle {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    running: persist::Running,
}

impl SandboxHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: v1 at the root, v2 under `/v2`, control under `/_sandbox`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The sandbox's virtual clock (shared with its HTTP control API).
    pub fn clock(&self) -> &VirtualClock {
        &self.shared.clock
    }

    /// PEM of the public key that verifies the sandbox's v2 webhook signatures.
    pub fn webhook_public_key_pem(&self) -> String {
        self.shared.signer.public_key_pem()
    }

    /// The key id sent in `x-shipengine-rsa-sha256-key-id`.
    pub fn webhook_key_id(&self) -> String {
        self.shared.signer.key_id().to_string()
    }

    /// Statistics, as `GET /_sandbox/stats` returns them.
    pub fn stats(&self) -> serde_json::Value {
        control::stats_json(&self.shared)
    }

    /// Read the whole account as it is now (orders, labels, tracking, statistics),
    /// without a request: what a measuring instrument reads so that it never adds
    /// to the request counts it reports.
    pub fn read_world<R>(&self, f: impl FnOnce(&state::World) -> R) -> R {
        self.shared.read_world(f)
    }

    /// Change the account directly, as a person in ShipStation's UI would (a story's
    /// ship-by date, say): what the control API does not offer.
    pub fn edit_world<R>(&self, f: impl FnOnce(&mut state::World) -> R) -> R {
        self.shared.with_world(f)
    }

    /// Replace the simulation (as `PUT /_sandbox/simulation` does); the warehouse
    /// plans every order waiting for a label from this moment.
    pub fn set_simulation(&self, simulation: SimulationConfig) -> Result<(), String> {
        simulation.validate()?;
        self.shared.with_world(|w| w.simulation = simulation);
        Ok(())
    }

    /// Replace the fault injection (as `PUT /_sandbox/faults` does).
    pub fn set_faults(&self, faults: Faults) -> Result<(), String> {
        faults.validate()?;
        self.shared.with_world(|w| w.faults = faults);
        Ok(())
    }

    /// Stop serving, let the background tasks finish and write the state file.
    pub async fn shutdown(mut self) {
        self.running.stop().await;
        if let Some(path) = &self.shared.config.state_path
            && let Err(e) = self.shared.read_world(|w| persist::write(w, path))
        {
            tracing::warn!(error = %e, "could not write the sandbox state file");
        }
    }
}

