//! Shipping margins read from the store: per ERP order, the shipping its ERP
//! snapshot charged against every cost entry of its labels (with their conversions),
//! judged by [`shipledger_core::margin`]. The reconciler raises the undercharged ones;
//! the close report sums them.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use shipledger_core::cost::{CostEntry, CostKind};
use shipledger_core::margin::{self, CostLine, Margin};
use shipledger_core::order::ErpOrder;
use shipledger_store::{CostConversion, CostCursor, CostEntryFilter, Store};

use crate::EngineError;

/// Every cost entry of the connection's labels made in `since..until`, with its
/// conversion when it has one, a page at a time.
pub async fn entries_with_conversions(
    store: &dyn Store,
    connection: &str,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> Result<(Vec<CostEntry>, HashMap<String, CostConversion>), EngineError> {
    let mut entries = Vec::new();
    let mut after: Option<CostCursor> = None;
    loop {
        let page = store
            .list_cost_entries(CostEntryFilter { connection: Some(connection.to_string()), since, until, after, limit: crate::flows::reconcile::PAGE, ..Default::default() })
            .await?;
        let full = page.len() == crate::flows::reconcile::PAGE as usize;
        after = page.last().map(CostCursor::after);
        entries.extend(page);
        if !full {
            break;
        }
    }
    let conversions = store
        .list_cost_conversions(CostEntryFilter { connection: Some(connection.to_string()), since, until, ..Default::default() })
        .await?
        .into_iter()
        .map(|c| (c.conversion.entry_key.clone(), c))
        .collect();
    Ok((entries, conversions))
}

/// An order's margin with its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderMargin {
    pub number: String,
    pub margin: Margin,
}

/// Every cost entry of one ERP order's labels, with their conversions.
pub async fn of_order(store: &dyn Store, connection: &str, erp_id: &str) -> Result<(Vec<CostEntry>, HashMap<String, CostConversion>), EngineError> {
    let filter = CostEntryFilter { connection: Some(connection.to_string()), erp_id: Some(erp_id.to_string()), ..Default::default() };
    let entries = store.list_cost_entries(filter.clone()).await?;
    let conversions = store.list_cost_conversions(filter).await?.into_iter().map(|c| (c.conversion.entry_key.clone(), c)).collect();
    Ok((entries, conversions))
}

/// A rate per currency the ledger holds, to put a charge in another currency than
/// its labels' into the base: the newest conversion from each currency of `conversions`.
pub fn rate_pool(conversions: &HashMap<String, CostConversion>) -> HashMap<shipledger_core::Currency, shipledger_core::fx::Conversion> {
    let mut rates: HashMap<shipledger_core::Currency, &shipledger_core::fx::Conversion> = HashMap::new();
    for c in conversions.values() {
        let v = &c.conversion;
        let slot = rates.entry(v.original.currency()).or_insert(v);
        if (v.rate_date, &v.entry_key) > (slot.rate_date, &slot.entry_key) {
            *slot = v;
        }
    }
    rates.into_iter().map(|(c, v)| (c, v.clone())).collect()
}

/// The margin of every order `entries` belong to (orphan labels have none), by ERP
/// id; an order shipledger no longer holds is left out. A charge in a currency none
/// of the order's own entries converted from is converted at `rates` ([`rate_pool`]).
pub async fn of_orders(
    store: &dyn Store,
    connection: &str,
    entries: &[CostEntry],
    conversions: &HashMap<String, CostConversion>,
    rates: &HashMap<shipledger_core::Currency, shipledger_core::fx::Conversion>,
) -> Result<BTreeMap<String, OrderMargin>, EngineError> {
    // Each order's cost lines, and the conversions of its entries.
    let mut lines: BTreeMap<&str, (Vec<CostLine>, Vec<&shipledger_core::fx::Conversion>)> = BTreeMap::new();
    for e in entries {
        let Some(erp_id) = e.label.erp_id.as_deref() else { continue };
        let conversion = conversions.get(&e.entry_key).map(|c| &c.conversion);
        let (costs, converted) = lines.entry(erp_id).or_default();
        costs.push(CostLine { original: e.amount, base: conversion.map(|c| c.base), invoiced: e.kind == CostKind::InvoiceAdjustment });
        converted.extend(conversion);
    }
    let mut out = BTreeMap::new();
    for (erp_id, (costs, converted)) in lines {
        let Some(order) = store.get_order(connection, erp_id).await? else { continue };
        // A snapshot that does not read as an order (an older shape) says nothing of
        // what it charged: no margin rather than a free-shipping one.
        let Ok(snapshot) = serde_json::from_value::<ErpOrder>(order.snapshot.clone()) else { continue };
        let charged = snapshot.shipping_paid;
        // The order's own entries' rate for the charge's currency first, else the newest.
        let own_rate = converted.iter().copied().find(|v| charged.is_some_and(|c| c.currency() == v.original.currency()));
        let charged_in_base = charged.and_then(|c| {
            let v = own_rate.or_else(|| rates.get(&c.currency()))?;
            shipledger_core::fx::convert(c, v.rate_from, v.rate_to, v.base.currency()).ok()
        });
        out.insert(erp_id.to_string(), OrderMargin { number: order.number.clone(), margin: margin::of(erp_id, charged, charged_in_base, &costs) });
    }
    Ok(out)
}

/// The variance by which an order that charged shipping cost more to ship, over the
/// connection's `cost_variance_pct` of the charge and its floor
/// ([`shipledger_core::margin::undercharged`]).
pub fn undercharged(policy: &crate::config::Policy, m: &Margin) -> Option<shipledger_core::invoice::Variance> {
    let charged = m.charged_compared?;
    margin::undercharged(m, policy.cost_variance_pct, policy.variance_floor_minor(charged.currency()))
}
