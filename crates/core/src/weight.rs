//! Weight: an exact, non-negative mass in integer milligrams.
//!
//! This module owns [`Weight`], the [`WeightUnit`]s that ShipStation and ERPs speak
//! (with ShipStation's v1 and v2 spellings) and [`WeightError`]. The conversion
//! factors are the exact legal definitions: 1 lb = 453.59237 g and 1 oz = 1/16 lb =
//! 28.349523125 g. No floats: input arrives as a [`Decimal`], and both directions
//! state their rounding.
//!
//! - Into a `Weight` ([`Weight::from_decimal`]): anything finer than a milligram is
//!   rounded half-even to the milligram.
//! - Out of a `Weight` ([`Weight::to_decimal`]): grams come out exact with 3 decimal
//!   places, kilograms exact with 6, ounces and pounds rounded half-even to 6
//!   (a millionth of an ounce is about 0.03 mg).

use std::fmt;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Milligrams in one unit, as an exact fraction `numerator / denominator`.
struct Factor {
    numerator: u128,
    denominator: u128,
}

/// A unit of mass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightUnit {
    /// Grams.
    Grams,
    /// Avoirdupois ounces (28.349523125 g).
    Ounces,
    /// Avoirdupois pounds (453.59237 g, 16 oz).
    Pounds,
    /// Kilograms.
    Kilograms,
}

impl WeightUnit {
    /// Every unit, in a stable order.
    pub const ALL: [WeightUnit; 4] = [
        WeightUnit::Grams,
        WeightUnit::Ounces,
        WeightUnit::Pounds,
        WeightUnit::Kilograms,
    ];

    /// Reads a unit name, ignoring ASCII case and surrounding whitespace. Accepts
    /// ShipStation v1 words (`grams`, `ounces`, `pounds`), v2 words (`gram`,
    /// `ounce`, `pound`, `kilogram`), `kilograms`, and the abbreviations `g`, `oz`,
    /// `lb`, `lbs`, `kg`.
    ///
    /// ```
    /// use shipledger_core::WeightUnit;
    ///
    /// assert_eq!(WeightUnit::parse("ounces")?, WeightUnit::Ounces);
    /// assert_eq!(WeightUnit::parse("Pound")?, WeightUnit::Pounds);
    /// assert_eq!(WeightUnit::parse("KG")?, WeightUnit::Kilograms);
    /// # Ok::<(), shipledger_core::WeightError>(())
    /// ```
    pub fn parse(s: &str) -> Result<WeightUnit, WeightError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grams" | "gram" | "g" => Ok(WeightUnit::Grams),
            "ounces" | "ounce" | "oz" => Ok(WeightUnit::Ounces),
            "pounds" | "pound" | "lb" | "lbs" => Ok(WeightUnit::Pounds),
            "kilograms" | "kilogram" | "kg" => Ok(WeightUnit::Kilograms),
            _ => Err(WeightError::UnknownUnit {
                input: s.to_owned(),
            }),
        }
    }

    /// The ShipStation v1 word (`"grams"`, `"ounces"`, `"pounds"`). v1 has no word
    /// for kilograms, so `Kilograms` gives `None`: convert to grams first.
    pub fn as_v1_str(&self) -> Option<&'static str> {
        match self {
            WeightUnit::Grams => Some("grams"),
            WeightUnit::Ounces => Some("ounces"),
            WeightUnit::Pounds => Some("pounds"),
            WeightUnit::Kilograms => None,
        }
    }

    /// The ShipStation v2 word (`"gram"`, `"ounce"`, `"pound"`, `"kilogram"`).
    pub fn as_v2_str(&self) -> &'static str {
        match self {
            WeightUnit::Grams => "gram",
            WeightUnit::Ounces => "ounce",
            WeightUnit::Pounds => "pound",
            WeightUnit::Kilograms => "kilogram",
        }
    }

    /// A short symbol for display: `g`, `oz`, `lb`, `kg`.
    pub fn symbol(&self) -> &'static str {
        match self {
            WeightUnit::Grams => "g",
            WeightUnit::Ounces => "oz",
            WeightUnit::Pounds => "lb",
            WeightUnit::Kilograms => "kg",
        }
    }

    /// The decimal places [`Weight::to_decimal`] gives in this unit: 3 for grams
    /// (exact), 6 for kilograms (exact), 6 for ounces and pounds (rounded).
    pub fn decimal_places(&self) -> u32 {
        match self {
            WeightUnit::Grams => 3,
            WeightUnit::Ounces | WeightUnit::Pounds | WeightUnit::Kilograms => 6,
        }
    }

    /// Milligrams per unit as an exact decimal.
    fn milligrams_per_unit(&self) -> Decimal {
        match self {
            WeightUnit::Grams => Decimal::from(1_000),
            WeightUnit::Ounces => Decimal::new(28_349_523_125, 6),
            WeightUnit::Pounds => Decimal::new(45_359_237, 2),
            WeightUnit::Kilograms => Decimal::from(1_000_000),
        }
    }

    fn factor(&self) -> Factor {
        let (numerator, denominator) = match self {
            WeightUnit::Grams => (1_000, 1),
            WeightUnit::Ounces => (28_349_523_125, 1_000_000),
            WeightUnit::Pounds => (45_359_237, 100),
            WeightUnit::Kilograms => (1_000_000, 1),
        };
        Factor {
            numerator,
            denominator,
        }
    }
}

impl fmt::Display for WeightUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl std::str::FromStr for WeightUnit {
    type Err = WeightError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WeightUnit::parse(s)
    }
}

/// Everything that can go wrong with a weight.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WeightError {
    /// A negative mass.
    #[error(
        "weight {value} {unit} is negative; a weight must be zero or more, check the product or package record"
    )]
    Negative {
        /// The value as given.
        value: Decimal,
        /// Its unit.
        unit: WeightUnit,
    },
    /// Beyond what a `u64` count of milligrams holds (about 18 billion tonnes).
    #[error(
        "{op} overflowed the range of a weight (u64 milligrams); the input is implausibly large, check it for a unit or scale mistake"
    )]
    Overflow {
        /// The operation, e.g. "addition".
        op: &'static str,
    },
    /// A unit name that is not recognised.
    #[error(
        "unknown weight unit {input:?}: expected grams, ounces, pounds or kilograms (g, oz, lb, lbs, kg; ShipStation v1 \"grams\"/\"ounces\"/\"pounds\" or v2 \"gram\"/\"ounce\"/\"pound\"/\"kilogram\")"
    )]
    UnknownUnit {
        /// The text as given.
        input: String,
    },
}

/// An exact, non-negative mass stored as integer milligrams.
///
/// Ordered, so weights compare directly. Serialised as `{"milligrams": 1234}`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Weight {
    milligrams: u64,
}

impl Weight {
    /// No weight at all.
    pub const ZERO: Weight = Weight { milligrams: 0 };

    /// A weight of whole grams.
    ///
    /// # Panics
    ///
    /// Above `u64::MAX / 1000` grams (about 18 billion tonnes); use
    /// [`Weight::checked_from_grams`] for untrusted input.
    ///
    /// ```
    /// use shipledger_core::Weight;
    ///
    /// assert_eq!(Weight::from_grams(250).milligrams(), 250_000);
    /// ```
    pub fn from_grams(grams: u64) -> Weight {
        match Weight::checked_from_grams(grams) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        }
    }

    /// A weight of whole grams, or an error if it does not fit.
    pub fn checked_from_grams(grams: u64) -> Result<Weight, WeightError> {
        grams
            .checked_mul(1_000)
            .map(Weight::from_milligrams)
            .ok_or(WeightError::Overflow {
                op: "conversion from grams",
            })
    }

    /// A weight of whole milligrams.
    pub const fn from_milligrams(milligrams: u64) -> Weight {
        Weight { milligrams }
    }

    /// The weight in milligrams.
    pub const fn milligrams(&self) -> u64 {
        self.milligrams
    }

    /// True for a zero weight (often a missing product weight upstream).
    pub const fn is_zero(&self) -> bool {
        self.milligrams == 0
    }

    /// A weight from a decimal value in `unit`. Negative values are an error;
    /// precision finer than a milligram is rounded half-even to the milligram.
    ///
    /// ```
    /// use rust_decimal::Decimal;
    /// use shipledger_core::{Weight, WeightUnit};
    ///
    /// let one_pound = Weight::from_decimal(Decimal::ONE, WeightUnit::Pounds)?;
    /// assert_eq!(one_pound.milligrams(), 453_592); // 453 592.37 mg, rounded
    /// // 1.5 oz is 42 524.284... mg: stored as 42 524 mg, so reading it back in
    /// // ounces at 6 places shows the sub-milligram loss; at 2 places it does not.
    /// let w = Weight::from_decimal("1.5".parse().unwrap(), WeightUnit::Ounces)?;
    /// assert_eq!(w.milligrams(), 42_524);
    /// assert_eq!(w.to_decimal(WeightUnit::Ounces).to_string(), "1.499990");
    /// assert_eq!(w.to_decimal_places(WeightUnit::Ounces, 2).to_string(), "1.50");
    /// assert!(Weight::from_decimal("-1".parse().unwrap(), WeightUnit::Grams).is_err());
    /// # Ok::<(), shipledger_core::WeightError>(())
    /// ```
    pub fn from_decimal(value: Decimal, unit: WeightUnit) -> Result<Weight, WeightError> {
        if value < Decimal::ZERO {
            return Err(WeightError::Negative { value, unit });
        }
        let overflow = WeightError::Overflow {
            op: "conversion from a decimal",
        };
        let mg = value
            .checked_mul(unit.milligrams_per_unit())
            .ok_or_else(|| overflow.clone())?
            .round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven);
        mg.to_u64().map(Weight::from_milligrams).ok_or(overflow)
    }

    /// The weight in `unit`, with [`WeightUnit::decimal_places`] places: exact for
    /// grams (3) and kilograms (6), rounded half-even to 6 places for ounces and
    /// pounds.
    pub fn to_decimal(&self, unit: WeightUnit) -> Decimal {
        self.to_decimal_places(unit, unit.decimal_places())
    }

    /// The weight in `unit` rounded half-even to `places` decimal places (capped
    /// at 12), computed exactly from the rational conversion factor before the one
    /// rounding step. The result always has exactly `places` decimal places.
    ///
    /// ```
    /// use shipledger_core::{Weight, WeightUnit};
    ///
    /// let w = Weight::from_grams(1000);
    /// assert_eq!(w.to_decimal_places(WeightUnit::Pounds, 2).to_string(), "2.20");
    /// ```
    pub fn to_decimal_places(&self, unit: WeightUnit, places: u32) -> Decimal {
        let places = places.min(12);
        let Factor {
            numerator,
            denominator,
        } = unit.factor();
        // value * 10^places = mg * denominator * 10^places / numerator; at most
        // 1.9e19 * 1e6 * 1e12 < 2^128, and the quotient fits Decimal's 96 bits.
        let num = u128::from(self.milligrams) * denominator * 10u128.pow(places);
        let (q, r) = (num / numerator, num % numerator);
        let q = match (2 * r).cmp(&numerator) {
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal if q % 2 == 1 => q + 1,
            _ => q,
        };
        let q = i128::try_from(q).expect("quotient fits in i128");
        Decimal::from_i128_with_scale(q, places)
    }

    /// `self + other`, or an error on overflow.
    pub fn checked_add(&self, other: Weight) -> Result<Weight, WeightError> {
        self.milligrams
            .checked_add(other.milligrams)
            .map(Weight::from_milligrams)
            .ok_or(WeightError::Overflow { op: "addition" })
    }

    /// `self * qty` (a line's unit weight times its quantity), or an error on overflow.
    pub fn checked_mul(&self, qty: u64) -> Result<Weight, WeightError> {
        self.milligrams
            .checked_mul(qty)
            .map(Weight::from_milligrams)
            .ok_or(WeightError::Overflow {
                op: "multiplication",
            })
    }

    /// Sums weights, or an error on overflow; the empty sum is zero.
    pub fn checked_sum<I: IntoIterator<Item = Weight>>(weights: I) -> Result<Weight, WeightError> {
        weights
            .into_iter()
            .try_fold(Weight::ZERO, |acc, w| acc.checked_add(w))
    }
}

impl fmt::Display for Weight {
    /// Grams with milligram precision, e.g. `453.592 g`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} g", self.to_decimal(WeightUnit::Grams))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn shipstation_v1_and_v2_unit_words_and_abbreviations_are_all_understood() {
        let cases = [
            ("grams", WeightUnit::Grams),
            ("gram", WeightUnit::Grams),
            ("G", WeightUnit::Grams),
            ("ounces", WeightUnit::Ounces),
            ("Ounce", WeightUnit::Ounces),
            ("oz", WeightUnit::Ounces),
            ("pounds", WeightUnit::Pounds),
            ("pound", WeightUnit::Pounds),
            ("LB", WeightUnit::Pounds),
            ("lbs", WeightUnit::Pounds),
            ("kilogram", WeightUnit::Kilograms),
            ("kilograms", WeightUnit::Kilograms),
            (" kg ", WeightUnit::Kilograms),
        ];
        for (s, unit) in cases {
            assert_eq!(WeightUnit::parse(s).unwrap(), unit, "{s:?}");
        }
        let err = WeightUnit::parse("stone").unwrap_err();
        assert!(err.to_string().contains("\"stone\""), "{err}");
    }

    #[test]
    fn each_unit_round_trips_through_its_shipstation_words() {
        for unit in WeightUnit::ALL {
            assert_eq!(WeightUnit::parse(unit.as_v2_str()).unwrap(), unit);
            if let Some(v1) = unit.as_v1_str() {
                assert_eq!(WeightUnit::parse(v1).unwrap(), unit);
            }
        }
        assert_eq!(WeightUnit::Kilograms.as_v1_str(), None);
        assert_eq!(WeightUnit::Ounces.as_v1_str(), Some("ounces"));
    }

    #[test]
    fn the_legal_definitions_of_ounce_and_pound_are_exact() {
        // 16 oz is exactly 1 lb, and 1 lb is exactly 453.59237 g.
        let sixteen_oz = Weight::from_decimal(dec("16"), WeightUnit::Ounces).unwrap();
        let one_lb = Weight::from_decimal(dec("1"), WeightUnit::Pounds).unwrap();
        assert_eq!(sixteen_oz, one_lb);
        let hundred_lb = Weight::from_decimal(dec("100"), WeightUnit::Pounds).unwrap();
        assert_eq!(hundred_lb.milligrams(), 45_359_237);
        assert_eq!(hundred_lb.to_decimal(WeightUnit::Pounds), dec("100.000000"));
        assert_eq!(
            hundred_lb.to_decimal(WeightUnit::Ounces),
            dec("1600.000000")
        );
        let oz_in_mg = Weight::from_decimal(dec("1000000"), WeightUnit::Ounces).unwrap();
        assert_eq!(oz_in_mg.milligrams(), 28_349_523_125);
    }

    #[test]
    fn sub_milligram_precision_rounds_half_even() {
        let w = |s| {
            Weight::from_decimal(dec(s), WeightUnit::Grams)
                .unwrap()
                .milligrams()
        };
        assert_eq!(w("1.0005"), 1_000);
        assert_eq!(w("1.0015"), 1_002);
        assert_eq!(w("1.00051"), 1_001);
        assert_eq!(w("0.0004"), 0);
    }

    #[test]
    fn a_negative_weight_is_refused() {
        let err = Weight::from_decimal(dec("-0.1"), WeightUnit::Pounds).unwrap_err();
        assert!(matches!(err, WeightError::Negative { .. }));
        assert!(err.to_string().contains("-0.1 lb"), "{err}");
        assert!(
            Weight::from_decimal(dec("-0"), WeightUnit::Pounds)
                .unwrap()
                .is_zero()
        );
    }

    #[test]
    fn grams_and_kilograms_come_out_exact() {
        let w = Weight::from_milligrams(1_234_567);
        assert_eq!(w.to_decimal(WeightUnit::Grams).to_string(), "1234.567");
        assert_eq!(w.to_decimal(WeightUnit::Kilograms).to_string(), "1.234567");
        assert_eq!(w.to_string(), "1234.567 g");
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(
            Weight::from_milligrams(u64::MAX)
                .checked_add(Weight::from_milligrams(1))
                .is_err()
        );
        assert!(
            Weight::from_milligrams(u64::MAX / 2 + 1)
                .checked_mul(2)
                .is_err()
        );
        assert!(Weight::checked_from_grams(u64::MAX).is_err());
        assert!(Weight::from_decimal(dec("100000000000000000000"), WeightUnit::Kilograms).is_err());
        assert_eq!(
            Weight::from_grams(3).checked_mul(4).unwrap(),
            Weight::from_grams(12)
        );
    }

    #[test]
    fn the_largest_weight_still_converts_to_every_unit() {
        let max = Weight::from_milligrams(u64::MAX);
        for unit in WeightUnit::ALL {
            let d = max.to_decimal_places(unit, 12);
            assert!(d > Decimal::ZERO);
        }
    }

    #[test]
    fn a_weight_is_stored_as_milligrams() {
        let json = serde_json::to_string(&Weight::from_grams(2)).unwrap();
        assert_eq!(json, r#"{"milligrams":2000}"#);
        assert_eq!(
            serde_json::from_str::<Weight>(&json).unwrap(),
            Weight::from_grams(2)
        );
        assert!(serde_json::from_str::<Weight>(r#"{"milligrams":-1}"#).is_err());
    }

    fn unit() -> impl Strategy<Value = WeightUnit> {
        prop::sample::select(WeightUnit::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn grams_to_ounces_and_back_loses_less_than_a_milligram(mg in 0u64..=1_000_000_000_000_000) {
            let w = Weight::from_milligrams(mg);
            for unit in WeightUnit::ALL {
                let back = Weight::from_decimal(w.to_decimal(unit), unit).unwrap();
                prop_assert!(back.milligrams().abs_diff(mg) <= 1, "{unit}: {mg} -> {back:?}");
            }
        }

        #[test]
        fn converting_preserves_order(a in 0u64..=u64::MAX / 2, b in 0u64..=u64::MAX / 2, unit in unit()) {
            let (wa, wb) = (Weight::from_milligrams(a), Weight::from_milligrams(b));
            if wa <= wb {
                prop_assert!(wa.to_decimal(unit) <= wb.to_decimal(unit));
            }
            let (da, db) = (Decimal::from(a) / Decimal::from(1000), Decimal::from(b) / Decimal::from(1000));
            if da <= db {
                let (fa, fb) = (Weight::from_decimal(da, unit), Weight::from_decimal(db, unit));
                if let (Ok(fa), Ok(fb)) = (fa, fb) {
                    prop_assert!(fa <= fb);
                }
            }
        }

        #[test]
        fn adding_weights_adds_milligrams_and_converted_values_within_rounding(a in 0u64..=1u64 << 40, b in 0u64..=1u64 << 40, unit in unit()) {
            let (wa, wb) = (Weight::from_milligrams(a), Weight::from_milligrams(b));
            let sum = wa.checked_add(wb).unwrap();
            prop_assert_eq!(sum.milligrams(), a + b);
            prop_assert_eq!(sum, wb.checked_add(wa).unwrap());
            // Each to_decimal rounds by at most half a unit in the last place.
            let ulp = Decimal::new(1, unit.decimal_places());
            let diff = (sum.to_decimal(unit) - wa.to_decimal(unit) - wb.to_decimal(unit)).abs();
            prop_assert!(diff <= ulp, "{unit}: {diff}");
        }

        #[test]
        fn multiplying_by_a_quantity_is_repeated_addition(mg in 0u64..1_000_000_000, qty in 0u64..100) {
            let w = Weight::from_milligrams(mg);
            let repeated = Weight::checked_sum(std::iter::repeat_n(w, qty as usize)).unwrap();
            prop_assert_eq!(w.checked_mul(qty).unwrap(), repeated);
        }
    }
}
