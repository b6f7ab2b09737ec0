//! The ShipStation v1 time boundary: offset-less US Pacific wall-clock strings.
//!
//! ShipStation v1 writes and reads times as `America/Los_Angeles` wall-clock
//! strings without an offset: `"2015-06-29T08:46:27.0000000"` (7 fractional digits)
//! on orders and shipments, `"2015-07-16T14:00:34.823"` (3 digits) on items and
//! stores, `"2015-07-02"` for dates and `"2016-11-29 23:59:59"` in query parameters.
//! This module converts between those strings and UTC [`Timestamp`]s, using jiff's
//! bundled copy of the IANA time zone database so that every host agrees.
//!
//! # DST policy
//!
//! A Pacific wall-clock time is ambiguous twice a year, and the rule here is fixed:
//!
//! - **Gap** (spring forward, e.g. 2024-03-10 02:30 never happens): the time is
//!   shifted forward by the length of the gap, so 02:30 reads as 03:30 PDT
//!   (10:30Z). This holds for every function and both [`Bound`]s.
//! - **Fold** (fall back, e.g. 2024-11-03 01:30 happens twice, first in PDT then in
//!   PST): [`parse_v1_datetime`], the serde helpers and [`Bound::Start`] take the
//!   **earlier** instant (08:30Z); [`Bound::End`] takes the **later** one (09:30Z).
//!   A query window `[Start, End]` therefore widens over the repeated hour and
//!   never loses a record; it may return a record twice, which ingest dedupes.
//! - A bare date means midnight Pacific at the start of that day, for both bounds:
//!   `"2024-07-01"` as an `End` bound is `2024-07-01T00:00` Pacific, not the end of
//!   that day. Callers who mean "through the end of the day" pass the next date or
//!   an explicit `23:59:59`.
//! - An explicit `Z` or numeric offset (`"2024-07-01T12:00:00Z"`,
//!   `"...-07:00"`) is not ambiguous and is honoured as written.
//!
//! Formatting truncates (never rounds) to the precision of the form: 100 ns for
//! the 7-digit form, milliseconds, whole seconds for the query form, and the day
//! for dates. Parsing accepts up to 9 fractional digits.

use std::fmt::Write as _;
use std::sync::LazyLock;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone, TimeZoneDatabase};

pub use super::TimeError;

/// The IANA name of ShipStation v1's zone.
pub const ZONE_NAME: &str = "America/Los_Angeles";

static PACIFIC: LazyLock<TimeZone> = LazyLock::new(|| {
    TimeZoneDatabase::bundled()
        .get(ZONE_NAME)
        .expect("jiff's bundled tzdb (feature tzdb-bundle-always) contains America/Los_Angeles")
});

/// The `America/Los_Angeles` zone from jiff's bundled tzdb.
pub fn zone() -> &'static TimeZone {
    &PACIFIC
}

/// Which end of a query window a wall-clock time is, deciding the fold (see the
/// module docs): `Start` takes the earlier instant, `End` the later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bound {
    /// The lower bound of a window (and the default reading of a single time).
    Start,
    /// The upper bound of a window.
    End,
}

/// The Pacific wall-clock date and time of an instant.
pub fn to_pacific(ts: Timestamp) -> DateTime {
    PACIFIC.to_datetime(ts)
}

/// The instant of a Pacific wall-clock time under the module's DST policy; an
/// error only for a civil time within a day of jiff's range limits.
pub fn try_from_pacific(dt: DateTime, bound: Bound) -> Result<Timestamp, jiff::Error> {
    let ambiguous = PACIFIC.to_ambiguous_timestamp(dt);
    match bound {
        // "compatible": gap -> shifted forward, fold -> earlier.
        Bound::Start => ambiguous.compatible(),
        // "later": gap -> shifted forward (same as compatible), fold -> later.
        Bound::End => ambiguous.later(),
    }
}

/// The instant of a Pacific wall-clock time under the module's DST policy.
///
/// Saturates to [`Timestamp::MIN`] / [`Timestamp::MAX`] for a civil time within a
/// day of jiff's range limits (years -9999 and 9999); use [`try_from_pacific`] to
/// get an error instead.
///
/// ```
/// use jiff::civil::date;
/// use shipledger_core::time::pacific::{from_pacific, Bound};
///
/// // 2024-11-03 01:30 happens twice in Los Angeles.
/// let dt = date(2024, 11, 3).at(1, 30, 0, 0);
/// assert_eq!(from_pacific(dt, Bound::Start).to_string(), "2024-11-03T08:30:00Z");
/// assert_eq!(from_pacific(dt, Bound::End).to_string(), "2024-11-03T09:30:00Z");
/// ```
pub fn from_pacific(dt: DateTime, bound: Bound) -> Timestamp {
    try_from_pacific(dt, bound).unwrap_or(if dt.year() > 0 {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

fn write_date(out: &mut String, dt: DateTime) {
    let _ = write!(out, "{:04}-{:02}-{:02}", dt.year(), dt.month(), dt.day());
}

fn write_time(out: &mut String, dt: DateTime, sep: char) {
    let _ = write!(
        out,
        "{sep}{:02}:{:02}:{:02}",
        dt.hour(),
        dt.minute(),
        dt.second()
    );
}

/// The v1 form of orders and shipments: `"2015-06-29T08:46:27.0000000"` (Pacific
/// wall clock, 7 fractional digits, truncated to 100 ns, no offset).
///
/// ```
/// use shipledger_core::time::pacific::format_v1_timestamp;
///
/// let ts = "2015-06-29T15:46:27Z".parse().unwrap();
/// assert_eq!(format_v1_timestamp(ts), "2015-06-29T08:46:27.0000000");
/// ```
pub fn format_v1_timestamp(ts: Timestamp) -> String {
    let dt = to_pacific(ts);
    let mut out = String::with_capacity(27);
    write_date(&mut out, dt);
    write_time(&mut out, dt, 'T');
    let _ = write!(out, ".{:07}", dt.subsec_nanosecond() / 100);
    out
}

/// The v1 form of items and stores: `"2015-07-16T14:00:34.823"` (Pacific wall
/// clock, 3 fractional digits, truncated to the millisecond).
pub fn format_v1_timestamp_millis(ts: Timestamp) -> String {
    let dt = to_pacific(ts);
    let mut out = String::with_capacity(23);
    write_date(&mut out, dt);
    write_time(&mut out, dt, 'T');
    let _ = write!(out, ".{:03}", dt.subsec_nanosecond() / 1_000_000);
    out
}

/// The Pacific calendar date: `"2015-07-02"`.
pub fn format_v1_date(ts: Timestamp) -> String {
    let mut out = String::with_capacity(10);
    write_date(&mut out, to_pacific(ts));
    out
}

/// The v1 query-parameter form: `"2016-11-29 23:59:59"` (Pacific wall clock,
/// truncated to the second).
pub fn format_v1_query(ts: Timestamp) -> String {
    let dt = to_pacific(ts);
    let mut out = String::with_capacity(19);
    write_date(&mut out, dt);
    write_time(&mut out, dt, ' ');
    out
}

/// Reads a ShipStation v1 time into an instant; ambiguous wall-clock times follow
/// the module's DST policy as a [`Bound::Start`] (gap: shifted forward; fold: the
/// earlier instant).
///
/// Accepted forms (surrounding whitespace ignored):
/// - `"YYYY-MM-DDTHH:MM:SS"` with an optional `.` and 1 to 9 fractional digits,
/// - the same with a space instead of `T` (the query form),
/// - a bare `"YYYY-MM-DD"`, meaning midnight Pacific,
/// - any date-time above followed by `Z` or an offset `±HH:MM` / `±HHMM` / `±HH`,
///   which is honoured as written instead of Pacific time.
///
/// ```
/// use shipledger_core::time::pacific::parse_v1_datetime;
///
/// let ts = parse_v1_datetime("2015-06-29T08:46:27.0000000")?;
/// assert_eq!(ts.to_string(), "2015-06-29T15:46:27Z");
/// # Ok::<(), shipledger_core::time::TimeError>(())
/// ```
pub fn parse_v1_datetime(s: &str) -> Result<Timestamp, TimeError> {
    parse_v1_query_bound(s, Bound::Start)
}

/// Reads one end of a query window; the same forms as [`parse_v1_datetime`], with
/// the fold decided by `bound` (`Start` earlier, `End` later). A bare date is
/// midnight at the start of that day for both bounds.
///
/// ```
/// use shipledger_core::time::pacific::{parse_v1_query_bound, Bound};
///
/// let end = parse_v1_query_bound("2024-11-03 01:30:00", Bound::End)?;
/// assert_eq!(end.to_string(), "2024-11-03T09:30:00Z");
/// # Ok::<(), shipledger_core::time::TimeError>(())
/// ```
pub fn parse_v1_query_bound(s: &str, bound: Bound) -> Result<Timestamp, TimeError> {
    let invalid = |reason: String| TimeError::InvalidDateTime {
        input: s.to_owned(),
        reason,
    };
    let (dt, offset) = parse_parts(s.trim()).map_err(invalid)?;
    let out_of_range = |_| TimeError::OutOfRange {
        input: s.to_owned(),
    };
    match offset {
        Some(offset) => offset.to_timestamp(dt).map_err(out_of_range),
        None => try_from_pacific(dt, bound).map_err(out_of_range),
    }
}

/// Reads a v1 date, `"YYYY-MM-DD"`.
///
/// ```
/// use jiff::civil::date;
/// use shipledger_core::time::pacific::parse_v1_date;
///
/// assert_eq!(parse_v1_date("2015-07-02")?, date(2015, 7, 2));
/// assert!(parse_v1_date("2015-02-30").is_err());
/// # Ok::<(), shipledger_core::time::TimeError>(())
/// ```
pub fn parse_v1_date(s: &str) -> Result<Date, TimeError> {
    let t = s.trim();
    let invalid = |reason: String| TimeError::InvalidDate {
        input: s.to_owned(),
        reason,
    };
    if t.len() != 10 {
        return Err(invalid("not 10 characters long".into()));
    }
    parse_date(t.as_bytes()).map_err(invalid)
}

/// Reads `n` ASCII digits at `at`.
fn digits(b: &[u8], at: usize, n: usize, what: &str) -> Result<i32, String> {
    let field = b
        .get(at..at + n)
        .filter(|f| f.iter().all(u8::is_ascii_digit))
        .ok_or_else(|| format!("expected {n} digits for the {what}"))?;
    Ok(field
        .iter()
        .fold(0, |acc, d| acc * 10 + i32::from(d - b'0')))
}

fn expect(b: &[u8], at: usize, c: u8, what: &str) -> Result<(), String> {
    if b.get(at) == Some(&c) {
        Ok(())
    } else {
        Err(format!("expected '{}' {what}", c as char))
    }
}

/// `YYYY-MM-DD` in exactly the first 10 bytes.
fn parse_date(b: &[u8]) -> Result<Date, String> {
    let year = digits(b, 0, 4, "year")?;
    expect(b, 4, b'-', "after the year")?;
    let month = digits(b, 5, 2, "month")?;
    expect(b, 7, b'-', "after the month")?;
    let day = digits(b, 8, 2, "day")?;
    // The casts cannot truncate: 4 and 2 digits fit i16 and i8.
    Date::new(year as i16, month as i8, day as i8).map_err(|e| e.to_string())
}

/// A date, optional time and optional explicit offset.
fn parse_parts(s: &str) -> Result<(DateTime, Option<Offset>), String> {
    let b = s.as_bytes();
    if b.len() < 10 {
        return Err("too short for a date".into());
    }
    let date = parse_date(&b[..10])?;
    if b.len() == 10 {
        return Ok((date.to_datetime(Time::midnight()), None));
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err("expected 'T' or a space between the date and the time".into());
    }
    let hour = digits(b, 11, 2, "hour")?;
    expect(b, 13, b':', "after the hour")?;
    let minute = digits(b, 14, 2, "minute")?;
    expect(b, 16, b':', "after the minute")?;
    let second = digits(b, 17, 2, "second")?;
    let mut at = 19;
    let mut nanos = 0i32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let n = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return Err(format!("expected 1 to 9 fractional digits, found {n}"));
        }
        nanos = digits(b, at, n, "fraction")? * 10i32.pow(9 - n as u32);
        at += n;
    }
    let time =
        Time::new(hour as i8, minute as i8, second as i8, nanos).map_err(|e| e.to_string())?;
    let offset = parse_offset(&b[at..])?;
    Ok((date.to_datetime(time), offset))
}

/// Nothing, `Z`, or `±HH[:MM]` / `±HHMM`.
fn parse_offset(b: &[u8]) -> Result<Option<Offset>, String> {
    let sign = match b.first() {
        None => return Ok(None),
        Some(b'Z' | b'z') if b.len() == 1 => return Ok(Some(Offset::UTC)),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err("unexpected text after the time".into()),
    };
    let hours = digits(b, 1, 2, "offset hours")?;
    let minutes = match b.len() {
        3 => 0,
        5 => digits(b, 3, 2, "offset minutes")?,
        6 => {
            expect(b, 3, b':', "in the offset")?;
            digits(b, 4, 2, "offset minutes")?
        }
        _ => return Err("expected an offset like -07:00, -0700 or -07".into()),
    };
    if hours > 25 || minutes > 59 {
        return Err("offset out of range".into());
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Serde helper: a [`Timestamp`] as a v1 string. Serialises the 7-digit form
/// (`"2015-06-29T08:46:27.0000000"`); deserialises every form
/// [`parse_v1_datetime`] accepts.
///
/// ```
/// use jiff::Timestamp;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Order {
///     #[serde(rename = "orderDate", with = "shipledger_core::time::pacific::serde_v1")]
///     order_date: Timestamp,
/// }
///
/// let o: Order = serde_json::from_str(r#"{"orderDate":"2015-06-29T08:46:27.0000000"}"#).unwrap();
/// assert_eq!(o.order_date.to_string(), "2015-06-29T15:46:27Z");
/// ```
pub mod serde_v1 {
    use std::fmt;

    use jiff::Timestamp;
    use serde::Serializer;
    use serde::de::{self, Deserializer, Visitor};

    /// Serialises as the v1 7-digit Pacific string.
    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_v1_timestamp(*ts))
    }

    /// Deserialises any form [`super::parse_v1_datetime`] accepts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V1Visitor;
        impl Visitor<'_> for V1Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a ShipStation v1 Pacific time string such as \"2015-06-29T08:46:27.0000000\"",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                super::parse_v1_datetime(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V1Visitor)
    }
}

/// Serde helper: an `Option<Timestamp>` as a nullable v1 string. `null` reads as
/// `None`; add `#[serde(default)]` on the field so a missing field does too.
///
/// ```
/// use jiff::Timestamp;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Shipment {
///     #[serde(rename = "voidDate", default, with = "shipledger_core::time::pacific::serde_v1_option")]
///     void_date: Option<Timestamp>,
/// }
///
/// let s: Shipment = serde_json::from_str(r#"{"voidDate":null}"#).unwrap();
/// assert_eq!(s.void_date, None);
/// let s: Shipment = serde_json::from_str("{}").unwrap();
/// assert_eq!(s.void_date, None);
/// ```
pub mod serde_v1_option {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct V1(Timestamp);

    impl Serialize for V1 {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serde_v1::serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for V1 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::serde_v1::deserialize(d).map(V1)
        }
    }

    /// Serialises `None` as null, `Some` as the v1 7-digit string.
    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => s.serialize_some(&V1(*ts)),
            None => s.serialize_none(),
        }
    }

    /// Deserialises null as `None`, a string as in [`super::serde_v1`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<V1>::deserialize(d)?.map(|v| v.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_documented_order_date_is_pacific_daylight_time() {
        assert_eq!(
            parse_v1_datetime("2015-06-29T08:46:27.0000000").unwrap(),
            utc("2015-06-29T15:46:27Z")
        );
        assert_eq!(
            format_v1_timestamp(utc("2015-06-29T15:46:27Z")),
            "2015-06-29T08:46:27.0000000"
        );
    }

    #[test]
    fn each_v1_form_formats_as_documented() {
        let ts = utc("2015-07-16T21:00:34.823456789Z");
        assert_eq!(format_v1_timestamp(ts), "2015-07-16T14:00:34.8234567");
        assert_eq!(format_v1_timestamp_millis(ts), "2015-07-16T14:00:34.823");
        assert_eq!(format_v1_date(ts), "2015-07-16");
        assert_eq!(
            format_v1_query(utc("2016-11-30T07:59:59.9Z")),
            "2016-11-29 23:59:59"
        );
    }

    #[test]
    fn a_late_evening_in_california_is_still_the_pacific_date() {
        // 2015-07-03 04:30Z is 21:30 on July 2nd in Los Angeles.
        assert_eq!(format_v1_date(utc("2015-07-03T04:30:00Z")), "2015-07-02");
    }

    #[test]
    fn every_accepted_form_reads_as_the_same_instant() {
        let want = utc("2015-07-16T21:00:34.823Z");
        for s in [
            "2015-07-16T14:00:34.823",
            "2015-07-16T14:00:34.8230000",
            "2015-07-16 14:00:34.823",
            " 2015-07-16t14:00:34.823000000 ",
            "2015-07-16T21:00:34.823Z",
            "2015-07-16T14:00:34.823-07:00",
            "2015-07-16T14:00:34.823-0700",
            "2015-07-16T23:00:34.823+02",
        ] {
            assert_eq!(parse_v1_datetime(s).unwrap(), want, "{s:?}");
        }
        assert_eq!(
            parse_v1_datetime("2016-11-29 23:59:59").unwrap(),
            utc("2016-11-30T07:59:59Z")
        );
    }

    #[test]
    fn a_bare_date_is_midnight_pacific_for_both_bounds() {
        let midnight = utc("2015-07-02T07:00:00Z");
        assert_eq!(parse_v1_datetime("2015-07-02").unwrap(), midnight);
        assert_eq!(
            parse_v1_query_bound("2015-07-02", Bound::Start).unwrap(),
            midnight
        );
        assert_eq!(
            parse_v1_query_bound("2015-07-02", Bound::End).unwrap(),
            midnight
        );
        // In winter, midnight Pacific is 08:00Z.
        assert_eq!(
            parse_v1_datetime("2015-01-02").unwrap(),
            utc("2015-01-02T08:00:00Z")
        );
    }

    #[test]
    fn malformed_times_are_refused_with_the_input_and_the_expected_forms() {
        for bad in [
            "",
            "2015-07-16T14:00",
            "2015-07-16T14:00:34.",
            "2015-07-16T14:00:34.1234567891",
            "2015-7-16T14:00:34",
            "2015-07-16X14:00:34",
            "2015-02-30T14:00:34",
            "2015-07-16T24:00:00",
            "2015-07-16T14:00:60",
            "2015-07-16T14:00:34 PST",
            "2015-07-16T14:00:34+7",
            "2015-07-16T14:00:34-07:00:00",
            "2015-07-16Z",
            "16/07/2015",
        ] {
            let err = parse_v1_datetime(bad).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, TimeError::InvalidDateTime { .. }),
                "{bad:?}: {msg}"
            );
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("YYYY-MM-DDTHH:MM:SS"), "{msg}");
        }
    }

    #[test]
    fn a_v1_date_is_a_calendar_date() {
        assert_eq!(parse_v1_date("2015-07-02").unwrap(), date(2015, 7, 2));
        assert_eq!(parse_v1_date(" 2024-02-29 ").unwrap(), date(2024, 2, 29));
        for bad in [
            "2023-02-29",
            "2015-07-02T00:00:00",
            "2015/07/02",
            "20150702",
            "",
        ] {
            let err = parse_v1_date(bad).unwrap_err();
            assert!(matches!(err, TimeError::InvalidDate { .. }), "{bad:?}");
            assert!(err.to_string().contains("YYYY-MM-DD"));
        }
    }

    #[test]
    fn a_spring_forward_gap_time_is_shifted_forward_for_both_bounds() {
        // 2024-03-10 02:30 does not exist in Los Angeles: clocks jump 02:00 -> 03:00.
        let s = "2024-03-10 02:30:00";
        let shifted = utc("2024-03-10T10:30:00Z"); // 03:30 PDT
        assert_eq!(parse_v1_datetime(s).unwrap(), shifted);
        assert_eq!(parse_v1_query_bound(s, Bound::Start).unwrap(), shifted);
        assert_eq!(parse_v1_query_bound(s, Bound::End).unwrap(), shifted);
        assert_eq!(format_v1_query(shifted), "2024-03-10 03:30:00");
    }

    #[test]
    fn a_fall_back_repeated_hour_widens_a_query_window() {
        // 2024-11-03 01:30 happens at 08:30Z (PDT) and again at 09:30Z (PST).
        let s = "2024-11-03 01:30:00";
        let start = parse_v1_query_bound(s, Bound::Start).unwrap();
        let end = parse_v1_query_bound(s, Bound::End).unwrap();
        assert_eq!(start, utc("2024-11-03T08:30:00Z"));
        assert_eq!(end, utc("2024-11-03T09:30:00Z"));
        // A record shipped during either 01:30 falls inside the window [start, end].
        for shipped in [utc("2024-11-03T08:30:00Z"), utc("2024-11-03T09:30:00Z")] {
            assert_eq!(format_v1_query(shipped), s);
            assert!(start <= shipped && shipped <= end);
        }
    }

    #[test]
    fn a_single_repeated_hour_time_reads_as_the_earlier_instant() {
        assert_eq!(
            parse_v1_datetime("2024-11-03T01:30:00.0000000").unwrap(),
            utc("2024-11-03T08:30:00Z")
        );
    }

    #[test]
    fn an_explicit_offset_is_honoured_even_inside_the_fold() {
        assert_eq!(
            parse_v1_query_bound("2024-11-03T01:30:00-08:00", Bound::Start).unwrap(),
            utc("2024-11-03T09:30:00Z")
        );
        assert_eq!(
            parse_v1_query_bound("2024-11-03T01:30:00-07:00", Bound::End).unwrap(),
            utc("2024-11-03T08:30:00Z")
        );
    }

    #[test]
    fn unambiguous_times_convert_the_same_for_both_bounds() {
        let dt = date(2024, 7, 15).at(17, 30, 0, 0);
        assert_eq!(from_pacific(dt, Bound::Start), from_pacific(dt, Bound::End));
        assert_eq!(to_pacific(from_pacific(dt, Bound::Start)), dt);
    }

    #[test]
    fn the_edges_of_the_calendar_saturate_instead_of_panicking() {
        assert_eq!(from_pacific(DateTime::MAX, Bound::End), Timestamp::MAX);
        assert_eq!(from_pacific(DateTime::MIN, Bound::Start), Timestamp::MIN);
        assert!(matches!(
            parse_v1_datetime("9999-12-31T23:59:59"),
            Err(TimeError::OutOfRange { .. })
        ));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wire {
        #[serde(rename = "shipDate", with = "serde_v1")]
        ship_date: Timestamp,
        #[serde(rename = "voidDate", default, with = "serde_v1_option")]
        void_date: Option<Timestamp>,
    }

    #[test]
    fn wire_models_carry_v1_strings_both_ways() {
        let w = Wire {
            ship_date: utc("2015-06-29T15:46:27Z"),
            void_date: Some(utc("2015-07-02T07:00:00Z")),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"shipDate":"2015-06-29T08:46:27.0000000","voidDate":"2015-07-02T00:00:00.0000000"}"#
        );
        assert_eq!(serde_json::from_str::<Wire>(&json).unwrap(), w);
        // Every parse form is accepted on the way in; null and absent are None.
        let w: Wire = serde_json::from_str(r#"{"shipDate":"2015-06-29","voidDate":null}"#).unwrap();
        assert_eq!(w.ship_date, utc("2015-06-29T07:00:00Z"));
        assert_eq!(w.void_date, None);
        let w: Wire = serde_json::from_str(r#"{"shipDate":"2015-06-29 08:46:27"}"#).unwrap();
        assert_eq!(w.void_date, None);
        let err = serde_json::from_str::<Wire>(r#"{"shipDate":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
    }

    fn truncate(ts: Timestamp, nanos: i32) -> Timestamp {
        Timestamp::new(ts.as_second(), ts.subsec_nanosecond() / nanos * nanos).unwrap()
    }

    fn in_2000_to_2100() -> impl Strategy<Value = Timestamp> {
        (946_684_800i64..4_102_444_800, 0i32..1_000_000_000)
            .prop_map(|(s, n)| Timestamp::new(s, n).unwrap())
    }

    /// `s` read as both bounds brackets `want`, which is one of the two readings,
    /// and the single reading is the earlier one.
    fn check_round_trip(s: &str, want: Timestamp) -> Result<(), TestCaseError> {
        let start = parse_v1_query_bound(s, Bound::Start).unwrap();
        let end = parse_v1_query_bound(s, Bound::End).unwrap();
        prop_assert!(
            start <= want && want <= end,
            "{s}: {start} <= {want} <= {end}"
        );
        prop_assert!(want == start || want == end);
        prop_assert_eq!(parse_v1_datetime(s).unwrap(), start);
        if start != end {
            // Only in the repeated hour, exactly one hour apart.
            prop_assert_eq!(end.duration_since(start).as_secs(), 3600);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn a_formatted_v1_timestamp_reads_back_to_the_same_100ns(ts in in_2000_to_2100()) {
            let s = format_v1_timestamp(ts);
            check_round_trip(&s, truncate(ts, 100))?;
            if !PACIFIC.to_ambiguous_timestamp(to_pacific(ts)).is_ambiguous() {
                prop_assert_eq!(parse_v1_datetime(&s).unwrap(), truncate(ts, 100));
            }
        }

        #[test]
        fn a_formatted_query_time_reads_back_to_the_same_second(ts in in_2000_to_2100()) {
            check_round_trip(&format_v1_query(ts), truncate(ts, 1_000_000_000))?;
        }

        #[test]
        fn a_millisecond_timestamp_reads_back_to_the_same_millisecond(ts in in_2000_to_2100()) {
            check_round_trip(&format_v1_timestamp_millis(ts), truncate(ts, 1_000_000))?;
        }

        #[test]
        fn times_near_the_2024_transitions_round_trip(offset_s in -7_200i64..7_200, day in prop::sample::select(vec![1_710_064_800i64, 1_730_624_400])) {
            // 2024-03-10T10:00Z and 2024-11-03T09:00Z are the two transition instants.
            let ts = Timestamp::from_second(day + offset_s).unwrap();
            check_round_trip(&format_v1_timestamp(ts), ts)?;
        }
    }
}
