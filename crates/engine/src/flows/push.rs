//! Push: bring ShipStation in line with each released order's latest ERP snapshot.
//!
//! The worker claims up to `push_batch` (≤ 100) `sync_order` jobs, builds each order
//! from the order's *current* record — not from the job — so a late job can never
//! undo a newer change, and sends them in one `createorders` request keyed by the
//! deterministic `orderKey` (an upsert: a retry after a crash between ShipStation's
//! answer and our commit updates the same order instead of making a second one). Per
//! order it handles the bulk answer's own success or error, then reads the accepted
//! orders back from ShipStation (a page of recently modified orders) and commits
//! `orderId`, status and the pushed snapshot only for what it saw. A refusal is
//! retried with backoff and becomes an owned exception after the last attempt; an
//! order ShipStation has already shipped or cancelled cannot change any more and
//! becomes a `change_after_shipment` exception at once.

use std::collections::{BTreeMap, HashMap};

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde_json::json;
use shipledger_core::exception::ExceptionKind;
use shipledger_core::order::{Address, ErpOrder, ErpOrderStatus};
use shipledger_core::{Weight, WeightUnit};
use shipledger_shipstation::v1::model::{self as ss, OrderStatus};
use shipledger_shipstation::v1::query::{OrderFilter, OrderSortBy, SortDir};
use shipledger_store::{
    Change, Job, JobClaim, JobFinish, JobState, NewEvent, OrderLineRecord, OrderRecord,
    OrderState, OrderUpsert,
};

use crate::flows::release::SYNC_ORDER;
use crate::flows::{LEASE, commit_job_change, retry_job};
use crate::{Connection, Engine, EngineError};

/// How far back the read-back looks for recently modified orders.
const READ_BACK_WINDOW: SignedDuration = SignedDuration::from_mins(30);
/// Pages of 500 the read-back may read before calling an order unverified.
const READ_BACK_PAGES: u32 = 4;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub requests: u64,
    pub pushed: u64,
    pub already_in_sync: u64,
    pub retried: u64,
    pub failed: u64,
}

/// What ShipStation's order should say, from the record's latest snapshot.
fn desired_status(snapshot: &ErpOrder) -> OrderStatus {
    match snapshot.status {
        ErpOrderStatus::Open => OrderStatus::AwaitingShipment,
        ErpOrderStatus::OnHold => OrderStatus::OnHold,
        ErpOrderStatus::Cancelled => OrderStatus::Cancelled,
    }
}

/// One job in the batch being pushed.
struct Pending {
    job: Job,
    record: OrderRecord,
    snapshot: ErpOrder,
    status: OrderStatus,
}

/// Claim and run `sync_order` jobs until none is runnable.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<PushReport, EngineError> {
    let mut report = PushReport::default();
    loop {
        let now = engine.clock.now();
        let jobs = engine
            .store
            .claim_jobs(JobClaim {
                kind: SYNC_ORDER,
                connection: Some(&conn.name),
                now,
                lease: LEASE,
                limit: conn.policy.push_batch,
                worker: &engine.worker,
            })
            .await?;
        if jobs.is_empty() {
            return Ok(report);
        }
        push_batch(engine, conn, jobs, &mut report).await?;
    }
}

async fn push_batch(engine: &Engine, conn: &Connection, jobs: Vec<Job>, report: &mut PushReport) -> Result<(), EngineError> {
    // Group the jobs by order: one order is sent once however many jobs name it.
    let mut by_order: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        let erp_id = job.payload.get("erp_id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        by_order.entry(erp_id).or_default().push(job);
    }
    let mut batch: Vec<(Pending, Vec<Job>)> = Vec::new();
    for (erp_id, mut jobs) in by_order {
        let first = jobs.remove(0);
        let Some(record) = engine.store.get_order(&conn.name, &erp_id).await? else {
            finish(engine, conn, first, JobState::Dead, Some(format!("order {erp_id} is not in the store")), vec![]).await?;
            for job in jobs {
                finish(engine, conn, job, JobState::Dead, Some(format!("order {erp_id} is not in the store")), vec![]).await?;
            }
            continue;
        };
        let snapshot: ErpOrder = match serde_json::from_value(record.snapshot.clone()) {
            Ok(s) => s,
            Err(e) => {
                let message = format!("order {erp_id}'s stored snapshot cannot be read: {e}");
                finish(engine, conn, first, JobState::Dead, Some(message), vec![]).await?;
                continue;
            }
        };
        let status = desired_status(&snapshot);
        let in_sync = record.pushed_hash.as_deref() == Some(record.snapshot_hash.as_str())
            && record.ss_status.as_deref() == Some(status.as_str());
        // An order that was never released is never pushed, and one that fails the
        // gate after release keeps its last good version in ShipStation.
        let not_releasable = record.released_at.is_none() || (record.state == OrderState::Held);
        if in_sync || not_releasable {
            let note = if in_sync { "already in sync with ShipStation" } else { "not releasable; nothing sent" };
            report.already_in_sync += 1;
            finish(engine, conn, first, JobState::Done, None, vec![event(&erp_id, "sync_skipped", json!({"message": note}))]).await?;
            for job in jobs {
                finish(engine, conn, job, JobState::Done, None, vec![]).await?;
            }
            continue;
        }
        batch.push((Pending { job: first, record, snapshot, status }, jobs));
    }
    if batch.is_empty() {
        return Ok(());
    }

    let mut orders = Vec::with_capacity(batch.len());
    for (p, _) in &batch {
        let lines = engine.store.order_lines(&conn.name, &p.record.erp_id).await?;
        orders.push(build_order(conn, &p.record, &p.snapshot, &lines, p.status.clone()));
    }
    report.requests += 1;
    let answer = conn.shipstation.create_orders(&orders).await;
    let started = engine.clock.now();
    let results = match answer {
        Ok(result) => result.results,
        Err(e) => {
            // Nothing is known about this request's effect; the orderKeys make a
            // later attempt safe.
            let message = format!("createorders failed: {e}");
            for (p, extra) in batch {
                retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushRejected, report).await?;
                for job in extra {
                    finish(engine, conn, job, JobState::Done, None, vec![]).await?;
                }
            }
            return Ok(());
        }
    };
    let by_key: HashMap<String, ss::CreateOrderResult> =
        results.into_iter().filter_map(|r| Some((r.order_key.clone()?, r))).collect();

    let mut accepted: Vec<(Pending, Vec<Job>, i64)> = Vec::new();
    for (p, extra) in batch {
        match by_key.get(&p.record.order_key) {
            Some(r) if r.success && r.order_id.is_some_and(|id| id > 0) => {
                let id = r.order_id.expect("checked");
                accepted.push((p, extra, id));
            }
            Some(r) => {
                let message = r.error_message.clone().unwrap_or_else(|| "no reason given".into());
                let locked = message.contains("can no longer be updated")
                    || message.contains("cannot be updated")
                    || message.contains("shipped")
                    || message.contains("cancelled");
                if locked && p.record.ss_order_id.is_some() {
                    give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::ChangeAfterShipment, report).await?;
                } else {
                    retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushRejected, report).await?;
                }
                for job in extra {
                    finish(engine, conn, job, JobState::Done, None, vec![]).await?;
                }
            }
            None => {
                let message = "ShipStation's answer did not mention this order".to_string();
                retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushUnverified, report).await?;
                for job in extra {
                    finish(engine, conn, job, JobState::Done, None, vec![]).await?;
                }
            }
        }
    }
    if accepted.is_empty() {
        return Ok(());
    }

    // Read back: what ShipStation shows for each accepted orderKey.
    let seen = read_back(conn, &accepted, started).await;
    for (p, extra, order_id) in accepted {
        let verified = seen.as_ref().ok().and_then(|s| s.get(&p.record.order_key));
        match verified {
            Some((seen_id, seen_status)) if *seen_id == order_id && *seen_status == p.status => {
                report.pushed += 1;
                commit_pushed(engine, conn, &p, order_id).await?;
                for job in extra {
                    finish(engine, conn, job, JobState::Done, None, vec![]).await?;
                }
            }
            other => {
                let message = match (&seen, other) {
                    (Err(e), _) => format!("read-back failed: {e}"),
                    (Ok(_), Some((id, status))) => format!(
                        "read back as orderId {id} with status {status}, expected orderId {order_id} with status {}",
                        p.status
                    ),
                    (Ok(_), None) => format!("orderId {order_id} was accepted but not found when read back"),
                };
                retry_or_give_up(engine, conn, p.job, &p.record, &message, ExceptionKind::PushUnverified, report).await?;
                for job in extra {
                    finish(engine, conn, job, JobState::Done, None, vec![]).await?;
                }
            }
        }
    }
    Ok(())
}

/// Read recently modified orders (newest first) until every accepted key is found.
async fn read_back(
    conn: &Connection,
    accepted: &[(Pending, Vec<Job>, i64)],
    started: Timestamp,
) -> Result<HashMap<String, (i64, OrderStatus)>, EngineError> {
    let wanted: std::collections::HashSet<&str> = accepted.iter().map(|(p, _, _)| p.record.order_key.as_str()).collect();
    let mut seen = HashMap::new();
    let filter = OrderFilter {
        modify_date_start: Some(started - READ_BACK_WINDOW),
        sort_by: Some(OrderSortBy::ModifyDate),
        sort_dir: Some(SortDir::Desc),
        page_size: Some(500),
        ..Default::default()
    };
    let mut pager = conn.shipstation.orders_pager(&filter)?;
    for _ in 0..READ_BACK_PAGES {
        let Some(page) = pager.next_page().await? else { break };
        for order in page {
            if let (Some(key), Some(id)) = (order.order_key.as_deref(), order.order_id)
                && wanted.contains(key)
            {
                seen.insert(key.to_string(), (id, order.order_status.clone()));
            }
        }
        if wanted.iter().all(|k| seen.contains_key(*k)) {
            break;
        }
    }
    Ok(seen)
}

async fn commit_pushed(engine: &Engine, conn: &Connection, p: &Pending, order_id: i64) -> Result<(), EngineError> {
    let now = engine.clock.now();
    // Write the ShipStation side onto the freshest record, so a snapshot that arrived
    // while we were pushing is kept (its own job pushes it next).
    let fresh = engine.store.get_order(&conn.name, &p.record.erp_id).await?.unwrap_or_else(|| p.record.clone());
    let mut upsert = OrderUpsert::from_record(&fresh);
    upsert.ss_order_id = Some(order_id);
    upsert.ss_status = Some(p.status.as_str().to_string());
    upsert.pushed_hash = Some(p.record.snapshot_hash.clone());
    upsert.pushed_at = Some(now);
    if fresh.snapshot_hash == p.record.snapshot_hash {
        upsert.state = match p.status {
            OrderStatus::Cancelled => OrderState::Cancelled,
            _ => OrderState::Pushed,
        };
    }
    let kind = match (p.record.ss_order_id, &p.status) {
        (_, OrderStatus::Cancelled) => "cancelled_in_shipstation",
        (_, OrderStatus::OnHold) => "held_in_shipstation",
        (None, _) => "pushed",
        (Some(_), _) => "updated_in_shipstation",
    };
    let mut change = Change::new(&conn.name, now);
    change.order = Some(upsert);
    change.events.push(event(
        &p.record.erp_id,
        kind,
        json!({
            "message": format!("ShipStation order #{order_id} is {} (read back)", p.status.as_str()),
            "order_id": order_id, "order_key": p.record.order_key, "status": p.status.as_str(), "verified": true,
        }),
    ));
    for kind in [ExceptionKind::PushRejected, ExceptionKind::PushUnverified] {
        change.clear(kind, "order", p.record.erp_id.clone());
    }
    change.finish_job = Some(JobFinish {
        job_id: p.job.id,
        lease_token: p.job.lease_token.clone().unwrap_or_default(),
        state: JobState::Done,
        error: None,
    });
    engine.store.commit(change).await?;
    Ok(())
}

fn event(erp_id: &str, kind: &str, detail: serde_json::Value) -> NewEvent {
    NewEvent { record_type: "order".into(), record_id: erp_id.to_string(), kind: kind.into(), detail }
}

async fn finish(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    state: JobState,
    error: Option<String>,
    events: Vec<NewEvent>,
) -> Result<(), EngineError> {
    let mut change = Change::new(&conn.name, engine.clock.now());
    change.events = events;
    change.finish_job = Some(JobFinish { job_id: job.id, lease_token: job.lease_token.unwrap_or_default(), state, error });
    commit_job_change(engine, change).await
}

/// Backoff before attempt `attempts + 1`: 2 s doubling, at most 5 minutes, ±20%.
fn backoff(attempts: i64) -> SignedDuration {
    let base = 2_000i64.saturating_mul(1i64 << attempts.clamp(0, 10)).min(300_000);
    let jitter = rand::thread_rng().gen_range(-(base / 5)..=(base / 5));
    SignedDuration::from_millis(base + jitter)
}

async fn retry_or_give_up(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    record: &OrderRecord,
    message: &str,
    kind: ExceptionKind,
    report: &mut PushReport,
) -> Result<(), EngineError> {
    if job.attempts >= i64::from(conn.policy.max_push_attempts) {
        return give_up(engine, conn, job, record, message, kind, report).await;
    }
    report.retried += 1;
    retry_job(engine, &job, engine.clock.now() + backoff(job.attempts), message).await
}

async fn give_up(
    engine: &Engine,
    conn: &Connection,
    job: Job,
    record: &OrderRecord,
    message: &str,
    kind: ExceptionKind,
    report: &mut PushReport,
) -> Result<(), EngineError> {
    report.failed += 1;
    let mut change = Change::new(&conn.name, engine.clock.now());
    change.raise(
        kind,
        "order",
        record.erp_id.clone(),
        json!({
            "message": format!("order {} ({}): {message}", record.number, record.order_key),
            "order_number": record.number,
            "attempts": job.attempts,
        }),
    );
    change.events.push(event(&record.erp_id, "sync_failed", json!({"message": message, "attempts": job.attempts})));
    change.finish_job = Some(JobFinish {
        job_id: job.id,
        lease_token: job.lease_token.clone().unwrap_or_default(),
        state: JobState::Dead,
        error: Some(message.to_string()),
    });
    commit_job_change(engine, change).await
}

fn ss_address(a: &Address) -> ss::Address {
    ss::Address {
        name: a.name.clone(),
        company: a.company.clone(),
        street1: a.street1.clone(),
        street2: a.street2.clone(),
        city: a.city.clone(),
        state: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
        phone: a.phone.clone(),
        ..ss::Address::default()
    }
}

fn grams(w: Weight) -> ss::Weight {
    ss::Weight::new(w.to_decimal(WeightUnit::Grams), WeightUnit::Grams).expect("grams have a v1 unit")
}

/// The ShipStation order for a record: every field from the ERP snapshot (a full
/// replace, as ShipStation updates are), weights as resolved at release. The
/// advanced options carry our ERP id (`customField1`), the order's currency
/// (`customField2`) and the customer's own reference (`customField3`), where the
/// warehouse sees them.
pub fn build_order(
    conn: &Connection,
    record: &OrderRecord,
    snapshot: &ErpOrder,
    lines: &[OrderLineRecord],
    status: OrderStatus,
) -> ss::Order {
    let mut order = ss::Order::new(
        record.order_key.clone(),
        snapshot.number.clone(),
        snapshot.placed_at,
        status,
        ss_address(&snapshot.ship_to),
    );
    order.order_id = record.ss_order_id;
    if let Some(bill) = &snapshot.bill_to {
        order.bill_to = ss_address(bill);
    }
    order.customer_email = snapshot.customer_email.clone();
    order.payment_date = snapshot.payment.at;
    order.amount_paid = Some(snapshot.payment.amount.to_decimal());
    order.shipping_amount = snapshot.shipping_paid.map(|m| m.to_decimal());
    order.tax_amount = snapshot.tax_paid.map(|m| m.to_decimal());
    order.requested_shipping_service = snapshot.requested_service.clone();
    let weights: HashMap<&str, Option<i64>> = lines.iter().map(|l| (l.line_id.as_str(), l.unit_weight_mg)).collect();
    let mut total = Weight::ZERO;
    for line in &snapshot.lines {
        let unit_weight = weights
            .get(line.line_id.as_str())
            .copied()
            .flatten()
            .map(|mg| Weight::from_milligrams(mg.max(0) as u64));
        if line.physical
            && let Some(w) = unit_weight.and_then(|w| w.checked_mul(u64::from(line.quantity)).ok())
        {
            total = total.checked_add(w).unwrap_or(total);
        }
        order.items.push(ss::OrderItem {
            line_item_key: Some(line.line_id.clone()),
            sku: line.sku.clone(),
            name: line.name.clone(),
            weight: if line.physical { unit_weight.map(grams) } else { None },
            quantity: i64::from(line.quantity),
            unit_price: Some(line.unit_price.to_decimal()),
            adjustment: !line.physical,
            ..ss::OrderItem::default()
        });
    }
    if !total.is_zero() {
        order.weight = Some(grams(total));
    }
    order.advanced_options = Some(ss::AdvancedOptions {
        store_id: conn.store_id,
        custom_field1: Some(snapshot.erp_id.clone()),
        custom_field2: Some(snapshot.currency.clone()),
        custom_field3: snapshot.customer_reference.clone(),
        source: Some("shipledger".into()),
        ..ss::AdvancedOptions::default()
    });
    order
}
