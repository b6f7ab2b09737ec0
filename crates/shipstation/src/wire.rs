//! Serde helpers for ShipStation's loose JSON: `null` where a list or a flag belongs,
//! dates that sometimes carry a time, v2 timestamps that sometimes lack an offset,
//! ids that are numbers in one place and strings in another.
//!
//! Money uses `shipledger_core::json::decimal_number(_option)` (exact digits, never
//! `f64`) and v1 times use `shipledger_core::time::pacific::serde_v1_option`.

use serde::{Deserialize, Deserializer, Serializer};

/// `null` or missing reads as `T::default()` (an empty list, `false`, `0`).
pub(crate) fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Parse the date part of `2015-07-02`, `2015-07-02T00:00:00.0000000` or
/// `2019-07-25T00:00:00Z`.
pub fn parse_date_lenient(text: &str) -> Option<jiff::civil::Date> {
    let text = text.trim();
    let date_part = text.get(..10).unwrap_or(text);
    date_part.parse().ok()
}

/// Parse a v2 timestamp: RFC 3339 (`...Z` or `+hh:mm`); an offset-less date-time or a
/// bare date is read as UTC (v2 documents UTC everywhere except
/// `carrier_occurred_at`, which we keep as text).
pub fn parse_utc_lenient(text: &str) -> Option<jiff::Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp());
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// An optional date written as `YYYY-MM-DD`, read leniently.
pub(crate) mod date_option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<jiff::civil::Date>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(date) => serializer.serialize_str(&date.to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<jiff::civil::Date>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => parse_date_lenient(&s).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("expected a date like 2015-07-02, got {s:?}"))
            }),
        }
    }
}

/// An optional UTC timestamp written as RFC 3339, read leniently.
pub(crate) mod utc_option {
    use super::*;

    pub fn serialize<S: Serializer>(
        value: &Option<jiff::Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(ts) => serializer.serialize_str(&ts.to_string()),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<jiff::Timestamp>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => parse_utc_lenient(&s).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("expected an ISO-8601 UTC timestamp, got {s:?}"))
            }),
        }
    }
}

/// An id that is a number in some answers and a string in others, kept as text.
pub(crate) mod string_or_int_option {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
    }

    pub fn serialize<S: Serializer>(
        value: &Option<String>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_str(v),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(
            Option::<Either>::deserialize(deserializer)?.map(|e| match e {
                Either::S(s) => s,
                Either::I(i) => i.to_string(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_or_without_a_time_part_are_read() {
        let want = jiff::civil::date(2015, 7, 2);
        assert_eq!(parse_date_lenient("2015-07-02"), Some(want));
        assert_eq!(
            parse_date_lenient("2015-07-02T00:00:00.0000000"),
            Some(want)
        );
        assert_eq!(parse_date_lenient("2015-07-02T00:00:00Z"), Some(want));
        assert_eq!(parse_date_lenient("8-13-2014"), None);
    }

    #[test]
    fn v2_timestamps_are_utc_with_or_without_an_offset() {
        let want: jiff::Timestamp = "2019-03-12T19:24:13.657Z".parse().unwrap();
        assert_eq!(parse_utc_lenient("2019-03-12T19:24:13.657Z"), Some(want));
        assert_eq!(parse_utc_lenient("2019-03-12T19:24:13.657"), Some(want));
        assert_eq!(
            parse_utc_lenient("2019-03-12T12:24:13.657-07:00"),
            Some(want)
        );
        assert_eq!(
            parse_utc_lenient("2019-03-12"),
            Some("2019-03-12T00:00:00Z".parse().unwrap())
        );
    }
}
