//! `/api/v1/reconcile-runs`: the reconciler's runs, newest first, one with its stats,
//! and what it found: each finding with its kind, owner, record and message, and the
//! exception it opened or refreshed.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shipledger_core::exception::ExceptionKind;
use shipledger_store::{ReconcileFindingFilter, ReconcileFindingRecord, ReconcileRun, ReconcileRunFilter};
use utoipa::{IntoParams, ToSchema};

use super::{ApiResult, ApiState, Caller, OfConnection, PathId, Problem, Query, id_cursor, page, page_size};

impl OfConnection for ReconcileRun {
    fn connection(&self) -> &str {
        &self.connection
    }
}

impl OfConnection for ReconcileFindingRecord {
    fn connection(&self) -> &str {
        &self.connection
    }
}

/// One reconciler run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileRunView {
    pub id: i64,
    pub connection: String,
    /// `full` or `incremental`.
    pub mode: String,
    /// The window's start: ShipStation and the ERP were read for changes since.
    pub since: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// What it read and found: requests, rows, findings per kind, exceptions opened and closed.
    pub stats: serde_json::Value,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<&ReconcileRun> for ReconcileRunView {
    fn from(r: &ReconcileRun) -> ReconcileRunView {
        ReconcileRunView {
            id: r.id,
            connection: r.connection.clone(),
            mode: r.mode.as_str().into(),
            since: r.since.to_string(),
            state: r.state.as_str().into(),
            started_at: r.started_at.to_string(),
            finished_at: r.finished_at.map(|t| t.to_string()),
            stats: r.stats.clone(),
            error: r.error.clone(),
        }
    }
}

/// A page of runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileRunPage {
    pub items: Vec<ReconcileRunView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRunQuery {
    /// Only this connection's (the token must see it).
    pub connection: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/reconcile-runs", tag = "reconcile",
    params(ReconcileRunQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of runs, newest first", body = ReconcileRunPage),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A connection the token may not see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_runs(State(state): State<ApiState>, caller: Caller, Query(q): Query<ReconcileRunQuery>) -> ApiResult<ReconcileRunPage> {
    let scope = caller.scope(q.connection.as_deref())?;
    let before = id_cursor(q.cursor.as_deref())?;
    let limit = page_size(q.limit)?;
    let connection = scope.connection.clone();
    let (rows, next) = page(
        &scope,
        limit,
        before,
        |before_id, limit| {
            let (store, filter) = (state.store.clone(), ReconcileRunFilter { connection: connection.clone(), before_id, limit, ..Default::default() });
            async move { store.list_reconcile_runs(filter).await }
        },
        |r| r.id,
        |_| true,
    )
    .await?;
    Ok(Json(ReconcileRunPage { items: rows.iter().map(ReconcileRunView::from).collect(), next_cursor: next.map(|id| id.to_string()) }))
}

/// The run `id`, if the caller may see it (else 404, as if it did not exist).
async fn visible(state: &ApiState, caller: &Caller, id: i64) -> Result<ReconcileRun, Problem> {
    match state.store.get_reconcile_run(id).await? {
        Some(r) if caller.sees(&r.connection) => Ok(r),
        _ => Err(Problem::not_found(format!("reconcile run {id}"))),
    }
}

#[utoipa::path(
    get, path = "/api/v1/reconcile-runs/{id}", tag = "reconcile",
    params(("id" = i64, Path, description = "The run's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The run with its stats", body = ReconcileRunView),
        (status = 400, description = "A bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_run(State(state): State<ApiState>, caller: Caller, PathId(id): PathId) -> ApiResult<ReconcileRunView> {
    Ok(Json(ReconcileRunView::from(&visible(&state, &caller, id).await?)))
}

/// One disagreement a run found.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    pub id: i64,
    pub run_id: i64,
    pub connection: String,
    /// The exception kind it raises, e.g. `paid_not_in_shipstation`.
    pub kind: String,
    /// `ops`, `finance` or `admin`.
    pub owner: String,
    /// `order`, `shipstation_order`, `shipment` or `cost_entry`.
    pub record_type: String,
    pub record_id: String,
    /// What was found, in words.
    pub message: Option<String>,
    /// The figures behind it.
    pub detail: serde_json::Value,
    /// The exception it opened or refreshed; absent when none was (its kind is
    /// ignored on the record).
    pub exception_id: Option<i64>,
}

impl From<&ReconcileFindingRecord> for FindingView {
    fn from(f: &ReconcileFindingRecord) -> FindingView {
        FindingView {
            id: f.id,
            run_id: f.run_id,
            connection: f.connection.clone(),
            kind: f.kind.code().into(),
            owner: f.owner.to_string(),
            record_type: f.record_type.clone(),
            record_id: f.record_id.clone(),
            message: f.detail.get("message").and_then(|m| m.as_str()).map(str::to_string),
            detail: f.detail.clone(),
            exception_id: f.exception_id,
        }
    }
}

/// A page of findings.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingPage {
    pub items: Vec<FindingView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    /// Only findings of this exception kind, e.g. `paid_not_in_shipstation`.
    pub kind: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/reconcile-runs/{id}/findings", tag = "reconcile",
    params(("id" = i64, Path, description = "The run's id"), FindingQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the run's findings, in the order found", body = FindingPage),
        (status = 400, description = "A bad id or parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn run_findings(
    State(state): State<ApiState>,
    caller: Caller,
    PathId(id): PathId,
    Query(q): Query<FindingQuery>,
) -> ApiResult<FindingPage> {
    let kind = q
        .kind
        .as_deref()
        .map(|k| ExceptionKind::parse(k).ok_or_else(|| Problem::field("kind", format!("{k:?} is not an exception kind"))))
        .transpose()?;
    let after = id_cursor(q.cursor.as_deref())?;
    let limit = page_size(q.limit)?;
    let run = visible(&state, &caller, id).await?;
    let scope = caller.scope(Some(&run.connection))?;
    let (rows, next) = page(
        &scope,
        limit,
        after,
        |after_id, limit| {
            let filter = ReconcileFindingFilter { run_id: Some(run.id), connection: Some(run.connection.clone()), kind, after_id, limit };
            let store = state.store.clone();
            async move { store.list_reconcile_findings(filter).await }
        },
        |f| f.id,
        |_| true,
    )
    .await?;
    Ok(Json(FindingPage { items: rows.iter().map(FindingView::from).collect(), next_cursor: next.map(|id| id.to_string()) }))
}
