//! The reconciliation diff: one order's view from the ERP, from our ledger and from
//! ShipStation, compared, and every disagreement named as a [`Finding`] with the
//! exception kind (and so the owner) it becomes. Pure: the engine's runner reads the
//! three sides in pages, sorted by the ShipStation `orderKey` (a split child under its
//! parent's key), merges them (keys compared as bytes, as SQLite's `BINARY` and
//! PostgreSQL's `COLLATE "C"` sort them) and calls [`diff`] once per key, so a run
//! holds one order's records at a time however large the account.
//!
//! What each side says is reduced to what the rules need ([`ErpSide`], [`LedgerSide`],
//! [`SsOrderView`], [`SsShipmentView`]); the rules are in [`diff`], each with the
//! grace a flow is allowed before its missing effect counts as drift
//! ([`DiffPolicy::grace`]): a label made a minute ago whose ERP write-back is still in
//! the outbox is not a finding.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::exception::ExceptionKind;
use crate::order::ErpOrderStatus;

/// One ERP fulfilment as the reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfilmentView {
    pub id: String,
    /// Packed or completed (not cancelled).
    pub live: bool,
    /// Completed: the ERP says the goods left.
    pub completed: bool,
    pub tracking: Vec<String>,
    /// `(line_id, quantity)`.
    pub lines: Vec<(String, u32)>,
    #[serde(with = "crate::time::serde_millis")]
    pub updated_at: Timestamp,
}

/// The ERP's side of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErpSide {
    pub erp_id: String,
    pub number: String,
    pub status: ErpOrderStatus,
    /// Payment captured (the release gate's rule).
    pub paid: bool,
    /// Physical lines and their quantities: what ShipStation has to ship.
    pub lines: BTreeMap<String, u32>,
    #[serde(with = "crate::time::serde_millis")]
    pub placed_at: Timestamp,
    #[serde(with = "crate::time::serde_millis")]
    pub updated_at: Timestamp,
    pub fulfilments: Vec<FulfilmentView>,
    /// Quantities invoiced per line (posted customer invoices); `None` when the
    /// connector does not report invoicing, so no invoice rule runs.
    pub invoiced: Option<BTreeMap<String, u32>>,
}

/// What our ledger records of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerSide {
    pub erp_id: String,
    pub number: String,
    /// The ledger's order state (`held`, `released`, `pushed`, `shipped`, `cancelled`, ...).
    pub state: String,
    pub ss_order_id: Option<i64>,
    #[serde(default, with = "crate::time::serde_millis_option")]
    pub pushed_at: Option<Timestamp>,
}

/// One ShipStation order in the connection's stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsOrderView {
    pub ss_order_id: i64,
    pub order_key: Option<String>,
    pub order_number: String,
    pub store_id: Option<i64>,
    /// `awaiting_payment`, `awaiting_shipment`, `pending_fulfillment`, `shipped`,
    /// `on_hold`, `cancelled`; `merged` for an order merged into another.
    pub status: String,
    /// The split parent, for a split child.
    pub parent_id: Option<i64>,
    /// The order this one was merged into.
    pub merged_into: Option<i64>,
    #[serde(default, with = "crate::time::serde_millis_option")]
    pub created_at: Option<Timestamp>,
    #[serde(default, with = "crate::time::serde_millis_option")]
    pub ship_by: Option<Timestamp>,
}

impl SsOrderView {
    /// Still to be shipped in ShipStation.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "awaiting_payment" | "awaiting_shipment" | "pending_fulfillment")
    }
}

/// One ShipStation label (v1 shipment) of an order in the connection's stores, or
/// one fulfillment (an order marked shipped elsewhere, with its tracking: `/fulfillments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsShipmentView {
    /// The label's `shipmentId`; a fulfillment's `fulfillmentId`, negated, so the two
    /// never share an id in one copy.
    pub shipment_id: i64,
    pub ss_order_id: i64,
    pub tracking_number: Option<String>,
    pub carrier: String,
    pub voided: bool,
    #[serde(default, with = "crate::time::serde_millis_option")]
    pub created_at: Option<Timestamp>,
    #[serde(default, with = "crate::time::serde_millis_option")]
    pub voided_at: Option<Timestamp>,
    /// A fulfillment rather than a label: the order shipped on this tracking number
    /// without a ShipStation label.
    #[serde(default)]
    pub fulfillment: bool,
}

/// Everything known of one `orderKey`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key the sides were merged on (our `orderKey`, or `ss:{orderId}` for a
    /// ShipStation order without one).
    pub key: String,
    pub erp: Option<ErpSide>,
    pub ledger: Option<LedgerSide>,
    /// The order and its split children (and orders merged into it).
    pub ss_orders: Vec<SsOrderView>,
    pub ss_shipments: Vec<SsShipmentView>,
    /// For a ShipStation order nobody released: the ledger's order with the same
    /// order number, when there is one (a copy of ours, typed in or imported again).
    pub same_number: Option<LedgerSide>,
}

/// The rules' thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffPolicy {
    pub now: Timestamp,
    /// How long a flow may take to carry a change across (push, write-back, void
    /// reversal, hold) before its absence is drift.
    pub grace: SignedDuration,
    /// How long a fulfilment may wait for its invoice.
    pub invoice_grace: SignedDuration,
    /// `policy.awaiting_shipment_after`.
    pub awaiting_after: SignedDuration,
}

/// One disagreement: the exception it opens or refreshes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: ExceptionKind,
    /// `order`, `shipstation_order`, `shipment`, `cost_entry`.
    pub record_type: String,
    pub record_id: String,
    /// The exception's detail: `message` in words, and the figures.
    pub detail: Value,
}

impl Finding {
    fn new(kind: ExceptionKind, record_type: &str, record_id: impl Into<String>, message: String, mut facts: Value) -> Finding {
        if let Value::Object(map) = &mut facts {
            map.insert("message".into(), Value::String(message));
            map.insert("found_by".into(), Value::String("reconciler".into()));
        }
        Finding { kind, record_type: record_type.to_string(), record_id: record_id.into(), detail: facts }
    }
}

/// The kinds only the reconciler raises, so a run closes every live one it did not
/// find again. (It also raises `orphan_shipment` and `awaiting_shipment_too_long`,
/// which flows raise and close too; it refreshes those and leaves closing them to
/// their flows.)
pub const RECONCILER_KINDS: &[ExceptionKind] = &[
    ExceptionKind::PaidNotInShipStation,
    ExceptionKind::UnknownShipStationOrder,
    ExceptionKind::DuplicateShipStationOrder,
    ExceptionKind::StatusMismatch,
    ExceptionKind::ShippedNotFulfilled,
    ExceptionKind::FulfilledWithoutLabel,
    ExceptionKind::TrackingMismatch,
    ExceptionKind::VoidedAfterFulfilled,
    ExceptionKind::PastShipByDate,
    ExceptionKind::CarrierException,
    ExceptionKind::ShippedNotInvoiced,
    ExceptionKind::InvoicedNotShipped,
    ExceptionKind::CostEntryUnposted,
    ExceptionKind::LabelCostOutlier,
    ExceptionKind::ShippingUndercharged,
];

fn older(policy: &DiffPolicy, at: Option<Timestamp>, by: SignedDuration) -> bool {
    at.is_some_and(|at| policy.now.duration_since(at) >= by)
}

/// The findings of one key. Split children and merged orders are the order's own;
/// a ShipStation order nobody released is named once, with its labels as orphans.
pub fn diff(r: &Record, policy: &DiffPolicy) -> Vec<Finding> {
    let mut out = Vec::new();
    let roots: Vec<&SsOrderView> = r.ss_orders.iter().filter(|o| o.parent_id.is_none() && o.merged_into.is_none()).collect();
    let merged_away = r.ss_orders.iter().any(|o| o.merged_into.is_some());
    let live_labels: Vec<&SsShipmentView> = r.ss_shipments.iter().filter(|s| !s.voided).collect();
    let live_tracking: BTreeSet<&str> = live_labels.iter().filter_map(|s| s.tracking_number.as_deref()).collect();
    let voided_tracking: BTreeSet<&str> =
        r.ss_shipments.iter().filter(|s| s.voided).filter_map(|s| s.tracking_number.as_deref()).filter(|t| !live_tracking.contains(t)).collect();

    // Nobody released it: not ours.
    let Some(ledger) = &r.ledger else {
        if let (None, Some(ours)) = (&r.erp, &r.same_number) {
            let copies: Vec<&&SsOrderView> = roots.iter().filter(|o| o.status != "cancelled").collect();
            if !copies.is_empty() {
                out.push(Finding::new(
                    ExceptionKind::DuplicateShipStationOrder,
                    "order",
                    ours.erp_id.clone(),
                    format!(
                        "order {} is in ShipStation again as order id {} (orderKey {}), besides ours ({}); cancel the copy in ShipStation before the warehouse ships it twice",
                        ours.number,
                        copies.iter().map(|o| o.ss_order_id.to_string()).collect::<Vec<_>>().join(", "),
                        copies[0].order_key.clone().unwrap_or_default(),
                        ours.ss_order_id.map(|i| i.to_string()).unwrap_or_else(|| "none recorded".into())
                    ),
                    json!({"ss_order_ids": copies.iter().map(|o| o.ss_order_id).collect::<Vec<_>>(), "ours": ours.ss_order_id}),
                ));
            }
        } else if r.erp.is_none() {
            for o in roots.iter().filter(|o| o.status != "cancelled") {
                out.push(Finding::new(
                    ExceptionKind::UnknownShipStationOrder,
                    "shipstation_order",
                    o.ss_order_id.to_string(),
                    format!(
                        "ShipStation order #{} (id {}, store {}) is in this connection's store but was never released by shipledger: created by hand or by another integration; cancel it in ShipStation, or create it in the ERP and cancel this copy",
                        o.order_number,
                        o.ss_order_id,
                        o.store_id.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
                    ),
                    json!({"ss_order_id": o.ss_order_id, "order_number": o.order_number, "order_key": o.order_key, "status": o.status}),
                ));
            }
            // A fulfillment is read for the whole account (ShipStation cannot filter
            // them by store): without its order in our stores it is not ours to judge.
            for s in live_labels.iter().filter(|s| !s.fulfillment || !roots.is_empty()) {
                out.push(Finding::new(
                    ExceptionKind::OrphanShipment,
                    "shipment",
                    format!("label:{}", s.shipment_id),
                    format!(
                        "{} label {} (ShipStation order {}) belongs to no order shipledger released; check whether it was created in ShipStation by hand",
                        s.carrier,
                        s.tracking_number.clone().unwrap_or_default(),
                        s.ss_order_id
                    ),
                    json!({"shipment_id": s.shipment_id, "ss_order_id": s.ss_order_id, "tracking_number": s.tracking_number}),
                ));
            }
        } else if let Some(erp) = &r.erp {
            paid_not_pushed(erp, None, &r.ss_orders, policy, &mut out);
        }
        return out;
    };
    let erp_id = ledger.erp_id.as_str();

    // More than one live ShipStation order for one ERP order.
    let distinct: Vec<&&SsOrderView> = roots.iter().filter(|o| o.status != "cancelled").collect();
    if distinct.len() > 1 {
        let ids: Vec<i64> = distinct.iter().map(|o| o.ss_order_id).collect();
        out.push(Finding::new(
            ExceptionKind::DuplicateShipStationOrder,
            "order",
            erp_id,
            format!(
                "order {} is in ShipStation {} times (order ids {}): one is ours ({}); cancel the others in ShipStation before the warehouse ships it twice",
                ledger.number,
                ids.len(),
                ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                ledger.ss_order_id.map(|i| i.to_string()).unwrap_or_else(|| "none recorded".into())
            ),
            json!({"ss_order_ids": ids, "ours": ledger.ss_order_id}),
        ));
    }

    let Some(erp) = &r.erp else { return out };

    paid_not_pushed(erp, Some(ledger), &r.ss_orders, policy, &mut out);

    // Status: cancelled or held on one side, live on the other.
    let settled = older(policy, Some(erp.updated_at), policy.grace);
    if let Some(ss) = roots.iter().find(|o| Some(o.ss_order_id) == ledger.ss_order_id).or(roots.first()) {
        let mismatch = match (erp.status, ss.status.as_str()) {
            (ErpOrderStatus::Cancelled, s) if ss.is_live() || s == "on_hold" => Some(format!("cancelled in the ERP but {s} in ShipStation")),
            (ErpOrderStatus::OnHold, _) if ss.is_live() => Some(format!("on hold in the ERP but {} in ShipStation", ss.status)),
            (ErpOrderStatus::Open, "cancelled") if erp.fulfilments.iter().all(|f| !f.live) => {
                Some("open in the ERP but cancelled in ShipStation".to_string())
            }
            (ErpOrderStatus::Open, "on_hold") => Some("open in the ERP but on hold in ShipStation".to_string()),
            _ => None,
        };
        if let (Some(what), true) = (mismatch, settled) {
            out.push(Finding::new(
                ExceptionKind::StatusMismatch,
                "order",
                erp_id,
                format!("order {} is {what} (order #{}); decide which is right and change the other", erp.number, ss.order_number),
                json!({"erp_status": erp.status, "shipstation_status": ss.status, "ss_order_id": ss.ss_order_id}),
            ));
        }
        // Past its ship-by date, or waiting too long for a label.
        if ss.status == "awaiting_shipment" && live_labels.is_empty() {
            if let Some(by) = ss.ship_by.filter(|by| *by < policy.now) {
                out.push(Finding::new(
                    ExceptionKind::PastShipByDate,
                    "order",
                    erp_id,
                    format!("order {} (ShipStation #{}) was to ship by {by} and has no label yet", erp.number, ss.order_number),
                    json!({"ship_by": by.to_string(), "ss_order_id": ss.ss_order_id}),
                ));
            }
            if older(policy, ledger.pushed_at.or(ss.created_at), policy.awaiting_after) {
                out.push(Finding::new(
                    ExceptionKind::AwaitingShipmentTooLong,
                    "order",
                    erp_id,
                    format!("order {} has waited in ShipStation (order #{}) for a label since {}", erp.number, ss.order_number, ledger.pushed_at.or(ss.created_at).map(|t| t.to_string()).unwrap_or_default()),
                    json!({"ss_order_id": ss.ss_order_id}),
                ));
            }
        }
    }

    // Labels against the ERP's fulfilments. An order merged into another ships on
    // the survivor's labels, which are the survivor's key's: not judged here.
    if !merged_away {
        let live_fulfilments: Vec<&FulfilmentView> = erp.fulfilments.iter().filter(|f| f.live).collect();
        let erp_tracking: BTreeSet<&str> = live_fulfilments.iter().flat_map(|f| f.tracking.iter().map(String::as_str)).collect();
        let unwritten: Vec<&&SsShipmentView> = live_labels
            .iter()
            .filter(|s| older(policy, s.created_at, policy.grace))
            .filter(|s| s.tracking_number.as_deref().is_none_or(|t| !erp_tracking.contains(t)))
            .collect();
        if !unwritten.is_empty() && live_fulfilments.is_empty() {
            out.push(Finding::new(
                ExceptionKind::ShippedNotFulfilled,
                "order",
                erp_id,
                format!(
                    "order {} has {} live label(s) in ShipStation ({}) but no fulfilment in the ERP: stock is not decremented; retry its write-back or record the fulfilment in the ERP",
                    erp.number,
                    unwritten.len(),
                    tracking_list(unwritten.iter().map(|s| s.tracking_number.as_deref()))
                ),
                json!({"labels": unwritten.iter().map(|s| json!({"shipment_id": s.shipment_id, "tracking_number": s.tracking_number})).collect::<Vec<_>>()}),
            ));
        } else if !unwritten.is_empty() {
            out.push(Finding::new(
                ExceptionKind::TrackingMismatch,
                "order",
                erp_id,
                format!(
                    "order {}: ShipStation's label tracking {} is on no ERP fulfilment (the ERP's carry {}); support cannot find these parcels from the ERP",
                    erp.number,
                    tracking_list(unwritten.iter().map(|s| s.tracking_number.as_deref())),
                    tracking_list(erp_tracking.iter().map(|t| Some(*t)))
                ),
                json!({
                    "shipstation": unwritten.iter().map(|s| s.tracking_number.clone()).collect::<Vec<_>>(),
                    "erp": erp_tracking.iter().collect::<Vec<_>>(),
                }),
            ));
        } else if live_labels.is_empty()
            && live_fulfilments.is_empty()
            && roots.iter().any(|o| o.status == "shipped")
            && settled
        {
            out.push(Finding::new(
                ExceptionKind::ShippedNotFulfilled,
                "order",
                erp_id,
                format!("order {} is marked shipped in ShipStation but has no fulfilment in the ERP; record it in the ERP", erp.number),
                json!({"labels": []}),
            ));
        }
        for f in &live_fulfilments {
            let voided: Vec<&str> = f.tracking.iter().map(String::as_str).filter(|t| voided_tracking.contains(t)).collect();
            let live: Vec<&str> = f.tracking.iter().map(String::as_str).filter(|t| live_tracking.contains(t)).collect();
            let void_settled = r
                .ss_shipments
                .iter()
                .filter(|s| s.voided && s.tracking_number.as_deref().is_some_and(|t| voided.contains(&t)))
                .all(|s| older(policy, s.voided_at, policy.grace));
            if !voided.is_empty() && live.is_empty() {
                if void_settled {
                    out.push(Finding::new(
                        ExceptionKind::VoidedAfterFulfilled,
                        "order",
                        erp_id,
                        format!(
                            "order {}: ERP fulfilment {} is {} with tracking {}, whose label was voided in ShipStation; cancel the fulfilment in the ERP (and return the stock) or make a new label",
                            erp.number,
                            f.id,
                            if f.completed { "completed" } else { "packed" },
                            voided.join(", ")
                        ),
                        json!({"fulfilment": f.id, "voided_tracking": voided}),
                    ));
                }
            } else if live.is_empty()
                && (!f.tracking.is_empty() || (live_labels.is_empty() && !roots.iter().any(|o| o.status == "shipped")))
                && older(policy, Some(f.updated_at), policy.grace)
            {
                out.push(Finding::new(
                    ExceptionKind::FulfilledWithoutLabel,
                    "order",
                    erp_id,
                    format!(
                        "order {}: ERP fulfilment {} ({}) has no live ShipStation label{}; check what left the warehouse",
                        erp.number,
                        f.id,
                        if f.completed { "completed" } else { "packed" },
                        if f.tracking.is_empty() { String::new() } else { format!(" with tracking {}", f.tracking.join(", ")) }
                    ),
                    json!({"fulfilment": f.id, "tracking": f.tracking}),
                ));
            }
        }
    }

    invoicing(erp, &roots, policy, &mut out);
    out
}

fn tracking_list<'a>(numbers: impl Iterator<Item = Option<&'a str>>) -> String {
    let list: Vec<&str> = numbers.map(|t| t.unwrap_or("(no tracking)")).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

/// A paid, open ERP order with something to ship that never reached ShipStation,
/// while the gate did not hold it.
fn paid_not_pushed(erp: &ErpSide, ledger: Option<&LedgerSide>, ss: &[SsOrderView], policy: &DiffPolicy, out: &mut Vec<Finding>) {
    let judged = ledger.is_none_or(|l| matches!(l.state.as_str(), "received" | "released" | "pushed"));
    if erp.status != ErpOrderStatus::Open
        || !erp.paid
        || erp.lines.is_empty()
        || !judged
        || !ss.is_empty()
        || erp.fulfilments.iter().any(|f| f.live)
        || !older(policy, Some(erp.updated_at), policy.grace)
    {
        return;
    }
    let why = match ledger {
        None => "shipledger never received it from the ERP".to_string(),
        Some(l) if l.state == "pushed" => format!(
            "our ledger says it was pushed (ShipStation order {}) but ShipStation has no such order in this connection's stores",
            l.ss_order_id.map(|i| i.to_string()).unwrap_or_default()
        ),
        Some(l) => format!("our ledger has it {} but it never reached ShipStation", l.state),
    };
    out.push(Finding::new(
        ExceptionKind::PaidNotInShipStation,
        "order",
        erp.erp_id.clone(),
        format!("order {} is paid and open in the ERP but not in ShipStation: {why}; the customer is waiting", erp.number),
        json!({"ledger_state": ledger.map(|l| l.state.clone()), "placed_at": erp.placed_at.to_string()}),
    ));
}

/// Fulfilment must match recorded revenue: what the ERP shipped against what it
/// invoiced, line by line.
fn invoicing(erp: &ErpSide, roots: &[&SsOrderView], policy: &DiffPolicy, out: &mut Vec<Finding>) {
    let Some(invoiced) = &erp.invoiced else { return };
    let mut shipped: BTreeMap<&str, u32> = BTreeMap::new();
    let mut last_completed: Option<Timestamp> = None;
    let mut fulfilled: BTreeMap<&str, u32> = BTreeMap::new();
    for f in erp.fulfilments.iter().filter(|f| f.live) {
        for (line, qty) in &f.lines {
            *fulfilled.entry(line.as_str()).or_default() += qty;
            if f.completed {
                *shipped.entry(line.as_str()).or_default() += qty;
            }
        }
        if f.completed {
            last_completed = last_completed.max(Some(f.updated_at));
        }
    }
    let short: Vec<Value> = shipped
        .iter()
        .filter(|(line, qty)| invoiced.get(**line).copied().unwrap_or(0) < **qty)
        .map(|(line, qty)| json!({"line": line, "shipped": qty, "invoiced": invoiced.get(*line).copied().unwrap_or(0)}))
        .collect();
    if !short.is_empty() && older(policy, last_completed, policy.invoice_grace) {
        out.push(Finding::new(
            ExceptionKind::ShippedNotInvoiced,
            "order",
            erp.erp_id.clone(),
            format!("order {} shipped more than it invoiced ({} line(s)): revenue is not recorded for goods that left; invoice them in the ERP", erp.number, short.len()),
            json!({"lines": short}),
        ));
    }
    // Invoiced ahead of shipment is normal while the order can still ship; it is a
    // finding once nothing more will ship (cancelled, or done in ShipStation).
    let nothing_more = erp.status == ErpOrderStatus::Cancelled
        || (!roots.is_empty() && roots.iter().all(|o| o.status == "shipped" || o.status == "cancelled"));
    let over: Vec<Value> = invoiced
        .iter()
        .filter(|(line, qty)| **qty > fulfilled.get(line.as_str()).copied().unwrap_or(0))
        .map(|(line, qty)| json!({"line": line, "invoiced": qty, "shipped": fulfilled.get(line.as_str()).copied().unwrap_or(0)}))
        .collect();
    if !over.is_empty() && nothing_more && older(policy, Some(erp.updated_at), policy.grace) {
        out.push(Finding::new(
            ExceptionKind::InvoicedNotShipped,
            "order",
            erp.erp_id.clone(),
            format!(
                "order {} invoiced more than it shipped ({} line(s)) and nothing more will ship: credit the customer or ship the rest",
                erp.number,
                over.len()
            ),
            json!({"lines": over}),
        ));
    }
}

/// A label's last tracking status says the carrier has a problem with the parcel
/// (`EX`: exception, returned or undeliverable).
pub fn carrier_exception(shipment_key: &str, carrier: &str, tracking: &str, erp_id: Option<&str>, status: &str, detail: Option<&str>) -> Option<Finding> {
    (status == "EX").then(|| {
        Finding::new(
            ExceptionKind::CarrierException,
            "shipment",
            shipment_key,
            format!(
                "{carrier} reports an exception on parcel {tracking} (order {}){}: contact the carrier or the customer",
                erp_id.unwrap_or("unknown"),
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            ),
            json!({"tracking_number": tracking, "status": status, "carrier": carrier}),
        )
    })
}

/// A label far above its peers' cost ([`crate::cost_model::outliers`]), with the reasoning.
pub fn label_cost_outlier(o: &crate::cost_model::Outlier, erp_id: Option<&str>, tracking: Option<&str>) -> Finding {
    Finding::new(
        ExceptionKind::LabelCostOutlier,
        "shipment",
        &o.shipment_key,
        format!(
            "label {} ({} {}, {}, order {}) cost {}, against a median of {} over {} peers (MAD {}): score {}",
            o.shipment_key,
            o.carrier,
            o.service.as_deref().unwrap_or("no service"),
            o.weight_band,
            erp_id.unwrap_or("unknown"),
            o.cost,
            o.median,
            o.peers,
            o.mad,
            o.score
        ),
        json!({
            "tracking_number": tracking,
            "carrier": o.carrier,
            "service": o.service,
            "weight_band": o.weight_band,
            "cost": o.cost.to_decimal().to_string(),
            "currency": o.cost.currency().code(),
            "peers": o.peers,
            "median": o.median.to_string(),
            "mad": o.mad.to_string(),
            "score": o.score.to_string(),
            "threshold": crate::cost_model::THRESHOLD.to_string(),
        }),
    )
}

/// An order that charged shipping and cost more to ship ([`crate::margin::undercharged`]).
pub fn shipping_undercharged(m: &crate::margin::Margin, v: &crate::invoice::Variance, number: &str, policy_percent: u32, policy_floor: &str) -> Finding {
    Finding::new(
        ExceptionKind::ShippingUndercharged,
        "order",
        &m.erp_id,
        format!(
            "order {number} ({}) charged {} for shipping and cost {} to ship{}: a loss of {} ({})",
            m.erp_id,
            match m.charged {
                Some(c) if c.currency() != v.label.currency() => format!("{c} (= {} at the ledger's rate)", v.label),
                _ => v.label.to_string(),
            },
            v.invoiced,
            m.invoiced.filter(|i| !i.is_zero()).map(|i| format!(" ({i} of it invoiced by the carrier after the label)")).unwrap_or_default(),
            v.difference,
            v.percent.map(|p| format!("{p} % of the charge")).unwrap_or_else(|| "the order charged nothing".into())
        ),
        json!({
            "number": number,
            "charged": v.label.to_decimal().to_string(),
            "charged_as_ordered": m.charged,
            "cost": v.invoiced.to_decimal().to_string(),
            "invoiced": m.invoiced.map(|i| i.to_decimal().to_string()),
            "loss": v.difference.to_decimal().to_string(),
            "currency": v.label.currency().code(),
            "percent": v.percent.map(|p| p.to_string()),
            "policy_percent": policy_percent,
            "policy_floor": policy_floor,
        }),
    )
}

/// A cost entry whose posting window has closed (and its grace passed) but that is
/// in no posted batch.
pub fn cost_entry_unposted(entry_key: &str, window_end: Timestamp, why: &str, policy: &DiffPolicy) -> Option<Finding> {
    older(policy, Some(window_end), policy.grace).then(|| {
        Finding::new(
            ExceptionKind::CostEntryUnposted,
            "cost_entry",
            entry_key,
            format!("cost entry {entry_key} belongs to a posting window that ended at {window_end} but is in no posted journal: {why}"),
            json!({"window_end": window_end.to_string()}),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy() -> DiffPolicy {
        DiffPolicy {
            now: at("2026-11-20T12:00:00Z"),
            grace: SignedDuration::from_hours(1),
            invoice_grace: SignedDuration::from_hours(24),
            awaiting_after: SignedDuration::from_hours(48),
        }
    }

    fn erp(id: &str) -> ErpSide {
        ErpSide {
            erp_id: id.into(),
            number: format!("SO-{id}"),
            status: ErpOrderStatus::Open,
            paid: true,
            lines: BTreeMap::from([("L1".to_string(), 2)]),
            placed_at: at("2026-11-18T09:00:00Z"),
            updated_at: at("2026-11-18T09:00:00Z"),
            fulfilments: vec![],
            invoiced: Some(BTreeMap::new()),
        }
    }

    fn ledger(id: &str, state: &str, ss: Option<i64>) -> LedgerSide {
        LedgerSide { erp_id: id.into(), number: format!("SO-{id}"), state: state.into(), ss_order_id: ss, pushed_at: Some(at("2026-11-19T09:00:00Z")) }
    }

    fn ss(id: i64, status: &str) -> SsOrderView {
        SsOrderView {
            ss_order_id: id,
            order_key: Some("k".into()),
            order_number: "SO-1".into(),
            store_id: Some(42),
            status: status.into(),
            parent_id: None,
            merged_into: None,
            created_at: Some(at("2026-11-19T09:00:00Z")),
            ship_by: None,
        }
    }

    fn label(id: i64, tracking: &str, voided: bool) -> SsShipmentView {
        SsShipmentView {
            fulfillment: false,
            shipment_id: id,
            ss_order_id: 1,
            tracking_number: Some(tracking.into()),
            carrier: "ups".into(),
            voided,
            created_at: Some(at("2026-11-19T10:00:00Z")),
            voided_at: voided.then(|| at("2026-11-19T11:00:00Z")),
        }
    }

    fn fulfilment(tracking: &str, completed: bool) -> FulfilmentView {
        FulfilmentView {
            id: "F1".into(),
            live: true,
            completed,
            tracking: vec![tracking.into()],
            lines: vec![("L1".into(), 2)],
            updated_at: at("2026-11-19T10:30:00Z"),
        }
    }

    fn kinds(r: &Record) -> Vec<ExceptionKind> {
        diff(r, &policy()).into_iter().map(|f| f.kind).collect()
    }

    fn in_agreement() -> Record {
        let mut e = erp("1");
        e.fulfilments = vec![fulfilment("1Z1", true)];
        e.invoiced = Some(BTreeMap::from([("L1".to_string(), 2)]));
        Record {
            key: "k".into(),
            erp: Some(e),
            ledger: Some(ledger("1", "shipped", Some(1))),
            ss_orders: vec![ss(1, "shipped")],
            ss_shipments: vec![label(10, "1Z1", false)],
            same_number: None,
        }
    }

    #[test]
    fn an_order_shipped_written_back_and_invoiced_is_in_agreement() {
        assert_eq!(kinds(&in_agreement()), vec![]);
    }

    #[test]
    fn a_paid_order_that_never_reached_shipstation_is_named_unless_the_gate_holds_it() {
        let r = Record { key: "k".into(), erp: Some(erp("1")), ..Default::default() };
        assert_eq!(kinds(&r), vec![ExceptionKind::PaidNotInShipStation]);
        let held = Record { ledger: Some(ledger("1", "held", None)), ..r.clone() };
        assert_eq!(kinds(&held), vec![]);
        let mut fresh = r.clone();
        fresh.erp.as_mut().unwrap().updated_at = at("2026-11-20T11:30:00Z");
        assert_eq!(kinds(&fresh), vec![], "inside the grace the push may still be on its way");
        let mut unpaid = r;
        unpaid.erp.as_mut().unwrap().paid = false;
        assert_eq!(kinds(&unpaid), vec![]);
    }

    #[test]
    fn an_order_marked_shipped_elsewhere_agrees_through_its_fulfillment_and_another_stores_is_not_judged() {
        // Marked shipped outside ShipStation (a marketplace): no label, a fulfillment
        // whose tracking the ERP's fulfilment carries.
        let mut r = in_agreement();
        r.ss_shipments = vec![SsShipmentView { shipment_id: -30, fulfillment: true, ..label(30, "1Z1", false) }];
        assert_eq!(kinds(&r), vec![], "the fulfillment is the parcel the ERP recorded");
        r.ss_shipments.clear();
        assert_eq!(kinds(&r), vec![ExceptionKind::FulfilledWithoutLabel], "without it, the ERP's parcel has nothing behind it");
        // A fulfillment of an order in no store of ours: read (ShipStation cannot
        // filter them by store) but nobody's to judge.
        let theirs = Record { key: "ss:99".into(), ss_shipments: vec![SsShipmentView { shipment_id: -31, fulfillment: true, ..label(31, "1Z9", false) }], ..Default::default() };
        assert_eq!(kinds(&theirs), vec![]);
        let label_of_theirs = Record { key: "ss:99".into(), ss_shipments: vec![label(31, "1Z9", false)], ..Default::default() };
        assert_eq!(kinds(&label_of_theirs), vec![ExceptionKind::OrphanShipment], "a label is read only in our stores, so it is ours");
    }

    #[test]
    fn a_shipstation_order_nobody_released_is_unknown_and_its_labels_are_orphans() {
        let r = Record { key: "ss:77".into(), ss_orders: vec![ss(77, "shipped")], ss_shipments: vec![label(5, "1Z5", false)], ..Default::default() };
        let found = diff(&r, &policy());
        assert_eq!(found.iter().map(|f| f.kind).collect::<Vec<_>>(), vec![ExceptionKind::UnknownShipStationOrder, ExceptionKind::OrphanShipment]);
        assert_eq!(found[0].record_id, "77");
        assert_eq!(found[1].record_id, "label:5");
        assert_eq!(found[0].kind.owner(), crate::exception::Owner::Ops);
    }

    #[test]
    fn two_live_shipstation_orders_for_one_erp_order_are_a_duplicate_but_split_children_are_not() {
        let mut r = in_agreement();
        r.ss_orders.push(ss(2, "awaiting_shipment"));
        assert_eq!(kinds(&r), vec![ExceptionKind::DuplicateShipStationOrder]);
        r.ss_orders[1].parent_id = Some(1);
        assert_eq!(kinds(&r), vec![]);
    }

    #[test]
    fn a_copy_of_our_order_under_another_key_is_a_duplicate_of_it_not_an_unknown_order() {
        let mut copy = ss(9, "awaiting_shipment");
        copy.order_key = Some("imported-again".into());
        let r = Record { key: "imported-again".into(), ss_orders: vec![copy], same_number: Some(ledger("5", "pushed", Some(1))), ..Default::default() };
        let found = diff(&r, &policy());
        assert_eq!(found.iter().map(|f| (f.kind, f.record_id.as_str())).collect::<Vec<_>>(), vec![(ExceptionKind::DuplicateShipStationOrder, "5")]);
    }

    #[test]
    fn cancelled_in_the_erp_but_live_in_shipstation_is_a_status_mismatch() {
        let mut e = erp("1");
        e.status = ErpOrderStatus::Cancelled;
        let r = Record { key: "k".into(), erp: Some(e), ledger: Some(ledger("1", "pushed", Some(1))), ss_orders: vec![ss(1, "awaiting_shipment")], ..Default::default() };
        assert_eq!(kinds(&r), vec![ExceptionKind::StatusMismatch]);
    }

    #[test]
    fn a_label_without_an_erp_fulfilment_is_shipped_not_fulfilled_and_a_different_tracking_is_a_mismatch() {
        let mut r = in_agreement();
        r.erp.as_mut().unwrap().fulfilments.clear();
        r.erp.as_mut().unwrap().invoiced = Some(BTreeMap::new());
        assert_eq!(kinds(&r), vec![ExceptionKind::ShippedNotFulfilled]);
        let mut r = in_agreement();
        r.ss_shipments.push(label(11, "1Z2", false));
        assert_eq!(kinds(&r), vec![ExceptionKind::TrackingMismatch]);
    }

    #[test]
    fn a_fulfilment_whose_label_was_voided_is_voided_after_fulfilled_and_one_with_no_label_at_all_is_named_too() {
        let mut r = in_agreement();
        r.ss_shipments = vec![label(10, "1Z1", true)];
        r.ss_orders[0].status = "awaiting_shipment".into();
        r.erp.as_mut().unwrap().invoiced = Some(BTreeMap::new());
        assert_eq!(kinds(&r), vec![ExceptionKind::VoidedAfterFulfilled, ExceptionKind::ShippedNotInvoiced]);
        let mut r = in_agreement();
        r.ss_shipments.clear();
        assert_eq!(kinds(&r), vec![ExceptionKind::FulfilledWithoutLabel]);
    }

    #[test]
    fn shipped_but_not_invoiced_waits_its_grace_and_invoiced_but_not_shipped_waits_until_nothing_more_ships() {
        let mut r = in_agreement();
        r.erp.as_mut().unwrap().invoiced = Some(BTreeMap::from([("L1".to_string(), 1)]));
        assert_eq!(kinds(&r), vec![ExceptionKind::ShippedNotInvoiced]);
        let mut p = policy();
        p.now = at("2026-11-19T12:00:00Z");
        assert!(diff(&r, &p).iter().all(|f| f.kind != ExceptionKind::ShippedNotInvoiced), "inside the invoice grace");

        let mut e = erp("2");
        e.invoiced = Some(BTreeMap::from([("L1".to_string(), 2)]));
        let mut r = Record { key: "k".into(), erp: Some(e), ledger: Some(ledger("2", "pushed", Some(1))), ss_orders: vec![ss(1, "awaiting_shipment")], ..Default::default() };
        assert_eq!(kinds(&r), vec![], "prepaid and invoiced, still to ship");
        r.erp.as_mut().unwrap().status = ErpOrderStatus::Cancelled;
        r.ss_orders[0].status = "cancelled".into();
        assert_eq!(kinds(&r), vec![ExceptionKind::InvoicedNotShipped]);
        r.erp.as_mut().unwrap().invoiced = None;
        assert_eq!(kinds(&r), vec![], "a connector that reports no invoicing is not judged on it");
    }

    #[test]
    fn an_order_past_its_ship_by_date_without_a_label_is_named() {
        let mut o = ss(1, "awaiting_shipment");
        o.ship_by = Some(at("2026-11-20T00:00:00Z"));
        let r = Record { key: "k".into(), erp: Some(erp("1")), ledger: Some(ledger("1", "pushed", Some(1))), ss_orders: vec![o], ..Default::default() };
        assert_eq!(kinds(&r), vec![ExceptionKind::PastShipByDate]);
    }

    #[test]
    fn a_carrier_exception_is_named_and_other_statuses_are_not() {
        assert_eq!(carrier_exception("label:1", "ups", "1Z", Some("9"), "EX", None).map(|f| f.kind), Some(ExceptionKind::CarrierException));
        assert_eq!(carrier_exception("label:1", "ups", "1Z", Some("9"), "IT", None), None);
    }
}
