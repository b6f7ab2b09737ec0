//! `/api/v1/cost-entries` and `/api/v1/cost-batches`: the cost ledger. Entries are
//! listed (filters, cursor paging) each with its conversion to the ERP's base
//! currency (rate, rate date, source, rounding, the exact quotient) or none while it
//! waits for a rate; batches are listed and shown one at a time with their journal
//! and every entry they hold. Amounts are decimal strings with their minor units and
//! currency, never floats.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shipledger_core::Money;
use shipledger_core::journal::JournalWrite;
use shipledger_store::{BatchCursor, BatchState, CostBatchFilter, CostBatchRecord, CostConversion, CostCursor, CostEntry, CostEntryFilter, Store, StoreError};
use utoipa::{IntoParams, ToSchema};

use super::{ApiResult, ApiState, Caller, OfConnection, PathId, Problem, Query, cursor_from, cursor_text, page, page_size};

impl OfConnection for CostEntry {
    fn connection(&self) -> &str {
        &self.connection
    }
}

/// An entry with its conversion, as a page of entries lists them.
impl OfConnection for (CostEntry, Option<CostConversion>) {
    fn connection(&self) -> &str {
        &self.0.connection
    }
}

impl OfConnection for CostBatchRecord {
    fn connection(&self) -> &str {
        &self.connection
    }
}

/// An amount: exact decimal text, its minor units and its currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct MoneyView {
    /// e.g. `"12.34"`, `"-0.50"`, `"1500"` (JPY).
    pub amount: String,
    /// The same amount in minor units (pence, cents).
    pub minor: i64,
    /// ISO 4217.
    pub currency: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> MoneyView {
        MoneyView { amount: m.to_decimal().to_string(), minor: m.minor(), currency: m.currency().code().into() }
    }
}

/// How an entry became base currency: `base = amount × rate_to ÷ rate_from`, rounded once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionView {
    pub base: MoneyView,
    pub rate_from: String,
    pub rate_to: String,
    /// The date of the rates used (on or before `wanted_date`).
    pub rate_date: String,
    /// The date policy asked a rate for.
    pub wanted_date: String,
    /// `erp`, `file`, `fixed` or `identity`.
    pub source: String,
    /// Which rows of the source the rates are.
    pub source_detail: String,
    /// e.g. `half_even`.
    pub rounding: String,
    /// The quotient before rounding, exactly.
    pub exact: String,
    pub converted_at: String,
}

impl From<&CostConversion> for ConversionView {
    fn from(c: &CostConversion) -> ConversionView {
        let v = &c.conversion;
        ConversionView {
            base: v.base.into(),
            rate_from: v.rate_from.to_string(),
            rate_to: v.rate_to.to_string(),
            rate_date: v.rate_date.to_string(),
            wanted_date: v.wanted_date.to_string(),
            source: v.source.code().into(),
            source_detail: c.source_detail.clone(),
            rounding: serde_json::to_value(v.rounding).ok().and_then(|r| r.as_str().map(str::to_string)).unwrap_or_default(),
            exact: v.exact.to_string(),
            converted_at: c.converted_at.to_string(),
        }
    }
}

/// One immutable cost entry, in its original currency, with its conversion.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostEntryView {
    pub id: i64,
    pub connection: String,
    /// `label:8001/postage/0`, ...: unique per connection.
    pub entry_key: String,
    /// `label`, `revision` or `void_reversal`.
    pub kind: String,
    /// `postage`, `insurance` or `other:NAME`.
    pub charge: String,
    pub revision: u32,
    pub amount: MoneyView,
    pub shipment_key: String,
    pub erp_id: Option<String>,
    pub shipstation_order_id: i64,
    pub carrier: String,
    pub service: Option<String>,
    pub ship_date: Option<String>,
    pub label_created_at: String,
    pub occurred_at: String,
    /// `shipstation_v1` or `shipstation_v2`.
    pub source: String,
    /// The entry this one reverses (its id and key).
    pub reverses: Option<i64>,
    pub reverses_key: Option<String>,
    pub recorded_at: String,
    /// Absent while it waits for a rate.
    pub conversion: Option<ConversionView>,
}

impl CostEntryView {
    fn of(e: &CostEntry, conversion: Option<&CostConversion>) -> CostEntryView {
        CostEntryView {
            id: e.id,
            connection: e.connection.clone(),
            entry_key: e.entry_key.clone(),
            kind: e.kind.code().into(),
            charge: e.charge.code(),
            revision: e.revision,
            amount: e.amount.into(),
            shipment_key: e.label.shipment_key.clone(),
            erp_id: e.label.erp_id.clone(),
            shipstation_order_id: e.label.ss_order_id,
            carrier: e.label.carrier.clone(),
            service: e.label.service.clone(),
            ship_date: e.label.ship_date.map(|d| d.to_string()),
            label_created_at: e.label.label_created_at.to_string(),
            occurred_at: e.occurred_at.to_string(),
            source: e.source.code().into(),
            reverses: e.reverses,
            reverses_key: e.reverses_key.clone(),
            recorded_at: e.recorded_at.to_string(),
            conversion: conversion.map(ConversionView::from),
        }
    }
}

/// Every entry `filter` lists, with its conversion.
pub(crate) async fn entries_with_conversions(state: &ApiState, filter: CostEntryFilter) -> Result<Vec<CostEntryView>, Problem> {
    Ok(paired(state.store.as_ref(), filter).await?.iter().map(|(e, c)| CostEntryView::of(e, c.as_ref())).collect())
}

/// The entries `filter` lists, each with its conversion: two queries of the same
/// filter, cursor and limit (the conversions of the page's converted entries come
/// first in the second, as it is in the same order).
async fn paired(store: &dyn Store, filter: CostEntryFilter) -> Result<Vec<(CostEntry, Option<CostConversion>)>, StoreError> {
    let entries = store.list_cost_entries(filter.clone()).await?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut conversions: HashMap<i64, CostConversion> = store.list_cost_conversions(filter).await?.into_iter().map(|c| (c.entry_id, c)).collect();
    Ok(entries.into_iter().map(|e| {
        let c = conversions.remove(&e.id);
        (e, c)
    }).collect())
}

/// A page of cost entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostEntryPage {
    pub items: Vec<CostEntryView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CostEntryQuery {
    /// Only this connection's (the token must see it).
    pub connection: Option<String>,
    /// Only those of labels mapped to this ERP order.
    pub erp_id: Option<String>,
    /// Only those of this shipment (`label:8001`).
    pub shipment_key: Option<String>,
    /// Only those this cost batch (by id) holds or held.
    pub batch: Option<i64>,
    /// `true`: only converted ones; `false`: only those waiting for a rate.
    pub converted: Option<bool>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/cost-entries", tag = "costs",
    params(CostEntryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of cost entries by label time, each with its conversion", body = CostEntryPage),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A connection the token may not see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_cost_entries(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<CostEntryQuery>,
) -> ApiResult<CostEntryPage> {
    let scope = caller.scope(q.connection.as_deref())?;
    let after = cursor_from::<CostCursor>(q.cursor.as_deref())?;
    let limit = page_size(q.limit)?;
    let filter = CostEntryFilter {
        connection: scope.connection.clone(),
        erp_id: q.erp_id.clone(),
        shipment_key: q.shipment_key.clone(),
        batch_id: q.batch,
        converted: q.converted,
        ..Default::default()
    };
    let (entries, next) = page(
        &scope,
        limit,
        after,
        |after, limit| {
            let (store, filter) = (state.store.clone(), CostEntryFilter { after, limit, ..filter.clone() });
            async move { paired(store.as_ref(), filter).await }
        },
        |(e, _)| CostCursor::after(e),
        |_| true,
    )
    .await?;
    let items = entries.iter().map(|(e, c)| CostEntryView::of(e, c.as_ref())).collect();
    Ok(Json(CostEntryPage { items, next_cursor: next.as_ref().map(cursor_text) }))
}

/// A cost batch: one journal for a connection's posting window.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostBatchView {
    pub id: i64,
    pub connection: String,
    /// `{connection}/costs/{start}..{end}/r{revision}`.
    pub batch_key: String,
    pub window_start: String,
    pub window_end: String,
    pub revision: u32,
    /// `planned`, `posted` or `withdrawn`.
    pub state: String,
    /// The journal's debit total, in the base currency.
    pub total: MoneyView,
    pub entry_count: u32,
    /// Entries carried over from an earlier window.
    pub carried_over: u32,
    /// The ERP's move, once posted.
    pub erp_move_id: Option<String>,
    /// Why, when it was not simply planned (`nets to zero`, a withdrawal's reason).
    pub detail: Option<String>,
    pub planned_at: String,
    pub posted_at: Option<String>,
    pub updated_at: String,
}

impl From<&CostBatchRecord> for CostBatchView {
    fn from(b: &CostBatchRecord) -> CostBatchView {
        CostBatchView {
            id: b.id,
            connection: b.connection.clone(),
            batch_key: b.batch_key.clone(),
            window_start: b.window.start.to_string(),
            window_end: b.window.end.to_string(),
            revision: b.revision,
            state: b.state.as_str().into(),
            total: b.total.into(),
            entry_count: b.entry_count,
            carried_over: b.carried_over,
            erp_move_id: b.erp_move_id.clone(),
            detail: b.detail.clone(),
            planned_at: b.planned_at.to_string(),
            posted_at: b.posted_at.map(|t| t.to_string()),
            updated_at: b.updated_at.to_string(),
        }
    }
}

/// A page of cost batches.
#[derive(Debug, Serialize, ToSchema)]
pub struct CostBatchPage {
    pub items: Vec<CostBatchView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CostBatchQuery {
    /// Only this connection's (the token must see it).
    pub connection: Option<String>,
    /// `planned`, `posted` or `withdrawn`.
    pub state: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/cost-batches", tag = "costs",
    params(CostBatchQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of cost batches by connection, window and revision", body = CostBatchPage),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A connection the token may not see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_cost_batches(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<CostBatchQuery>,
) -> ApiResult<CostBatchPage> {
    let scope = caller.scope(q.connection.as_deref())?;
    let batch_state = q
        .state
        .as_deref()
        .map(|s| BatchState::parse(s).ok_or_else(|| Problem::field("state", format!("{s:?}: use planned, posted or withdrawn"))))
        .transpose()?;
    let after = cursor_from::<BatchCursor>(q.cursor.as_deref())?;
    let limit = page_size(q.limit)?;
    let filter = CostBatchFilter { connection: scope.connection.clone(), state: batch_state, ..Default::default() };
    let (rows, next) = page(
        &scope,
        limit,
        after,
        |after, limit| {
            let (store, filter) = (state.store.clone(), CostBatchFilter { after, limit, ..filter.clone() });
            async move { store.list_cost_batches(filter).await }
        },
        BatchCursor::after,
        |_| true,
    )
    .await?;
    Ok(Json(CostBatchPage { items: rows.iter().map(CostBatchView::from).collect(), next_cursor: next.as_ref().map(cursor_text) }))
}

/// A journal line: debit or credit in the base currency, with the original amount.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalLineView {
    pub account: String,
    pub debit: MoneyView,
    pub credit: MoneyView,
    /// The amount in its original currency (the second currency), when converted.
    pub original: Option<MoneyView>,
    pub memo: Option<String>,
}

/// The journal a batch posts (or posted), as planned.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalView {
    /// Its idempotency key in the ERP.
    pub key: String,
    pub date: String,
    pub memo: String,
    pub lines: Vec<JournalLineView>,
}

impl From<&JournalWrite> for JournalView {
    fn from(j: &JournalWrite) -> JournalView {
        JournalView {
            key: j.key.clone(),
            date: j.date.to_string(),
            memo: j.memo.clone(),
            lines: j
                .lines
                .iter()
                .map(|l| JournalLineView {
                    account: l.account.clone(),
                    debit: l.debit.into(),
                    credit: l.credit.into(),
                    original: l.original.map(MoneyView::from),
                    memo: l.memo.clone(),
                })
                .collect(),
        }
    }
}

/// One entry of a batch, and the window it was carried over from.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchEntryView {
    /// The earlier window it was carried from (`start..end`), if it was.
    pub carried_from: Option<String>,
    pub entry: CostEntryView,
}

/// A batch, its journal and every entry it holds (or held, when withdrawn).
#[derive(Debug, Serialize, ToSchema)]
pub struct CostBatchDetail {
    pub batch: CostBatchView,
    pub journal: JournalView,
    /// By label time; also `GET /api/v1/cost-entries?batch={id}`, a page at a time.
    pub entries: Vec<BatchEntryView>,
}

#[utoipa::path(
    get, path = "/api/v1/cost-batches/{id}", tag = "costs",
    params(("id" = i64, Path, description = "The batch's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The batch with its journal and entries", body = CostBatchDetail),
        (status = 400, description = "A bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_cost_batch(State(state): State<ApiState>, caller: Caller, PathId(id): PathId) -> ApiResult<CostBatchDetail> {
    let batch = state
        .store
        .list_cost_batches(CostBatchFilter { id: Some(id), limit: 1, ..Default::default() })
        .await?
        .into_iter()
        .next()
        .filter(|b| caller.sees(&b.connection))
        .ok_or_else(|| Problem::not_found(format!("cost batch {id}")))?;
    let members = state.store.cost_batch_members(&batch.connection, &batch.batch_key).await?;
    let carried: HashMap<String, String> =
        members.into_iter().filter_map(|m| m.carried_from.map(|w| (m.entry_key, format!("{}..{}", w.start, w.end)))).collect();
    let filter = CostEntryFilter { connection: Some(batch.connection.clone()), batch_id: Some(batch.id), ..Default::default() };
    let entries = entries_with_conversions(&state, filter)
        .await?
        .into_iter()
        .map(|entry| BatchEntryView { carried_from: carried.get(&entry.entry_key).cloned(), entry })
        .collect();
    Ok(Json(CostBatchDetail { batch: CostBatchView::from(&batch), journal: JournalView::from(&batch.journal), entries }))
}
