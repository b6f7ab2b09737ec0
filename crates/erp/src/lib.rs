//! ERP connectors: the [`Erp`] trait with the five operations every ERP offers
//! shipledger, and one module per ERP (`sandbox` first; `tryton` next).
//!
//! 1. **Ready orders**: orders changed since a [`Cursor`], oldest first, each with
//!    its lines and the payment evidence the ERP holds ([`Erp::changed_orders`]);
//!    the product master for SKUs and weights ([`Erp::products`]); and orders read
//!    again by id, in batches, whether or not they are still ready ([`Erp::orders`]),
//!    so held orders are judged again and withdrawn ones are noticed.
//! 2. **Lines** come with the orders: SKU, quantity, per-unit weight.
//! 3. **Fulfilments**: record one as packed or completed, with packages and
//!    tracking ([`Erp::record_fulfilment`]), and read them back
//!    ([`Erp::fulfilments`]) to verify.
//! 4. **Journals**: post one in the base currency ([`Erp::post_journal`]), with FX
//!    rates from the ERP ([`Erp::fx_quote`]: both currencies' rates against the
//!    ERP's reference, never a pre-rounded ratio).
//! 5. **Stock**: read and adjust ([`Erp::stock`], [`Erp::adjust_stock`]).
//!
//! [`Erp::check`] (for `shipledger check-config --connect`) says, without writing
//! anything, whether the ERP answers, accepts the key and holds what shipledger
//! needs, as [`CheckItem`]s.
//!
//! A connector knows nothing of the store or of ShipStation, and refuses nothing the
//! ERP would accept: the ERP's own refusals (completing a completed fulfilment, an
//! unbalanced journal) come back as [`ErpError::Refused`] with the ERP's words.
//!
//! Every request a connector sends is counted as `system="erp"` with its templated
//! endpoint, status and latency (`shipledger_core::metrics`).

pub mod sandbox;
pub mod tryton;

use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shipledger_core::money::{Currency, Money};
use shipledger_core::order::{ErpOrder, Product};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an ERP call failed.
#[derive(Debug, thiserror::Error)]
pub enum ErpError {
    /// The ERP could not be reached or answered garbage; worth retrying.
    #[error("the ERP at {url} is unreachable or failing: {detail}")]
    Unavailable { url: String, detail: String },
    /// The ERP refused the request for a business reason; retrying will not help.
    #[error("the ERP refused {what}: {message}")]
    Refused { what: String, message: String },
    #[error("the ERP has no {what}")]
    NotFound { what: String },
    /// The accounting period holding `date` is not open: nothing was written, and
    /// nothing will be until it is reopened (late costs go to the next open period).
    #[error("the ERP refused {what}: its accounting period of {date} is {state}; a {state} period is never written, post into the next open period")]
    PeriodNotOpen { what: String, date: Date, state: PeriodState },
    #[error("the ERP rejected our credentials ({detail}); check the API key in the connection's environment variable")]
    Unauthorized { detail: String },
    #[error("the ERP's answer to {what} could not be read: {detail}")]
    Decode { what: String, detail: String },
}

use shipledger_core::retry::Classify as _;

impl ErpError {
    /// Worth trying again later.
    pub fn is_retriable(&self) -> bool {
        matches!(self.classify(), shipledger_core::retry::Verdict::Backoff)
    }
}

impl shipledger_core::retry::Classify for ErpError {
    /// An ERP that is down or failing: backoff. Credentials and answers we cannot
    /// read: an admin must act. A business refusal or a missing record: ops.
    fn classify(&self) -> shipledger_core::retry::Verdict {
        use shipledger_core::exception::Owner;
        use shipledger_core::retry::Verdict;
        match self {
            ErpError::Unavailable { .. } => Verdict::Backoff,
            ErpError::Unauthorized { .. } | ErpError::Decode { .. } => Verdict::GiveUp { owner: Owner::Admin },
            ErpError::Refused { .. } | ErpError::NotFound { .. } => Verdict::GiveUp { owner: Owner::Ops },
            ErpError::PeriodNotOpen { .. } => Verdict::GiveUp { owner: Owner::Finance },
        }
    }
}

pub type Result<T> = std::result::Result<T, ErpError>;

/// The metrics of one request to an ERP at `base` (its templated endpoint under the
/// client's base path), recorded the same way for every connector.
pub(crate) fn request_metric(base: &url::Url, method: &reqwest::Method, url: &url::Url) -> shipledger_core::metrics::ExternalRequest {
    use shipledger_core::metrics::{ExternalRequest, System, endpoint_template};
    ExternalRequest::new(System::Erp, method.as_str(), endpoint_template(base.path(), url.path()))
}

/// How a request failed before any answer came, in words for an error message.
pub(crate) fn transport_failure(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    }
}

/// Per order id, the quantity invoiced per line id ([`Erp::invoiced`]).
pub type Invoiced = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u32>>;

/// Orders read by id per request ([`Erp::orders`]).
pub const ORDERS_PER_READ: usize = 100;

/// Where reading changed orders left off: the last order's `updated_at` and id.
/// Orders are read in `(updated_at, erp_id)` order, strictly after the cursor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(with = "shipledger_core::time::serde_millis")]
    pub updated_at: Timestamp,
    pub erp_id: String,
}

impl Cursor {
    /// The text kept as a watermark.
    pub fn to_watermark(&self) -> String {
        format!("{}|{}", self.updated_at.as_millisecond(), self.erp_id)
    }

    pub fn from_watermark(s: &str) -> Option<Cursor> {
        let (ms, id) = s.split_once('|')?;
        Some(Cursor { updated_at: Timestamp::from_millisecond(ms.parse().ok()?).ok()?, erp_id: id.to_string() })
    }
}

/// Two phases of an ERP fulfilment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FulfilmentState {
    /// Label made: tracking attached, stock committed.
    Packed,
    /// The carrier has the parcel: shipped.
    Completed,
    /// Reversed (a voided label).
    Cancelled,
}

/// One parcel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub carrier: String,
    pub service: Option<String>,
    pub tracking_number: String,
    pub ship_date: Option<Date>,
    pub cost: Option<Money>,
}

/// Record (create or move forward) a fulfilment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfilmentWrite {
    /// Our idempotency key: the same key names the same fulfilment in the ERP.
    pub key: String,
    pub erp_order_id: String,
    pub state: FulfilmentState,
    /// `(line_id, quantity)`.
    pub lines: Vec<(String, u32)>,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfilmentRecord {
    /// The ERP's own id of the fulfilment document.
    pub id: String,
    pub key: String,
    pub erp_order_id: String,
    pub state: FulfilmentState,
    pub lines: Vec<(String, u32)>,
    pub packages: Vec<Package>,
    #[serde(with = "shipledger_core::time::serde_millis")]
    pub updated_at: Timestamp,
}

/// The journal types live in `core` (cost batching builds them without IO); they are
/// the connector's input as they always were.
pub use shipledger_core::journal::{JournalAccounts, JournalLine, JournalWrite, PeriodState};

/// What [`Erp::ledger_setup`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LedgerSetup {
    /// The codes asked for that the ERP's chart does not hold.
    pub missing_accounts: Vec<String>,
    pub journal_exists: bool,
}

/// The journal items of `check-config --connect` for a connection's
/// `[connections.accounts]`: every account and the journal exist in the ERP, and the
/// period of `today` (company date) is open. Reads only.
pub async fn check_ledger(erp: &dyn Erp, accounts: &JournalAccounts, today: Date) -> Vec<CheckItem> {
    let mut items = Vec::new();
    let codes: Vec<String> = accounts.codes().into_iter().map(str::to_string).collect();
    match erp.ledger_setup(&codes, &accounts.journal).await {
        Ok(setup) => {
            for code in &codes {
                let what = format!("account {code}");
                if setup.missing_accounts.contains(code) {
                    items.push(CheckItem::failed(
                        what,
                        format!("the ERP's chart has no account {code}; create it there or name another in [connections.accounts]"),
                    ));
                } else {
                    items.push(CheckItem::ok(what, "exists"));
                }
            }
            let what = format!("journal {}", accounts.journal);
            if setup.journal_exists {
                items.push(CheckItem::ok(what, "exists"));
            } else {
                items.push(CheckItem::failed(
                    what,
                    format!("the ERP has no journal {:?}; create it or set [connections.accounts] journal", accounts.journal),
                ));
            }
        }
        Err(e) => items.push(CheckItem::failed("accounts and journal", e.to_string())),
    }
    let what = format!("period of {today}");
    match erp.period_state(today).await {
        Ok(PeriodState::Open) => items.push(CheckItem::ok(what, "open")),
        Ok(PeriodState::Missing) => items.push(CheckItem::failed(
            what,
            format!("the ERP has no accounting period for {today}; create the fiscal year and its periods, or costs cannot post"),
        )),
        Ok(state) => items.push(CheckItem::failed(
            what,
            format!("the period is {state}: costs of today cannot post until it is reopened (late entries go to the next open period)"),
        )),
        Err(e) => items.push(CheckItem::failed(what, e.to_string())),
    }
    items
}

impl JournalRecord {
    /// Whether the ERP holds what was asked: posted, the same date, and the same
    /// lines (account, debit, credit, second-currency amount) in any order. `Err`
    /// names the first difference.
    pub fn verify(&self, asked: &JournalWrite) -> std::result::Result<(), String> {
        if !self.posted {
            return Err(format!("move {} is not posted", self.id));
        }
        if self.date != asked.date {
            return Err(format!("move {} is dated {}, the journal {}", self.id, self.date, asked.date));
        }
        type Row = (String, i64, i64, Option<(&'static str, i64)>);
        let rows = |lines: &[JournalLine]| -> Vec<Row> {
            let mut v: Vec<Row> = lines
                .iter()
                .map(|l| (l.account.clone(), l.debit.minor(), l.credit.minor(), l.original.filter(|o| o.currency() != l.debit.currency()).map(|o| (o.currency().code(), o.minor().abs()))))
                .collect();
            v.sort();
            v
        };
        let (got, want) = (rows(&self.lines), rows(&asked.lines));
        if got != want {
            return Err(format!("move {} holds lines {got:?}, the journal asked for {want:?}", self.id));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    pub id: String,
    pub key: String,
    pub date: Date,
    pub posted: bool,
    pub lines: Vec<JournalLine>,
}

/// Two currencies' rates against one reference currency, as the ERP keeps them
/// (Tryton: units of each currency per one unit of the company currency): an
/// amount in `from` is `amount × rate_to ÷ rate_from` in `to`, computed exactly and
/// rounded once ([`shipledger_core::fx::Conversion::make`]). Never a ratio rounded
/// beforehand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxQuote {
    pub from: Currency,
    pub to: Currency,
    pub rate_from: Decimal,
    pub rate_to: Decimal,
    /// The date of the older of the two rates used (each the latest on or before the
    /// date asked for); the reference currency's own rate, always 1, does not count.
    pub date: Date,
    /// Which rows of the ERP the rates are (`tryton:currency.currency.rate:12+7`).
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustment {
    pub key: String,
    pub sku: String,
    /// Positive adds, negative removes.
    pub delta: i64,
    pub reason: String,
}

/// How one item of a connection check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Works, but something is missing or degraded that a person should know of.
    Warning,
    /// Does not work: shipledger cannot run against this system until it is fixed.
    Failed,
}

/// One thing a connection check looked at: what (`database`, `key`, `module
/// stock_package_shipping`, ...), how it came out, and in words what was seen and,
/// when it is not ok, what to do. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    pub what: String,
    pub status: CheckStatus,
    pub detail: String,
}

impl CheckItem {
    pub fn ok(what: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { what: what.into(), status: CheckStatus::Ok, detail: detail.into() }
    }

    pub fn warning(what: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { what: what.into(), status: CheckStatus::Warning, detail: detail.into() }
    }

    pub fn failed(what: impl Into<String>, detail: impl Into<String>) -> CheckItem {
        CheckItem { what: what.into(), status: CheckStatus::Failed, detail: detail.into() }
    }
}

/// An ERP, as shipledger uses it.
pub trait Erp: Send + Sync {
    /// `sandbox`, `tryton`, ...
    fn kind(&self) -> &'static str;

    /// Check the connection without writing anything: the ERP answers, the key is
    /// accepted, and what shipledger needs there exists. One item per thing looked
    /// at; an item that could not be looked at because an earlier one failed is left
    /// out. The default reads the base currency (reachable, key valid); connectors
    /// add what their ERP must hold.
    fn check(&self) -> BoxFuture<'_, Vec<CheckItem>> {
        Box::pin(async move {
            match self.base_currency().await {
                Ok(c) => vec![CheckItem::ok("reachable, key valid", format!("base currency {}", c.code()))],
                Err(e) => vec![CheckItem::failed("reachable, key valid", e.to_string())],
            }
        })
    }

    /// Orders created or changed strictly after `since` (all when `None`), ordered by
    /// `(updated_at, erp_id)`, at most `limit`. Unpaid, held and cancelled orders are
    /// included: the gate decides, not the connector.
    fn changed_orders<'a>(&'a self, since: Option<&'a Cursor>, limit: u32) -> BoxFuture<'a, Result<Vec<ErpOrder>>>;

    /// These orders as the ERP holds them now, read in batches of at most
    /// [`ORDERS_PER_READ`], whether or not they are still in the ready set: an order
    /// the ERP no longer wants shipped comes back with a status that says so (and the
    /// ERP's reason in `status_reason`), never as a gap. Ids the ERP does not know
    /// are simply absent.
    fn orders<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Vec<ErpOrder>>>;

    /// Ready orders whose products or ship-to address the ERP changed at or after
    /// `since` while the order's own record did not change (an ERP that keeps them
    /// apart, as Tryton does), so a held order is judged again at the next poll.
    /// Empty where the ERP does not offer it: the scheduled re-read catches those.
    fn orders_touched_since<'a>(&'a self, since: Timestamp) -> BoxFuture<'a, Result<Vec<String>>> {
        let _ = since;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What these orders have invoiced: per order, the quantity invoiced per line id
    /// (posted customer invoices, less posted credit notes; an order with none maps
    /// to an empty map). The reconciler holds these against fulfilments, so lines no
    /// fulfilment ships (services, the shipping charge) are left out. `None` when the
    /// connector cannot tell, so the reconciler's invoice rules do not run for this
    /// ERP (the default).
    fn invoiced<'a>(&'a self, erp_ids: &'a [String]) -> BoxFuture<'a, Result<Option<Invoiced>>> {
        let _ = erp_ids;
        Box::pin(async { Ok(None) })
    }

    /// Product master entries for these SKUs (unknown SKUs are simply absent).
    fn products<'a>(&'a self, skus: &'a [String]) -> BoxFuture<'a, Result<Vec<Product>>>;

    fn record_fulfilment<'a>(&'a self, write: &'a FulfilmentWrite) -> BoxFuture<'a, Result<FulfilmentRecord>>;
    fn fulfilments<'a>(&'a self, erp_order_id: &'a str) -> BoxFuture<'a, Result<Vec<FulfilmentRecord>>>;

    fn base_currency(&self) -> BoxFuture<'_, Result<Currency>>;
    /// The ERP's rates of `from` and `to` against its reference on `date` (each the
    /// latest on or before it); `None` when it lacks either.
    fn fx_quote<'a>(&'a self, from: Currency, to: Currency, date: Date) -> BoxFuture<'a, Result<Option<FxQuote>>>;
    fn post_journal<'a>(&'a self, journal: &'a JournalWrite) -> BoxFuture<'a, Result<JournalRecord>>;

    /// The IANA time zone the ERP's company keeps (Tryton `company.timezone`), when
    /// the connector can read one; cost windows are cut in it unless configured.
    fn company_timezone(&self) -> BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// The state of the accounting period holding `date` ([`PeriodState::Missing`]
    /// when the ERP has none). The default says the connector cannot tell.
    fn period_state<'a>(&'a self, date: Date) -> BoxFuture<'a, Result<PeriodState>> {
        let _ = date;
        Box::pin(async move {
            Err(ErpError::Refused { what: "the period state".into(), message: format!("the {} connector does not report accounting periods", self.kind()) })
        })
    }

    /// Which of these account codes and which journal the ERP holds. The default
    /// says the connector cannot tell.
    fn ledger_setup<'a>(&'a self, accounts: &'a [String], journal: &'a str) -> BoxFuture<'a, Result<LedgerSetup>> {
        let _ = (accounts, journal);
        Box::pin(async move {
            Err(ErpError::Refused { what: "the chart of accounts".into(), message: format!("the {} connector does not list accounts", self.kind()) })
        })
    }

    fn stock<'a>(&'a self, sku: &'a str) -> BoxFuture<'a, Result<StockLevel>>;
    fn adjust_stock<'a>(&'a self, adjustment: &'a StockAdjustment) -> BoxFuture<'a, Result<StockLevel>>;
}
