//! Exact decimals in JSON. ShipStation v1 sends money and weights as bare JSON
//! numbers (`"shipmentCost": 7.25`). Going through `f64` would turn `0.1 + 0.2` into
//! `0.30000000000000004`, so these serde helpers read the number's own digits and
//! write them back verbatim, never touching a float.
//!
//! Use them with `#[serde(with = "shipledger_core::json::decimal_number")]` or
//! `decimal_number_option` (null and a missing field both mean `None`; pair it with
//! `#[serde(default)]`). Strings holding a decimal ("7.25") are accepted too, since
//! some endpoints and clients quote their numbers.

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;
use std::str::FromStr;

fn parse_raw(raw: &RawValue) -> Result<Option<Decimal>, String> {
    let text = raw.get().trim();
    if text == "null" {
        return Ok(None);
    }
    let digits = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    let parsed = if digits.contains(['e', 'E']) {
        Decimal::from_scientific(digits)
    } else {
        Decimal::from_str(digits)
    };
    parsed
        .map(Some)
        .map_err(|e| format!("expected a decimal number, got {text}: {e}"))
}

fn write<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    let text = value.normalize().to_string();
    let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&raw, serializer)
}

/// A required decimal written as a JSON number.
pub mod decimal_number {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        write(value, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        let raw: &RawValue = Deserialize::deserialize(deserializer)?;
        parse_raw(raw)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("expected a decimal number, got null"))
    }
}

/// An optional decimal written as a JSON number or `null`.
pub mod decimal_number_option {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => write(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
        let raw: Option<&RawValue> = Deserialize::deserialize(deserializer)?;
        match raw {
            None => Ok(None),
            Some(raw) => parse_raw(raw).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Cost {
        #[serde(with = "decimal_number")]
        amount: Decimal,
        #[serde(default, with = "decimal_number_option")]
        insurance: Option<Decimal>,
    }

    #[test]
    fn a_shipment_cost_keeps_every_digit_it_was_sent_with() {
        let cost: Cost = serde_json::from_str(r#"{"amount": 0.1, "insurance": 12.345}"#).unwrap();
        assert_eq!(cost.amount, Decimal::from_str("0.1").unwrap());
        assert_eq!(cost.insurance, Some(Decimal::from_str("12.345").unwrap()));
        assert_eq!(serde_json::to_string(&cost).unwrap(), r#"{"amount":0.1,"insurance":12.345}"#);
    }

    #[test]
    fn quoted_null_and_missing_amounts_are_understood() {
        let cost: Cost = serde_json::from_str(r#"{"amount": "7.25", "insurance": null}"#).unwrap();
        assert_eq!(cost.amount, Decimal::from_str("7.25").unwrap());
        assert_eq!(cost.insurance, None);
        let cost: Cost = serde_json::from_str(r#"{"amount": 1e2}"#).unwrap();
        assert_eq!(cost.amount, Decimal::from(100));
        assert_eq!(cost.insurance, None);
    }

    #[test]
    fn a_word_where_a_number_belongs_is_refused_with_the_value_named() {
        let err = serde_json::from_str::<Cost>(r#"{"amount": "seven"}"#).unwrap_err();
        assert!(err.to_string().contains("seven"), "{err}");
    }
}
