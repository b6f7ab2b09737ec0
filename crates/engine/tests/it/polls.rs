//! The shipment poll and the scan sweep spend ShipStation requests only where
//! something can have changed: a brand with nothing open in ShipStation costs nothing
//! a minute, yet a void of a label it already shipped is still found.

use jiff::SignedDuration;
use serde_json::{Value, json};
use shipledger_engine::config::FulfilOn;
use shipledger_engine::flows::shipments::{self, VOID_LOOKBACK};
use shipledger_store::{EventKind, OrderState, ShipmentFilter};

use crate::helpers::{World, paid_order};

/// Every ShipStation request the sandbox has answered so far (v1 and v2).
async fn requests(w: &World) -> u64 {
    let stats = w.stats().await;
    stats["requests"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum()
}

/// `GET /shipments` requests the sandbox has answered so far (labels and voids).
async fn shipment_reads(w: &World) -> u64 {
    w.stats().await["requests"]["GET /shipments"].as_u64().unwrap_or(0)
}

/// The order pushed and labelled; the label as the sandbox made it.
async fn labelled(w: &World, erp_id: &str) -> Value {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    let id = w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed");
    let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
    w.settle().await;
    label
}

crate::stories! {
    async fn a_connection_with_nothing_open_in_shipstation_asks_it_nothing(w: World) {
        // A new brand: nothing pushed, no label. The engine polls on every pass.
        for _ in 0..3 {
            w.settle().await;
        }
        assert_eq!(requests(&w).await, 0, "no order of ours in ShipStation and no label: nothing to ask");
        for name in ["shipment_poll", "scan_sweep"] {
            let run = w.store.get_schedule("acme-uk", name).await.unwrap().expect("the pass ran");
            assert!(run.last_success_at.is_some() && run.last_error.is_none(), "{name} counts as a pass that worked: {run:?}");
            assert!(run.next_due_at.is_some(), "{name} is due again");
        }
        let conn = &w.engine.connections[0];
        assert_eq!(shipments::poll(&w.engine, conn).await.unwrap(), Default::default());
        assert_eq!(shipments::scans(&w.engine, conn).await.unwrap(), Default::default());
        assert_eq!(requests(&w).await, 0);

        // Once an order is pushed the poll asks again, and finds its label.
        let label = labelled(&w, "SO-1").await;
        let docs = w.erp_fulfilments("SO-1");
        assert_eq!(docs.len(), 1, "the label reached the ERP");
        assert_eq!(docs[0].packages[0].tracking_number, label["trackingNumber"].as_str().unwrap());
    }

    async fn a_void_of_a_shipped_orders_label_is_found_though_nothing_else_is_open(w: World) {
        w.engine.connections[0].policy.fulfil_on = FulfilOn::Label;
        let label = labelled(&w, "SO-2").await;
        assert_eq!(w.store.get_order("acme-uk", "SO-2").await.unwrap().unwrap().state, OrderState::Shipped);
        // Nothing of ours awaits shipment now; the label is live and still voidable.
        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        let found = w
            .store
            .list_shipments(ShipmentFilter { connection: Some("acme-uk".into()), erp_id: Some("SO-2".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].voided, "the poll still looked for voids and found this one");
        assert!(w.store.timeline("acme-uk", "shipment", &found[0].shipment_key).await.unwrap().iter().any(|e| e.kind == EventKind::Voided));
    }

    async fn a_shipped_orders_label_past_the_void_look_back_is_no_longer_asked_about(w: World) {
        let clock = w.manual_clock();
        w.engine.connections[0].policy.fulfil_on = FulfilOn::Label;
        labelled(&w, "SO-3").await;
        assert_eq!(w.store.get_order("acme-uk", "SO-3").await.unwrap().unwrap().state, OrderState::Shipped);
        let conn = &w.engine.connections[0];
        let before = requests(&w).await;
        shipments::poll(&w.engine, conn).await.unwrap();
        assert!(requests(&w).await > before, "a label made today may still be voided: the poll asks");

        clock.advance(VOID_LOOKBACK + SignedDuration::from_hours(1));
        let before = requests(&w).await;
        shipments::poll(&w.engine, conn).await.unwrap();
        assert_eq!(requests(&w).await, before, "past the void look-back, with no order open, the poll asks nothing");
    }

    async fn a_burst_of_labels_costs_its_pages_once_not_again_at_every_poll_of_the_overlap(w: World) {
        // A warehouse prints 520 labels at once: more than one page of 500.
        for n in 1..=520 {
            w.erp.put(paid_order(&format!("SO-{n}")));
        }
        w.settle().await;
        for n in 1..=520 {
            let id = w.store.get_order("acme-uk", &format!("SO-{n}")).await.unwrap().unwrap().ss_order_id.expect("pushed");
            w.control(&format!("/orders/{id}/labels"), json!({})).await;
        }
        let conn = &w.engine.connections[0];
        let before = shipment_reads(&w).await;
        shipments::poll(&w.engine, conn).await.unwrap();
        assert_eq!(shipment_reads(&w).await - before, 3, "two pages of new labels and one of voids");
        let held = w.store.list_shipments(ShipmentFilter { connection: Some("acme-uk".into()), ..Default::default() }).await.unwrap();
        assert_eq!(held.len(), 520, "every label is held");

        // The next polls fall within the overlap, which still holds all 520: ShipStation
        // lists as many there as the store holds, so one page says so.
        for _ in 0..2 {
            let before = shipment_reads(&w).await;
            shipments::poll(&w.engine, conn).await.unwrap();
            assert_eq!(shipment_reads(&w).await - before, 2, "one page of labels (the count matches) and one of voids");
        }

        // A label ShipStation lists late: created before the watermark, shown after
        // it moved. The counts differ, so the whole overlap is read again and it is found.
        w.erp.put(paid_order("SO-LATE"));
        w.settle().await;
        let id = w.store.get_order("acme-uk", "SO-LATE").await.unwrap().unwrap().ss_order_id.expect("pushed");
        let backdated = held.iter().map(|s| s.shipment.ss_created_at).min().unwrap() + SignedDuration::from_millis(1);
        let late = w.sandbox.edit_world(|world| world.create_label(id, &Default::default(), backdated)).expect("the late label is made");
        let before = shipment_reads(&w).await;
        shipments::poll(&w.engine, conn).await.unwrap();
        assert_eq!(shipment_reads(&w).await - before, 3, "both pages of the overlap read again, and one of voids");
        let found = w
            .store
            .list_shipments(ShipmentFilter { connection: Some("acme-uk".into()), erp_id: Some("SO-LATE".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(found.iter().map(|s| s.shipment.ss_id).collect::<Vec<_>>(), [late], "the late label is held");
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-LATE").len(), 1, "and it reached the ERP");
    }
}
