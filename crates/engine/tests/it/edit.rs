//! Edit and retry: an order ShipStation keeps refusing is given the ShipStation-side
//! fields it needs in shipledger itself (they are shipledger's to set), and pushed
//! again with them, audited; the ERP's own data is never edited here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{ExceptionAct, ExceptionAction, ExceptionFilter, StoreError};

use crate::helpers::{World, paid_order};

fn edit(id: i64, set: &[(&str, Option<&str>)], actor: &str) -> ExceptionAct {
    let set: BTreeMap<String, Option<String>> = set.iter().map(|(f, v)| (f.to_string(), v.map(str::to_string))).collect();
    ExceptionAct { id, action: ExceptionAction::Edit { set }, actor: actor.into(), note: Some("the store needs a service".into()), at: Timestamp::now() }
}

crate::stories! {
    async fn an_order_shipstation_refused_is_given_its_service_in_shipledger_and_pushed_again_with_it(w: World) {
        let mut w = w;
        // ShipStation refuses the order; one attempt is all it gets here.
        w.engine.connections[0].policy.max_push_attempts = 1;
        w.put_faults(json!({"createorders_fail": 1.0})).await;
        w.erp.put(paid_order("SO-77"));
        w.settle().await;
        let live = |w: &World| {
            let store = w.store.clone();
            async move {
                store
                    .list_exceptions(ExceptionFilter { kind: Some(ExceptionKind::PushRejected), record_id: Some("SO-77".into()), live: true, ..Default::default() })
                    .await
                    .unwrap()
            }
        };
        let rejected = live(&w).await;
        assert_eq!(rejected.len(), 1, "the push was given up to ops: {rejected:?}");
        let exception = &rejected[0];
        assert!(exception.job_id.is_some(), "the given-up push is behind it");

        // The ERP's weight is the ERP's: refused, and told where to fix it.
        let refused = w.store.act_on_exception(edit(exception.id, &[("weight", Some("500"))], "ops:ben")).await.unwrap_err();
        let StoreError::ActionRefused { why, .. } = refused else { panic!("{refused:?}") };
        assert!(why.contains("correct it on the product in the ERP"), "{why}");
        let refused = w.store.act_on_exception(edit(exception.id, &[("confirmation", Some("maybe"))], "ops:ben")).await.unwrap_err();
        assert!(matches!(refused, StoreError::ActionRefused { .. }), "{refused:?}");
        assert!(w.store.order_overrides("acme-uk", "SO-77").await.unwrap().is_empty(), "a refused edit leaves nothing behind");

        // The store set up meanwhile; ops gives the order its service and confirmation.
        w.put_faults(json!({"createorders_fail": 0.0})).await;
        let acted = w
            .store
            .act_on_exception(edit(exception.id, &[("service_code", Some("ups_ground")), ("confirmation", Some("signature"))], "ops:ben"))
            .await
            .unwrap();
        assert_eq!(acted.audit.action, "edit");
        assert_eq!(acted.audit.actor, "ops:ben");
        assert_eq!(acted.audit.before["overrides"], json!({}));
        assert_eq!(acted.audit.after["overrides"], json!({"confirmation": "signature", "service_code": "ups_ground"}));
        assert_eq!(acted.audit.after["job"]["state"], json!("pending"), "{}", acted.audit.after);

        w.settle().await;
        let in_shipstation = w.ss_orders("SO-77").await;
        assert_eq!(in_shipstation.len(), 1, "pushed once: {in_shipstation:?}");
        assert_eq!(in_shipstation[0]["serviceCode"], json!("ups_ground"));
        assert_eq!(in_shipstation[0]["confirmation"], json!("signature"));
        assert!(live(&w).await.is_empty(), "the exception closed when the push went through");
        let timeline = w.store.timeline("acme-uk", "order", "SO-77").await.unwrap();
        let edited = timeline.iter().find(|e| e.kind.as_str() == "exception_edited").expect("the edit is on the order's timeline");
        assert!(edited.detail["message"].as_str().unwrap().contains("service_code = \"ups_ground\""), "{}", edited.detail);

        // A later change in the ERP is pushed with the overrides still on.
        let mut changed = paid_order("SO-77");
        changed.customer_email = Some("ada@lovelace.example".into());
        w.erp.put(changed);
        w.settle().await;
        let again = w.ss_orders("SO-77").await;
        assert_eq!(again[0]["customerEmail"], json!("ada@lovelace.example"), "the change was pushed");
        assert_eq!(again[0]["serviceCode"], json!("ups_ground"), "and the override stayed on");
    }
}
