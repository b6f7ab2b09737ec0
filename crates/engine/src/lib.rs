//! The engine: the only place where shipledger decides what happens. It reads the ERP
//! and ShipStation through their connectors, commits every decision to the store
//! together with the external writes it needs (the outbox), and then performs those
//! writes, verified.
//!
//! # The run loop
//!
//! [`Engine::tick`] does one full pass for every connection:
//!
//! 1. **Release** ([`flows::release`]): read every order the ERP changed since the
//!    watermark, judge each with the release gate and commit the decision — state,
//!    lines, a `sync_order` job when ShipStation must change, events, exceptions, the
//!    advanced watermark — in one transaction per order.
//! 2. **Recheck** ([`flows::recheck`]), every `held_recheck_interval`: read every
//!    held order and every released order not yet shipped again by id, in batches,
//!    and judge each again: a held order fixed elsewhere (a product's weight) is
//!    released, one the ERP no longer wants shipped is withdrawn. On the ticks in
//!    between, the held orders whose products or addresses the ERP says changed.
//! 3. **Push** ([`flows::push`]): claim runnable `sync_order` jobs, up to ten batches
//!    of up to 100 a run, send each batch as one `createorders`, read the run's orders
//!    back together and commit what ShipStation shows.
//!
//! 4. **Shipments** ([`flows::shipments`]), when the poll is due: labels, voids,
//!    fulfillments and scans; then the webhook inbox and the ERP write-backs, each
//!    job kind through its handler ([`flows::run_jobs`]); then the monitors, and the
//!    check for stored jobs of kinds this build does not know ([`flows::unknown_jobs`]).
//!
//! Every job ends through [`jobs`]: done, dead with its exception, or retried per its
//! kind's [`RetryPolicy`](shipledger_core::retry::RetryPolicy) (`[policy.retry.<kind>]`).
//!
//! Reading the whole change feed before pushing is what keeps 1,000 new orders to ten
//! `createorders` requests and two pages of read-back; `sync --once` and the tests use the tick.
//!
//! # Lanes
//!
//! A running engine ([`Engine::run`], for `serve` and `sync`) does the same work in
//! [`lanes`]: per connection, one lane per budget (ERP reads, ERP writes, ShipStation
//! v1, ShipStation v2, webhook intake), concurrently and bounded, so a spent budget or
//! a stalled ERP delays only its own lane. [`Engine::try_execute_one`] is one lane's
//! one step. On its stop signal the engine drains (stops claiming, lets steps in
//! flight finish for a bounded grace, cancels the rest and gives their leases back).
//! A crash anywhere leaves work either committed or still planned, and doing it again
//! is safe because every external write is keyed.
//!
//! Time comes from the injected [`Clock`](shipledger_core::clock::Clock), the one
//! clock of every crate: the engine, its store-backed rate budget and the ShipStation
//! clients it builds all read the same one, so a test that injects a
//! [`ManualClock`](shipledger_core::clock::ManualClock) decides what "now" is for
//! every threshold (recheck and poll intervals, overdue scans, job backoffs).

pub mod budget;
pub mod check;
pub mod close;
pub mod config;
pub mod flows;
pub mod jobs;
pub mod lanes;
pub mod margins;
pub mod metrics;
pub mod schedule;

use std::sync::Arc;

use shipledger_core::clock::Clock;
use shipledger_core::release::GatePolicy;
use shipledger_erp::Erp;
use shipledger_shipstation::{ClientConfig, V1Client};
use shipledger_store::Store;

use crate::budget::StoreRateBudget;
use crate::config::{Config, ConnectionConfig, Policy};

/// Why a pass of the engine stopped early. Work already committed stays committed;
/// the next pass picks up the rest.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] shipledger_store::StoreError),
    #[error(transparent)]
    Erp(#[from] shipledger_erp::ErpError),
    #[error(transparent)]
    ShipStation(#[from] shipledger_shipstation::Error),
    #[error("{0}")]
    Setup(String),
}

/// One ERP plus one ShipStation account, ready to work.
pub struct Connection {
    pub name: String,
    pub erp: Arc<dyn Erp>,
    pub shipstation: V1Client,
    /// ShipStation v2 (tracking), when the connection has a v2 key.
    pub shipstation_v2: Option<shipledger_shipstation::V2Client>,
    /// The currency of the ShipStation account's carrier costs (v1 sends bare numbers).
    pub account_currency: shipledger_core::Currency,
    pub policy: Policy,
    pub gate: GatePolicy,
    /// The ShipStation store new orders go to (the account's first manual store when
    /// `None`).
    pub store_id: Option<i64>,
    /// The ShipStation stores the reconciler reads (empty: the store orders go to).
    pub store_ids: Vec<i64>,
    /// Where the connection's cost journals post (`[connections.accounts]`); `None`:
    /// it posts none.
    pub accounts: Option<shipledger_core::journal::JournalAccounts>,
}

/// The engine, over a store and its connections.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub connections: Vec<Connection>,
    /// Names this worker in job and schedule leases (the head of every lease token),
    /// so [`Engine::release_leases`] finds them. Unique per engine.
    pub worker: String,
    /// How many steps of each lane kind [`Engine::run`] runs at once across
    /// connections.
    pub lane_limits: lanes::LaneLimits,
    /// How often the leases of a running pass and of the jobs a step holds are
    /// renewed ([`schedule::RENEW_EVERY`]; a story may make it shorter).
    pub renew_every: std::time::Duration,
    /// The lanes' rotation, unfinished passes and wake-up signal ([`lanes`]).
    lanes_state: lanes::LaneState,
}

/// What one tick did, summed over connections.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub poll: flows::release::PollReport,
    pub recheck: flows::recheck::RecheckReport,
    pub push: flows::push::PushReport,
    pub shipments: flows::shipments::ShipmentReport,
    pub journals: flows::journals::BatchReport,
}

impl TickReport {
    /// Add what another pass did.
    pub fn add(&mut self, other: &TickReport) {
        self.poll.add(&other.poll);
        self.recheck.add(&other.recheck);
        self.push.add(&other.push);
        self.shipments.add(&other.shipments);
        self.journals.add(&other.journals);
    }

    /// Did this tick change anything?
    pub fn busy(&self) -> bool {
        self.poll.seen > 0
            || self.recheck.changed()
            || self.push.requests > 0
            || self.push.pushed > 0
            || self.push.already_in_sync > 0
            || self.push.failed > 0
            || self.shipments.new > 0
            || self.shipments.voided > 0
            || self.shipments.scanned > 0
            || self.shipments.written > 0
            || self.shipments.failed > 0
            || !self.journals.planned.is_empty()
            || !self.journals.posted.is_empty()
            || !self.journals.withdrawn.is_empty()
    }
}

/// Build the ERP connector a connection names.
pub fn erp_for(config: &ConnectionConfig) -> Result<Arc<dyn Erp>, EngineError> {
    match config.erp.kind.as_str() {
        "sandbox" => Ok(Arc::new(shipledger_erp::sandbox::SandboxErpClient::new(
            config.erp.url.as_str(),
            config.erp.api_key.expose(),
        )?)),
        "tryton" => Ok(Arc::new(shipledger_erp::tryton::TrytonClient::new(
            config.erp.url.as_str(),
            config.erp.api_key.expose(),
            config.erp.tryton.clone(),
        )?)),
        other => Err(EngineError::Setup(format!("connection {}: ERP kind {other} is not supported", config.name))),
    }
}

impl Engine {
    /// An engine for `config`'s connections over `store`, with the store-backed rate
    /// budgets shared by every process using the same ShipStation keys: v1's as its
    /// `X-Rate-Limit-*` headers tell it, v2's counted in the store
    /// ([`budget::V2_LIMIT`] a minute: v2 tells nothing until a 429).
    pub fn from_config(config: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Engine, EngineError> {
        let budget = Arc::new(StoreRateBudget::new(store.clone(), clock.clone(), 0));
        let v2_budget = Arc::new(StoreRateBudget::v2(store.clone(), clock.clone()));
        let mut connections = Vec::new();
        for c in &config.connections {
            let ss = &c.shipstation;
            let client_config = ClientConfig::v1(ss.base_url.clone(), ss.api_key.expose(), ss.api_secret.expose());
            let shipstation = V1Client::with_budget(client_config, budget.clone(), clock.clone())?;
            let shipstation_v2 = match (&ss.v2_base_url, &ss.v2_api_key) {
                (Some(url), Some(key)) => {
                    let v2 = ClientConfig::v2(url.clone(), key.expose());
                    Some(shipledger_shipstation::V2Client::with_budget(v2, v2_budget.clone(), clock.clone())?)
                }
                _ => None,
            };
            connections.push(Connection {
                name: c.name.clone(),
                erp: erp_for(c)?,
                shipstation,
                shipstation_v2,
                account_currency: c.shipstation.account_currency,
                gate: GatePolicy { currencies: c.policy.currencies.clone() },
                policy: c.policy.clone(),
                store_id: ss.store_id,
                store_ids: ss.store_ids.clone(),
                accounts: c.accounts.clone(),
            });
        }
        let mut engine = Engine::new(store, clock, connections);
        engine.lane_limits = config.lanes;
        Ok(engine)
    }

    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, connections: Vec<Connection>) -> Engine {
        let worker = format!("{}-{}", std::process::id(), rand::random::<u32>());
        Engine {
            store,
            clock,
            connections,
            worker,
            lane_limits: lanes::LaneLimits::default(),
            renew_every: schedule::RENEW_EVERY,
            lanes_state: Default::default(),
        }
    }

    /// Make sure every connection exists in the store.
    pub async fn prepare(&self) -> Result<(), EngineError> {
        for c in &self.connections {
            self.store.ensure_connection(&c.name, self.clock.now()).await?;
        }
        Ok(())
    }

    /// One full pass: release, recheck when due, push, then shipments, for every
    /// connection. A connection that
    /// fails is logged and the others still run.
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let mut report = TickReport::default();
        let mut first_error = None;
        for conn in &self.connections {
            if let Err(e) = self.tick_connection(conn, &mut report).await {
                tracing::warn!(connection = %conn.name, error = %e, "scheduling work failed; will retry");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) if !report.busy() => Err(e),
            _ => Ok(report),
        }
    }

    /// Is any outbox job this build can run still waiting (now or later) on any
    /// connection? Jobs of an unknown kind never run here (an exception says so), so
    /// they are not waited for.
    pub async fn has_pending_work(&self) -> Result<bool, EngineError> {
        for conn in &self.connections {
            let counts = self.store.count_jobs(&conn.name).await?;
            if counts.iter().any(|(kind, state, n)| {
                *n > 0
                    && shipledger_store::JobKind::parse(kind).is_some()
                    && matches!(state, shipledger_store::JobState::Pending | shipledger_store::JobState::Running)
            }) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
