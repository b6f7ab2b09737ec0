//! `/api/v1/connections`: the brands this deployment serves that the token may see,
//! each with its health: live and overdue exceptions by owner, jobs waiting and given up.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shipledger_store::ExceptionFilter;
use utoipa::ToSchema;

use super::{ApiResult, ApiState, Caller, Problem};

/// A connection and its health.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    pub name: String,
    /// `ok` with nothing live, `attention` with live exceptions, `overdue` when one is
    /// past its SLA.
    pub health: String,
    /// Live exceptions (open or acknowledged) per owner.
    pub live_exceptions: BTreeMap<String, u64>,
    /// Live exceptions past their SLA.
    pub overdue_exceptions: u64,
    /// Jobs per state (`pending`, `running`, `done`, `dead`: given up, each with its
    /// exception while it matters).
    pub jobs: BTreeMap<String, u64>,
}

#[utoipa::path(
    get, path = "/api/v1/connections", tag = "connections",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The connections the token may see, with their health", body = Vec<ConnectionView>),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_connections(State(state): State<ApiState>, caller: Caller) -> ApiResult<Vec<ConnectionView>> {
    let now = state.clock.now();
    let mut out = Vec::new();
    for conn in state.connections.iter().filter(|c| caller.sees(&c.name)) {
        let live = state
            .store
            .list_exceptions(ExceptionFilter { connection: Some(conn.name.clone()), live: true, ..Default::default() })
            .await?;
        let mut live_exceptions: BTreeMap<String, u64> = BTreeMap::new();
        for e in &live {
            *live_exceptions.entry(e.owner.to_string()).or_default() += 1;
        }
        let overdue_exceptions = live.iter().filter(|e| conn.policy.overdue(e, now).is_some()).count() as u64;
        let mut jobs: BTreeMap<String, u64> = BTreeMap::new();
        for (_, job_state, n) in state.store.count_jobs(&conn.name).await? {
            *jobs.entry(job_state.as_str().to_string()).or_default() += n;
        }
        let health = if overdue_exceptions > 0 {
            "overdue"
        } else if live.is_empty() {
            "ok"
        } else {
            "attention"
        };
        out.push(ConnectionView { name: conn.name.clone(), health: health.into(), live_exceptions, overdue_exceptions, jobs });
    }
    Ok(Json(out))
}
