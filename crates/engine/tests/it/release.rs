//! The release gate at work: what reaches ShipStation and what is held, for whom.

use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::order::{ErpOrderStatus, PaymentState};
use shipledger_core::weight::Weight;
use shipledger_store::{ExceptionFilter, ExceptionState, OrderState};

use crate::helpers::{World, paid_order};

/// Just past the default `held_recheck_interval` (5 minutes).
const PAST_RECHECK: jiff::SignedDuration = jiff::SignedDuration::from_secs(301);

async fn timeline(w: &World, erp_id: &str) -> Vec<String> {
    w.store.timeline("acme-uk", "order", erp_id).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect()
}

async fn open_exceptions(w: &World, erp_id: &str) -> Vec<shipledger_store::ExceptionRecord> {
    w.store
        .list_exceptions(ExceptionFilter {
            record_id: Some(erp_id.into()),
            state: Some(ExceptionState::Open),
            ..Default::default()
        })
        .await
        .unwrap()
}

crate::stories! {
    async fn a_paid_complete_order_reaches_shipstation_once_with_its_evidence_and_timeline(w: World) {
        w.erp.put(paid_order("SO-1"));
        w.settle().await;
        let orders = w.ss_orders("SO-1").await;
        assert_eq!(orders.len(), 1);
        let o = &orders[0];
        assert_eq!(o["orderKey"], json!("shipledger:acme-uk:SO-1"));
        assert_eq!(o["orderStatus"], json!("awaiting_shipment"));
        assert_eq!(o["items"][0]["lineItemKey"], json!("SO-1-1"));
        assert_eq!(o["items"][0]["weight"]["value"], json!(350), "the MUG's weight came from the product master");
        assert_eq!(o["items"][1]["weight"]["value"], json!(260), "the line's own weight wins");
        assert_eq!(o["advancedOptions"]["customField2"], json!("GBP"));

        let record = w.store.get_order("acme-uk", "SO-1").await.unwrap().unwrap();
        assert_eq!(record.state, OrderState::Pushed);
        assert_eq!(record.ss_order_id, o["orderId"].as_i64());
        assert_eq!(record.payment.as_ref().unwrap()["source"], json!("payment:PAY-SO-1"));
        let kinds: Vec<String> = w.store.timeline("acme-uk", "order", "SO-1").await.unwrap().into_iter().map(|e| e.kind.to_string()).collect();
        assert_eq!(kinds, ["released", "pushed"]);

        // Seen again unchanged: nothing is sent.
        w.erp.edit("SO-1", |_| {});
        w.settle().await;
        assert_eq!(w.ss_orders("SO-1").await.len(), 1);
        assert_eq!(w.stats().await["requests"]["POST /orders/createorders"], json!(1));
    }

    async fn a_zero_weight_line_is_held_for_ops_and_released_by_itself_once_the_erp_is_fixed(w: World) {
        let mut order = paid_order("SO-2");
        order.lines[1].sku = Some("CARD".into());
        order.lines[1].unit_weight = Some(Weight::ZERO);
        w.erp.put(order);
        w.settle().await;
        assert!(w.ss_orders("SO-2").await.is_empty(), "never pushed with a made-up weight");
        let open = open_exceptions(&w, "SO-2").await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, ExceptionKind::HeldMissingWeight);
        assert_eq!(open[0].owner, Owner::Ops);
        assert_eq!(open[0].detail["fields"], json!(["lines[SO-2-2].weight"]));
        assert_eq!(w.store.get_order("acme-uk", "SO-2").await.unwrap().unwrap().state, OrderState::Held);

        w.erp.edit("SO-2", |o| o.lines[1].unit_weight = Some(Weight::from_grams(40)));
        w.settle().await;
        assert_eq!(w.ss_orders("SO-2").await.len(), 1);
        assert!(open_exceptions(&w, "SO-2").await.is_empty(), "the exception closed by itself");
    }

    async fn an_authorised_only_order_waits_for_capture_and_is_owned_by_finance(w: World) {
        let mut order = paid_order("SO-3");
        order.payment.state = PaymentState::Authorised;
        w.erp.put(order);
        w.settle().await;
        assert!(w.ss_orders("SO-3").await.is_empty());
        let open = open_exceptions(&w, "SO-3").await;
        assert_eq!((open[0].kind, open[0].owner), (ExceptionKind::HeldUnpaid, Owner::Finance));
        w.erp.edit("SO-3", |o| o.payment.state = PaymentState::Captured);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-3").await.len(), 1);
    }

    async fn unknown_skus_and_incomplete_addresses_are_held_naming_the_fields(w: World) {
        let mut order = paid_order("SO-4");
        order.lines[0].sku = Some("NOT-IN-MASTER".into());
        order.ship_to.postal_code = None;
        w.erp.put(order);
        w.settle().await;
        assert!(w.ss_orders("SO-4").await.is_empty());
        let open = open_exceptions(&w, "SO-4").await;
        let kinds: Vec<_> = open.iter().map(|e| e.kind).collect();
        assert!(kinds.contains(&ExceptionKind::HeldUnknownSku) && kinds.contains(&ExceptionKind::HeldIncompleteAddress), "{kinds:?}");
        // Re-seeing the same fault refreshes, never duplicates.
        w.erp.edit("SO-4", |o| o.customer_email = Some("new@example.com".into()));
        w.settle().await;
        let again = open_exceptions(&w, "SO-4").await;
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|e| e.occurrences == 2));
    }

    async fn an_order_cancelled_before_release_never_reaches_shipstation(w: World) {
        let mut order = paid_order("SO-5");
        order.payment.state = PaymentState::Unpaid;
        w.erp.put(order);
        w.settle().await;
        w.erp.edit("SO-5", |o| o.status = ErpOrderStatus::Cancelled);
        w.settle().await;
        assert!(w.ss_orders("SO-5").await.is_empty());
        assert_eq!(w.store.get_order("acme-uk", "SO-5").await.unwrap().unwrap().state, OrderState::Cancelled);
        assert!(open_exceptions(&w, "SO-5").await.is_empty(), "a cancelled order needs nobody");
    }

    async fn a_held_order_is_released_within_the_recheck_interval_once_its_product_gets_a_weight(w: World) {
        let clock = w.manual_clock();
        let mut order = paid_order("SO-20");
        order.lines[0].sku = Some("BOX".into()); // no weight on the line or in the master
        w.erp.put(order);
        w.settle().await;
        let open = open_exceptions(&w, "SO-20").await;
        assert_eq!(open.iter().map(|e| e.kind).collect::<Vec<_>>(), [ExceptionKind::HeldMissingWeight]);
        let before = timeline(&w, "SO-20").await;

        // Read again unchanged after the interval: nothing is written, nothing refreshed.
        clock.advance(PAST_RECHECK);
        w.settle().await;
        assert_eq!(timeline(&w, "SO-20").await, before);
        assert_eq!(open_exceptions(&w, "SO-20").await[0].occurrences, 1);

        // The fix is made on the product, not on the order: the feed never shows it.
        w.erp.products.lock().unwrap().get_mut("BOX").unwrap().unit_weight = Some(Weight::from_grams(500));
        w.settle().await;
        assert!(w.ss_orders("SO-20").await.is_empty(), "not before the interval is up");
        clock.advance(jiff::SignedDuration::from_secs(290));
        w.settle().await;
        assert!(w.ss_orders("SO-20").await.is_empty(), "still not: 5 minutes have not passed since the last recheck");

        clock.advance(jiff::SignedDuration::from_secs(11));
        w.settle().await;
        let orders = w.ss_orders("SO-20").await;
        assert_eq!(orders.len(), 1, "released by the recheck");
        assert_eq!(orders[0]["items"][0]["weight"]["value"], json!(500));
        assert!(open_exceptions(&w, "SO-20").await.is_empty(), "the hold closed by itself");
        assert_eq!(w.store.get_order("acme-uk", "SO-20").await.unwrap().unwrap().state, OrderState::Pushed);
        assert_eq!(
            w.store.get_watermark("acme-uk", "erp_orders").await.unwrap().unwrap(),
            shipledger_erp::Cursor { updated_at: w.erp.orders.lock().unwrap()[0].updated_at, erp_id: "SO-20".into() }.to_watermark(),
            "the recheck leaves the change feed's watermark alone"
        );
    }

    async fn held_orders_are_read_again_in_batches_of_a_hundred(w: World) {
        let clock = w.manual_clock();
        for n in 0..150 {
            let mut order = paid_order(&format!("H-{n:03}"));
            order.ship_to.postal_code = None;
            w.erp.put(order);
        }
        w.settle().await;
        assert_eq!(w.store.count_orders_by_state("acme-uk").await.unwrap(), vec![(OrderState::Held, 150)]);
        let reads = *w.erp.reads_by_id.lock().unwrap();
        for n in 0..150 {
            w.erp.edit_quietly(&format!("H-{n:03}"), |o| o.ship_to.postal_code = Some("SW1Y 4JH".into()));
        }
        clock.advance(PAST_RECHECK);
        w.settle().await;
        assert_eq!(*w.erp.reads_by_id.lock().unwrap() - reads, 2, "150 held orders, two reads");
        assert_eq!(w.store.count_orders_by_state("acme-uk").await.unwrap(), vec![(OrderState::Pushed, 150)]);
        assert_eq!(w.stats().await["orders"], json!(150));
    }

    async fn a_released_order_the_erp_withdraws_behind_the_feed_is_cancelled_in_shipstation_with_an_ops_exception_giving_the_reason(w: World) {
        let clock = w.manual_clock();
        w.erp.put(paid_order("SO-21"));
        w.settle().await;
        assert_eq!(w.ss_orders("SO-21").await[0]["orderStatus"], json!("awaiting_shipment"));

        let reason = "sale done in Tryton with its shipment cancelled and the moves ignored: nothing is left to ship";
        w.erp.edit_quietly("SO-21", |o| {
            o.status = ErpOrderStatus::Cancelled;
            o.status_reason = Some(reason.into());
        });
        w.settle().await;
        assert_eq!(w.ss_orders("SO-21").await[0]["orderStatus"], json!("awaiting_shipment"), "the feed does not show it");

        clock.advance(PAST_RECHECK);
        w.settle().await;
        let orders = w.ss_orders("SO-21").await;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0]["orderStatus"], json!("cancelled"));
        assert_eq!(w.store.get_order("acme-uk", "SO-21").await.unwrap().unwrap().state, OrderState::Cancelled);
        let open = open_exceptions(&w, "SO-21").await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!((open[0].kind, open[0].owner), (ExceptionKind::OrderWithdrawn, Owner::Ops));
        assert_eq!(open[0].detail["reason"], json!(reason));
        assert!(open[0].detail["message"].as_str().unwrap().contains("shipledger:acme-uk:SO-21"), "{}", open[0].detail);
    }

    async fn a_withdrawn_order_shipstation_already_labelled_raises_at_once_which_label_to_void_and_is_cancelled_once_it_is(w: World) {
        let clock = w.manual_clock();
        w.erp.put(paid_order("SO-22"));
        w.settle().await;
        let id = w.ss_orders("SO-22").await[0]["orderId"].as_i64().unwrap();
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
        let tracking = label["trackingNumber"].as_str().unwrap().to_string();
        w.settle().await;

        w.erp.edit_quietly("SO-22", |o| {
            o.status = ErpOrderStatus::Cancelled;
            o.status_reason = Some("cancelled in the sandbox ERP: customer changed their mind".into());
        });
        clock.advance(PAST_RECHECK);
        w.engine.tick().await.unwrap();
        let open = open_exceptions(&w, "SO-22").await;
        let after = open.iter().find(|e| e.kind == ExceptionKind::OrderWithdrawn).expect("raised on the recheck itself");
        let message = after.detail["message"].as_str().unwrap();
        assert!(message.contains(&tracking) && message.contains("void"), "{message}");
        assert!(message.contains("customer changed their mind"), "{message}");
        assert_eq!(after.owner, Owner::Ops);

        // The cancel ShipStation refuses for the labelled order raises nothing more:
        // the one exception already says what to undo.
        w.settle().await;
        let open = open_exceptions(&w, "SO-22").await;
        assert_eq!(open.iter().map(|e| e.kind).collect::<Vec<_>>(), [ExceptionKind::OrderWithdrawn], "{open:?}");
        assert_eq!(w.store.get_order("acme-uk", "SO-22").await.unwrap().unwrap().state, OrderState::Cancelled);
        assert_eq!(w.ss_orders("SO-22").await[0]["orderStatus"], json!("shipped"), "the labelled order is left for a person to void");

        // Once the label is voided, ShipStation takes changes again: the withdrawal reaches it.
        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        assert_eq!(w.ss_orders("SO-22").await[0]["orderStatus"], json!("cancelled"), "cancelled once nothing is labelled");
    }

    async fn a_released_order_cancelled_in_the_feed_raises_an_ops_exception_with_the_erps_reason(w: World) {
        w.erp.put(paid_order("SO-23"));
        w.settle().await;
        w.erp.edit("SO-23", |o| {
            o.status = ErpOrderStatus::Cancelled;
            o.status_reason = Some("cancelled in the sandbox ERP: out of stock".into());
        });
        w.settle().await;
        assert_eq!(w.ss_orders("SO-23").await[0]["orderStatus"], json!("cancelled"));
        let open = open_exceptions(&w, "SO-23").await;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, ExceptionKind::OrderWithdrawn);
        assert_eq!(open[0].detail["reason"], json!("cancelled in the sandbox ERP: out of stock"));
    }

    async fn a_held_order_whose_product_the_erp_reports_changed_is_released_at_the_next_poll_without_waiting_for_the_recheck(w: World) {
        let _clock = w.manual_clock(); // time stands still: no scheduled recheck comes
        let mut order = paid_order("SO-24");
        order.lines[0].sku = Some("BOX".into());
        w.erp.put(order);
        w.settle().await;
        assert_eq!(w.store.get_order("acme-uk", "SO-24").await.unwrap().unwrap().state, OrderState::Held);
        w.erp.products.lock().unwrap().get_mut("BOX").unwrap().unit_weight = Some(Weight::from_grams(500));
        w.settle().await;
        assert!(w.ss_orders("SO-24").await.is_empty(), "nobody said the product changed");

        w.erp.touched.lock().unwrap().extend(["SO-24".to_string(), "SO-NOT-HELD".to_string()]);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-24").await.len(), 1, "released at the next poll");
        assert!(open_exceptions(&w, "SO-24").await.is_empty());
    }
}

#[test]
fn an_order_keeps_the_hash_it_was_stored_with_so_an_upgrade_pushes_nothing_again() {
    use shipledger_engine::flows::release::snapshot_hash;
    let order = paid_order("SO-1");
    // The hash this order was stored with before customer references and status reasons
    // existed: were it to move, the recheck would find every stored order changed and
    // push it again (refused as locked for those already labelled).
    assert_eq!(snapshot_hash(&order), "9402e50ff16eb7e54502d110729c06fc");
    let mut with_new_fields = order.clone();
    with_new_fields.customer_reference = Some("PO-778".into());
    with_new_fields.status_reason = Some("on hold for a credit check".into());
    assert_eq!(snapshot_hash(&with_new_fields), snapshot_hash(&order));
    let mut moved = order.clone();
    moved.ship_to.postal_code = Some("EC1A 1BB".into());
    assert_ne!(snapshot_hash(&moved), snapshot_hash(&order), "what ShipStation must know still counts");
}
