//! `shipledger check-config --connect`: every system a connection names, reached
//! with its credentials, read only, and reported item by item.
//!
//! - **erp**: the connector's own [`Erp::check`](shipledger_erp::Erp::check)
//!   (reachable, key valid, and for Tryton the database, modules and records); with
//!   `[connections.accounts]`, every account code and the journal exist and the
//!   period of today (company time) is open ([`shipledger_erp::check_ledger`]).
//! - **shipstation v1**: `GET /stores` with the key and secret (reachable, accepted,
//!   the configured `store_id` among the stores), then the rate budget left in the
//!   window as ShipStation's `X-Rate-Limit-Remaining` said.
//! - **shipstation v2**: `GET /v2/labels?page_size=1` with the `API-Key`, when one is
//!   configured; without one, a warning (carrier scans are not read).
//! - **webhooks**: `GET /webhooks`; a warning when `[server] public_url` is unset,
//!   when no active SHIP_NOTIFY subscription targets
//!   `{public_url}/webhooks/shipstation/{connection}/{token}`, or when one targets it
//!   with another token (compared, never printed). Polling covers what webhooks miss,
//!   so none of this fails the check.
//!
//! Nothing is written anywhere, and no key, secret or token is ever in a detail: the
//! details name the environment variables instead. Requests are retried at most once
//! so that an unreachable system is reported in seconds, not minutes.

use std::sync::Arc;
use std::time::Duration;

use shipledger_erp::{CheckItem, CheckStatus};
use shipledger_shipstation::v1::model::WebhookEvent;
use shipledger_shipstation::v2::LabelFilter;
use shipledger_core::clock::SystemClock;
use shipledger_shipstation::{ClientConfig, Error as SsError, InMemoryRateBudget, V1Client, V2Client};
use url::Url;

use crate::config::ConnectionConfig;

/// What one system of a connection showed: `erp`, `shipstation v1`, `shipstation
/// v2` or `webhooks`, and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemCheck {
    pub system: String,
    pub items: Vec<CheckItem>,
}

/// Everything checked for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCheck {
    pub connection: String,
    pub systems: Vec<SystemCheck>,
}

impl ConnectionCheck {
    /// Every item with its system, in the order checked.
    pub fn items(&self) -> impl Iterator<Item = (&str, &CheckItem)> {
        self.systems
            .iter()
            .flat_map(|s| s.items.iter().map(move |i| (s.system.as_str(), i)))
    }

    pub fn count(&self, status: CheckStatus) -> usize {
        self.items().filter(|(_, i)| i.status == status).count()
    }
}

/// Patient enough for a slow answer, quick to give up on a system that is not there.
fn patience(mut config: ClientConfig) -> ClientConfig {
    config.timeout = Duration::from_secs(15);
    config.max_retries = 1;
    config.backoff_base = Duration::from_millis(300);
    config.max_rate_wait = Duration::from_secs(10);
    config
}

/// Check one connection's ERP and ShipStation account; `public_url` is
/// `[server] public_url`.
pub async fn check_connection(config: &ConnectionConfig, public_url: Option<&Url>) -> ConnectionCheck {
    let mut systems = Vec::new();
    let mut erp_items = match crate::erp_for(config) {
        Ok(erp) => {
            let mut items = erp.check().await;
            // The cost journal's accounts, journal and today's period, once the ERP
            // answers at all.
            if let Some(accounts) = &config.accounts
                && !items.iter().any(|i| i.status == CheckStatus::Failed)
            {
                let tz = config.policy.company_timezone(erp.as_ref()).await.unwrap_or_else(|_| config.policy.company_timezone_or(None));
                let today = shipledger_core::journal::company_date(jiff::Timestamp::now(), &tz);
                items.extend(shipledger_erp::check_ledger(erp.as_ref(), accounts, today).await);
            }
            items
        }
        Err(e) => vec![CheckItem::failed("setup", e.to_string())],
    };
    for item in erp_items.iter_mut().filter(|i| i.what == "key" && i.status == CheckStatus::Failed) {
        item.detail
            .push_str(&format!(" (the key is read from ${})", config.erp.api_key.env));
    }
    systems.push(SystemCheck {
        system: format!("erp ({})", config.erp.kind),
        items: erp_items,
    });
    if let Ok(erp) = crate::erp_for(config) {
        let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
        systems.push(SystemCheck { system: "fx rates".into(), items: fx_rates(config, erp.as_ref(), today).await });
    }
    let (v1_items, v1) = shipstation_v1(config).await;
    systems.push(SystemCheck {
        system: "shipstation v1".into(),
        items: v1_items,
    });
    systems.push(SystemCheck {
        system: "shipstation v2".into(),
        items: shipstation_v2(config).await,
    });
    if let Some(v1) = v1 {
        systems.push(SystemCheck {
            system: "webhooks".into(),
            items: webhooks(config, public_url, &v1).await,
        });
    }
    ConnectionCheck {
        connection: config.name.clone(),
        systems,
    }
}

/// For every currency in `policy.currencies` and the ShipStation account's currency
/// (other than the base), whether the
/// configured sources, in their order, have a usable rate to the base currency on
/// `today`: one item per currency, failed naming the currency and what each source
/// said.
pub async fn fx_rates(config: &ConnectionConfig, erp: &dyn shipledger_erp::Erp, today: jiff::civil::Date) -> Vec<CheckItem> {
    use crate::flows::fx::{Lookup, Rates};
    let policy = &config.policy;
    // Label costs come in the ShipStation account's currency (v1) as well as in those
    // the orders are in; both are checked.
    let mut currencies = policy.currencies.clone();
    if !currencies.contains(&config.shipstation.account_currency) {
        currencies.push(config.shipstation.account_currency);
    }
    let base = match erp.base_currency().await {
        Ok(b) => b,
        Err(e) => return vec![CheckItem::failed("base currency", e.to_string())],
    };
    let rates = match Rates::new(&config.name, policy, erp) {
        Ok(r) => r,
        Err(e) => return vec![CheckItem::failed("rates file", e.to_string())],
    };
    let sources: Vec<&str> = policy.fx_sources.iter().map(|s| s.code()).collect();
    let mut items = Vec::new();
    for currency in currencies.iter().filter(|c| **c != base) {
        let what = format!("rate {currency}→{base}");
        items.push(match rates.resolve(*currency, base, today).await {
            Ok(Lookup::Found(r)) => CheckItem::ok(
                what,
                format!("{} ({}): rates {} and {} of {}", r.source, r.detail, r.rate_from, r.rate_to, r.rate_date),
            ),
            Ok(Lookup::Missing { tried }) => CheckItem::failed(
                what,
                format!(
                    "no usable {currency} rate for {today} from the sources tried ({}): {}; add it in the ERP, the rates file or [[connections.policy.fx_fixed]]",
                    sources.join(", "),
                    tried.join("; ")
                ),
            ),
            Err(e) => CheckItem::failed(what, format!("{e} (sources: {})", sources.join(", "))),
        });
    }
    if items.is_empty() {
        items.push(CheckItem::ok("rates", format!("labels and orders are in the base currency {base}: nothing to convert")));
    }
    items
}

/// The v1 items, and the client when its key works (for the webhook check).
async fn shipstation_v1(config: &ConnectionConfig) -> (Vec<CheckItem>, Option<V1Client>) {
    let ss = &config.shipstation;
    let base = ss.base_url.as_str().trim_end_matches('/');
    let vars = format!("${} and ${}", ss.api_key.env, ss.api_secret.env);
    let budget = Arc::new(InMemoryRateBudget::new());
    let client_config = patience(ClientConfig::v1(ss.base_url.clone(), ss.api_key.expose(), ss.api_secret.expose()));
    let client = match V1Client::with_budget(client_config, budget.clone(), Arc::new(SystemClock)) {
        Ok(c) => c,
        Err(e) => return (vec![CheckItem::failed("setup", e.to_string())], None),
    };
    let mut items = Vec::new();
    let stores = match client.list_stores(false).await {
        Ok(stores) => stores,
        Err(e) => {
            items.extend(ss_failure(&e, base, "/stores", &vars));
            return (items, None);
        }
    };
    items.push(CheckItem::ok("server", format!("{base} answers")));
    items.push(CheckItem::ok(
        "key",
        format!("the key and secret from {vars} are accepted ({} active store(s))", stores.len()),
    ));
    if let Some(id) = ss.store_id {
        items.push(if stores.iter().any(|s| s.store_id == id) {
            CheckItem::ok("store", format!("store {id} exists"))
        } else {
            CheckItem::failed(
                "store",
                format!(
                    "store_id = {id} is not among the account's active stores; fix store_id, or remove it to use the first manual store"
                ),
            )
        });
    }
    items.push(match budget.remaining(&client.budget_key()) {
        Some(0) => CheckItem::warning(
            "rate budget",
            "0 requests left in this window: another process is using this key's budget up; requests wait for the next window",
        ),
        Some(n) => CheckItem::ok("rate budget", format!("{n} requests left in this window (X-Rate-Limit-Remaining)")),
        None => CheckItem::warning(
            "rate budget",
            "ShipStation sent no X-Rate-Limit headers; the budget is not known in advance",
        ),
    });
    (items, Some(client))
}

/// A ShipStation failure as check items: `server` or `key`, and what to do.
fn ss_failure(e: &SsError, base: &str, path: &str, vars: &str) -> Vec<CheckItem> {
    let answers = || CheckItem::ok("server", format!("{base} answers"));
    match e {
        SsError::Transport { kind, .. } => {
            vec![CheckItem::failed(
                "server",
                format!("{base} cannot be reached ({kind}); check the base URL and the network"),
            )]
        }
        SsError::Unauthorized { status, message, .. } => vec![
            answers(),
            CheckItem::failed(
                "key",
                format!(
                    "ShipStation refused the credentials from {vars} (HTTP {status}: {message}); put the account's API credentials in them (v1 and v2 keys differ)"
                ),
            ),
        ],
        SsError::NotFound { .. } => vec![CheckItem::failed(
            "server",
            format!("{base} answers 404 for {path}: it is not ShipStation's API; check the base URL"),
        )],
        other => vec![answers(), CheckItem::failed("key", other.to_string())],
    }
}

async fn shipstation_v2(config: &ConnectionConfig) -> Vec<CheckItem> {
    let ss = &config.shipstation;
    let (url, key) = match (&ss.v2_base_url, &ss.v2_api_key) {
        (Some(url), Some(key)) => (url, key),
        (None, None) => {
            return vec![CheckItem::warning(
                "key",
                "no v2 API key (v2_base_url, v2_api_key_env): carrier scans are not read, so shipments are not completed on their first scan",
            )];
        }
        (Some(_), None) => {
            return vec![CheckItem::warning(
                "key",
                "v2_base_url is set but v2_api_key_env is not: carrier scans are not read",
            )];
        }
        (None, Some(_)) => {
            return vec![CheckItem::warning(
                "key",
                "v2_api_key_env is set but v2_base_url is not: carrier scans are not read",
            )];
        }
    };
    let base = url.as_str().trim_end_matches('/');
    let vars = format!("${}", key.env);
    let client = match V2Client::new(patience(ClientConfig::v2(url.clone(), key.expose()))) {
        Ok(c) => c,
        Err(e) => return vec![CheckItem::failed("setup", e.to_string())],
    };
    match client
        .list_labels(&LabelFilter {
            page_size: Some(1),
            ..LabelFilter::default()
        })
        .await
    {
        Ok(_) => vec![
            CheckItem::ok("server", format!("{base} answers")),
            CheckItem::ok("key", format!("the API-Key from {vars} is accepted")),
        ],
        Err(e) => ss_failure(&e, base, "/v2/labels", &vars),
    }
}

async fn webhooks(config: &ConnectionConfig, public_url: Option<&Url>, client: &V1Client) -> Vec<CheckItem> {
    let poll = humantime::format_duration(config.policy.shipment_poll_interval);
    let Some(public) = public_url else {
        return vec![CheckItem::warning(
            "SHIP_NOTIFY",
            format!(
                "[server] public_url is not set, so the subscriptions cannot be checked; set it to the address ShipStation reaches this server at (polling every {poll} covers meanwhile)"
            ),
        )];
    };
    let prefix = format!("{}/webhooks/shipstation/{}/", public.as_str().trim_end_matches('/'), config.name);
    let hooks = match client.list_webhooks().await {
        Ok(h) => h,
        Err(e) => {
            // A decode error repeats part of the body, and the body names the
            // subscribed URLs, tokens included: say only that it could not be read.
            let why = match e {
                shipledger_shipstation::Error::Decode { .. } => "GET /webhooks answered something that is not a list of webhooks".to_string(),
                other => other.to_string(),
            };
            return vec![CheckItem::warning("SHIP_NOTIFY", format!("the subscriptions could not be read: {why}"))];
        }
    };
    let ours: Vec<&str> = hooks
        .iter()
        .filter(|h| h.active && h.hook_type == WebhookEvent::ShipNotify)
        .filter_map(|h| h.url.as_deref())
        .filter(|u| u.starts_with(&prefix))
        .collect();
    let Some(token) = &config.shipstation.webhook_token else {
        return vec![CheckItem::warning(
            "SHIP_NOTIFY",
            format!(
                "webhook_token_env is not set, so serve refuses every v1 webhook; set it and subscribe {prefix}<token> (polling every {poll} covers meanwhile)"
            ),
        )];
    };
    let exact = format!("{prefix}{}", token.expose());
    if ours.iter().any(|u| *u == exact) {
        vec![CheckItem::ok(
            "SHIP_NOTIFY",
            format!("subscribed to {prefix}<token from ${}>", token.env),
        )]
    } else if !ours.is_empty() {
        vec![CheckItem::warning(
            "SHIP_NOTIFY",
            format!(
                "subscribed to {prefix}… but with another token than ${}'s, so serve refuses those deliveries; subscribe again with the current token and remove the old one (polling every {poll} covers meanwhile)",
                token.env
            ),
        )]
    } else {
        vec![CheckItem::warning(
            "SHIP_NOTIFY",
            format!(
                "no active SHIP_NOTIFY subscription targets {prefix}<token from ${}>; subscribe one in ShipStation (polling every {poll} covers meanwhile)",
                token.env
            ),
        )]
    }
}
