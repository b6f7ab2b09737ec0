//! The sandbox ERP's books: sales orders with their payment documents, the product
//! master, stock with reservations, fulfilment documents, journals and the FX rate
//! table, and every rule a real ERP enforces on them. No HTTP here: the routes call
//! these methods and turn a [`Refusal`] into a status code.
//!
//! Rules kept here, in one place:
//! - every change to an order stamps it with an `(updated_at, id)` strictly after the
//!   last one handed out, so a change feed read with a strict cursor never misses a
//!   change, even when several orders share a millisecond;
//! - stock is reserved for the unshipped quantity of every physical line of a
//!   non-cancelled order whose SKU is in the master, released on cancel, and taken off
//!   hand (with its reservation) when a fulfilment is completed;
//! - a fulfilment moves packed → completed (or packed → cancelled), never back, and
//!   never completes twice; the same key and state again returns the same document;
//! - a journal balances in the base currency or is refused; the same key returns the
//!   journal already posted.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shipledger_core::json::{decimal_number, decimal_number_option};
use shipledger_core::journal::PeriodState;
use shipledger_core::money::{Currency, Money, Rounding};
use shipledger_core::order::{Address, PaymentState};
use shipledger_core::weight::{Weight, WeightUnit};

/// Why the ERP said no. The routes map each to its status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 404 `not_found`.
    NotFound(String),
    /// 404 `no_rate`: the FX table has no rate on or before the date.
    NoRate(String),
    /// 400 `invalid`: the request itself is malformed.
    Invalid(String),
    /// 409 `conflict`: the document's state forbids it.
    Conflict(String),
    /// 422 `unprocessable`: a business rule forbids it.
    Unprocessable(String),
}

type Result<T> = std::result::Result<T, Refusal>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Open,
    OnHold,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::OnHold => "on_hold",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// A payment document (`PAY-…`): a card authorisation, a capture, a bank transfer
/// awaited, a refund. The order's payment evidence is read from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub state: PaymentState,
    /// `card`, `paypal`, `bank_transfer`, ...
    pub method: String,
    #[serde(with = "decimal_number")]
    pub amount: Decimal,
    pub currency: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub authorised_at: Option<Timestamp>,
    #[serde(default)]
    pub captured_at: Option<Timestamp>,
    #[serde(default)]
    pub refunded_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesLine {
    /// `SOL-10001-1`: stable for the life of the order.
    pub id: String,
    #[serde(default)]
    pub sku: Option<String>,
    pub name: String,
    pub quantity: u32,
    #[serde(with = "decimal_number")]
    pub unit_price: Decimal,
    /// Weight of one unit as the line carries it (usually absent: the product
    /// master has it).
    #[serde(with = "decimal_number_option", default)]
    pub weight: Option<Decimal>,
    /// `g`, `kg`, `lb` or `oz`.
    pub weight_uom: String,
    /// False for discounts, gift cards and services.
    pub physical: bool,
}

/// A sales order (`SO-10001`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesOrder {
    pub id: String,
    /// The number people see (the web shop's order number when it came from one).
    pub number: String,
    /// The shop's own reference; re-sending an order with the same reference updates
    /// it instead of creating a second one.
    #[serde(default)]
    pub external_ref: Option<String>,
    pub status: OrderStatus,
    #[serde(default)]
    pub hold_reason: Option<String>,
    pub currency: String,
    pub placed_at: Timestamp,
    pub updated_at: Timestamp,
    /// `updated_at` in epoch milliseconds: the change feed's cursor field.
    pub updated_at_ms: i64,
    #[serde(default)]
    pub cancelled_at: Option<Timestamp>,
    /// Why it was cancelled, when the canceller said.
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub customer_email: Option<String>,
    pub ship_to: Address,
    #[serde(default)]
    pub bill_to: Option<Address>,
    pub lines: Vec<SalesLine>,
    #[serde(with = "decimal_number")]
    pub shipping: Decimal,
    #[serde(with = "decimal_number")]
    pub tax: Decimal,
    /// Lines, shipping and tax.
    #[serde(with = "decimal_number")]
    pub total: Decimal,
    #[serde(default)]
    pub requested_service: Option<String>,
    pub payments: Vec<Payment>,
    /// Quantities invoiced per line id (posted customer invoices).
    #[serde(default)]
    pub invoiced: BTreeMap<String, u32>,
    /// Invoice on shipment (Tryton's `shipment` invoice method): each completed
    /// fulfilment invoices its lines. `false` leaves invoicing to someone else (a
    /// story's "shipped but never invoiced").
    #[serde(default = "invoice_on_shipment")]
    pub invoice_on_shipment: bool,
}

fn invoice_on_shipment() -> bool {
    true
}

impl SalesOrder {
    fn compute_total(&self) -> Decimal {
        self.lines.iter().map(|l| l.unit_price * Decimal::from(l.quantity)).sum::<Decimal>() + self.shipping + self.tax
    }
}

/// A product master entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub sku: String,
    pub name: String,
    /// Weight of one unit; `None` when the master has none (and zero happens too).
    #[serde(with = "decimal_number_option", default)]
    pub weight: Option<Decimal>,
    #[serde(default = "grams")]
    pub weight_uom: String,
    #[serde(default = "yes")]
    pub active: bool,
}

fn grams() -> String {
    "g".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRecord {
    pub on_hand: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FulfilmentStatus {
    Packed,
    Completed,
    Cancelled,
}

impl FulfilmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FulfilmentStatus::Packed => "packed",
            FulfilmentStatus::Completed => "completed",
            FulfilmentStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfilmentLine {
    pub line_id: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDoc {
    pub carrier: String,
    #[serde(default)]
    pub service: Option<String>,
    pub tracking_number: String,
    #[serde(default)]
    pub ship_date: Option<Date>,
    #[serde(default)]
    pub cost: Option<Money>,
}

/// A fulfilment document (`FUL-00001`): the ERP's delivery note for some lines of an
/// order, keyed by the caller's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfilment {
    pub id: String,
    pub key: String,
    pub order_id: String,
    pub state: FulfilmentStatus,
    pub lines: Vec<FulfilmentLine>,
    pub packages: Vec<PackageDoc>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub packed_at: Option<Timestamp>,
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    #[serde(default)]
    pub cancelled_at: Option<Timestamp>,
}

/// `POST /api/orders/{id}/fulfilments`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FulfilmentInput {
    pub key: String,
    pub state: FulfilmentStatus,
    #[serde(default)]
    pub lines: Vec<FulfilmentLine>,
    #[serde(default)]
    pub packages: Vec<PackageDoc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalLineDoc {
    pub account: String,
    pub debit: Money,
    pub credit: Money,
    /// The amount in its original currency, when it was converted.
    #[serde(default)]
    pub original: Option<Money>,
    #[serde(default)]
    pub memo: Option<String>,
}

/// `POST /api/journals`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JournalInput {
    pub key: String,
    pub date: Date,
    #[serde(default)]
    pub memo: String,
    pub lines: Vec<JournalLineDoc>,
}

/// A posted journal (`JNL-00001`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    pub key: String,
    pub date: Date,
    pub memo: String,
    pub posted: bool,
    pub posted_at: Timestamp,
    pub lines: Vec<JournalLineDoc>,
}

/// One row of the rate table: one unit of `currency` is `rate` units of the base
/// currency from `date` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRow {
    pub currency: String,
    #[serde(with = "decimal_number")]
    pub rate: Decimal,
    pub date: Date,
}

/// A rate as `GET /api/fx` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxAnswer {
    pub from: String,
    pub to: String,
    #[serde(with = "decimal_number")]
    pub rate: Decimal,
    /// The two rates the conversion is made of, unrounded: an amount in `from` is
    /// `amount × rate_to ÷ rate_from` in `to`. The table keeps base units per unit of
    /// a currency (the reciprocal of Tryton's way), so `rate_from` is the value of
    /// `to` and `rate_to` the value of `from` (the base's own is 1): `amount ×
    /// value(from) ÷ value(to)`, exact, where `rate` above is that ratio rounded.
    #[serde(with = "decimal_number")]
    pub rate_from: Decimal,
    #[serde(with = "decimal_number")]
    pub rate_to: Decimal,
    /// The date of the rate used: the latest on or before the date asked for (the
    /// older of the two when neither is the base currency).
    pub date: Date,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockAdjustmentDoc {
    pub id: String,
    pub key: String,
    pub sku: String,
    pub delta: i64,
    pub reason: String,
    pub at: Timestamp,
}

/// `POST /api/stock/adjustments`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StockAdjustmentInput {
    pub key: String,
    pub sku: String,
    pub delta: i64,
    #[serde(default)]
    pub reason: String,
}

/// The control API's order body (`POST /_sandbox/orders`): everything a web shop
/// sends. Ids of the order and lines are assigned when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    /// `open` (default) or `on_hold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OrderStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<String>,
    pub currency: String,
    /// Defaults to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_email: Option<String>,
    #[serde(default)]
    pub ship_to: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_to: Option<Address>,
    pub lines: Vec<LineInput>,
    #[serde(with = "decimal_number_option", default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<Decimal>,
    #[serde(with = "decimal_number_option", default, skip_serializing_if = "Option::is_none")]
    pub tax: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_service: Option<String>,
    /// The payment document to open with the order; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub name: String,
    pub quantity: u32,
    #[serde(with = "decimal_number")]
    pub unit_price: Decimal,
    #[serde(with = "decimal_number_option", default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_uom: Option<String>,
    #[serde(default = "yes")]
    pub physical: bool,
}

/// Open a payment document, or (control API) move the order's latest one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInput {
    pub state: PaymentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Defaults to the order total.
    #[serde(with = "decimal_number_option", default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
}

/// `PATCH /_sandbox/orders/{id}/lines/{line_id}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct LinePatch {
    #[serde(default)]
    pub sku: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub quantity: Option<u32>,
    #[serde(with = "decimal_number_option", default)]
    pub unit_price: Option<Decimal>,
    #[serde(with = "decimal_number_option", default)]
    pub weight: Option<Decimal>,
    #[serde(default)]
    pub weight_uom: Option<String>,
    /// Drop the line's own weight (the product master's counts again).
    #[serde(default)]
    pub clear_weight: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sequences {
    pub order: u64,
    pub payment: u64,
    pub fulfilment: u64,
    pub journal: u64,
    pub adjustment: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// `GET /api/orders` → count.
    pub requests: BTreeMap<String, u64>,
    pub unauthorized: u64,
    /// Orders re-sent with an `id` or `external_ref` already known.
    pub duplicates_received: u64,
    /// Refusals by code (`conflict`, `unprocessable`, ...).
    pub refusals: BTreeMap<String, u64>,
    pub faults_injected: u64,
}

/// The whole ERP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErpWorld {
    pub company_name: String,
    pub base_currency: String,
    pub orders: BTreeMap<String, SalesOrder>,
    pub products: BTreeMap<String, Product>,
    pub stock: BTreeMap<String, StockRecord>,
    pub fulfilments: BTreeMap<String, Fulfilment>,
    pub journals: BTreeMap<String, Journal>,
    pub fx: Vec<FxRow>,
    pub adjustments: Vec<StockAdjustmentDoc>,
    pub seq: Sequences,
    /// The last `(updated_at_ms, id)` handed to an order.
    pub last_change: (i64, String),
    pub stats: Stats,
    /// Answer the next N API requests with 503 (fault injection).
    #[serde(default)]
    pub fail_next: u32,
    /// Hold every API request this long before answering it (a slow ERP).
    #[serde(default)]
    pub latency_ms: u64,
    /// Accounting periods by month (`2026-11`) that are not open; every other month
    /// is open.
    #[serde(default)]
    pub periods: BTreeMap<String, PeriodState>,
    /// The chart of accounts (what `GET /api/accounts` lists for the check).
    #[serde(default = "default_chart")]
    pub accounts: std::collections::BTreeSet<String>,
    /// The journals (by code) moves may be posted to.
    #[serde(default = "default_journals")]
    pub journal_codes: std::collections::BTreeSet<String>,
}

/// The seeded chart: the sandbox's own four-digit codes and the Tryton seed's.
pub fn default_chart() -> std::collections::BTreeSet<String> {
    ["1100", "1150", "2100", "2150", "5100", "1.1.9", "2.1.1", "5.1.3"].into_iter().map(String::from).collect()
}

pub fn default_journals() -> std::collections::BTreeSet<String> {
    ["MISC".to_string()].into_iter().collect()
}

/// Journal accounts of the default chart, as a connection names them: shipping
/// expense `5.1.3`, Stamps.com's prepaid balance `1.1.9`, every other carrier accrued
/// in `2.1.1`, journal `MISC` (what the demo posts with).
pub fn chart_accounts() -> shipledger_core::journal::JournalAccounts {
    use shipledger_core::journal::{CarrierAccountKind, JournalAccounts};
    JournalAccounts {
        shipping_expense: "5.1.3".into(),
        shipping_expense_by_carrier: BTreeMap::new(),
        prepaid_postage: Some("1.1.9".into()),
        accrued_shipping: Some("2.1.1".into()),
        carrier_accounts: BTreeMap::from([("stamps_com".to_string(), CarrierAccountKind::Prepaid)]),
        default_kind: CarrierAccountKind::Accrued,
        journal: "MISC".into(),
    }
}

/// `2026-11` for any date of November 2026.
pub fn period_name(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

fn weight_unit(uom: &str) -> Result<WeightUnit> {
    WeightUnit::parse(uom).map_err(|e| Refusal::Invalid(e.to_string()))
}

/// A line's or product's weight as a [`Weight`] (for validation).
fn check_weight(value: Option<Decimal>, uom: &str, what: &str) -> Result<()> {
    let unit = weight_unit(uom)?;
    if let Some(v) = value {
        Weight::from_decimal(v, unit).map_err(|e| Refusal::Invalid(format!("{what}: {e}")))?;
    }
    Ok(())
}

fn check_amount(amount: Decimal, currency: &str, what: &str) -> Result<()> {
    let c = Currency::parse(currency).map_err(|e| Refusal::Invalid(e.to_string()))?;
    Money::from_decimal(amount, c, Rounding::Exact)
        .map(|_| ())
        .map_err(|e| Refusal::Invalid(format!("{what}: {e}")))
}

fn nonblank(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl ErpWorld {
    /// An empty company with the seeded rate table: daily (weekday) USD and EUR
    /// rates against `base_currency` for the 400 days up to `today`.
    pub fn new(base_currency: Currency, seed: u64, today: Date) -> ErpWorld {
        ErpWorld {
            company_name: "Sandbox Trading Ltd".into(),
            base_currency: base_currency.code().to_string(),
            orders: BTreeMap::new(),
            products: BTreeMap::new(),
            stock: BTreeMap::new(),
            fulfilments: BTreeMap::new(),
            journals: BTreeMap::new(),
            fx: seed_rates(base_currency, seed, today),
            adjustments: Vec::new(),
            seq: Sequences::default(),
            last_change: (0, String::new()),
            stats: Stats::default(),
            fail_next: 0,
            latency_ms: 0,
            periods: BTreeMap::new(),
            accounts: default_chart(),
            journal_codes: default_journals(),
        }
    }

    // ----- the change feed -------------------------------------------------------

    /// Stamp order `id` as changed: `(updated_at, id)` strictly after the last stamp
    /// handed out, never before `now`.
    fn stamp(&mut self, id: &str, now: Timestamp) -> Timestamp {
        let (last_ms, last_id) = &self.last_change;
        let mut ms = now.as_millisecond().max(*last_ms);
        if ms == *last_ms && id <= last_id.as_str() {
            ms += 1;
        }
        self.last_change = (ms, id.to_string());
        let at = Timestamp::from_millisecond(ms).unwrap_or(now);
        if let Some(o) = self.orders.get_mut(id) {
            o.updated_at = at;
            o.updated_at_ms = ms;
        }
        at
    }

    /// Orders strictly after `(after_ms, after_id)`, in `(updated_at, id)` order.
    pub fn changed_orders(&self, after: Option<(i64, &str)>, limit: usize) -> Vec<&SalesOrder> {
        let mut all: Vec<&SalesOrder> = self
            .orders
            .values()
            .filter(|o| match after {
                None => true,
                Some((ms, id)) => (o.updated_at_ms, o.id.as_str()) > (ms, id),
            })
            .collect();
        all.sort_by(|a, b| (a.updated_at_ms, &a.id).cmp(&(b.updated_at_ms, &b.id)));
        all.truncate(limit);
        all
    }

    /// These orders, whatever their status, in the order asked (unknown ids absent).
    pub fn orders_by_id<'a>(&'a self, ids: &[&str]) -> Vec<&'a SalesOrder> {
        ids.iter().filter_map(|id| self.orders.get(*id)).collect()
    }

    pub fn order(&self, id: &str) -> Result<&SalesOrder> {
        self.orders.get(id).ok_or_else(|| Refusal::NotFound(format!("sales order {id} does not exist")))
    }

    // ----- reservations ----------------------------------------------------------

    /// Quantity completed per line of `order_id`.
    fn shipped(&self, order_id: &str) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for f in self.fulfilments.values().filter(|f| f.order_id == order_id && f.state == FulfilmentStatus::Completed) {
            for l in &f.lines {
                *out.entry(l.line_id.clone()).or_insert(0) += l.quantity;
            }
        }
        out
    }

    /// What `order_id` holds reserved, per SKU.
    fn reservation_of(&self, order_id: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        let Some(order) = self.orders.get(order_id) else { return out };
        if order.status == OrderStatus::Cancelled {
            return out;
        }
        let shipped = self.shipped(order_id);
        for line in order.lines.iter().filter(|l| l.physical) {
            let Some(sku) = &line.sku else { continue };
            if !self.products.contains_key(sku) {
                continue;
            }
            let open = i64::from(line.quantity) - i64::from(shipped.get(&line.id).copied().unwrap_or(0));
            if open > 0 {
                *out.entry(sku.clone()).or_insert(0) += open;
            }
        }
        out
    }

    fn apply_reservation(&mut self, before: BTreeMap<String, i64>, after: BTreeMap<String, i64>) {
        let skus: std::collections::BTreeSet<String> = before.keys().chain(after.keys()).cloned().collect();
        for sku in skus {
            let delta = after.get(&sku).copied().unwrap_or(0) - before.get(&sku).copied().unwrap_or(0);
            if delta != 0 {
                let rec = self.stock.entry(sku).or_insert(StockRecord { on_hand: 0, reserved: 0 });
                rec.reserved = (rec.reserved + delta).max(0);
            }
        }
    }

    /// Change order `id` with `f` (which validates before it mutates), then stamp it
    /// and move its stock reservation.
    fn change_order<R>(&mut self, id: &str, now: Timestamp, f: impl FnOnce(&mut SalesOrder, &BTreeMap<String, u32>) -> Result<R>) -> Result<R> {
        self.order(id)?;
        let before = self.reservation_of(id);
        let shipped = self.shipped(id);
        let order = self.orders.get_mut(id).expect("checked above");
        let out = f(order, &shipped)?;
        order.total = order.compute_total();
        self.stamp(id, now);
        let after = self.reservation_of(id);
        self.apply_reservation(before, after);
        Ok(out)
    }

    // ----- orders (control API) --------------------------------------------------

    fn validate_order(&self, input: &OrderInput) -> Result<Currency> {
        let currency = Currency::parse(&input.currency).map_err(|e| Refusal::Invalid(e.to_string()))?;
        if input.lines.is_empty() {
            return Err(Refusal::Invalid("an order needs at least one line".into()));
        }
        if input.status == Some(OrderStatus::Cancelled) {
            return Err(Refusal::Invalid("an order cannot be created cancelled; create it, then cancel it".into()));
        }
        for (i, l) in input.lines.iter().enumerate() {
            if l.name.trim().is_empty() {
                return Err(Refusal::Invalid(format!("line {} has no name", i + 1)));
            }
            check_amount(l.unit_price, currency.code(), &format!("line {} unit_price", i + 1))?;
            check_weight(l.weight, l.weight_uom.as_deref().unwrap_or("g"), &format!("line {} weight", i + 1))?;
        }
        for (what, v) in [("shipping", input.shipping), ("tax", input.tax)] {
            if let Some(v) = v {
                check_amount(v, currency.code(), what)?;
            }
        }
        if let Some(p) = &input.payment
            && let Some(a) = p.amount
        {
            check_amount(a, currency.code(), "payment amount")?;
        }
        Ok(currency)
    }

    /// Create an order, or update the one with the same `id` or `external_ref` (a
    /// re-sent order: stamped again, counted as a duplicate). Answers the order and
    /// whether it was new.
    pub fn upsert_order(&mut self, input: OrderInput, now: Timestamp) -> Result<(SalesOrder, bool)> {
        let currency = self.validate_order(&input)?;
        let existing = input
            .id
            .as_ref()
            .filter(|id| self.orders.contains_key(*id))
            .cloned()
            .or_else(|| {
                let r = nonblank(&input.external_ref)?;
                self.orders.values().find(|o| o.external_ref.as_deref() == Some(r.as_str())).map(|o| o.id.clone())
            });
        if let Some(id) = existing {
            self.stats.duplicates_received += 1;
            let payment = input.payment.clone();
            self.change_order(&id, now, |o, shipped| {
                let lines = build_lines(&o.id, &input.lines);
                for l in &lines {
                    if shipped.get(&l.id).copied().unwrap_or(0) > l.quantity {
                        return Err(Refusal::Conflict(format!("line {} of {} has shipped more than the re-sent quantity {}", l.id, o.id, l.quantity)));
                    }
                }
                o.lines = lines;
                o.ship_to = input.ship_to.clone();
                o.bill_to = input.bill_to.clone();
                o.customer_email = input.customer_email.clone();
                o.shipping = input.shipping.unwrap_or_default();
                o.tax = input.tax.unwrap_or_default();
                o.requested_service = input.requested_service.clone();
                Ok(())
            })?;
            // A re-sent order opens no second payment document.
            if self.orders[&id].payments.is_empty()
                && let Some(p) = payment
            {
                self.open_payment(&id, &p, now);
            }
            return Ok((self.orders[&id].clone(), false));
        }

        let id = match &input.id {
            Some(id) if !id.trim().is_empty() => id.trim().to_string(),
            _ => loop {
                self.seq.order += 1;
                let id = format!("SO-{}", 10_000 + self.seq.order);
                if !self.orders.contains_key(&id) {
                    break id;
                }
            },
        };
        let status = input.status.unwrap_or(OrderStatus::Open);
        let mut order = SalesOrder {
            number: nonblank(&input.number).unwrap_or_else(|| id.clone()),
            external_ref: nonblank(&input.external_ref),
            status,
            hold_reason: if status == OrderStatus::OnHold { input.hold_reason.clone() } else { None },
            currency: currency.code().to_string(),
            placed_at: input.placed_at.unwrap_or(now),
            updated_at: now,
            updated_at_ms: now.as_millisecond(),
            cancelled_at: None,
            cancel_reason: None,
            customer_email: input.customer_email.clone(),
            ship_to: input.ship_to.clone(),
            bill_to: input.bill_to.clone(),
            lines: build_lines(&id, &input.lines),
            shipping: input.shipping.unwrap_or_default(),
            tax: input.tax.unwrap_or_default(),
            total: Decimal::ZERO,
            requested_service: input.requested_service.clone(),
            payments: Vec::new(),
            invoiced: BTreeMap::new(),
            invoice_on_shipment: true,
            id: id.clone(),
        };
        order.total = order.compute_total();
        self.orders.insert(id.clone(), order);
        if let Some(p) = &input.payment {
            self.open_payment(&id, p, now);
        }
        self.stamp(&id, now);
        let after = self.reservation_of(&id);
        self.apply_reservation(BTreeMap::new(), after);
        Ok((self.orders[&id].clone(), true))
    }

    fn open_payment(&mut self, order_id: &str, p: &PaymentInput, now: Timestamp) {
        self.seq.payment += 1;
        let pid = format!("PAY-{}", 10_000 + self.seq.payment);
        let order = self.orders.get_mut(order_id).expect("order exists");
        let mut pay = Payment {
            id: pid,
            state: p.state,
            method: p.method.clone().unwrap_or_else(|| "card".into()),
            amount: p.amount.unwrap_or(order.total),
            currency: order.currency.clone(),
            created_at: now,
            authorised_at: None,
            captured_at: None,
            refunded_at: None,
            updated_at: now,
        };
        mark_payment(&mut pay, p.state, now);
        order.payments.push(pay);
    }

    /// Move the order's latest payment document to `state` (opening one when there is
    /// none). Refunds only follow a capture; a capture never goes back to an
    /// authorisation.
    pub fn set_payment(&mut self, order_id: &str, input: PaymentInput, now: Timestamp) -> Result<SalesOrder> {
        let order = self.order(order_id)?;
        if let Some(a) = input.amount {
            check_amount(a, &order.currency, "payment amount")?;
        }
        if order.payments.is_empty() {
            self.open_payment(order_id, &input, now);
            self.stamp(order_id, now);
            return Ok(self.orders[order_id].clone());
        }
        let pay = order.payments.last().expect("non-empty");
        use PaymentState::*;
        let allowed = match (pay.state, input.state) {
            (a, b) if a == b => true,
            (Unpaid, Authorised | Captured) => true,
            (Authorised, Captured | Unpaid) => true,
            (Captured, Refunded) => true,
            _ => false,
        };
        if !allowed {
            return Err(Refusal::Conflict(format!(
                "payment {} of {order_id} is {}; it cannot become {}",
                pay.id,
                pay.state.as_str(),
                input.state.as_str()
            )));
        }
        if pay.state == input.state && input.amount.is_none_or(|a| a == pay.amount) {
            return Ok(order.clone());
        }
        self.change_order(order_id, now, |o, _| {
            let pay = o.payments.last_mut().expect("non-empty");
            if let Some(a) = input.amount {
                pay.amount = a;
            }
            if let Some(m) = &input.method {
                pay.method = m.clone();
            }
            mark_payment(pay, input.state, now);
            Ok(())
        })?;
        Ok(self.orders[order_id].clone())
    }

    /// Cancel an order: open (packed) fulfilments are cancelled with it and its stock
    /// reservation is released. An order with a completed fulfilment has shipped and
    /// cannot be cancelled.
    pub fn cancel_order(&mut self, order_id: &str, reason: Option<String>, now: Timestamp) -> Result<SalesOrder> {
        let order = self.order(order_id)?;
        if order.status == OrderStatus::Cancelled {
            return Err(Refusal::Conflict(format!("sales order {order_id} is already cancelled")));
        }
        if let Some(f) = self.fulfilments.values().find(|f| f.order_id == order_id && f.state == FulfilmentStatus::Completed) {
            return Err(Refusal::Conflict(format!(
                "sales order {order_id} has shipped (fulfilment {} is completed); it can no longer be cancelled, raise a return instead",
                f.id
            )));
        }
        for f in self.fulfilments.values_mut().filter(|f| f.order_id == order_id && f.state == FulfilmentStatus::Packed) {
            f.state = FulfilmentStatus::Cancelled;
            f.cancelled_at = Some(now);
            f.updated_at = now;
        }
        self.change_order(order_id, now, |o, _| {
            o.status = OrderStatus::Cancelled;
            o.cancelled_at = Some(now);
            o.cancel_reason = reason;
            o.hold_reason = None;
            Ok(())
        })?;
        Ok(self.orders[order_id].clone())
    }

    pub fn hold_order(&mut self, order_id: &str, hold: bool, reason: Option<String>, now: Timestamp) -> Result<SalesOrder> {
        let order = self.order(order_id)?;
        if order.status == OrderStatus::Cancelled {
            return Err(Refusal::Conflict(format!("sales order {order_id} is cancelled; it cannot be held or released")));
        }
        let target = if hold { OrderStatus::OnHold } else { OrderStatus::Open };
        if order.status == target {
            return Ok(order.clone());
        }
        self.change_order(order_id, now, |o, _| {
            o.status = target;
            o.hold_reason = if hold { reason } else { None };
            Ok(())
        })?;
        Ok(self.orders[order_id].clone())
    }

    pub fn set_ship_to(&mut self, order_id: &str, address: Address, now: Timestamp) -> Result<SalesOrder> {
        if self.order(order_id)?.status == OrderStatus::Cancelled {
            return Err(Refusal::Conflict(format!("sales order {order_id} is cancelled; its address cannot change")));
        }
        self.change_order(order_id, now, |o, _| {
            o.ship_to = address;
            Ok(())
        })?;
        Ok(self.orders[order_id].clone())
    }

    pub fn patch_line(&mut self, order_id: &str, line_id: &str, patch: LinePatch, now: Timestamp) -> Result<SalesOrder> {
        let order = self.order(order_id)?;
        if order.status == OrderStatus::Cancelled {
            return Err(Refusal::Conflict(format!("sales order {order_id} is cancelled; its lines cannot change")));
        }
        let line = order
            .lines
            .iter()
            .find(|l| l.id == line_id)
            .ok_or_else(|| Refusal::NotFound(format!("sales order {order_id} has no line {line_id}")))?;
        if let Some(p) = patch.unit_price {
            check_amount(p, &order.currency, "unit_price")?;
        }
        check_weight(patch.weight, patch.weight_uom.as_deref().unwrap_or(&line.weight_uom), "weight")?;
        self.change_order(order_id, now, |o, shipped| {
            let line = o.lines.iter_mut().find(|l| l.id == line_id).expect("checked above");
            if let Some(q) = patch.quantity {
                let done = shipped.get(line_id).copied().unwrap_or(0);
                if q < done {
                    return Err(Refusal::Conflict(format!("line {line_id} has already shipped {done}; its quantity cannot drop to {q}")));
                }
                line.quantity = q;
            }
            if let Some(s) = patch.sku {
                line.sku = Some(s).filter(|s| !s.trim().is_empty());
            }
            if let Some(n) = patch.name {
                line.name = n;
            }
            if let Some(p) = patch.unit_price {
                line.unit_price = p;
            }
            if patch.clear_weight {
                line.weight = None;
            }
            if let Some(w) = patch.weight {
                line.weight = Some(w);
            }
            if let Some(u) = patch.weight_uom {
                line.weight_uom = u;
            }
            Ok(())
        })?;
        Ok(self.orders[order_id].clone())
    }

    /// Save an order unchanged: it shows up in the change feed again.
    pub fn touch(&mut self, order_id: &str, now: Timestamp) -> Result<SalesOrder> {
        self.change_order(order_id, now, |_, _| Ok(()))?;
        Ok(self.orders[order_id].clone())
    }

    // ----- products and stock ----------------------------------------------------

    pub fn upsert_product(&mut self, p: Product) -> Result<Product> {
        if p.sku.trim().is_empty() {
            return Err(Refusal::Invalid("a product needs a SKU".into()));
        }
        check_weight(p.weight, &p.weight_uom, &format!("product {} weight", p.sku))?;
        let p = Product { sku: p.sku.trim().to_string(), ..p };
        let newly_known = !self.products.contains_key(&p.sku);
        self.products.insert(p.sku.clone(), p.clone());
        self.stock.entry(p.sku.clone()).or_insert(StockRecord { on_hand: 0, reserved: 0 });
        if newly_known {
            // Open orders that already named this SKU reserve it now.
            let ids: Vec<String> = self
                .orders
                .values()
                .filter(|o| o.lines.iter().any(|l| l.sku.as_deref() == Some(p.sku.as_str())))
                .map(|o| o.id.clone())
                .collect();
            for id in ids {
                let qty = self.reservation_of(&id).get(&p.sku).copied().unwrap_or(0);
                self.stock.get_mut(&p.sku).expect("inserted").reserved += qty;
            }
        }
        Ok(p)
    }

    pub fn stock_of(&self, sku: &str) -> Result<StockRecord> {
        if !self.products.contains_key(sku) {
            return Err(Refusal::NotFound(format!("product {sku} is not in the product master")));
        }
        Ok(self.stock.get(sku).copied().unwrap_or(StockRecord { on_hand: 0, reserved: 0 }))
    }

    pub fn set_stock(&mut self, sku: &str, on_hand: i64) -> Result<StockRecord> {
        self.stock_of(sku)?;
        if on_hand < 0 {
            return Err(Refusal::Invalid(format!("on_hand for {sku} cannot be negative ({on_hand})")));
        }
        let rec = self.stock.get_mut(sku).expect("checked");
        rec.on_hand = on_hand;
        Ok(*rec)
    }

    /// Apply a stock adjustment once per key; the same key again answers the current
    /// level without applying it twice.
    pub fn adjust_stock(&mut self, input: StockAdjustmentInput, now: Timestamp) -> Result<(StockAdjustmentDoc, StockRecord, bool)> {
        if input.key.trim().is_empty() {
            return Err(Refusal::Invalid("a stock adjustment needs a key".into()));
        }
        if let Some(done) = self.adjustments.iter().find(|a| a.key == input.key) {
            if done.sku != input.sku || done.delta != input.delta {
                return Err(Refusal::Conflict(format!(
                    "adjustment key {} was already used for {} {:+} ({}); use a new key for a different adjustment",
                    input.key, done.sku, done.delta, done.id
                )));
            }
            let done = done.clone();
            let level = self.stock_of(&done.sku)?;
            return Ok((done, level, false));
        }
        let current = self.stock_of(&input.sku)?;
        let on_hand = current.on_hand + input.delta;
        if on_hand < 0 {
            return Err(Refusal::Unprocessable(format!(
                "adjusting {} by {} would leave {on_hand} on hand; only {} are on hand",
                input.sku, input.delta, current.on_hand
            )));
        }
        self.seq.adjustment += 1;
        let doc = StockAdjustmentDoc {
            id: format!("ADJ-{:05}", self.seq.adjustment),
            key: input.key,
            sku: input.sku.clone(),
            delta: input.delta,
            reason: input.reason,
            at: now,
        };
        self.adjustments.push(doc.clone());
        let rec = self.stock.get_mut(&input.sku).expect("checked");
        rec.on_hand = on_hand;
        Ok((doc, *rec, true))
    }

    // ----- fulfilments -----------------------------------------------------------

    pub fn fulfilments_of(&self, order_id: &str) -> Result<Vec<Fulfilment>> {
        self.order(order_id)?;
        Ok(self.fulfilments.values().filter(|f| f.order_id == order_id).cloned().collect())
    }

    /// Record a fulfilment by key: create it (packed or completed), or move it
    /// forward. Answers the document and whether it was created.
    pub fn record_fulfilment(&mut self, order_id: &str, input: FulfilmentInput, now: Timestamp) -> Result<(Fulfilment, bool)> {
        let order = self.order(order_id)?.clone();
        if input.key.trim().is_empty() {
            return Err(Refusal::Invalid("a fulfilment needs a key (the caller's idempotency key)".into()));
        }
        let existing = self.fulfilments.values().find(|f| f.key == input.key).cloned();
        let Some(doc) = existing else {
            return self.create_fulfilment(&order, input, now).map(|f| (f, true));
        };
        if doc.order_id != order_id {
            return Err(Refusal::Conflict(format!(
                "fulfilment key {} already names {} on sales order {}, not {order_id}",
                input.key, doc.id, doc.order_id
            )));
        }
        if !input.lines.is_empty() && normalise(&input.lines) != normalise(&doc.lines) {
            return Err(Refusal::Conflict(format!(
                "fulfilment {} (key {}) covers {}; the lines sent ({}) differ — use a new key for other lines",
                doc.id,
                doc.key,
                describe(&doc.lines),
                describe(&input.lines)
            )));
        }
        use FulfilmentStatus::*;
        match (doc.state, input.state) {
            (Packed, Packed) => Ok((doc, false)),
            (Packed, Completed) => {
                let before = self.reservation_of(order_id);
                let f = self.fulfilments.get_mut(&doc.id).expect("exists");
                f.state = Completed;
                f.completed_at = Some(now);
                f.updated_at = now;
                merge_packages(&mut f.packages, input.packages);
                let lines = f.lines.clone();
                let out = f.clone();
                self.take_off_hand(&order, &lines, before);
                Ok((out, false))
            }
            (Packed, Cancelled) => {
                let f = self.fulfilments.get_mut(&doc.id).expect("exists");
                f.state = Cancelled;
                f.cancelled_at = Some(now);
                f.updated_at = now;
                Ok((f.clone(), false))
            }
            (Completed, Completed) => Err(Refusal::Conflict(format!(
                "fulfilment {} (key {}) for {order_id} is already completed (since {}); completing it again is refused",
                doc.id,
                doc.key,
                doc.completed_at.map(|t| t.to_string()).unwrap_or_default()
            ))),
            (Completed, to) => Err(Refusal::Conflict(format!(
                "fulfilment {} (key {}) for {order_id} is completed; it cannot move back to {}",
                doc.id,
                doc.key,
                to.as_str()
            ))),
            (Cancelled, Cancelled) => Ok((doc, false)),
            (Cancelled, to) => Err(Refusal::Conflict(format!(
                "fulfilment {} (key {}) for {order_id} is cancelled; it cannot become {} — record a new fulfilment with a new key",
                doc.id,
                doc.key,
                to.as_str()
            ))),
        }
    }

    fn create_fulfilment(&mut self, order: &SalesOrder, input: FulfilmentInput, now: Timestamp) -> Result<Fulfilment> {
        let order_id = order.id.as_str();
        match order.status {
            OrderStatus::Cancelled => {
                return Err(Refusal::Conflict(format!("sales order {order_id} is cancelled; nothing may be fulfilled on it")));
            }
            OrderStatus::OnHold => {
                return Err(Refusal::Conflict(format!(
                    "sales order {order_id} is on hold ({}); release it before fulfilling",
                    order.hold_reason.as_deref().unwrap_or("no reason given")
                )));
            }
            OrderStatus::Open => {}
        }
        if input.state == FulfilmentStatus::Cancelled {
            return Err(Refusal::Unprocessable(format!("there is no fulfilment with key {} to cancel", input.key)));
        }
        if input.lines.is_empty() {
            return Err(Refusal::Unprocessable("a fulfilment needs at least one line".into()));
        }
        // Quantities: each line at most what is still unfulfilled.
        let mut taken: BTreeMap<String, u32> = BTreeMap::new();
        for f in self.fulfilments.values().filter(|f| f.order_id == order_id && f.state != FulfilmentStatus::Cancelled) {
            for l in &f.lines {
                *taken.entry(l.line_id.clone()).or_insert(0) += l.quantity;
            }
        }
        let lines = normalise(&input.lines);
        for l in &lines {
            let Some(line) = order.lines.iter().find(|x| x.id == l.line_id) else {
                return Err(Refusal::Unprocessable(format!("sales order {order_id} has no line {}", l.line_id)));
            };
            if !line.physical {
                return Err(Refusal::Unprocessable(format!("line {} of {order_id} ({}) is not physical; it cannot be fulfilled", l.line_id, line.name)));
            }
            if l.quantity == 0 {
                return Err(Refusal::Unprocessable(format!("line {} of {order_id}: a quantity of 0 fulfils nothing", l.line_id)));
            }
            let already = taken.get(&l.line_id).copied().unwrap_or(0);
            if already + l.quantity > line.quantity {
                return Err(Refusal::Unprocessable(format!(
                    "line {} of {order_id} is for {} and {already} are already on other fulfilments; {} more is beyond the order line",
                    l.line_id, line.quantity, l.quantity
                )));
            }
        }
        for p in &input.packages {
            if p.tracking_number.trim().is_empty() || p.carrier.trim().is_empty() {
                return Err(Refusal::Unprocessable("every package needs a carrier and a tracking number".into()));
            }
        }
        self.seq.fulfilment += 1;
        let completed = input.state == FulfilmentStatus::Completed;
        let doc = Fulfilment {
            id: format!("FUL-{:05}", self.seq.fulfilment),
            key: input.key,
            order_id: order_id.to_string(),
            state: input.state,
            lines: lines.clone(),
            packages: input.packages,
            created_at: now,
            updated_at: now,
            packed_at: Some(now),
            completed_at: completed.then_some(now),
            cancelled_at: None,
        };
        let before = self.reservation_of(order_id);
        self.fulfilments.insert(doc.id.clone(), doc.clone());
        if completed {
            self.take_off_hand(order, &lines, before);
        }
        Ok(doc)
    }

    /// A completed fulfilment: the goods leave stock, and the reservation with them.
    fn take_off_hand(&mut self, order: &SalesOrder, lines: &[FulfilmentLine], before: BTreeMap<String, i64>) {
        for l in lines {
            let Some(sku) = order.lines.iter().find(|x| x.id == l.line_id).and_then(|x| x.sku.clone()) else { continue };
            if let Some(rec) = self.stock.get_mut(&sku).filter(|_| self.products.contains_key(&sku)) {
                rec.on_hand -= i64::from(l.quantity);
            }
        }
        let after = self.reservation_of(&order.id);
        self.apply_reservation(before, after);
        if let Some(o) = self.orders.get_mut(&order.id).filter(|o| o.invoice_on_shipment) {
            for l in lines {
                *o.invoiced.entry(l.line_id.clone()).or_insert(0) += l.quantity;
            }
        }
    }

    // ----- journals --------------------------------------------------------------

    /// Post a journal once per key. Every amount is in the base currency, no line is
    /// negative or both debit and credit, and debits equal credits.
    pub fn post_journal(&mut self, input: JournalInput, now: Timestamp) -> Result<(Journal, bool)> {
        if input.key.trim().is_empty() {
            return Err(Refusal::Invalid("a journal needs a key (the caller's idempotency key)".into()));
        }
        if let Some(j) = self.journals.values().find(|j| j.key == input.key) {
            return Ok((j.clone(), false));
        }
        let base = Currency::parse(&self.base_currency).expect("base currency is valid");
        let state = self.period_state(input.date);
        if state != PeriodState::Open {
            return Err(Refusal::Conflict(format!(
                "journal {} is dated {}, in period {} which is {state}; a period that is not open is never written",
                input.key,
                input.date,
                period_name(input.date)
            )));
        }
        if input.lines.len() < 2 {
            return Err(Refusal::Unprocessable(format!("journal {} needs at least two lines (a debit and a credit)", input.key)));
        }
        let (mut debits, mut credits) = (Money::zero(base), Money::zero(base));
        for (i, l) in input.lines.iter().enumerate() {
            let n = i + 1;
            if l.account.trim().is_empty() {
                return Err(Refusal::Unprocessable(format!("journal {} line {n} has no account", input.key)));
            }
            for (side, m) in [("debit", &l.debit), ("credit", &l.credit)] {
                if m.currency() != base {
                    return Err(Refusal::Unprocessable(format!(
                        "journal {} line {n} has its {side} in {}; journals post in the base currency {base} (keep the foreign amount in `original`)",
                        input.key,
                        m.currency()
                    )));
                }
                if m.is_negative() {
                    return Err(Refusal::Unprocessable(format!("journal {} line {n} has a negative {side} ({m})", input.key)));
                }
            }
            if !l.debit.is_zero() && !l.credit.is_zero() {
                return Err(Refusal::Unprocessable(format!("journal {} line {n} is both a debit and a credit; split it in two", input.key)));
            }
            let overflow = |_| Refusal::Unprocessable(format!("journal {} totals overflow", input.key));
            debits = debits.checked_add(&l.debit).map_err(overflow)?;
            credits = credits.checked_add(&l.credit).map_err(overflow)?;
        }
        if debits != credits {
            let diff = debits.checked_sub(&credits).map(|d| d.to_decimal().abs()).unwrap_or_default();
            return Err(Refusal::Unprocessable(format!(
                "journal {} does not balance: debits {debits} but credits {credits} (difference {diff} {base})",
                input.key
            )));
        }
        if debits.is_zero() {
            return Err(Refusal::Unprocessable(format!("journal {} moves nothing (all amounts are zero)", input.key)));
        }
        self.seq.journal += 1;
        let j = Journal {
            id: format!("JNL-{:05}", self.seq.journal),
            key: input.key,
            date: input.date,
            memo: input.memo,
            posted: true,
            posted_at: now,
            lines: input.lines,
        };
        self.journals.insert(j.id.clone(), j.clone());
        Ok((j, true))
    }

    /// The state of the period (month) holding `date`: open unless set otherwise.
    pub fn period_state(&self, date: Date) -> PeriodState {
        self.periods.get(&period_name(date)).copied().unwrap_or(PeriodState::Open)
    }

    /// Set the state of the month `name` (`2026-11`); open removes the mark.
    pub fn set_period(&mut self, name: &str, state: PeriodState) -> Result<()> {
        let ok = name.len() == 7 && format!("{name}-01").parse::<Date>().is_ok();
        if !ok {
            return Err(Refusal::Invalid(format!("period {name:?} is not a month written YYYY-MM")));
        }
        if state == PeriodState::Open {
            self.periods.remove(name);
        } else {
            self.periods.insert(name.to_string(), state);
        }
        Ok(())
    }

    pub fn journal(&self, id: &str) -> Result<&Journal> {
        self.journals
            .get(id)
            .or_else(|| self.journals.values().find(|j| j.key == id))
            .ok_or_else(|| Refusal::NotFound(format!("journal {id} does not exist")))
    }

    // ----- FX --------------------------------------------------------------------

    /// The latest rate for `currency` (in base units) on or before `date`.
    fn rate_to_base(&self, currency: &str, date: Date) -> Option<(Decimal, Date)> {
        if currency == self.base_currency {
            return Some((Decimal::ONE, date));
        }
        self.fx
            .iter()
            .filter(|r| r.currency == currency && r.date <= date)
            .max_by_key(|r| r.date)
            .map(|r| (r.rate, r.date))
    }

    /// One unit of `from` in `to` on `date`: the table's rate, its inverse, or a
    /// cross rate through the base currency (rounded to 10 places).
    pub fn fx(&self, from: &str, to: &str, date: Date) -> Result<FxAnswer> {
        for c in [from, to] {
            Currency::parse(c).map_err(|e| Refusal::Invalid(e.to_string()))?;
        }
        let (from, to) = (from.to_ascii_uppercase(), to.to_ascii_uppercase());
        let no_rate = |c: &str| Refusal::NoRate(format!("the rate table has no {c} rate on or before {date}"));
        if from == to {
            return Ok(FxAnswer { from, to, rate: Decimal::ONE, rate_from: Decimal::ONE, rate_to: Decimal::ONE, date, source: "sandbox-erp:identity".into() });
        }
        let (f, fd) = self.rate_to_base(&from, date).ok_or_else(|| no_rate(&from))?;
        let (t, td) = self.rate_to_base(&to, date).ok_or_else(|| no_rate(&to))?;
        let (rate, source) = if to == self.base_currency {
            (f, "sandbox-erp:rate-table")
        } else if from == self.base_currency {
            ((Decimal::ONE / t).round_dp(10), "sandbox-erp:rate-table (inverse)")
        } else {
            ((f / t).round_dp(10), "sandbox-erp:rate-table (cross via base)")
        };
        let used = if from == self.base_currency {
            td
        } else if to == self.base_currency {
            fd
        } else {
            fd.min(td)
        };
        Ok(FxAnswer { from, to, rate: rate.normalize(), rate_from: t, rate_to: f, date: used, source: source.into() })
    }

    pub fn add_rate(&mut self, row: FxRow) -> Result<FxRow> {
        let c = Currency::parse(&row.currency).map_err(|e| Refusal::Invalid(e.to_string()))?;
        if c.code() == self.base_currency {
            return Err(Refusal::Invalid(format!("{c} is the base currency; its rate is always 1")));
        }
        if row.rate <= Decimal::ZERO {
            return Err(Refusal::Invalid(format!("a rate must be positive, got {}", row.rate)));
        }
        let row = FxRow { currency: c.code().to_string(), ..row };
        self.fx.retain(|r| !(r.currency == row.currency && r.date == row.date));
        self.fx.push(row.clone());
        Ok(row)
    }
}

fn mark_payment(pay: &mut Payment, state: PaymentState, now: Timestamp) {
    pay.state = state;
    pay.updated_at = now;
    match state {
        PaymentState::Unpaid => {}
        PaymentState::Authorised => pay.authorised_at = Some(now),
        PaymentState::Captured => {
            pay.authorised_at.get_or_insert(now);
            pay.captured_at = Some(now);
        }
        PaymentState::Refunded => pay.refunded_at = Some(now),
    }
}

fn build_lines(order_id: &str, input: &[LineInput]) -> Vec<SalesLine> {
    let num = order_id.trim_start_matches("SO-");
    input
        .iter()
        .enumerate()
        .map(|(i, l)| SalesLine {
            id: nonblank(&l.id).unwrap_or_else(|| format!("SOL-{num}-{}", i + 1)),
            sku: nonblank(&l.sku),
            name: l.name.trim().to_string(),
            quantity: l.quantity,
            unit_price: l.unit_price,
            weight: l.weight,
            weight_uom: l.weight_uom.clone().unwrap_or_else(grams),
            physical: l.physical,
        })
        .collect()
}

/// Lines merged by id and sorted, so two spellings of the same fulfilment compare
/// equal.
fn normalise(lines: &[FulfilmentLine]) -> Vec<FulfilmentLine> {
    let mut m: BTreeMap<&str, u32> = BTreeMap::new();
    for l in lines {
        *m.entry(l.line_id.as_str()).or_insert(0) += l.quantity;
    }
    m.into_iter().map(|(line_id, quantity)| FulfilmentLine { line_id: line_id.to_string(), quantity }).collect()
}

fn describe(lines: &[FulfilmentLine]) -> String {
    normalise(lines).iter().map(|l| format!("{}×{}", l.line_id, l.quantity)).collect::<Vec<_>>().join(", ")
}

/// Packages not yet on the document (by tracking number) are added.
fn merge_packages(have: &mut Vec<PackageDoc>, new: Vec<PackageDoc>) {
    for p in new {
        if !have.iter().any(|h| h.tracking_number == p.tracking_number) {
            have.push(p);
        }
    }
}

/// Weekday rates for the 400 days up to `today`: USD about 0.79 and EUR about 0.85
/// (for a GBP base), each a small random walk from `seed`.
fn seed_rates(base: Currency, seed: u64, today: Date) -> Vec<FxRow> {
    // Units of GBP per unit of each currency, as a starting point.
    let gbp_per = |c: &str| -> Decimal {
        match c {
            "GBP" => Decimal::ONE,
            "USD" => Decimal::new(79, 2),
            "EUR" => Decimal::new(85, 2),
            _ => Decimal::ONE,
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_F00D);
    let mut rows = Vec::new();
    for foreign in ["GBP", "USD", "EUR"] {
        if foreign == base.code() {
            continue;
        }
        // One unit of `foreign` in base units.
        let mut rate = (gbp_per(foreign) / gbp_per(base.code())).round_dp(5);
        let start = today.checked_sub(jiff::Span::new().days(400)).unwrap_or(today);
        let mut day = start;
        while day <= today {
            if !matches!(day.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
                // ±0.3% a day, in steps of 0.001%.
                let step: i64 = rng.gen_range(-300..=300);
                rate = (rate * (Decimal::ONE + Decimal::new(step, 5))).round_dp(5);
                rows.push(FxRow { currency: foreign.to_string(), rate, date: day });
            }
            day = match day.tomorrow() {
                Ok(d) => d,
                Err(_) => break,
            };
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> ErpWorld {
        ErpWorld::new(Currency::GBP, 7, jiff::civil::date(2025, 6, 30))
    }

    fn input(sku: &str, qty: u32) -> OrderInput {
        OrderInput {
            currency: "GBP".into(),
            lines: vec![LineInput { sku: Some(sku.into()), name: "Mug".into(), quantity: qty, unit_price: Decimal::new(1250, 2), physical: true, ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn stamps_are_strictly_increasing_even_within_one_millisecond() {
        let mut w = world();
        let now = Timestamp::from_millisecond(1_700_000_000_000).unwrap();
        let (a, _) = w.upsert_order(input("MUG", 1), now).unwrap();
        let (b, _) = w.upsert_order(input("MUG", 1), now).unwrap();
        assert_eq!(a.updated_at_ms, b.updated_at_ms, "a higher id may share the millisecond");
        let a2 = w.touch(&a.id, now).unwrap();
        assert!((a2.updated_at_ms, &a2.id) > (b.updated_at_ms, &b.id));
    }

    #[test]
    fn a_weekend_date_uses_fridays_rate() {
        let w = world();
        let sat = jiff::civil::date(2025, 6, 28);
        let fx = w.fx("USD", "GBP", sat).unwrap();
        assert_eq!(fx.date, jiff::civil::date(2025, 6, 27));
    }
}
