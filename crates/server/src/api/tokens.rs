//! API tokens: made here (256 random bits, `slt_` + base64url), kept as their SHA-256
//! only, shown once. `/api/v1/tokens` lists, creates and revokes them (admin);
//! `shipledger tokens create|list|revoke` does the same from a terminal.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shipledger_store::{ApiTokenRecord, NewApiToken, TokenRole, TokenScope};
use utoipa::ToSchema;

use super::{ApiResult, ApiState, Body, Caller, PathId, Problem};

/// A new token's secret (shown once), its hash (stored) and its prefix (listed).
pub struct IssuedToken {
    pub secret: String,
    pub hash: String,
    pub prefix: String,
}

/// A fresh token: `slt_` and 43 base64url characters (256 bits from the OS).
pub fn issue() -> IssuedToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("slt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    IssuedToken { hash: hash(&secret), prefix: secret[..10].to_string(), secret }
}

/// What the store keeps of a token: its SHA-256, hex.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Check a token's name, role and connections as given by a person; the token to
/// record with its secret. `known` are the configured connection names.
pub fn prepare(name: &str, role: &str, connections: &[String], known: &[String]) -> Result<(NewApiToken, String), Problem> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Problem::field("name", "give the token a name of 1 to 100 characters (who or what holds it)"));
    }
    let role = TokenRole::parse(role).ok_or_else(|| Problem::field("role", format!("{role:?}: use viewer, operator or admin")))?;
    let scope = if connections.iter().any(|c| c == "*") {
        TokenScope::All
    } else if connections.is_empty() {
        return Err(Problem::field("connections", "name the connections it may see, or \"*\" for every one"));
    } else {
        for c in connections {
            if !known.contains(c) {
                return Err(Problem::field("connections", format!("{c:?} is not a configured connection (known: {})", known.join(", "))));
            }
        }
        TokenScope::Only(connections.iter().cloned().collect::<BTreeSet<_>>())
    };
    let issued = issue();
    Ok((NewApiToken { name: name.into(), role, scope, hash: issued.hash, prefix: issued.prefix }, issued.secret))
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// The connections it may see; `["*"]`: every one.
    pub connections: Vec<String>,
    /// Its first characters, to tell it apart.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl From<&ApiTokenRecord> for TokenView {
    fn from(t: &ApiTokenRecord) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name.clone(),
            role: t.role.as_str().into(),
            connections: match &t.scope {
                TokenScope::All => vec!["*".into()],
                TokenScope::Only(names) => names.iter().cloned().collect(),
            },
            prefix: t.prefix.clone(),
            created_at: t.created_at.to_string(),
            revoked_at: t.revoked_at.map(|t| t.to_string()),
            last_used_at: t.last_used_at.map(|t| t.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    /// Unique among live tokens.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Connection names, or `["*"]` for every one.
    pub connections: Vec<String>,
}

/// A token just made: its secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    /// Send as `Authorization: Bearer SECRET`; it cannot be shown again.
    pub secret: String,
}

#[utoipa::path(
    get, path = "/api/v1/tokens", tag = "tokens",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every token, revoked ones too", body = Vec<TokenView>),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_tokens(State(state): State<ApiState>, caller: Caller) -> ApiResult<Vec<TokenView>> {
    caller.require(TokenRole::Admin)?;
    Ok(Json(state.store.list_api_tokens().await?.iter().map(TokenView::from).collect()))
}

#[utoipa::path(
    post, path = "/api/v1/tokens", tag = "tokens",
    request_body(content = NewTokenBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token, with its secret shown once", body = CreatedToken),
        (status = 400, description = "A bad field, named", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A live token already has this name", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "A body that is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_token(State(state): State<ApiState>, caller: Caller, Body(body): Body<NewTokenBody>) -> ApiResult<CreatedToken> {
    caller.require(TokenRole::Admin)?;
    let known: Vec<String> = state.connections.iter().map(|c| c.name.clone()).collect();
    let (new, secret) = prepare(&body.name, &body.role, &body.connections, &known)?;
    // An admin limited to some connections cannot make a token that sees more.
    let within = match (&caller.token.scope, &new.scope) {
        (TokenScope::All, _) => true,
        (TokenScope::Only(_), TokenScope::All) => false,
        (TokenScope::Only(mine), TokenScope::Only(theirs)) => theirs.is_subset(mine),
    };
    if !within {
        return Err(Problem::forbidden(format!("token {:?} may not grant connections it cannot see itself", caller.token.name)));
    }
    let record = state.store.create_api_token(new, state.clock.now()).await?;
    tracing::info!(token = %record.name, role = %record.role, by = %caller.token.name, "API token created");
    Ok(Json(CreatedToken { token: TokenView::from(&record), secret }))
}

#[utoipa::path(
    delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path, description = "The token's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = TokenView),
        (status = 400, description = "A bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or unknown token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No live token with this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; try again", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn revoke_token(State(state): State<ApiState>, caller: Caller, PathId(id): PathId) -> ApiResult<TokenView> {
    caller.require(TokenRole::Admin)?;
    let record = state.store.revoke_api_token(id, state.clock.now()).await?;
    tracing::info!(token = %record.name, by = %caller.token.name, "API token revoked");
    Ok(Json(TokenView::from(&record)))
}
