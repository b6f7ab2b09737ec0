//! The webhook receivers: ShipStation's deliveries become durable inbox jobs.
//!
//! A webhook is a hint, never the truth (DESIGN §1, opinion 7). A receiver checks
//! who sent it, stores it as an outbox job in one [`Change`] and only then answers
//! 200, so a delivery we acknowledged cannot be lost; the engine does the fetching
//! and deciding later. Nothing here calls ShipStation.
//!
//! Who sent it is checked before the body is read: a delivery for an unknown
//! connection, with a wrong token or without signature headers is answered without
//! reading its body, and no body is read past [`MAX_WEBHOOK_BODY`] (1 MiB; 413).
//!
//! - **v1** (`POST /webhooks/shipstation/{connection}/{token}`): v1 deliveries are
//!   unsigned `{resource_url, resource_type}` pointers, so the secret path token is
//!   the only proof of origin. It is compared in constant time; an unknown
//!   connection, a connection without a token, or a wrong token all answer 404. A
//!   `resource_url` longer than [`MAX_RESOURCE_URL_LEN`] characters answers 400 and
//!   nothing is stored. The `resource_url` must point at the configured ShipStation
//!   API ([`resource_url_mismatch`]): anything else is refused, never fetched and
//!   never sent credentials, and raised as a `webhook_foreign_host` exception that
//!   names the reason and keeps the offending URLs
//!   ([`shipledger_engine::flows::ingest_v1_webhook::foreign_webhook`], shared with the
//!   engine, which raises the same exception when the fetch is redirected off the
//!   API). Accepted deliveries become an `ingest_v1_webhook` job keyed by the body's
//!   SHA-256, so a repeated delivery plans nothing new.
//! - **v2** (`POST /webhooks/shipstation-v2/{connection}`): `track` deliveries carry
//!   an RSA-SHA256 signature over the timestamp and the raw body, checked against the
//!   connection's published keys with a 5-minute window. Missing headers answer 404
//!   (ShipStation's advice); a bad signature or a stale timestamp answers 401 or 400
//!   and opens (or refreshes) a `webhook_signature_invalid` exception. Verified track
//!   deliveries become an `ingest_v2_track` job keyed by the body's SHA-256. "Now"
//!   for the window is the server's injected clock (the process's one
//!   [`Clock`](shipledger_core::clock::Clock)), so a test can move it. The keys
//!   are fetched at startup ([`load_webhook_keys`]), following no redirect off the
//!   origin of `v2_webhook_keys_url`.

use std::fmt;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody as _};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_LENGTH, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shipledger_core::exception::ExceptionKind;
use shipledger_engine::flows::ingest_v1_webhook::{ForeignWebhook, foreign_webhook};
use shipledger_shipstation::{MAX_RESOURCE_URL_LEN, redirect};
use shipledger_shipstation::v2::signature::{DEFAULT_WINDOW, KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use shipledger_shipstation::{VerifyError, WebhookKeys};
use shipledger_store::{Change, EventKind, IngestV1Webhook, IngestV2Track, NewEvent, NewJob, RecordType};
use subtle::ConstantTimeEq;
use url::Url;

use crate::AppState;
use crate::intake::NotStored;
use crate::metrics::{self, Outcome, Source};

pub use shipledger_shipstation::with_shipment_items;

/// What the receivers of one connection need to know.
#[derive(Clone)]
pub struct ConnectionHooks {
    /// The connection's name, as in the URL.
    pub name: String,
    /// The v1 path token; v1 webhooks answer 404 when `None`.
    pub token: Option<String>,
    /// The configured ShipStation v1 base; `resource_url`s must point at it.
    pub shipstation_base: Url,
    /// The keys v2 webhooks are signed with; v2 webhooks answer 404 when `None`.
    pub v2_keys: Option<WebhookKeys>,
}

impl fmt::Debug for ConnectionHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionHooks")
            .field("name", &self.name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("shipstation_base", &self.shipstation_base.as_str())
            .field("v2_keys", &self.v2_keys.as_ref().map(|_| "<loaded>"))
            .finish()
    }
}

/// The receivers of every configured connection: each one's webhook token, its
/// ShipStation base, and its v2 signing keys fetched from `v2_webhook_keys_url`
/// (when set). A key set that cannot be fetched is an error naming the connection
/// and the URL.
pub async fn hooks_from_config(config: &shipledger_engine::config::Config) -> Result<Vec<ConnectionHooks>, String> {
    let mut hooks = Vec::with_capacity(config.connections.len());
    for c in &config.connections {
        let v2_keys = match &c.shipstation.v2_webhook_keys_url {
            Some(url) => Some(
                load_webhook_keys(url)
                    .await
                    .map_err(|e| format!("connection {:?}: cannot load the v2 webhook keys from {url}: {e}", c.name))?,
            ),
            None => None,
        };
        let token = c.shipstation.webhook_token.as_ref().map(|s| s.expose().to_string()).filter(|t| !t.is_empty());
        hooks.push(ConnectionHooks {
            name: c.name.clone(),
            token,
            shipstation_base: c.shipstation.base_url.clone(),
            v2_keys,
        });
    }
    Ok(hooks)
}

/// Fetch a JWK set (ShipStation's `https://api.shipengine.com/jwks`, the sandbox's
/// `/jwks`) and read its RSA keys; a set without any is an error. A redirect is
/// followed only within `url`'s origin; one elsewhere is not sent and is an error.
pub async fn load_webhook_keys(url: &Url) -> Result<WebhookKeys, String> {
    let origin = url.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(redirect::policy(move |target, _| redirect::same_origin(target, &origin)))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = http.get(url.clone()).send().await.map_err(|e| format!("the request failed: {e}"))?;
    if let Some((_, to)) = redirect::refused(&response) {
        return Err(format!(
            "it redirected to {to}, off the origin of the configured URL; the redirect was not followed. \
             Set v2_webhook_keys_url to where the keys really are"
        ));
    }
    let status = response.status();
    if !status.is_success() {
        return Err(format!("it answered HTTP {status}"));
    }
    let body = response.bytes().await.map_err(|e| format!("reading the answer failed: {e}"))?;
    let keys = WebhookKeys::from_jwks(&body).map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Err("the JWK set holds no RSA key".into());
    }
    Ok(keys)
}

pub use shipledger_shipstation::{resource_url_allowed, resource_url_mismatch};

/// The largest webhook body read, in bytes (1 MiB); ShipStation's are a few hundred.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

/// The receivers' routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/shipstation/{connection}/{token}", post(v1_webhook))
        .route("/webhooks/shipstation-v2/{connection}", post(v2_webhook))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time token check: both sides are hashed first, so neither the content
/// nor the length of the expected token leaks through timing.
fn token_matches(expected: &str, given: &str) -> bool {
    let expected = Sha256::digest(expected.as_bytes());
    let given = Sha256::digest(given.as_bytes());
    expected.ct_eq(&given).into()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (status, message).into_response()
}

/// The body, once the sender is known to be who it says: refused with 413 when its
/// declared length or what arrives exceeds [`MAX_WEBHOOK_BODY`], without reading on.
async fn read_body(connection: &str, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let too_large = || {
        tracing::warn!(connection, limit = MAX_WEBHOOK_BODY, "webhook body too large; refused");
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the webhook body is larger than {MAX_WEBHOOK_BODY} bytes (1 MiB); ShipStation's are a few hundred bytes. Refused, nothing stored"
            ),
        )
    };
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_WEBHOOK_BODY as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut buffer = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| text(StatusCode::BAD_REQUEST, format!("the webhook body could not be read: {e}")))?;
        let Ok(chunk) = frame.into_data() else { continue };
        if buffer.len() + chunk.len() > MAX_WEBHOOK_BODY {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

#[derive(Deserialize)]
struct V1Payload {
    resource_url: String,
    resource_type: String,
}

async fn v1_webhook(
    State(state): State<AppState>,
    Path((connection, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(hooks) = state.hooks.iter().find(|h| h.name == connection) else {
        return not_found();
    };
    let count = |outcome| metrics::webhook(&hooks.name, Source::V1, outcome);
    let Some(expected) = hooks.token.as_deref() else {
        count(Outcome::NotConfigured);
        return not_found();
    };
    if !token_matches(expected, &token) {
        count(Outcome::RefusedToken);
        return not_found();
    }
    let body = match read_body(&hooks.name, &headers, body).await {
        Ok(body) => body,
        Err(refused) => {
            count(refusal(&refused));
            return refused;
        }
    };
    let payload: V1Payload = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            count(Outcome::BadRequest);
            return text(
                StatusCode::BAD_REQUEST,
                format!("the body is not a ShipStation v1 webhook ({{\"resource_url\", \"resource_type\"}}): {e}"),
            );
        }
    };
    let too_long = |len: usize, how: &str| {
        count(Outcome::BadRequest);
        tracing::warn!(connection = %hooks.name, len, "v1 webhook resource_url too long; refused");
        text(
            StatusCode::BAD_REQUEST,
            format!(
                "resource_url is {len} characters long{how}; at most {MAX_RESOURCE_URL_LEN} are accepted (ShipStation's are far shorter). Refused, nothing stored"
            ),
        )
    };
    let raw = payload.resource_url.trim();
    if raw.chars().count() > MAX_RESOURCE_URL_LEN {
        return too_long(raw.chars().count(), "");
    }
    let Ok(resource_url) = Url::parse(raw) else {
        count(Outcome::BadRequest);
        return text(StatusCode::BAD_REQUEST, format!("resource_url {:?} is not a URL", payload.resource_url));
    };
    let now = state.clock.now();
    let base = &hooks.shipstation_base;

    if let Some(reason) = resource_url_mismatch(&resource_url, base) {
        tracing::warn!(
            connection = %hooks.name,
            host = %resource_url.host_str().unwrap_or("(no host)"),
            reason = reason.code(),
            resource_type = %payload.resource_type,
            "v1 webhook names a foreign host; refused, nothing fetched"
        );
        let refused = ForeignWebhook {
            resource_url: raw,
            resource_type: &payload.resource_type,
            reason,
            redirect_to: None,
            base,
        };
        match foreign_webhook(state.store.as_ref(), &hooks.name, now, &refused).await {
            Ok(change) => {
                if let Err(e) = state.store.commit(change).await {
                    tracing::error!(connection = %hooks.name, error = %e, "could not record the foreign-host webhook exception");
                }
            }
            Err(e) => tracing::error!(connection = %hooks.name, error = %e, "could not read the foreign-host webhook exception"),
        }
        count(Outcome::ForeignHost);
        return text(
            StatusCode::BAD_REQUEST,
            format!("resource_url does not point at the configured ShipStation API ({}); refused", reason.code()),
        );
    }

    let resource_url = with_shipment_items(&resource_url);
    if resource_url.as_str().chars().count() > MAX_RESOURCE_URL_LEN {
        // With includeShipmentItems=true it would be too long for the engine to fetch.
        return too_long(resource_url.as_str().chars().count(), " with includeShipmentItems=true");
    }
    let key = format!("v1hook:{}", sha256_hex(&body));
    let mut change = Change::new(&hooks.name, now);
    change.jobs.push(NewJob::new(
        IngestV1Webhook {
            resource_url: resource_url.as_str().to_string(),
            resource_type: payload.resource_type.clone(),
            received_at: Some(now),
        },
        key.clone(),
        now,
    ));
    change.events.push(NewEvent::new(
        RecordType::Webhook,
        payload.resource_type.clone(),
        EventKind::Received,
        json!({"resource_url": resource_url.as_str(), "idempotency_key": key}),
    ));
    commit_inbox(&state, &hooks.name, change, &key, Source::V1, Outcome::Accepted).await
}

/// What a refusal of [`read_body`] was, for the intake counter.
fn refusal(response: &Response) -> Outcome {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE { Outcome::TooLarge } else { Outcome::BadRequest }
}

/// Store an inbox change with the next batch ([`crate::intake`]) and answer: 200
/// once its batch committed (a duplicate delivery included), 503 when the batch
/// failed so that ShipStation delivers again, 503 with `Retry-After` at once when the
/// committer's queue is full. Counted as `stored` (accepted or ignored), or as a
/// duplicate, a store failure or busy.
async fn commit_inbox(state: &AppState, connection: &str, change: Change, key: &str, source: Source, stored: Outcome) -> Response {
    match state.inbox.store(change).await {
        Ok(outcome) => {
            if outcome.jobs_skipped.iter().any(|k| k == key) {
                tracing::debug!(connection, key, "webhook delivered again; already in the inbox");
                metrics::webhook(connection, source, Outcome::Duplicate);
            } else {
                tracing::info!(connection, key, "webhook stored");
                metrics::webhook(connection, source, stored);
            }
            text(StatusCode::OK, "stored")
        }
        Err(NotStored::Busy) => {
            metrics::webhook(connection, source, Outcome::Busy);
            tracing::warn!(connection, queue = crate::intake::QUEUE, "webhook intake queue full; answering 503 with Retry-After");
            let mut busy = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many webhooks are waiting to be stored; nothing of this one is stored, send it again shortly",
            );
            busy.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            busy
        }
        Err(NotStored::Failed(e)) => {
            metrics::webhook(connection, source, Outcome::StoreFailed);
            tracing::error!(connection, error = %e, "could not store a webhook; answering 503 so it is sent again");
            text(StatusCode::SERVICE_UNAVAILABLE, "the webhook could not be stored; send it again later")
        }
    }
}

/// What a busy receiver asks the sender to wait, in seconds.
const RETRY_AFTER_SECS: &str = "1";

async fn v2_webhook(
    State(state): State<AppState>,
    Path(connection): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(hooks) = state.hooks.iter().find(|h| h.name == connection) else {
        return not_found();
    };
    let count = |outcome| metrics::webhook(&hooks.name, Source::V2, outcome);
    let Some(keys) = &hooks.v2_keys else {
        count(Outcome::NotConfigured);
        return not_found();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    let (key_id, signature, timestamp) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER), header(TIMESTAMP_HEADER));
    if key_id.is_empty() || signature.is_empty() || timestamp.is_empty() {
        count(Outcome::Unsigned);
        return not_found();
    }
    let body = match read_body(&hooks.name, &headers, body).await {
        Ok(body) => body,
        Err(refused) => {
            count(refusal(&refused));
            return refused;
        }
    };
    let now = state.clock.now();
    if let Err(e) = keys.verify(key_id, signature, timestamp, &body, now, DEFAULT_WINDOW) {
        count(Outcome::RefusedSignature);
        return refuse_signature(&state, hooks, e, key_id, timestamp, now).await;
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            count(Outcome::BadRequest);
            return text(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}"));
        }
    };
    let resource_type = payload.get("resource_type").and_then(Value::as_str).unwrap_or("").to_string();
    let key = format!("v2hook:{}", sha256_hex(&body));
    let mut change = Change::new(&hooks.name, now);
    let ingested = matches!(resource_type.as_str(), "API_TRACK" | "TRACK_EVENT_V2");
    if ingested {
        let resource_url = payload.get("resource_url").cloned();
        change.jobs.push(NewJob::new(IngestV2Track { body: payload }, key.clone(), now));
        change.events.push(NewEvent::new(
            RecordType::Webhook,
            resource_type,
            EventKind::Received,
            json!({"resource_url": resource_url, "idempotency_key": key}),
        ));
    } else {
        // Signed by ShipStation but not an event shipledger subscribes to: noted and
        // acknowledged so it is not sent again.
        tracing::info!(connection = %hooks.name, resource_type = %resource_type, "v2 webhook of a kind shipledger does not ingest");
        change.events.push(NewEvent::new(
            RecordType::Webhook,
            if resource_type.is_empty() { "v2".into() } else { resource_type },
            EventKind::Ignored,
            json!({"message": "a signed v2 webhook shipledger does not ingest (only track events are)", "idempotency_key": key}),
        ));
    }
    let stored = if ingested { Outcome::Accepted } else { Outcome::Ignored };
    commit_inbox(&state, &hooks.name, change, &key, Source::V2, stored).await
}

async fn refuse_signature(
    state: &AppState,
    hooks: &ConnectionHooks,
    error: VerifyError,
    key_id: &str,
    timestamp: &str,
    now: Timestamp,
) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    tracing::warn!(connection = %hooks.name, error = %error, "v2 webhook refused");
    let advice = match error {
        VerifyError::UnknownKeyId(_) => {
            " If ShipStation rotated its keys, restart shipledger to load them again from v2_webhook_keys_url."
        }
        VerifyError::Stale { .. } => " Check this server's clock (NTP) if genuine deliveries keep arriving stale.",
        _ => " Someone may be sending forged webhooks to this endpoint.",
    };
    let mut change = Change::new(&hooks.name, now);
    change.raise(
        ExceptionKind::WebhookSignatureInvalid,
        "webhook",
        "v2",
        json!({
            "message": format!("a v2 webhook was refused and nothing was stored: {error}.{advice}"),
            "reason": error.to_string(),
            "key_id": key_id,
            "timestamp": timestamp,
            "answered": status.as_u16(),
        }),
    );
    if let Err(e) = state.store.commit(change).await {
        tracing::error!(connection = %hooks.name, error = %e, "could not record the v2 signature exception");
    }
    text(status, "the webhook signature was not accepted")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(resource: &str, base: &str) -> bool {
        resource_url_allowed(&resource.parse().unwrap(), &base.parse().unwrap())
    }

    const BASE: &str = "https://ssapi.shipstation.com";

    #[test]
    fn the_configured_host_and_its_numbered_shards_are_allowed() {
        assert!(allowed("https://ssapi.shipstation.com/shipments?batchId=1", BASE));
        assert!(allowed("https://ssapi7.shipstation.com/shipments?batchId=1", BASE));
        assert!(allowed("https://ssapi11.shipstation.com:443/orders?importBatch=x", BASE));
        assert!(allowed("https://SSAPI7.ShipStation.com/orders", BASE), "hosts are case-insensitive");
    }

    #[test]
    fn look_alike_hosts_are_refused() {
        for evil in [
            "https://evil.com/shipments",
            "https://ssapi.shipstation.com.evil.com/shipments",
            "https://ssapix.shipstation.com/shipments",
            "https://ssapi7x.shipstation.com/shipments",
            "https://x.ssapi7.shipstation.com/shipments",
            "https://ssapi7.evil.shipstation.com/shipments",
            "https://evilshipstation.com/shipments",
            "https://ssapi7shipstation.com/shipments",
            "https://api.shipstation.com/shipments",
            "https://ssapi7.shipstation.com.evil.com/shipments",
            "https://ssapi.shipstation.com@evil.com/shipments",
            "https://user:pw@ssapi.shipstation.com/shipments",
            "https://1.2.3.4/shipments",
        ] {
            assert!(!allowed(evil, BASE), "{evil} must be refused");
        }
    }

    #[test]
    fn another_port_or_scheme_is_refused() {
        assert!(!allowed("https://ssapi.shipstation.com:8443/shipments", BASE));
        assert!(!allowed("http://ssapi.shipstation.com/shipments", BASE));
        assert!(!allowed("http://ssapi.shipstation.com:443/shipments", BASE));
        assert!(!allowed("ftp://ssapi.shipstation.com/shipments", BASE));
    }

    #[test]
    fn shards_are_only_allowed_when_the_base_is_an_ssapi_host() {
        let sandbox = "http://127.0.0.1:8091";
        assert!(allowed("http://127.0.0.1:8091/shipments?batchId=3", sandbox));
        assert!(!allowed("http://127.0.0.2:8091/shipments", sandbox));
        assert!(!allowed("http://127.0.0.1:8092/shipments", sandbox));
        assert!(!allowed("http://localhost:8091/shipments", sandbox));
        assert!(allowed("https://api.example.com/x", "https://api.example.com"));
        assert!(!allowed("https://api7.example.com/x", "https://api.example.com"));
        assert!(allowed("https://[::1]:9000/x", "https://[::1]:9000"));
    }

    #[test]
    fn the_token_check_needs_the_exact_token() {
        assert!(token_matches("s3cret-token", "s3cret-token"));
        assert!(!token_matches("s3cret-token", "s3cret-tokeN"));
        assert!(!token_matches("s3cret-token", "s3cret"));
        assert!(!token_matches("s3cret-token", ""));
    }

    #[test]
    fn shipment_resource_urls_ask_for_their_items() {
        let url: Url = "https://ssapi.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=False"
            .parse()
            .unwrap();
        assert_eq!(
            with_shipment_items(&url).as_str(),
            "https://ssapi.shipstation.com/shipments?storeID=12&batchId=99&includeShipmentItems=true"
        );
    }

    #[test]
    fn hooks_never_print_their_token() {
        let hooks = ConnectionHooks {
            name: "acme".into(),
            token: Some("very-secret".into()),
            shipstation_base: BASE.parse().unwrap(),
            v2_keys: None,
        };
        assert!(!format!("{hooks:?}").contains("very-secret"));
    }
}
