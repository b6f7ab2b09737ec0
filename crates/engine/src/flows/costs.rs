//! Costs: what each label costs becomes entries of the cost ledger, in the currency
//! the charge was made in, planned into the same [`Change`] as the label itself so a
//! label and its costs are recorded together or not at all.
//!
//! - A live label's postage (even when zero: a label billed elsewhere is a fact) and
//!   its insurance (only when bought, i.e. non-zero) become one entry each
//!   ([`shipledger_core::cost::plan`]); v1 names no currency, so its numbers are in
//!   the connection's `account_currency`; a v2 label names its own
//!   ([`record_v2_label`]).
//! - A later reading with a different cost adds a revision for the difference; an
//!   entry is never changed.
//! - A void adds one reversing entry per entry of the label, once however often the
//!   void is seen (the reversal's key is the reversed entry's, and the store records
//!   a key once). A re-label is a new shipment, so new entries.
//! - A live label without a postage cost records nothing and opens a finance
//!   exception, `label_cost_missing`, on the shipment; a later reading with the cost
//!   records it and closes the exception.
//!
//! Each entry leaves a `cost_recorded` or `cost_reversed` event on its shipment, so an
//! order's timeline shows its costs. This module never converts currencies or posts
//! anything to the ERP: conversion and journals are rows of their own, later.

use jiff::Timestamp;
use serde_json::json;
use shipledger_core::cost::{Charge, CostEntry, CostKind, CostSource, LabelFacts, LabelReading, NewCostEntry, plan};
use shipledger_core::exception::ExceptionKind;
use shipledger_core::money::{Money, Rounding};
use shipledger_shipstation::v1::model as ss;
use shipledger_store::{Change, CostEntryFilter, EventKind, NewEvent, ShipmentRecord};

use crate::{Connection, Engine, EngineError};

/// The key of a label's cost entries: its primary shipment record's
/// (`label:{shipmentId}`; a merged label's other orders carry no cost).
pub fn label_key(shipment_id: i64) -> String {
    format!("label:{shipment_id}")
}

/// What a v1 label says about itself, for its entries.
fn facts_v1(label: &ss::Shipment, erp_id: Option<String>, now: Timestamp) -> LabelFacts {
    LabelFacts {
        shipment_key: label_key(label.shipment_id),
        erp_id,
        ss_order_id: label.order_id.unwrap_or_default(),
        carrier: label.carrier_code.clone().unwrap_or_default(),
        service: label.service_code.clone(),
        ship_date: label.ship_date,
        label_created_at: label.create_date.unwrap_or(now),
    }
}

pub(crate) fn facts_of(record: &ShipmentRecord) -> LabelFacts {
    LabelFacts {
        shipment_key: record.shipment_key.clone(),
        erp_id: record.erp_id.clone(),
        ss_order_id: record.ss_order_id,
        carrier: record.carrier.clone(),
        service: record.service.clone(),
        ship_date: record.ship_date,
        label_created_at: record.ss_created_at,
    }
}

/// A v1 reading: bare numbers in the connection's account currency, rounded half-even
/// to its minor unit as the shipment record's cost is.
pub(crate) fn reading_v1(conn: &Connection, label: &ss::Shipment, facts: LabelFacts, now: Timestamp) -> LabelReading {
    let money = |d| Money::from_decimal(d, conn.account_currency, Rounding::HalfEven).ok();
    let mut charges = Vec::new();
    if let Some(postage) = label.shipment_cost.and_then(money) {
        charges.push((Charge::Postage, postage));
    }
    if let Some(insurance) = label.insurance_cost.and_then(money) {
        charges.push((Charge::Insurance, insurance));
    }
    LabelReading {
        label: facts,
        source: CostSource::ShipstationV1,
        charges,
        voided_at: label.voided.then(|| label.void_date.unwrap_or(now)),
        read_at: now,
    }
}

/// A v2 reading: each amount in the currency v2 names.
pub fn reading_v2(label: &shipledger_shipstation::v2::model::Label, facts: LabelFacts, now: Timestamp) -> LabelReading {
    let mut charges = Vec::new();
    for (charge, money) in [(Charge::Postage, &label.shipment_cost), (Charge::Insurance, &label.insurance_cost)] {
        if let Some(m) = money.as_ref().and_then(|m| m.to_core(Rounding::HalfEven).ok()) {
            charges.push((charge, m));
        }
    }
    LabelReading {
        label: facts,
        source: CostSource::ShipstationV2,
        charges,
        voided_at: label.voided.then(|| label.voided_at.unwrap_or(now)),
        read_at: now,
    }
}

/// The entries a label already has.
async fn entries_of(engine: &Engine, conn: &Connection, shipment_key: &str) -> Result<Vec<CostEntry>, EngineError> {
    Ok(engine
        .store
        .list_cost_entries(CostEntryFilter { connection: Some(conn.name.clone()), shipment_key: Some(shipment_key.to_string()), ..Default::default() })
        .await?)
}

/// Plan `reading` against the label's `existing` entries into `change`: the entries,
/// their events, and the missing-cost exception opened (a live label without postage)
/// or, with `clear_missing`, closed. How many entries were planned.
pub(crate) fn plan_into(reading: &LabelReading, existing: &[CostEntry], clear_missing: bool, change: &mut Change) -> usize {
    let key = reading.label.shipment_key.clone();
    let planned = plan(reading, existing);
    for entry in &planned {
        change.events.push(event(entry));
    }
    let n = planned.len();
    change.cost_entries.extend(planned);
    if reading.voided_at.is_none() && reading.postage_missing() {
        change.raise(
            ExceptionKind::LabelCostMissing,
            "shipment",
            key.clone(),
            json!({"message": format!(
                "label {key} (ShipStation order {}) came without its postage cost, so the cost ledger has nothing for it; check the label in ShipStation",
                reading.label.ss_order_id
            )}),
        );
    } else if clear_missing {
        change.clear(ExceptionKind::LabelCostMissing, "shipment", key);
    }
    n
}

/// The shipment's timeline event of a recorded entry.
pub(crate) fn event(entry: &NewCostEntry) -> NewEvent {
    let (kind, message) = match entry.kind {
        CostKind::Label => (EventKind::CostRecorded, format!("{} {} recorded", entry.charge, entry.amount)),
        CostKind::Revision => (EventKind::CostRecorded, format!("{} changed: {} recorded for the difference", entry.charge, entry.amount)),
        CostKind::VoidReversal => (EventKind::CostReversed, format!("{} reversed by {} (label voided)", entry.charge, entry.amount)),
        CostKind::InvoiceAdjustment => (EventKind::CostRecorded, format!("{} adjusted by {} to what the carrier invoiced", entry.charge, entry.amount)),
    };
    NewEvent::shipment(
        entry.label.shipment_key.clone(),
        kind,
        json!({
            "message": message,
            "entry_key": entry.entry_key,
            "charge": entry.charge.code(),
            "amount": entry.amount.to_decimal().to_string(),
            "currency": entry.amount.currency().code(),
            "reverses": entry.reverses_key,
        }),
    )
}

/// A new label's costs, planned into the change that records it (nothing recorded
/// yet: no read of the ledger).
pub(crate) fn plan_new_label(conn: &Connection, label: &ss::Shipment, erp_id: Option<String>, now: Timestamp, change: &mut Change) {
    let reading = reading_v1(conn, label, facts_v1(label, erp_id, now), now);
    plan_into(&reading, &[], false, change);
}

/// A void seen for a label already recorded: its reversals, planned into the change
/// that records the void.
pub(crate) async fn plan_void(
    engine: &Engine,
    conn: &Connection,
    label: &ss::Shipment,
    existing: &[ShipmentRecord],
    now: Timestamp,
    change: &mut Change,
) -> Result<(), EngineError> {
    let key = label_key(label.shipment_id);
    let facts = existing.iter().find(|s| s.shipment_key == key).map(facts_of).unwrap_or_else(|| facts_v1(label, None, now));
    let reading = reading_v1(conn, label, facts, now);
    let entries = entries_of(engine, conn, &key).await?;
    plan_into(&reading, &entries, false, change);
    // A voided label's missing cost no longer matters.
    change.clear(ExceptionKind::LabelCostMissing, "shipment", key);
    Ok(())
}

/// A label seen again with nothing else to record: when the postage it shows differs
/// from what its record was first seen with, the ledger is read and the difference
/// recorded, committed with `change` (which carries the label's watermark move).
/// Nothing is committed when the ledger already agrees. A reading without postage
/// teaches nothing (what the ledger has stays; a first sight without it raised the
/// exception already).
pub(crate) async fn revise_seen_label(
    engine: &Engine,
    conn: &Connection,
    label: &ss::Shipment,
    existing: &[ShipmentRecord],
    mut change: Change,
) -> Result<(), EngineError> {
    let key = label_key(label.shipment_id);
    let Some(primary) = existing.iter().find(|s| s.shipment_key == key) else { return Ok(()) };
    if primary.voided {
        return Ok(());
    }
    let now = change.now.unwrap_or_else(|| engine.clock.now());
    let reading = reading_v1(conn, label, facts_of(primary), now);
    let Some(postage) = reading.charges.iter().find(|(c, _)| *c == Charge::Postage).map(|(_, m)| *m) else { return Ok(()) };
    if primary.cost_minor.zip(primary.cost_currency.as_deref()) == Some((postage.minor(), postage.currency().code())) {
        return Ok(());
    }
    let entries = entries_of(engine, conn, &key).await?;
    if plan_into(&reading, &entries, true, &mut change) == 0 {
        return Ok(());
    }
    engine.store.commit(change).await?;
    Ok(())
}

/// Record what a v2 label says its costs are, in the currencies it names, for a label
/// already recorded from v1 (`label_id` `se-<shipmentId>`): a charge v1 recorded in
/// the account currency that v2 names in another is moved to it (the old net
/// reversed, the new amount recorded); one that agrees records nothing. How many
/// entries were recorded; 0 when the label is not recorded yet (its v1 ingest comes
/// first) or nothing differs.
pub async fn record_v2_label(engine: &Engine, conn: &Connection, label: &shipledger_shipstation::v2::model::Label) -> Result<usize, EngineError> {
    let Some(id) = label.v1_shipment_id() else { return Ok(0) };
    let key = label_key(id);
    let Some(record) = engine.store.get_shipment(&conn.name, &key).await? else { return Ok(0) };
    let now = engine.clock.now();
    let reading = reading_v2(label, facts_of(&record), now);
    let entries = entries_of(engine, conn, &key).await?;
    let mut change = Change::new(&conn.name, now);
    plan_into(&reading, &entries, true, &mut change);
    if change.cost_entries.is_empty() {
        return Ok(0);
    }
    let outcome = engine.store.commit(change).await?;
    Ok(outcome.cost_entries_recorded.len())
}
