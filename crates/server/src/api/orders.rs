//! `/api/v1/connections/{connection}/orders/{erp_id}`: an order as shipledger keeps it,
//! with its whole timeline (its own events and its shipments', merged by time) and its
//! exceptions.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shipledger_store::ExceptionFilter;
use utoipa::ToSchema;

use super::exceptions::ExceptionView;
use super::{ApiResult, ApiState, Caller, Problem, Segments};

/// One step of an order's story.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    pub at: String,
    /// `order`, or `shipment` for one of its shipments' events.
    pub record_type: String,
    pub record_id: String,
    /// e.g. `released`, `pushed`, `label_seen`, `erp_packed`, `exception_acknowledged`.
    pub kind: String,
    /// The tracking number of the shipment the event belongs to.
    pub tracking_number: Option<String>,
    pub detail: serde_json::Value,
}

/// An order, its timeline and its exceptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub connection: String,
    pub erp_id: String,
    pub number: String,
    /// `received`, `held`, `released`, `pushed`, `cancelled` or `shipped`.
    pub state: String,
    pub order_key: String,
    pub shipstation_order_id: Option<i64>,
    pub shipstation_status: Option<String>,
    pub released_at: Option<String>,
    pub pushed_at: Option<String>,
    pub timeline: Vec<TimelineEvent>,
    pub exceptions: Vec<ExceptionView>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OrderPath {
    connection: String,
    erp_id: String,
}

#[utoipa::path(
    get, path = "/api/v1/connections/{connection}/orders/{erp_id}", tag = "orders",
    params(
        ("connection" = String, Path, description = "The connection's name"),
        ("erp_id" = String, Path, description = "The ERP's id of the order"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order with its timeline", body = OrderView),
        (status = 400, description = "A path segment that is not text once percent-decoded, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_order(
    State(state): State<ApiState>,
    caller: Caller,
    Segments(OrderPath { connection, erp_id }): Segments<OrderPath>,
) -> ApiResult<OrderView> {
    let not_found = || Problem::not_found(format!("order {erp_id} on connection {connection}"));
    if !caller.sees(&connection) {
        return Err(not_found());
    }
    let order = state.store.get_order(&connection, &erp_id).await?.ok_or_else(not_found)?;
    let now = state.clock.now();
    let timeline = state
        .store
        .order_timeline(&connection, &erp_id)
        .await?
        .into_iter()
        .map(|e| TimelineEvent {
            at: e.event.at.to_string(),
            record_type: e.event.record_type.to_string(),
            record_id: e.event.record_id.clone(),
            kind: e.event.kind.to_string(),
            tracking_number: e.tracking_number,
            detail: e.event.detail,
        })
        .collect();
    let exceptions = state
        .store
        .list_exceptions(ExceptionFilter {
            connection: Some(connection.clone()),
            record_type: Some("order".into()),
            record_id: Some(erp_id.clone()),
            ..Default::default()
        })
        .await?
        .iter()
        .map(|e| ExceptionView::of(e, &state, now))
        .collect();
    Ok(Json(OrderView {
        connection: order.connection,
        erp_id: order.erp_id,
        number: order.number,
        state: order.state.as_str().into(),
        order_key: order.order_key,
        shipstation_order_id: order.ss_order_id,
        shipstation_status: order.ss_status,
        released_at: order.released_at.map(|t| t.to_string()),
        pushed_at: order.pushed_at.map(|t| t.to_string()),
        timeline,
        exceptions,
    }))
}
