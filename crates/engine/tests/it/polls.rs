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

/// The order pushed and labelled; the label as the sandbox made it.
async fn labelled(w: &World, erp_id: &str) -> Value {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    let id = w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed");
    let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
    w.settle().await;
    label
}

/// Labels the engine's shipment poll read: each call of [`shipments::poll`] once a
/// minute of both clocks, what it saw (labels re-read included).
async fn polled_each_minute(w: &World, clock: &shipledger_core::clock::ManualClock, minutes: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..minutes {
        w.pass(clock, SignedDuration::from_mins(1)).await;
        seen.push(shipments::poll(&w.engine, &w.engine.connections[0]).await.unwrap().seen);
    }
    seen
}

crate::stories! {
    async fn a_burst_of_labels_is_re_read_only_within_the_overlap_and_a_label_made_later_is_still_found(w: World) {
        let clock = w.manual_clock();
        for n in 1..=3 {
            labelled(&w, &format!("SO-{n}")).await;
        }
        // The carrier never scans them, so the three orders stay open: the poll runs
        // every minute. A two-minute overlap (twice the interval), not ten.
        w.engine.connections[0].policy.shipment_poll_interval = std::time::Duration::from_secs(60);
        assert_eq!(shipments::overlap(&w.engine.connections[0]), SignedDuration::from_mins(2));
        let seen = polled_each_minute(&w, &clock, 8).await;
        assert_eq!(seen[0], 3, "the first poll after the burst re-reads it: {seen:?}");
        // Past the overlap a read starts at the newest label ShipStation showed, so it
        // is the only one read again; a ten-minute overlap re-read all three on every
        // one of the eight polls.
        assert!(seen[4..].iter().all(|n| *n <= 1), "past the overlap the burst is not read again: {seen:?}");
        assert!(seen.iter().sum::<u64>() <= 3 * 4 + 4, "{seen:?}");

        // A fourth label, made after the quiet spell, is found by the next poll.
        w.erp.put(paid_order("SO-4"));
        w.settle().await;
        let id = w.store.get_order("acme-uk", "SO-4").await.unwrap().unwrap().ss_order_id.expect("pushed");
        let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.pass(&clock, SignedDuration::from_mins(1)).await;
        let report = shipments::poll(&w.engine, &w.engine.connections[0]).await.unwrap();
        assert_eq!(report.new, 1, "the new label is read: {report:?}");
        assert!(report.seen <= 2, "with at most the newest one before it: {report:?}");
        let found = w
            .store
            .list_shipments(ShipmentFilter { connection: Some("acme-uk".into()), erp_id: Some("SO-4".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "the later label was ingested");
        assert_eq!(found[0].tracking_number.as_deref(), label["trackingNumber"].as_str());
    }

    async fn an_engine_whose_clock_runs_ahead_of_shipstation_still_finds_the_next_label(w: World) {
        let clock = w.manual_clock();
        labelled(&w, "SO-1").await;
        w.engine.connections[0].policy.shipment_poll_interval = std::time::Duration::from_secs(60);
        // Our clock runs an hour ahead of ShipStation's; a poll now covers no further
        // than the overlap past the newest label ShipStation showed.
        clock.advance(SignedDuration::from_hours(1));
        let conn = &w.engine.connections[0];
        assert_eq!(shipments::poll(&w.engine, conn).await.unwrap().seen, 1);
        // ShipStation makes the next label a few seconds later on its own clock.
        w.erp.put(paid_order("SO-2"));
        w.settle().await;
        let id = w.store.get_order("acme-uk", "SO-2").await.unwrap().unwrap().ss_order_id.expect("pushed");
        w.control(&format!("/orders/{id}/labels"), json!({})).await;
        clock.advance(SignedDuration::from_mins(1));
        let report = shipments::poll(&w.engine, conn).await.unwrap();
        assert_eq!(report.new, 1, "the label made after the newest one seen is read: {report:?}");
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-2").len(), 1, "then packed in the ERP");
    }

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
}
