//! One job lifecycle for every kind: a failure is retried or given up as its own
//! classification and the kind's retry policy say, never by its words.

use jiff::SignedDuration;
use serde_json::json;
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_core::clock::Clock;
use shipledger_erp::{ErpError, FulfilmentState};
use shipledger_store::{ExceptionFilter, ExceptionState, JobFilter, JobKind, JobState};

use crate::helpers::{World, paid_order};

/// A pushed order with one label made in ShipStation; its write-back is planned by the
/// next poll. Returns the label's tracking number.
async fn labelled(w: &World, erp_id: &str) -> String {
    w.erp.put(paid_order(erp_id));
    w.settle().await;
    let id = w.ss_orders(erp_id).await[0]["orderId"].as_i64().unwrap();
    let label = w.control(&format!("/orders/{id}/labels"), json!({})).await;
    label["trackingNumber"].as_str().unwrap().to_string()
}

async fn write_jobs(w: &World) -> Vec<shipledger_store::Job> {
    w.store.list_jobs(JobFilter { kind: Some(JobKind::WriteFulfilment), ..Default::default() }).await.unwrap()
}

crate::stories! {
    async fn an_erp_briefly_down_is_written_again_after_the_write_back_backoff_and_no_sooner(w: World) {
        let clock = w.manual_clock();
        let tracking = labelled(&w, "SO-700").await;
        w.erp.write_failures.lock().unwrap().push_back(ErpError::Unavailable { url: "http://erp".into(), detail: "HTTP 503".into() });

        w.settle().await;
        let jobs = write_jobs(&w).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Pending, 1));
        // write_fulfilment: 2 s after the first failure, without jitter (the store keeps milliseconds).
        assert_eq!(jobs[0].next_run_at.as_millisecond(), (clock.now() + SignedDuration::from_secs(2)).as_millisecond());
        assert!(jobs[0].last_error.as_deref().unwrap().contains("HTTP 503"), "{:?}", jobs[0].last_error);
        assert!(w.erp_fulfilments("SO-700").is_empty());

        clock.advance(SignedDuration::from_millis(1_999));
        w.settle().await;
        assert!(w.erp_fulfilments("SO-700").is_empty(), "not before its time");

        clock.advance(SignedDuration::from_millis(1));
        w.settle().await;
        let docs = w.erp_fulfilments("SO-700");
        assert_eq!(docs.len(), 1);
        assert_eq!((docs[0].state, docs[0].packages[0].tracking_number.as_str()), (FulfilmentState::Packed, tracking.as_str()));
        assert_eq!(write_jobs(&w).await[0].state, JobState::Done);
    }

    async fn an_erp_that_rejects_our_credentials_is_not_retried_the_write_back_is_given_up_at_once_to_an_admin(w: World) {
        labelled(&w, "SO-701").await;
        w.erp.write_failures.lock().unwrap().push_back(ErpError::Unauthorized { detail: "HTTP 401".into() });

        w.settle().await;
        let jobs = write_jobs(&w).await;
        assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Dead, 1), "one attempt, though four are allowed");
        let open = w
            .store
            .list_exceptions(ExceptionFilter { state: Some(ExceptionState::Open), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        // Ops cannot fix refused credentials: the exception is the admin's.
        assert_eq!((open[0].kind, open[0].owner), (ExceptionKind::IntegrationFault, Owner::Admin));
        assert!(open[0].detail["message"].as_str().unwrap().contains("rejected our credentials"), "{}", open[0].detail);
        assert_eq!(w.erp.fulfilment_writes.lock().unwrap().len(), 1, "nothing sent again");
    }
}
