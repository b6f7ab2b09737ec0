//! shipledger-core's one integration-test binary: business stories told through the
//! public API exactly as the other crates reach it.

use rust_decimal::Decimal;
use shipledger_core::time::Timestamp;
use shipledger_core::time::pacific::{self, Bound};
use shipledger_core::{Currency, Money, Rounding, Weight, WeightUnit};

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn a_usd_shipping_cost_is_booked_in_the_gbp_ledger_at_the_days_rate() {
    let cost = Money::parse("7.25", Currency::parse("usd").unwrap(), Rounding::Exact).unwrap();
    let booked = cost
        .convert(dec("0.7893"), Currency::GBP, Rounding::HalfEven)
        .unwrap();
    // 7.25 * 0.7893 = 5.722425 -> 5.72
    assert_eq!(booked.to_string(), "5.72 GBP");
    let reversal = booked.neg();
    assert!(booked.checked_add(&reversal).unwrap().is_zero());
}

#[test]
fn an_order_of_three_one_pound_items_weighs_forty_eight_ounces() {
    let unit = Weight::from_decimal(dec("1"), WeightUnit::parse("pounds").unwrap()).unwrap();
    let line = unit.checked_mul(3).unwrap();
    assert_eq!(line.to_decimal_places(WeightUnit::Ounces, 2), dec("48.00"));
    assert_eq!(WeightUnit::Ounces.as_v1_str(), Some("ounces"));
}

#[test]
fn a_poll_window_over_the_fall_back_night_covers_both_one_thirties() {
    let from = pacific::parse_v1_query_bound("2024-11-03 01:00:00", Bound::Start).unwrap();
    let to = pacific::parse_v1_query_bound("2024-11-03 01:59:59", Bound::End).unwrap();
    let first: Timestamp = "2024-11-03T08:30:00Z".parse().unwrap();
    let second: Timestamp = "2024-11-03T09:30:00Z".parse().unwrap();
    assert!(from <= first && second <= to);
    assert_eq!(to.duration_since(from).as_secs(), 2 * 3600 - 1);
}
