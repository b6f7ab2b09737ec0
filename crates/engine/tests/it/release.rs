//! The release gate at work: what reaches ShipStation and what is held, for whom.

use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::order::{ErpOrderStatus, PaymentState};
use shipledger_core::weight::Weight;
use shipledger_store::{ExceptionFilter, ExceptionState, OrderState};

use crate::helpers::{World, paid_order};

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
        let kinds: Vec<String> = w.store.timeline("acme-uk", "order", "SO-1").await.unwrap().into_iter().map(|e| e.kind).collect();
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
}
