//! The month-end close: a period (a calendar month in the company's time zone), how
//! old an open exception is, and what keeps a period from closing. The engine
//! gathers the figures (`shipledger_engine::close`); the rules of the verdict are here.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::exception::Owner;

/// A calendar month of company dates: `2026-11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    first: Date,
}

/// `--period` was not a month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a period: write the month as YYYY-MM (2026-11)")]
pub struct PeriodError {
    pub text: String,
}

impl Period {
    /// `2026-11`; also `2026-11-01`'s month is not accepted, to keep one spelling.
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError { text: text.to_string() };
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i16 = year.parse().map_err(|_| bad())?;
        let month: i8 = month.parse().map_err(|_| bad())?;
        let first = Date::new(year, month, 1).map_err(|_| bad())?;
        Ok(Period { first })
    }

    /// The period holding the company date `date`.
    pub fn of(date: Date) -> Period {
        Period { first: date.first_of_month() }
    }

    pub fn first_day(&self) -> Date {
        self.first
    }

    pub fn last_day(&self) -> Date {
        self.first.last_of_month()
    }

    pub fn contains(&self, date: Date) -> bool {
        self.first <= date && date <= self.last_day()
    }

    /// The instant it starts: midnight of its first day, company time.
    pub fn start(&self, tz: &TimeZone) -> Timestamp {
        self.first.to_zoned(tz.clone()).map(|z| z.timestamp()).unwrap_or(Timestamp::MIN)
    }

    /// The instant it ends: midnight after its last day, company time.
    pub fn end(&self, tz: &TimeZone) -> Timestamp {
        self.last_day().tomorrow().ok().and_then(|d| d.to_zoned(tz.clone()).ok()).map(|z| z.timestamp()).unwrap_or(Timestamp::MAX)
    }

    /// Whether it has ended at `now`.
    pub fn has_ended(&self, now: Timestamp, tz: &TimeZone) -> bool {
        now >= self.end(tz)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// How long an exception has been open, in the bands a close pack counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgeBand {
    #[serde(rename = "under_1_day")]
    UnderADay,
    #[serde(rename = "1_to_3_days")]
    OneToThreeDays,
    #[serde(rename = "3_to_7_days")]
    ThreeToSevenDays,
    #[serde(rename = "over_7_days")]
    OverAWeek,
}

impl AgeBand {
    pub const ALL: [AgeBand; 4] = [AgeBand::UnderADay, AgeBand::OneToThreeDays, AgeBand::ThreeToSevenDays, AgeBand::OverAWeek];

    pub fn of(age: SignedDuration) -> AgeBand {
        let hours = age.as_hours();
        if hours < 24 {
            AgeBand::UnderADay
        } else if hours < 72 {
            AgeBand::OneToThreeDays
        } else if hours < 168 {
            AgeBand::ThreeToSevenDays
        } else {
            AgeBand::OverAWeek
        }
    }

    /// For people: `< 1 day`, `1-3 days`, `3-7 days`, `> 7 days`.
    pub fn label(self) -> &'static str {
        match self {
            AgeBand::UnderADay => "< 1 day",
            AgeBand::OneToThreeDays => "1-3 days",
            AgeBand::ThreeToSevenDays => "3-7 days",
            AgeBand::OverAWeek => "> 7 days",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            AgeBand::UnderADay => "under_1_day",
            AgeBand::OneToThreeDays => "1_to_3_days",
            AgeBand::ThreeToSevenDays => "3_to_7_days",
            AgeBand::OverAWeek => "over_7_days",
        }
    }
}

/// What a blocker is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockerKind {
    /// The month has not ended: its last days' costs are not all in.
    PeriodNotEnded,
    /// No reconciler run has finished since the period ended, so drift is unknown.
    NotReconciled,
    /// A cost entry of the period waits for an FX rate.
    WaitingForRate,
    /// A cost entry of the period whose window has ended is in no posted journal.
    NotPosted,
    /// A live exception of a kind that [blocks the close](crate::exception::ExceptionKind::blocks_close).
    Exception,
}

/// One thing that keeps the period from closing, with its record and who must act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub kind: BlockerKind,
    /// The exception's kind code for [`BlockerKind::Exception`], else the blocker's own code.
    pub code: String,
    /// `cost_entry:label:8001/postage/0`, `order:SO-7`, `period:2026-11`.
    pub record: String,
    pub owner: Owner,
    pub message: String,
    /// The live exception behind it, when there is one.
    pub exception_id: Option<i64>,
}

impl BlockerKind {
    pub fn code(self) -> &'static str {
        match self {
            BlockerKind::PeriodNotEnded => "period_not_ended",
            BlockerKind::NotReconciled => "not_reconciled",
            BlockerKind::WaitingForRate => "waiting_for_rate",
            BlockerKind::NotPosted => "not_posted",
            BlockerKind::Exception => "exception",
        }
    }
}

/// "ready to close", or how many blockers there are.
pub fn verdict_text(period: Period, blockers: &[Blocker]) -> String {
    match blockers.len() {
        0 => "ready to close".into(),
        1 => format!("{period} is not ready to close: 1 blocker"),
        n => format!("{period} is not ready to close: {n} blockers"),
    }
}

/// Blockers in a stable order: by owner, kind, then record; one per record and code.
pub fn settle_blockers(mut blockers: Vec<Blocker>) -> Vec<Blocker> {
    blockers.sort_by(|a, b| (a.owner, a.kind, &a.code, &a.record).cmp(&(b.owner, b.kind, &b.code, &b.record)));
    blockers.dedup_by(|a, b| a.code == b.code && a.record == b.record);
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_a_month_of_company_dates_ending_at_midnight_company_time() {
        let p = Period::parse("2026-11").unwrap();
        assert_eq!((p.first_day(), p.last_day()), (jiff::civil::date(2026, 11, 1), jiff::civil::date(2026, 11, 30)));
        assert_eq!(p.to_string(), "2026-11");
        let london = TimeZone::get("Europe/London").unwrap();
        let la = TimeZone::get("America/Los_Angeles").unwrap();
        assert_eq!(p.end(&london).to_string(), "2026-12-01T00:00:00Z");
        assert_eq!(p.end(&la).to_string(), "2026-12-01T08:00:00Z");
        assert!(!p.has_ended("2026-12-01T07:59:59Z".parse().unwrap(), &la));
        assert!(p.has_ended("2026-12-01T08:00:00Z".parse().unwrap(), &la));
        for bad in ["2026-13", "2026-1", "26-11", "2026-11-01", "november", ""] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Period::of(jiff::civil::date(2027, 2, 14)).to_string(), "2027-02");
    }

    #[test]
    fn exceptions_age_in_the_close_packs_bands() {
        let h = SignedDuration::from_hours;
        assert_eq!(AgeBand::of(h(23)), AgeBand::UnderADay);
        assert_eq!(AgeBand::of(h(24)), AgeBand::OneToThreeDays);
        assert_eq!(AgeBand::of(h(100)), AgeBand::ThreeToSevenDays);
        assert_eq!(AgeBand::of(h(168)), AgeBand::OverAWeek);
    }

    #[test]
    fn blockers_are_one_per_record_in_owner_order_and_none_is_ready_to_close() {
        let b = |owner, code: &str, record: &str| Blocker { kind: BlockerKind::Exception, code: code.into(), record: record.into(), owner, message: String::new(), exception_id: None };
        let settled = settle_blockers(vec![b(Owner::Finance, "x", "order:2"), b(Owner::Ops, "y", "order:1"), b(Owner::Finance, "x", "order:2")]);
        assert_eq!(settled.iter().map(|b| b.record.as_str()).collect::<Vec<_>>(), vec!["order:1", "order:2"]);
        let p = Period::parse("2026-11").unwrap();
        assert_eq!(verdict_text(p, &[]), "ready to close");
        assert_eq!(verdict_text(p, &settled), "2026-11 is not ready to close: 2 blockers");
    }
}
