//! The gate every request passes: authentication, the rate limits, injected faults
//! and the request statistics. v1 paths need Basic auth and spend the fixed window of
//! their key pair (`X-Rate-Limit-Limit/Remaining/Reset` on every answer, 401s
//! included, which spend nothing; 429 when spent); `/v2/` paths need `API-Key` and get 200 a minute with `Retry-After`. The
//! control API under `/_sandbox/` and the public key at `/jwks` pass freely.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use subtle_compare::eq;

use crate::Shared;
use crate::error::{V2Error, server_error, too_many_requests_v1, unauthorized_v1};
use crate::state::Window;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// Where a fault decision leads.
enum Fault {
    None,
    TooMany,
    Fail,
    FailAfter,
    Slow(u64),
}

pub async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if path.starts_with("/_sandbox") || path == "/jwks" {
        return next.run(request).await;
    }
    let api = if path == "/v2" || path.starts_with("/v2/") { Api::V2 } else { Api::V1 };
    let key = format!("{} {}", request.method(), normalize(&path));
    shared.with_world(|w| *w.stats.requests.entry(key).or_default() += 1);

    let credential = match api {
        Api::V1 => v1_credential(&shared, request.headers()),
        Api::V2 => v2_credential(&shared, request.headers()),
    };
    let now = shared.clock.now();
    let (limit, window_len) = match api {
        Api::V1 => (shared.config.rate_limit, shared.config.rate_window),
        Api::V2 => (shared.config.v2_rate_limit, std::time::Duration::from_secs(60)),
    };
    let window_len = SignedDuration::try_from(window_len).unwrap_or(SignedDuration::from_secs(60));
    let Some(credential) = credential else {
        shared.with_world(|w| w.stats.unauthorized += 1);
        return match api {
            Api::V1 => {
                // Every v1 answer carries the rate headers. A refused request spends
                // nothing: they show the window of the key it named, as it stands.
                let named = v1_key_named(request.headers()).unwrap_or_default();
                let window = shared.read_world(|w| w.windows.get(&named).cloned()).unwrap_or_default();
                let (remaining, reset_secs) = peek(&window, now, window_len, limit);
                let mut response = unauthorized_v1();
                rate_headers(response.headers_mut(), limit, remaining, reset_secs);
                response
            }
            Api::V2 => V2Error::unauthorized().into_response(),
        };
    };
    let admitted = shared.with_world(|w| {
        let windows = match api {
            Api::V1 => &mut w.windows,
            Api::V2 => &mut w.v2_windows,
        };
        let window = windows.entry(credential).or_default();
        spend(window, now, window_len, limit)
    });
    let (allowed, remaining, reset_secs) = admitted;
    if !allowed {
        shared.with_world(|w| match api {
            Api::V1 => w.stats.rate_limited += 1,
            Api::V2 => w.stats.v2_rate_limited += 1,
        });
        return limited(api, limit, reset_secs);
    }

    let fault = decide_fault(&shared, &path, request.method());
    let mut response = match fault {
        Fault::TooMany => {
            shared.with_world(|w| {
                *w.stats.faults.entry("429".into()).or_default() += 1;
                match api {
                    Api::V1 => w.stats.rate_limited += 1,
                    Api::V2 => w.stats.v2_rate_limited += 1,
                }
            });
            return limited(api, limit, reset_secs.max(1));
        }
        Fault::Fail => {
            shared.with_world(|w| *w.stats.faults.entry("500".into()).or_default() += 1);
            fail(api)
        }
        Fault::FailAfter => {
            let _ = next.run(request).await;
            shared.with_world(|w| *w.stats.faults.entry("500_after".into()).or_default() += 1);
            fail(api)
        }
        Fault::Slow(ms) => {
            shared.with_world(|w| *w.stats.faults.entry("slow".into()).or_default() += 1);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            next.run(request).await
        }
        Fault::None => next.run(request).await,
    };
    if response.status() == axum::http::StatusCode::NOT_FOUND {
        response.headers_mut().remove("allow");
    }
    if api == Api::V1 {
        rate_headers(response.headers_mut(), limit, remaining, reset_secs);
    }
    response
}

/// Spend one request from a fixed window; `(allowed, remaining, seconds to reset)`.
fn spend(window: &mut Window, now: Timestamp, len: SignedDuration, limit: u32) -> (bool, u32, u64) {
    let expired = match window.started {
        None => true,
        Some(started) => now >= started + len,
    };
    if expired {
        window.started = Some(now);
        window.used = 0;
    }
    let started = window.started.expect("set above");
    let left = (started + len).duration_since(now);
    let reset_secs = (left.as_millis().max(0) as u64).div_ceil(1000);
    if window.used >= limit {
        return (false, 0, reset_secs);
    }
    window.used += 1;
    (true, limit - window.used, reset_secs)
}

/// A window's `(remaining, seconds to reset)` without spending from it; a window
/// not started yet (or over) is a whole fresh one.
fn peek(window: &Window, now: Timestamp, len: SignedDuration, limit: u32) -> (u32, u64) {
    match window.started {
        Some(started) if now < started + len => {
            let left = (started + len).duration_since(now);
            (limit.saturating_sub(window.used), (left.as_millis().max(0) as u64).div_ceil(1000))
        }
        _ => (limit, (len.as_millis().max(0) as u64).div_ceil(1000)),
    }
}

fn limited(api: Api, limit: u32, reset_secs: u64) -> Response {
    match api {
        Api::V1 => {
            let mut response = too_many_requests_v1();
            rate_headers(response.headers_mut(), limit, 0, reset_secs);
            response
        }
        Api::V2 => {
            let mut response = V2Error::rate_limited().into_response();
            response.headers_mut().insert("retry-after", HeaderValue::from(reset_secs.max(1)));
            response
        }
    }
}

fn fail(api: Api) -> Response {
    match api {
        Api::V1 => server_error("Simulated failure (sandbox fault injection)."),
        Api::V2 => V2Error::server().into_response(),
    }
}

fn rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_secs: u64) {
    headers.insert("x-rate-limit-limit", HeaderValue::from(limit));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    headers.insert("x-rate-limit-reset", HeaderValue::from(reset_secs));
}

fn decide_fault(shared: &Shared, path: &str, method: &Method) -> Fault {
    let faults = shared.read_world(|w| w.faults.clone());
    if !faults.applies_to(path) {
        return Fault::None;
    }
    let mut rng = shared.rng.lock().expect("rng lock");
    let mut roll = |share: f64| share > 0.0 && rng.gen_bool(share.min(1.0));
    if roll(faults.rate_429) {
        Fault::TooMany
    } else if roll(faults.rate_500) {
        Fault::Fail
    } else if *method != Method::GET && roll(faults.rate_500_after) {
        Fault::FailAfter
    } else if roll(faults.rate_slow) {
        Fault::Slow(faults.slow_ms)
    } else {
        Fault::None
    }
}

/// The `(key, secret)` a Basic `Authorization` header carries, checked or not.
fn v1_pair(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (key, secret) = decoded.split_once(':')?;
    Some((key.to_string(), secret.to_string()))
}

/// The API key a refused request named (its window is the one it reports).
fn v1_key_named(headers: &HeaderMap) -> Option<String> {
    v1_pair(headers).map(|(key, _)| key)
}

fn v1_credential(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    let (key, secret) = v1_pair(headers)?;
    (eq(&key, &shared.config.api_key) & eq(&secret, &shared.config.api_secret)).then_some(key)
}

fn v2_credential(shared: &Shared, headers: &HeaderMap) -> Option<String> {
    let key = headers.get("api-key")?.to_str().ok()?;
    eq(key, &shared.config.v2_api_key).then(|| key.to_string())
}

/// `/orders/123456` → `/orders/{id}`, `/v2/labels/se-123` → `/v2/labels/{id}`.
pub fn normalize(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let id = !seg.is_empty()
                && (seg.chars().all(|c| c.is_ascii_digit())
                    || (seg.starts_with("se-") && seg.len() > 3));
            if id { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

mod subtle_compare {
    /// Constant-time string comparison for credentials.
    pub fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_resets() {
        let mut w = Window::default();
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let len = SignedDuration::from_secs(60);
        for i in 0..40 {
            let (ok, remaining, _) = spend(&mut w, t0 + SignedDuration::from_secs(i), len, 40);
            assert!(ok);
            assert_eq!(remaining, 39 - i as u32);
        }
        let (ok, remaining, reset) = spend(&mut w, t0 + SignedDuration::from_secs(45), len, 40);
        assert!(!ok);
        assert_eq!((remaining, reset), (0, 15));
        let (ok, remaining, reset) = spend(&mut w, t0 + SignedDuration::from_secs(60), len, 40);
        assert!(ok);
        assert_eq!((remaining, reset), (39, 60));
    }

    #[test]
    fn ids_in_paths_are_folded_for_statistics() {
        assert_eq!(normalize("/orders/123"), "/orders/{id}");
        assert_eq!(normalize("/v2/labels/se-77/track"), "/v2/labels/{id}/track");
        assert_eq!(normalize("/orders/createorders"), "/orders/createorders");
    }
}
