//! The REST API under `/api/v1`: JSON for the dashboard, alerts and other tools, with
//! its OpenAPI 3.1 document generated from these handlers (utoipa) and served at
//! `/api/v1/openapi.json`.
//!
//! - **Auth.** Every route but the document takes `Authorization: Bearer TOKEN`. A
//!   token ([`tokens`]) has a role (viewer reads, operator also acts on exceptions,
//!   admin also manages tokens) and the connections it may see; only its SHA-256 is
//!   stored. No token, or one the store does not know (or revoked): `401`. A role too
//!   weak for the route, or a filter naming a connection outside the token's: `403`.
//!   A record of a connection outside the token's is answered `404`, as if it did not
//!   exist, so a token never learns another brand's data, not even its ids.
//! - **Errors** are RFC 9457 problem details (`application/problem+json`), naming the
//!   field for bad input ([`Problem`]).
//! - **Paging** is by cursor: a list answers `next_cursor`, passed back as `cursor`
//!   (opaque: an id, or the store's cursor as base64url JSON). A list a token may see
//!   only part of reads the store's pages until its own is full ([`page`]), so a
//!   cursor never skips nor repeats a row the token may see.
//! - **The store unavailable** is `503` on every route (the token is looked up there).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shipledger_core::clock::Clock;
use shipledger_engine::config::Policy;
use shipledger_store::{ApiTokenRecord, Store, StoreError, TokenRole, TokenScope};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod connections;
mod costs;
mod exceptions;
mod orders;
mod reconcile;
mod shipments;
pub mod tokens;

/// A connection the API serves, with the policy its answers need (SLAs).
#[derive(Debug, Clone)]
pub struct ApiConnection {
    pub name: String,
    pub policy: Policy,
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) connections: Arc<Vec<ApiConnection>>,
}

impl ApiState {
    pub(crate) fn policy(&self, connection: &str) -> Option<&Policy> {
        self.connections.iter().find(|c| c.name == connection).map(|c| &c.policy)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "shipledger API",
        description = "Exceptions, orders, shipments, the cost ledger, reconciler runs, connections and tokens of a shipledger deployment. Every route but this document takes a bearer token (`shipledger tokens create`).",
        license(name = "Apache-2.0 OR MIT")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "connections", description = "The brands this deployment serves, and their health"),
        (name = "exceptions", description = "Owned work: list, show, and act on exceptions; their audit log"),
        (name = "orders", description = "An order as shipledger keeps it, with its timeline"),
        (name = "shipments", description = "Labels and fulfillments seen in ShipStation, with their ERP lines and costs"),
        (name = "costs", description = "The cost ledger: entries with their FX conversions, and the batches posted as journals"),
        (name = "reconcile", description = "Reconciler runs and what each found"),
        (name = "tokens", description = "API tokens (admin)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("an API token")).build()),
        );
    }
}

/// The API's routes (under `/api/v1`) and its OpenAPI document.
pub(crate) fn router(state: ApiState) -> axum::Router {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(connections::list_connections))
        .routes(routes!(exceptions::list_exceptions))
        .routes(routes!(exceptions::get_exception))
        .routes(routes!(exceptions::exception_audit))
        .routes(routes!(exceptions::acknowledge))
        .routes(routes!(exceptions::assign))
        .routes(routes!(exceptions::retry))
        .routes(routes!(exceptions::edit))
        .routes(routes!(exceptions::resolve))
        .routes(routes!(exceptions::ignore))
        .routes(routes!(orders::get_order))
        .routes(routes!(shipments::list_shipments))
        .routes(routes!(shipments::get_shipment))
        .routes(routes!(costs::list_cost_entries))
        .routes(routes!(costs::list_cost_batches))
        .routes(routes!(costs::get_cost_batch))
        .routes(routes!(reconcile::list_runs))
        .routes(routes!(reconcile::get_run))
        .routes(routes!(reconcile::run_findings))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .with_state(state)
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") {
                Problem::new(StatusCode::NOT_FOUND, "not found", format!("no route {uri}; the routes are in /api/v1/openapi.json"))
                    .into_response()
            } else {
                (StatusCode::NOT_FOUND, "not found\n").into_response()
            }
        })
}

/// A field of the input that was wrong, and how.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// Where: a query parameter, a path segment or a JSON pointer-like path (`assign.to`).
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem: what went wrong, for people (`detail`) and programs (`status`,
/// `type`), naming each field at fault in `errors`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank`: the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Problem {
        Problem { kind: "about:blank".into(), title: title.into(), status: status.as_u16(), detail: detail.into(), errors: vec![] }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Problem {
        let (field, message) = (field.into(), message.into());
        Problem {
            kind: "about:blank".into(),
            title: "bad request".into(),
            status: 400,
            detail: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not found", format!("{what} not found"))
    }

    pub fn unauthorized(detail: &str) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(&self)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::NotFound { what } => Problem::not_found(what),
            StoreError::ActionRefused { why, .. } => Problem::new(StatusCode::CONFLICT, "conflict", why),
            StoreError::TokenNameTaken { .. } => {
                let message = e.to_string();
                Problem { errors: vec![FieldError { field: "name".into(), message: message.clone() }], ..Problem::new(StatusCode::CONFLICT, "conflict", message) }
            }
            other => {
                tracing::error!(error = %other, "API: the store failed");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store unavailable", format!("the store failed: {other}; try again"))
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<Json<T>, Problem>;

/// The caller: the live token its `Authorization: Bearer` header names.
pub(crate) struct Caller {
    pub(crate) token: ApiTokenRecord,
}

impl Caller {
    /// `403` unless the token's role allows what `needed` may.
    pub(crate) fn require(&self, needed: TokenRole) -> Result<(), Problem> {
        if self.token.role.allows(needed) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "token {:?} has the {} role; this needs {needed} or above",
                self.token.name, self.token.role
            )))
        }
    }

    pub(crate) fn sees(&self, connection: &str) -> bool {
        self.token.scope.allows(connection)
    }

    /// For a filter naming `connection`: `403` unless the token may see it.
    pub(crate) fn may_see(&self, connection: &str) -> Result<(), Problem> {
        if self.sees(connection) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("token {:?} may not see connection {connection:?}", self.token.name)))
        }
    }

    /// What a list reads for a `connection` filter (or none): the connection named
    /// (`403` unless the token sees it), else the token's only connection, else every
    /// one, skipping rows of those the token may not see.
    pub(crate) fn scope(&self, asked: Option<&str>) -> Result<Scope, Problem> {
        let visible = self.token.scope.clone();
        if let Some(c) = asked {
            self.may_see(c)?;
            return Ok(Scope { connection: Some(c.to_string()), skip_unseen: false, visible });
        }
        let (connection, skip_unseen) = match &self.token.scope {
            TokenScope::All => (None, false),
            TokenScope::Only(names) if names.len() == 1 => (names.first().cloned(), false),
            TokenScope::Only(_) => (None, true),
        };
        Ok(Scope { connection, skip_unseen, visible })
    }

    /// Who the audit log names for this caller's actions.
    pub(crate) fn actor(&self) -> String {
        format!("token:{}", self.token.name)
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, Problem> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            Problem::unauthorized("no Authorization header: send `Authorization: Bearer TOKEN` (`shipledger tokens create` makes one)")
        })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Problem::unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
        let token = state
            .store
            .api_token_by_hash(&tokens::hash(secret))
            .await?
            .ok_or_else(|| Problem::unauthorized("this token is unknown or revoked"))?;
        if let Err(e) = state.store.touch_api_token(token.id, state.clock.now()).await {
            tracing::warn!(token = %token.name, error = %e, "API: could not note a token's use");
        }
        Ok(Caller { token })
    }
}

impl OptionalFromRequestParts<ApiState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Option<Caller>, Problem> {
        <Caller as FromRequestParts<ApiState>>::from_request_parts(parts, state).await.map(Some)
    }
}

/// Which connection a list reads ([`Caller::scope`]).
pub(crate) struct Scope {
    /// The store's filter: `None` reads every connection.
    pub(crate) connection: Option<String>,
    /// Whether the store may answer rows of connections the token may not see.
    skip_unseen: bool,
    /// The connections the token sees.
    visible: TokenScope,
}

/// A row of a list, of one connection.
pub(crate) trait OfConnection {
    fn connection(&self) -> &str;
}

/// One page of a list: the store's rows after `after` (`read(after, n)` answers at
/// most `n`, in cursor order), up to `limit` of those the token sees and `wanted`
/// keeps; with the cursor of the page's last row when the page is full. Rows the
/// token may not see are read past, never shown: a store page of them is followed
/// by the next. (`read` hands back a future that owns what it needs, an `Arc` of the
/// store and the filter, so the handler's future stays `Send`.)
pub(crate) async fn page<T, C, F>(
    scope: &Scope,
    limit: u32,
    mut after: Option<C>,
    mut read: impl FnMut(Option<C>, u32) -> F,
    cursor: impl Fn(&T) -> C,
    wanted: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<C>), Problem>
where
    T: OfConnection,
    C: Clone,
    F: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    // Reading only what the token sees: a store page of `limit` is nearly always the page.
    let chunk = if scope.skip_unseen { 500 } else { limit };
    let mut items = Vec::new();
    loop {
        let rows = read(after.clone(), chunk).await?;
        let full = rows.len() == chunk as usize;
        for row in rows {
            after = Some(cursor(&row));
            if scope.visible.allows(row.connection()) && wanted(&row) {
                items.push(row);
                if items.len() == limit as usize {
                    return Ok((items, after));
                }
            }
        }
        if !full {
            return Ok((items, None));
        }
    }
}

/// A store cursor as the API gives it out: base64url JSON, opaque to callers.
pub(crate) fn cursor_text<C: Serialize>(cursor: &C) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

/// A `cursor` parameter given out by [`cursor_text`]; anything else is a `400` naming it.
pub(crate) fn cursor_from<C: DeserializeOwned>(text: Option<&str>) -> Result<Option<C>, Problem> {
    use base64::Engine as _;
    text.map(|t| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| Problem::field("cursor", "not a cursor this API gave out"))
    })
    .transpose()
}

/// A `cursor` that is an id (lists paged by id).
pub(crate) fn id_cursor(text: Option<&str>) -> Result<Option<i64>, Problem> {
    text.map(|c| c.parse::<i64>().map_err(|_| Problem::field("cursor", "not a cursor this API gave out"))).transpose()
}

/// Query parameters, read so that a bad one is named: `limit: invalid digit found in string`.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Query<T>, Problem> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            // A parameter serde could not place (an unknown one) names itself in the message.
            Problem::field(if field == "." { "query".to_string() } else { field }, message)
        })
    }
}

/// A path segment parsed as `T`, named when it is not one.
pub(crate) struct PathId(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathId, Problem> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            <axum::extract::Path<String> as FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map_err(|e| Problem::field("id", e.body_text()))?;
        raw.parse::<i64>().map(PathId).map_err(|_| Problem::field("id", format!("{raw:?} is not an id (a whole number)")))
    }
}

/// Path segments as the named fields of `T`, each percent-decoded; one that is not
/// text once decoded (or not a `T` field's type) is a `400` naming it.
pub(crate) struct Segments<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Segments<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Segments<T>, Problem> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Segments(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => "path".to_string(),
                };
                Err(Problem::field(field, e.body_text()))
            }
            Err(other) => Err(Problem::new(other.status(), "path not understood", other.body_text())),
        }
    }
}

/// A JSON body, read so that a bad field is named: `to: invalid type: integer, expected a string`.
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Body<T>, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad request", e.body_text()))?;
        if bytes.is_empty() {
            // No body: the same as `{}` (every field of an action's body is optional or named missing below).
            let mut deserializer = serde_json::Deserializer::from_str("{}");
            return serde_path_to_error::deserialize(&mut deserializer).map(Body).map_err(body_problem);
        }
        if !is_json {
            return Err(Problem {
                errors: vec![FieldError { field: "Content-Type".into(), message: "must be application/json".into() }],
                ..Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type", "send the body as application/json")
            });
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut deserializer).map(Body).map_err(body_problem)
    }
}

fn body_problem(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    // serde names a missing or unknown field in its message, at its parent's path.
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p).and_then(|rest| rest.split('`').next()).map(str::to_string));
    let field = match (named, path.as_str()) {
        (Some(name), ".") => name,
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, ".") => "body".to_string(),
        (None, path) => path.to_string(),
    };
    Problem::field(field, message)
}

/// A page size from `limit`: 1 to 500, 100 by default.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(n) => Err(Problem::field("limit", format!("{n} is out of range: 1 to 500"))),
    }
}
