//! The push's pure decisions as functions: the ShipStation order built from a
//! released snapshot, the status each ERP status asks for, and how what ShipStation
//! holds is judged (in sync, to be updated, or locked with or without our change).

use rust_decimal::Decimal;
use shipledger_core::order::ErpOrderStatus;
use shipledger_store::OrderLineRecord;

use super::*;
use crate::flows::release::decide;
use crate::flows::test_support::{at, claimed, committed, connection, paid_order, products};

/// `order` as the store holds it once released (weights resolved by the gate) and,
/// when the ERP has since held or cancelled it, once that change is decided too.
fn released(order: &ErpOrder) -> (OrderRecord, Vec<OrderLineRecord>) {
    let open = ErpOrder { status: ErpOrderStatus::Open, ..order.clone() };
    let (change, _) = decide(&connection(), &open, None, &products(), at(20));
    let mut lines = change.order.as_ref().and_then(|o| o.lines.clone()).expect("lines are written at release");
    let mut record = committed(&change);
    if order.status != ErpOrderStatus::Open {
        let (change, _) = decide(&connection(), order, Some(&record), &products(), at(25));
        if let Some(changed) = change.order.as_ref().and_then(|o| o.lines.clone()) {
            lines = changed;
        }
        record = committed(&change);
    }
    (record, lines)
}

/// What the push would send for `order` released and unchanged since.
fn built(order: &ErpOrder) -> ss::Order {
    let (record, lines) = released(order);
    build_order(&connection(), &record, order, &lines, desired_status(order))
}

fn pending(order: &ErpOrder, attempts: i64) -> Pending {
    let (record, _) = released(order);
    Pending { job: claimed(1, &order.erp_id, attempts), record, snapshot: order.clone(), status: desired_status(order) }
}

/// ShipStation's copy of `ours`, as read back: its id, its status.
fn held(ours: &ss::Order, status: OrderStatus) -> ss::Order {
    let mut held = ours.clone();
    held.order_id = Some(7001);
    held.order_status = status;
    held
}

fn grams(w: &Option<ss::Weight>) -> Option<(Weight, &str)> {
    w.as_ref().map(|w| (w.to_core().expect("a v1 weight"), w.units.as_str()))
}

#[test]
fn shipstation_is_asked_for_the_status_the_erp_gives_the_order() {
    let mut order = paid_order("SO-1");
    for (erp, ss) in [
        (ErpOrderStatus::Open, OrderStatus::AwaitingShipment),
        (ErpOrderStatus::OnHold, OrderStatus::OnHold),
        (ErpOrderStatus::Cancelled, OrderStatus::Cancelled),
    ] {
        order.status = erp;
        assert_eq!(desired_status(&order), ss, "{erp:?}");
    }
}

#[test]
fn the_shipstation_order_is_keyed_by_the_erp_order_and_carries_its_address_and_money() {
    let mut order = paid_order("SO-1");
    order.ship_to.region = Some("Greater London".into());
    order.ship_to.phone = Some("+44 20 7946 0000".into());
    let o = built(&order);
    assert_eq!(o.order_key.as_deref(), Some("shipledger:acme-uk:SO-1"));
    assert_eq!(o.order_number, "SO-1");
    assert_eq!(o.order_id, None, "never pushed: ShipStation gives it an id");
    assert_eq!(o.order_date, Some(order.placed_at));
    assert_eq!(o.order_status, OrderStatus::AwaitingShipment);
    let to = &o.ship_to;
    assert_eq!(
        [&to.name, &to.street1, &to.city, &to.state, &to.postal_code, &to.country, &to.phone].map(|f| f.as_deref()),
        [
            Some("Ada Lovelace"),
            Some("12 St James's Sq"),
            Some("London"),
            Some("Greater London"),
            Some("SW1Y 4JH"),
            Some("GB"),
            Some("+44 20 7946 0000")
        ]
    );
    assert_eq!(o.bill_to.name.as_deref(), Some("Ada Lovelace"), "no bill-to in the ERP: ShipStation's required name only");
    assert_eq!(o.bill_to.street1, None);
    assert_eq!(o.customer_email.as_deref(), Some("ada@example.com"));
    assert_eq!(o.payment_date, Some(at(5)));
    assert_eq!(o.amount_paid, Some(Decimal::new(4495, 2)));
    assert_eq!(o.shipping_amount, Some(Decimal::new(495, 2)));
    assert_eq!(o.tax_amount, None);

    let mut billed = order.clone();
    billed.bill_to = Some(Address { name: Some("Acme Ltd".into()), city: Some("Leeds".into()), ..Default::default() });
    let o = built(&billed);
    assert_eq!((o.bill_to.name.as_deref(), o.bill_to.city.as_deref()), (Some("Acme Ltd"), Some("Leeds")));
}

#[test]
fn each_line_is_an_item_keyed_by_its_erp_line_weighed_in_grams_as_resolved_at_release() {
    let o = built(&paid_order("SO-1"));
    let items: Vec<_> = o
        .items
        .iter()
        .map(|i| (i.line_item_key.as_deref(), i.sku.as_deref(), i.quantity, i.unit_price, grams(&i.weight), i.adjustment))
        .collect();
    assert_eq!(
        items,
        [
            (Some("L1"), Some("MUG"), 2, Some(Decimal::new(1250, 2)), Some((Weight::from_grams(350), "grams")), false),
            (Some("L2"), Some("TEA"), 1, Some(Decimal::new(2000, 2)), Some((Weight::from_grams(260), "grams")), false),
            (Some("D1"), None, 1, Some(Decimal::new(-500, 2)), None, true),
        ],
        "the mug's weight is the product master's, the discount is an adjustment with no weight"
    );
    assert_eq!(grams(&o.weight), Some((Weight::from_grams(2 * 350 + 260), "grams")));
}

#[test]
fn a_line_without_a_known_weight_is_sent_without_one_and_an_order_of_none_has_no_total() {
    let order = paid_order("SO-1");
    let (record, mut lines) = released(&order);
    lines[0].unit_weight_mg = None;
    let o = build_order(&connection(), &record, &order, &lines, OrderStatus::AwaitingShipment);
    assert_eq!(o.items[0].weight, None);
    assert_eq!(grams(&o.weight), Some((Weight::from_grams(260), "grams")));
    lines[1].unit_weight_mg = None;
    let o = build_order(&connection(), &record, &order, &lines, OrderStatus::AwaitingShipment);
    assert_eq!(o.weight, None, "never a zero or made-up weight");
}

#[test]
fn the_advanced_options_carry_the_store_the_erp_id_the_currency_and_the_customers_reference() {
    let mut order = paid_order("SO-1");
    order.customer_reference = Some("PO-778".into());
    let a = built(&order).advanced_options.expect("always sent");
    assert_eq!(a.store_id, Some(42));
    assert_eq!(a.custom_field1.as_deref(), Some("SO-1"));
    assert_eq!(a.custom_field2.as_deref(), Some("GBP"));
    assert_eq!(a.custom_field3.as_deref(), Some("PO-778"));
    assert_eq!(a.source.as_deref(), Some("shipledger"));
    assert_eq!(built(&paid_order("SO-1")).advanced_options.unwrap().custom_field3, None);
}

#[test]
fn an_order_shipstation_already_has_is_sent_as_an_update_of_its_id_with_the_status_asked() {
    let order = paid_order("SO-1");
    let (mut record, lines) = released(&order);
    record.ss_order_id = Some(7001);
    let o = build_order(&connection(), &record, &order, &lines, OrderStatus::OnHold);
    assert_eq!((o.order_id, o.order_status), (Some(7001), OrderStatus::OnHold));
}

#[test]
fn an_open_order_holding_our_content_and_status_is_in_sync_and_anything_else_differs() {
    let order = paid_order("SO-1");
    let p = pending(&order, 2);
    let ours = built(&order);
    assert_eq!(compare(&p, &ours, &held(&ours, OrderStatus::AwaitingShipment)), Held::InSync);
    assert_eq!(compare(&p, &ours, &held(&ours, OrderStatus::OnHold)), Held::Differs, "ours is not on hold");
    let mut moved = held(&ours, OrderStatus::AwaitingShipment);
    moved.ship_to.postal_code = Some("BA1 1AA".into());
    assert_eq!(compare(&p, &ours, &moved), Held::Differs);
}

#[test]
fn a_shipped_order_holding_our_content_settles_the_push_and_one_without_it_is_locked_out() {
    let order = paid_order("SO-1");
    let p = pending(&order, 2);
    let ours = built(&order);
    let shipped = held(&ours, OrderStatus::Shipped);
    assert_eq!(compare(&p, &ours, &shipped), Held::Locked { undelivered: false }, "shipped is where an open order goes next");
    let mut older = shipped.clone();
    older.items[0].quantity = 3;
    assert_eq!(compare(&p, &ours, &older), Held::Locked { undelivered: true });
}

#[test]
fn a_cancellation_reaches_a_cancelled_order_whatever_it_holds_and_nothing_else_does() {
    let mut order = paid_order("SO-1");
    order.status = ErpOrderStatus::Cancelled;
    let p = pending(&order, 2);
    let ours = built(&order);
    let mut cancelled = held(&ours, OrderStatus::Cancelled);
    cancelled.ship_to.city = Some("Elsewhere".into());
    assert_eq!(compare(&p, &ours, &cancelled), Held::Locked { undelivered: false });
    assert_eq!(compare(&p, &ours, &held(&ours, OrderStatus::Shipped)), Held::Locked { undelivered: true }, "too late to cancel");

    let open = pending(&paid_order("SO-1"), 2);
    let ours_open = built(&paid_order("SO-1"));
    assert_eq!(compare(&open, &ours_open, &held(&ours_open, OrderStatus::Cancelled)), Held::Locked { undelivered: true });
    let mut on_hold = paid_order("SO-1");
    on_hold.status = ErpOrderStatus::OnHold;
    let p = pending(&on_hold, 2);
    let ours = built(&on_hold);
    assert_eq!(compare(&p, &ours, &held(&ours, OrderStatus::Shipped)), Held::Locked { undelivered: true }, "a hold cannot stop a shipped order");
}

#[test]
fn the_same_content_ignores_padding_item_order_and_what_shipstation_adds() {
    let ours = built(&paid_order("SO-1"));
    let mut theirs = held(&ours, OrderStatus::AwaitingShipment);
    theirs.ship_to.name = Some("  Ada Lovelace ".into());
    theirs.ship_to.company = Some(String::new());
    theirs.ship_to.phone = Some("555".into());
    theirs.items.reverse();
    theirs.items[0].order_item_id = Some(99);
    theirs.weight = None;
    theirs.customer_email = None;
    assert!(same_content(&ours, &theirs));
}

#[test]
fn another_number_amount_paid_or_line_is_different_content_unless_shipstation_split_or_merged_the_order() {
    let ours = built(&paid_order("SO-1"));
    let base = held(&ours, OrderStatus::AwaitingShipment);
    let mut number = base.clone();
    number.order_number = "SO-1-A".into();
    let mut paid = base.clone();
    paid.amount_paid = Some(Decimal::new(4000, 2));
    let mut price = base.clone();
    price.items[1].unit_price = Some(Decimal::new(1999, 2));
    let mut fewer = base.clone();
    fewer.items.pop();
    for (what, theirs) in [("number", &number), ("amount paid", &paid), ("price", &price), ("lines", &fewer)] {
        assert!(!same_content(&ours, theirs), "{what}");
    }
    let mut split = fewer.clone();
    split.advanced_options.as_mut().unwrap().merged_or_split = Some(true);
    assert!(same_content(&ours, &split), "a split or merged order's lines are ShipStation's");
    let mut split_number = number.clone();
    split_number.advanced_options.as_mut().unwrap().merged_or_split = Some(true);
    assert!(!same_content(&ours, &split_number), "but its number and address are still ours");
}

#[test]
fn an_earlier_attempt_could_have_created_the_order_since_its_release_when_its_id_was_never_recorded() {
    let order = paid_order("SO-1");
    let mut p = pending(&order, 2);
    p.job.created_at = at(100);
    assert_eq!(p.record.released_at, Some(at(20)));
    assert_eq!(earliest_effect(&p), at(20), "any job since the release may have created it");
    p.record.ss_order_id = Some(7001);
    assert_eq!(earliest_effect(&p), at(100), "known to ShipStation: only this job's own attempts count");
}

#[test]
fn a_read_back_that_covered_the_window_or_looked_the_order_up_knows_it_is_absent() {
    let ours = built(&paid_order("SO-1"));
    let mut seen = ReadBack { found: HashMap::new(), complete: false, looked_up: Default::default() };
    seen.found.insert("shipledger:acme-uk:SO-1".into(), held(&ours, OrderStatus::AwaitingShipment));
    assert!(matches!(seen.get("shipledger:acme-uk:SO-1"), Known::Found(o) if o.order_id == Some(7001)));
    assert!(matches!(seen.get("shipledger:acme-uk:SO-2"), Known::Unknown), "the window held more than one read-back reads");
    seen.looked_up.insert("shipledger:acme-uk:SO-2".into());
    assert!(matches!(seen.get("shipledger:acme-uk:SO-2"), Known::Absent));
    assert!(matches!(seen.get("shipledger:acme-uk:SO-3"), Known::Unknown));
    seen.complete = true;
    assert!(matches!(seen.get("shipledger:acme-uk:SO-3"), Known::Absent));
}
