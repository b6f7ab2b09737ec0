//! Money: an exact amount in integer minor units of one ISO 4217 currency.
//!
//! This module owns [`Currency`], [`Money`], the explicit [`Rounding`] rules and
//! [`MoneyError`]. It never touches `f64`: amounts enter and leave as
//! [`rust_decimal::Decimal`] or decimal strings, and every step that could lose a
//! fraction of a minor unit names its rounding rule. Arithmetic is checked: adding
//! two currencies or overflowing `i64` is an error, never a silent wrap.
//!
//! On the wire (serde) a `Money` is `{"amount":"12.34","currency":"USD"}`. The
//! amount is a decimal string; a JSON integer is also accepted, but a JSON number
//! with a fraction is rejected because JSON parsers hand it over as a binary float.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// An ISO 4217 currency.
///
/// A thin newtype over [`iso_currency::Currency`] so that shipledger decides how a
/// currency is parsed (case-insensitively), displayed (by its code) and serialised
/// (as its code).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// US dollar.
    pub const USD: Currency = Currency(iso_currency::Currency::USD);
    /// Euro.
    pub const EUR: Currency = Currency(iso_currency::Currency::EUR);
    /// Pound sterling.
    pub const GBP: Currency = Currency(iso_currency::Currency::GBP);
    /// Canadian dollar.
    pub const CAD: Currency = Currency(iso_currency::Currency::CAD);
    /// Australian dollar.
    pub const AUD: Currency = Currency(iso_currency::Currency::AUD);
    /// Japanese yen (no minor unit).
    pub const JPY: Currency = Currency(iso_currency::Currency::JPY);
    /// Kuwaiti dinar (three minor-unit digits).
    pub const KWD: Currency = Currency(iso_currency::Currency::KWD);
    /// Bahraini dinar (three minor-unit digits).
    pub const BHD: Currency = Currency(iso_currency::Currency::BHD);

    /// Parses an ISO 4217 alphabetic code, ignoring ASCII case and surrounding
    /// whitespace.
    ///
    /// ```
    /// use shipledger_core::Currency;
    ///
    /// assert_eq!(Currency::parse("usd")?, Currency::USD);
    /// assert_eq!(Currency::parse("JPY")?.exponent(), 0);
    /// assert!(Currency::parse("dollars").is_err());
    /// # Ok::<(), shipledger_core::MoneyError>(())
    /// ```
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let trimmed = code.trim();
        let upper = trimmed.to_ascii_uppercase();
        if upper.len() == 3
            && let Some(c) = iso_currency::Currency::from_code(&upper)
        {
            return Ok(Currency(c));
        }
        Err(MoneyError::UnknownCurrency {
            input: code.to_owned(),
        })
    }

    /// The three-letter ISO 4217 code, e.g. `"USD"`.
    pub fn code(&self) -> &'static str {
        self.0.code()
    }

    /// The number of minor-unit digits: USD 2, JPY 0, BHD and KWD 3. Currencies
    /// that ISO 4217 lists without a minor unit (e.g. XAU) count as 0.
    pub fn exponent(&self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }

    /// The wrapped [`iso_currency::Currency`], for its names, symbols and countries.
    pub fn iso(&self) -> iso_currency::Currency {
        self.0
    }
}

impl From<iso_currency::Currency> for Currency {
    fn from(c: iso_currency::Currency) -> Self {
        Currency(c)
    }
}

impl From<Currency> for iso_currency::Currency {
    fn from(c: Currency) -> Self {
        c.0
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CurrencyVisitor;
        impl Visitor<'_> for CurrencyVisitor {
            type Value = Currency;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO 4217 currency code such as \"USD\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Currency, E> {
                Currency::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(CurrencyVisitor)
    }
}

/// How to turn a decimal with more fractional digits than the target allows into
/// whole minor units. There is no default: every caller names its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Refuse to round: an error if any fractional minor unit would be lost.
    Exact,
    /// To the nearest; ties to the even neighbour ("banker's rounding").
    HalfEven,
    /// To the nearest; ties away from zero (1.005 -> 1.01, -1.005 -> -1.01).
    HalfUp,
    /// Toward zero (truncate).
    Down,
    /// Away from zero.
    Up,
}

impl Rounding {
    fn strategy(self) -> Option<RoundingStrategy> {
        match self {
            Rounding::Exact => None,
            Rounding::HalfEven => Some(RoundingStrategy::MidpointNearestEven),
            Rounding::HalfUp => Some(RoundingStrategy::MidpointAwayFromZero),
            Rounding::Down => Some(RoundingStrategy::ToZero),
            Rounding::Up => Some(RoundingStrategy::AwayFromZero),
        }
    }
}

/// Everything that can go wrong with money. Each message says what was wrong and
/// what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The text is not an ISO 4217 alphabetic code.
    #[error(
        "unknown currency code {input:?}: expected a three-letter ISO 4217 code such as \"USD\", \"EUR\" or \"JPY\"; check the currency configured on the record"
    )]
    UnknownCurrency {
        /// The text as given.
        input: String,
    },
    /// Two amounts in different currencies met in one operation.
    #[error(
        "cannot {op} {left} and {right}: amounts in different currencies must first be converted with an explicit FX rate (Money::convert)"
    )]
    CurrencyMismatch {
        /// The operation, e.g. "add".
        op: &'static str,
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in `i64` minor units.
    #[error(
        "{op} overflowed the range of a {currency} amount (i64 minor units); the inputs are implausibly large, check them for a mis-scaled or corrupted amount"
    )]
    Overflow {
        /// The operation, e.g. "multiply".
        op: &'static str,
        /// Currency of the result.
        currency: Currency,
    },
    /// `Rounding::Exact` was asked for, but the value has finer precision than the
    /// currency's minor unit.
    #[error(
        "{value} has more than {exponent} decimal places, which {currency} cannot hold exactly; pass an explicit rounding rule (HalfEven, HalfUp, Down, Up) if rounding is intended"
    )]
    RoundingRequired {
        /// The value that would need rounding.
        value: Decimal,
        /// The target currency.
        currency: Currency,
        /// The target currency's minor-unit digits.
        exponent: u32,
    },
    /// The text is not a decimal number.
    #[error(
        "{input:?} is not a decimal amount: expected an optional sign, digits and an optional decimal point, like \"12.34\" or \"-0.5\""
    )]
    InvalidAmount {
        /// The text as given.
        input: String,
    },
    /// An FX rate that is zero or negative.
    #[error(
        "FX rate {rate} from {from} to {to} is not positive; check the rate source for this currency pair"
    )]
    InvalidRate {
        /// The rate as given.
        rate: Decimal,
        /// Source currency.
        from: Currency,
        /// Target currency.
        to: Currency,
    },
}

/// An exact amount: an `i64` count of minor units (cents, pence, yen, fils) of one
/// [`Currency`].
///
/// Equality compares both the amount and the currency; there is no `Ord` because
/// amounts in different currencies are not comparable (see [`Money::checked_cmp`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount from a count of minor units.
    ///
    /// ```
    /// use shipledger_core::{Currency, Money};
    ///
    /// let m = Money::from_minor(1234, Currency::USD);
    /// assert_eq!(m.to_string(), "12.34 USD");
    /// assert_eq!(Money::from_minor(500, Currency::JPY).to_string(), "500 JPY");
    /// ```
    pub const fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// The amount in minor units.
    pub const fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// True for a zero amount.
    pub const fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// True for an amount below zero.
    pub const fn is_negative(&self) -> bool {
        self.minor < 0
    }

    /// True for an amount above zero.
    pub const fn is_positive(&self) -> bool {
        self.minor > 0
    }

    fn same_currency(&self, other: &Money, op: &'static str) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                op,
                left: self.currency,
                right: other.currency,
            })
        }
    }

    fn overflow(&self, op: &'static str) -> MoneyError {
        MoneyError::Overflow {
            op,
            currency: self.currency,
        }
    }

    /// `self + other`; an error if the currencies differ or the sum overflows.
    ///
    /// ```
    /// use shipledger_core::{Currency, Money};
    ///
    /// let a = Money::from_minor(150, Currency::USD);
    /// let b = Money::from_minor(75, Currency::USD);
    /// assert_eq!(a.checked_add(&b)?, Money::from_minor(225, Currency::USD));
    /// assert!(a.checked_add(&Money::from_minor(1, Currency::EUR)).is_err());
    /// # Ok::<(), shipledger_core::MoneyError>(())
    /// ```
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other, "add")?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or_else(|| self.overflow("addition"))?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `self - other`; an error if the currencies differ or the result overflows.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other, "subtract")?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or_else(|| self.overflow("subtraction"))?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `self * factor` for an integer factor such as a quantity.
    pub fn checked_mul_int(&self, factor: i64) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(factor)
            .ok_or_else(|| self.overflow("multiplication"))?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `-self`, or an error for the one unrepresentable case (`i64::MIN` minor units).
    pub fn checked_neg(&self) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_neg()
            .ok_or_else(|| self.overflow("negation"))?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `-self`, e.g. to reverse a journal line.
    ///
    /// # Panics
    ///
    /// Only for an amount of exactly `i64::MIN` minor units, which no real amount
    /// reaches; use [`Money::checked_neg`] on amounts from untrusted arithmetic.
    pub fn neg(&self) -> Money {
        match self.checked_neg() {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    /// Compares two amounts of the same currency; an error if the currencies differ.
    pub fn checked_cmp(&self, other: &Money) -> Result<Ordering, MoneyError> {
        self.same_currency(other, "compare")?;
        Ok(self.minor.cmp(&other.minor))
    }

    /// Sums amounts that must all be in `currency`; the empty sum is zero.
    pub fn checked_sum<'a, I>(currency: Currency, amounts: I) -> Result<Money, MoneyError>
    where
        I: IntoIterator<Item = &'a Money>,
    {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(m))
    }

    /// An amount from a decimal, in the currency's minor units.
    ///
    /// Exact when `d` has no more fractional digits than the currency's exponent
    /// (trailing zeros do not count). Otherwise `rounding` decides; with
    /// [`Rounding::Exact`] that case is an error.
    ///
    /// ```
    /// use rust_decimal::Decimal;
    /// use shipledger_core::{Currency, Money, Rounding};
    ///
    /// let d: Decimal = "2.345".parse().unwrap();
    /// assert_eq!(Money::from_decimal(d, Currency::USD, Rounding::HalfEven)?.minor(), 234);
    /// assert_eq!(Money::from_decimal(d, Currency::USD, Rounding::HalfUp)?.minor(), 235);
    /// assert!(Money::from_decimal(d, Currency::USD, Rounding::Exact).is_err());
    /// assert_eq!(Money::from_decimal(d, Currency::KWD, Rounding::Exact)?.minor(), 2345);
    /// # Ok::<(), shipledger_core::MoneyError>(())
    /// ```
    pub fn from_decimal(
        d: Decimal,
        currency: Currency,
        rounding: Rounding,
    ) -> Result<Money, MoneyError> {
        let exponent = currency.exponent();
        let rounded = if d.scale() <= exponent {
            d
        } else {
            let exact = d.round_dp_with_strategy(exponent, RoundingStrategy::ToZero) == d;
            match (exact, rounding.strategy()) {
                (true, _) => d,
                (false, Some(strategy)) => d.round_dp_with_strategy(exponent, strategy),
                (false, None) => {
                    return Err(MoneyError::RoundingRequired {
                        value: d,
                        currency,
                        exponent,
                    });
                }
            }
        };
        let overflow = || MoneyError::Overflow {
            op: "conversion from a decimal",
            currency,
        };
        let scaled = rounded
            .checked_mul(Decimal::from(10i64.pow(exponent)))
            .ok_or_else(overflow)?;
        let minor = scaled.trunc().to_i64().ok_or_else(overflow)?;
        Ok(Money::from_minor(minor, currency))
    }

    /// The amount as an exact decimal whose scale is the currency's exponent
    /// (`12.34` for 1234 cents, `500` for 500 yen, `1.000` for 1000 fils).
    pub fn to_decimal(&self) -> Decimal {
        Decimal::new(self.minor, self.currency.exponent())
    }

    /// An amount from a decimal string such as `"12.34"` or `"-0.5"`, rounded by
    /// `rounding` as in [`Money::from_decimal`]. Surrounding whitespace is ignored;
    /// exponents (`1e3`), thousands separators and currency symbols are not accepted.
    ///
    /// ```
    /// use shipledger_core::{Currency, Money, Rounding};
    ///
    /// let m = Money::parse("12.34", Currency::USD, Rounding::Exact)?;
    /// assert_eq!(m.minor(), 1234);
    /// assert!(Money::parse("$12.34", Currency::USD, Rounding::Exact).is_err());
    /// # Ok::<(), shipledger_core::MoneyError>(())
    /// ```
    pub fn parse(s: &str, currency: Currency, rounding: Rounding) -> Result<Money, MoneyError> {
        let d = parse_decimal(s)?;
        Money::from_decimal(d, currency, rounding)
    }

    /// Converts to another currency at `rate` (units of `to` per unit of this
    /// currency): `amount * rate`, rounded to `to`'s minor unit by `rounding`.
    /// The rate must be positive. The product is computed in `Decimal`'s 96-bit
    /// precision (28 significant digits) before the one rounding step, which is
    /// exact for any realistic amount and rate.
    ///
    /// ```
    /// use rust_decimal::Decimal;
    /// use shipledger_core::{Currency, Money, Rounding};
    ///
    /// let usd = Money::from_minor(1000, Currency::USD); // 10.00 USD
    /// let rate: Decimal = "0.78915".parse().unwrap();  // GBP per USD
    /// let gbp = usd.convert(rate, Currency::GBP, Rounding::HalfEven)?;
    /// assert_eq!(gbp.to_string(), "7.89 GBP");
    /// # Ok::<(), shipledger_core::MoneyError>(())
    /// ```
    pub fn convert(
        &self,
        rate: Decimal,
        to: Currency,
        rounding: Rounding,
    ) -> Result<Money, MoneyError> {
        if rate <= Decimal::ZERO {
            return Err(MoneyError::InvalidRate {
                rate,
                from: self.currency,
                to,
            });
        }
        let product = self
            .to_decimal()
            .checked_mul(rate)
            .ok_or(MoneyError::Overflow {
                op: "FX conversion",
                currency: to,
            })?;
        Money::from_decimal(product, to, rounding)
    }
}

/// Parses a plain decimal string (no exponent, no separators).
fn parse_decimal(s: &str) -> Result<Decimal, MoneyError> {
    let t = s.trim();
    let invalid = || MoneyError::InvalidAmount {
        input: s.to_owned(),
    };
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let plain = !body.is_empty()
        && body.chars().all(|c| c.is_ascii_digit() || c == '.')
        && body.chars().filter(|&c| c == '.').count() <= 1
        && body.chars().any(|c| c.is_ascii_digit());
    if !plain {
        return Err(invalid());
    }
    Decimal::from_str_exact(t).map_err(|_| invalid())
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Money", 2)?;
        st.serialize_field("amount", &self.to_decimal().to_string())?;
        st.serialize_field("currency", self.currency.code())?;
        st.end()
    }
}

/// The `amount` field on the wire: a decimal string or a JSON integer, never a float.
struct WireAmount(Decimal);

impl<'de> Deserialize<'de> for WireAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = WireAmount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"12.34\" or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireAmount, E> {
                parse_decimal(v).map(WireAmount).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireAmount, E> {
                Ok(WireAmount(Decimal::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireAmount, E> {
                Ok(WireAmount(Decimal::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireAmount, E> {
                Err(E::custom(format_args!(
                    "amount {v} is a fractional JSON number, which has already passed through binary floating point; send the amount as a decimal string such as \"12.34\""
                )))
            }
        }
        d.deserialize_any(AmountVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMoney {
    amount: WireAmount,
    currency: Currency,
}

impl<'de> Deserialize<'de> for Money {
    /// Reads `{"amount":"12.34","currency":"USD"}`. The amount must fit the
    /// currency exactly (`"12.345"` USD is an error, never silently rounded).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireMoney::deserialize(d)?;
        Money::from_decimal(w.amount.0, w.currency, Rounding::Exact).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    #[test]
    fn a_currency_code_is_read_in_any_case() {
        assert_eq!(Currency::parse("usd").unwrap(), Currency::USD);
        assert_eq!(Currency::parse(" Eur ").unwrap(), Currency::EUR);
        assert_eq!("gbp".parse::<Currency>().unwrap().code(), "GBP");
    }

    #[test]
    fn an_unknown_currency_code_is_refused_with_the_input_named() {
        let err = Currency::parse("XYZ").unwrap_err();
        assert!(err.to_string().contains("\"XYZ\""), "{err}");
        assert!(Currency::parse("").is_err());
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("USDX").is_err());
    }

    #[test]
    fn each_currency_knows_its_minor_unit_digits() {
        assert_eq!(Currency::USD.exponent(), 2);
        assert_eq!(Currency::JPY.exponent(), 0);
        assert_eq!(Currency::BHD.exponent(), 3);
        assert_eq!(Currency::KWD.exponent(), 3);
        // Gold has no minor unit in ISO 4217: treated as 0.
        assert_eq!(Currency::parse("XAU").unwrap().exponent(), 0);
    }

    #[test]
    fn amounts_display_with_their_currency_code() {
        assert_eq!(usd(1234).to_string(), "12.34 USD");
        assert_eq!(usd(-5).to_string(), "-0.05 USD");
        assert_eq!(
            Money::from_minor(1000, Currency::KWD).to_string(),
            "1.000 KWD"
        );
        assert_eq!(Money::from_minor(7, Currency::JPY).to_string(), "7 JPY");
    }

    #[test]
    fn adding_dollars_to_euros_is_refused() {
        let err = usd(1)
            .checked_add(&Money::from_minor(1, Currency::EUR))
            .unwrap_err();
        assert!(matches!(err, MoneyError::CurrencyMismatch { .. }));
        assert!(err.to_string().contains("USD and EUR"), "{err}");
        assert!(
            usd(1)
                .checked_sub(&Money::from_minor(1, Currency::EUR))
                .is_err()
        );
        assert!(
            usd(1)
                .checked_cmp(&Money::from_minor(1, Currency::EUR))
                .is_err()
        );
    }

    #[test]
    fn overflowing_arithmetic_is_an_error_not_a_wrap() {
        assert!(matches!(
            usd(i64::MAX).checked_add(&usd(1)),
            Err(MoneyError::Overflow { .. })
        ));
        assert!(usd(i64::MIN).checked_sub(&usd(1)).is_err());
        assert!(usd(i64::MAX / 2 + 1).checked_mul_int(2).is_err());
        assert!(usd(i64::MIN).checked_neg().is_err());
        assert_eq!(usd(300).checked_mul_int(-3).unwrap(), usd(-900));
        assert_eq!(usd(300).neg(), usd(-300));
    }

    #[test]
    fn summing_lines_of_one_currency_gives_the_total() {
        let lines = [usd(100), usd(250), usd(-50)];
        assert_eq!(Money::checked_sum(Currency::USD, &lines).unwrap(), usd(300));
        assert_eq!(Money::checked_sum(Currency::USD, &[]).unwrap(), usd(0));
        assert!(Money::checked_sum(Currency::EUR, &lines).is_err());
    }

    #[test]
    fn each_rounding_rule_rounds_its_own_way() {
        let cases = [
            // value, HalfEven, HalfUp, Down, Up (in cents)
            ("2.345", 234, 235, 234, 235),
            ("2.355", 236, 236, 235, 236),
            ("2.341", 234, 234, 234, 235),
            ("-2.345", -234, -235, -234, -235),
            ("-2.349", -235, -235, -234, -235),
        ];
        for (v, he, hu, down, up) in cases {
            let d = dec(v);
            assert_eq!(
                Money::from_decimal(d, Currency::USD, Rounding::HalfEven)
                    .unwrap()
                    .minor(),
                he,
                "{v} HalfEven"
            );
            assert_eq!(
                Money::from_decimal(d, Currency::USD, Rounding::HalfUp)
                    .unwrap()
                    .minor(),
                hu,
                "{v} HalfUp"
            );
            assert_eq!(
                Money::from_decimal(d, Currency::USD, Rounding::Down)
                    .unwrap()
                    .minor(),
                down,
                "{v} Down"
            );
            assert_eq!(
                Money::from_decimal(d, Currency::USD, Rounding::Up)
                    .unwrap()
                    .minor(),
                up,
                "{v} Up"
            );
            assert!(matches!(
                Money::from_decimal(d, Currency::USD, Rounding::Exact),
                Err(MoneyError::RoundingRequired { .. })
            ));
        }
    }

    #[test]
    fn trailing_zeros_do_not_need_rounding() {
        let m = Money::from_decimal(dec("12.3400"), Currency::USD, Rounding::Exact).unwrap();
        assert_eq!(m.minor(), 1234);
        let y = Money::from_decimal(dec("1500.00"), Currency::JPY, Rounding::Exact).unwrap();
        assert_eq!(y.minor(), 1500);
    }

    #[test]
    fn a_decimal_too_large_for_i64_minor_units_is_an_overflow() {
        let huge = dec("100000000000000000000");
        assert!(matches!(
            Money::from_decimal(huge, Currency::USD, Rounding::Exact),
            Err(MoneyError::Overflow { .. })
        ));
    }

    #[test]
    fn amount_strings_are_plain_decimals() {
        assert_eq!(
            Money::parse("12.34", Currency::USD, Rounding::Exact).unwrap(),
            usd(1234)
        );
        assert_eq!(
            Money::parse(" -0.5 ", Currency::USD, Rounding::Exact).unwrap(),
            usd(-50)
        );
        assert_eq!(
            Money::parse("+7", Currency::USD, Rounding::Exact).unwrap(),
            usd(700)
        );
        assert_eq!(
            Money::parse(".5", Currency::USD, Rounding::Exact).unwrap(),
            usd(50)
        );
        for bad in [
            "", "abc", "1e3", "1,000.00", "$5", "1.2.3", "-", ".", "1_000",
        ] {
            let err = Money::parse(bad, Currency::USD, Rounding::HalfEven).unwrap_err();
            assert!(
                matches!(err, MoneyError::InvalidAmount { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn converting_dollars_to_yen_rounds_in_yen() {
        let m = usd(1999); // 19.99 USD
        let jpy = m
            .convert(dec("151.237"), Currency::JPY, Rounding::HalfEven)
            .unwrap();
        // 19.99 * 151.237 = 3023.22763
        assert_eq!(jpy, Money::from_minor(3023, Currency::JPY));
        assert!(
            m.convert(dec("151.237"), Currency::JPY, Rounding::Exact)
                .is_err()
        );
        assert!(matches!(
            m.convert(Decimal::ZERO, Currency::JPY, Rounding::HalfEven),
            Err(MoneyError::InvalidRate { .. })
        ));
    }

    #[test]
    fn money_travels_as_a_decimal_string_and_a_code() {
        let json = serde_json::to_string(&usd(1234)).unwrap();
        assert_eq!(json, r#"{"amount":"12.34","currency":"USD"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, usd(1234));
        let kwd: Money = serde_json::from_str(r#"{"amount":"1.5","currency":"kwd"}"#).unwrap();
        assert_eq!(kwd, Money::from_minor(1500, Currency::KWD));
    }

    #[test]
    fn an_integer_json_amount_is_accepted_but_a_fractional_one_is_not() {
        let m: Money = serde_json::from_str(r#"{"amount":12,"currency":"USD"}"#).unwrap();
        assert_eq!(m, usd(1200));
        let err =
            serde_json::from_str::<Money>(r#"{"amount":12.34,"currency":"USD"}"#).unwrap_err();
        assert!(err.to_string().contains("decimal string"), "{err}");
    }

    #[test]
    fn a_wire_amount_finer_than_the_currency_is_refused() {
        assert!(serde_json::from_str::<Money>(r#"{"amount":"12.345","currency":"USD"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount":"12","currency":"ZZZ"}"#).is_err());
    }

    proptest! {
        #[test]
        fn any_amount_survives_a_trip_through_a_decimal(minor in any::<i64>(), cur in prop::sample::select(vec![Currency::USD, Currency::JPY, Currency::KWD])) {
            let m = Money::from_minor(minor, cur);
            prop_assert_eq!(Money::from_decimal(m.to_decimal(), cur, Rounding::Exact).unwrap(), m);
            prop_assert_eq!(Money::parse(&m.to_decimal().to_string(), cur, Rounding::Exact).unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        }

        #[test]
        fn addition_then_subtraction_returns_the_start(a in -1_000_000_000_000i64..1_000_000_000_000, b in -1_000_000_000_000i64..1_000_000_000_000) {
            let (a, b) = (usd(a), usd(b));
            prop_assert_eq!(a.checked_add(&b).unwrap().checked_sub(&b).unwrap(), a);
            prop_assert_eq!(a.checked_add(&b).unwrap(), b.checked_add(&a).unwrap());
        }

        #[test]
        fn rounding_lands_within_one_minor_unit_and_respects_direction(mantissa in -10_000_000_000i64..10_000_000_000, scale in 0u32..8) {
            let d = Decimal::new(mantissa, scale);
            let cents = |r| Money::from_decimal(d, Currency::USD, r).unwrap().to_decimal();
            let one_cent = dec("0.01");
            for r in [Rounding::HalfEven, Rounding::HalfUp, Rounding::Down, Rounding::Up] {
                prop_assert!((cents(r) - d).abs() < one_cent);
            }
            prop_assert!(cents(Rounding::Down).abs() <= d.abs());
            prop_assert!(cents(Rounding::Up).abs() >= d.abs());
            let half = dec("0.005");
            prop_assert!((cents(Rounding::HalfEven) - d).abs() <= half);
            prop_assert!((cents(Rounding::HalfUp) - d).abs() <= half);
        }
    }
}
