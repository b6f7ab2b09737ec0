//! Label shares: which ERP order each item of one ShipStation label belongs to. A
//! label for orders ShipStation merged carries the lines of several ERP orders; each
//! gets its own share (and so its own shipment record, mapped against its own lines),
//! the survivor's keeping the label's key and its cost. Pure: the shipments flow
//! ([`super::shipments`]) reads the lines and the merged orders, this decides.

use std::collections::{BTreeMap, HashMap};

use shipledger_store::ShipmentLine;

/// One ERP order's share of a label. A label for merged orders carries the lines of
/// several ERP orders: the survivor's share keeps the label's own key
/// (`label:{shipmentId}`), each absorbed order's share is `label:{shipmentId}/{erp_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) key: String,
    pub(crate) erp_id: Option<String>,
    pub(crate) lines: Vec<ShipmentLine>,
    /// The survivor's share: it carries the label's cost, once.
    pub(crate) primary: bool,
}

/// Split a label's `lines` between the order it resolved to (`erp_id`, whose line ids
/// are `own`) and the absorbed orders that `owner` says have the other line ids. An
/// item no order claims (no key, or a key nobody has) stays with the survivor, where
/// it is reported as an unknown line; a label with nothing of the survivor's has no
/// share for it.
pub(crate) fn split(
    key: &str,
    erp_id: Option<String>,
    lines: Vec<ShipmentLine>,
    own: &[String],
    owner: &HashMap<String, String>,
) -> Vec<Share> {
    let foreign = |l: &ShipmentLine| l.line_item_key.as_ref().is_some_and(|k| !own.contains(k));
    let mut primary = Vec::new();
    let mut absorbed: BTreeMap<String, Vec<ShipmentLine>> = BTreeMap::new();
    for line in lines {
        match line.line_item_key.as_ref().filter(|_| foreign(&line)).and_then(|k| owner.get(k)) {
            Some(other) if Some(other) != erp_id.as_ref() => absorbed.entry(other.clone()).or_default().push(line),
            _ => primary.push(line),
        }
    }
    let mut out = if primary.is_empty() && !absorbed.is_empty() {
        Vec::new()
    } else {
        vec![Share { key: key.to_string(), erp_id: erp_id.clone(), lines: primary, primary: true }]
    };
    out.extend(absorbed.into_iter().map(|(other, lines)| Share {
        key: format!("{key}/{other}"),
        erp_id: Some(other),
        lines,
        primary: false,
    }));
    out
}

#[cfg(test)]
mod tests {
    use shipledger_shipstation::v1::model::OrderItem;

    use super::*;
    use crate::flows::shipments::lines_of;

    fn line(key: Option<&str>, quantity: i64) -> ShipmentLine {
        ShipmentLine { line_item_key: key.map(Into::into), sku: None, quantity }
    }

    fn own(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// Line id → the absorbed order that has it.
    fn owners(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(l, o)| (l.to_string(), o.to_string())).collect()
    }

    /// A share as `(key, erp_id, line keys, primary)`.
    type Seen<'a> = (&'a str, Option<&'a str>, Vec<Option<&'a str>>, bool);

    fn summary(shares: &[Share]) -> Vec<Seen<'_>> {
        shares
            .iter()
            .map(|s| (s.key.as_str(), s.erp_id.as_deref(), s.lines.iter().map(|l| l.line_item_key.as_deref()).collect(), s.primary))
            .collect()
    }

    #[test]
    fn a_label_for_one_order_is_one_share_with_the_labels_key_and_cost() {
        let lines = vec![line(Some("L1"), 2), line(Some("L2"), 1)];
        let shares = split("label:7", Some("SO-1".into()), lines.clone(), &own(&["L1", "L2"]), &HashMap::new());
        assert_eq!(shares, [Share { key: "label:7".into(), erp_id: Some("SO-1".into()), lines, primary: true }]);
    }

    #[test]
    fn a_label_for_merged_orders_gives_each_absorbed_order_its_own_lines() {
        let lines = vec![line(Some("L1"), 2), line(Some("M1"), 1), line(Some("N1"), 4), line(Some("M2"), 1)];
        let shares = split(
            "label:7",
            Some("SO-1".into()),
            lines,
            &own(&["L1", "L2"]),
            &owners(&[("M1", "SO-2"), ("M2", "SO-2"), ("N1", "SO-3")]),
        );
        assert_eq!(
            summary(&shares),
            [
                ("label:7", Some("SO-1"), vec![Some("L1")], true),
                ("label:7/SO-2", Some("SO-2"), vec![Some("M1"), Some("M2")], false),
                ("label:7/SO-3", Some("SO-3"), vec![Some("N1")], false),
            ]
        );
        assert_eq!(shares[2].lines[0].quantity, 4, "quantities travel with their line");
    }

    #[test]
    fn a_label_carrying_only_absorbed_lines_has_no_share_for_the_survivor() {
        let shares = split("label:7", Some("SO-1".into()), vec![line(Some("M1"), 1)], &own(&["L1"]), &owners(&[("M1", "SO-2")]));
        assert_eq!(summary(&shares), [("label:7/SO-2", Some("SO-2"), vec![Some("M1")], false)]);
    }

    #[test]
    fn items_no_order_claims_stay_with_the_survivor_to_be_reported_there() {
        let lines = vec![line(Some("L1"), 1), line(Some("Z9"), 1), line(None, 1), line(Some("M1"), 1)];
        let shares = split("label:7", Some("SO-1".into()), lines, &own(&["L1"]), &owners(&[("M1", "SO-2")]));
        assert_eq!(
            summary(&shares),
            [
                ("label:7", Some("SO-1"), vec![Some("L1"), Some("Z9"), None], true),
                ("label:7/SO-2", Some("SO-2"), vec![Some("M1")], false),
            ]
        );
    }

    #[test]
    fn a_line_the_merged_orders_give_back_to_the_survivor_stays_in_its_share() {
        let shares = split("label:7", Some("SO-1".into()), vec![line(Some("L9"), 1)], &own(&["L1"]), &owners(&[("L9", "SO-1")]));
        assert_eq!(summary(&shares), [("label:7", Some("SO-1"), vec![Some("L9")], true)]);
    }

    #[test]
    fn a_label_of_no_known_order_still_gives_absorbed_orders_their_lines_and_keeps_the_rest_orphaned() {
        let lines = vec![line(Some("X1"), 1), line(Some("M1"), 1)];
        let shares = split("label:7", None, lines, &[], &owners(&[("M1", "SO-2")]));
        assert_eq!(
            summary(&shares),
            [("label:7", None, vec![Some("X1")], true), ("label:7/SO-2", Some("SO-2"), vec![Some("M1")], false)]
        );
    }

    #[test]
    fn a_labels_adjustment_items_are_not_shipped_lines() {
        let item = |key: &str, sku: &str, quantity: i64, adjustment: bool| OrderItem {
            line_item_key: Some(key.into()),
            sku: Some(sku.into()),
            name: sku.into(),
            quantity,
            adjustment,
            ..OrderItem::default()
        };
        let lines = lines_of(&[item("L1", "MUG", 2, false), item("D1", "DISCOUNT", 1, true), item("L2", "TEA", 1, false)]);
        assert_eq!(
            lines,
            [
                ShipmentLine { line_item_key: Some("L1".into()), sku: Some("MUG".into()), quantity: 2 },
                ShipmentLine { line_item_key: Some("L2".into()), sku: Some("TEA".into()), quantity: 1 },
            ]
        );
    }
}
