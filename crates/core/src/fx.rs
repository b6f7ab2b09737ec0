//! Currency conversion the way the ERP does it, and the rates files it reads.
//!
//! - [`convert`]: Tryton's rule. Rates are quoted against one reference currency
//!   (units of each currency per unit of the reference); an amount converts as
//!   `amount × rate(to) ÷ rate(from)` on exact decimals, rounded **once**, half-even,
//!   to the target's minor unit — never through a pre-rounded ratio, which would
//!   drift by a minor unit on large amounts.
//! - [`RateTable::parse_ecb_csv`]: the ECB's euro reference rates as CSV, in both of
//!   the layouts the ECB publishes (see there).
//!
//! - [`Conversion`]: how one cost entry became base currency — the base amount with
//!   the rates, the rate date, the source and the rounding that made it. A journal
//!   line is the sum of its entries' conversions, so journals reconcile to entries to
//!   the minor unit by construction (DESIGN §7).

use std::collections::BTreeMap;

use jiff::civil::Date;
use rust_decimal::Decimal;

use crate::money::{Currency, Money, MoneyError, Rounding};

/// Why a conversion or a rates file failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FxError {
    #[error("the rate of {currency} is {rate}; a rate must be positive")]
    BadRate { currency: Currency, rate: Decimal },
    #[error("converting {amount} to {to} overflows")]
    Overflow { amount: Money, to: Currency },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("rates file line {line}: {detail}")]
    File { line: usize, detail: String },
}

/// `amount` in `to`, given both currencies' rates against one reference currency
/// (`rate_from` for `amount`'s currency, `rate_to` for `to`): `amount × rate_to ÷
/// rate_from`, computed on exact decimals and rounded once, half-even, to `to`'s
/// minor unit.
///
/// ```
/// use rust_decimal::Decimal;
/// use shipledger_core::fx::convert;
/// use shipledger_core::{Currency, Money};
///
/// // ECB rates: 1 EUR = 1.0565 USD = 0.8321 GBP. 10.00 USD in GBP:
/// let usd = Money::from_minor(1000, Currency::USD);
/// let gbp = convert(usd, "1.0565".parse().unwrap(), "0.8321".parse().unwrap(), Currency::GBP)?;
/// assert_eq!(gbp, Money::from_minor(788, Currency::GBP)); // 7.87600... -> 7.88
/// # Ok::<(), shipledger_core::fx::FxError>(())
/// ```
pub fn convert(amount: Money, rate_from: Decimal, rate_to: Decimal, to: Currency) -> Result<Money, FxError> {
    for (currency, rate) in [(amount.currency(), rate_from), (to, rate_to)] {
        if rate <= Decimal::ZERO {
            return Err(FxError::BadRate { currency, rate });
        }
    }
    let overflow = || FxError::Overflow { amount, to };
    let exact = amount.to_decimal().checked_mul(rate_to).ok_or_else(overflow)?.checked_div(rate_from).ok_or_else(overflow)?;
    Ok(Money::from_decimal(exact, to, Rounding::HalfEven)?)
}

/// Where a rate came from, in the order a connection's `fx_sources` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateSource {
    /// The ERP's own rate table (Tryton `currency.currency.rate`).
    Erp,
    /// A rates file (CSV; the ECB reference-rate layout).
    File,
    /// A fixed rate in the configuration, with its date.
    Fixed,
    /// No conversion: the entry is already in the base currency (both rates 1).
    Identity,
}

impl RateSource {
    pub fn code(self) -> &'static str {
        match self {
            RateSource::Erp => "erp",
            RateSource::File => "file",
            RateSource::Fixed => "fixed",
            RateSource::Identity => "identity",
        }
    }

    pub fn parse(code: &str) -> Option<RateSource> {
        [RateSource::Erp, RateSource::File, RateSource::Fixed, RateSource::Identity].into_iter().find(|s| s.code() == code)
    }
}

impl std::fmt::Display for RateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// How one cost entry became base currency, kept beside the entry (immutable like
/// it): `base` = `original` × `rate_to` ÷ `rate_from`, exactly `exact` before it was
/// rounded once by `rounding` to the base currency's minor unit ([`convert`]). Both
/// rates are against one reference currency, as the source quotes them (Tryton: the
/// company currency; the ECB: EUR), so the arithmetic is the ERP's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conversion {
    /// The converted entry's key ([`crate::cost::entry_key`]).
    pub entry_key: String,
    /// The entry's amount in its own currency.
    pub original: Money,
    /// In the ERP's base currency.
    pub base: Money,
    pub rate_from: Decimal,
    pub rate_to: Decimal,
    /// The date of the rates used (on or before the date policy asked for).
    pub rate_date: Date,
    /// The date policy asked a rate for (`ship_date` or `posting_date`).
    pub wanted_date: Date,
    pub source: RateSource,
    pub rounding: Rounding,
    /// `original × rate_to ÷ rate_from` before rounding.
    pub exact: Decimal,
}

impl Conversion {
    /// Converts `original` into `to` with the rates of `source` dated `rate_date`,
    /// keeping everything that made the result.
    #[allow(clippy::too_many_arguments)]
    pub fn make(
        entry_key: impl Into<String>,
        original: Money,
        to: Currency,
        rate_from: Decimal,
        rate_to: Decimal,
        rate_date: Date,
        wanted_date: Date,
        source: RateSource,
    ) -> Result<Conversion, FxError> {
        let base = convert(original, rate_from, rate_to, to)?;
        let exact = original.to_decimal() * rate_to / rate_from;
        Ok(Conversion { entry_key: entry_key.into(), original, base, rate_from, rate_to, rate_date, wanted_date, source, rounding: Rounding::HalfEven, exact })
    }
}

/// Dated rates against one reference currency (for the ECB: EUR, whose own rate is 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTable {
    pub reference: Currency,
    rates: BTreeMap<(Date, &'static str), (Currency, Decimal)>,
}

impl RateTable {
    pub fn new(reference: Currency) -> RateTable {
        RateTable { reference, rates: BTreeMap::new() }
    }

    pub fn insert(&mut self, date: Date, currency: Currency, rate: Decimal) {
        self.rates.insert((date, currency.code()), (currency, rate));
    }

    /// The rate of `currency` on `date` exactly (the reference currency's is 1).
    pub fn rate(&self, date: Date, currency: Currency) -> Option<Decimal> {
        if currency == self.reference {
            return Some(Decimal::ONE);
        }
        self.rates.get(&(date, currency.code())).map(|(_, r)| *r)
    }

    /// The latest rate of `currency` on or before `date`, with its date.
    pub fn rate_on_or_before(&self, date: Date, currency: Currency) -> Option<(Date, Decimal)> {
        if currency == self.reference {
            return Some((date, Decimal::ONE));
        }
        self.rates
            .range(..=(date, currency.code()))
            .rev()
            .find(|((_, code), _)| *code == currency.code())
            .map(|((d, _), (_, r))| (*d, *r))
    }

    /// How many (date, currency) rates the table holds.
    pub fn len(&self) -> usize {
        self.rates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    /// The ECB's euro foreign exchange reference rates as CSV, in either layout it
    /// publishes:
    ///
    /// - the daily file (`eurofxref.csv`): a header `Date, USD, JPY, ...` and one row
    ///   whose date is written `27 November 2026`;
    /// - the history (`eurofxref-hist.csv`): the same header, one row per day, dates
    ///   `2026-11-27`.
    ///
    /// Each value is units of the column's currency per 1 EUR. Cells are trimmed; a
    /// trailing empty column (both files end each line with a comma) is ignored; `N/A`
    /// or an empty cell is no rate that day. A column whose code is not an ISO 4217
    /// currency this build knows (a retired one such as `CYP`) is skipped. Anything
    /// else that does not read — a header not starting with `Date`, a date or a
    /// number that is not one, a row longer than the header — is an error naming the
    /// line.
    pub fn parse_ecb_csv(text: &str) -> Result<RateTable, FxError> {
        let mut table = RateTable::new(Currency::EUR);
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(FxError::File { line: 1, detail: "the file is empty".into() });
        };
        let cells: Vec<&str> = header.split(',').map(str::trim).collect();
        if !cells.first().is_some_and(|c| c.eq_ignore_ascii_case("date")) {
            return Err(FxError::File { line: 1, detail: format!("the header starts with {:?}, not Date", cells.first().unwrap_or(&"")) });
        }
        let columns: Vec<Option<Currency>> = cells[1..].iter().map(|code| Currency::parse(code).ok()).collect();
        for (n, line) in lines {
            let line_no = n + 1;
            let file = |detail: String| FxError::File { line: line_no, detail };
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let date = parse_ecb_date(cells[0]).ok_or_else(|| file(format!("{:?} is not a date", cells[0])))?;
            for (i, cell) in cells[1..].iter().enumerate() {
                let Some(column) = columns.get(i) else {
                    if cell.is_empty() {
                        continue;
                    }
                    return Err(file(format!("more values than the header has currencies ({cell:?})")));
                };
                let Some(currency) = column else { continue };
                if cell.is_empty() || cell.eq_ignore_ascii_case("n/a") {
                    continue;
                }
                let rate = Decimal::from_str_exact(cell).map_err(|e| file(format!("{currency}: {cell:?} is not a number: {e}")))?;
                if rate <= Decimal::ZERO {
                    return Err(file(format!("{currency}: the rate {cell} is not positive")));
                }
                table.insert(date, *currency, rate);
            }
        }
        Ok(table)
    }
}

/// `2026-11-27` or `27 November 2026`.
fn parse_ecb_date(text: &str) -> Option<Date> {
    if let Ok(date) = text.parse::<Date>() {
        return Some(date);
    }
    let mut parts = text.split_whitespace();
    let day: i8 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] =
        ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];
    let m = MONTHS.iter().position(|name| name.eq_ignore_ascii_case(month))? as i8 + 1;
    Date::new(year, m, day).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_conversion_keeps_the_rates_the_date_the_source_and_what_rounding_took() {
        let usd = Money::from_minor(1000, Currency::USD);
        let c = Conversion::make(
            "label:1/postage/0",
            usd,
            Currency::GBP,
            "1.0565".parse().unwrap(),
            "0.8321".parse().unwrap(),
            Date::constant(2026, 11, 27),
            Date::constant(2026, 11, 29),
            RateSource::File,
        )
        .unwrap();
        assert_eq!(c.base, Money::from_minor(788, Currency::GBP));
        assert_eq!(c.base, convert(usd, c.rate_from, c.rate_to, Currency::GBP).unwrap(), "the same rule as convert");
        assert!(c.exact > "7.875".parse::<Decimal>().unwrap() && c.exact < "7.877".parse::<Decimal>().unwrap(), "{}", c.exact);
        assert_eq!((c.rate_date, c.wanted_date, c.source, c.rounding), (Date::constant(2026, 11, 27), Date::constant(2026, 11, 29), RateSource::File, Rounding::HalfEven));
        let back: Conversion = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert_eq!(RateSource::parse("erp"), Some(RateSource::Erp));
        assert_eq!(RateSource::parse("bank"), None);
    }

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn the_ratio_is_never_rounded_before_the_amount_is() {
        // 1 EUR = 1.1 USD = 0.9 GBP: the ratio 0.8181... rounded to four places
        // (0.8182) would give 8182.00 GBP for 10,000.00 USD; exactly it is 8181.82.
        let usd = Money::from_minor(1_000_000, Currency::USD);
        assert_eq!(convert(usd, d("1.1"), d("0.9"), Currency::GBP).unwrap(), Money::from_minor(818_182, Currency::GBP));
    }

    #[test]
    fn a_tie_rounds_to_the_even_minor_unit_once() {
        // 0.25 EUR at 1 EUR = 0.5 GBP is 0.125 GBP: half-even gives 0.12, and 0.375 gives 0.38.
        let eur = |m| Money::from_minor(m, Currency::EUR);
        assert_eq!(convert(eur(25), d("1"), d("0.5"), Currency::GBP).unwrap(), Money::from_minor(12, Currency::GBP));
        assert_eq!(convert(eur(75), d("1"), d("0.5"), Currency::GBP).unwrap(), Money::from_minor(38, Currency::GBP));
        assert_eq!(convert(eur(-25), d("1"), d("0.5"), Currency::GBP).unwrap(), Money::from_minor(-12, Currency::GBP));
    }

    #[test]
    fn a_rate_that_is_not_positive_is_refused() {
        let usd = Money::from_minor(100, Currency::USD);
        assert!(matches!(convert(usd, d("0"), d("1"), Currency::GBP), Err(FxError::BadRate { .. })));
        assert!(matches!(convert(usd, d("1"), d("-1"), Currency::GBP), Err(FxError::BadRate { .. })));
    }

    proptest::proptest! {
        /// Over any amount and any pair of four-decimal rates (as the ECB quotes
        /// them), the result is the exact quotient rounded half-even, checked
        /// independently in integers; converting the negated amount gives the negated
        /// result.
        #[test]
        fn conversion_is_the_exact_quotient_rounded_half_even_and_symmetric_in_sign(
            minor in 0i64..100_000_000_000,
            from in 1i64..=2_000_000,
            to in 1i64..=2_000_000,
        ) {
            let amount = Money::from_minor(minor, Currency::USD);
            let got = convert(amount, Decimal::new(from, 4), Decimal::new(to, 4), Currency::GBP).unwrap();
            // minor × to ÷ from in integers (both currencies have two decimals).
            let (num, den) = (i128::from(minor) * i128::from(to), i128::from(from));
            let (q, r) = (num / den, num % den);
            let want = match (2 * r).cmp(&den) {
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q % 2),
            };
            proptest::prop_assert_eq!(i128::from(got.minor()), want);
            let neg = convert(amount.neg(), Decimal::new(from, 4), Decimal::new(to, 4), Currency::GBP).unwrap();
            proptest::prop_assert_eq!(neg, got.neg());
        }
    }

    #[test]
    fn the_ecb_daily_file_reads_with_its_long_date_and_trailing_comma() {
        let text = "Date, USD, JPY, BGN, CYP, GBP, \n27 November 2026, 1.0565, 158.34, 1.9558, N/A, 0.8321, \n";
        let table = RateTable::parse_ecb_csv(text).unwrap();
        let day = jiff::civil::date(2026, 11, 27);
        assert_eq!(table.rate(day, Currency::USD), Some(d("1.0565")));
        assert_eq!(table.rate(day, Currency::GBP), Some(d("0.8321")));
        assert_eq!(table.rate(day, Currency::JPY), Some(d("158.34")));
        assert_eq!(table.rate(day, Currency::EUR), Some(Decimal::ONE));
        assert_eq!(table.rate(day, Currency::AUD), None);
    }

    #[test]
    fn the_ecb_history_reads_day_by_day_and_a_missing_day_is_no_rate() {
        let text = "Date,USD,GBP,\n2026-11-27,1.0565,0.8321,\n2026-11-26,1.0540,N/A,\n2026-11-25,1.0512,0.8300,\n";
        let table = RateTable::parse_ecb_csv(text).unwrap();
        assert_eq!(table.len(), 5);
        assert_eq!(table.rate(jiff::civil::date(2026, 11, 26), Currency::GBP), None);
        assert_eq!(
            table.rate_on_or_before(jiff::civil::date(2026, 11, 26), Currency::GBP),
            Some((jiff::civil::date(2026, 11, 25), d("0.8300")))
        );
        assert_eq!(
            table.rate_on_or_before(jiff::civil::date(2026, 11, 29), Currency::USD),
            Some((jiff::civil::date(2026, 11, 27), d("1.0565")))
        );
        assert_eq!(table.rate_on_or_before(jiff::civil::date(2026, 11, 24), Currency::USD), None);
    }

    #[test]
    fn a_rates_file_that_does_not_read_names_its_line() {
        for (text, line) in [
            ("", 1),
            ("Currency,USD\n", 1),
            ("Date,USD\n2026-11-27,1.05\nyesterday,1.06\n", 3),
            ("Date,USD\n2026-11-27,one\n", 2),
            ("Date,USD\n2026-11-27,-1\n", 2),
            ("Date,USD\n2026-11-27,1.05,1.07\n", 2),
        ] {
            match RateTable::parse_ecb_csv(text) {
                Err(FxError::File { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
