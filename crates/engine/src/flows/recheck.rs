//! Recheck: read again, on schedule, every order whose fate can change without its
//! own ERP record changing, and judge it again.
//!
//! The change feed shows an order only when the ERP stamps its record. What held an
//! order often lives elsewhere (the product's weight, the customer's address in an
//! ERP that keeps addresses apart), and an order can leave the ERP's ready set
//! without showing up again (Tryton: its shipment cancelled and the moves ignored,
//! the sale `done` with nothing shipped). So every `held_recheck_interval` this flow
//! reads every held order and every released order not yet shipped by id, in batches
//! of [`ORDERS_PER_READ`] ([`Erp::orders`](shipledger_erp::Erp::orders)), with fresh
//! products, and hands each to the release flow's [`judge`] (one transaction per
//! order, the feed's watermark untouched):
//!
//! - a held order that now passes the gate is released;
//! - a released order the ERP no longer wants shipped is cancelled (or held) in
//!   ShipStation through the usual `sync_order` push, with an `order_withdrawn`
//!   exception carrying the ERP's reason (naming at once the labels to void when
//!   ShipStation has labelled it already);
//! - an order whose snapshot did not change, and that would still be held, is left
//!   alone: nothing is written, no event is added.
//!
//! Where the ERP can name the orders whose products or addresses changed (Tryton),
//! [`follow`] judges those held orders again at every poll, so a fix is picked up
//! within a poll interval instead of a recheck interval.
//!
//! It never calls ShipStation itself.

use std::collections::HashMap;

use jiff::Timestamp;
use shipledger_core::order::{ErpOrderStatus, Product};
use shipledger_core::release::{self, Verdict};
use shipledger_erp::ORDERS_PER_READ;
use shipledger_store::{OrderFilter, OrderRecord, OrderState};

use crate::flows::release::{Outcome, Seen, judge, live_labels, products_of, snapshot_hash};
use crate::{Connection, Engine, EngineError};

/// Orders listed from the store per query.
const LIST_PAGE: u32 = 500;
/// The states whose orders are read again: held, and released but not yet shipped.
const RECHECKED: [OrderState; 3] = [OrderState::Held, OrderState::Released, OrderState::Pushed];

/// What one recheck did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecheckReport {
    /// Orders read again from the ERP.
    pub read: u64,
    /// `orders` requests made to the ERP.
    pub requests: u64,
    pub released: u64,
    /// Released orders the ERP cancelled: cancellation planned in ShipStation.
    pub withdrawn: u64,
    /// Changes planned for ShipStation (a hold, changed lines).
    pub updates_planned: u64,
    /// Orders judged again and still (or newly) held.
    pub held: u64,
    /// Held orders the ERP cancelled before they were ever released.
    pub cancelled: u64,
    /// Orders the ERP no longer knows (left alone).
    pub missing: u64,
}

impl RecheckReport {
    /// Did this recheck change anything?
    pub fn changed(&self) -> bool {
        self.released + self.withdrawn + self.updates_planned + self.held + self.cancelled > 0
    }

    /// Add another pass's counts to these.
    pub fn add(&mut self, other: &RecheckReport) {
        self.read += other.read;
        self.requests += other.requests;
        self.released += other.released;
        self.withdrawn += other.withdrawn;
        self.updates_planned += other.updates_planned;
        self.held += other.held;
        self.cancelled += other.cancelled;
        self.missing += other.missing;
    }
}

/// Read every held and released-unshipped order of `conn` again and commit what
/// each now means.
pub async fn run(engine: &Engine, conn: &Connection) -> Result<RecheckReport, EngineError> {
    let mut report = RecheckReport::default();
    let mut ids = Vec::new();
    for state in RECHECKED {
        let mut offset = 0;
        loop {
            let page = engine
                .store
                .list_orders(OrderFilter {
                    connection: Some(conn.name.clone()),
                    state: Some(state),
                    limit: LIST_PAGE,
                    offset,
                    ..Default::default()
                })
                .await?;
            let n = page.len();
            ids.extend(page.into_iter().map(|r| r.erp_id));
            if n < LIST_PAGE as usize {
                break;
            }
            offset += LIST_PAGE;
        }
    }
    judge_again(engine, conn, &ids, &mut report).await?;
    if report.changed() {
        tracing::info!(
            connection = %conn.name,
            read = report.read,
            released = report.released,
            withdrawn = report.withdrawn,
            updates = report.updates_planned,
            "held and released orders read again"
        );
    }
    Ok(report)
}

/// Between rechecks, at every poll: the held orders whose products or address the
/// ERP says changed since the last poll ([`Erp::orders_touched_since`], where the
/// ERP offers it), judged again at once. `since` is when the last call began.
///
/// [`Erp::orders_touched_since`]: shipledger_erp::Erp::orders_touched_since
pub async fn follow(engine: &Engine, conn: &Connection, since: Timestamp) -> Result<RecheckReport, EngineError> {
    let mut report = RecheckReport::default();
    let mut held = Vec::new();
    for id in conn.erp.orders_touched_since(since).await? {
        if engine.store.get_order(&conn.name, &id).await?.is_some_and(|r| r.state == OrderState::Held) {
            held.push(id);
        }
    }
    judge_again(engine, conn, &held, &mut report).await?;
    Ok(report)
}

/// Read these orders from the ERP in batches, with fresh products, and commit what
/// each now means (nothing for one with nothing new to decide).
async fn judge_again(engine: &Engine, conn: &Connection, ids: &[String], report: &mut RecheckReport) -> Result<(), EngineError> {
    for chunk in ids.chunks(ORDERS_PER_READ) {
        let fresh = conn.erp.orders(chunk).await?;
        report.requests += 1;
        report.read += fresh.len() as u64;
        report.missing += (chunk.len() - fresh.len().min(chunk.len())) as u64;
        let products = products_of(conn, &fresh).await?;
        for order in &fresh {
            // The record as it stands now: the feed or the push may have moved it
            // since the list was read.
            let Some(existing) = engine.store.get_order(&conn.name, &order.erp_id).await? else { continue };
            if !RECHECKED.contains(&existing.state) || !worth_judging(conn, order, &existing, &products) {
                continue;
            }
            let labels = live_labels(engine, conn, order, Some(&existing)).await?;
            let now = engine.clock.now();
            let (change, outcome) = judge(conn, order, Some(&existing), &products, &labels, Seen::Recheck, now);
            engine.store.commit(change).await?;
            match outcome {
                Outcome::Released => report.released += 1,
                Outcome::Cancelled if existing.released_at.is_some() => report.withdrawn += 1,
                Outcome::UpdatePlanned => report.updates_planned += 1,
                Outcome::Cancelled => report.cancelled += 1,
                Outcome::Held => report.held += 1,
                Outcome::Unchanged => {}
            }
        }
    }
    Ok(())
}

/// Is there anything new to decide? A changed snapshot always is; an unchanged one
/// only when a held order would now pass the gate with today's products.
fn worth_judging(conn: &Connection, order: &shipledger_core::order::ErpOrder, existing: &OrderRecord, products: &HashMap<String, Product>) -> bool {
    if existing.snapshot_hash != snapshot_hash(order) {
        return true;
    }
    existing.state == OrderState::Held
        && order.status == ErpOrderStatus::Open
        && matches!(release::check(order, |sku| products.get(sku).cloned(), &conn.gate), Verdict::Release { .. })
}
