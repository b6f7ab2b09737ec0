//! FX: every cost entry converted to the ERP's base currency on its own, with the
//! rates, the rate date, the source and the rounding that made it (DESIGN §7), or
//! waiting, with one finance exception per currency pair and date, until a rate is
//! there.
//!
//! - **Rates** come from the connection's `fx_sources`, in order, and the first with
//!   a usable rate wins ([`Rates::resolve`]): the ERP's own rate table
//!   ([`Erp::fx_quote`](shipledger_erp::Erp::fx_quote)), a rates file (the ECB
//!   layout, read again at every pass), fixed rates in the configuration (each with
//!   its date). Every source yields both currencies' rates against one reference, so
//!   the conversion is the ERP's own: `amount × rate_to ÷ rate_from`, exact, rounded
//!   once half-even ([`Conversion::make`]); never a ratio rounded first.
//! - **The date** a rate is wanted for follows `policy.fx_rate_date` ([`wanted_date`]):
//!   the label's ship date (else its label date in UTC), or the posting date. A rate
//!   dated more than `policy.fx_max_age` before it counts as missing.
//! - **The converter** ([`convert`]) is a scheduled pass of the ERP-reads lane: it
//!   pages through the entries with no conversion, commits each conversion with its
//!   `cost_converted` event (a second worker converting the same entry is refused by
//!   the store, so it counts once) and closes the pair's missing-rate exception; an
//!   entry without a usable rate waits, and its pair and date get one
//!   `fx_rate_missing` exception saying what to add where.
//!
//! This module never posts a journal; batches read the conversions it leaves.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use rust_decimal::Decimal;
use serde_json::json;
use shipledger_core::Currency;
use shipledger_core::cost::CostEntry;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::fx::{Conversion, RateSource, RateTable};
use shipledger_store::{Change, EventKind, ExceptionFilter, NewCostConversion, NewEvent, StoreError};

use shipledger_erp::Erp;

use crate::config::{FxRateDate, Policy, read_rates_file};
use shipledger_core::journal::{Window, company_date};
use crate::{Connection, Engine, EngineError};

/// Entries read per page by the converter.
pub const PAGE: u32 = 200;

/// A usable rate: both currencies against one reference, with the date and where
/// they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub rate_from: Decimal,
    pub rate_to: Decimal,
    pub rate_date: Date,
    pub source: RateSource,
    /// Which rows of the source (`tryton:currency.currency.rate:12+7`, the file, the
    /// fixed rate).
    pub detail: String,
}

/// What the sources said about one pair on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Resolved),
    /// No source had a usable rate: what each one said, in order.
    Missing { tried: Vec<String> },
}

/// The record id of a pair's missing-rate exception: `USD/GBP 2026-11-27`.
pub fn pair_id(from: Currency, to: Currency, date: Date) -> String {
    format!("{}/{} {date}", from.code(), to.code())
}

/// The pair and date a [`pair_id`] names (`USD/GBP 2026-11-27`), if it is one.
pub fn parse_pair_id(id: &str) -> Option<(Currency, Currency, Date)> {
    let (pair, date) = id.split_once(' ')?;
    let (from, to) = pair.split_once('/')?;
    Some((Currency::parse(from).ok()?, Currency::parse(to).ok()?, date.parse().ok()?))
}

/// The date `entry`'s rate is wanted for: with `ship_date`, the label's ship date,
/// else its label time's date in UTC (an invoice adjustment: its invoice date); with `posting_date`, the posting date of the
/// entry's own window in the company's zone `tz` (the day its journal is dated; the
/// converter waits for that day, so an entry carried into a later window keeps its
/// own window's rate).
pub fn wanted_date(policy: &Policy, entry: &CostEntry, tz: &jiff::tz::TimeZone) -> Date {
    match policy.fx_rate_date {
        FxRateDate::ShipDate if !entry.kind.from_label() => entry.occurred_at.to_zoned(jiff::tz::TimeZone::UTC).date(),
        FxRateDate::ShipDate => {
            entry.label.ship_date.unwrap_or_else(|| entry.label.label_created_at.to_zoned(jiff::tz::TimeZone::UTC).date())
        }
        FxRateDate::PostingDate => Window::of_label(entry.posting_at(), tz, policy.cost_batch).posting_date(),
    }
}

/// A connection's rate sources for one pass: the rates file read once.
pub struct Rates<'a> {
    policy: &'a Policy,
    erp: &'a dyn Erp,
    file: Option<RateTable>,
}

impl<'a> Rates<'a> {
    /// Load the sources of `conn` (reading its rates file, if one is configured;
    /// a file that no longer reads fails the pass, naming the file and line).
    pub fn load(conn: &'a Connection) -> Result<Rates<'a>, EngineError> {
        Rates::new(&conn.name, &conn.policy, conn.erp.as_ref())
    }

    /// The sources `policy` names, with `erp` as the ERP source.
    pub fn new(connection: &str, policy: &'a Policy, erp: &'a dyn Erp) -> Result<Rates<'a>, EngineError> {
        let file = match (&policy.fx_rates_file, policy.fx_sources.contains(&RateSource::File)) {
            (Some(path), true) => Some(read_rates_file(path).map_err(|m| EngineError::Setup(format!("connection {connection}: {m}")))?),
            _ => None,
        };
        Ok(Rates { policy, erp, file })
    }

    /// Whether a rate dated `date` may convert for `wanted`: on or before it and at
    /// most `fx_max_age` (whole days) older.
    fn fresh(&self, date: Date, wanted: Date) -> bool {
        let days = i64::try_from(self.policy.fx_max_age.as_secs() / 86_400).unwrap_or(i64::MAX).min(365_000);
        let oldest = wanted.checked_sub(jiff::Span::new().days(days)).unwrap_or(Date::MIN);
        date <= wanted && date >= oldest
    }

    fn max_age_text(&self) -> String {
        format!("{} days", self.policy.fx_max_age.as_secs() / 86_400)
    }

    /// The first usable rate for `from` → `to` on `wanted` in the configured order;
    /// an amount already in `to` converts by [`RateSource::Identity`]. An ERP that
    /// cannot be read is an error (the pass is tried again), not a missing rate.
    pub async fn resolve(&self, from: Currency, to: Currency, wanted: Date) -> Result<Lookup, EngineError> {
        if from == to {
            return Ok(Lookup::Found(Resolved {
                rate_from: Decimal::ONE,
                rate_to: Decimal::ONE,
                rate_date: wanted,
                source: RateSource::Identity,
                detail: "already in the base currency".into(),
            }));
        }
        let mut tried = Vec::new();
        for source in &self.policy.fx_sources {
            let (found, said) = match source {
                RateSource::Erp => self.from_erp(from, to, wanted).await?,
                RateSource::File => self.from_file(from, to, wanted),
                RateSource::Fixed => self.from_fixed(from, to, wanted),
                RateSource::Identity => continue,
            };
            if let Some(r) = found {
                return Ok(Lookup::Found(r));
            }
            tried.push(format!("{source}: {said}"));
        }
        Ok(Lookup::Missing { tried })
    }

    async fn from_erp(&self, from: Currency, to: Currency, wanted: Date) -> Result<(Option<Resolved>, String), EngineError> {
        let kind = self.erp.kind();
        match self.erp.fx_quote(from, to, wanted).await? {
            None => Ok((None, format!("{kind} has no {from} or {to} rate on or before {wanted}"))),
            Some(q) if !self.fresh(q.date, wanted) => {
                Ok((None, format!("{kind}'s latest rate is of {}, older than fx_max_age ({})", q.date, self.max_age_text())))
            }
            Some(q) => Ok((Some(Resolved { rate_from: q.rate_from, rate_to: q.rate_to, rate_date: q.date, source: RateSource::Erp, detail: q.source }), String::new())),
        }
    }

    fn from_file(&self, from: Currency, to: Currency, wanted: Date) -> (Option<Resolved>, String) {
        let name = self.policy.fx_rates_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        let Some(table) = &self.file else { return (None, "no fx_rates_file".into()) };
        let mut sides = Vec::new();
        for c in [from, to] {
            match table.rate_on_or_before(wanted, c) {
                None => return (None, format!("{name} has no {c} rate on or before {wanted}")),
                // The reference currency's own rate is 1 on any day.
                Some((_, rate)) if c == table.reference => sides.push((rate, None)),
                Some((date, _)) if !self.fresh(date, wanted) => {
                    return (None, format!("{name}'s latest {c} rate is of {date}, older than fx_max_age ({})", self.max_age_text()));
                }
                Some((date, rate)) => sides.push((rate, Some(date))),
            }
        }
        let date = sides.iter().filter_map(|(_, d)| *d).min().unwrap_or(wanted);
        let r = Resolved { rate_from: sides[0].0, rate_to: sides[1].0, rate_date: date, source: RateSource::File, detail: name };
        (Some(r), String::new())
    }

    fn from_fixed(&self, from: Currency, to: Currency, wanted: Date) -> (Option<Resolved>, String) {
        // Either direction: `1 from = rate to` is rates (1, rate) against `from`;
        // `1 to = rate from` is (rate, 1) against `to`. Neither is inverted.
        let best = self
            .policy
            .fx_fixed
            .iter()
            .filter(|f| ((f.from, f.to) == (from, to) || (f.from, f.to) == (to, from)) && f.date <= wanted)
            .max_by_key(|f| f.date);
        let Some(f) = best else { return (None, format!("no fixed {from}/{to} rate dated on or before {wanted}")) };
        if !self.fresh(f.date, wanted) {
            return (None, format!("the fixed {}/{} rate is of {}, older than fx_max_age ({})", f.from, f.to, f.date, self.max_age_text()));
        }
        let (rate_from, rate_to) = if f.from == from { (Decimal::ONE, f.rate) } else { (f.rate, Decimal::ONE) };
        let detail = format!("fx_fixed 1 {} = {} {} from {}", f.from, f.rate, f.to, f.date);
        (Some(Resolved { rate_from, rate_to, rate_date: f.date, source: RateSource::Fixed, detail }), String::new())
    }
}

/// What one converter pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FxReport {
    /// Entries converted by this pass.
    pub converted: usize,
    /// Entries another worker converted first.
    pub raced: usize,
    /// Entries left waiting for a rate.
    pub waiting: usize,
    /// The pairs and dates with no usable rate (`USD/GBP 2026-11-27`).
    pub missing: Vec<String>,
    /// With `fx_rate_date = "posting_date"`: entries whose window's posting date has
    /// not come yet (they convert on it; nothing is missing).
    pub before_posting_date: usize,
}

/// The converter's pass over `conn`: every entry without a conversion, a page at a
/// time, converted at the first usable rate, or left waiting with one finance
/// exception per pair and date.
pub async fn convert(engine: &Engine, conn: &Connection) -> Result<FxReport, EngineError> {
    let rates = Rates::load(conn)?;
    let mut report = FxReport::default();
    let mut after = None;
    let mut base = None;
    let mut lookups: HashMap<(Currency, Date), Lookup> = HashMap::new();
    let mut missing: BTreeMap<(Currency, Date), (usize, Vec<String>)> = BTreeMap::new();
    let mut tz: Option<jiff::tz::TimeZone> = None;
    loop {
        let page = engine.store.unconverted_cost_entries(&conn.name, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        if base.is_none() {
            base = Some(conn.erp.base_currency().await?);
        }
        let base = base.expect("read just above");
        let now = engine.clock.now();
        // Only a posting-date rate needs the company's zone (and so, maybe, the ERP).
        if tz.is_none() {
            tz = Some(match conn.policy.fx_rate_date {
                FxRateDate::PostingDate => conn.policy.company_timezone(conn.erp.as_ref()).await?,
                FxRateDate::ShipDate => conn.policy.company_timezone_or(None),
            });
        }
        let tz = tz.as_ref().expect("set just above");
        let today = company_date(now, tz);
        for entry in &page {
            let from = entry.amount.currency();
            let wanted = wanted_date(&conn.policy, entry, tz);
            if conn.policy.fx_rate_date == FxRateDate::PostingDate && wanted > today {
                report.before_posting_date += 1;
                continue;
            }
            let lookup = match lookups.get(&(from, wanted)) {
                Some(l) => l.clone(),
                None => {
                    let l = rates.resolve(from, base, wanted).await?;
                    lookups.insert((from, wanted), l.clone());
                    l
                }
            };
            let r = match lookup {
                Lookup::Found(r) => r,
                Lookup::Missing { tried } => {
                    missing.entry((from, wanted)).or_insert((0, tried)).0 += 1;
                    report.waiting += 1;
                    continue;
                }
            };
            let conversion = Conversion::make(&entry.entry_key, entry.amount, base, r.rate_from, r.rate_to, r.rate_date, wanted, r.source)
                .map_err(|e| EngineError::Setup(format!("cost entry {} of connection {}: {e}", entry.entry_key, conn.name)))?;
            let mut change = Change::new(&conn.name, now);
            change.events.push(event(entry, &conversion, &r.detail));
            if from != base {
                change.clear(ExceptionKind::FxRateMissing, "fx_rate", pair_id(from, base, wanted));
            }
            change.cost_conversions.push(NewCostConversion { conversion, source_detail: r.detail });
            match engine.store.commit(change).await {
                Ok(_) => report.converted += 1,
                Err(StoreError::CostAlreadyConverted { .. }) => report.raced += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    // The pass read every unconverted entry: a missing-rate exception it did not find
    // again names a pair and date nothing waits for any more (its entries converted
    // under another wanted date, another worker converted them, or the policy
    // changed), so it closes, whatever raised it.
    let still_missing: std::collections::HashSet<String> = match base {
        Some(base) => missing.keys().map(|(from, wanted)| pair_id(*from, base, *wanted)).collect(),
        None => Default::default(),
    };
    let open = engine
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(conn.name.clone()),
            live: true,
            kind: Some(ExceptionKind::FxRateMissing),
            limit: 1_000,
            ..ExceptionFilter::default()
        })
        .await?;
    let stale: Vec<String> = open.into_iter().map(|e| e.record_id).filter(|id| !still_missing.contains(id)).collect();
    if !stale.is_empty() {
        let mut change = Change::new(&conn.name, engine.clock.now());
        for id in stale {
            change.clear(ExceptionKind::FxRateMissing, "fx_rate", id);
        }
        engine.store.commit(change).await?;
    }
    if !missing.is_empty() {
        let base = base.expect("a missing rate was looked up against the base currency");
        let mut change = Change::new(&conn.name, engine.clock.now());
        for ((from, wanted), (waiting, tried)) in &missing {
            let id = pair_id(*from, base, *wanted);
            change.raise(
                ExceptionKind::FxRateMissing,
                "fx_rate",
                id.clone(),
                json!({
                    "message": format!(
                        "no usable {from}→{base} rate for {wanted} (a rate may be at most {} days older), so {waiting} cost \
                         entr{} in {from} wait unconverted and their batch is not posted. Sources tried: {}. Add the rate in \
                         the ERP, the rates file or [[connections.policy.fx_fixed]]; this closes by itself once they convert",
                        conn.policy.fx_max_age.as_secs() / 86_400,
                        if *waiting == 1 { "y" } else { "ies" },
                        tried.join("; "),
                    ),
                    "from": from.code(),
                    "to": base.code(),
                    "date": wanted.to_string(),
                    "waiting": waiting,
                    "tried": tried,
                }),
            );
            report.missing.push(id);
        }
        engine.store.commit(change).await?;
    }
    Ok(report)
}

fn event(entry: &CostEntry, c: &Conversion, detail: &str) -> NewEvent {
    let message = match c.source {
        RateSource::Identity => format!("{} {} is already in the base currency", entry.charge, c.original),
        _ => format!(
            "{} {} converted to {} at {} ÷ {} ({} rate of {})",
            entry.charge, c.original, c.base, c.rate_to, c.rate_from, c.source, c.rate_date
        ),
    };
    NewEvent::shipment(
        entry.label.shipment_key.clone(),
        EventKind::CostConverted,
        json!({
            "message": message,
            "entry_key": c.entry_key,
            "original": c.original.to_decimal().to_string(),
            "currency": c.original.currency().code(),
            "base": c.base.to_decimal().to_string(),
            "base_currency": c.base.currency().code(),
            "rate_from": c.rate_from.to_string(),
            "rate_to": c.rate_to.to_string(),
            "rate_date": c.rate_date.to_string(),
            "wanted_date": c.wanted_date.to_string(),
            "source": c.source.code(),
            "source_detail": detail,
            "rounding": "half_even",
            "exact": c.exact.to_string(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_rate_exception_names_the_pair_and_the_date() {
        assert_eq!(pair_id(Currency::USD, Currency::GBP, jiff::civil::date(2026, 11, 27)), "USD/GBP 2026-11-27");
    }
}
