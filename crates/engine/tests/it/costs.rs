//! The cost ledger: every live label's charges become entries in their own currency,
//! once however often the label is polled; a void reverses them once; each label of a
//! split order carries its own; a label v2 prices in EUR stays in EUR.

use serde_json::json;
use shipledger_core::cost::{CostKind, CostSource, net_by_currency};
use shipledger_core::{Currency, Money};
use shipledger_store::{CostEntry, CostEntryFilter, EventKind};

use crate::helpers::{World, paid_order};

async fn pushed_order_id(w: &World, erp_id: &str) -> i64 {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    w.store.get_order("acme-uk", erp_id).await.unwrap().unwrap().ss_order_id.expect("pushed")
}

async fn entries(w: &World, filter: CostEntryFilter) -> Vec<CostEntry> {
    w.store.list_cost_entries(CostEntryFilter { connection: Some("acme-uk".into()), ..filter }).await.unwrap()
}

async fn of_label(w: &World, shipment_id: i64) -> Vec<CostEntry> {
    entries(w, CostEntryFilter { shipment_key: Some(format!("label:{shipment_id}")), ..Default::default() }).await
}

async fn events_of(w: &World, erp_id: &str, kind: EventKind) -> usize {
    w.store.order_timeline("acme-uk", erp_id).await.unwrap().iter().filter(|e| e.event.kind == kind).count()
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

crate::stories! {
    async fn a_labels_postage_and_insurance_are_recorded_once_however_often_it_is_polled(w: World) {
        let id = pushed_order_id(&w, "SO-300").await;
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups", "serviceCode": "ups_ground", "shipmentCost": 7.25, "insuranceCost": 1.5})).await;
        let shipment_id = label["shipment"]["shipmentId"].as_i64().unwrap();
        for _ in 0..3 {
            w.settle().await;
        }
        let got = of_label(&w, shipment_id).await;
        let amounts: Vec<(String, Money)> = got.iter().map(|e| (e.charge.code(), e.amount)).collect();
        assert_eq!(amounts, vec![("postage".into(), usd(725)), ("insurance".into(), usd(150))], "v1's bare numbers in the account currency");
        let record = w.store.get_shipment("acme-uk", &format!("label:{shipment_id}")).await.unwrap().unwrap();
        for e in &got {
            assert_eq!(e.kind, CostKind::Label);
            assert_eq!(e.source, CostSource::ShipstationV1);
            assert_eq!(e.label.erp_id.as_deref(), Some("SO-300"));
            assert_eq!(e.label.ss_order_id, id);
            assert_eq!(e.label.carrier, "ups");
            assert_eq!(e.label.service.as_deref(), Some("ups_ground"));
            assert_eq!(e.label.label_created_at, record.ss_created_at, "the label's own time, UTC");
            assert_eq!(e.label.ship_date, record.ship_date);
            assert_eq!(e.reverses, None);
        }
        assert_eq!(events_of(&w, "SO-300", EventKind::CostRecorded).await, 2, "one timeline event per entry, not per poll");
    }

    async fn a_voided_label_is_reversed_exactly_once_and_the_new_label_carries_its_own_cost(w: World) {
        let id = pushed_order_id(&w, "SO-301").await;
        let first = w.control(&format!("/orders/{id}/labels"), json!({"shipmentCost": 8.95, "insuranceCost": 2.0})).await;
        w.settle().await;
        let first_id = first["shipment"]["shipmentId"].as_i64().unwrap();
        w.control(&format!("/shipments/{first_id}/void"), json!({})).await;
        for _ in 0..3 {
            w.settle().await;
        }
        let got = of_label(&w, first_id).await;
        assert_eq!(got.len(), 4, "two charges and one reversal each: {got:#?}");
        let reversals: Vec<&CostEntry> = got.iter().filter(|e| e.kind == CostKind::VoidReversal).collect();
        assert_eq!(reversals.len(), 2);
        for r in &reversals {
            let reversed = got.iter().find(|e| Some(e.id) == r.reverses).expect("a reversal names what it reverses");
            assert_eq!(r.amount, reversed.amount.neg());
            assert_eq!(r.charge, reversed.charge);
        }
        assert_eq!(net_by_currency(got.iter().map(|e| &e.entry)), vec![usd(0)], "the voided label nets to zero");
        assert_eq!(events_of(&w, "SO-301", EventKind::CostReversed).await, 2);

        // Labelled again: a new shipment, with entries of its own.
        let second = w.control(&format!("/orders/{id}/labels"), json!({"shipmentCost": 9.10})).await;
        w.settle().await;
        let second_id = second["shipment"]["shipmentId"].as_i64().unwrap();
        let again = of_label(&w, second_id).await;
        assert_eq!(again.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![usd(910)], "no insurance bought, none recorded");
        let order = entries(&w, CostEntryFilter { erp_id: Some("SO-301".into()), ..Default::default() }).await;
        assert_eq!(net_by_currency(order.iter().map(|e| &e.entry)), vec![usd(910)], "the order's postage is the live label's");
    }

    async fn each_label_of_a_split_order_carries_its_own_cost(w: World) {
        let id = pushed_order_id(&w, "SO-302").await;
        let child = w.control(&format!("/orders/{id}/split"), json!({"items": [{"lineItemKey": "SO-302-2"}]})).await;
        let child_id = child["orderId"].as_i64().unwrap();
        let a = w.control(&format!("/orders/{child_id}/labels"), json!({"shipmentCost": 4.10})).await;
        let b = w.control(&format!("/orders/{id}/labels"), json!({"shipmentCost": 6.35})).await;
        w.settle().await;
        let a = of_label(&w, a["shipment"]["shipmentId"].as_i64().unwrap()).await;
        let b = of_label(&w, b["shipment"]["shipmentId"].as_i64().unwrap()).await;
        assert_eq!(a.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![usd(410)]);
        assert_eq!(b.iter().map(|e| e.amount).collect::<Vec<_>>(), vec![usd(635)]);
        assert_eq!(a[0].label.ss_order_id, child_id, "the child's label keeps the child's ShipStation order");
        assert_eq!(a[0].label.erp_id.as_deref(), Some("SO-302"), "and maps to the original ERP order");
        let order = entries(&w, CostEntryFilter { erp_id: Some("SO-302".into()), ..Default::default() }).await;
        assert_eq!(order.len(), 2);
        assert_eq!(net_by_currency(order.iter().map(|e| &e.entry)), vec![usd(1045)]);
    }

    async fn a_label_v2_prices_in_eur_is_moved_to_eur_by_the_scan_sweep(w: World) {
        let id = pushed_order_id(&w, "SO-303").await;
        let label = w.control(&format!("/orders/{id}/labels"), json!({"shipmentCost": 6.40, "currency": "EUR"})).await;
        let shipment_id = label["shipment"]["shipmentId"].as_i64().unwrap();
        // v1 names no currency, so the label is first taken in the account's (USD
        // here); the scan sweep's page of v2 labels names EUR and moves it, without
        // anyone asking.
        w.settle().await;
        let conn = &w.engine.connections[0];
        let v2 = conn.shipstation_v2.as_ref().unwrap();
        let priced = v2.get_label(&format!("se-{shipment_id}")).await.unwrap();
        assert_eq!(shipledger_engine::flows::costs::record_v2_label(&w.engine, conn, &priced).await.unwrap(), 0, "the sweep recorded it already");
        w.settle().await;

        let got = of_label(&w, shipment_id).await;
        let eur: Vec<&CostEntry> = got.iter().filter(|e| e.amount.currency() == Currency::EUR).collect();
        assert_eq!(eur.len(), 1);
        assert_eq!(eur[0].amount, Money::from_minor(640, Currency::EUR));
        assert_eq!(eur[0].source, CostSource::ShipstationV2);
        let mut net = net_by_currency(got.iter().map(|e| &e.entry));
        net.sort_by_key(|m| m.currency().code());
        assert_eq!(net, vec![Money::from_minor(640, Currency::EUR), usd(0)], "EUR 6.40 is what the label cost; the USD guess nets away");
        assert_eq!(got.len(), 3, "the first guess is never edited: it is reversed by an entry of its own");
    }
}
