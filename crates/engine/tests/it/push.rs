//! Pushing: batches, propagation of ERP changes, and exactly-once under faults.

use serde_json::json;
use shipledger_core::order::ErpOrderStatus;
use shipledger_store::OrderState;

use crate::helpers::{Backend, World, paid_order};

crate::stories! {
    async fn erp_changes_after_release_reach_the_open_shipstation_order(w: World) {
        w.erp.put(paid_order("SO-10"));
        w.settle().await;
        w.erp.edit("SO-10", |o| o.ship_to.street1 = Some("1 New Street".into()));
        w.settle().await;
        let orders = w.ss_orders("SO-10").await;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0]["shipTo"]["street1"], json!("1 New Street"));

        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::OnHold);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-10").await[0]["orderStatus"], json!("on_hold"));
        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::Open);
        w.settle().await;
        assert_eq!(w.ss_orders("SO-10").await[0]["orderStatus"], json!("awaiting_shipment"));

        w.erp.edit("SO-10", |o| o.status = ErpOrderStatus::Cancelled);
        w.settle().await;
        let orders = w.ss_orders("SO-10").await;
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0]["orderStatus"], json!("cancelled"));
        assert_eq!(w.store.get_order("acme-uk", "SO-10").await.unwrap().unwrap().state, OrderState::Cancelled);
    }

    async fn a_lost_answer_is_retried_under_the_same_order_key_without_a_duplicate(w: World) {
        w.put_faults(json!({"rate_500_after": 1.0, "paths": ["/orders/createorders"]})).await;
        for n in 0..30 {
            w.erp.put(paid_order(&format!("L-{n}")));
        }
        // Every createorders saves the orders and then answers 500: the engine cannot know.
        let _ = w.engine.tick().await;
        w.put_faults(json!({})).await;
        for _ in 0..20 {
            w.settle().await;
            if w.store.count_orders_by_state("acme-uk").await.unwrap() == vec![(OrderState::Pushed, 30)] {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let stats = w.stats().await;
        assert_eq!(stats["orders"], json!(30));
        assert_eq!(stats["duplicate_order_keys"], json!(0));
        assert_eq!(w.store.count_orders_by_state("acme-uk").await.unwrap(), vec![(OrderState::Pushed, 30)]);
    }
}

/// ShipStation's real limit (40 a minute) and shipments polled once, as in production.
async fn a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(backend: Backend) {
    let Some(db) = crate::helpers::TestDb::new(backend) else { return };
    let mut w = World::with(shipledger_sandbox::SandboxConfig::default(), db).await;
    w.engine.connections[0].policy.shipment_poll_interval = std::time::Duration::from_secs(3600);
    for n in 0..1000 {
        w.erp.put(paid_order(&format!("B-{n:04}")));
    }
    w.settle().await;
    let stats = w.stats().await;
    assert_eq!(stats["orders"], json!(1000));
    let createorders = stats["requests"]["POST /orders/createorders"].as_u64().unwrap();
    assert!(createorders <= 15, "{createorders} createorders requests");
    assert_eq!(stats["rate_limited"], json!(0), "{stats}");
    assert_eq!(stats["duplicate_order_keys"], json!(0));
    let counts = w.store.count_orders_by_state("acme-uk").await.unwrap();
    assert_eq!(counts, vec![(OrderState::Pushed, 1000)]);
}

#[tokio::test]
async fn sqlite_a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429() {
    a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429() {
    a_thousand_releasable_orders_take_at_most_fifteen_createorders_and_no_429(Backend::Postgres).await;
}
