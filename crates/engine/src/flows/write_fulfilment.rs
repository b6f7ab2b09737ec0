//! The `write_fulfilment` handler: one shipment's phase written to the ERP. A new
//! label plans the ERP fulfilment *packed* (carrier, service, tracking, ship date);
//! its first scan plans *completed* (`fulfil_on = "label"` completes at once); a void
//! plans the reversal ([`shipments`] plans them). Each is
//! done only when the ERP shows it when read back; a write that did not happen is
//! retried per the kind's policy and, once given up, raised as
//! `tracking_write_back_failed`. A new document that the ERP would certainly refuse
//! (its lines are on another label's fulfilment) waits, and that fulfilment's
//! reversal wakes it. A reversal for a label the store knows no ERP fulfilment of
//! (voided while its packed write was pending, or that write's answer lost) first
//! reads the ERP: a fulfilment there under the label's key is cancelled, none means
//! nothing is written. An ERP that cannot undo a completed fulfilment gets an
//! exception that says exactly what to undo.

use std::collections::HashMap;

use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::money::{Currency, Money};
use shipledger_core::retry::{Classify, Verdict};
use shipledger_core::shipment::{OrderedLine, ShipmentView, map_lines};
use shipledger_erp::{ErpError, FulfilmentRecord, FulfilmentState, FulfilmentWrite, Package};
use shipledger_store::{
    Change, EventKind, Job, JobKind, JobSpec, NewEvent, OrderState, OrderUpsert, Phase, ShipmentFilter as StoredShipments,
    ShipmentRecord, ShipmentState, WriteFulfilment,
};

use crate::flows::shipments::{self, ShipmentReport, event, ordered_line, view};
use crate::jobs::{self, Failed};
use crate::{Connection, Engine, EngineError};

/// Run `write_fulfilment` jobs: write the phase to the ERP, read it back, record it.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<ShipmentReport, EngineError> {
    let mut report = ShipmentReport::default();
    while step(engine, conn, &mut report).await? {}
    Ok(report)
}

/// One bounded step: claim up to 50 runnable `write_fulfilment` jobs, held for as
/// long as the step runs ([`jobs::claim_held`]: fifty writes to a slow ERP outlast one
/// lease), and write each. A job whose lease was lost meanwhile (the renewals stalled
/// and another worker claimed it) gets no ERP write from this step: that worker makes
/// it. `false` when none was runnable.
pub async fn step(engine: &Engine, conn: &Connection, report: &mut ShipmentReport) -> Result<bool, EngineError> {
    let (jobs, lease) = jobs::claim_held(engine, conn, JobKind::WriteFulfilment, 50).await?;
    if jobs.is_empty() {
        return Ok(false);
    }
    for job in jobs {
        if lease.still_holds(conn, &job, "ERP write-back") {
            write_one(engine, conn, job, &lease, report).await?;
        }
    }
    Ok(true)
}

fn target(phase: Phase) -> FulfilmentState {
    match phase {
        Phase::Packed => FulfilmentState::Packed,
        Phase::Completed => FulfilmentState::Completed,
        Phase::Cancelled => FulfilmentState::Cancelled,
    }
}

/// The shipment's state once its phase is written.
fn reached(phase: Phase) -> ShipmentState {
    match phase {
        Phase::Packed => ShipmentState::Packed,
        Phase::Completed => ShipmentState::Completed,
        Phase::Cancelled => ShipmentState::Reversed,
    }
}

/// The timeline's event for a phase written (read back).
fn recorded(phase: Phase) -> EventKind {
    match phase {
        Phase::Packed => EventKind::ErpPacked,
        Phase::Completed => EventKind::ErpCompleted,
        Phase::Cancelled => EventKind::ErpCancelled,
    }
}

/// The timeline's event for a phase given up.
fn given_up(phase: Phase) -> EventKind {
    match phase {
        Phase::Packed => EventKind::ErpPackedFailed,
        Phase::Completed => EventKind::ErpCompletedFailed,
        Phase::Cancelled => EventKind::ErpCancelledFailed,
    }
}

async fn write_one(engine: &Engine, conn: &Connection, job: Job, lease: &jobs::JobLease, report: &mut ShipmentReport) -> Result<(), EngineError> {
    let JobSpec::WriteFulfilment(WriteFulfilment { shipment_key: key, phase }) = job.spec.clone() else {
        let why = format!("job {} is a {} job, not a write_fulfilment", job.id, job.kind());
        return jobs::dead(engine, &job, jobs::change(engine, conn), why).await;
    };
    let state = target(phase);
    let Some(shipment) = engine.store.get_shipment(&conn.name, &key).await? else {
        return jobs::dead(engine, &job, jobs::change(engine, conn), format!("shipment {key} is not in the store")).await;
    };
    let Some(erp_id) = shipment.erp_id.clone() else {
        return jobs::done(engine, &job, jobs::change(engine, conn)).await;
    };
    // A later phase already written makes an earlier one moot (a scan seen before the
    // packed write ran, say).
    let rank = |s: ShipmentState| match s {
        ShipmentState::Seen | ShipmentState::Orphan => 0,
        ShipmentState::Packed => 1,
        ShipmentState::Completed => 2,
        ShipmentState::Reversed => 3,
    };
    let wanted = reached(phase);
    if rank(shipment.state) >= rank(wanted) || (shipment.voided && state != FulfilmentState::Cancelled) {
        return jobs::done(engine, &job, jobs::change(engine, conn)).await;
    }
    let lines = engine.store.order_lines(&conn.name, &erp_id).await?;
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(ordered_line)
        .collect();
    let mapping = map_lines(&ordered, &[view(&shipment)]);
    let write = FulfilmentWrite {
        key: format!("shipledger:{}:{}", conn.name, shipment.shipment_key),
        erp_order_id: erp_id.clone(),
        state,
        lines: mapping
            .by_shipment
            .get(&shipment.shipment_key)
            .map(|v| v.iter().map(|(l, q)| (l.clone(), (*q).max(0) as u32)).collect())
            .unwrap_or_default(),
        packages: vec![Package {
            carrier: shipment.carrier.clone(),
            service: shipment.service.clone(),
            tracking_number: shipment.tracking_number.clone().unwrap_or_default(),
            ship_date: shipment.ship_date,
            cost: shipment
                .cost_minor
                .zip(shipment.cost_currency.as_deref().and_then(|c| Currency::parse(c).ok()))
                .map(|(m, c)| Money::from_minor(m, c)),
        }],
    };
    // A void seen before the store knew of an ERP fulfilment for the label (its packed
    // write planned or in flight, or its answer lost): the ERP may hold one all the
    // same. Its own record decides: none there, nothing is reversed or written; one
    // there is cancelled below like any other.
    if state == FulfilmentState::Cancelled && !matches!(shipment.state, ShipmentState::Packed | ShipmentState::Completed) {
        let held = match conn.erp.fulfilments(&erp_id).await {
            Ok(list) => list.into_iter().find(|f| f.key == write.key),
            Err(e) => {
                let reason = format!("reading order {erp_id}'s fulfilments in the ERP, to see whether it holds one for the voided label, failed: {e}");
                return give_up_or_retry(engine, conn, job, &shipment, phase, &erp_id, e.classify(), reason, report).await;
            }
        };
        match held {
            None => return nothing_to_reverse(engine, conn, job, &shipment, &erp_id).await,
            // Reversed already (an earlier try's answer was lost): recorded as such.
            Some(doc) if doc.state == FulfilmentState::Cancelled => return written_back(engine, conn, job, &shipment, phase, &erp_id, &doc, report).await,
            Some(_) => {}
        }
    }
    // A new fulfilment document takes its quantities from what the order's other
    // documents leave, and the ERP refuses one that does not fit. When the store
    // already knows the ERP holds those quantities on another label's fulfilment (a
    // re-made label seen before the old one's void, or the void seen but its reversal
    // not yet written), writing now is a write certain to be refused: wait instead,
    // and let that fulfilment's reversal wake this job. (A reversal is no new
    // document.)
    if state != FulfilmentState::Cancelled
        && shipment.erp_fulfilment_id.is_none()
        && let Some(reason) = crowded_out(engine, conn, &shipment, &erp_id, &ordered, &write).await?
    {
        // Certain to clear once the other label's reversal is written (which wakes it).
        return give_up_or_retry(engine, conn, job, &shipment, phase, &erp_id, Verdict::Backoff, reason, report).await;
    }
    // The reads above take time: the write is made only while the job is still ours.
    if !lease.still_holds(conn, &job, "ERP write-back") {
        return Ok(());
    }
    let written = conn.erp.record_fulfilment(&write).await;
    // Whatever the answer, the ERP's own record decides: read it back.
    let read_back = conn.erp.fulfilments(&erp_id).await;
    let shown = read_back
        .as_ref()
        .ok()
        .and_then(|list| list.iter().find(|f| f.key == write.key).cloned());
    let now = engine.clock.now();
    match shown {
        Some(doc) if doc.state == state && doc.packages.iter().any(|p| p.tracking_number == write.packages[0].tracking_number) => {
            written_back(engine, conn, job, &shipment, phase, &erp_id, &doc, report).await
        }
        _ => {
            let reason = match (&written, &read_back) {
                (Err(e), _) => e.to_string(),
                (Ok(_), Err(e)) => format!("the write was accepted but reading it back failed: {e}"),
                (Ok(_), Ok(_)) => "the ERP accepted the write but does not show it".to_string(),
            };
            let refused = matches!(written, Err(ErpError::Refused { .. }));
            if state == FulfilmentState::Cancelled && refused {
                // The ERP will not undo it: say exactly what a person must undo.
                let mut change = Change::new(&conn.name, now);
                change.raise(
                    ExceptionKind::VoidAfterWriteBack,
                    "shipment",
                    shipment.shipment_key.clone(),
                    json!({"message": format!(
                        "label {} was voided in ShipStation after ERP fulfilment {} for order {erp_id} was {}; the ERP refused to reverse it ({reason}): reverse that fulfilment in the ERP by hand",
                        shipment.tracking_number.clone().unwrap_or_default(),
                        shipment.erp_fulfilment_id.clone().unwrap_or_default(),
                        shipment.state,
                    )}),
                );
                change.events.push(write_failed(&shipment, phase, &reason));
                report.failed += 1;
                return jobs::dead(engine, &job, change, reason).await;
            }
            // A refusal can clear (a void reversed elsewhere frees the quantity), so it
            // is retried like a failure, and raised after the last attempt.
            let verdict = match (&written, &read_back) {
                (Err(ErpError::Refused { .. }), _) => Verdict::Backoff,
                (Err(e), _) => e.classify(),
                (Ok(_), Err(e)) => jobs::unknown_outcome(e.classify()),
                (Ok(_), Ok(_)) => Verdict::Backoff,
            };
            give_up_or_retry(engine, conn, job, &shipment, phase, &erp_id, verdict, reason, report).await
        }
    }
}

/// The ERP shows `phase` written as `doc` (read back): the shipment records it, its
/// write-back exception closes, a completion may ship the order, and a reversal wakes
/// the order's labels waiting for the quantities it frees.
#[allow(clippy::too_many_arguments)]
async fn written_back(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    shipment: &ShipmentRecord,
    phase: Phase,
    erp_id: &str,
    doc: &FulfilmentRecord,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    let now = engine.clock.now();
    let tracking = shipment.tracking_number.clone().unwrap_or_default();
    report.written += 1;
    let mut upsert = shipment.shipment.clone();
    upsert.state = reached(phase);
    upsert.erp_fulfilment_id = Some(doc.id.clone());
    let mut change = Change::new(&conn.name, now);
    change.shipments.push(upsert);
    change.events.push(event(
        &shipment.shipment_key,
        recorded(phase),
        json!({"message": format!("ERP fulfilment {} is {phase} for order {erp_id} with tracking {tracking}", doc.id), "erp_fulfilment": doc.id}),
    ));
    change.clear(ExceptionKind::TrackingWriteBackFailed, "shipment", shipment.shipment_key.clone());
    if phase == Phase::Completed {
        maybe_order_shipped(engine, conn, erp_id, &shipment.shipment_key, &mut change).await?;
    }
    if phase == Phase::Cancelled {
        // The quantities are free again: the order's labels waiting for them
        // are written now, not at their next retry.
        let waiting = engine
            .store
            .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
            .await?;
        for s in waiting.iter().filter(|s| s.shipment_key != shipment.shipment_key && !s.voided && s.erp_fulfilment_id.is_none()) {
            for phase in [Phase::Packed, Phase::Completed] {
                change.wake_jobs.push(shipments::job(&s.shipment_key, phase, now).idempotency_key);
            }
        }
    }
    jobs::done(engine, &job, change).await
}

/// A voided label whose fulfilment the ERP never got (read back: it holds none under
/// the label's key): reversed without a write, and its write-back exception, if any,
/// closes (nothing is left to write).
async fn nothing_to_reverse(engine: &Engine, conn: &Connection, job: Job, shipment: &ShipmentRecord, erp_id: &str) -> Result<(), EngineError> {
    let mut upsert = shipment.shipment.clone();
    upsert.state = ShipmentState::Reversed;
    let mut change = Change::new(&conn.name, engine.clock.now());
    change.shipments.push(upsert);
    change.events.push(event(
        &shipment.shipment_key,
        EventKind::ErpNothingToReverse,
        json!({"message": format!(
            "label {} was voided before its fulfilment reached the ERP: order {erp_id} holds none for it, so nothing is reversed",
            shipment.tracking_number.clone().unwrap_or_default()
        )}),
    ));
    change.clear(ExceptionKind::TrackingWriteBackFailed, "shipment", shipment.shipment_key.clone());
    jobs::done(engine, &job, change).await
}

/// A write-back that did not happen (failed, refused, or waiting for quantities):
/// retried per the `write_fulfilment` retry policy, and once the failure is permanent
/// or the attempts or horizon are spent, finished dead with a
/// `tracking_write_back_failed` exception that says why.
#[allow(clippy::too_many_arguments)]
async fn give_up_or_retry(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    shipment: &ShipmentRecord,
    phase: Phase,
    erp_id: &str,
    verdict: Verdict,
    reason: String,
    report: &mut ShipmentReport,
) -> Result<(), EngineError> {
    let owner = ExceptionKind::TrackingWriteBackFailed.owner();
    let outcome = jobs::fail(engine, conn, &job, verdict, &reason, owner, |owner, _| {
        let mut change = jobs::change(engine, conn);
        change.raise(
            jobs::owned(ExceptionKind::TrackingWriteBackFailed, owner),
            "shipment",
            shipment.shipment_key.clone(),
            json!({"message": format!(
                "recording {phase} with tracking {} on ERP order {erp_id} failed after {} attempt(s): {reason}",
                shipment.tracking_number.clone().unwrap_or_default(), job.attempts
            )}),
        );
        change.events.push(write_failed(shipment, phase, &reason));
        change
    })
    .await?;
    if outcome == Failed::GaveUp {
        report.failed += 1;
    }
    Ok(())
}

/// Why the ERP would refuse `write` as a new fulfilment document, when the store
/// knows: some of its lines are already taken, up to the ordered quantity, by the
/// fulfilments of the order's other labels that the ERP holds (written packed or
/// completed and not reversed, voided or not). `None` when they fit.
async fn crowded_out(
    engine: &Engine,
    conn: &Connection,
    shipment: &ShipmentRecord,
    erp_id: &str,
    ordered: &[OrderedLine],
    write: &FulfilmentWrite,
) -> Result<Option<String>, EngineError> {
    let holders: Vec<ShipmentRecord> = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
        .await?
        .into_iter()
        .filter(|s| s.shipment_key != shipment.shipment_key && matches!(s.state, ShipmentState::Packed | ShipmentState::Completed))
        .collect();
    if holders.is_empty() {
        return Ok(None);
    }
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut holding: HashMap<String, Vec<&ShipmentRecord>> = HashMap::new();
    for h in &holders {
        let mapping = map_lines(ordered, &[view(h)]);
        for (line, q) in mapping.by_shipment.get(&h.shipment_key).into_iter().flatten() {
            *held.entry(line.clone()).or_default() += *q;
            holding.entry(line.clone()).or_default().push(h);
        }
    }
    let mut full = Vec::new();
    let mut by: Vec<&ShipmentRecord> = Vec::new();
    for (line, q) in &write.lines {
        let Some(line_ordered) = ordered.iter().find(|l| &l.line_id == line) else { continue };
        let already = held.get(line).copied().unwrap_or(0);
        if already > 0 && already + i64::from(*q) > line_ordered.quantity {
            full.push(format!("{line} ({already} of {} taken)", line_ordered.quantity));
            for h in holding.get(line).into_iter().flatten() {
                if !by.iter().any(|b| b.shipment_key == h.shipment_key) {
                    by.push(h);
                }
            }
        }
    }
    if full.is_empty() {
        return Ok(None);
    }
    let labels: Vec<String> = by
        .iter()
        .map(|h| {
            format!(
                "label {} (ERP fulfilment {}, {}{})",
                h.tracking_number.clone().unwrap_or_default(),
                h.erp_fulfilment_id.clone().unwrap_or_default(),
                h.state,
                if h.voided { ", voided: its reversal is not written yet" } else { ", not voided" }
            )
        })
        .collect();
    Ok(Some(format!(
        "not sent: the ERP would refuse it, lines {} are on the fulfilments of {}; it is written once they are reversed (a void of the old label)",
        full.join(", "),
        labels.join(", ")
    )))
}

/// The timeline's note that a write-back gave up (its exception says what to do).
fn write_failed(shipment: &ShipmentRecord, phase: Phase, reason: &str) -> NewEvent {
    event(
        &shipment.shipment_key,
        given_up(phase),
        json!({"message": format!(
            "recording {phase} with tracking {} in the ERP failed: {reason}",
            shipment.tracking_number.clone().unwrap_or_default()
        )}),
    )
}

/// When every physical line is shipped and every live shipment completed, the order
/// is shipped.
async fn maybe_order_shipped(engine: &Engine, conn: &Connection, erp_id: &str, completing: &str, change: &mut Change) -> Result<(), EngineError> {
    let shipments = engine
        .store
        .list_shipments(StoredShipments { connection: Some(conn.name.clone()), erp_id: Some(erp_id.to_string()), ..Default::default() })
        .await?;
    let live: Vec<&ShipmentRecord> = shipments.iter().filter(|s| !s.voided).collect();
    if !live.iter().all(|s| s.state == ShipmentState::Completed || s.shipment_key == completing) {
        return Ok(());
    }
    let lines = engine.store.order_lines(&conn.name, erp_id).await?;
    let ordered: Vec<OrderedLine> = lines
        .iter()
        .map(ordered_line)
        .collect();
    let views: Vec<ShipmentView> = shipments.iter().map(view).collect();
    if !map_lines(&ordered, &views).complete(&ordered) {
        return Ok(());
    }
    if let Some(order) = engine.store.get_order(&conn.name, erp_id).await?
        && order.state != OrderState::Shipped
    {
        let mut upsert = OrderUpsert::from_record(&order);
        upsert.state = OrderState::Shipped;
        change.order = Some(upsert);
        change.events.push(NewEvent::order(
            erp_id,
            EventKind::Shipped,
            json!({"message": format!("every line shipped and scanned; tracking {}", live.iter().filter_map(|s| s.tracking_number.clone()).collect::<Vec<_>>().join(", "))}),
        ));
    }
    Ok(())
}
