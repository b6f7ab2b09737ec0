//! Batched cost journals: which window a cost entry posts in, which batches are due,
//! and the one balanced journal a batch becomes (DESIGN §7). Pure: plain data in,
//! plain data out; the engine reads entries, conversions, posted windows and the
//! ERP's period states, and writes what [`plan_batches`] and [`build_journal`] return.
//!
//! - [`CostBatch`] (`policy.cost_batch`): daily, weekly or monthly [`Window`]s in the
//!   company's time zone. An entry's own window is that of its **label time**
//!   (`label_created_at`), never v1's date-only Pacific ship date. Weekly windows are
//!   ISO weeks (Monday first) cut at the month end; no window crosses a month end.
//! - [`plan_batches`]: each entry goes into its own window when that window is not
//!   posted yet and its ERP period is open; otherwise into the next window that is
//!   (never a closed, locked or missing period), marked carried over from its own.
//!   A batch holding an entry without a conversion is waiting, with the entry keys;
//!   a batch is due once its window has ended in company time (or `--until` says).
//! - [`build_journal`]: one journal in the base currency, two lines per carrier ×
//!   original currency (debit shipping expense, credit prepaid postage or accrued
//!   shipping), each line's base amount the sum of its entries' [`Conversion::base`],
//!   so the journal reconciles to the entries to the minor unit and balances by
//!   construction.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::cost::CostEntry;
use crate::fx::Conversion;
use crate::money::{Currency, Money, MoneyError};

/// How long a posting window is (`policy.cost_batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostBatch {
    /// One window per company day (the default).
    #[default]
    Daily,
    /// ISO weeks, Monday to Sunday, cut at the month end.
    Weekly,
    /// The calendar month.
    Monthly,
}

impl CostBatch {
    pub const ALL: &'static [CostBatch] = &[CostBatch::Daily, CostBatch::Weekly, CostBatch::Monthly];

    pub fn code(self) -> &'static str {
        match self {
            CostBatch::Daily => "daily",
            CostBatch::Weekly => "weekly",
            CostBatch::Monthly => "monthly",
        }
    }

    pub fn parse(code: &str) -> Option<CostBatch> {
        CostBatch::ALL.iter().copied().find(|b| b.code() == code)
    }
}

impl std::fmt::Display for CostBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A posting window: the company dates `start..=end`, both in one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    pub start: Date,
    pub end: Date,
}

impl Window {
    /// The window of `policy` that holds the company date `date`.
    pub fn containing(date: Date, policy: CostBatch) -> Window {
        match policy {
            CostBatch::Daily => Window { start: date, end: date },
            CostBatch::Weekly => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                let forward = 6 - back;
                let monday = date.checked_sub(jiff::Span::new().days(back)).unwrap_or(date);
                let sunday = date.checked_add(jiff::Span::new().days(forward)).unwrap_or(date);
                Window { start: monday.max(date.first_of_month()), end: sunday.min(date.last_of_month()) }
            }
            CostBatch::Monthly => Window { start: date.first_of_month(), end: date.last_of_month() },
        }
    }

    /// The window of a label made at `at`, in the company's time zone `tz`.
    pub fn of_label(at: Timestamp, tz: &TimeZone, policy: CostBatch) -> Window {
        Window::containing(company_date(at, tz), policy)
    }

    /// The window that starts the day after this one ends.
    pub fn next(&self, policy: CostBatch) -> Window {
        Window::containing(self.end.tomorrow().unwrap_or(self.end), policy)
    }

    /// `2026-11-30..2026-12-06`-style text: `{start}..{end}`.
    pub fn code(&self) -> String {
        format!("{}..{}", self.start, self.end)
    }

    /// The date its journal is posted on: the window's last day.
    pub fn posting_date(&self) -> Date {
        self.end
    }

    /// Whether it has ended on the company date `today` (`today` is after its end).
    pub fn has_ended(&self, today: Date) -> bool {
        today > self.end
    }

    pub fn contains(&self, date: Date) -> bool {
        self.start <= date && date <= self.end
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// The company date of the instant `at` in `tz`.
pub fn company_date(at: Timestamp, tz: &TimeZone) -> Date {
    at.to_zoned(tz.clone()).date()
}

/// `{connection}/costs/{start}..{end}/r{revision}`: `acme-uk/costs/2026-11-30..2026-11-30/r0`.
pub fn batch_key(connection: &str, window: &Window, revision: u32) -> String {
    format!("{connection}/costs/{window}/r{revision}")
}

/// The state of the ERP's accounting period holding a date (Tryton `account.period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodState {
    Open,
    Closed,
    Locked,
    /// The ERP has no period for the date (no fiscal year made yet).
    Missing,
}

impl PeriodState {
    pub fn code(self) -> &'static str {
        match self {
            PeriodState::Open => "open",
            PeriodState::Closed => "closed",
            PeriodState::Locked => "locked",
            PeriodState::Missing => "missing",
        }
    }

    /// Whether a journal may be written into it.
    pub fn is_open(self) -> bool {
        self == PeriodState::Open
    }
}

impl std::fmt::Display for PeriodState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// One entry of a planned batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    pub entry: CostEntry,
    /// `None`: no usable rate yet; the batch waits for it.
    pub conversion: Option<Conversion>,
    /// The entry's own window when it was carried over into this one.
    pub carried_from: Option<Window>,
}

/// A batch to post: one window of one connection, its entries, and whether it may
/// post now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedBatch {
    /// [`batch_key`].
    pub key: String,
    pub connection: String,
    pub window: Window,
    pub revision: u32,
    /// In entry-key order.
    pub entries: Vec<BatchEntry>,
    /// The window has ended in company time (or `--until` reached its end).
    pub due: bool,
    /// The keys of the entries without a conversion: while any is left, the batch
    /// is not posted (finance is told which currency pair and date is missing).
    pub waiting_for_rate: Vec<String>,
}

impl PlannedBatch {
    /// Due and nothing waiting for a rate: post it now.
    pub fn ready(&self) -> bool {
        self.due && self.waiting_for_rate.is_empty()
    }

    pub fn carried_over(&self) -> usize {
        self.entries.iter().filter(|e| e.carried_from.is_some()).count()
    }
}

/// An entry no open window could take: its own window is posted or its period is
/// not open, and no later window up to a year past today is open either.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplaced {
    pub entry_key: String,
    pub own_window: Window,
    /// The state of the period of the last window looked at.
    pub last_state: PeriodState,
}

/// What [`plan_batches`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchPlan {
    /// In window order.
    pub batches: Vec<PlannedBatch>,
    pub unplaced: Vec<Unplaced>,
}

/// What [`plan_batches`] needs besides the entries.
#[derive(Debug, Clone)]
pub struct PlanContext<'a> {
    pub connection: &'a str,
    pub policy: CostBatch,
    /// The company's time zone (`policy.company_timezone`).
    pub tz: &'a TimeZone,
    /// Windows already posted (or planned in the outbox) for this connection: never
    /// planned again.
    pub posted: &'a BTreeSet<Window>,
    /// The revision a window's next batch takes (how many batches of it were
    /// withdrawn before posting); a window not named takes 0.
    pub revisions: &'a BTreeMap<Window, u32>,
    /// The company date now.
    pub today: Date,
    /// `costs post --until DATE`: windows ending on or before it are due too.
    pub until: Option<Date>,
}

/// Plans the batches of `entries` (every entry of the connection not yet in a
/// posted batch, each with its conversion when it has one). `period_state` answers
/// the ERP's period state for a posting date (prefetched by the caller).
///
/// Each entry goes into its own window ([`Window::of_label`]) when that window is not
/// in `posted` and its period is open; else into the first later window that is,
/// marked carried over; an entry no window up to a year past `today` can take is
/// [`Unplaced`]. Windows that get no entry are not returned.
pub fn plan_batches(
    entries: &[(CostEntry, Option<Conversion>)],
    ctx: &PlanContext<'_>,
    period_state: impl Fn(Date) -> PeriodState,
) -> BatchPlan {
    let horizon = ctx.today.max(ctx.until.unwrap_or(ctx.today)).checked_add(jiff::Span::new().days(366)).unwrap_or(ctx.today);
    let mut states: BTreeMap<Date, PeriodState> = BTreeMap::new();
    let mut state_of = |w: &Window| *states.entry(w.posting_date()).or_insert_with(|| period_state(w.posting_date()));
    let mut by_window: BTreeMap<Window, Vec<BatchEntry>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for (entry, conversion) in entries {
        let own = Window::of_label(entry.posting_at(), ctx.tz, ctx.policy);
        let mut window = own;
        let placed = loop {
            let state = state_of(&window);
            if !ctx.posted.contains(&window) && state.is_open() {
                break Some(window);
            }
            let next = window.next(ctx.policy);
            if next.start > horizon || next == window {
                unplaced.push(Unplaced { entry_key: entry.entry_key.clone(), own_window: own, last_state: state });
                break None;
            }
            window = next;
        };
        if let Some(window) = placed {
            let carried_from = (window != own).then_some(own);
            by_window.entry(window).or_default().push(BatchEntry { entry: entry.clone(), conversion: conversion.clone(), carried_from });
        }
    }
    let batches = by_window
        .into_iter()
        .map(|(window, mut entries)| {
            entries.sort_by(|a, b| a.entry.entry_key.cmp(&b.entry.entry_key));
            let waiting_for_rate = entries.iter().filter(|e| e.conversion.is_none()).map(|e| e.entry.entry_key.clone()).collect();
            let due = window.has_ended(ctx.today) || ctx.until.is_some_and(|u| window.end <= u);
            let revision = ctx.revisions.get(&window).copied().unwrap_or(0);
            PlannedBatch { key: batch_key(ctx.connection, &window, revision), connection: ctx.connection.to_string(), window, revision, entries, due, waiting_for_rate }
        })
        .collect();
    BatchPlan { batches, unplaced }
}

/// Which account a carrier's costs are credited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarrierAccountKind {
    /// A balance funded in advance (ShipStation's own carrier accounts): credit
    /// prepaid postage.
    Prepaid,
    /// A carrier that invoices later: credit accrued shipping (the default).
    #[default]
    Accrued,
}

impl CarrierAccountKind {
    pub fn code(self) -> &'static str {
        match self {
            CarrierAccountKind::Prepaid => "prepaid",
            CarrierAccountKind::Accrued => "accrued",
        }
    }

    pub fn parse(code: &str) -> Option<CarrierAccountKind> {
        [CarrierAccountKind::Prepaid, CarrierAccountKind::Accrued].into_iter().find(|k| k.code() == code)
    }

    /// The `[connections.accounts]` key of the account this kind credits.
    pub fn account_key(self) -> &'static str {
        match self {
            CarrierAccountKind::Prepaid => "prepaid_postage",
            CarrierAccountKind::Accrued => "accrued_shipping",
        }
    }
}

/// The accounts a connection's cost journals use (`[connections.accounts]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalAccounts {
    /// Debited with every carrier's costs unless the carrier has its own.
    pub shipping_expense: String,
    pub shipping_expense_by_carrier: BTreeMap<String, String>,
    pub prepaid_postage: Option<String>,
    pub accrued_shipping: Option<String>,
    /// Carrier code → kind; a carrier not named gets `default_kind`.
    pub carrier_accounts: BTreeMap<String, CarrierAccountKind>,
    pub default_kind: CarrierAccountKind,
    /// The ERP journal (Tryton `account.journal` code) the moves go to.
    pub journal: String,
}

impl JournalAccounts {
    pub fn expense_for(&self, carrier: &str) -> &str {
        self.shipping_expense_by_carrier.get(carrier).map(String::as_str).unwrap_or(&self.shipping_expense)
    }

    pub fn kind_for(&self, carrier: &str) -> CarrierAccountKind {
        self.carrier_accounts.get(carrier).copied().unwrap_or(self.default_kind)
    }

    /// The account credited for `carrier`, if the one its kind needs is configured.
    pub fn credit_for(&self, carrier: &str) -> Option<&str> {
        match self.kind_for(carrier) {
            CarrierAccountKind::Prepaid => self.prepaid_postage.as_deref(),
            CarrierAccountKind::Accrued => self.accrued_shipping.as_deref(),
        }
    }

    /// Every account code named, once, sorted (for the ERP check).
    pub fn codes(&self) -> Vec<&str> {
        let mut all: BTreeSet<&str> = BTreeSet::new();
        all.insert(&self.shipping_expense);
        all.extend(self.shipping_expense_by_carrier.values().map(String::as_str));
        all.extend(self.prepaid_postage.as_deref());
        all.extend(self.accrued_shipping.as_deref());
        all.into_iter().collect()
    }
}

/// One journal line in the base currency, with the original amount it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalLine {
    pub account: String,
    pub debit: Money,
    pub credit: Money,
    /// The amount in its original currency (the second currency), when it was
    /// converted, signed like the line's own side: positive for the side it is on.
    pub original: Option<Money>,
    pub memo: Option<String>,
}

/// A journal to post, idempotent by `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalWrite {
    pub key: String,
    pub date: Date,
    pub memo: String,
    pub lines: Vec<JournalLine>,
}

impl JournalWrite {
    /// Total debits and credits, when every line is in one currency.
    pub fn totals(&self) -> Result<(Money, Money), MoneyError> {
        let currency = self.lines.first().map(|l| l.debit.currency()).unwrap_or(Currency::GBP);
        let debit = Money::checked_sum(currency, self.lines.iter().map(|l| &l.debit))?;
        let credit = Money::checked_sum(currency, self.lines.iter().map(|l| &l.credit))?;
        Ok((debit, credit))
    }
}

/// Why a batch could not become a journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error("batch {batch} is waiting for a rate for {} entr{} ({}); add the rate and it posts", .entries.len(), if .entries.len() == 1 { "y" } else { "ies" }, .entries.join(", "))]
    WaitingForRate { batch: String, entries: Vec<String> },
    #[error("batch {batch}: the conversion of {entry} is for {conversion_key} (amount {conversion_amount}), not for this entry ({entry_amount}); convert the entry again")]
    ConversionMismatch { batch: String, entry: String, conversion_key: String, conversion_amount: Money, entry_amount: Money },
    #[error("batch {batch}: entry {entry} is converted to {found}, the batch's other entries to {base}; one batch has one base currency")]
    MixedBase { batch: String, entry: String, base: Currency, found: Currency },
    #[error("batch {batch}: carrier {carrier} is {} but no {} account is configured; set [connections.accounts] {} (or name the carrier in carrier_accounts)", .kind.code(), .kind.code(), .kind.account_key())]
    NoCreditAccount { batch: String, carrier: String, kind: CarrierAccountKind },
    #[error("batch {batch} nets to zero in every line: there is nothing to post")]
    NothingToPost { batch: String },
    #[error("batch {batch}: {source}")]
    Money { batch: String, source: MoneyError },
}

/// The one journal of `batch` in the base currency: per carrier × original currency,
/// debit the carrier's shipping expense and credit its prepaid postage or accrued
/// shipping account with the sum of the entries' [`Conversion::base`] (and the sum of
/// their original amounts as the second currency). A line group that nets negative
/// (reversals exceed) swaps debit and credit; one that nets zero in base is dropped.
/// Lines are sorted by carrier, then currency. Balanced by construction.
pub fn build_journal(batch: &PlannedBatch, accounts: &JournalAccounts) -> Result<JournalWrite, JournalError> {
    let key = &batch.key;
    if !batch.waiting_for_rate.is_empty() {
        return Err(JournalError::WaitingForRate { batch: key.clone(), entries: batch.waiting_for_rate.clone() });
    }
    let money = |source: MoneyError| JournalError::Money { batch: key.clone(), source };
    struct Group {
        base: Money,
        original: Money,
        entries: usize,
        carried: usize,
    }
    let mut base_currency: Option<Currency> = None;
    let mut groups: BTreeMap<(String, &'static str), Group> = BTreeMap::new();
    for e in &batch.entries {
        let Some(c) = &e.conversion else {
            return Err(JournalError::WaitingForRate { batch: key.clone(), entries: vec![e.entry.entry_key.clone()] });
        };
        if c.entry_key != e.entry.entry_key || c.original != e.entry.amount {
            return Err(JournalError::ConversionMismatch {
                batch: key.clone(),
                entry: e.entry.entry_key.clone(),
                conversion_key: c.entry_key.clone(),
                conversion_amount: c.original,
                entry_amount: e.entry.amount,
            });
        }
        let base = *base_currency.get_or_insert(c.base.currency());
        if c.base.currency() != base {
            return Err(JournalError::MixedBase { batch: key.clone(), entry: e.entry.entry_key.clone(), base, found: c.base.currency() });
        }
        let currency = c.original.currency();
        let g = groups.entry((e.entry.label.carrier.clone(), currency.code())).or_insert(Group {
            base: Money::zero(base),
            original: Money::zero(currency),
            entries: 0,
            carried: 0,
        });
        g.base = g.base.checked_add(&c.base).map_err(money)?;
        g.original = g.original.checked_add(&c.original).map_err(money)?;
        g.entries += 1;
        g.carried += usize::from(e.carried_from.is_some());
    }
    let mut lines = Vec::new();
    for ((carrier, _), g) in &groups {
        if g.base.is_zero() {
            continue;
        }
        let credit_account = accounts.credit_for(carrier).ok_or_else(|| JournalError::NoCreditAccount {
            batch: key.clone(),
            carrier: carrier.clone(),
            kind: accounts.kind_for(carrier),
        })?;
        let expense = accounts.expense_for(carrier);
        let memo = format!(
            "costs {} {} {}: {} entr{}, {} carried over",
            batch.window,
            carrier,
            g.original.currency(),
            g.entries,
            if g.entries == 1 { "y" } else { "ies" },
            g.carried
        );
        let zero = Money::zero(g.base.currency());
        // The debit side takes the group's net; a negative net is the other way round.
        let (debit_account, credit_acc, amount, original) = if g.base.is_positive() {
            (expense, credit_account, g.base, g.original)
        } else {
            (credit_account, expense, g.base.neg(), g.original.neg())
        };
        let same_currency = original.currency() == amount.currency();
        let second = (!same_currency).then_some(original);
        lines.push(JournalLine { account: debit_account.to_string(), debit: amount, credit: zero, original: second, memo: Some(memo.clone()) });
        lines.push(JournalLine { account: credit_acc.to_string(), debit: zero, credit: amount, original: second, memo: Some(memo) });
    }
    if lines.is_empty() {
        return Err(JournalError::NothingToPost { batch: key.clone() });
    }
    let total = batch.entries.len();
    let carried = batch.carried_over();
    Ok(JournalWrite {
        key: key.clone(),
        date: batch.window.posting_date(),
        memo: format!("shipledger shipping costs {} {}: {total} entries, {carried} carried over", batch.connection, batch.window),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{Charge, CostKind, CostSource, LabelFacts, NewCostEntry};
    use crate::fx::RateSource;
    use jiff::civil::date;
    use rust_decimal::Decimal;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn local(name: &str, y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        date(y, m, d).at(h, min, 0, 0).to_zoned(tz(name)).unwrap().timestamp()
    }

    fn w(s: Date, e: Date) -> Window {
        Window { start: s, end: e }
    }

    fn entry(key: &str, carrier: &str, amount: Money, at: Timestamp) -> CostEntry {
        CostEntry {
            id: 1,
            connection: "acme-uk".into(),
            entry: NewCostEntry {
                entry_key: key.into(),
                kind: if amount.is_negative() { CostKind::VoidReversal } else { CostKind::Label },
                charge: Charge::Postage,
                revision: 0,
                amount,
                label: LabelFacts {
                    shipment_key: format!("label:{key}"),
                    erp_id: Some("SO1".into()),
                    ss_order_id: 1,
                    carrier: carrier.into(),
                    service: None,
                    ship_date: None,
                    label_created_at: at,
                },
                occurred_at: at,
                source: CostSource::ShipstationV2,
                reverses_key: None,
            },
            reverses: None,
            recorded_at: at,
        }
    }

    /// GBP base; EUR at 1 and GBP at 0.8321 against EUR, USD at 1.0565.
    fn convert(e: &CostEntry) -> Conversion {
        let rate = |c: Currency| match c.code() {
            "EUR" => Decimal::ONE,
            "USD" => "1.0565".parse().unwrap(),
            "GBP" => "0.8321".parse().unwrap(),
            "JPY" => "158.34".parse().unwrap(),
            other => panic!("{other}"),
        };
        let day = date(2026, 11, 27);
        Conversion::make(e.entry_key.clone(), e.amount, Currency::GBP, rate(e.amount.currency()), rate(Currency::GBP), day, day, RateSource::File).unwrap()
    }

    fn accounts() -> JournalAccounts {
        JournalAccounts {
            shipping_expense: "5.1.3".into(),
            shipping_expense_by_carrier: BTreeMap::from([("ups".to_string(), "5.1.4".to_string())]),
            prepaid_postage: Some("1.1.9".into()),
            accrued_shipping: Some("2.1.1".into()),
            carrier_accounts: BTreeMap::from([("stamps_com".to_string(), CarrierAccountKind::Prepaid)]),
            default_kind: CarrierAccountKind::Accrued,
            journal: "MISC".into(),
        }
    }

    fn usd(m: i64) -> Money {
        Money::from_minor(m, Currency::USD)
    }
    fn eur(m: i64) -> Money {
        Money::from_minor(m, Currency::EUR)
    }
    fn gbp(m: i64) -> Money {
        Money::from_minor(m, Currency::GBP)
    }

    struct Scene {
        posted: BTreeSet<Window>,
        revisions: BTreeMap<Window, u32>,
        utc: TimeZone,
        closed: BTreeSet<(i16, i8)>,
    }

    impl Scene {
        fn new() -> Scene {
            Scene { posted: BTreeSet::new(), revisions: BTreeMap::new(), utc: TimeZone::UTC, closed: BTreeSet::new() }
        }
        fn plan(&self, entries: &[(CostEntry, Option<Conversion>)], policy: CostBatch, today: Date, until: Option<Date>) -> BatchPlan {
            let ctx = PlanContext { connection: "acme-uk", policy, tz: &self.utc, posted: &self.posted, revisions: &self.revisions, today, until };
            plan_batches(entries, &ctx, |d| if self.closed.contains(&(d.year(), d.month())) { PeriodState::Closed } else { PeriodState::Open })
        }
    }

    fn converted(e: CostEntry) -> (CostEntry, Option<Conversion>) {
        let c = convert(&e);
        (e, Some(c))
    }

    #[test]
    fn a_day_window_is_the_company_day_and_its_key_names_connection_window_and_revision() {
        let win = Window::containing(date(2026, 11, 30), CostBatch::Daily);
        assert_eq!(win, w(date(2026, 11, 30), date(2026, 11, 30)));
        assert_eq!(batch_key("acme-uk", &win, 0), "acme-uk/costs/2026-11-30..2026-11-30/r0");
        assert_eq!(win.next(CostBatch::Daily), w(date(2026, 12, 1), date(2026, 12, 1)));
        assert!(!win.has_ended(date(2026, 11, 30)) && win.has_ended(date(2026, 12, 1)));
    }

    #[test]
    fn a_week_spanning_a_month_end_is_two_windows() {
        // Monday 30 November to Sunday 6 December 2026.
        for d in [date(2026, 11, 30)] {
            assert_eq!(Window::containing(d, CostBatch::Weekly), w(date(2026, 11, 30), date(2026, 11, 30)));
        }
        for day in 1..=6 {
            assert_eq!(Window::containing(date(2026, 12, day), CostBatch::Weekly), w(date(2026, 12, 1), date(2026, 12, 6)), "Dec {day}");
        }
        assert_eq!(Window::containing(date(2026, 12, 7), CostBatch::Weekly), w(date(2026, 12, 7), date(2026, 12, 13)));
        assert_eq!(w(date(2026, 11, 30), date(2026, 11, 30)).next(CostBatch::Weekly), w(date(2026, 12, 1), date(2026, 12, 6)));
        // A whole ISO week inside a month: Monday 16 to Sunday 22 November.
        assert_eq!(Window::containing(date(2026, 11, 19), CostBatch::Weekly), w(date(2026, 11, 16), date(2026, 11, 22)));
        // A year end inside a week: Monday 28 December 2026 to Sunday 3 January 2027.
        assert_eq!(Window::containing(date(2027, 1, 2), CostBatch::Weekly), w(date(2027, 1, 1), date(2027, 1, 3)));
    }

    #[test]
    fn no_window_of_any_policy_crosses_a_month_end_and_they_tile_the_year() {
        for policy in CostBatch::ALL.iter().copied() {
            let mut win = Window::containing(date(2026, 1, 1), policy);
            assert_eq!(win.start, date(2026, 1, 1));
            let mut day = date(2026, 1, 1);
            while day.year() == 2026 {
                let got = Window::containing(day, policy);
                assert!(got.contains(day), "{policy} {day}: {got}");
                assert_eq!((got.start.year(), got.start.month()), (got.end.year(), got.end.month()), "{policy} {got} crosses a month end");
                if !win.contains(day) {
                    let next = win.next(policy);
                    assert_eq!(next.start, win.end.tomorrow().unwrap(), "{policy}: windows follow each other without a gap");
                    assert_eq!(next, got);
                    win = next;
                }
                day = day.tomorrow().unwrap();
            }
        }
        assert_eq!(Window::containing(date(2028, 2, 10), CostBatch::Monthly), w(date(2028, 2, 1), date(2028, 2, 29)));
    }

    #[test]
    fn a_label_at_half_past_eleven_on_a_dst_change_day_lands_on_its_company_day() {
        // London springs forward on 29 March 2026 and falls back on 25 October 2026.
        let london = tz("Europe/London");
        for (y, m, d) in [(2026, 3, 29), (2026, 10, 25)] {
            let at = local("Europe/London", y, m, d, 23, 30);
            assert_eq!(Window::of_label(at, &london, CostBatch::Daily), w(date(y, m, d), date(y, m, d)));
        }
        // 00:30 BST on 30 March is still 29 March in UTC: the company day is the 30th.
        let at = local("Europe/London", 2026, 3, 30, 0, 30);
        assert_eq!(company_date(at, &TimeZone::UTC), date(2026, 3, 29));
        assert_eq!(Window::of_label(at, &london, CostBatch::Daily), w(date(2026, 3, 30), date(2026, 3, 30)));
        // Los Angeles springs forward on 8 March 2026 and falls back on 1 November 2026:
        // 23:30 local is the next day in UTC, and the window is the local day's.
        let la = tz("America/Los_Angeles");
        for (y, m, d) in [(2026, 3, 8), (2026, 11, 1)] {
            let at = local("America/Los_Angeles", y, m, d, 23, 30);
            assert_eq!(company_date(at, &TimeZone::UTC), date(y, m, d).tomorrow().unwrap());
            assert_eq!(Window::of_label(at, &la, CostBatch::Daily), w(date(y, m, d), date(y, m, d)));
        }
        // 23:30 on 30 November in Los Angeles is December in UTC; the month is November's.
        let at = local("America/Los_Angeles", 2026, 11, 30, 23, 30);
        assert_eq!(Window::of_label(at, &la, CostBatch::Monthly), w(date(2026, 11, 1), date(2026, 11, 30)));
        assert_eq!(Window::of_label(at, &TimeZone::UTC, CostBatch::Monthly), w(date(2026, 12, 1), date(2026, 12, 31)));
    }

    #[test]
    fn entries_post_in_their_own_window_once_it_has_ended() {
        let scene = Scene::new();
        let entries = [
            converted(entry("a", "ups", usd(1000), local("UTC", 2026, 11, 29, 10, 0))),
            converted(entry("b", "ups", usd(500), local("UTC", 2026, 11, 30, 10, 0))),
            converted(entry("c", "royal_mail", eur(700), local("UTC", 2026, 11, 30, 23, 59))),
        ];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 11, 30), None);
        assert!(plan.unplaced.is_empty());
        let got: Vec<(String, bool, usize)> = plan.batches.iter().map(|b| (b.key.clone(), b.ready(), b.entries.len())).collect();
        assert_eq!(
            got,
            vec![("acme-uk/costs/2026-11-29..2026-11-29/r0".to_string(), true, 1), ("acme-uk/costs/2026-11-30..2026-11-30/r0".to_string(), false, 2)]
        );
        assert!(plan.batches.iter().all(|b| b.carried_over() == 0));
        // --until brings the 30th forward.
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 11, 30), Some(date(2026, 11, 30)));
        assert!(plan.batches.iter().all(PlannedBatch::ready));
    }

    #[test]
    fn a_late_entry_for_a_posted_window_is_carried_into_the_next_open_window() {
        let mut scene = Scene::new();
        scene.posted.insert(w(date(2026, 11, 29), date(2026, 11, 29)));
        scene.posted.insert(w(date(2026, 11, 30), date(2026, 11, 30)));
        let entries = [
            converted(entry("late", "ups", usd(1000), local("UTC", 2026, 11, 29, 10, 0))),
            converted(entry("own", "ups", usd(200), local("UTC", 2026, 12, 1, 9, 0))),
        ];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 2), None);
        assert_eq!(plan.batches.len(), 1);
        let b = &plan.batches[0];
        assert_eq!(b.window, w(date(2026, 12, 1), date(2026, 12, 1)));
        assert_eq!(b.key, "acme-uk/costs/2026-12-01..2026-12-01/r0");
        let carried: Vec<(&str, Option<Window>)> = b.entries.iter().map(|e| (e.entry.entry_key.as_str(), e.carried_from)).collect();
        assert_eq!(carried, vec![("late", Some(w(date(2026, 11, 29), date(2026, 11, 29)))), ("own", None)]);
        let j = build_journal(b, &accounts()).unwrap();
        assert!(j.memo.contains("2 entries, 1 carried over"), "{}", j.memo);
    }

    #[test]
    fn a_closed_period_is_never_written_its_entries_land_in_the_next_open_month() {
        let mut scene = Scene::new();
        scene.closed.insert((2026, 11));
        let entries = [
            converted(entry("nov", "ups", usd(1000), local("UTC", 2026, 11, 20, 10, 0))),
            converted(entry("dec", "ups", usd(300), local("UTC", 2026, 12, 3, 10, 0))),
        ];
        let plan = scene.plan(&entries, CostBatch::Weekly, date(2026, 12, 10), None);
        assert_eq!(plan.batches.len(), 1, "{plan:?}");
        let b = &plan.batches[0];
        assert_eq!(b.window, w(date(2026, 12, 1), date(2026, 12, 6)));
        assert!(b.ready());
        assert_eq!(b.entries[1].carried_from, Some(w(date(2026, 11, 16), date(2026, 11, 22))));
        assert_eq!(b.entries[1].entry.entry_key, "nov");
    }

    #[test]
    fn a_window_whose_batch_was_withdrawn_plans_its_next_revision() {
        let mut scene = Scene::new();
        let day = w(date(2026, 11, 30), date(2026, 11, 30));
        scene.revisions.insert(day, 1);
        let entries = [converted(entry("a", "ups", usd(1000), local("UTC", 2026, 11, 30, 10, 0)))];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 1), None);
        assert_eq!(plan.batches[0].revision, 1);
        assert_eq!(plan.batches[0].key, "acme-uk/costs/2026-11-30..2026-11-30/r1");
    }

    #[test]
    fn an_entry_no_open_period_can_take_is_reported_not_planned() {
        let utc = TimeZone::UTC;
        let posted = BTreeSet::new();
        let revisions = BTreeMap::new();
        let ctx = PlanContext { connection: "acme-uk", policy: CostBatch::Monthly, tz: &utc, posted: &posted, revisions: &revisions, today: date(2026, 12, 2), until: None };
        let e = converted(entry("a", "ups", usd(100), local("UTC", 2026, 11, 20, 10, 0)));
        let plan = plan_batches(&[e], &ctx, |d| if d.year() == 2026 { PeriodState::Locked } else { PeriodState::Missing });
        assert!(plan.batches.is_empty());
        assert_eq!(plan.unplaced, vec![Unplaced { entry_key: "a".into(), own_window: w(date(2026, 11, 1), date(2026, 11, 30)), last_state: PeriodState::Missing }]);
    }

    #[test]
    fn a_window_with_a_missing_eur_rate_posts_nothing() {
        let scene = Scene::new();
        let at = local("UTC", 2026, 11, 30, 10, 0);
        let entries = [converted(entry("usd", "ups", usd(1000), at)), (entry("eur", "ups", eur(700), at), None)];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 1), None);
        let b = &plan.batches[0];
        assert!(b.due && !b.ready());
        assert_eq!(b.waiting_for_rate, vec!["eur".to_string()]);
        let err = build_journal(b, &accounts()).unwrap_err();
        assert_eq!(err, JournalError::WaitingForRate { batch: b.key.clone(), entries: vec!["eur".into()] });
        assert!(err.to_string().contains("eur") && err.to_string().contains("add the rate"), "{err}");
    }

    #[test]
    fn a_journal_has_two_lines_per_carrier_and_currency_summing_the_conversions() {
        let scene = Scene::new();
        let at = local("UTC", 2026, 11, 30, 10, 0);
        let entries = [
            converted(entry("u1", "ups", usd(1000), at)),
            converted(entry("u2", "ups", usd(1), at)),
            converted(entry("u3", "ups", eur(999), at)),
            converted(entry("s1", "stamps_com", usd(333), at)),
            converted(entry("g1", "royal_mail", gbp(250), at)),
        ];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 1), None);
        let j = build_journal(&plan.batches[0], &accounts()).unwrap();
        let sum = |keys: &[&str]| entries.iter().filter(|(e, _)| keys.contains(&e.entry_key.as_str())).map(|(_, c)| c.as_ref().unwrap().base.minor()).sum::<i64>();
        let lines: Vec<(&str, i64, i64, Option<Money>)> = j.lines.iter().map(|l| (l.account.as_str(), l.debit.minor(), l.credit.minor(), l.original)).collect();
        assert_eq!(
            lines,
            vec![
                ("5.1.3", 250, 0, None),
                ("2.1.1", 0, 250, None),
                ("5.1.3", sum(&["s1"]), 0, Some(usd(333))),
                ("1.1.9", 0, sum(&["s1"]), Some(usd(333))),
                ("5.1.4", sum(&["u3"]), 0, Some(eur(999))),
                ("2.1.1", 0, sum(&["u3"]), Some(eur(999))),
                ("5.1.4", sum(&["u1", "u2"]), 0, Some(usd(1001))),
                ("2.1.1", 0, sum(&["u1", "u2"]), Some(usd(1001))),
            ]
        );
        // Each entry rounded on its own: 10.00 USD → 7.88, 0.01 USD → 0.01 (not 7.88 + 0.00788).
        assert_eq!(sum(&["u1", "u2"]), 788 + 1);
        assert_eq!(j.date, date(2026, 11, 30));
        assert_eq!(j.key, "acme-uk/costs/2026-11-30..2026-11-30/r0");
        assert_eq!(j.lines[6].memo.as_deref(), Some("costs 2026-11-30..2026-11-30 ups USD: 2 entries, 0 carried over"));
        let (d, c) = j.totals().unwrap();
        assert_eq!(d, c);
    }

    #[test]
    fn reversals_that_exceed_swap_the_line_and_a_zero_net_drops_it() {
        let scene = Scene::new();
        let at = local("UTC", 2026, 11, 30, 10, 0);
        let entries = [
            converted(entry("v1", "ups", usd(-1000), at)),
            converted(entry("l1", "ups", usd(400), at)),
            converted(entry("e1", "dhl", eur(500), at)),
            converted(entry("e2", "dhl", eur(-500), at)),
        ];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 1), None);
        let j = build_journal(&plan.batches[0], &accounts()).unwrap();
        let net = -(convert(&entries[0].0).base.minor() + convert(&entries[1].0).base.minor());
        assert!(net > 0);
        let lines: Vec<(&str, i64, i64, Option<Money>)> = j.lines.iter().map(|l| (l.account.as_str(), l.debit.minor(), l.credit.minor(), l.original)).collect();
        assert_eq!(lines, vec![("2.1.1", net, 0, Some(usd(600))), ("5.1.4", 0, net, Some(usd(600)))]);
        // A batch that nets to zero everywhere has nothing to post.
        let plan = scene.plan(&entries[2..], CostBatch::Daily, date(2026, 12, 1), None);
        assert!(matches!(build_journal(&plan.batches[0], &accounts()), Err(JournalError::NothingToPost { .. })));
    }

    #[test]
    fn a_carrier_whose_credit_account_is_not_configured_is_named() {
        let scene = Scene::new();
        let entries = [converted(entry("s1", "stamps_com", usd(333), local("UTC", 2026, 11, 30, 10, 0)))];
        let plan = scene.plan(&entries, CostBatch::Daily, date(2026, 12, 1), None);
        let mut acc = accounts();
        acc.prepaid_postage = None;
        let err = build_journal(&plan.batches[0], &acc).unwrap_err();
        assert!(err.to_string().contains("stamps_com") && err.to_string().contains("prepaid_postage"), "{err}");
    }

    #[test]
    fn a_conversion_of_another_entry_is_refused() {
        let scene = Scene::new();
        let at = local("UTC", 2026, 11, 30, 10, 0);
        let a = entry("a", "ups", usd(100), at);
        let b = entry("b", "ups", usd(200), at);
        let wrong = convert(&b);
        let plan = scene.plan(&[(a, Some(wrong))], CostBatch::Daily, date(2026, 12, 1), None);
        assert!(matches!(build_journal(&plan.batches[0], &accounts()), Err(JournalError::ConversionMismatch { .. })));
    }

    proptest::proptest! {
        /// Any set of entries (carriers, currencies, reversals, days over two months)
        /// gives journals that balance, whose lines are never zero, and whose base
        /// totals per batch equal the sum of the batch's conversions (debit side for
        /// the positive nets, credit side for the negative ones).
        #[test]
        fn any_entries_give_balanced_journals_that_sum_their_conversions(
            raw in proptest::collection::vec((0usize..4, 0usize..4, -50_000i64..100_000, 0i64..61 * 24 * 60), 1..40),
            policy in 0usize..3,
        ) {
            let carriers = ["ups", "stamps_com", "dhl", "royal_mail"];
            let currencies = [Currency::USD, Currency::EUR, Currency::GBP, Currency::JPY];
            let start = local("UTC", 2026, 11, 1, 0, 0);
            let entries: Vec<(CostEntry, Option<Conversion>)> = raw.iter().enumerate().map(|(i, (c, cur, minor, minutes))| {
                let at = start.checked_add(jiff::Span::new().minutes(*minutes)).unwrap();
                converted(entry(&format!("e{i:03}"), carriers[*c], Money::from_minor(*minor, currencies[*cur]), at))
            }).collect();
            let london = tz("Europe/London");
            let posted = BTreeSet::new();
            let revisions = BTreeMap::new();
            let ctx = PlanContext { connection: "acme-uk", policy: CostBatch::ALL[policy], tz: &london, posted: &posted, revisions: &revisions, today: date(2027, 1, 5), until: None };
            let plan = plan_batches(&entries, &ctx, |_| PeriodState::Open);
            proptest::prop_assert_eq!(plan.batches.iter().map(|b| b.entries.len()).sum::<usize>(), entries.len());
            for b in &plan.batches {
                let net: i64 = b.entries.iter().map(|e| e.conversion.as_ref().unwrap().base.minor()).sum();
                match build_journal(b, &accounts()) {
                    Ok(j) => {
                        let (d, c) = j.totals().unwrap();
                        proptest::prop_assert_eq!(d, c);
                        proptest::prop_assert!(j.lines.iter().all(|l| !(l.debit.is_zero() && l.credit.is_zero())));
                        proptest::prop_assert!(j.lines.iter().all(|l| !l.debit.is_negative() && !l.credit.is_negative()));
                        let expense = |a: &str| a.starts_with("5.");
                        let signed: i64 = j.lines.iter().filter(|l| expense(&l.account)).map(|l| l.debit.minor() - l.credit.minor()).sum();
                        proptest::prop_assert_eq!(signed, net);
                        proptest::prop_assert_eq!(j.date, b.window.end);
                    }
                    Err(JournalError::NothingToPost { .. }) => {
                        proptest::prop_assert_eq!(net, 0);
                    }
                    Err(e) => proptest::prop_assert!(false, "{}", e),
                }
            }
        }
    }
}
