//! The expected cost of a label, from its peers: labels of the same carrier, service,
//! weight band and currency over a rolling window. A label far above its peers (a
//! wrong service picked, a dimensional-weight surprise, a surcharge nobody expected)
//! is named with its reasoning: how many peers, their median, their median absolute
//! deviation (MAD), and its score.
//!
//! The score is the modified z-score of Iglewicz and Hoaglin, `0.6745 × (cost −
//! median) ÷ MAD`, on exact decimals (costs are integer minor units, the medians of
//! an even count are halves). A label scoring above [`THRESHOLD`] (3.5, their
//! recommendation) *and* above the median is flagged. When more than half the peers
//! cost exactly the same, the MAD is zero; it is then taken as one hundredth of the
//! median (at least one minor unit), so a label must still stand well clear of a
//! flat price to be named. A group smaller than [`MIN_PEERS`] judges nothing.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::money::Money;

/// The score above which a label is far above its peers.
pub const THRESHOLD: Decimal = Decimal::from_parts(35, 0, 0, false, 1);
/// The fewest labels (the judged one included) that make a peer group.
pub const MIN_PEERS: usize = 10;
/// 0.6745: the normal distribution's MAD in standard deviations.
const CONSISTENCY: Decimal = Decimal::from_parts(6745, 0, 0, false, 4);

/// One label's cost and what makes its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCost {
    pub shipment_key: String,
    pub carrier: String,
    pub service: Option<String>,
    /// What the parcel weighs, when the ERP lines tell.
    pub weight_mg: Option<i64>,
    pub cost: Money,
}

/// The weight bands peers share: up to 250 g, 500 g, 1 kg, 2 kg, 5 kg, 10 kg,
/// 20 kg, above; `unknown` when the weight is not known.
pub fn weight_band(weight_mg: Option<i64>) -> &'static str {
    const BANDS: [(i64, &str); 7] =
        [(250, "0-250g"), (500, "250-500g"), (1_000, "500g-1kg"), (2_000, "1-2kg"), (5_000, "2-5kg"), (10_000, "5-10kg"), (20_000, "10-20kg")];
    let Some(mg) = weight_mg else { return "unknown" };
    let grams = mg / 1_000;
    BANDS.iter().find(|(limit, _)| grams < *limit).map(|(_, name)| *name).unwrap_or("20kg+")
}

/// A label far above its peers, with the reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outlier {
    pub shipment_key: String,
    pub carrier: String,
    pub service: Option<String>,
    pub weight_band: &'static str,
    pub cost: Money,
    pub peers: usize,
    /// In the currency's major units.
    pub median: Decimal,
    pub mad: Decimal,
    pub score: Decimal,
}

fn median(sorted: &[Decimal]) -> Decimal {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / Decimal::TWO }
}

/// The labels of `labels` far above their peers, in the order given.
pub fn outliers(labels: &[LabelCost]) -> Vec<Outlier> {
    type Group<'a> = (&'a str, Option<&'a str>, &'static str, &'static str);
    let mut groups: BTreeMap<Group<'_>, Vec<&LabelCost>> = BTreeMap::new();
    for l in labels {
        groups.entry((l.carrier.as_str(), l.service.as_deref(), weight_band(l.weight_mg), l.cost.currency().code())).or_default().push(l);
    }
    let mut found: BTreeMap<&str, Outlier> = BTreeMap::new();
    for ((_, _, band, _), members) in groups {
        if members.len() < MIN_PEERS {
            continue;
        }
        let mut costs: Vec<Decimal> = members.iter().map(|l| l.cost.to_decimal()).collect();
        costs.sort();
        let med = median(&costs);
        let mut deviations: Vec<Decimal> = costs.iter().map(|c| (*c - med).abs()).collect();
        deviations.sort();
        let mad = median(&deviations);
        let exponent = members[0].cost.currency().exponent();
        let unit = Decimal::new(1, exponent);
        let scale = if mad.is_zero() { (med.abs() / Decimal::ONE_HUNDRED).max(unit) } else { mad };
        for l in members {
            let cost = l.cost.to_decimal();
            if cost <= med {
                continue;
            }
            let score = (CONSISTENCY * (cost - med) / scale).round_dp(2);
            if score > THRESHOLD {
                found.insert(
                    l.shipment_key.as_str(),
                    Outlier {
                        shipment_key: l.shipment_key.clone(),
                        carrier: l.carrier.clone(),
                        service: l.service.clone(),
                        weight_band: band,
                        cost: l.cost,
                        peers: costs.len(),
                        median: med,
                        mad,
                        score,
                    },
                );
            }
        }
    }
    labels.iter().filter_map(|l| found.remove(l.shipment_key.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn label(n: usize, service: &str, grams: i64, minor: i64) -> LabelCost {
        LabelCost {
            shipment_key: format!("label:{n}"),
            carrier: "ups".into(),
            service: Some(service.into()),
            weight_mg: Some(grams * 1_000),
            cost: Money::from_minor(minor, Currency::USD),
        }
    }

    #[test]
    fn three_labels_at_four_times_their_peers_are_flagged_with_their_reasoning_and_the_hundred_others_are_not() {
        // 100 ground labels of 1-2 kg between 7.60 and 8.59, and three at four times that.
        let mut labels: Vec<LabelCost> = (0..100).map(|n| label(n, "ups_ground", 1_500, 760 + (n as i64 * 37) % 100)).collect();
        for n in 100..103 {
            labels.push(label(n, "ups_ground", 1_500, 3_200));
        }
        let found = outliers(&labels);
        let keys: Vec<&str> = found.iter().map(|o| o.shipment_key.as_str()).collect();
        assert_eq!(keys, vec!["label:100", "label:101", "label:102"]);
        let o = &found[0];
        assert_eq!((o.peers, o.weight_band), (103, "1-2kg"));
        assert!(o.median > Decimal::new(760, 2) && o.median < Decimal::new(860, 2), "{o:?}");
        assert!(o.mad > Decimal::ZERO && o.score > THRESHOLD, "{o:?}");
    }

    #[test]
    fn peers_are_the_same_carrier_service_and_weight_band_and_a_small_group_judges_nothing() {
        // Express costs four times ground: another service, not an outlier.
        let mut labels: Vec<LabelCost> = (0..20).map(|n| label(n, "ups_ground", 800, 800 + n as i64)).collect();
        labels.extend((20..40).map(|n| label(n, "ups_next_day_air", 800, 3_200 + n as i64)));
        // A heavy parcel costs more: another band.
        labels.extend((40..52).map(|n| label(n, "ups_ground", 15_000, 2_900 + n as i64)));
        // Nine labels are no group.
        labels.extend((52..61).map(|n| label(n, "ups_2nd_day", 800, if n == 60 { 9_999 } else { 1_500 })));
        assert!(outliers(&labels).is_empty(), "{:?}", outliers(&labels));
    }

    #[test]
    fn a_flat_price_still_names_a_label_well_above_it_and_not_one_a_cent_above() {
        let mut labels: Vec<LabelCost> = (0..30).map(|n| label(n, "usps_priority", 300, 895)).collect();
        labels.push(label(30, "usps_priority", 300, 896));
        labels.push(label(31, "usps_priority", 300, 1_895));
        let keys: Vec<String> = outliers(&labels).into_iter().map(|o| o.shipment_key).collect();
        assert_eq!(keys, vec!["label:31".to_string()]);
    }

    #[test]
    fn weight_bands() {
        assert_eq!(weight_band(None), "unknown");
        assert_eq!(weight_band(Some(249_999)), "0-250g");
        assert_eq!(weight_band(Some(250_000)), "250-500g");
        assert_eq!(weight_band(Some(25_000_000)), "20kg+");
    }
}
