//! `/api/v1/shipments` and `/api/v1/connections/{connection}/shipments/{shipment_key}`:
//! the labels and fulfillments shipledger saw in ShipStation, listed (filters, cursor
//! paging) and shown one at a time with the ERP order line each of its lines maps to
//! and its cost entries, each with its FX conversion.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shipledger_core::shipment::{OrderedLine, ShippedItem, line_of};
use shipledger_store::{CostEntryFilter, ShipmentCursor, ShipmentFilter, ShipmentKind, ShipmentRecord, ShipmentState};
use utoipa::{IntoParams, ToSchema};

use super::costs::{CostEntryView, entries_with_conversions};
use super::{ApiResult, ApiState, Caller, OfConnection, Problem, Query, Segments, cursor_from, cursor_text, page, page_size};

impl OfConnection for ShipmentRecord {
    fn connection(&self) -> &str {
        &self.connection
    }
}

/// One line of a shipment, as ShipStation listed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentLineView {
    /// The ERP line it names (set to the ERP line id at push).
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    pub quantity: i64,
}

/// A label or fulfillment as shipledger keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentView {
    pub connection: String,
    /// `label:{shipmentId}` (`label:{shipmentId}/{erp_id}` for an order merged into
    /// another) or `fulfillment:{fulfillmentId}`.
    pub shipment_key: String,
    /// `label` or `fulfillment`.
    pub kind: String,
    /// `seen`, `packed`, `completed`, `reversed` or `orphan`.
    pub state: String,
    /// ShipStation's `shipmentId` or `fulfillmentId`.
    pub shipstation_id: i64,
    pub shipstation_order_id: i64,
    pub shipstation_order_key: Option<String>,
    /// The ERP order it maps to; absent for an orphan.
    pub erp_id: Option<String>,
    pub carrier: String,
    pub service: Option<String>,
    pub tracking_number: Option<String>,
    /// The last tracking status code read (`NY`, `IT`, `DE`, ...).
    pub tracking_status: Option<String>,
    pub ship_date: Option<String>,
    /// The label's cost in minor units of `cost_currency`, as ShipStation gave it.
    pub cost_minor: Option<i64>,
    pub cost_currency: Option<String>,
    /// The same cost as a decimal string, when the currency is known.
    pub cost_amount: Option<String>,
    pub voided: bool,
    pub voided_at: Option<String>,
    /// The carrier's first physical scan.
    pub first_scan_at: Option<String>,
    /// A live label with no carrier scan yet.
    pub awaiting_scan: bool,
    /// The ERP fulfilment document it was written to.
    pub erp_fulfilment_id: Option<String>,
    /// When ShipStation made it.
    pub shipstation_created_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub lines: Vec<ShipmentLineView>,
}

fn awaiting_scan(s: &ShipmentRecord) -> bool {
    s.kind == ShipmentKind::Label && !s.voided && s.first_scan_at.is_none()
}

impl From<&ShipmentRecord> for ShipmentView {
    fn from(s: &ShipmentRecord) -> ShipmentView {
        let cost_amount = match (s.cost_minor, s.cost_currency.as_deref().map(shipledger_core::Currency::parse)) {
            (Some(minor), Some(Ok(currency))) => Some(shipledger_core::Money::from_minor(minor, currency).to_decimal().to_string()),
            _ => None,
        };
        ShipmentView {
            connection: s.connection.clone(),
            shipment_key: s.shipment_key.clone(),
            kind: s.kind.as_str().into(),
            state: s.state.as_str().into(),
            shipstation_id: s.ss_id,
            shipstation_order_id: s.ss_order_id,
            shipstation_order_key: s.ss_order_key.clone(),
            erp_id: s.erp_id.clone(),
            carrier: s.carrier.clone(),
            service: s.service.clone(),
            tracking_number: s.tracking_number.clone(),
            tracking_status: s.tracking_status.clone(),
            ship_date: s.ship_date.map(|d| d.to_string()),
            cost_minor: s.cost_minor,
            cost_currency: s.cost_currency.clone(),
            cost_amount,
            voided: s.voided,
            voided_at: s.voided_at.map(|t| t.to_string()),
            first_scan_at: s.first_scan_at.map(|t| t.to_string()),
            awaiting_scan: awaiting_scan(s),
            erp_fulfilment_id: s.erp_fulfilment_id.clone(),
            shipstation_created_at: s.ss_created_at.to_string(),
            created_at: s.created_at.to_string(),
            updated_at: s.updated_at.to_string(),
            lines: s.lines.iter().map(|l| ShipmentLineView { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity }).collect(),
        }
    }
}

/// A page of shipments.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentPage {
    pub items: Vec<ShipmentView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShipmentQuery {
    /// Only this connection's (the token must see it).
    pub connection: Option<String>,
    /// Only those mapped to this ERP order.
    pub erp_id: Option<String>,
    /// `label` or `fulfillment`.
    pub kind: Option<String>,
    /// `true`: only voided ones; `false`: only live ones.
    pub voided: Option<bool>,
    /// `true`: only live labels with no carrier scan yet; `false`: only the others.
    pub awaiting_scan: Option<bool>,
    /// `seen`, `packed`, `completed`, `reversed` or `orphan`.
    pub state: Option<String>,
    pub tracking_number: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/shipments", tag = "shipments",
    params(ShipmentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of shipments, oldest first (by ShipStation's creation time)", body = ShipmentPage),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A connection the token may not see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_shipments(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<ShipmentQuery>,
) -> ApiResult<ShipmentPage> {
    let scope = caller.scope(q.connection.as_deref())?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| ShipmentKind::parse(k).ok_or_else(|| Problem::field("kind", format!("{k:?}: use label or fulfillment"))))
        .transpose()?;
    let shipment_state = q
        .state
        .as_deref()
        .map(|s| ShipmentState::parse(s).ok_or_else(|| Problem::field("state", format!("{s:?}: use seen, packed, completed, reversed or orphan"))))
        .transpose()?;
    let after = cursor_from::<ShipmentCursor>(q.cursor.as_deref())?;
    let limit = page_size(q.limit)?;
    let filter = ShipmentFilter {
        connection: scope.connection.clone(),
        erp_id: q.erp_id.clone(),
        state: shipment_state,
        kind,
        voided: q.voided,
        awaiting_scan: q.awaiting_scan == Some(true),
        tracking_number: q.tracking_number.clone(),
        ..Default::default()
    };
    let (rows, next) = page(
        &scope,
        limit,
        after,
        |after, limit| {
            let (store, filter) = (state.store.clone(), ShipmentFilter { after, limit, ..filter.clone() });
            async move { store.list_shipments(filter).await }
        },
        ShipmentCursor::after,
        // `awaiting_scan=false`: the store lists every one, the awaiting ones are left out here.
        |s| q.awaiting_scan != Some(false) || !awaiting_scan(s),
    )
    .await?;
    Ok(Json(ShipmentPage { items: rows.iter().map(ShipmentView::from).collect(), next_cursor: next.as_ref().map(cursor_text) }))
}

/// The ERP order line a shipment line maps to.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErpLineView {
    pub line_id: String,
    pub sku: Option<String>,
    pub name: String,
    /// The quantity ordered.
    pub quantity: i64,
    /// Non-physical lines (discounts, services) are never shipped.
    pub physical: bool,
}

/// A shipment line with the ERP order line it maps to.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappedLineView {
    pub line_item_key: Option<String>,
    pub sku: Option<String>,
    /// The quantity shipped.
    pub quantity: i64,
    /// By `line_item_key`, or without one by a SKU only one line carries; absent
    /// when it names no physical line of the order (or the shipment maps to none).
    pub erp_line: Option<ErpLineView>,
}

/// A shipment, its lines mapped to the ERP order's, and its cost entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentDetail {
    pub shipment: ShipmentView,
    pub lines: Vec<MappedLineView>,
    /// Its cost entries (postage, insurance, reversals, adjustments) by label time,
    /// each with its conversion to the ERP's base currency.
    pub cost_entries: Vec<CostEntryView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShipmentPath {
    connection: String,
    shipment_key: String,
}

#[utoipa::path(
    get, path = "/api/v1/connections/{connection}/shipments/{shipment_key}", tag = "shipments",
    params(
        ("connection" = String, Path, description = "The connection's name"),
        ("shipment_key" = String, Path, description = "The shipment's key, percent-encoded (`label%3A8001`, `label%3A8001%2FSO-7`)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The shipment with its mapped lines and its cost entries", body = ShipmentDetail),
        (status = 400, description = "A path segment that is not text once percent-decoded, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such shipment the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_shipment(
    State(state): State<ApiState>,
    caller: Caller,
    Segments(path): Segments<ShipmentPath>,
) -> ApiResult<ShipmentDetail> {
    let ShipmentPath { connection, shipment_key } = path;
    let not_found = || Problem::not_found(format!("shipment {shipment_key} on connection {connection}"));
    if !caller.sees(&connection) {
        return Err(not_found());
    }
    let shipment = state.store.get_shipment(&connection, &shipment_key).await?.ok_or_else(not_found)?;
    let order_lines = match &shipment.erp_id {
        Some(erp_id) => state.store.order_lines(&connection, erp_id).await?,
        None => Vec::new(),
    };
    let ordered: Vec<OrderedLine> = order_lines
        .iter()
        .map(|l| OrderedLine { line_id: l.line_id.clone(), sku: l.sku.clone(), quantity: l.quantity, physical: l.physical })
        .collect();
    let lines = shipment
        .lines
        .iter()
        .map(|l| {
            let item = ShippedItem { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity };
            let erp_line = line_of(&ordered, &item)
                .filter(|o| o.physical)
                .and_then(|o| order_lines.iter().find(|r| r.line_id == o.line_id))
                .map(|r| ErpLineView { line_id: r.line_id.clone(), sku: r.sku.clone(), name: r.name.clone(), quantity: r.quantity, physical: r.physical });
            MappedLineView { line_item_key: l.line_item_key.clone(), sku: l.sku.clone(), quantity: l.quantity, erp_line }
        })
        .collect();
    let filter = CostEntryFilter { connection: Some(connection.clone()), shipment_key: Some(shipment_key.clone()), ..Default::default() };
    let cost_entries = entries_with_conversions(&state, filter).await?;
    Ok(Json(ShipmentDetail { shipment: ShipmentView::from(&shipment), lines, cost_entries }))
}
