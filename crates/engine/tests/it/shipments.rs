//! Shipments come back to the right ERP lines: packed on label, completed on the
//! first carrier scan, voids reversed, splits and fulfillments mapped, nothing twice.

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_erp::FulfilmentState;
use shipledger_store::{EventKind, ExceptionFilter, ExceptionState, OrderState, ShipmentState};

use shipledger_core::clock::Clock;
use shipledger_engine::config::Policy;

use crate::helpers::{World, paid_order};

async fn pushed_order_id(w: &World, erp_id: &str) -> i64 {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed")
}

async fn open_kinds(w: &World) -> Vec<ExceptionKind> {
    w.store
        .list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

crate::stories! {
    async fn a_label_packs_the_erp_fulfilment_and_only_the_first_carrier_scan_completes_it(w: World) {
        let id = pushed_order_id(&w, "SO-100").await;
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups", "shipmentCost": 7.25})).await;
        let tracking = label["trackingNumber"].as_str().unwrap().to_string();
        w.settle().await;
        let docs = w.erp_fulfilments("SO-100");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].state, FulfilmentState::Packed);
        assert_eq!(docs[0].packages[0].tracking_number, tracking);
        assert_eq!(docs[0].lines, vec![("SO-100-1".to_string(), 2), ("SO-100-2".to_string(), 1)]);

        // An electronic notice is not a scan.
        w.control("/tracking/events", json!({"trackingNumber": tracking, "statusCode": "NY", "statusDetailCode": "ELEC_ADVICE_RECD_BY_CARRIER"})).await;
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-100")[0].state, FulfilmentState::Packed);

        w.control("/tracking/events", json!({"trackingNumber": tracking, "statusCode": "IT"})).await;
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-100")[0].state, FulfilmentState::Completed);
        assert_eq!(w.store.get_order("acme-uk", "SO-100").await.unwrap().unwrap().state, OrderState::Shipped);
        // Seen again by the next polls: nothing is written twice.
        w.settle().await;
        let writes = w.erp.fulfilment_writes.lock().unwrap().len();
        assert_eq!(writes, 2, "one packed and one completed write");
    }

    async fn two_parcels_make_two_fulfilments_and_the_order_ships_when_both_are_scanned(w: World) {
        let id = pushed_order_id(&w, "SO-101").await;
        let a = w.control(&format!("/orders/{id}/labels"), json!({"items": [{"lineItemKey": "SO-101-1"}]})).await;
        w.settle().await;
        let b = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        let docs = w.erp_fulfilments("SO-101");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].lines, vec![("SO-101-2".to_string(), 1)]);
        w.control("/tracking/events", json!({"trackingNumber": a["trackingNumber"], "statusCode": "AC"})).await;
        w.settle().await;
        assert_ne!(w.store.get_order("acme-uk", "SO-101").await.unwrap().unwrap().state, OrderState::Shipped);
        w.control("/tracking/events", json!({"trackingNumber": b["trackingNumber"], "statusCode": "IT"})).await;
        w.settle().await;
        assert_eq!(w.store.get_order("acme-uk", "SO-101").await.unwrap().unwrap().state, OrderState::Shipped);
        assert!(w.erp_fulfilments("SO-101").iter().all(|d| d.state == FulfilmentState::Completed));
    }

    async fn a_voided_label_reverses_its_packed_fulfilment_and_the_new_label_carries_the_live_number(w: World) {
        let id = pushed_order_id(&w, "SO-102").await;
        let first = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        let shipment_id = first["shipment"]["shipmentId"].as_i64().unwrap();
        w.control(&format!("/shipments/{shipment_id}/void"), json!({})).await;
        let second = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        let docs = w.erp_fulfilments("SO-102");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].state, FulfilmentState::Cancelled);
        assert_eq!(docs[1].state, FulfilmentState::Packed);
        assert_eq!(docs[1].packages[0].tracking_number, second["trackingNumber"].as_str().unwrap());
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_made_again_before_the_old_ones_void_is_seen_waits_for_the_reversal_and_is_never_refused(w: World) {
        // ShipStation is polled at the default interval, on a clock that moves only
        // when the story says.
        let clock = w.manual_clock();
        let poll = Policy::default().shipment_poll_interval;
        w.engine.connections[0].policy.shipment_poll_interval = poll;
        let poll_due = jiff::SignedDuration::try_from(poll).unwrap() + jiff::SignedDuration::from_secs(1);
        let hints_settled = jiff::SignedDuration::try_from(w.engine.connections[0].policy.webhook_coalesce).unwrap();
        // The ERP refuses a fulfilment beyond the order's lines, as real ones do.
        w.erp.checks_quantities.store(true, std::sync::atomic::Ordering::SeqCst);
        let id = pushed_order_id(&w, "SO-108").await;
        let first = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        clock.advance(poll_due);
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-108")[0].state, FulfilmentState::Packed);
        // The warehouse goes on labelling for a quarter of an hour: the label window a
        // webhook's poll reads has moved past the first label.
        let other = pushed_order_id(&w, "SO-110").await;
        w.pass(&clock, jiff::SignedDuration::from_mins(15)).await;
        w.control(&format!("/orders/{other}/labels"), json!({})).await;
        clock.advance(poll_due);
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-110").len(), 1);
        // Voided and made again; the new label comes by webhook, while the void (v1
        // announces none) waits for the next poll: every line is still on the first
        // label's packed fulfilment, so the new one must wait, not be sent and refused.
        w.control(&format!("/shipments/{}/void", first["shipment"]["shipmentId"]), json!({})).await;
        let second = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        let (a, b) = (first["trackingNumber"].as_str().unwrap().to_string(), second["trackingNumber"].as_str().unwrap().to_string());
        let mut hint = shipledger_store::Change::new("acme-uk", clock.now());
        hint.jobs.push(shipledger_store::NewJob::new(
            shipledger_store::IngestV1Webhook {
                resource_url: format!("{}/shipments?trackingNumber={b}&includeShipmentItems=True", w.sandbox.base_url()),
                resource_type: "SHIP_NOTIFY".into(),
                received_at: None,
            },
            format!("v1hook:{b}"),
            clock.now(),
        ));
        w.store.commit(hint).await.unwrap();
        clock.advance(hints_settled);
        w.settle().await;
        assert!(w.store.get_shipment("acme-uk", &format!("label:{}", second["shipment"]["shipmentId"])).await.unwrap().is_some(), "the webhook brought the new label");
        assert_eq!(w.erp_fulfilments("SO-108").len(), 1, "nothing written for the new label while the old one holds its lines");
        // The poll sees the void: the reversal is written, then at once the new label.
        clock.advance(poll_due);
        w.settle().await;
        let docs = w.erp_fulfilments("SO-108");
        assert_eq!(docs.iter().map(|d| d.state).collect::<Vec<_>>(), vec![FulfilmentState::Cancelled, FulfilmentState::Packed]);
        assert_eq!(docs[1].packages[0].tracking_number, b);
        let refused = w.erp.refused.lock().unwrap().clone();
        assert!(refused.is_empty(), "no write the ERP refused: {refused:?}");
        let writes: Vec<(String, FulfilmentState)> = w
            .erp
            .fulfilment_writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.erp_order_id == "SO-108")
            .map(|w| (w.packages[0].tracking_number.clone(), w.state))
            .collect();
        assert_eq!(
            writes,
            vec![(a.clone(), FulfilmentState::Packed), (a, FulfilmentState::Cancelled), (b, FulfilmentState::Packed)],
            "each label written once per phase, the old one's reversal first"
        );
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_voided_while_its_packed_write_is_in_flight_has_the_fulfilment_that_write_made_cancelled(w: World) {
        // The race of a real ERP that takes its time: the void is recorded while the
        // packed write is on its way, and that write's answer is recorded after it.
        let _clock = w.manual_clock();
        let conn = &w.engine.connections[0];
        let id = pushed_order_id(&w, "SO-120").await;
        let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        let key = format!("label:{}", label["shipment"]["shipmentId"]);
        shipledger_engine::flows::shipments::poll(&w.engine, conn).await.unwrap();
        let held = w.erp.write_gate.lock().await;
        let mut written = shipledger_engine::flows::shipments::ShipmentReport::default();
        let (worked, ()) = tokio::join!(shipledger_engine::flows::write_fulfilment::step(&w.engine, conn, &mut written), async {
            for _ in 0..1_000 {
                if !w.erp.fulfilment_writes.lock().unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 1, "the packed write is in flight");
            w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
            let polled = shipledger_engine::flows::shipments::poll(&w.engine, conn).await.unwrap();
            assert_eq!(polled.voided, 1, "the void is recorded while the write is in flight: {polled:?}");
            drop(held);
        });
        assert!(worked.unwrap());
        assert_eq!(written.written, 1, "the packed write's answer came after the void");
        w.settle().await;
        let docs = w.erp_fulfilments("SO-120");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].state, FulfilmentState::Cancelled, "the fulfilment the in-flight write made is reversed");
        let shipment = w.store.get_shipment("acme-uk", &key).await.unwrap().unwrap();
        assert!(shipment.voided);
        assert_eq!(shipment.state, ShipmentState::Reversed);
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_voided_while_its_packed_write_is_unconfirmed_has_the_fulfilment_the_erp_got_cancelled(w: World) {
        let clock = w.manual_clock();
        let id = pushed_order_id(&w, "SO-121").await;
        // The packed write reaches the ERP, which records it, but its answer and the
        // read-back are lost: the store does not know the ERP holds it, and the write
        // waits for its retry.
        w.erp.answers_lost.store(1, std::sync::atomic::Ordering::SeqCst);
        w.erp.read_failures.store(1, std::sync::atomic::Ordering::SeqCst);
        let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        let key = format!("label:{}", label["shipment"]["shipmentId"]);
        w.settle().await;
        assert_eq!(w.erp_fulfilments("SO-121").iter().map(|d| d.state).collect::<Vec<_>>(), vec![FulfilmentState::Packed]);
        let shipment = w.store.get_shipment("acme-uk", &key).await.unwrap().unwrap();
        assert_eq!((shipment.state, shipment.erp_fulfilment_id.clone()), (ShipmentState::Seen, None), "the write is not confirmed");

        // The label is voided before the write is tried again.
        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        // The packed write's retry comes, and writes nothing more.
        clock.advance(jiff::SignedDuration::from_mins(5));
        w.settle().await;
        let docs = w.erp_fulfilments("SO-121");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].state, FulfilmentState::Cancelled, "the fulfilment the ERP got is reversed");
        let writes: Vec<FulfilmentState> = w.erp.fulfilment_writes.lock().unwrap().iter().map(|x| x.state).collect();
        assert_eq!(writes, vec![FulfilmentState::Packed, FulfilmentState::Cancelled]);
        let shipment = w.store.get_shipment("acme-uk", &key).await.unwrap().unwrap();
        assert_eq!((shipment.state, shipment.erp_fulfilment_id.as_deref()), (ShipmentState::Reversed, Some(docs[0].id.as_str())));
        let story = w.store.order_timeline("acme-uk", "SO-121").await.unwrap();
        assert!(story.iter().any(|e| e.event.kind == EventKind::ErpCancelled), "{story:?}");
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_voided_before_its_packed_write_reached_the_erp_is_reversed_with_no_erp_write(w: World) {
        let clock = w.manual_clock();
        let id = pushed_order_id(&w, "SO-122").await;
        // The packed write times out before the ERP gets it, and so does its read-back:
        // the outcome is unknown, and the write waits for its retry.
        w.erp.write_failures.lock().unwrap().push_back(shipledger_erp::ErpError::Unavailable { url: "fake://erp".into(), detail: "timed out".into() });
        w.erp.read_failures.store(1, std::sync::atomic::Ordering::SeqCst);
        let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        let key = format!("label:{}", label["shipment"]["shipmentId"]);
        w.settle().await;
        assert!(w.erp_fulfilments("SO-122").is_empty());
        assert_eq!(w.store.get_shipment("acme-uk", &key).await.unwrap().unwrap().state, ShipmentState::Seen);

        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        clock.advance(jiff::SignedDuration::from_mins(5));
        w.settle().await;
        // The ERP was asked, holds nothing for the label, and is written nothing: no
        // reversal of a fulfilment it never had, no packed write after the void.
        assert!(w.erp_fulfilments("SO-122").is_empty(), "{:?}", w.erp_fulfilments("SO-122"));
        assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 1, "only the packed write that never arrived");
        let shipment = w.store.get_shipment("acme-uk", &key).await.unwrap().unwrap();
        assert!(shipment.voided);
        assert_eq!((shipment.state, shipment.erp_fulfilment_id.clone()), (ShipmentState::Reversed, None));
        // The timeline says why nothing was reversed.
        let story = w.store.order_timeline("acme-uk", "SO-122").await.unwrap();
        let said = story.iter().find(|e| e.event.kind == EventKind::ErpNothingToReverse).unwrap_or_else(|| panic!("the timeline says nothing was reversed: {story:?}"));
        assert_eq!(said.tracking_number.as_deref(), label["trackingNumber"].as_str());
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_voided_after_completion_is_an_exception_that_says_what_to_undo(w: World) {
        let id = pushed_order_id(&w, "SO-103").await;
        let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        w.control("/tracking/events", json!({"trackingNumber": label["trackingNumber"], "statusCode": "IT"})).await;
        w.settle().await;
        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        let open = w.store.list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), ..Default::default() }).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, ExceptionKind::VoidAfterWriteBack);
        assert!(open[0].detail["message"].as_str().unwrap().contains("FUL-1"), "{}", open[0].detail);
        // The order's timeline says the reversal failed, with the label's tracking number.
        let story = w.store.order_timeline("acme-uk", "SO-103").await.unwrap();
        let failed = story.iter().find(|e| e.event.kind == "erp_cancelled_failed").expect("the failed write-back is on the timeline");
        assert_eq!(failed.tracking_number.as_deref(), label["trackingNumber"].as_str());
    }

    async fn an_order_marked_shipped_elsewhere_completes_its_erp_fulfilment(w: World) {
        let id = pushed_order_id(&w, "SO-104").await;
        w.control(&format!("/orders/{id}/mark-shipped"), json!({"carrierCode": "DHL", "trackingNumber": "JD01"})).await;
        w.settle().await;
        let docs = w.erp_fulfilments("SO-104");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].state, FulfilmentState::Completed);
        assert_eq!(docs[0].packages[0].tracking_number, "JD01");
    }

    async fn a_label_for_an_order_shipledger_never_pushed_is_an_orphan_for_ops(w: World) {
        // One of our orders awaits shipment in ShipStation, so the shipment poll runs
        // (with nothing of ours open there it asks nothing: see
        // `a_connection_with_nothing_open_in_shipstation_asks_it_nothing` in scans.rs).
        pushed_order_id(&w, "SO-1").await;
        let r = w.http
            .post(format!("{}/orders/createorder", w.sandbox.base_url()))
            .basic_auth("sandbox-key", Some("sandbox-secret"))
            .json(&json!({"orderNumber": "HAND-1", "orderKey": "typed-by-hand", "orderDate": "2024-07-01 10:00:00",
                "orderStatus": "awaiting_shipment", "billTo": {"name": "X"}, "shipTo": {"name": "X", "street1": "1 A St", "city": "B", "postalCode": "1", "country": "US"},
                "items": [{"sku": "MUG", "name": "Mug", "quantity": 1}]}))
            .send().await.unwrap();
        let id = r.json::<serde_json::Value>().await.unwrap()["orderId"].as_i64().unwrap();
        w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        assert_eq!(open_kinds(&w).await, vec![ExceptionKind::OrphanShipment]);
        assert!(w.erp.fulfilment_writes.lock().unwrap().is_empty());
    }

    async fn a_split_child_order_maps_back_to_the_original_erp_lines(w: World) {
        let id = pushed_order_id(&w, "SO-105").await;
        let child = w.control(&format!("/orders/{id}/split"), json!({"items": [{"lineItemKey": "SO-105-2"}]})).await;
        let child_id = child["orderId"].as_i64().unwrap();
        w.control(&format!("/orders/{child_id}/labels"), json!({})).await;
        w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        let docs = w.erp_fulfilments("SO-105");
        assert_eq!(docs.len(), 2, "both the parent's and the child's label belong to SO-105");
        let mut lines: Vec<_> = docs.iter().flat_map(|d| d.lines.clone()).collect();
        lines.sort();
        assert_eq!(lines, vec![("SO-105-1".to_string(), 2), ("SO-105-2".to_string(), 1)]);
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_for_merged_orders_fulfils_each_original_erp_order_with_its_own_lines(w: World) {
        let survivor = pushed_order_id(&w, "SO-106").await;
        let absorbed = pushed_order_id(&w, "SO-107").await;
        // The warehouse merges the two orders for one customer into one parcel; the
        // absorbed order vanishes from ShipStation's API.
        w.control("/orders/merge", json!({"orderIds": [survivor, absorbed]})).await;
        let label = w.control(&format!("/orders/{survivor}/labels"), json!({"carrierCode": "ups"})).await;
        let tracking = label["trackingNumber"].as_str().unwrap().to_string();
        w.settle().await;
        for erp_id in ["SO-106", "SO-107"] {
            let docs = w.erp_fulfilments(erp_id);
            assert_eq!(docs.len(), 1, "{erp_id} has its own fulfilment");
            assert_eq!(docs[0].state, FulfilmentState::Packed);
            assert_eq!(docs[0].packages[0].tracking_number, tracking);
            assert_eq!(
                docs[0].lines,
                vec![(format!("{erp_id}-1"), 2), (format!("{erp_id}-2"), 1)],
                "{erp_id} gets only its own lines"
            );
        }
        assert!(open_kinds(&w).await.is_empty(), "nothing unknown, nothing orphaned");

        // The one scan completes both, and both orders ship.
        w.control("/tracking/events", json!({"trackingNumber": tracking, "statusCode": "IT"})).await;
        w.settle().await;
        for erp_id in ["SO-106", "SO-107"] {
            assert_eq!(w.erp_fulfilments(erp_id)[0].state, FulfilmentState::Completed, "{erp_id}");
            assert_eq!(w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().state, OrderState::Shipped);
        }
        w.settle().await;
        assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 4, "packed and completed, once per order");
    }

    async fn a_voided_merged_label_reverses_the_fulfilment_of_every_order_it_carried(w: World) {
        let survivor = pushed_order_id(&w, "SO-108").await;
        let absorbed = pushed_order_id(&w, "SO-109").await;
        w.control("/orders/merge", json!({"orderIds": [survivor, absorbed]})).await;
        let label = w.control(&format!("/orders/{survivor}/labels"), json!({})).await;
        w.settle().await;
        w.control(&format!("/shipments/{}/void", label["shipment"]["shipmentId"]), json!({})).await;
        w.settle().await;
        for erp_id in ["SO-108", "SO-109"] {
            let docs = w.erp_fulfilments(erp_id);
            assert_eq!(docs.len(), 1, "{erp_id}");
            assert_eq!(docs[0].state, FulfilmentState::Cancelled, "{erp_id}");
        }
        assert!(open_kinds(&w).await.is_empty());
    }

    async fn a_label_without_a_scan_past_the_policy_is_raised_for_ops_and_closes_itself_on_the_scan(w: World) {
        // The default thresholds: a label within 48 hours, a scan within 24 hours of it.
        let clock = w.manual_clock();
        let past = |d: std::time::Duration| jiff::SignedDuration::try_from(d).unwrap() + jiff::SignedDuration::from_secs(1);
        let policy = w.engine.connections[0].policy.clone();
        assert_eq!(policy.awaiting_shipment_after, Policy::default().awaiting_shipment_after);
        let id = pushed_order_id(&w, "SO-106").await;
        assert!(open_kinds(&w).await.is_empty(), "just pushed: nothing is late yet");
        // Two days pass for both systems without a label.
        w.pass(&clock, past(policy.awaiting_shipment_after)).await;
        w.settle().await;
        assert_eq!(open_kinds(&w).await, vec![ExceptionKind::AwaitingShipmentTooLong], "no label yet");
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "fedex"})).await;
        // A day passes without a carrier scan.
        w.pass(&clock, past(policy.scan_overdue_after)).await;
        w.settle().await;
        let open = w.store.list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), ..Default::default() }).await.unwrap();
        assert_eq!(open.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![ExceptionKind::ScanOverdue], "the label closed the wait");
        let message = open[0].detail["message"].as_str().unwrap();
        assert!(message.contains("fedex") && message.contains(label["trackingNumber"].as_str().unwrap()), "{message}");
        w.control("/tracking/events", json!({"trackingNumber": label["trackingNumber"], "statusCode": "AC"})).await;
        w.settle().await;
        assert!(open_kinds(&w).await.is_empty(), "the scan closed it");
    }

    async fn with_fulfil_on_label_the_erp_fulfilment_completes_at_the_label(w: World) {
        w.engine.connections[0].policy.fulfil_on = shipledger_engine::config::FulfilOn::Label;
        let id = pushed_order_id(&w, "SO-107").await;
        w.control(&format!("/orders/{id}/labels"), json!({})).await;
        w.settle().await;
        let docs = w.erp_fulfilments("SO-107");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].state, FulfilmentState::Completed, "the policy says the label is enough");
        assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 1, "no separate packed write");
    }
}
