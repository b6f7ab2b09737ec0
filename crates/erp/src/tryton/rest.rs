//! Tryton's REST API (8.x, `trytond/protocols/rest.py`), as the connector uses it.
//!
//! - `GET  {base}/rest/model/{model}?f=…&d=…&o=…&s=…&p=…` searches: `f` names a
//!   field (repeated; dotted paths come back as nested objects), `d` is the domain
//!   and `o` the order, both base64url JSON; `s` is the limit and `p` the offset.
//! - `GET {base}/rest/model/{model}/{id}?f=…` reads one record; `POST
//!   {base}/rest/model/{model}` creates one from a JSON object; `PUT …/{id}` writes.
//! - `POST {base}/rest/model/{model}/{id}/{action}` calls a button or RPC method
//!   with keyword arguments from the body.
//! - The context (`company`, `locations`, …) travels as base64url JSON in
//!   `X-Tryton-Context`; the key as `Authorization: Bearer …`.
//! - Values that JSON lacks are tagged objects both ways: `{"__class__":
//!   "Decimal", "decimal": "3.94"}`, `date` (`year`, `month`, `day`) and
//!   `datetime` (plus `hour`, `minute`, `second`, `microsecond`; naive, and UTC in
//!   Tryton's database).
//! - A business refusal (`UserError`) is a 400 `{"status", "message",
//!   "description"}`; a bad key a 401; a record the user may not see, or a method
//!   that is not exposed, 403/404.
//!
//! Floats (quantities, weights) are read through their JSON text, which Python and
//! serde_json both print as the shortest round-trip form, so `0.2` is exactly
//! `Decimal 0.2` here, never a binary approximation.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// A base64url JSON value, as `d`, `o` and `X-Tryton-Context` carry them.
pub fn b64(value: &Value) -> String {
    URL_SAFE.encode(value.to_string())
}

pub fn decimal(d: Decimal) -> Value {
    json!({"__class__": "Decimal", "decimal": d.normalize().to_string()})
}

pub fn date(d: Date) -> Value {
    json!({"__class__": "date", "year": d.year(), "month": d.month(), "day": d.day()})
}

pub fn datetime(t: Timestamp) -> Value {
    let dt = t.to_zoned(TimeZone::UTC).datetime();
    json!({
        "__class__": "datetime",
        "year": dt.year(), "month": dt.month(), "day": dt.day(),
        "hour": dt.hour(), "minute": dt.minute(), "second": dt.second(),
        "microsecond": dt.subsec_nanosecond() / 1000,
    })
}

/// A Decimal, float or integer value (`None` for `null` or anything else).
pub fn decimal_of(v: &Value) -> Option<Decimal> {
    match v {
        Value::Object(m) if m.get("__class__").and_then(Value::as_str) == Some("Decimal") => {
            m.get("decimal").and_then(Value::as_str).and_then(|s| Decimal::from_str(s).ok())
        }
        Value::Number(n) => {
            let text = n.to_string();
            Decimal::from_str(&text).or_else(|_| Decimal::from_scientific(&text)).ok()
        }
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        _ => None,
    }
}

pub fn date_of(v: &Value) -> Option<Date> {
    let m = v.as_object()?;
    if m.get("__class__")?.as_str()? != "date" {
        return None;
    }
    let n = |k: &str| m.get(k).and_then(Value::as_i64);
    Date::new(n("year")? as i16, n("month")? as i8, n("day")? as i8).ok()
}

/// A naive Tryton datetime, read as UTC.
pub fn timestamp_of(v: &Value) -> Option<Timestamp> {
    let m = v.as_object()?;
    if m.get("__class__")?.as_str()? != "datetime" {
        return None;
    }
    let n = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
    let dt = DateTime::new(
        n("year") as i16,
        n("month") as i8,
        n("day") as i8,
        n("hour") as i8,
        n("minute") as i8,
        n("second") as i8,
        (n("microsecond") * 1000) as i32,
    )
    .ok()?;
    dt.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// A record id, or the id of a nested record (`{"id": 3, …}`).
pub fn id_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Object(m) => m.get("id").and_then(Value::as_i64),
        _ => None,
    }
}

/// A text field: `None` for `null`, `false` (Tryton's empty char) or blank.
pub fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The message of a Tryton error answer: `message`, with `description` when given,
/// else the body's first 200 characters.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let message = v.get("message").and_then(text_of);
        let description = v.get("description").and_then(text_of);
        match (message, description) {
            (Some(m), Some(d)) if d != m => return format!("{m} ({d})"),
            (Some(m), _) => return m,
            (None, Some(d)) => return d,
            _ => {}
        }
    }
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    if text.trim().is_empty() { "(no message)".into() } else { text.trim().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_values_round_trip_exactly() {
        let d = Decimal::from_str("3.940").unwrap();
        assert_eq!(decimal_of(&decimal(d)), Some(d));
        assert_eq!(decimal(d)["decimal"], "3.94");
        let day = Date::new(2026, 11, 24).unwrap();
        assert_eq!(date_of(&date(day)), Some(day));
        let t: Timestamp = "2026-11-24T03:24:37.123456Z".parse().unwrap();
        assert_eq!(timestamp_of(&datetime(t)), Some(t));
    }

    #[test]
    fn floats_are_read_through_their_text() {
        let v: Value = serde_json::from_str("[0.2, 0.45, 2.0, 1e-05, 3]").unwrap();
        let got: Vec<_> = v.as_array().unwrap().iter().map(|x| decimal_of(x).unwrap().to_string()).collect();
        assert_eq!(got, ["0.2", "0.45", "2.0", "0.00001", "3"]);
    }

    #[test]
    fn error_answers_keep_trytons_own_words() {
        let body = br#"{"status": 400, "message": "You cannot post move \"1\" because it is not balanced.", "description": ""}"#;
        assert_eq!(error_message(body), "You cannot post move \"1\" because it is not balanced.");
        assert_eq!(error_message(b"<html>Bad Gateway</html>"), "<html>Bad Gateway</html>");
        assert_eq!(error_message(b""), "(no message)");
    }

    #[test]
    fn empty_char_fields_are_none() {
        assert_eq!(text_of(&json!(false)), None);
        assert_eq!(text_of(&json!("  ")), None);
        assert_eq!(text_of(&json!(" RM1 ")), Some("RM1".into()));
    }
}
