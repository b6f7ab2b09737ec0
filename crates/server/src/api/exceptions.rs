//! `/api/v1/exceptions`: list (filters, cursor paging), show, the audit log, and every
//! action a person takes on one (operator): acknowledge, assign, retry, resolve,
//! ignore. Each action is the store's [`ExceptionAction`], checked and audited there,
//! named after the token that took it.

use axum::Json;
use axum::extract::State;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shipledger_core::exception::{ExceptionKind, Owner};
use shipledger_store::{
    ExceptionAct, ExceptionAction, ExceptionAudit, ExceptionAuditFilter, ExceptionFilter, ExceptionRecord, ExceptionState, TokenRole,
};
use utoipa::{IntoParams, ToSchema};

use super::{ApiResult, ApiState, Body, Caller, PathId, Problem, Query, page_size};

/// An exception: owned work, with its age against its kind's SLA.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionView {
    pub id: i64,
    pub connection: String,
    /// The stable code, e.g. `push_rejected`.
    pub kind: String,
    /// What the kind means, in one sentence.
    pub meaning: String,
    /// `ops`, `finance` or `admin`.
    pub owner: String,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: String,
    /// `open`, `acknowledged`, `closed`, `resolved` or `ignored`.
    pub state: String,
    pub record_type: String,
    pub record_id: String,
    pub assignee: Option<String>,
    /// The given-up job behind it, which `retry` runs again.
    pub job_id: Option<i64>,
    pub first_seen: String,
    pub last_seen: String,
    pub acknowledged_at: Option<String>,
    pub ended_at: Option<String>,
    pub occurrences: i64,
    pub age_seconds: i64,
    /// The kind's SLA on this connection, if it has one.
    pub sla_seconds: Option<u64>,
    /// Live past its SLA.
    pub overdue: bool,
    /// What was found: `message`, and per kind the fields and figures.
    pub detail: serde_json::Value,
    /// The note of the last person who acted on it.
    pub note: Option<String>,
}

impl ExceptionView {
    pub(crate) fn of(e: &ExceptionRecord, state: &ApiState, now: Timestamp) -> ExceptionView {
        let policy = state.policy(&e.connection);
        ExceptionView {
            id: e.id,
            connection: e.connection.clone(),
            kind: e.kind.code().into(),
            meaning: e.kind.meaning().into(),
            owner: e.owner.to_string(),
            severity: e.severity.to_string(),
            state: e.state.as_str().into(),
            record_type: e.record_type.clone(),
            record_id: e.record_id.clone(),
            assignee: e.assignee.clone(),
            job_id: e.job_id,
            first_seen: e.first_seen.to_string(),
            last_seen: e.last_seen.to_string(),
            acknowledged_at: e.acknowledged_at.map(|t| t.to_string()),
            ended_at: e.ended_at.map(|t| t.to_string()),
            occurrences: e.occurrences,
            age_seconds: e.age(now).as_secs(),
            sla_seconds: policy.and_then(|p| p.sla(e.kind)).map(|d| d.as_secs()),
            overdue: policy.and_then(|p| p.overdue(e, now)).is_some(),
            detail: e.detail.clone(),
            note: e.note.clone(),
        }
    }
}

/// A page of exceptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionPage {
    pub items: Vec<ExceptionView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExceptionQuery {
    /// Only this connection's (the token must see it).
    pub connection: Option<String>,
    /// `live` (open or acknowledged, the default), `open`, `acknowledged`, `closed`, `resolved`, `ignored` or `all`.
    pub state: Option<String>,
    /// An exception kind code, e.g. `held_missing_weight`.
    pub kind: Option<String>,
    /// `ops`, `finance` or `admin`.
    pub owner: Option<String>,
    pub assignee: Option<String>,
    /// Only those live past their SLA.
    pub overdue: Option<bool>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/v1/exceptions", tag = "exceptions",
    params(ExceptionQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of exceptions, oldest first", body = ExceptionPage),
        (status = 400, description = "A bad parameter, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A connection the token may not see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_exceptions(
    State(state): State<ApiState>,
    caller: Caller,
    Query(q): Query<ExceptionQuery>,
) -> ApiResult<ExceptionPage> {
    if let Some(c) = &q.connection {
        caller.may_see(c)?;
    }
    let wanted_state = q.state.as_deref().unwrap_or("live");
    let (state_filter, live) = ExceptionState::filter(wanted_state).ok_or_else(|| {
        Problem::field("state", format!("{wanted_state:?}: use live, open, acknowledged, closed, resolved, ignored or all"))
    })?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| ExceptionKind::parse(k).ok_or_else(|| Problem::field("kind", format!("{k:?} is not an exception kind"))))
        .transpose()?;
    let owner = q
        .owner
        .as_deref()
        .map(|o| Owner::parse(o).ok_or_else(|| Problem::field("owner", format!("{o:?}: use ops, finance or admin"))))
        .transpose()?;
    let after_id = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().map_err(|_| Problem::field("cursor", "not a cursor this API gave out")))
        .transpose()?;
    let limit = page_size(q.limit)?;
    let now = state.clock.now();
    let overdue_only = q.overdue.unwrap_or(false);
    // Read in store pages until this page is full: rows the token may not see (or,
    // with `overdue`, not overdue) are skipped, never shown.
    let mut items = Vec::new();
    let mut after = after_id;
    let mut next_cursor = None;
    'pages: loop {
        let batch = state
            .store
            .list_exceptions(ExceptionFilter {
                connection: q.connection.clone(),
                state: state_filter,
                live,
                kind,
                owner,
                assignee: q.assignee.clone(),
                after_id: after,
                limit: 500,
                ..Default::default()
            })
            .await?;
        let full = batch.len() == 500;
        for e in &batch {
            after = Some(e.id);
            let visible = caller.sees(&e.connection);
            let wanted = !overdue_only || state.policy(&e.connection).and_then(|p| p.overdue(e, now)).is_some();
            if visible && wanted {
                items.push(ExceptionView::of(e, &state, now));
                if items.len() == limit as usize {
                    next_cursor = Some(e.id.to_string());
                    break 'pages;
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(ExceptionPage { items, next_cursor }))
}

/// The exception `id`, if the caller may see it (else 404, as if it did not exist).
async fn visible(state: &ApiState, caller: &Caller, id: i64) -> Result<ExceptionRecord, Problem> {
    match state.store.get_exception(id).await? {
        Some(e) if caller.sees(&e.connection) => Ok(e),
        _ => Err(Problem::not_found(format!("exception {id}"))),
    }
}

#[utoipa::path(
    get, path = "/api/v1/exceptions/{id}", tag = "exceptions",
    params(("id" = i64, Path, description = "The exception's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The exception", body = ExceptionView),
        (status = 400, description = "A bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such exception the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_exception(State(state): State<ApiState>, caller: Caller, PathId(id): PathId) -> ApiResult<ExceptionView> {
    let e = visible(&state, &caller, id).await?;
    Ok(Json(ExceptionView::of(&e, &state, state.clock.now())))
}

/// One row of an exception's audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    pub exception_id: i64,
    pub at: String,
    /// `shipledger` for what it did by itself; `token:NAME`, `cli:USER` for people.
    pub actor: String,
    /// `opened`, `closed`, `acknowledge`, `assign`, `retry`, `resolve` or `ignore`.
    pub action: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub note: Option<String>,
}

impl From<&ExceptionAudit> for AuditView {
    fn from(a: &ExceptionAudit) -> AuditView {
        AuditView {
            id: a.id,
            exception_id: a.exception_id,
            at: a.at.to_string(),
            actor: a.actor.clone(),
            action: a.action.clone(),
            before: a.before.clone(),
            after: a.after.clone(),
            note: a.note.clone(),
        }
    }
}

#[utoipa::path(
    get, path = "/api/v1/exceptions/{id}/audit", tag = "exceptions",
    params(("id" = i64, Path, description = "The exception's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every action on it, oldest first", body = Vec<AuditView>),
        (status = 400, description = "A bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such exception the token may see", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn exception_audit(State(state): State<ApiState>, caller: Caller, PathId(id): PathId) -> ApiResult<Vec<AuditView>> {
    visible(&state, &caller, id).await?;
    let rows = state.store.list_exception_audit(ExceptionAuditFilter { exception_id: Some(id), ..Default::default() }).await?;
    Ok(Json(rows.iter().map(AuditView::from).collect()))
}

/// What an action did: the exception after it, and its audit row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionOutcome {
    pub exception: ExceptionView,
    pub audit: AuditView,
}

/// An action's optional note.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Kept in the audit log.
    pub note: Option<String>,
}

/// Resolving or ignoring needs a reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why (required, not blank).
    pub note: String,
}

/// Whom to assign it to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// A person's or team's name; `null` takes it off whoever has it.
    pub to: Option<String>,
    pub note: Option<String>,
}

/// Edit and retry: ShipStation-side fields shipledger owns on the order behind it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// Field → value (`null` removes the override): carrier_code, service_code,
    /// package_code, confirmation, warehouse_id, internal_notes. The ERP's data
    /// (weights, addresses, lines) is corrected in the ERP and refused here.
    #[schema(value_type = std::collections::BTreeMap<String, Option<String>>)]
    pub set: std::collections::BTreeMap<String, Option<String>>,
    pub note: Option<String>,
}

async fn act(state: &ApiState, caller: &Caller, id: i64, action: ExceptionAction, note: Option<String>) -> ApiResult<ActionOutcome> {
    caller.require(TokenRole::Operator)?;
    visible(state, caller, id).await?;
    if matches!(action, ExceptionAction::Resolve | ExceptionAction::Ignore) && note.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(Problem::field("note", "say why (it is kept in the audit log)"));
    }
    if let ExceptionAction::Assign { to: Some(to) } = &action
        && to.trim().is_empty()
    {
        return Err(Problem::field("to", "name whom to assign it to, or send null to unassign it"));
    }
    if let ExceptionAction::Edit { set } = &action {
        if set.is_empty() {
            return Err(Problem::field("set", "name at least one field to edit"));
        }
        for (field, value) in set {
            shipledger_core::overrides::check(field, value.as_deref()).map_err(|why| Problem::field(format!("set.{field}"), why))?;
        }
    }
    let now = state.clock.now();
    let acted = state.store.act_on_exception(ExceptionAct { id, action, actor: caller.actor(), note, at: now }).await?;
    Ok(Json(ActionOutcome { exception: ExceptionView::of(&acted.exception, state, now), audit: AuditView::from(&acted.audit) }))
}

macro_rules! action_route {
    ($name:ident, $path:literal, $body:ty, $summary:literal, |$b:ident| $action:expr, $note:expr) => {
        #[utoipa::path(
            post, path = $path, tag = "exceptions", summary = $summary,
            params(("id" = i64, Path, description = "The exception's id")),
            request_body(content = $body, content_type = "application/json"),
            security(("bearer" = [])),
            responses(
                (status = 200, description = "Done: the exception after it, and its audit row", body = ActionOutcome),
                (status = 400, description = "A bad id or body field, named", body = Problem, content_type = "application/problem+json"),
                (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "Not an operator token", body = Problem, content_type = "application/problem+json"),
                (status = 404, description = "No such exception the token may see", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "Refused: the exception has ended, or there is nothing to retry; the detail says why", body = Problem, content_type = "application/problem+json"),
                (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
            )
        )]
        pub(crate) async fn $name(
            State(state): State<ApiState>,
            caller: Caller,
            PathId(id): PathId,
            Body($b): Body<$body>,
        ) -> ApiResult<ActionOutcome> {
            act(&state, &caller, id, $action, $note).await
        }
    };
}

action_route!(acknowledge, "/api/v1/exceptions/{id}/acknowledge", NoteBody, "Acknowledge: someone is on it (open → acknowledged)", |b| ExceptionAction::Acknowledge, b.note);
action_route!(assign, "/api/v1/exceptions/{id}/assign", AssignBody, "Assign it to someone, or to nobody", |b| ExceptionAction::Assign { to: b.to.map(|t| t.trim().to_string()) }, b.note);
action_route!(retry, "/api/v1/exceptions/{id}/retry", NoteBody, "Run the given-up job behind it again", |b| ExceptionAction::Retry, b.note);
action_route!(edit, "/api/v1/exceptions/{id}/edit", EditBody, "Edit and retry: set ShipStation-side fields shipledger owns on the order behind it, then run its job again", |b| ExceptionAction::Edit { set: b.set }, b.note);
action_route!(resolve, "/api/v1/exceptions/{id}/resolve", ReasonBody, "Mark it dealt with (a note is required)", |b| ExceptionAction::Resolve, Some(b.note));
action_route!(ignore, "/api/v1/exceptions/{id}/ignore", ReasonBody, "Leave it be (a note is required); its kind is not raised again on the record", |b| ExceptionAction::Ignore, Some(b.note));
