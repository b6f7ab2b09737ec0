//! Time: UTC instants inside shipledger, and the ShipStation v1 boundary.
//!
//! Inside, every instant is a [`jiff::Timestamp`] (UTC); storage keeps it as `i64`
//! epoch milliseconds ([`serde_millis`]). ShipStation v1 is the odd one out: it
//! speaks US Pacific wall-clock strings with no offset. [`pacific`] owns that
//! boundary (formatting, parsing, the DST gap and fold, serde helpers), and
//! [`TimeError`] says what was wrong with a string that did not parse.

pub mod pacific;

pub use jiff::Timestamp;
pub use pacific::Bound;

/// A time string that could not be read, or an instant out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// Not a ShipStation v1 date-time.
    #[error(
        "could not read {input:?} as a ShipStation v1 time ({reason}); expected \"YYYY-MM-DDTHH:MM:SS\" with up to 7 fractional digits (\"2015-06-29T08:46:27.0000000\"), \"YYYY-MM-DD HH:MM:SS\" or \"YYYY-MM-DD\", in US Pacific wall-clock time, optionally followed by \"Z\" or an offset such as \"-07:00\""
    )]
    InvalidDateTime {
        /// The text as given.
        input: String,
        /// What in particular did not fit.
        reason: String,
    },
    /// Not a ShipStation v1 date.
    #[error(
        "could not read {input:?} as a date ({reason}); expected \"YYYY-MM-DD\", e.g. \"2015-07-02\""
    )]
    InvalidDate {
        /// The text as given.
        input: String,
        /// What in particular did not fit.
        reason: String,
    },
    /// A well-formed time beyond the range of a `Timestamp`.
    #[error(
        "{input:?} is outside the supported range of instants (about years -9999 to 9999); check the source record"
    )]
    OutOfRange {
        /// The text as given.
        input: String,
    },
    /// Epoch milliseconds beyond the range of a `Timestamp`.
    #[error(
        "{millis} epoch milliseconds is outside the supported range of instants (about years -9999 to 9999); the stored value is corrupt"
    )]
    MillisOutOfRange {
        /// The stored value.
        millis: i64,
    },
}

/// Serde helper: a [`Timestamp`] as `i64` milliseconds since the Unix epoch, for
/// storage. Sub-millisecond precision is truncated toward zero on serialise.
///
/// ```
/// use jiff::Timestamp;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Row {
///     #[serde(with = "shipledger_core::time::serde_millis")]
///     at: Timestamp,
/// }
///
/// let row = Row { at: "2015-06-29T15:46:27.123Z".parse().unwrap() };
/// assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"at":1435592787123}"#);
/// ```
pub mod serde_millis {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::TimeError;

    /// Reads epoch milliseconds into a [`Timestamp`].
    pub fn from_millis(millis: i64) -> Result<Timestamp, TimeError> {
        Timestamp::from_millisecond(millis).map_err(|_| TimeError::MillisOutOfRange { millis })
    }

    /// Serialises as `i64` epoch milliseconds.
    pub fn serialize<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(ts.as_millisecond())
    }

    /// Deserialises from `i64` epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let millis = i64::deserialize(d)?;
        from_millis(millis).map_err(serde::de::Error::custom)
    }
}

/// Serde helper: an `Option<Timestamp>` as nullable `i64` epoch milliseconds. Add
/// `#[serde(default)]` to also accept a missing field as `None`.
pub mod serde_millis_option {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises `None` as null, `Some` as epoch milliseconds.
    pub fn serialize<S: Serializer>(ts: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(ts) => s.serialize_some(&ts.as_millisecond()),
            None => s.serialize_none(),
        }
    }

    /// Deserialises null as `None`, a number as epoch milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|ms| super::serde_millis::from_millis(ms).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        #[serde(with = "serde_millis")]
        at: Timestamp,
        #[serde(default, with = "serde_millis_option")]
        done: Option<Timestamp>,
    }

    #[test]
    fn instants_are_stored_as_epoch_milliseconds() {
        let at: Timestamp = "2015-06-29T15:46:27.123Z".parse().unwrap();
        let row = Row { at, done: None };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"at":1435592787123,"done":null}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row);
        let missing: Row = serde_json::from_str(r#"{"at":0}"#).unwrap();
        assert_eq!(missing.done, None);
        let done: Row = serde_json::from_str(r#"{"at":0,"done":1000}"#).unwrap();
        assert_eq!(done.done, Some(Timestamp::from_second(1).unwrap()));
    }

    #[test]
    fn corrupt_stored_milliseconds_are_an_error() {
        assert!(matches!(
            serde_millis::from_millis(i64::MAX),
            Err(TimeError::MillisOutOfRange { .. })
        ));
        assert!(serde_json::from_str::<Row>(&format!(r#"{{"at":{}}}"#, i64::MAX)).is_err());
    }
}
