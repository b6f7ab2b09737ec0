//! The configuration file (TOML, DESIGN §3): the store, the HTTP listener (and the
//! public URL ShipStation reaches it at) and one or more connections, each an ERP
//! plus a ShipStation account with its policies.
//!
//! Secrets are never in the file: a connection names the environment variable that
//! holds each one (`api_key_env = "ACME_SS_KEY"`), and [`Config::load`] reads them,
//! refusing a missing or empty variable by name. `Debug` of anything holding a secret
//! prints `<redacted>`.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use jiff::tz::TimeZone;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::journal::{CarrierAccountKind, CostBatch, JournalAccounts};
use shipledger_core::money::Currency;
use shipledger_core::retry::RetryPolicy;
use shipledger_store::JobKind;
use url::Url;

/// A configuration error, naming the file, the place and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

/// A secret read from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// The variable it came from (safe to print).
    pub env: String,
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// A secret given directly (tests and the demo), labelled by where it came from.
    pub fn literal(value: impl Into<String>, label: &str) -> Secret {
        Secret { value: value.into(), env: label.to_string() }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted from ${}>", self.env)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: RawStore,
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    connections: Vec<RawConnection>,
    #[serde(default)]
    lanes: Option<RawLanes>,
}

/// `[lanes]`: how many steps of each lane kind run at once across connections
/// (each at least 1; what is left out keeps its default, 8).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanes {
    erp_reads: Option<usize>,
    erp_writes: Option<usize>,
    shipstation_v1: Option<usize>,
    shipstation_v2: Option<usize>,
    intake: Option<usize>,
    reconcile: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    listen: Option<String>,
    /// Where ShipStation reaches this server from outside (webhooks are subscribed
    /// to `{public_url}/webhooks/...`).
    #[serde(default)]
    public_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: String,
    erp: RawErp,
    shipstation: RawShipStation,
    #[serde(default)]
    policy: RawPolicy,
    /// `[connections.accounts]`: where shipping-cost journals post.
    #[serde(default)]
    accounts: Option<RawAccounts>,
}

/// `[connections.accounts]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    shipping_expense: Option<String>,
    #[serde(default)]
    shipping_expense_by_carrier: std::collections::BTreeMap<String, String>,
    prepaid_postage: Option<String>,
    accrued_shipping: Option<String>,
    #[serde(default)]
    carrier_accounts: std::collections::BTreeMap<String, String>,
    /// The kind of a carrier `carrier_accounts` does not name (`accrued` when absent).
    default_carrier_account: Option<String>,
    journal: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErp {
    kind: String,
    url: String,
    api_key_env: String,
    /// `kind = "tryton"` only: which sales, company, warehouse and journal.
    #[serde(default)]
    tryton: Option<shipledger_erp::tryton::TrytonSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShipStation {
    base_url: String,
    api_key_env: String,
    api_secret_env: String,
    #[serde(default)]
    v2_base_url: Option<String>,
    #[serde(default)]
    v2_api_key_env: Option<String>,
    #[serde(default)]
    webhook_token_env: Option<String>,
    #[serde(default)]
    v2_webhook_keys_url: Option<String>,
    /// The ShipStation store orders go to (the first manual store when absent).
    #[serde(default)]
    store_id: Option<i64>,
    /// Every ShipStation store this connection's orders live in (the reconciler's
    /// scope): `store_id` and these. A shared account's other stores are not read.
    #[serde(default)]
    store_ids: Vec<i64>,
    /// The currency ShipStation bills labels in (v1 costs carry none); USD when absent.
    #[serde(default)]
    account_currency: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    fulfil_on: Option<String>,
    scan_overdue_after: Option<String>,
    awaiting_shipment_after: Option<String>,
    cost_batch: Option<String>,
    /// IANA name (`Europe/London`); the ERP company's when absent, else UTC.
    company_timezone: Option<String>,
    fx_source: Option<String>,
    /// Rate sources in the order they are asked (`["erp", "file", "fixed"]`).
    fx_sources: Option<Vec<String>>,
    /// A rates file (CSV, the ECB reference-rate layout), relative to the config file.
    fx_rates_file: Option<String>,
    /// `[[connections.policy.fx_fixed]] from = "USD", to = "GBP", rate = "0.79", date = "2026-11-01"`.
    fx_fixed: Option<Vec<RawFixedRate>>,
    /// `[connections.policy.exception_sla] held_missing_weight = "4h"`: how long an
    /// exception of a kind may stay live before it is overdue (`"none"`: never).
    exception_sla: Option<std::collections::BTreeMap<String, String>>,
    /// `ship_date` (default) or `posting_date`.
    fx_rate_date: Option<String>,
    /// A rate older than this before the date asked for counts as missing (default 4 days).
    fx_max_age: Option<String>,
    cost_variance_pct: Option<u32>,
    /// The smallest difference between a label's cost and what its carrier invoiced
    /// that counts as a variance, in the charge's currency (`"1.00"`).
    cost_variance_floor: Option<String>,
    currencies: Option<Vec<String>>,
    poll_interval: Option<String>,
    shipment_poll_interval: Option<String>,
    scan_check_max_interval: Option<String>,
    held_recheck_interval: Option<String>,
    /// How often the reconciler runs (`"24h"`; `"none"`: only by `shipledger reconcile`).
    reconcile_interval: Option<String>,
    /// How often a scheduled run reads the whole window again rather than what
    /// changed (`"7d"`; `"none"`: only the first run, and `reconcile --full`).
    reconcile_full_interval: Option<String>,
    /// How far back a full reconcile run reads (`"30d"`), besides every open order.
    reconcile_window: Option<String>,
    /// How far back the reconciler's expected-cost model finds a label's peers (`"90d"`).
    cost_model_window: Option<String>,
    /// How long a flow may take to carry a change across before the reconciler
    /// counts its absence as drift (`"1h"`).
    reconcile_grace: Option<String>,
    /// How long a shipped order may wait for its invoice (`"24h"`).
    invoice_grace: Option<String>,
    push_batch: Option<u32>,
    max_push_attempts: Option<u32>,
    webhook_coalesce: Option<String>,
    webhook_coalesce_max: Option<String>,
    /// `[connections.policy.retry.<job kind>]`.
    #[serde(default)]
    retry: std::collections::BTreeMap<String, RawRetry>,
}

/// One fixed rate in the configuration: one unit of `from` is `rate` units of `to`
/// from `date` on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixedRate {
    from: String,
    to: String,
    /// A decimal string (`"0.79"`): never a float.
    rate: String,
    date: String,
}

/// A fixed rate (`[[connections.policy.fx_fixed]]`): one unit of `from` is `rate`
/// units of `to` from `date` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedRate {
    pub from: Currency,
    pub to: Currency,
    pub rate: rust_decimal::Decimal,
    pub date: jiff::civil::Date,
}

/// Which date an entry's rate is wanted for (`policy.fx_rate_date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FxRateDate {
    /// The label's ship date, else its label date in UTC (the default).
    ShipDate,
    /// The posting date of the entry's own window (its last day in company time):
    /// the entry converts once that day has come.
    PostingDate,
}

/// One job kind's retry policy; what is left out keeps its default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    initial: Option<String>,
    max_delay: Option<String>,
    jitter_pct: Option<u8>,
    max_attempts: Option<u32>,
    give_up_after: Option<String>,
}

/// What a connection's `[policy.retry.<kind>]` table changes in that kind's
/// [`RetryPolicy`]; `None` keeps the default ([`Policy::retry_policy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOverride {
    pub initial: Option<Duration>,
    pub max_delay: Option<Duration>,
    pub jitter_pct: Option<u8>,
    pub max_attempts: Option<u32>,
    pub give_up_after: Option<Duration>,
}

/// When an ERP fulfilment is completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FulfilOn {
    CarrierScan,
    Label,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub fulfil_on: FulfilOn,
    pub scan_overdue_after: Duration,
    /// How long a pushed order may wait in ShipStation for a label.
    pub awaiting_shipment_after: Duration,
    /// How long a cost posting window is (`daily`, `weekly`, `monthly`).
    pub cost_batch: CostBatch,
    /// The time zone posting windows are cut in (`policy.company_timezone`). `None`:
    /// the ERP company's when the connector can read it, else UTC
    /// ([`Policy::company_timezone_or`]).
    pub company_timezone: Option<TimeZone>,
    /// The first of `fx_sources` (kept for `fx_source = "erp"`, which still reads).
    pub fx_source: String,
    /// Where rates come from, in the order they are asked; the first with a usable
    /// rate wins.
    pub fx_sources: Vec<shipledger_core::fx::RateSource>,
    /// The rates file of the `file` source (checked when the configuration loads,
    /// read again at every conversion pass so a rate added to it is seen).
    pub fx_rates_file: Option<std::path::PathBuf>,
    /// The `fixed` source's rates.
    pub fx_fixed: Vec<FixedRate>,
    pub fx_rate_date: FxRateDate,
    /// A rate dated more than this before the date asked for counts as missing.
    pub fx_max_age: Duration,
    /// A carrier invoice over a label's cost by more than this percentage *and*
    /// [`Policy::cost_variance_floor`] raises `invoice_cost_variance`.
    pub cost_variance_pct: u32,
    /// The absolute floor of a variance, in major units of the charge's currency.
    pub cost_variance_floor: rust_decimal::Decimal,
    /// Currencies orders may be in; any ISO code when empty.
    pub currencies: Vec<Currency>,
    /// How often the ERP is asked for changes.
    pub poll_interval: Duration,
    /// How often ShipStation is polled for labels, voids, fulfillments and scans
    /// (webhooks bring them sooner; polling catches what they miss).
    pub shipment_poll_interval: Duration,
    /// The longest a label awaiting its first carrier scan waits between two checks
    /// of the scan sweep. Each check that finds no physical scan doubles the wait,
    /// from `shipment_poll_interval` up to this.
    pub scan_check_max_interval: Duration,
    /// How often every held order, and every released order not yet labelled, is
    /// read again from the ERP (in batches), so a fix made elsewhere (a product's
    /// weight, an address) releases a held order and an order the ERP no longer wants
    /// shipped is withdrawn, even when the order's own record did not change.
    pub held_recheck_interval: Duration,
    /// How often the scheduled reconciler runs; `None`: only when asked.
    pub reconcile_interval: Option<Duration>,
    /// How often a scheduled run is full (reads the whole window again, so drift no
    /// change feed shows, such as a fulfilment deleted in the ERP, is found);
    /// `None`: only the first run and `shipledger reconcile --full` are.
    pub reconcile_full_interval: Option<Duration>,
    /// How far back a full reconcile run reads, besides every open order.
    pub reconcile_window: Duration,
    /// The labels made this far back are the expected-cost model's peers (and the
    /// ones it judges).
    pub cost_model_window: Duration,
    /// How long a flow may take to carry a change across (a push, a write-back, a
    /// void's reversal) before the reconciler counts its absence as drift.
    pub reconcile_grace: Duration,
    /// How long a shipped order may wait for its invoice before it is a finding.
    pub invoice_grace: Duration,
    /// Orders per `createorders` request (at most 100).
    pub push_batch: u32,
    /// v1 webhook hints are taken together once the newest has waited this long
    /// (a burst has settled)...
    pub webhook_coalesce: Duration,
    /// ...or once the oldest has waited this long (a steady stream still moves).
    pub webhook_coalesce_max: Duration,
    /// Attempts before a job is given up (and raised as an exception where its kind
    /// raises one): the default `max_attempts` of every job kind's retry policy.
    pub max_push_attempts: u32,
    /// Per job kind, what `[policy.retry.<kind>]` changes in its retry policy.
    pub retry: std::collections::BTreeMap<JobKind, RetryOverride>,
    /// Per exception kind, what `[policy.exception_sla]` says (`None`: no SLA);
    /// kinds it does not name take their severity's default ([`Policy::sla`]).
    pub exception_sla: std::collections::BTreeMap<ExceptionKind, Option<Duration>>,
}

impl Policy {
    /// How long an exception of `kind` may stay live before it is overdue: the
    /// configured `[policy.exception_sla]`, else its severity's default (critical 1 h,
    /// error 24 h, warning 72 h, info none).
    pub fn sla(&self, kind: ExceptionKind) -> Option<Duration> {
        match self.exception_sla.get(&kind) {
            Some(configured) => *configured,
            None => kind.severity().default_sla(),
        }
    }

    /// Whether `exception` is live past its kind's SLA at `now`, and by how long.
    pub fn overdue(&self, exception: &shipledger_store::ExceptionRecord, now: jiff::Timestamp) -> Option<Duration> {
        let sla = self.sla(exception.kind)?;
        let age = Duration::try_from(exception.age(now)).ok()?;
        (exception.state.is_live() && age > sla).then(|| age - sla)
    }

    /// The company's time zone: the configured one, else `erp`'s (what the ERP says
    /// its company uses, when the connector can read it), else UTC.
    pub fn company_timezone_or(&self, erp: Option<TimeZone>) -> TimeZone {
        self.company_timezone.clone().or(erp).unwrap_or(TimeZone::UTC)
    }

    /// `cost_variance_floor` in minor units of `currency` (what a variance must reach).
    pub fn variance_floor_minor(&self, currency: shipledger_core::Currency) -> i64 {
        shipledger_core::Money::from_decimal(self.cost_variance_floor, currency, shipledger_core::Rounding::HalfEven).map(|m| m.minor()).unwrap_or(0)
    }

    /// [`Policy::company_timezone_or`] with the ERP asked only when none is
    /// configured (a zone name the ERP gives that is not IANA counts as none).
    pub async fn company_timezone(&self, erp: &dyn shipledger_erp::Erp) -> Result<TimeZone, shipledger_erp::ErpError> {
        if let Some(tz) = &self.company_timezone {
            return Ok(tz.clone());
        }
        let named = erp.company_timezone().await?;
        Ok(self.company_timezone_or(named.and_then(|name| TimeZone::get(&name).ok())))
    }

    /// How jobs of `kind` are retried: the kind's default (below), with
    /// `max_attempts = max_push_attempts`, then what `[policy.retry.<kind>]` says.
    ///
    /// | kind | initial | max_delay | jitter | give_up_after |
    /// | --- | --- | --- | --- | --- |
    /// | `sync_order` | 2 s | 5 min | ± 20 % | 24 h |
    /// | `ingest_v1_webhook`, `ingest_v2_track` | 2 s | 5 min | 0 | 24 h |
    /// | `write_fulfilment` | 2 s | 30 s | 0 | 24 h |
    /// | `post_journal` | 2 s | 5 min | 0 | 24 h |
    pub fn retry_policy(&self, kind: JobKind) -> RetryPolicy {
        let base = RetryPolicy { max_attempts: self.max_push_attempts, ..RetryPolicy::default() };
        let default = match kind {
            JobKind::SyncOrder => base,
            JobKind::IngestV1Webhook | JobKind::IngestV2Track => RetryPolicy { jitter_pct: 0, ..base },
            // At most 30 s apart: a refusal usually clears as soon as a void is seen (and
            // a reversal written wakes the jobs waiting for it at once).
            JobKind::WriteFulfilment => RetryPolicy { max_delay: Duration::from_secs(30), jitter_pct: 0, ..base },
            // Money: tried for as long as the push (an ERP down over a weekend still
            // posts on Monday), no jitter (one job per window).
            JobKind::PostJournal => RetryPolicy { jitter_pct: 0, ..base },
        };
        let Some(o) = self.retry.get(&kind) else { return default };
        RetryPolicy {
            initial: o.initial.unwrap_or(default.initial),
            max_delay: o.max_delay.unwrap_or(default.max_delay),
            jitter_pct: o.jitter_pct.unwrap_or(default.jitter_pct),
            max_attempts: o.max_attempts.unwrap_or(default.max_attempts),
            give_up_after: o.give_up_after.unwrap_or(default.give_up_after),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fulfil_on: FulfilOn::CarrierScan,
            scan_overdue_after: Duration::from_secs(24 * 3600),
            awaiting_shipment_after: Duration::from_secs(48 * 3600),
            cost_batch: CostBatch::Daily,
            company_timezone: None,
            fx_source: "erp".into(),
            fx_sources: vec![shipledger_core::fx::RateSource::Erp],
            fx_rates_file: None,
            fx_fixed: Vec::new(),
            fx_rate_date: FxRateDate::ShipDate,
            fx_max_age: Duration::from_secs(4 * 86_400),
            cost_variance_pct: 15,
            cost_variance_floor: rust_decimal::Decimal::ONE,
            currencies: Vec::new(),
            poll_interval: Duration::from_secs(30),
            shipment_poll_interval: Duration::from_secs(60),
            scan_check_max_interval: Duration::from_secs(6 * 3600),
            held_recheck_interval: Duration::from_secs(300),
            reconcile_interval: Some(Duration::from_secs(24 * 3600)),
            reconcile_full_interval: Some(Duration::from_secs(7 * 86_400)),
            reconcile_window: Duration::from_secs(30 * 86_400),
            cost_model_window: Duration::from_secs(90 * 86_400),
            reconcile_grace: Duration::from_secs(3600),
            invoice_grace: Duration::from_secs(24 * 3600),
            push_batch: 100,
            webhook_coalesce: Duration::from_secs(5),
            webhook_coalesce_max: Duration::from_secs(30),
            max_push_attempts: 8,
            retry: Default::default(),
            exception_sla: Default::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErpConfig {
    pub kind: String,
    pub url: Url,
    pub api_key: Secret,
    /// Settings of a Tryton ERP (defaults when the table is absent).
    pub tryton: shipledger_erp::tryton::TrytonSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShipStationConfig {
    pub base_url: Url,
    pub api_key: Secret,
    pub api_secret: Secret,
    pub v2_base_url: Option<Url>,
    pub v2_api_key: Option<Secret>,
    pub webhook_token: Option<Secret>,
    /// Where the public keys of v2 webhook signatures are published (a JWK set, e.g.
    /// ShipStation's `https://api.shipengine.com/jwks`, or the sandbox's `/jwks`); v2
    /// webhooks are refused when unset.
    pub v2_webhook_keys_url: Option<Url>,
    pub store_id: Option<i64>,
    /// The stores the reconciler reads (`store_id` and `store_ids`; empty: the
    /// store orders go to, as push finds it).
    pub store_ids: Vec<i64>,
    /// The currency of label costs (ShipStation's account currency).
    pub account_currency: Currency,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionConfig {
    pub name: String,
    pub erp: ErpConfig,
    pub shipstation: ShipStationConfig,
    pub policy: Policy,
    /// `[connections.accounts]`; `None`: the connection posts no cost journals.
    pub accounts: Option<JournalAccounts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub store_url: String,
    pub listen: Option<SocketAddr>,
    /// `[server] public_url`: this server's address as ShipStation reaches it (an
    /// http(s) URL without query or fragment; a trailing slash after a path is
    /// dropped); `check-config --connect` looks for webhook subscriptions under it.
    pub public_url: Option<Url>,
    pub connections: Vec<ConnectionConfig>,
    /// `[lanes]`: how many steps of each lane kind the engine runs at once.
    pub lanes: crate::lanes::LaneLimits,
}

fn lane_limits(raw: RawLanes) -> Result<crate::lanes::LaneLimits, String> {
    let default = crate::lanes::LaneLimits::default();
    let limit = |value: Option<usize>, name: &str, default: usize| match value {
        Some(0) => Err(format!("{name} = 0: a lane needs at least one step at a time")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(crate::lanes::LaneLimits {
        erp_reads: limit(raw.erp_reads, "erp_reads", default.erp_reads)?,
        erp_writes: limit(raw.erp_writes, "erp_writes", default.erp_writes)?,
        shipstation_v1: limit(raw.shipstation_v1, "shipstation_v1", default.shipstation_v1)?,
        shipstation_v2: limit(raw.shipstation_v2, "shipstation_v2", default.shipstation_v2)?,
        intake: limit(raw.intake, "intake", default.intake)?,
        reconcile: limit(raw.reconcile, "reconcile", default.reconcile)?,
    })
}

/// ERP kinds this build can talk to.
pub const ERP_KINDS: &[&str] = &["sandbox", "tryton"];

impl Config {
    /// Read, parse and check a configuration file, reading secrets from the
    /// environment: every secret it names must be set.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = Self::read(path)?;
        Config::parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok())
    }

    /// Read a configuration file for commands that only read the store (exceptions,
    /// timelines): secrets that are not set stay empty instead of failing, since
    /// nothing is sent to the ERP or ShipStation.
    pub fn load_for_reading(path: &Path) -> Result<Config, ConfigError> {
        let text = Self::read(path)?;
        Config::parse_with(&text, &path.display().to_string(), &|name| std::env::var(name).ok(), false)
    }

    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path)
            .map_err(|e| ConfigError { path: path.display().to_string(), message: format!("cannot read the file: {e}") })
    }

    /// Parse `text` (named `origin` in errors), reading secrets through `env`.
    pub fn parse(text: &str, origin: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse_with(text, origin, env, true)
    }

    fn parse_with(
        text: &str,
        origin: &str,
        env: &dyn Fn(&str) -> Option<String>,
        require_secrets: bool,
    ) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { path: origin.to_string(), message };
        let raw: RawConfig = toml::from_str(text).map_err(|e| err(format!("not valid configuration: {e}")))?;
        let server = raw.server.unwrap_or(RawServer { listen: None, public_url: None });
        let listen = server
            .listen
            .map(|l| l.parse::<SocketAddr>().map_err(|e| err(format!("[server] listen = {l:?}: {e}"))))
            .transpose()?;
        let public_url = server.public_url.as_deref().map(|u| public_url(u).map_err(err)).transpose()?;
        if !(raw.store.url.starts_with("sqlite:") || raw.store.url.starts_with("postgres")) {
            return Err(err(format!(
                "[store] url = {:?}: use sqlite://FILE or postgres://USER@HOST/DB",
                raw.store.url
            )));
        }
        if raw.connections.is_empty() {
            return Err(err("no [[connections]]: add at least one ERP + ShipStation pair".into()));
        }
        let mut names = BTreeSet::new();
        let mut connections = Vec::new();
        for c in raw.connections {
            let at = format!("connection {:?}", c.name);
            if c.name.is_empty() || !c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
                return Err(err(format!("{at}: a name uses letters, digits, '-' and '_' only")));
            }
            if !names.insert(c.name.clone()) {
                return Err(err(format!("{at}: the name is used twice")));
            }
            let secret = |var: &str, what: &str| -> Result<Secret, ConfigError> {
                match env(var) {
                    Some(v) if !v.is_empty() => Ok(Secret { value: v, env: var.to_string() }),
                    _ if !require_secrets => Ok(Secret { value: String::new(), env: var.to_string() }),
                    _ => Err(err(format!("{at}: {what} comes from ${var}, which is not set; export it and try again"))),
                }
            };
            let url = |raw: &str, what: &str| -> Result<Url, ConfigError> {
                Url::parse(raw).map_err(|e| err(format!("{at}: {what} {raw:?} is not a URL: {e}")))
            };
            if !ERP_KINDS.contains(&c.erp.kind.as_str()) {
                return Err(err(format!(
                    "{at}: erp kind {:?} is not supported by this build (supported: {})",
                    c.erp.kind,
                    ERP_KINDS.join(", ")
                )));
            }
            if c.erp.tryton.is_some() && c.erp.kind != "tryton" {
                return Err(err(format!("{at}: [connections.erp.tryton] is only for kind = \"tryton\"")));
            }
            let erp_url = url(&c.erp.url, "erp url")?;
            if c.erp.kind == "tryton" && erp_url.path().trim_matches('/').is_empty() {
                return Err(err(format!(
                    "{at}: erp url {:?} names no Tryton database; use http://HOST:PORT/DATABASE",
                    c.erp.url
                )));
            }
            let erp = ErpConfig {
                kind: c.erp.kind.clone(),
                url: erp_url,
                api_key: secret(&c.erp.api_key_env, "the ERP API key")?,
                tryton: c.erp.tryton.clone().unwrap_or_default(),
            };
            let ss = &c.shipstation;
            let shipstation = ShipStationConfig {
                base_url: url(&ss.base_url, "shipstation base_url")?,
                api_key: secret(&ss.api_key_env, "the ShipStation API key")?,
                api_secret: secret(&ss.api_secret_env, "the ShipStation API secret")?,
                v2_base_url: ss.v2_base_url.as_deref().map(|u| url(u, "shipstation v2_base_url")).transpose()?,
                v2_api_key: ss.v2_api_key_env.as_deref().map(|v| secret(v, "the ShipStation v2 API key")).transpose()?,
                webhook_token: ss.webhook_token_env.as_deref().map(|v| secret(v, "the webhook token")).transpose()?,
                v2_webhook_keys_url: ss
                    .v2_webhook_keys_url
                    .as_deref()
                    .map(|u| url(u, "shipstation v2_webhook_keys_url"))
                    .transpose()?,
                store_id: ss.store_id,
                store_ids: ss.store_id.into_iter().chain(ss.store_ids.iter().copied()).collect::<std::collections::BTreeSet<_>>().into_iter().collect(),
                account_currency: match &ss.account_currency {
                    Some(code) => Currency::parse(code).map_err(|e| {
                        err(format!("{at}: shipstation account_currency = {code:?}: {e}; use the ISO code ShipStation bills you in"))
                    })?,
                    None => Currency::USD,
                },
            };
            let mut policy = policy(&c.policy).map_err(|m| err(format!("{at}: [policy] {m}")))?;
            if let Some(file) = &policy.fx_rates_file {
                // Relative to the configuration file; read now so a broken file is a
                // configuration error naming its line.
                let dir = Path::new(origin).parent().unwrap_or(Path::new(""));
                let resolved = if file.is_absolute() { file.clone() } else { dir.join(file) };
                read_rates_file(&resolved).map_err(|m| err(format!("{at}: [policy] {m}")))?;
                policy.fx_rates_file = Some(resolved);
            }
            let accounts = c.accounts.as_ref().map(accounts).transpose().map_err(|m| err(format!("{at}: [accounts] {m}")))?;
            let mut erp = erp;
            let mut accounts = accounts;
            if let Some(a) = &mut accounts {
                // One journal: `[accounts] journal` when given (Tryton posts to it), else
                // the Tryton setting's (`MISC` by default).
                match c.accounts.as_ref().and_then(|r| r.journal.as_deref()) {
                    Some(j) if c.erp.tryton.as_ref().is_some_and(|t| t.journal != j && t.journal != "MISC") => {
                        return Err(err(format!(
                            "{at}: [accounts] journal = {j:?} but [erp.tryton] journal = {:?}: name the journal once, in [accounts]",
                            erp.tryton.journal
                        )));
                    }
                    Some(j) => erp.tryton.journal = j.to_string(),
                    None => a.journal = erp.tryton.journal.clone(),
                }
            }
            connections.push(ConnectionConfig { name: c.name, erp, shipstation, policy, accounts });
        }
        let lanes = lane_limits(raw.lanes.unwrap_or_default()).map_err(|m| err(format!("[lanes] {m}")))?;
        Ok(Config { store_url: raw.store.url, listen, public_url, connections, lanes })
    }
}

/// `[server] public_url`: an http(s) URL with a host, and neither query nor fragment;
/// a trailing slash after a path is dropped.
fn public_url(raw: &str) -> Result<Url, String> {
    let bad = |why: &str| {
        format!("[server] public_url = {raw:?}: {why}; use the https://HOST[:PORT][/PATH] ShipStation reaches this server at")
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it is not an http(s) URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it carries a user or password"));
    }
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

fn duration(raw: &str, what: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{what} = {raw:?} is not a duration like \"30s\" or \"24h\": {e}"))
}

/// `[connections.accounts]`: every account code non-empty, carrier kinds `prepaid` or
/// `accrued`, and the credit account each kind in use needs configured.
fn accounts(raw: &RawAccounts) -> Result<JournalAccounts, String> {
    let code = |value: &Option<String>, key: &str| -> Result<Option<String>, String> {
        match value.as_deref().map(str::trim) {
            Some("") => Err(format!("{key} = \"\": name the ERP account code (e.g. \"5.1.3\")")),
            other => Ok(other.map(str::to_string)),
        }
    };
    let kind = |value: &str, key: &str| {
        CarrierAccountKind::parse(value).ok_or_else(|| {
            format!("{key} = {value:?}: use \"prepaid\" (a balance funded in advance) or \"accrued\" (a carrier that invoices later)")
        })
    };
    let shipping_expense = code(&raw.shipping_expense, "shipping_expense")?
        .ok_or("shipping_expense is missing: name the ERP expense account shipping costs are debited to (e.g. \"5.1.3\")")?;
    let mut by_carrier = std::collections::BTreeMap::new();
    for (carrier, account) in &raw.shipping_expense_by_carrier {
        let account = code(&Some(account.clone()), &format!("shipping_expense_by_carrier.{carrier}"))?.unwrap_or_default();
        by_carrier.insert(carrier.clone(), account);
    }
    let mut carrier_accounts = std::collections::BTreeMap::new();
    for (carrier, k) in &raw.carrier_accounts {
        carrier_accounts.insert(carrier.clone(), kind(k, &format!("carrier_accounts.{carrier}"))?);
    }
    let default_kind = match &raw.default_carrier_account {
        Some(k) => kind(k, "default_carrier_account")?,
        None => CarrierAccountKind::Accrued,
    };
    let journal = code(&raw.journal, "journal")?.unwrap_or_else(|| "MISC".into());
    let a = JournalAccounts {
        shipping_expense,
        shipping_expense_by_carrier: by_carrier,
        prepaid_postage: code(&raw.prepaid_postage, "prepaid_postage")?,
        accrued_shipping: code(&raw.accrued_shipping, "accrued_shipping")?,
        carrier_accounts,
        default_kind,
        journal,
    };
    let in_use: BTreeSet<CarrierAccountKind> = a.carrier_accounts.values().copied().chain([a.default_kind]).collect();
    for k in in_use {
        let (set, key) = match k {
            CarrierAccountKind::Prepaid => (a.prepaid_postage.is_some(), "prepaid_postage"),
            CarrierAccountKind::Accrued => (a.accrued_shipping.is_some(), "accrued_shipping"),
        };
        if !set {
            let who: Vec<&str> = a.carrier_accounts.iter().filter(|(_, v)| **v == k).map(|(c, _)| c.as_str()).collect();
            let who = if who.is_empty() { "the default carrier account kind".to_string() } else { format!("carrier {}", who.join(", ")) };
            return Err(format!("{key} is missing but {who} is {}: name the ERP account it credits", k.code()));
        }
    }
    Ok(a)
}

fn policy(raw: &RawPolicy) -> Result<Policy, String> {
    let mut p = Policy::default();
    if let Some(f) = &raw.fulfil_on {
        p.fulfil_on = match f.as_str() {
            "carrier_scan" => FulfilOn::CarrierScan,
            "label" => FulfilOn::Label,
            other => return Err(format!("fulfil_on = {other:?}: use \"carrier_scan\" or \"label\"")),
        };
    }
    if let Some(d) = &raw.scan_overdue_after {
        p.scan_overdue_after = duration(d, "scan_overdue_after")?;
    }
    if let Some(d) = &raw.awaiting_shipment_after {
        p.awaiting_shipment_after = duration(d, "awaiting_shipment_after")?;
    }
    if let Some(b) = &raw.cost_batch {
        p.cost_batch = CostBatch::parse(b).ok_or_else(|| format!("cost_batch = {b:?}: use daily, weekly or monthly"))?;
    }
    if let Some(name) = &raw.company_timezone {
        p.company_timezone = Some(TimeZone::get(name).map_err(|e| {
            format!("company_timezone = {name:?} is not an IANA time zone ({e}); use a name like \"Europe/London\" or \"America/Los_Angeles\"")
        })?);
    }
    fx_policy(raw, &mut p)?;
    if let Some(v) = raw.cost_variance_pct {
        p.cost_variance_pct = v;
    }
    if let Some(text) = &raw.cost_variance_floor {
        p.cost_variance_floor = text
            .trim()
            .parse::<rust_decimal::Decimal>()
            .ok()
            .filter(|d| !d.is_sign_negative())
            .ok_or_else(|| format!("cost_variance_floor = {text:?} is not an amount; write a plain non-negative decimal such as \"1.00\""))?;
    }
    if let Some(list) = &raw.currencies {
        p.currencies = list
            .iter()
            .map(|c| Currency::parse(c).map_err(|e| format!("currencies: {e}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(d) = &raw.poll_interval {
        p.poll_interval = duration(d, "poll_interval")?;
    }
    if let Some(d) = &raw.shipment_poll_interval {
        p.shipment_poll_interval = duration(d, "shipment_poll_interval")?;
    }
    if let Some(d) = &raw.scan_check_max_interval {
        p.scan_check_max_interval = duration(d, "scan_check_max_interval")?;
        if p.scan_check_max_interval.is_zero() {
            return Err("scan_check_max_interval = \"0s\": labels awaiting a scan must wait between checks; use a duration like \"6h\"".into());
        }
    }
    if let Some(d) = &raw.held_recheck_interval {
        p.held_recheck_interval = duration(d, "held_recheck_interval")?;
    }
    if let Some(d) = &raw.reconcile_interval {
        p.reconcile_interval = if d == "none" { None } else { Some(duration(d, "reconcile_interval")?) };
        if p.reconcile_interval.is_some_and(|d| d.is_zero()) {
            return Err("reconcile_interval = \"0s\": use a duration like \"24h\", or \"none\" to run it only by `shipledger reconcile`".into());
        }
    }
    if let Some(d) = &raw.reconcile_full_interval {
        p.reconcile_full_interval = if d == "none" { None } else { Some(duration(d, "reconcile_full_interval")?) };
        if p.reconcile_full_interval.is_some_and(|d| d.is_zero()) {
            return Err("reconcile_full_interval = \"0s\": use a duration like \"7d\", or \"none\" for full runs only by `shipledger reconcile --full`".into());
        }
    }
    if let Some(d) = &raw.cost_model_window {
        p.cost_model_window = duration(d, "cost_model_window")?;
    }
    if let Some(d) = &raw.reconcile_window {
        p.reconcile_window = duration(d, "reconcile_window")?;
    }
    if let Some(d) = &raw.reconcile_grace {
        p.reconcile_grace = duration(d, "reconcile_grace")?;
    }
    if let Some(d) = &raw.invoice_grace {
        p.invoice_grace = duration(d, "invoice_grace")?;
    }
    if let Some(b) = raw.push_batch {
        if !(1..=100).contains(&b) {
            return Err(format!("push_batch = {b}: ShipStation takes 1 to 100 orders per createorders request"));
        }
        p.push_batch = b;
    }
    if let Some(a) = raw.max_push_attempts {
        p.max_push_attempts = a.max(1);
    }
    if let Some(d) = &raw.webhook_coalesce {
        p.webhook_coalesce = duration(d, "webhook_coalesce")?;
    }
    if let Some(d) = &raw.webhook_coalesce_max {
        p.webhook_coalesce_max = duration(d, "webhook_coalesce_max")?;
    }
    if p.webhook_coalesce_max < p.webhook_coalesce {
        return Err(format!(
            "webhook_coalesce_max ({:?}) is shorter than webhook_coalesce ({:?}): the longest a hint waits cannot be shorter than the quiet it waits for",
            p.webhook_coalesce_max, p.webhook_coalesce
        ));
    }
    for (name, r) in &raw.retry {
        let Some(kind) = JobKind::parse(name) else {
            let kinds: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(format!("retry.{name}: there is no job kind {name:?}; the kinds are {}", kinds.join(", ")));
        };
        let at = |field: &str| format!("retry.{name}.{field}");
        let o = RetryOverride {
            initial: r.initial.as_deref().map(|d| duration(d, &at("initial"))).transpose()?,
            max_delay: r.max_delay.as_deref().map(|d| duration(d, &at("max_delay"))).transpose()?,
            jitter_pct: r.jitter_pct,
            max_attempts: r.max_attempts.map(|a| a.max(1)),
            give_up_after: r.give_up_after.as_deref().map(|d| duration(d, &at("give_up_after"))).transpose()?,
        };
        if let Some(pct) = o.jitter_pct
            && pct > 100
        {
            return Err(format!("{} = {pct}: the spread is a percentage, 0 to 100", at("jitter_pct")));
        }
        if let (Some(initial), Some(max)) = (o.initial, o.max_delay)
            && initial > max
        {
            return Err(format!("{}: initial ({initial:?}) is longer than max_delay ({max:?})", at("initial")));
        }
        p.retry.insert(kind, o);
    }
    for (code, raw) in raw.exception_sla.iter().flatten() {
        let kind = ExceptionKind::parse(code).ok_or_else(|| {
            format!("exception_sla.{code}: not an exception kind (see `shipledger exceptions list --kind`, e.g. held_missing_weight)")
        })?;
        let sla = match raw.trim() {
            "none" => None,
            d => Some(duration(d, &format!("exception_sla.{code}"))?),
        };
        p.exception_sla.insert(kind, sla);
    }
    Ok(p)
}

/// The `fx_*` fields: sources in order (`fx_sources`, or the single `fx_source`), the
/// rates file, fixed rates, the rate date and the longest a rate may be old.
fn fx_policy(raw: &RawPolicy, p: &mut Policy) -> Result<(), String> {
    use shipledger_core::fx::RateSource;
    let names: Vec<String> = match (&raw.fx_sources, &raw.fx_source) {
        (Some(_), Some(_)) => return Err("fx_source and fx_sources are both set: keep fx_sources (the list) only".into()),
        (Some(list), None) => list.clone(),
        (None, Some(one)) => vec![one.clone()],
        (None, None) => vec!["erp".into()],
    };
    if names.is_empty() {
        return Err("fx_sources = []: name at least one of \"erp\", \"file\", \"fixed\"".into());
    }
    let mut sources = Vec::new();
    for name in &names {
        match RateSource::parse(name) {
            Some(s @ (RateSource::Erp | RateSource::File | RateSource::Fixed)) if !sources.contains(&s) => sources.push(s),
            Some(RateSource::Erp | RateSource::File | RateSource::Fixed) => return Err(format!("fx_sources names {name:?} twice")),
            _ => return Err(format!("fx source {name:?}: use \"erp\", \"file\" or \"fixed\"")),
        }
    }
    p.fx_source = names[0].clone();
    p.fx_sources = sources;
    p.fx_rates_file = raw.fx_rates_file.as_ref().map(std::path::PathBuf::from);
    if p.fx_sources.contains(&RateSource::File) && p.fx_rates_file.is_none() {
        return Err("fx_sources names \"file\" but fx_rates_file is not set: add fx_rates_file = \"rates.csv\"".into());
    }
    for (i, f) in raw.fx_fixed.iter().flatten().enumerate() {
        let at = format!("fx_fixed[{i}] ({} to {})", f.from, f.to);
        let cur = |c: &str| Currency::parse(c).map_err(|e| format!("{at}: {e}"));
        let (from, to) = (cur(&f.from)?, cur(&f.to)?);
        if from == to {
            return Err(format!("{at}: a rate converts between two different currencies"));
        }
        let rate = rust_decimal::Decimal::from_str_exact(f.rate.trim())
            .map_err(|e| format!("{at}: rate {:?} is not a decimal number: {e}", f.rate))?;
        if rate <= rust_decimal::Decimal::ZERO {
            return Err(format!("{at}: rate {} must be positive", f.rate));
        }
        let date = f.date.parse::<jiff::civil::Date>().map_err(|e| format!("{at}: date {:?} is not YYYY-MM-DD: {e}", f.date))?;
        p.fx_fixed.push(FixedRate { from, to, rate, date });
    }
    if p.fx_sources.contains(&RateSource::Fixed) && p.fx_fixed.is_empty() {
        return Err("fx_sources names \"fixed\" but there is no [[connections.policy.fx_fixed]] rate".into());
    }
    if let Some(d) = &raw.fx_rate_date {
        p.fx_rate_date = match d.as_str() {
            "ship_date" => FxRateDate::ShipDate,
            "posting_date" => FxRateDate::PostingDate,
            other => return Err(format!("fx_rate_date = {other:?}: use \"ship_date\" or \"posting_date\"")),
        };
    }
    if let Some(d) = &raw.fx_max_age {
        p.fx_max_age = duration(d, "fx_max_age")?;
    }
    Ok(())
}

/// Reads and parses a rates file, naming the file and the line that does not read.
pub fn read_rates_file(path: &Path) -> Result<shipledger_core::fx::RateTable, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("fx_rates_file {}: cannot read it: {e}", path.display()))?;
    shipledger_core::fx::RateTable::parse_ecb_csv(&text).map_err(|e| format!("fx_rates_file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[store]
url = "sqlite://shipledger.db"

[server]
listen = "127.0.0.1:8080"

[[connections]]
name = "acme-uk"

[connections.erp]
kind = "sandbox"
url = "http://127.0.0.1:8000"
api_key_env = "ACME_ERP_KEY"

[connections.shipstation]
base_url = "https://ssapi.shipstation.com"
api_key_env = "ACME_SS_KEY"
api_secret_env = "ACME_SS_SECRET"

[connections.policy]
fulfil_on = "carrier_scan"
scan_overdue_after = "24h"
currencies = ["GBP", "usd"]
"#;

    fn env(name: &str) -> Option<String> {
        match name {
            "ACME_ERP_KEY" => Some("erp-secret-value".into()),
            "ACME_SS_KEY" => Some("ss-key-value".into()),
            "ACME_SS_SECRET" => Some("ss-secret-value".into()),
            _ => None,
        }
    }

    #[test]
    fn rate_sources_are_asked_in_the_configured_order_with_a_rates_file_and_dated_fixed_rates() {
        use shipledger_core::fx::RateSource;
        let defaults = &Config::parse(GOOD, "t.toml", &env).unwrap().connections[0].policy;
        assert_eq!((defaults.fx_sources.clone(), defaults.fx_rate_date, defaults.fx_max_age), (vec![RateSource::Erp], FxRateDate::ShipDate, Duration::from_secs(4 * 86_400)));
        let single = GOOD.replace("currencies = [\"GBP\", \"usd\"]", "currencies = [\"GBP\", \"usd\"]\nfx_source = \"erp\"");
        assert_eq!(Config::parse(&single, "t.toml", &env).unwrap().connections[0].policy.fx_sources, vec![RateSource::Erp], "fx_source still reads");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rates.csv"), "Date,USD,GBP,\n2026-11-26,1.0565,0.8321,\n").unwrap();
        let origin = dir.path().join("shipledger.toml").display().to_string();
        let policy = "fx_sources = [\"erp\", \"file\", \"fixed\"]\nfx_rates_file = \"rates.csv\"\nfx_rate_date = \"posting_date\"\nfx_max_age = \"7days\"\n\n[[connections.policy.fx_fixed]]\nfrom = \"USD\"\nto = \"GBP\"\nrate = \"0.79\"\ndate = \"2026-11-01\"\n";
        let text = format!("{GOOD}{policy}");
        let p = Config::parse(&text, &origin, &env).unwrap().connections[0].policy.clone();
        assert_eq!(p.fx_sources, vec![RateSource::Erp, RateSource::File, RateSource::Fixed]);
        assert_eq!(p.fx_rates_file, Some(dir.path().join("rates.csv")), "relative to the config file");
        assert_eq!((p.fx_rate_date, p.fx_max_age), (FxRateDate::PostingDate, Duration::from_secs(7 * 86_400)));
        assert_eq!(p.fx_fixed, vec![FixedRate { from: Currency::USD, to: Currency::GBP, rate: "0.79".parse().unwrap(), date: jiff::civil::date(2026, 11, 1) }]);

        std::fs::write(dir.path().join("rates.csv"), "Date,USD,GBP,\n2026-11-26,1.0565,0.8321,\n2026-11-25,one,0.83,\n").unwrap();
        let e = Config::parse(&text, &origin, &env).unwrap_err();
        assert!(e.message.contains("rates.csv") && e.message.contains("line 3") && e.message.contains("acme-uk"), "{e}");
        for (bad, says) in [
            ("fx_sources = [\"erp\", \"bank\"]", "bank"),
            ("fx_sources = [\"file\"]", "fx_rates_file"),
            ("fx_sources = [\"fixed\"]", "fx_fixed"),
            ("fx_source = \"erp\"\nfx_sources = [\"erp\"]", "both"),
            ("fx_rate_date = \"label_date\"", "posting_date"),
            ("[[connections.policy.fx_fixed]]\nfrom = \"USD\"\nto = \"GBP\"\nrate = \"-1\"\ndate = \"2026-11-01\"", "positive"),
        ] {
            let e = Config::parse(&format!("{GOOD}{bad}\n"), "t.toml", &env).unwrap_err();
            assert!(e.message.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn cost_windows_are_daily_in_the_erp_companys_zone_unless_configured() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        assert_eq!(p.cost_batch, CostBatch::Daily);
        assert_eq!(p.company_timezone, None);
        assert_eq!(p.company_timezone_or(None), TimeZone::UTC);
        let london = TimeZone::get("Europe/London").unwrap();
        assert_eq!(p.company_timezone_or(Some(london.clone())), london);
        let weekly = GOOD.replace("scan_overdue_after = \"24h\"", "scan_overdue_after = \"24h\"\ncost_batch = \"weekly\"\ncompany_timezone = \"America/Los_Angeles\"");
        let p = Config::parse(&weekly, "t.toml", &env).unwrap().connections[0].policy.clone();
        assert_eq!(p.cost_batch, CostBatch::Weekly);
        let la = TimeZone::get("America/Los_Angeles").unwrap();
        assert_eq!(p.company_timezone_or(Some(london)), la, "the configured zone wins over the ERP's");
        for (bad, key) in [("cost_batch = \"hourly\"", "cost_batch"), ("company_timezone = \"Mars/Olympus\"", "company_timezone")] {
            let text = GOOD.replace("scan_overdue_after = \"24h\"", &format!("scan_overdue_after = \"24h\"\n{bad}"));
            let e = Config::parse(&text, "t.toml", &env).unwrap_err();
            assert!(e.message.contains(key) && e.message.contains("acme-uk"), "{e}");
        }
    }

    const ACCOUNTS: &str = r#"
[connections.accounts]
shipping_expense = "5.1.3"
shipping_expense_by_carrier = { ups = "5.1.4" }
prepaid_postage = "1.1.9"
accrued_shipping = "2.1.1"
carrier_accounts = { stamps_com = "prepaid", ups = "accrued" }
journal = "EXP"
"#;

    #[test]
    fn a_connection_names_its_cost_accounts_per_carrier_kind() {
        assert_eq!(Config::parse(GOOD, "t.toml", &env).unwrap().connections[0].accounts, None, "no [accounts]: no cost journals");
        let config = Config::parse(&format!("{GOOD}{ACCOUNTS}"), "t.toml", &env).unwrap();
        let c = &config.connections[0];
        let a = c.accounts.as_ref().unwrap();
        assert_eq!(a.expense_for("ups"), "5.1.4");
        assert_eq!(a.expense_for("royal_mail"), "5.1.3");
        assert_eq!(a.credit_for("stamps_com"), Some("1.1.9"));
        assert_eq!(a.credit_for("ups"), Some("2.1.1"));
        assert_eq!(a.kind_for("dhl"), CarrierAccountKind::Accrued, "the default kind");
        assert_eq!(a.journal, "EXP");
        assert_eq!(c.erp.tryton.journal, "EXP", "the one journal the ERP posts to");
        assert_eq!(a.codes(), vec!["1.1.9", "2.1.1", "5.1.3", "5.1.4"]);
        let minimal = format!("{GOOD}\n[connections.accounts]\nshipping_expense = \"5.1.3\"\naccrued_shipping = \"2.1.1\"\n");
        let a = Config::parse(&minimal, "t.toml", &env).unwrap().connections[0].accounts.clone().unwrap();
        assert_eq!((a.journal.as_str(), a.prepaid_postage), ("MISC", None));
    }

    #[test]
    fn a_cost_account_that_is_missing_or_misnamed_is_refused_by_connection_and_key() {
        for (from, to, key) in [
            ("shipping_expense = \"5.1.3\"\n", "", "shipping_expense"),
            ("shipping_expense = \"5.1.3\"", "shipping_expense = \" \"", "shipping_expense"),
            ("prepaid_postage = \"1.1.9\"\n", "", "prepaid_postage"),
            ("accrued_shipping = \"2.1.1\"\n", "", "accrued_shipping"),
            ("stamps_com = \"prepaid\"", "stamps_com = \"prepay\"", "carrier_accounts.stamps_com"),
            ("journal = \"EXP\"", "journal = \"EXP\"\ndefault_carrier_account = \"later\"", "default_carrier_account"),
            ("journal = \"EXP\"", "journals = \"EXP\"", "journals"),
        ] {
            let text = format!("{GOOD}{}", ACCOUNTS.replace(from, to));
            let e = Config::parse(&text, "t.toml", &env).unwrap_err();
            assert!(e.message.contains(key) && (e.message.contains("acme-uk") || key == "journals"), "{key}: {e}");
        }
        let e = Config::parse(&format!("{GOOD}{}", ACCOUNTS.replace("prepaid_postage = \"1.1.9\"\n", "")), "t.toml", &env).unwrap_err();
        assert!(e.message.contains("stamps_com"), "names the carrier that needs it: {e}");
    }

    #[test]
    fn label_costs_are_in_the_shipstation_accounts_currency_usd_unless_configured() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        assert_eq!(config.connections[0].shipstation.account_currency, Currency::USD);
        let gbp = GOOD.replace("api_secret_env = \"ACME_SS_SECRET\"", "api_secret_env = \"ACME_SS_SECRET\"\naccount_currency = \"GBP\"");
        assert_eq!(Config::parse(&gbp, "t.toml", &env).unwrap().connections[0].shipstation.account_currency, Currency::GBP);
        let bad = GOOD.replace("api_secret_env = \"ACME_SS_SECRET\"", "api_secret_env = \"ACME_SS_SECRET\"\naccount_currency = \"POUNDS\"");
        let e = Config::parse(&bad, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("account_currency") && e.message.contains("acme-uk"), "{e}");
    }

    #[test]
    fn a_tryton_connection_names_its_database_and_may_tune_its_sales_domain_and_journal() {
        let text = GOOD.replace(
            "kind = \"sandbox\"\nurl = \"http://127.0.0.1:8000\"",
            "kind = \"tryton\"\nurl = \"http://127.0.0.1:8000/shop\"",
        ) + r#"
[connections.erp.tryton]
ready_domain = [["state", "=", "processing"], ["shipment_state", "in", ["waiting", "partially shipped"]]]
payment = "invoice_paid"
journal = "EXP"
journal_party = "ShipStation"
"#;
        // The [connections.erp.tryton] table must follow [connections.erp]: move it.
        let text = text.replace("[connections.shipstation]", "[connections.shipstation_placeholder]");
        let (head, tail) = text.split_once("[connections.shipstation_placeholder]").unwrap();
        let (ss, tryton) = tail.split_once("[connections.erp.tryton]").unwrap();
        let text = format!("{head}[connections.erp.tryton]{tryton}\n[connections.shipstation]{ss}");
        let config = Config::parse(&text, "t.toml", &env).unwrap();
        let erp = &config.connections[0].erp;
        assert_eq!(erp.kind, "tryton");
        assert_eq!(erp.tryton.payment, shipledger_erp::tryton::PaymentRule::InvoicePaid);
        assert_eq!(erp.tryton.journal, "EXP");
        assert_eq!(erp.tryton.warehouse, "WH", "unset settings keep their defaults");
        assert_eq!(erp.tryton.ready_domain[1][2][1], "partially shipped");

        let no_db = GOOD.replace("kind = \"sandbox\"", "kind = \"tryton\"");
        let e = Config::parse(&no_db, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("names no Tryton database"), "{e}");
        let typo = text.replace("journal = \"EXP\"", "jornal = \"EXP\"");
        assert!(Config::parse(&typo, "t.toml", &env).unwrap_err().message.contains("jornal"));
    }

    #[test]
    fn lanes_default_to_eight_steps_each_and_a_lane_with_none_is_refused_by_name() {
        assert_eq!(Config::parse(GOOD, "t.toml", &env).unwrap().lanes, crate::lanes::LaneLimits::default());
        let with = |lanes: &str| GOOD.replace("[server]", &format!("[lanes]\n{lanes}\n\n[server]"));
        let config = Config::parse(&with("erp_writes = 2\nshipstation_v1 = 3"), "t.toml", &env).unwrap();
        assert_eq!((config.lanes.erp_writes, config.lanes.shipstation_v1, config.lanes.erp_reads), (2, 3, 8));
        let e = Config::parse(&with("intake = 0"), "t.toml", &env).unwrap_err();
        assert!(e.message.contains("[lanes] intake = 0"), "{e}");
        assert!(Config::parse(&with("erp_read = 2"), "t.toml", &env).unwrap_err().message.contains("erp_read"));
    }

    #[test]
    fn a_complete_file_loads_with_secrets_from_the_environment_and_never_prints_them() {
        let config = Config::parse(GOOD, "test.toml", &env).unwrap();
        let c = &config.connections[0];
        assert_eq!(c.shipstation.api_key.expose(), "ss-key-value");
        assert_eq!(c.policy.currencies, vec![Currency::GBP, Currency::USD]);
        assert_eq!(c.policy.scan_overdue_after, Duration::from_secs(86_400));
        let printed = format!("{config:?}");
        assert!(!printed.contains("ss-secret-value") && !printed.contains("erp-secret-value"), "{printed}");
        assert!(printed.contains("ACME_SS_SECRET"));
    }

    #[test]
    fn the_public_url_is_an_http_url_without_a_trailing_slash_and_anything_else_is_refused_by_name() {
        assert_eq!(Config::parse(GOOD, "t.toml", &env).unwrap().public_url, None, "optional");
        let with = |u: &str| GOOD.replace("listen = \"127.0.0.1:8080\"", &format!("listen = \"127.0.0.1:8080\"\npublic_url = \"{u}\""));
        let config = Config::parse(&with("https://ops.example.com/shipledger/"), "t.toml", &env).unwrap();
        assert_eq!(config.public_url.unwrap().as_str(), "https://ops.example.com/shipledger");
        for bad in ["ops.example.com", "ftp://ops.example.com", "https://ops.example.com/?a=1", "not a url"] {
            let e = Config::parse(&with(bad), "t.toml", &env).unwrap_err();
            assert!(e.message.contains("public_url") && e.message.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn the_example_files_load_with_their_public_url_and_account_currency() {
        let any = |_: &str| Some("set".to_string());
        let sandbox = Config::parse(include_str!("../../../examples/shipledger.toml"), "examples/shipledger.toml", &any).unwrap();
        assert_eq!(sandbox.public_url.map(String::from), Some("http://127.0.0.1:8080/".to_string()));
        let tryton = Config::parse(include_str!("../../../examples/tryton.toml"), "examples/tryton.toml", &any).unwrap();
        assert_eq!(tryton.connections[0].erp.kind, "tryton");
        assert_eq!(tryton.connections[0].shipstation.account_currency, Currency::USD);
        assert!(tryton.public_url.is_some());
    }

    #[test]
    fn a_label_awaiting_a_scan_is_checked_at_least_every_six_hours_unless_the_policy_says_otherwise() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        assert_eq!(config.connections[0].policy.scan_check_max_interval, Duration::from_secs(6 * 3600));
        let often = GOOD.replace("scan_overdue_after = \"24h\"", "scan_overdue_after = \"24h\"\nscan_check_max_interval = \"30m\"");
        let config = Config::parse(&often, "t.toml", &env).unwrap();
        assert_eq!(config.connections[0].policy.scan_check_max_interval, Duration::from_secs(1800));
        let never = GOOD.replace("scan_overdue_after = \"24h\"", "scan_check_max_interval = \"0s\"");
        let e = Config::parse(&never, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("scan_check_max_interval"), "{e}");
    }

    #[test]
    fn held_orders_are_read_again_every_five_minutes_unless_the_policy_says_otherwise() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        assert_eq!(config.connections[0].policy.held_recheck_interval, Duration::from_secs(300));
        let often = GOOD.replace("scan_overdue_after = \"24h\"", "scan_overdue_after = \"24h\"\nheld_recheck_interval = \"90s\"");
        let config = Config::parse(&often, "t.toml", &env).unwrap();
        assert_eq!(config.connections[0].policy.held_recheck_interval, Duration::from_secs(90));
        let bad = GOOD.replace("scan_overdue_after = \"24h\"", "held_recheck_interval = \"soon\"");
        let e = Config::parse(&bad, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("held_recheck_interval = \"soon\""), "{e}");
    }

    #[test]
    fn the_reconciler_runs_daily_and_in_full_weekly_unless_the_policy_says_otherwise() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        assert_eq!((p.reconcile_interval, p.reconcile_full_interval), (Some(Duration::from_secs(86_400)), Some(Duration::from_secs(7 * 86_400))));
        assert_eq!(config.lanes.reconcile, 2);
        let with = |lines: &str| GOOD.replace("scan_overdue_after = \"24h\"", &format!("scan_overdue_after = \"24h\"\n{lines}"));
        let config = Config::parse(&with("reconcile_interval = \"6h\"\nreconcile_full_interval = \"none\""), "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        assert_eq!((p.reconcile_interval, p.reconcile_full_interval), (Some(Duration::from_secs(6 * 3600)), None));
        let e = Config::parse(&with("reconcile_full_interval = \"0s\""), "t.toml", &env).unwrap_err();
        assert!(e.message.contains("reconcile_full_interval = \"0s\""), "{e}");
        let e = Config::parse(&with("reconcile_full_interval = \"weekly\""), "t.toml", &env).unwrap_err();
        assert!(e.message.contains("reconcile_full_interval"), "{e}");
    }

    #[test]
    fn each_job_kind_retries_as_today_unless_its_retry_table_says_otherwise() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        let sync = p.retry_policy(JobKind::SyncOrder);
        assert_eq!((sync.initial, sync.max_delay, sync.jitter_pct, sync.max_attempts), (Duration::from_secs(2), Duration::from_secs(300), 20, 8));
        let write = p.retry_policy(JobKind::WriteFulfilment);
        assert_eq!((write.max_delay, write.jitter_pct), (Duration::from_secs(30), 0));
        assert_eq!(p.retry_policy(JobKind::IngestV1Webhook).max_delay, Duration::from_secs(300));

        // max_push_attempts stays every kind's default; a kind's table overrides it.
        let tuned = GOOD.replace(
            "currencies = [\"GBP\", \"usd\"]",
            "currencies = [\"GBP\"]\nmax_push_attempts = 3\n\n[connections.policy.retry.write_fulfilment]\ninitial = \"5s\"\nmax_delay = \"10m\"\njitter_pct = 10\nmax_attempts = 12\ngive_up_after = \"2h\"",
        );
        let config = Config::parse(&tuned, "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        assert_eq!(p.retry_policy(JobKind::SyncOrder).max_attempts, 3);
        assert_eq!(
            p.retry_policy(JobKind::WriteFulfilment),
            RetryPolicy {
                initial: Duration::from_secs(5),
                max_delay: Duration::from_secs(600),
                jitter_pct: 10,
                max_attempts: 12,
                give_up_after: Duration::from_secs(7200)
            }
        );

        let typo = GOOD.replace("currencies = [\"GBP\", \"usd\"]", "[connections.policy.retry.sync_orders]\ninitial = \"1s\"");
        let e = Config::parse(&typo, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("sync_orders") && e.message.contains("sync_order, ingest_v1_webhook, ingest_v2_track, write_fulfilment"), "{e}");
        let wide = GOOD.replace("currencies = [\"GBP\", \"usd\"]", "[connections.policy.retry.sync_order]\njitter_pct = 150");
        let e = Config::parse(&wide, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("retry.sync_order.jitter_pct = 150"), "{e}");
        let vague = GOOD.replace("currencies = [\"GBP\", \"usd\"]", "[connections.policy.retry.sync_order]\ngive_up_after = \"a while\"");
        let e = Config::parse(&vague, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("retry.sync_order.give_up_after"), "{e}");
    }

    #[test]
    fn webhook_hints_wait_five_seconds_of_quiet_or_thirty_at_most_unless_the_policy_says_otherwise() {
        let config = Config::parse(GOOD, "t.toml", &env).unwrap();
        let p = &config.connections[0].policy;
        assert_eq!((p.webhook_coalesce, p.webhook_coalesce_max), (Duration::from_secs(5), Duration::from_secs(30)));
        let tuned = GOOD.replace("scan_overdue_after = \"24h\"", "scan_overdue_after = \"24h\"\nwebhook_coalesce = \"2s\"\nwebhook_coalesce_max = \"10s\"");
        let p = Config::parse(&tuned, "t.toml", &env).unwrap().connections[0].policy.clone();
        assert_eq!((p.webhook_coalesce, p.webhook_coalesce_max), (Duration::from_secs(2), Duration::from_secs(10)));
        let upside_down = GOOD.replace("scan_overdue_after = \"24h\"", "webhook_coalesce = \"1m\"");
        let e = Config::parse(&upside_down, "t.toml", &env).unwrap_err();
        assert!(e.message.contains("webhook_coalesce_max") && e.message.contains("acme-uk"), "{e}");
    }

    #[test]
    fn a_missing_secret_names_the_variable_to_export() {
        let err = Config::parse(GOOD, "test.toml", &|n| if n == "ACME_SS_SECRET" { None } else { env(n) }).unwrap_err();
        assert!(err.to_string().contains("$ACME_SS_SECRET"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_place() {
        let err = Config::parse(&GOOD.replace("fulfil_on = \"carrier_scan\"", "fulfil_on = \"whenever\""), "t", &env).unwrap_err();
        assert!(err.to_string().contains("fulfil_on"), "{err}");
        let err = Config::parse(&GOOD.replace("[server]", "[server]\nlisten_port = 1"), "t", &env).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = Config::parse(&GOOD.replace("kind = \"sandbox\"", "kind = \"sap\""), "t", &env).unwrap_err();
        assert!(err.to_string().contains("sap"), "{err}");
    }
}
