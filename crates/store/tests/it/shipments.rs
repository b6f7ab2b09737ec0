//! Shipments seen in ShipStation: one record per shipment however often it is seen,
//! found by ERP order, ShipStation order and tracking number, and the labels still
//! waiting for the carrier's first scan.

use serde_json::json;
use shipledger_store::{
    Change, JobFilter, JobFinish, JobState, NewEvent, OrderState, ShipmentFilter, ShipmentKind,
    ShipmentLine, ShipmentRecord, ShipmentState, ShipmentUpsert, StoreError,
};

use shipledger_store::{EventKind, JobKind};
use crate::harness::{ACME, BETA, TestDb, claim, job, line, order, t};

/// A live label made `created` seconds after the stories' base time.
pub fn label(shipment_id: i64, ss_order_id: i64, erp_id: Option<&str>, created: i64) -> ShipmentUpsert {
    ShipmentUpsert {
        shipment_key: format!("label:{shipment_id}"),
        kind: ShipmentKind::Label,
        ss_id: shipment_id,
        ss_order_id,
        ss_order_key: erp_id.map(|id| format!("key-{id}")),
        erp_id: erp_id.map(Into::into),
        carrier: "royal_mail".into(),
        service: Some("rm_tracked_48".into()),
        tracking_number: Some(format!("RM{shipment_id}GB")),
        ship_date: Some("2025-03-01".parse().unwrap()),
        cost_minor: Some(385),
        cost_currency: Some("GBP".into()),
        ss_created_at: t(created),
        voided: false,
        voided_at: None,
        lines: vec![ShipmentLine {
            line_item_key: Some("L1".into()),
            sku: Some("MUG".into()),
            quantity: 2,
        }],
        first_scan_at: None,
        tracking_status: None,
        state: ShipmentState::Seen,
        erp_fulfilment_id: None,
    }
}

/// An order marked shipped without a ShipStation label.
fn fulfillment(
    fulfillment_id: i64,
    ss_order_id: i64,
    erp_id: &str,
    created: i64,
) -> ShipmentUpsert {
    ShipmentUpsert {
        shipment_key: format!("fulfillment:{fulfillment_id}"),
        kind: ShipmentKind::Fulfillment,
        ss_id: fulfillment_id,
        carrier: "dpd".into(),
        service: None,
        cost_minor: None,
        cost_currency: None,
        ..label(fulfillment_id, ss_order_id, Some(erp_id), created)
    }
}

async fn save(
    db: &TestDb,
    connection: &str,
    at: i64,
    shipments: Vec<ShipmentUpsert>,
) -> anyhow::Result<()> {
    let mut change = Change::new(connection, t(at));
    change.shipments = shipments;
    db.store.commit(change).await?;
    Ok(())
}

fn keys(shipments: Vec<ShipmentRecord>) -> Vec<String> {
    shipments.into_iter().map(|s| s.shipment.shipment_key).collect()
}

pub async fn a_shipment_seen_twice_is_one_record_with_the_latest_version_and_its_first_sighting(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    // First seen by webhook: a fresh label, nothing written to the ERP yet.
    save(db, ACME, 10, vec![label(5001, 9001, Some("1001"), 0)]).await?;
    let first = store
        .get_shipment(ACME, "label:5001")
        .await?
        .expect("saved");
    assert_eq!(
        first,
        ShipmentRecord {
            connection: ACME.into(),
            shipment: ShipmentUpsert {
                shipment_key: "label:5001".into(),
                kind: ShipmentKind::Label,
                ss_id: 5001,
                ss_order_id: 9001,
                ss_order_key: Some("key-1001".into()),
                erp_id: Some("1001".into()),
                carrier: "royal_mail".into(),
                service: Some("rm_tracked_48".into()),
                tracking_number: Some("RM5001GB".into()),
                ship_date: Some(jiff::civil::date(2025, 3, 1)),
                cost_minor: Some(385),
                cost_currency: Some("GBP".into()),
                ss_created_at: t(0),
                voided: false,
                voided_at: None,
                lines: vec![ShipmentLine {
                    line_item_key: Some("L1".into()),
                    sku: Some("MUG".into()),
                    quantity: 2,
                }],
                first_scan_at: None,
                tracking_status: None,
                state: ShipmentState::Seen,
                erp_fulfilment_id: None,
            },
            created_at: t(10),
            updated_at: t(10),
        }
    );

    // Seen again by the poll after the carrier scanned it and the ERP was written:
    // the same record, now the second version, first sighting kept.
    let mut again = first.shipment.clone();
    again.first_scan_at = Some(t(3600));
    again.tracking_status = Some("IT".into());
    again.state = ShipmentState::Completed;
    again.erp_fulfilment_id = Some("FUL-77".into());
    again.lines.push(ShipmentLine {
        line_item_key: None,
        sku: None,
        quantity: 1,
    });
    again.ship_date = None;
    save(db, ACME, 3700, vec![again.clone()]).await?;

    let second = store
        .get_shipment(ACME, "label:5001")
        .await?
        .expect("still there");
    assert_eq!(
        second.shipment.clone(),
        again,
        "the second version is kept"
    );
    assert_eq!(
        (second.created_at, second.updated_at),
        (t(10), t(3700)),
        "created_at is the first sighting's"
    );
    let all = store.list_shipments(ShipmentFilter::default()).await?;
    assert_eq!(all, [second], "one record, however often it is seen");

    // The same key on another connection is another shipment; unknown keys are none.
    save(db, BETA, 20, vec![label(5001, 9001, None, 0)]).await?;
    let beta = store
        .get_shipment(BETA, "label:5001")
        .await?
        .expect("saved on beta");
    assert_eq!((beta.shipment.erp_id, beta.created_at), (None, t(20)));
    assert_eq!(
        store
            .get_shipment(ACME, "label:5001")
            .await?
            .unwrap()
            .created_at,
        t(10)
    );
    assert_eq!(store.get_shipment(ACME, "label:9999").await?, None);
    assert_eq!(store.get_shipment("nobody", "label:5001").await?, None);
    Ok(())
}

pub async fn shipments_list_by_erp_order_and_by_shipstation_order(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    // Order 1001 was split in ShipStation: two children (9001, 9002), three labels,
    // written out of the order ShipStation made them. Order 1002 got a fulfillment.
    save(
        db,
        ACME,
        10,
        vec![
            label(5003, 9002, Some("1001"), 30),
            label(5001, 9001, Some("1001"), 10),
        ],
    )
    .await?;
    save(db, ACME, 11, vec![label(5002, 9001, Some("1001"), 20)]).await?;
    let mut packed = fulfillment(7001, 9100, "1002", 5);
    packed.state = ShipmentState::Packed;
    packed.tracking_number = Some("DPD123".into());
    save(db, ACME, 12, vec![packed]).await?;
    // An orphan: made for a ShipStation order shipledger never pushed.
    let mut orphan = label(5004, 9999, None, 15);
    orphan.state = ShipmentState::Orphan;
    save(db, ACME, 13, vec![orphan]).await?;
    // The same ERP id on another brand is not this one's.
    save(db, BETA, 14, vec![label(6001, 9001, Some("1001"), 1)]).await?;

    let acme = || ShipmentFilter {
        connection: Some(ACME.into()),
        ..Default::default()
    };

    // Oldest ShipStation creation first.
    assert_eq!(
        keys(store.list_shipments(acme()).await?),
        [
            "fulfillment:7001",
            "label:5001",
            "label:5004",
            "label:5002",
            "label:5003"
        ]
    );
    let by_erp = store
        .list_shipments(ShipmentFilter {
            erp_id: Some("1001".into()),
            ..acme()
        })
        .await?;
    assert_eq!(keys(by_erp), ["label:5001", "label:5002", "label:5003"]);
    let by_erp_everywhere = store
        .list_shipments(ShipmentFilter {
            erp_id: Some("1001".into()),
            ..Default::default()
        })
        .await?;
    assert_eq!(
        keys(by_erp_everywhere),
        ["label:6001", "label:5001", "label:5002", "label:5003"]
    );
    let by_ss_order = store
        .list_shipments(ShipmentFilter {
            ss_order_id: Some(9001),
            ..acme()
        })
        .await?;
    assert_eq!(keys(by_ss_order), ["label:5001", "label:5002"]);
    let split_child = store
        .list_shipments(ShipmentFilter {
            ss_order_id: Some(9002),
            ..acme()
        })
        .await?;
    assert_eq!(keys(split_child), ["label:5003"]);
    let by_tracking = store
        .list_shipments(ShipmentFilter {
            tracking_number: Some("DPD123".into()),
            ..acme()
        })
        .await?;
    assert_eq!(keys(by_tracking), ["fulfillment:7001"]);
    let orphans = store
        .list_shipments(ShipmentFilter {
            state: Some(ShipmentState::Orphan),
            ..acme()
        })
        .await?;
    assert_eq!(keys(orphans), ["label:5004"]);
    let first_two = store
        .list_shipments(ShipmentFilter {
            erp_id: Some("1001".into()),
            limit: 2,
            ..acme()
        })
        .await?;
    assert_eq!(keys(first_two), ["label:5001", "label:5002"]);
    let combined = store
        .list_shipments(ShipmentFilter {
            erp_id: Some("1001".into()),
            ss_order_id: Some(9002),
            state: Some(ShipmentState::Seen),
            tracking_number: Some("RM5003GB".into()),
            ..acme()
        })
        .await?;
    assert_eq!(keys(combined), ["label:5003"]);
    assert!(
        store
            .list_shipments(ShipmentFilter {
                erp_id: Some("9999".into()),
                ..acme()
            })
            .await?
            .is_empty()
    );
    Ok(())
}

pub async fn awaiting_scan_lists_live_unscanned_labels_not_voided_ones_fulfillments_or_scanned_ones(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let waiting_new = label(5002, 9002, Some("1002"), 20);
    let waiting_old = label(5001, 9001, Some("1001"), 10);
    let mut voided = label(5003, 9003, Some("1003"), 5);
    voided.voided = true;
    voided.voided_at = Some(t(50));
    voided.state = ShipmentState::Reversed;
    let mut scanned = label(5004, 9004, Some("1004"), 1);
    scanned.first_scan_at = Some(t(40));
    scanned.tracking_status = Some("IT".into());
    let shipped_without_label = fulfillment(7001, 9005, "1005", 2);
    save(
        db,
        ACME,
        60,
        vec![
            waiting_new,
            voided,
            scanned,
            shipped_without_label,
            waiting_old,
        ],
    )
    .await?;
    save(db, BETA, 60, vec![label(6001, 9001, Some("1001"), 0)]).await?;

    let awaiting = |connection: Option<&str>| ShipmentFilter {
        connection: connection.map(Into::into),
        awaiting_scan: true,
        ..Default::default()
    };
    assert_eq!(
        keys(store.list_shipments(awaiting(Some(ACME))).await?),
        ["label:5001", "label:5002"]
    );
    assert_eq!(
        keys(store.list_shipments(awaiting(None)).await?),
        ["label:6001", "label:5001", "label:5002"]
    );
    // Without the flag every shipment is listed.
    assert_eq!(
        store
            .list_shipments(ShipmentFilter {
                connection: Some(ACME.into()),
                ..Default::default()
            })
            .await?
            .len(),
        5
    );

    // The carrier scans the oldest label: it stops waiting.
    let mut now_scanned =
        store.get_shipment(ACME, "label:5001").await?.unwrap().shipment;
    now_scanned.first_scan_at = Some(t(70));
    save(db, ACME, 70, vec![now_scanned]).await?;
    // The newer one is voided: it stops waiting too.
    let mut now_voided =
        store.get_shipment(ACME, "label:5002").await?.unwrap().shipment;
    now_voided.voided = true;
    now_voided.voided_at = Some(t(71));
    save(db, ACME, 71, vec![now_voided]).await?;
    assert!(store.list_shipments(awaiting(Some(ACME))).await?.is_empty());
    // Read back, the voided flag is what was written.
    assert!(
        store
            .get_shipment(ACME, "label:5002")
            .await?
            .unwrap()
            .voided
    );
    assert!(
        !store
            .get_shipment(ACME, "label:5001")
            .await?
            .unwrap()
            .voided
    );
    Ok(())
}

pub async fn a_shipment_written_with_its_job_and_event_is_all_or_nothing(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let mut plan = Change::new(ACME, t(0));
    plan.jobs.push(job(JobKind::IngestV1Webhook, "poll:1", t(0)));
    store.commit(plan).await?;
    let claimed = store
        .claim_jobs(claim(JobKind::IngestV1Webhook, t(1), "w1", 1))
        .await?;
    let (job_id, token) = (claimed[0].id, claimed[0].lease_token.clone().unwrap());

    // The poll found a label and decides to write it to the ERP: the shipment, the
    // job that writes it, its timeline event and the finished poll are one change.
    let mut change = Change::new(ACME, t(2));
    change.shipments.push(label(5001, 9001, Some("1001"), 0));
    change
        .jobs
        .push(job(JobKind::WriteFulfilment, "fulfil:label:5001", t(2)));
    change.events.push(NewEvent::shipment("label:5001", EventKind::LabelSeen, json!({"tracking_number": "RM5001GB"})));
    change.finish_job = Some(JobFinish {
        job_id,
        lease_token: "somebody-else".into(),
        state: JobState::Done,
        error: None,
    });

    // Its lease was lost: nothing of it is written.
    let lost = store.commit(change.clone()).await;
    assert!(
        matches!(lost, Err(StoreError::LeaseLost { job_id: id }) if id == job_id),
        "{lost:?}"
    );
    assert_eq!(store.get_shipment(ACME, "label:5001").await?, None);
    assert!(
        store
            .list_shipments(ShipmentFilter::default())
            .await?
            .is_empty()
    );
    assert!(
        store
            .timeline(ACME, "shipment", "label:5001")
            .await?
            .is_empty()
    );
    let jobs = store.list_jobs(JobFilter::default()).await?;
    assert_eq!(
        jobs.iter()
            .map(|j| (j.idempotency_key.as_str(), j.state))
            .collect::<Vec<_>>(),
        [("poll:1", JobState::Running)]
    );

    // Another part of the change failing (the order's lines clash) leaves no
    // shipment and no event behind either.
    let mut clash = change.clone();
    clash.finish_job = None;
    let mut shipped = order("1001", "SO-1001", OrderState::Shipped);
    shipped.lines = Some(vec![line("L1", "MUG", 1), line("L1", "TEA", 1)]);
    clash.order = Some(shipped);
    let failed = store.commit(clash).await;
    assert!(matches!(failed, Err(StoreError::Database(_))), "{failed:?}");
    assert_eq!(store.get_shipment(ACME, "label:5001").await?, None);
    assert!(
        store
            .timeline(ACME, "shipment", "label:5001")
            .await?
            .is_empty()
    );

    // A shipment on an unregistered connection is refused with how to fix it.
    let mut stranger = Change::new("nobody", t(2));
    stranger.shipments.push(label(5001, 9001, None, 0));
    let refused = store.commit(stranger).await;
    assert!(
        matches!(&refused, Err(StoreError::Database(m)) if m.contains("ensure_connection")),
        "{refused:?}"
    );

    // With the lease still ours, all of it is written together.
    change.finish_job.as_mut().unwrap().lease_token = token;
    let outcome = store.commit(change).await?;
    assert_eq!(outcome.jobs_planned.len(), 1);
    let saved = store
        .get_shipment(ACME, "label:5001")
        .await?
        .expect("written");
    assert_eq!((saved.created_at, saved.updated_at), (t(2), t(2)));
    let timeline = store.timeline(ACME, "shipment", "label:5001").await?;
    assert_eq!(
        timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["label_seen"]
    );
    let jobs = store.list_jobs(JobFilter::default()).await?;
    assert_eq!(
        jobs.iter()
            .map(|j| (j.idempotency_key.as_str(), j.state))
            .collect::<Vec<_>>(),
        [
            ("poll:1", JobState::Done),
            ("fulfil:label:5001", JobState::Pending)
        ]
    );
    Ok(())
}

pub async fn scan_checks_put_never_checked_labels_first_then_the_least_recently_checked_and_keep_the_rest_until_due(
    db: &TestDb,
) -> anyhow::Result<()> {
    use shipledger_store::{ScanCheck, ScanCheckState};
    let store = &db.store;
    // Three live labels, a scanned one, a voided one, an orphan and one without a
    // tracking number: only the first three are for the sweep.
    let mut scanned = label(5004, 9004, Some("1004"), 1);
    scanned.first_scan_at = Some(t(40));
    let mut voided = label(5005, 9005, Some("1005"), 2);
    voided.voided = true;
    let orphan = label(5006, 9006, None, 3);
    let mut unnumbered = label(5007, 9007, Some("1007"), 4);
    unnumbered.tracking_number = None;
    save(
        db,
        ACME,
        60,
        vec![label(5001, 9001, Some("1001"), 10), label(5002, 9002, Some("1002"), 20), label(5003, 9003, Some("1003"), 30), scanned, voided, orphan, unnumbered],
    )
    .await?;
    save(db, BETA, 60, vec![label(6001, 9001, Some("1001"), 0)]).await?;
    let due_keys = |found: Vec<shipledger_store::AwaitingScan>| found.into_iter().map(|a| a.record.shipment.shipment_key).collect::<Vec<_>>();

    // Never checked: all due at once, oldest first, with an empty check state.
    let due = store.scans_due(ACME, t(100), 0).await?;
    assert_eq!(due.iter().map(|a| a.shipment_key.clone()).collect::<Vec<_>>(), ["label:5001", "label:5002", "label:5003"]);
    assert!(due.iter().all(|a| a.check == ScanCheckState::default()));
    assert_eq!(due_keys(store.scans_due(ACME, t(100), 2).await?), ["label:5001", "label:5002"]);

    // The two oldest are checked (nothing found): the never-checked one comes first
    // now, and the checked ones wait until they are due.
    let check = |key: &str, at: i64, due: i64, coarse: Option<&str>| ScanCheck {
        shipment_key: key.into(),
        checked_at: t(at),
        next_due_at: t(due),
        coarse_status: coarse.map(Into::into),
    };
    store
        .mark_scans_checked(ACME, &[check("label:5002", 100, 200, Some("unknown")), check("label:5001", 110, 160, Some("in_transit"))])
        .await?;
    assert_eq!(due_keys(store.scans_due(ACME, t(150), 0).await?), ["label:5003"]);
    let due = store.scans_due(ACME, t(200), 0).await?;
    assert_eq!(due.iter().map(|a| a.shipment_key.clone()).collect::<Vec<_>>(), ["label:5003", "label:5002", "label:5001"], "never checked, then least recently checked");
    assert_eq!(
        due[2].check,
        ScanCheckState { last_checked_at: Some(t(110)), empty_checks: 1, next_due_at: Some(t(160)), coarse_status: Some("in_transit".into()) }
    );

    // A check that did not read the coarse status keeps the one stored; the count goes on.
    store.mark_scans_checked(ACME, &[check("label:5001", 300, 400, None)]).await?;
    let found = store.scans_awaiting(ACME, &["RM5001GB".into(), "RM5004GB".into(), "RM5006GB".into(), "NOPE".into()]).await?;
    assert_eq!(found.len(), 1, "scanned and orphaned labels are not awaiting a check");
    assert_eq!(
        found[0].check,
        ScanCheckState { last_checked_at: Some(t(300)), empty_checks: 2, next_due_at: Some(t(400)), coarse_status: Some("in_transit".into()) }
    );
    // Writing the shipment again (a poll, a tracking status) leaves its check state.
    let mut again = store.get_shipment(ACME, "label:5001").await?.unwrap().shipment;
    again.tracking_status = Some("NY".into());
    save(db, ACME, 310, vec![again]).await?;
    assert_eq!(store.scans_awaiting(ACME, &["RM5001GB".into()]).await?[0].check.empty_checks, 2);
    assert!(store.scans_awaiting(ACME, &[]).await?.is_empty());
    // Many numbers at once (more than one query's worth) find every label.
    let mut many: Vec<String> = (0..1_200).map(|n| format!("X{n}")).collect();
    many.push("RM5003GB".into());
    many.push("RM5002GB".into());
    assert_eq!(due_keys(store.scans_awaiting(ACME, &many).await?), ["label:5002", "label:5003"]);
    // The other connection's label is its own.
    assert_eq!(due_keys(store.scans_due(BETA, t(0), 0).await?), ["label:6001"]);
    Ok(())
}

pub async fn the_shipment_poll_can_find_something_only_with_an_order_open_in_shipstation_a_recent_leaver_or_a_voidable_label(
    db: &TestDb,
) -> anyhow::Result<()> {
    let store = &db.store;
    let can_find = |orders_since: i64, labels_since: i64| store.shipment_poll_can_find(ACME, t(orders_since), t(labels_since));
    assert!(!can_find(0, 0).await?, "a new connection: nothing in ShipStation");
    let put = |o: shipledger_store::OrderUpsert, at: i64| {
        let mut change = Change::new(ACME, t(at));
        change.order = Some(o);
        store.commit(change)
    };
    // Released, not yet in ShipStation.
    put(order("2001", "SO-2001", OrderState::Released), 10).await?;
    assert!(!can_find(0, 0).await?, "a released order is not in ShipStation yet");
    // Pushed: it may be labelled at any moment, however long ago it was pushed.
    let mut pushed = order("2001", "SO-2001", OrderState::Pushed);
    pushed.ss_order_id = Some(92001);
    put(pushed.clone(), 20).await?;
    assert!(can_find(1_000, 1_000).await?, "an order awaiting shipment in ShipStation");
    assert!(!store.shipment_poll_can_find(BETA, t(0), t(0)).await?, "another connection's orders are not this one's");
    // Cancelled at 100: a label made just before may not be polled yet.
    put(shipledger_store::OrderUpsert { state: OrderState::Cancelled, ..pushed }, 100).await?;
    assert!(can_find(50, 1_000).await?, "left ShipStation's queue since 50");
    assert!(!can_find(200, 1_000).await?, "left it before 200: nothing open");
    // A live label made at 300 can still be voided; a voided one cannot.
    let mut voided = label(5101, 9101, Some("2001"), 250);
    voided.voided = true;
    save(db, ACME, 300, vec![voided]).await?;
    assert!(!can_find(1_000, 0).await?, "a voided label is voided for good");
    save(db, ACME, 300, vec![label(5102, 9102, Some("2001"), 300)]).await?;
    assert!(can_find(1_000, 299).await?, "a live label younger than the look-back");
    assert!(!can_find(1_000, 301).await?, "a live label older than the look-back");
    Ok(())
}
