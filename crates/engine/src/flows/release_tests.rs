//! The release decision as a function: what one ERP snapshot, the order's record and
//! the product master amount to — the state written, the push planned, the
//! exceptions raised and closed — without a store or an ERP.

use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{ErpOrderStatus, PaymentState};
use shipledger_core::weight::Weight;
use shipledger_store::{Change, OrderRecord, OrderState};

use super::*;
use crate::flows::test_support::{at, committed, connection, paid_order, products};

/// The idempotency keys of the pushes a decision plans.
fn pushes(change: &Change) -> Vec<String> {
    change.jobs.iter().map(|j| j.idempotency_key.clone()).collect()
}

fn events(change: &Change) -> Vec<&str> {
    change.events.iter().map(|e| e.kind.as_str()).collect()
}

fn raised(change: &Change) -> Vec<ExceptionKind> {
    change.open_exceptions.iter().map(|e| e.kind).collect()
}

fn closed(change: &Change) -> Vec<ExceptionKind> {
    change.close_exceptions.iter().map(|e| e.kind).collect()
}

fn message(change: &Change, kind: ExceptionKind) -> String {
    let open = change.open_exceptions.iter().find(|e| e.kind == kind).unwrap_or_else(|| panic!("{kind:?} raised"));
    open.detail["message"].as_str().expect("a message").to_string()
}

fn state(change: &Change) -> OrderState {
    change.order.as_ref().expect("the order is written").state
}

fn every_held_kind() -> Vec<ExceptionKind> {
    ExceptionKind::ALL.iter().copied().filter(|k| k.code().starts_with("held_")).collect()
}

/// The push key of `order` on `acme-uk`.
fn push_key(order: &ErpOrder) -> String {
    format!("sync:shipledger:acme-uk:{}:{}:{}", order.erp_id, snapshot_hash(order), order.updated_at.as_millisecond())
}

/// `order` released and committed at `at(20)`.
fn released(order: &ErpOrder) -> OrderRecord {
    let (change, outcome) = decide(&connection(), order, None, &products(), at(20));
    assert_eq!(outcome, Outcome::Released);
    committed(&change)
}

/// The same order, changed in the ERP a little later.
fn later(order: &ErpOrder, f: impl FnOnce(&mut ErpOrder)) -> ErpOrder {
    let mut next = order.clone();
    f(&mut next);
    next.updated_at = order.updated_at + jiff::SignedDuration::from_secs(60);
    next
}

#[test]
fn a_paid_complete_order_is_released_once_with_one_push_its_payment_and_its_weights() {
    let order = paid_order("SO-1");
    let (change, outcome) = decide(&connection(), &order, None, &products(), at(20));
    assert_eq!(outcome, Outcome::Released);
    assert_eq!(pushes(&change), [push_key(&order)]);
    assert_eq!(events(&change), ["released"]);
    assert!(raised(&change).is_empty());
    assert_eq!(closed(&change), every_held_kind(), "whatever held it before is closed");
    let upsert = change.order.as_ref().unwrap();
    assert_eq!(upsert.state, OrderState::Released);
    assert_eq!(upsert.released_at, Some(at(20)));
    assert_eq!(upsert.order_key, "shipledger:acme-uk:SO-1");
    let payment: shipledger_core::order::PaymentEvidence = serde_json::from_value(upsert.payment.clone().unwrap()).unwrap();
    assert_eq!(payment, order.payment, "the evidence of capture is recorded on the order");
    let weights: Vec<(&str, Option<i64>)> =
        upsert.lines.as_ref().unwrap().iter().map(|l| (l.line_id.as_str(), l.unit_weight_mg)).collect();
    assert_eq!(weights, [("L1", Some(350_000)), ("L2", Some(260_000)), ("D1", None)], "the mug's weight came from the master");
    assert_eq!(change.watermark, Some(WatermarkMove::new(WATERMARK, None, format!("{}|SO-1", at(10).as_millisecond()))));
}

#[test]
fn the_gate_releases_only_captured_complete_orders_and_holds_the_rest_with_their_reason() {
    type Edit = fn(&mut ErpOrder);
    let table: [(&str, Edit, Option<ExceptionKind>); 8] = [
        ("captured", |_| {}, None),
        ("authorised only", |o| o.payment.state = PaymentState::Authorised, Some(ExceptionKind::HeldUnpaid)),
        ("unpaid", |o| o.payment.state = PaymentState::Unpaid, Some(ExceptionKind::HeldUnpaid)),
        ("no weight anywhere", |o| o.lines[0].sku = Some("BOX".into()), Some(ExceptionKind::HeldMissingWeight)),
        (
            "zero weight on the line and none in the master",
            |o| {
                o.lines[1].sku = Some("BOX".into());
                o.lines[1].unit_weight = Some(Weight::ZERO);
            },
            Some(ExceptionKind::HeldMissingWeight),
        ),
        ("unknown SKU", |o| o.lines[1].sku = Some("NOPE".into()), Some(ExceptionKind::HeldUnknownSku)),
        ("no postal code", |o| o.ship_to.postal_code = None, Some(ExceptionKind::HeldIncompleteAddress)),
        ("no street", |o| o.ship_to.street1 = Some(" ".into()), Some(ExceptionKind::HeldIncompleteAddress)),
    ];
    for (story, edit, held_for) in table {
        let mut order = paid_order("SO-1");
        edit(&mut order);
        let (change, outcome) = decide(&connection(), &order, None, &products(), at(20));
        match held_for {
            None => {
                assert_eq!(outcome, Outcome::Released, "{story}");
                assert_eq!(pushes(&change).len(), 1, "{story}");
            }
            Some(kind) => {
                assert_eq!(outcome, Outcome::Held, "{story}");
                assert_eq!(state(&change), OrderState::Held, "{story}");
                assert_eq!(raised(&change), [kind], "{story}");
                assert!(pushes(&change).is_empty(), "{story}: a held order never reaches ShipStation");
                assert_eq!(change.order.as_ref().unwrap().released_at, None, "{story}");
                assert_eq!(events(&change), ["held"], "{story}");
                let mut others = every_held_kind();
                others.retain(|k| *k != kind);
                assert_eq!(closed(&change), others, "{story}: only what still holds it stays open");
            }
        }
    }
}

#[test]
fn a_held_order_names_the_fields_at_fault_and_keeps_the_weights_the_erp_gave() {
    let mut order = paid_order("SO-1");
    order.lines[0].sku = Some("BOX".into());
    let (change, _) = decide(&connection(), &order, None, &products(), at(20));
    let open = &change.open_exceptions[0];
    assert_eq!((open.record_type.as_str(), open.record_id.as_str()), ("order", "SO-1"));
    assert_eq!(open.detail["fields"], serde_json::json!(["lines[L1].weight"]));
    assert_eq!(open.detail["order_number"], "SO-1");
    let weights: Vec<Option<i64>> = change.order.as_ref().unwrap().lines.as_ref().unwrap().iter().map(|l| l.unit_weight_mg).collect();
    assert_eq!(weights, [None, Some(260_000), None], "nothing is defaulted for the box");
}

#[test]
fn a_held_order_fixed_in_the_erp_is_released_and_its_exception_closed() {
    let mut order = paid_order("SO-1");
    order.payment.state = PaymentState::Authorised;
    let (change, _) = decide(&connection(), &order, None, &products(), at(20));
    let held = committed(&change);
    assert_eq!(held.state, OrderState::Held);

    let captured = later(&order, |o| o.payment.state = PaymentState::Captured);
    let (change, outcome) = decide(&connection(), &captured, Some(&held), &products(), at(30));
    assert_eq!(outcome, Outcome::Released);
    assert!(closed(&change).contains(&ExceptionKind::HeldUnpaid));
    assert_eq!(pushes(&change), [push_key(&captured)]);
    assert_eq!(change.order.as_ref().unwrap().released_at, Some(at(30)));
}

#[test]
fn a_held_order_read_again_on_schedule_is_released_once_its_product_is_fixed() {
    let mut order = paid_order("SO-1");
    order.lines[0].sku = Some("BOX".into());
    let (change, _) = decide(&connection(), &order, None, &products(), at(20));
    let held = committed(&change);

    // The feed has nothing new: the same snapshot is only noted.
    let (change, outcome) = decide(&connection(), &order, Some(&held), &products(), at(30));
    assert_eq!(outcome, Outcome::Unchanged);
    // Read again by recheck after the product master got a weight: released.
    let mut fixed = products();
    fixed.get_mut("BOX").unwrap().unit_weight = Some(Weight::from_grams(900));
    let (recheck, outcome) = judge(&connection(), &order, Some(&held), &fixed, &[], Seen::Recheck, at(40));
    assert_eq!(outcome, Outcome::Released);
    assert_eq!(pushes(&recheck), [push_key(&order)]);
    assert_eq!(recheck.watermark, None, "a recheck leaves the change feed's watermark alone");
    assert!(change.watermark.is_some());
}

#[test]
fn an_unchanged_snapshot_from_the_feed_plans_nothing_and_changes_nothing() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let (change, outcome) = decide(&connection(), &order, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::Unchanged);
    assert!(pushes(&change).is_empty());
    assert_eq!(events(&change), ["erp_seen_unchanged"]);
    assert!(raised(&change).is_empty() && closed(&change).is_empty());
    let upsert = change.order.as_ref().unwrap();
    assert_eq!((upsert.state, upsert.released_at), (OrderState::Released, Some(at(20))));
    assert_eq!(upsert.lines, None, "the lines are left as they are");
    assert!(change.watermark.is_some(), "the feed moves past it");
}

#[test]
fn a_change_to_a_pushed_order_plans_an_update_keyed_by_the_new_version() {
    let order = paid_order("SO-1");
    let mut record = released(&order);
    record.state = OrderState::Pushed;
    record.ss_order_id = Some(7001);
    record.pushed_hash = Some(record.snapshot_hash.clone());
    let moved = later(&order, |o| o.ship_to.street1 = Some("1 Infinite Loop".into()));
    let (change, outcome) = decide(&connection(), &moved, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    assert_eq!(pushes(&change), [push_key(&moved)]);
    assert_ne!(push_key(&moved), push_key(&order));
    assert_eq!(events(&change), ["update_planned"]);
    let upsert = change.order.as_ref().unwrap();
    assert_eq!(upsert.state, OrderState::Pushed, "still in ShipStation; the push brings it up to date");
    assert_eq!((upsert.released_at, upsert.ss_order_id), (Some(at(20)), Some(7001)));
    assert_eq!(upsert.snapshot_hash, snapshot_hash(&moved));
    assert_eq!(upsert.pushed_hash.as_deref(), Some(record.snapshot_hash.as_str()), "not pushed yet");
}

#[test]
fn the_push_key_is_the_same_for_the_same_version_and_new_for_each_erp_version() {
    let order = paid_order("SO-1");
    let first = decide(&connection(), &order, None, &products(), at(20)).0;
    let again = decide(&connection(), &order, None, &products(), at(25)).0;
    assert_eq!(pushes(&first), pushes(&again), "a redone decision plans the same push");

    // On hold and open again: the content returns to the first, the version does not.
    let record = committed(&first);
    let on_hold = later(&order, |o| o.status = ErpOrderStatus::OnHold);
    let (hold, _) = decide(&connection(), &on_hold, Some(&record), &products(), at(30));
    let reopened = later(&on_hold, |o| o.status = ErpOrderStatus::Open);
    assert_eq!(snapshot_hash(&reopened), snapshot_hash(&order));
    let (open, outcome) = decide(&connection(), &reopened, Some(&committed(&hold)), &products(), at(40));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    let keys: std::collections::BTreeSet<String> = [&first, &hold, &open].iter().flat_map(|c| pushes(c)).collect();
    assert_eq!(keys.len(), 3, "three versions, three pushes: {keys:?}");
}

#[test]
fn a_change_to_the_customer_reference_alone_is_not_worth_a_push() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let referenced = later(&order, |o| o.customer_reference = Some("PO-778".into()));
    let (change, outcome) = decide(&connection(), &referenced, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::Unchanged);
    assert!(pushes(&change).is_empty());
}

#[test]
fn an_order_cancelled_before_release_sends_nothing_to_shipstation() {
    let mut order = paid_order("SO-1");
    order.status = ErpOrderStatus::Cancelled;
    let (change, outcome) = decide(&connection(), &order, None, &products(), at(20));
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(state(&change), OrderState::Cancelled);
    assert!(pushes(&change).is_empty());
    assert!(raised(&change).is_empty(), "nobody has to act on it");
    assert_eq!(events(&change), ["cancelled_before_release"]);
}

#[test]
fn a_held_order_cancelled_in_the_erp_closes_what_held_it() {
    let mut order = paid_order("SO-1");
    order.lines[0].sku = Some("NOPE".into());
    let (change, _) = decide(&connection(), &order, None, &products(), at(20));
    let cancelled = later(&order, |o| o.status = ErpOrderStatus::Cancelled);
    let (change, outcome) = decide(&connection(), &cancelled, Some(&committed(&change)), &products(), at(30));
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(closed(&change), every_held_kind());
    assert!(pushes(&change).is_empty());
}

#[test]
fn a_released_order_cancelled_in_the_erp_is_cancelled_in_shipstation_and_raised_as_withdrawn() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let cancelled = later(&order, |o| {
        o.status = ErpOrderStatus::Cancelled;
        o.status_reason = Some("the customer cancelled by phone".into());
    });
    let (change, outcome) = decide(&connection(), &cancelled, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::Cancelled);
    assert_eq!(state(&change), OrderState::Cancelled);
    assert_eq!(pushes(&change), [push_key(&cancelled)], "the push cancels ShipStation's order");
    assert_eq!(events(&change), ["cancel_planned"]);
    assert_eq!(raised(&change), [ExceptionKind::OrderWithdrawn]);
    assert_eq!(
        message(&change, ExceptionKind::OrderWithdrawn),
        "the customer cancelled by phone after it was released; ShipStation's order shipledger:acme-uk:SO-1 is being \
         cancelled: make sure the warehouse does not pick it"
    );
}

#[test]
fn a_labelled_order_the_erp_withdraws_names_the_labels_to_void() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let labels = ["ups 1Z999 (ShipStation shipment 55)".to_string()];
    for status in [ErpOrderStatus::Cancelled, ErpOrderStatus::OnHold] {
        let withdrawn = later(&order, |o| o.status = status);
        let (change, _) = judge(&connection(), &withdrawn, Some(&record), &products(), &labels, Seen::Feed, at(30));
        let text = message(&change, ExceptionKind::OrderWithdrawn);
        assert!(text.contains("ups 1Z999 (ShipStation shipment 55)") && text.contains("void the labels"), "{status:?}: {text}");
        assert_eq!(change.open_exceptions[0].detail["labels"], serde_json::json!(labels), "{status:?}");
        assert_eq!(pushes(&change).len(), 1, "{status:?}: the push is still planned, for when the labels are voided");
    }
}

#[test]
fn an_order_put_on_hold_after_release_is_put_on_hold_in_shipstation() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let on_hold = later(&order, |o| {
        o.status = ErpOrderStatus::OnHold;
        o.status_reason = Some("fraud review".into());
    });
    let (change, outcome) = decide(&connection(), &on_hold, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    assert_eq!(pushes(&change), [push_key(&on_hold)]);
    assert_eq!(events(&change), ["hold_planned"]);
    assert_eq!(change.events[0].detail["reason"], "fraud review");
    assert!(raised(&change).is_empty(), "nothing labelled, nothing to undo");
    assert_eq!(state(&change), OrderState::Released);
}

#[test]
fn an_order_on_hold_in_the_erp_before_release_waits_without_an_exception() {
    let mut order = paid_order("SO-1");
    order.status = ErpOrderStatus::OnHold;
    let (change, outcome) = decide(&connection(), &order, None, &products(), at(20));
    assert_eq!(outcome, Outcome::Held);
    assert_eq!(state(&change), OrderState::Held);
    assert!(pushes(&change).is_empty() && raised(&change).is_empty());
    assert_eq!(events(&change), ["held_in_erp"]);
}

#[test]
fn changed_lines_after_labelling_are_raised_at_once_and_an_address_change_is_not() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let labels = ["ups 1Z999 (ShipStation shipment 55)".to_string()];
    let fewer = later(&order, |o| o.lines[0].quantity = 1);
    let (change, outcome) = judge(&connection(), &fewer, Some(&record), &products(), &labels, Seen::Feed, at(30));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    assert_eq!(raised(&change), [ExceptionKind::ChangeAfterShipment]);
    assert!(message(&change, ExceptionKind::ChangeAfterShipment).contains("ups 1Z999"));

    let moved = later(&order, |o| o.ship_to.city = Some("Bath".into()));
    let (change, outcome) = judge(&connection(), &moved, Some(&record), &products(), &labels, Seen::Feed, at(30));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    assert!(raised(&change).is_empty(), "the lines did not change: {:?}", raised(&change));
    // Without a label, changed lines are just an update.
    let (change, _) = decide(&connection(), &fewer, Some(&record), &products(), at(30));
    assert!(raised(&change).is_empty());
}

#[test]
fn a_released_order_that_now_fails_the_gate_keeps_its_last_good_version_in_shipstation() {
    let order = paid_order("SO-1");
    let record = released(&order);
    let broken = later(&order, |o| o.ship_to.city = None);
    let (change, outcome) = decide(&connection(), &broken, Some(&record), &products(), at(30));
    assert_eq!(outcome, Outcome::Held);
    assert!(pushes(&change).is_empty(), "nothing made up reaches ShipStation");
    assert_eq!(raised(&change), [ExceptionKind::HeldIncompleteAddress]);
    assert_eq!(events(&change), ["change_refused_by_gate"]);
    let upsert = change.order.as_ref().unwrap();
    assert_eq!((upsert.state, upsert.released_at), (OrderState::Released, Some(at(20))), "released it stays");
}

#[test]
fn a_new_hold_reason_alone_is_not_worth_a_push() {
    let mut order = paid_order("SO-1");
    order.status = ErpOrderStatus::OnHold;
    order.status_reason = Some("credit check".into());
    let (change, _) = decide(&connection(), &order, None, &products(), at(20));
    let reworded = later(&order, |o| o.status_reason = Some("credit check (second look)".into()));
    let (change, outcome) = decide(&connection(), &reworded, Some(&committed(&change)), &products(), at(30));
    assert_eq!(outcome, Outcome::Unchanged);
    assert!(pushes(&change).is_empty());
}

#[test]
fn a_released_order_read_again_unchanged_plans_only_the_push_it_already_has() {
    let order = paid_order("SO-1");
    let (first, _) = decide(&connection(), &order, None, &products(), at(20));
    let (again, outcome) = judge(&connection(), &order, Some(&committed(&first)), &products(), &[], Seen::Recheck, at(40));
    assert_eq!(outcome, Outcome::UpdatePlanned);
    assert_eq!(pushes(&again), pushes(&first), "the same key: the store plans it once");
}

#[test]
fn the_feeds_watermark_moves_from_what_the_poll_read_and_never_back_in_time() {
    let cursor = |ms: i64, id: &str| Cursor { updated_at: at(0) + jiff::SignedDuration::from_millis(ms), erp_id: id.into() }.to_watermark();
    let mark = |to: String| WatermarkMove::new(WATERMARK, None, to);
    // The first ever: from nothing.
    assert_eq!(forward(None, mark(cursor(5, "SO-1"))), Some(WatermarkMove::new(WATERMARK, None, cursor(5, "SO-1"))));
    // Later: from what was read.
    let read = cursor(5, "SO-1");
    assert_eq!(forward(Some(&read), mark(cursor(9, "SO-2"))), Some(WatermarkMove::new(WATERMARK, Some(read.clone()), cursor(9, "SO-2"))));
    // In the same millisecond the ERP's order of ids decides, whatever their text says.
    assert!(forward(Some(&cursor(9, "9")), mark(cursor(9, "10"))).is_some());
    // Earlier in time: never.
    assert_eq!(forward(Some(&cursor(9, "SO-2")), mark(cursor(8, "SO-9"))), None);
}
