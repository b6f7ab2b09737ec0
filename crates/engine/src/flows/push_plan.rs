//! Push planning: the pure part of a push batch. Which claimed `sync_order` jobs are
//! one order's push, which orders need no request at all, and which must be read back
//! from ShipStation before anything is sent because an earlier answer may have been
//! lost. The push flow ([`super::push`]) does the reading, sending and committing; it
//! never decides these itself.

use std::collections::BTreeMap;

use shipledger_shipstation::v1::model::OrderStatus;
use shipledger_store::{Job, OrderRecord, OrderState};

/// The claimed jobs by the order each names (`erp_id`): one order is sent once
/// however many jobs name it. An order's jobs keep their claim order: the first
/// decides the push, the others are finished with it.
pub(crate) fn coalesce<J>(jobs: Vec<J>, erp_id: impl Fn(&J) -> String) -> BTreeMap<String, Vec<J>> {
    let mut by_order: BTreeMap<String, Vec<J>> = BTreeMap::new();
    for job in jobs {
        by_order.entry(erp_id(&job)).or_default().push(job);
    }
    by_order
}

/// Why an order's push needs no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoRequest {
    /// ShipStation was last seen holding this snapshot with the status it should have.
    InSync,
    /// Never released, or refused by the gate after release: ShipStation keeps its
    /// last good version (if any) and nothing is sent.
    NotReleasable,
}

impl NoRequest {
    /// The words of the `sync_skipped` event.
    pub(crate) fn note(self) -> &'static str {
        match self {
            NoRequest::InSync => "already in sync with ShipStation",
            NoRequest::NotReleasable => "not releasable; nothing sent",
        }
    }
}

/// Whether the order's latest snapshot, which ShipStation should show as `status`,
/// needs a request at all.
pub(crate) fn no_request(record: &OrderRecord, status: &OrderStatus) -> Option<NoRequest> {
    let in_sync = record.pushed_hash.as_deref() == Some(record.snapshot_hash.as_str())
        && record.ss_status.as_deref() == Some(status.as_str());
    // An order that was never released is never pushed, and one that fails the gate
    // after release keeps its last good version in ShipStation.
    let not_releasable = record.released_at.is_none() || record.state == OrderState::Held;
    if in_sync {
        Some(NoRequest::InSync)
    } else if not_releasable {
        Some(NoRequest::NotReleasable)
    } else {
        None
    }
}

/// A job claimed before (its answer lost to a 5xx or a timeout, its read-back short,
/// its worker killed) may already have reached ShipStation: it is read back before
/// anything is sent.
pub(crate) fn read_back_first(job: &Job) -> bool {
    job.attempts > 1
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flows::test_support::{at, claimed as job};

    fn record(state: OrderState) -> OrderRecord {
        OrderRecord {
            connection: "acme-uk".into(),
            erp_id: "SO-1".into(),
            number: "SO-1".into(),
            state,
            snapshot: json!({}),
            snapshot_hash: "h2".into(),
            erp_updated_at: at(0),
            order_key: "shipledger:acme-uk:SO-1".into(),
            ss_order_id: Some(7001),
            ss_status: Some("awaiting_shipment".into()),
            payment: None,
            pushed_hash: Some("h1".into()),
            released_at: Some(at(1)),
            pushed_at: Some(at(2)),
            created_at: at(0),
            updated_at: at(2),
        }
    }

    #[test]
    fn jobs_naming_the_same_order_become_one_push_decided_by_the_first_claimed() {
        let jobs = vec![job(1, "SO-2", 1), job(2, "SO-1", 1), job(3, "SO-2", 1), job(4, "SO-3", 1), job(5, "SO-2", 2)];
        let by_order = coalesce(jobs, |j| match &j.spec {
            shipledger_store::JobSpec::SyncOrder(s) => s.erp_id.clone(),
            other => panic!("not a sync_order: {other:?}"),
        });
        let ids: Vec<(&str, Vec<i64>)> = by_order.iter().map(|(o, js)| (o.as_str(), js.iter().map(|j| j.id).collect())).collect();
        assert_eq!(ids, [("SO-1", vec![2]), ("SO-2", vec![1, 3, 5]), ("SO-3", vec![4])]);
    }

    #[test]
    fn an_order_shipstation_holds_at_this_snapshot_and_status_needs_no_request() {
        let mut r = record(OrderState::Pushed);
        r.pushed_hash = Some(r.snapshot_hash.clone());
        assert_eq!(no_request(&r, &OrderStatus::AwaitingShipment), Some(NoRequest::InSync));
        // The same content, but the ERP put it on hold: ShipStation must follow.
        assert_eq!(no_request(&r, &OrderStatus::OnHold), None);
        // A newer snapshot than the one pushed: an update.
        r.pushed_hash = Some("h1".into());
        assert_eq!(no_request(&r, &OrderStatus::AwaitingShipment), None);
    }

    #[test]
    fn an_order_never_released_or_refused_by_the_gate_after_release_is_not_sent() {
        let mut never = record(OrderState::Received);
        never.released_at = None;
        assert_eq!(no_request(&never, &OrderStatus::AwaitingShipment), Some(NoRequest::NotReleasable));
        let held = record(OrderState::Held);
        assert_eq!(no_request(&held, &OrderStatus::AwaitingShipment), Some(NoRequest::NotReleasable));
        assert_eq!(NoRequest::NotReleasable.note(), "not releasable; nothing sent");
        assert_eq!(no_request(&record(OrderState::Released), &OrderStatus::AwaitingShipment), None);
        assert_eq!(no_request(&record(OrderState::Cancelled), &OrderStatus::Cancelled), None, "a cancellation is sent");
    }

    #[test]
    fn only_a_job_claimed_before_is_read_back_before_sending() {
        assert!(!read_back_first(&job(1, "SO-1", 1)), "a first attempt cannot have reached ShipStation");
        assert!(read_back_first(&job(1, "SO-1", 2)));
        assert!(read_back_first(&job(1, "SO-1", 5)));
    }
}
