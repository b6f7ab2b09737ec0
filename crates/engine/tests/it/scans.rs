//! The scan sweep is fair and cheap: labels the carrier never scans do not keep
//! scanned ones from being completed, many labels are read per request, and a label
//! that shows nothing is asked about less and less often, never less than the cap.

use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Value, json};
use shipledger_core::clock::{Clock, ManualClock};
use shipledger_engine::flows::shipments::{self, SweepLimits, scan_check_backoff};
use shipledger_store::{JobFilter, JobKind, Phase};

use crate::helpers::{World, paid_order};

const POLL: Duration = Duration::from_secs(60);

/// v2 requests the sandbox has answered so far: all of them, the label pages and the
/// track calls.
async fn v2_requests(w: &World) -> (u64, u64, u64) {
    let stats = w.stats().await;
    let requests = stats["requests"].as_object().unwrap();
    let count = |f: &dyn Fn(&str) -> bool| requests.iter().filter(|(k, _)| f(k)).map(|(_, n)| n.as_u64().unwrap()).sum::<u64>();
    (
        count(&|k| k.contains(" /v2/")),
        count(&|k| k == "GET /v2/labels"),
        count(&|k| k == "GET /v2/tracking"),
    )
}

/// Orders `SO-{from}`..`SO-{to}` released, pushed and labelled; their tracking numbers.
async fn labelled(w: &World, from: u32, to: u32) -> Vec<String> {
    for n in from..=to {
        w.erp.put(paid_order(&format!("SO-{n}")));
    }
    w.settle().await;
    let mut numbers = Vec::new();
    for n in from..=to {
        let id = w.store.get_order("acme-uk", &format!("SO-{n}")).await.unwrap().unwrap().ss_order_id.expect("pushed");
        let label = w.control(&format!("/orders/{id}/labels"), json!({"carrierCode": "ups"})).await;
        numbers.push(label["trackingNumber"].as_str().unwrap().to_string());
    }
    w.settle().await;
    numbers
}

/// The story's clock; until [`sweeping`], the engine polls ShipStation on every pass
/// and makes no scan sweep (so the labels made are unchecked when the story starts).
fn quiet(w: &mut World) -> (std::sync::Arc<ManualClock>, Option<shipledger_shipstation::V2Client>) {
    let clock = w.manual_clock();
    let v2 = w.engine.connections[0].shipstation_v2.take();
    (clock, v2)
}

/// From now on the engine sweeps with v2, and polls every `POLL` of the manual clock.
fn sweeping(w: &mut World, v2: Option<shipledger_shipstation::V2Client>) {
    w.engine.connections[0].shipstation_v2 = v2;
    w.engine.connections[0].policy.shipment_poll_interval = POLL;
}

async fn scan(w: &World, number: &str, code: &str, detail: &str) -> Value {
    w.control("/tracking/events", json!({"trackingNumber": number, "statusCode": code, "statusDetailCode": detail})).await
}

async fn label_of(w: &World, number: &str) -> shipledger_store::AwaitingScan {
    w.store.scans_awaiting("acme-uk", &[number.to_string()]).await.unwrap().pop().expect("awaiting a scan")
}

async fn first_scan_of(w: &World, number: &str) -> Option<jiff::Timestamp> {
    let found = w
        .store
        .list_shipments(shipledger_store::ShipmentFilter {
            connection: Some("acme-uk".into()),
            tracking_number: Some(number.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    found[0].first_scan_at
}

crate::stories! {
    async fn scanned_labels_whose_webhook_was_dropped_are_completed_though_older_labels_are_never_scanned(w: World) {
        let (clock, v2) = quiet(&mut w);
        // 200 labels the carrier will never scan, made first; an hour later 100 more.
        let never = labelled(&w, 1, 200).await;
        w.pass(&clock, SignedDuration::from_hours(1)).await;
        let scanned = labelled(&w, 201, 300).await;
        sweeping(&mut w, v2);
        assert_eq!(w.store.scans_due("acme-uk", clock.now(), 0).await.unwrap().len(), 300, "all 300 live labels await a scan");
        // The carrier scans the newer 100; no webhook tells shipledger.
        for number in &scanned {
            scan(&w, number, "AC", "RECEIVED_BY_CARRIER").await;
        }
        let (before, pages_before, tracks_before) = v2_requests(&w).await;

        let conn = &w.engine.connections[0];
        let mut sweeps = 0;
        let mut recorded = 0;
        while recorded < 100 {
            assert!(sweeps < 3, "every scanned label is recorded within 3 sweeps ({recorded} after {sweeps})");
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            recorded += shipments::scans(&w.engine, conn).await.unwrap().scanned;
            sweeps += 1;
        }
        for number in &scanned {
            assert!(first_scan_of(&w, number).await.is_some(), "{number} has its first scan time");
        }
        for number in &never {
            assert!(first_scan_of(&w, number).await.is_none(), "{number} was never scanned");
        }
        let completed = w
            .store
            .list_jobs(JobFilter { kind: Some(JobKind::WriteFulfilment), ..Default::default() })
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.idempotency_key.ends_with(&format!(":{}", Phase::Completed)))
            .count();
        assert_eq!(completed, 100, "one completed write planned per scanned label");

        // A couple more sweeps find nothing new.
        for _ in 0..2 {
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            assert_eq!(shipments::scans(&w.engine, conn).await.unwrap().scanned, 0);
            sweeps += 1;
        }
        let (after, pages_after, tracks_after) = v2_requests(&w).await;
        let (made, pages, tracks) = (after - before, pages_after - pages_before, tracks_after - tracks_before);
        // All 300 labels fit one page, so each sweep reads one page, and only a label
        // whose status moved is tracked: one track call per scanned label. Asking about
        // every label on every sweep would have been 300 a sweep.
        assert_eq!(pages, sweeps, "one page of labels a sweep");
        assert_eq!(tracks, 100, "one track call per scanned label, none for the 200 that never moved");
        assert!(made <= 100 + sweeps, "{made} v2 requests for {sweeps} sweeps");
        assert!(made * 5 < 300 * sweeps, "far fewer than one request per label per sweep: {made}");
    }

    async fn labels_due_but_off_the_first_page_are_read_on_later_pages_not_tracked_one_by_one(w: World) {
        let (clock, v2) = quiet(&mut w);
        // 30 labels never checked; pages of 10, nothing scanned.
        let numbers = labelled(&w, 1, 30).await;
        sweeping(&mut w, v2);
        let limits = SweepLimits { page_size: 10, max_pages: 4, ..SweepLimits::default() };
        let conn = &w.engine.connections[0];
        w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
        let (before, pages_before, tracks_before) = v2_requests(&w).await;
        shipments::sweep(&w.engine, conn, limits).await.unwrap();
        let (after, pages_after, tracks_after) = v2_requests(&w).await;
        assert_eq!(pages_after - pages_before, 3, "three pages show all 30 labels");
        assert_eq!(tracks_after - tracks_before, 0, "no label is tracked alone: every due one was on a page");
        assert_eq!(after - before, 3);
        for number in &numbers {
            assert_eq!(label_of(&w, number).await.check.empty_checks, 1, "{number} was checked once");
        }
        // A minute later none is due (backoff), and the first page has nothing new:
        // one page, no track call.
        w.pass(&clock, SignedDuration::from_secs(30)).await;
        shipments::sweep(&w.engine, conn, limits).await.unwrap();
        let (last, _, tracks_last) = v2_requests(&w).await;
        assert_eq!((last - after, tracks_last - tracks_after), (1, 0), "nothing due, nothing moved: one page");
    }

    async fn a_connection_with_no_label_awaiting_a_scan_makes_no_sweep_request(w: World) {
        let (clock, v2) = quiet(&mut w);
        let numbers = labelled(&w, 1, 1).await;
        sweeping(&mut w, v2);
        scan(&w, &numbers[0], "AC", "RECEIVED_BY_CARRIER").await;
        let conn = &w.engine.connections[0];
        w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
        assert_eq!(shipments::scans(&w.engine, conn).await.unwrap().scanned, 1, "the one label awaiting a scan is found");
        let (before, _, _) = v2_requests(&w).await;
        for _ in 0..3 {
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            assert_eq!(shipments::scans(&w.engine, conn).await.unwrap().scanned, 0);
        }
        let (after, _, _) = v2_requests(&w).await;
        assert_eq!(after, before, "no label awaits a scan: three sweeps, no v2 request");
    }

    async fn a_label_in_transit_on_an_electronic_notice_is_tracked_once_and_again_only_when_its_backoff_is_due(w: World) {
        let (clock, v2) = quiet(&mut w);
        let numbers = labelled(&w, 1, 2).await;
        sweeping(&mut w, v2);
        let (notice, quiet) = (&numbers[0], &numbers[1]);
        // The carrier has only the manifest, yet the label's coarse status is in transit.
        scan(&w, notice, "AC", "ELEC_ADVICE_RECD_BY_CARRIER").await;
        let (_, _, tracks_at_start) = v2_requests(&w).await;
        let conn = &w.engine.connections[0];
        let mut tracked_at = Vec::new();
        for minute in 1..=8 {
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            let (_, _, before) = v2_requests(&w).await;
            assert_eq!(shipments::scans(&w.engine, conn).await.unwrap().scanned, 0, "an electronic notice is not a scan");
            let (_, _, after) = v2_requests(&w).await;
            if after > before {
                assert_eq!(after - before, 1, "one track call at most per sweep");
                tracked_at.push(minute);
            }
        }
        // Tracked when its status moved (minute 1); then only when its backoff is due:
        // 1 and 2 poll intervals after each check (minutes 2 and 4), then 4 (minute 8).
        assert_eq!(tracked_at, vec![1, 2, 4, 8]);
        let (_, _, tracks) = v2_requests(&w).await;
        assert_eq!(tracks - tracks_at_start, 4, "the quiet label, unknown on every page, was never tracked");
        assert!(first_scan_of(&w, notice).await.is_none());
        let state = label_of(&w, notice).await.check;
        assert_eq!(state.coarse_status.as_deref(), Some("in_transit"));
        assert_eq!(state.empty_checks, 4);
        assert!(label_of(&w, quiet).await.check.empty_checks >= 8, "seen on every page");
        assert!(w.erp_fulfilments("SO-1").iter().all(|d| d.state == shipledger_erp::FulfilmentState::Packed));

        // The real scan comes under the same coarse status: found when next due.
        scan(&w, notice, "IT", "IN_TRANSIT").await;
        let mut found = None;
        for minute in 9..=16 {
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            if shipments::scans(&w.engine, conn).await.unwrap().scanned == 1 {
                found = Some(minute);
                break;
            }
        }
        assert_eq!(found, Some(16), "the next check is 8 poll intervals after the one at minute 8");
        assert!(first_scan_of(&w, notice).await.is_some());
    }

    async fn a_never_scanned_label_off_the_pages_is_checked_less_and_less_often_and_never_less_than_the_cap(w: World) {
        let (clock, v2) = quiet(&mut w);
        let cap = Duration::from_secs(5 * 60);
        w.engine.connections[0].policy.scan_check_max_interval = cap;
        // Two labels; a page of one label shows only the newer, so the older one is
        // checked only when due, by a track call.
        let numbers = labelled(&w, 1, 1).await;
        w.pass(&clock, SignedDuration::from_mins(1)).await;
        let newer = labelled(&w, 2, 2).await;
        sweeping(&mut w, v2);
        let old = &numbers[0];
        let limits = SweepLimits { page_size: 1, max_pages: 1, ..SweepLimits::default() };
        let conn = &w.engine.connections[0];
        let (_, _, mut tracks) = v2_requests(&w).await;
        let mut tracked_at = Vec::new();
        for minute in 1..=30 {
            w.pass(&clock, SignedDuration::try_from(POLL).unwrap()).await;
            shipments::sweep(&w.engine, conn, limits).await.unwrap();
            let (_, _, now) = v2_requests(&w).await;
            if now > tracks {
                tracked_at.push(minute);
            }
            tracks = now;
            let state = label_of(&w, old).await.check;
            let (checked, due) = (state.last_checked_at.unwrap(), state.next_due_at.unwrap());
            assert!(due.duration_since(checked) <= SignedDuration::try_from(cap).unwrap(), "never more than the cap apart");
        }
        let gaps: Vec<i32> = tracked_at.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(gaps[..4], [1, 2, 4, 5], "doubling from the poll interval up to the cap: {tracked_at:?}");
        assert!(gaps[4..].iter().all(|g| *g == 5), "then every cap: {tracked_at:?}");
        assert!(first_scan_of(&w, &newer[0]).await.is_none());
        // The backoff itself: the poll interval doubling, held at the cap.
        let policy = &w.engine.connections[0].policy;
        let waits: Vec<u64> = (1..=6).map(|n| scan_check_backoff(policy, n).as_secs()).collect();
        assert_eq!(waits, vec![60, 120, 240, 300, 300, 300]);
    }
}
