//! Line mapping: which ERP order lines a set of ShipStation shipments covers.
//!
//! Each shipment item names its ERP line by `lineItemKey` (set to the ERP line id at
//! push). Quantities add up across every live shipment of the order (split shipping,
//! split child orders and merged orders all resolve to the original ERP order before
//! they get here); a voided label counts for nothing. What does not add up is
//! reported, never guessed: a line shipped more often than ordered, an item naming a
//! line the order does not have. An item without a `lineItemKey` is matched by SKU
//! only when exactly one line of the order carries that SKU.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One ERP order line, as far as shipping cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderedLine {
    pub line_id: String,
    pub sku: Option<String>,
    pub quantity: i64,
    /// Non-physical lines (discounts, services) are never shipped.
    pub physical: bool,
}

/// One item of a shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedItem {
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
}

/// One shipment of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentView {
    pub key: String,
    pub voided: bool,
    pub items: Vec<ShippedItem>,
}

/// A line shipped more often than ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverShipment {
    pub line_id: String,
    pub ordered: i64,
    pub shipped: i64,
}

/// An item that names no line of the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownItem {
    pub shipment: String,
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineMapping {
    /// Live shipped quantity per ERP line id (every physical line present, 0 when
    /// nothing of it shipped).
    pub shipped: BTreeMap<String, i64>,
    /// Per shipment key, its items resolved to ERP lines: `(line_id, quantity)`.
    pub by_shipment: BTreeMap<String, Vec<(String, i64)>>,
    pub over: Vec<OverShipment>,
    pub unknown: Vec<UnknownItem>,
}

impl LineMapping {
    /// Every physical line shipped in full, nothing over, nothing unknown.
    pub fn complete(&self, lines: &[OrderedLine]) -> bool {
        self.over.is_empty()
            && self.unknown.is_empty()
            && lines
                .iter()
                .filter(|l| l.physical && l.quantity > 0)
                .all(|l| self.shipped.get(&l.line_id).copied().unwrap_or(0) >= l.quantity)
    }

    /// Some but not all of the physical quantity shipped.
    pub fn partial(&self, lines: &[OrderedLine]) -> bool {
        self.shipped.values().any(|q| *q > 0) && !self.complete(lines)
    }
}

/// The line of `lines` an item names: by its `lineItemKey`, or without one by SKU
/// when exactly one line carries it. `None` when it names no line (a non-physical
/// line is returned: it is the caller's to refuse).
pub fn line_of<'a>(lines: &'a [OrderedLine], item: &ShippedItem) -> Option<&'a OrderedLine> {
    let by_id: BTreeMap<&str, &OrderedLine> = lines.iter().map(|l| (l.line_id.as_str(), l)).collect();
    resolve(lines, &by_id, item)
}

fn resolve<'a>(lines: &'a [OrderedLine], by_id: &BTreeMap<&str, &'a OrderedLine>, item: &ShippedItem) -> Option<&'a OrderedLine> {
    match &item.line_item_key {
        Some(key) => by_id.get(key.as_str()).copied(),
        None => {
            let mut same_sku = lines.iter().filter(|l| l.sku.is_some() && l.sku == item.sku);
            match (same_sku.next(), same_sku.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

/// Map the items of `shipments` to `lines`.
pub fn map_lines(lines: &[OrderedLine], shipments: &[ShipmentView]) -> LineMapping {
    let mut mapping = LineMapping::default();
    for line in lines.iter().filter(|l| l.physical) {
        mapping.shipped.insert(line.line_id.clone(), 0);
    }
    let by_id: BTreeMap<&str, &OrderedLine> = lines.iter().map(|l| (l.line_id.as_str(), l)).collect();
    for shipment in shipments {
        let mut resolved = Vec::new();
        for item in &shipment.items {
            match resolve(lines, &by_id, item) {
                Some(line) if line.physical => {
                    resolved.push((line.line_id.clone(), item.quantity));
                    if !shipment.voided {
                        *mapping.shipped.entry(line.line_id.clone()).or_insert(0) += item.quantity;
                    }
                }
                _ if shipment.voided => {}
                _ => mapping.unknown.push(UnknownItem {
                    shipment: shipment.key.clone(),
                    line_item_key: item.line_item_key.clone(),
                    sku: item.sku.clone(),
                    quantity: item.quantity,
                }),
            }
        }
        mapping.by_shipment.insert(shipment.key.clone(), resolved);
    }
    for line in lines.iter().filter(|l| l.physical) {
        let shipped = mapping.shipped.get(&line.line_id).copied().unwrap_or(0);
        if shipped > line.quantity {
            mapping.over.push(OverShipment { line_id: line.line_id.clone(), ordered: line.quantity, shipped });
        }
    }
    mapping
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<OrderedLine> {
        vec![
            OrderedLine { line_id: "L1".into(), sku: Some("MUG".into()), quantity: 2, physical: true },
            OrderedLine { line_id: "L2".into(), sku: Some("TEA".into()), quantity: 1, physical: true },
            OrderedLine { line_id: "D1".into(), sku: None, quantity: 1, physical: false },
        ]
    }

    fn item(key: Option<&str>, sku: Option<&str>, quantity: i64) -> ShippedItem {
        ShippedItem { line_item_key: key.map(Into::into), sku: sku.map(Into::into), quantity }
    }

    fn shipment(key: &str, voided: bool, items: Vec<ShippedItem>) -> ShipmentView {
        ShipmentView { key: key.into(), voided, items }
    }

    #[test]
    fn two_parcels_add_up_to_the_whole_order() {
        let s = [
            shipment("a", false, vec![item(Some("L1"), Some("MUG"), 2)]),
            shipment("b", false, vec![item(Some("L2"), Some("TEA"), 1)]),
        ];
        let m = map_lines(&lines(), &s[..1]);
        assert!(m.partial(&lines()) && !m.complete(&lines()));
        let m = map_lines(&lines(), &s);
        assert!(m.complete(&lines()));
        assert_eq!(m.shipped["L1"], 2);
        assert_eq!(m.by_shipment["b"], vec![("L2".to_string(), 1)]);
    }

    #[test]
    fn a_voided_label_counts_for_nothing_and_its_replacement_does() {
        let s = [
            shipment("a", true, vec![item(Some("L1"), None, 2), item(Some("L2"), None, 1)]),
            shipment("b", false, vec![item(Some("L1"), None, 2), item(Some("L2"), None, 1)]),
        ];
        let m = map_lines(&lines(), &s);
        assert!(m.complete(&lines()));
        assert_eq!(m.shipped["L1"], 2);
    }

    #[test]
    fn shipping_a_line_twice_is_an_over_shipment() {
        let s = [
            shipment("a", false, vec![item(Some("L1"), None, 2)]),
            shipment("b", false, vec![item(Some("L1"), None, 1)]),
        ];
        let m = map_lines(&lines(), &s);
        assert_eq!(m.over, vec![OverShipment { line_id: "L1".into(), ordered: 2, shipped: 3 }]);
        assert!(!m.complete(&lines()));
    }

    #[test]
    fn an_item_for_a_line_the_order_lacks_is_unknown_and_sku_matching_needs_one_candidate() {
        let s = [shipment("a", false, vec![item(Some("L9"), Some("X"), 1), item(None, Some("TEA"), 1)])];
        let m = map_lines(&lines(), &s);
        assert_eq!(m.unknown.len(), 1);
        assert_eq!(m.unknown[0].line_item_key.as_deref(), Some("L9"));
        assert_eq!(m.shipped["L2"], 1, "the keyless TEA item matched its only line");
        let mut two_mugs = lines();
        two_mugs.push(OrderedLine { line_id: "L3".into(), sku: Some("MUG".into()), quantity: 1, physical: true });
        let m = map_lines(&two_mugs, &[shipment("a", false, vec![item(None, Some("MUG"), 1)])]);
        assert_eq!(m.unknown.len(), 1, "two MUG lines: no guessing");
    }

    #[test]
    fn nothing_shipped_yet_is_neither_partial_nor_complete_and_lists_every_physical_line_at_zero() {
        let m = map_lines(&lines(), &[]);
        assert!(!m.partial(&lines()) && !m.complete(&lines()));
        assert_eq!(m.shipped, BTreeMap::from([("L1".to_string(), 0), ("L2".to_string(), 0)]), "the discount is never shipped");
    }

    #[test]
    fn one_line_split_over_two_parcels_adds_up_across_them() {
        let first = shipment("a", false, vec![item(Some("L1"), Some("MUG"), 1), item(Some("L2"), Some("TEA"), 1)]);
        let second = shipment("b", false, vec![item(Some("L1"), Some("MUG"), 1)]);
        let m = map_lines(&lines(), std::slice::from_ref(&first));
        assert_eq!(m.shipped["L1"], 1);
        assert!(m.partial(&lines()), "one mug of two is a partial shipment");
        let m = map_lines(&lines(), &[first, second]);
        assert_eq!(m.shipped["L1"], 2);
        assert!(m.complete(&lines()) && !m.partial(&lines()));
        assert_eq!(m.by_shipment["a"], vec![("L1".to_string(), 1), ("L2".to_string(), 1)]);
        assert_eq!(m.by_shipment["b"], vec![("L1".to_string(), 1)]);
    }

    #[test]
    fn a_third_parcel_beyond_the_ordered_quantity_is_an_over_shipment_of_that_line_only() {
        let s = [
            shipment("a", false, vec![item(Some("L1"), None, 1), item(Some("L2"), None, 1)]),
            shipment("b", false, vec![item(Some("L1"), None, 1)]),
            shipment("c", false, vec![item(Some("L1"), None, 1)]),
        ];
        let m = map_lines(&lines(), &s);
        assert_eq!(m.over, vec![OverShipment { line_id: "L1".into(), ordered: 2, shipped: 3 }]);
        assert!(m.unknown.is_empty());
        assert!(!m.complete(&lines()), "an over-shipped order is not complete");
        assert!(m.partial(&lines()));
    }

    #[test]
    fn voiding_a_label_gives_its_quantities_back() {
        let a = shipment("a", false, vec![item(Some("L1"), None, 2)]);
        let b = shipment("b", false, vec![item(Some("L2"), None, 1)]);
        assert!(map_lines(&lines(), &[a.clone(), b.clone()]).complete(&lines()));
        let voided_b = ShipmentView { voided: true, ..b };
        let m = map_lines(&lines(), &[a, voided_b]);
        assert_eq!(m.shipped["L2"], 0, "the tea's only label was voided");
        assert!(m.partial(&lines()) && !m.complete(&lines()));
        assert_eq!(m.by_shipment["b"], vec![("L2".to_string(), 1)], "the voided label still shows what it carried");
    }

    #[test]
    fn a_void_ends_an_over_shipment() {
        let s = [
            shipment("a", false, vec![item(Some("L1"), None, 2)]),
            shipment("b", true, vec![item(Some("L1"), None, 2)]),
            shipment("c", false, vec![item(Some("L2"), None, 1)]),
        ];
        let m = map_lines(&lines(), &s);
        assert!(m.over.is_empty());
        assert!(m.complete(&lines()));
    }

    #[test]
    fn an_item_naming_the_discount_line_is_unknown_since_a_discount_is_never_packed() {
        let s = [shipment("a", false, vec![item(Some("D1"), None, 1)])];
        let m = map_lines(&lines(), &s);
        assert_eq!(
            m.unknown,
            vec![UnknownItem { shipment: "a".into(), line_item_key: Some("D1".into()), sku: None, quantity: 1 }]
        );
        assert!(m.by_shipment["a"].is_empty());
        assert!(!m.shipped.contains_key("D1"));
    }

    #[test]
    fn a_voided_label_with_a_stranger_item_raises_nothing() {
        let s = [shipment("a", true, vec![item(Some("L9"), Some("X"), 1), item(None, Some("NOPE"), 1)])];
        let m = map_lines(&lines(), &s);
        assert!(m.unknown.is_empty(), "{:?}", m.unknown);
    }

    #[test]
    fn a_keyless_item_whose_sku_no_line_has_is_unknown_and_keeps_its_sku() {
        let s = [shipment("a", false, vec![item(None, Some("SPOON"), 3)])];
        let m = map_lines(&lines(), &s);
        assert_eq!(
            m.unknown,
            vec![UnknownItem { shipment: "a".into(), line_item_key: None, sku: Some("SPOON".into()), quantity: 3 }]
        );
    }

    #[test]
    fn a_line_ordered_at_zero_needs_no_parcel_to_be_complete() {
        let mut ordered = lines();
        ordered[1].quantity = 0;
        let m = map_lines(&ordered, &[shipment("a", false, vec![item(Some("L1"), None, 2)])]);
        assert!(m.complete(&ordered));
    }

    #[test]
    fn the_merged_label_items_of_several_orders_count_once_each_against_their_own_lines() {
        // A merged order's label is shared out before mapping: this order's share holds
        // only its own lines, so the survivor's and the absorbed order's quantities
        // never mix. Both shares of one label map cleanly against their own lines.
        let survivor = shipment("label:7", false, vec![item(Some("L1"), None, 2), item(Some("L2"), None, 1)]);
        assert!(map_lines(&lines(), &[survivor]).complete(&lines()));
        let absorbed_lines = vec![OrderedLine { line_id: "M1".into(), sku: Some("MUG".into()), quantity: 1, physical: true }];
        let share = shipment("label:7/SO-2", false, vec![item(Some("M1"), Some("MUG"), 1)]);
        let m = map_lines(&absorbed_lines, &[share]);
        assert!(m.complete(&absorbed_lines));
        assert_eq!(m.by_shipment["label:7/SO-2"], vec![("M1".to_string(), 1)]);
        // Left unshared, the absorbed order's line is reported, not guessed onto a mug line.
        let unshared = shipment("label:7", false, vec![item(Some("L1"), None, 2), item(Some("M1"), Some("MUG"), 1)]);
        let m = map_lines(&lines(), &[unshared]);
        assert_eq!(m.unknown.len(), 1);
        assert_eq!(m.shipped["L1"], 2);
    }
}
