//! Shipping margin: what the customer paid for shipping against what shipping the
//! order cost (every cost entry of its labels, the carrier invoice's adjustments
//! included), compared in one currency. An order that charged nothing for shipping
//! is free shipping: its cost is reported, never raised. An order that charged
//! shipping and cost more to ship than it charged, by more than the variance policy,
//! is undercharged ([`undercharged`]).

use serde::{Deserialize, Serialize};

use crate::invoice::{Variance, variance};
use crate::{Currency, Money};

/// One cost entry of an order's labels, as the margin needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLine {
    /// In the entry's own currency.
    pub original: Money,
    /// In the ERP's base currency, once converted.
    pub base: Option<Money>,
    /// An adjustment to what the carrier invoiced (not the label's own cost).
    pub invoiced: bool,
}

/// An order's shipping charged against its shipping cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Margin {
    pub erp_id: String,
    /// What the order charged for shipping (`None` or zero: free shipping).
    pub charged: Option<Money>,
    /// The charge in the currency the cost is compared in (the base currency when the
    /// charge was converted at a rate the ledger holds).
    pub charged_compared: Option<Money>,
    pub free_shipping: bool,
    /// The labels' cost with the invoice's adjustments, in the compared currency
    /// (`None`: not comparable, see `note`).
    pub cost: Option<Money>,
    /// The part of `cost` that came from carrier invoices.
    pub invoiced: Option<Money>,
    /// `charged − cost` (a free-shipping order's is the cost, negated).
    pub margin: Option<Money>,
    /// Why the cost could not be put in the charge's currency.
    pub note: Option<String>,
}

/// The margin of one order: `charged` is its shipping line (`ErpOrder::shipping_paid`),
/// `charged_in_base` the same converted to the base currency when the caller has a
/// rate for it, `costs` every entry of its labels. The cost is compared in the
/// charge's currency when the entries are all in it; else in the base currency when
/// every entry is converted and the charge is in the base or was converted. A
/// free-shipping order is compared in its entries' one currency, else in the base.
pub fn of(erp_id: &str, charged: Option<Money>, charged_in_base: Option<Money>, costs: &[CostLine]) -> Margin {
    let free_shipping = charged.is_none_or(|c| c.is_zero());
    let mut margin = Margin { erp_id: erp_id.to_string(), charged, charged_compared: None, free_shipping, cost: None, invoiced: None, margin: None, note: None };
    let own: Option<Currency> = costs.first().map(|c| c.original.currency()).filter(|cur| costs.iter().all(|c| c.original.currency() == *cur));
    let base: Option<Currency> = match costs.iter().map(|c| c.base.map(|b| b.currency())).collect::<Option<Vec<_>>>() {
        Some(all) if !all.is_empty() && all.iter().all(|c| *c == all[0]) => Some(all[0]),
        _ => None,
    };
    let paid = charged.filter(|c| !c.is_zero());
    // The currency compared in, and the charge in it.
    let (target, charge) = match paid {
        Some(c) if own == Some(c.currency()) || base == Some(c.currency()) => (c.currency(), c),
        Some(c) => match (base, charged_in_base) {
            (Some(b), Some(cb)) if cb.currency() == b => (b, cb),
            _ => {
                margin.note = Some(match base {
                    None => format!("shipping is charged in {}, and its labels' costs are not all converted yet", c.currency()),
                    Some(b) => format!("shipping is charged in {}, its labels cost in {b} once converted, and no {} rate is known to compare them", c.currency(), c.currency()),
                });
                return margin;
            }
        },
        None => match own.or(base) {
            Some(t) => (t, Money::zero(t)),
            None => {
                margin.note = Some(if costs.is_empty() { "no cost entries".into() } else { "its labels cost in several currencies, not all converted yet".into() });
                return margin;
            }
        },
    };
    let in_own = own == Some(target);
    let mut cost = Money::zero(target);
    let mut invoiced = Money::zero(target);
    for c in costs {
        let Some(amount) = (if in_own { Some(c.original) } else { c.base }) else {
            margin.note = Some("its labels' costs are not all converted yet".into());
            return margin;
        };
        let (Ok(sum), Ok(inv)) = (cost.checked_add(&amount), if c.invoiced { invoiced.checked_add(&amount) } else { Ok(invoiced) }) else {
            margin.note = Some("the cost overflows".into());
            return margin;
        };
        cost = sum;
        invoiced = inv;
    }
    margin.margin = charge.checked_sub(&cost).ok();
    margin.charged_compared = Some(charge);
    margin.cost = Some(cost);
    margin.invoiced = Some(invoiced);
    margin
}

/// An order that charged shipping and cost more to ship than it charged, by at least
/// `floor_minor` and more than `percent` % of the charge ([`variance`] with the charge
/// as the base). Free shipping is never undercharged.
pub fn undercharged(m: &Margin, percent: u32, floor_minor: i64) -> Option<Variance> {
    if m.free_shipping {
        return None;
    }
    let (charged, cost) = (m.charged_compared?, m.cost?);
    if cost.currency() != charged.currency() || cost.minor() <= charged.minor() {
        return None;
    }
    variance(charged, cost, percent, floor_minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbp(minor: i64) -> Money {
        Money::from_minor(minor, Currency::GBP)
    }

    fn usd(minor: i64) -> Money {
        Money::from_minor(minor, Currency::USD)
    }

    fn line(original: Money, base: Option<Money>, invoiced: bool) -> CostLine {
        CostLine { original, base, invoiced }
    }

    #[test]
    fn an_order_charging_4_95_for_a_label_of_3_20_and_a_surcharge_of_0_80_keeps_0_95() {
        let m = of("SO-1", Some(gbp(495)), None, &[line(gbp(320), None, false), line(gbp(80), None, true)]);
        assert_eq!((m.cost, m.invoiced, m.margin), (Some(gbp(400)), Some(gbp(80)), Some(gbp(95))));
        assert!(!m.free_shipping);
        assert_eq!(undercharged(&m, 10, 100), None);
    }

    #[test]
    fn usd_labels_are_compared_in_the_base_currency_once_converted_and_not_before() {
        let converted = of("SO-2", Some(gbp(395)), None, &[line(usd(900), Some(gbp(713)), false)]);
        assert_eq!(converted.margin, Some(gbp(-318)));
        let v = undercharged(&converted, 10, 100).expect("7.13 against 3.95 charged");
        assert_eq!(v.difference, gbp(318));
        let waiting = of("SO-2", Some(gbp(395)), None, &[line(usd(900), None, false)]);
        assert_eq!((waiting.cost, waiting.margin), (None, None));
        assert!(waiting.note.unwrap().contains("not all converted yet"));
        assert_eq!(undercharged(&of("SO-2", Some(gbp(395)), None, &[line(usd(900), None, false)]), 10, 100), None);
    }

    #[test]
    fn a_charge_in_another_currency_is_compared_in_the_base_once_the_caller_converts_it() {
        let costs = [line(usd(500), Some(gbp(394)), false), line(Money::from_minor(300, Currency::EUR), Some(gbp(263)), true)];
        let unknown = of("SO-5", Some(usd(695)), None, &costs);
        assert_eq!(unknown.margin, None);
        assert!(unknown.note.unwrap().contains("no USD rate"));
        let m = of("SO-5", Some(usd(695)), Some(gbp(548)), &costs);
        assert_eq!((m.charged_compared, m.cost, m.invoiced, m.margin), (Some(gbp(548)), Some(gbp(657)), Some(gbp(263)), Some(gbp(-109))));
        assert_eq!(m.charged, Some(usd(695)), "the charge as the order has it stays");
        assert_eq!(undercharged(&m, 10, 100).map(|v| v.difference), Some(gbp(109)));
    }

    #[test]
    fn free_shipping_is_reported_with_its_cost_and_never_undercharged() {
        for charged in [None, Some(gbp(0))] {
            let m = of("SO-3", charged, None, &[line(gbp(1_250), None, false)]);
            assert!(m.free_shipping);
            assert_eq!((m.cost, m.margin), (Some(gbp(1_250)), Some(gbp(-1_250))));
            assert_eq!(undercharged(&m, 10, 100), None);
        }
    }

    #[test]
    fn a_small_loss_within_the_policy_is_not_raised() {
        // 4.95 charged, 5.20 cost: 0.25 is under the 1.00 floor.
        let m = of("SO-4", Some(gbp(495)), None, &[line(gbp(520), None, false)]);
        assert_eq!(m.margin, Some(gbp(-25)));
        assert_eq!(undercharged(&m, 10, 100), None);
        // 2.00 over: past the floor, and 40 % of the charge.
        let m = of("SO-4", Some(gbp(495)), None, &[line(gbp(695), None, false)]);
        assert_eq!(undercharged(&m, 10, 100).map(|v| v.difference), Some(gbp(200)));
    }
}
