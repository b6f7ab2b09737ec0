//! The client's errors. Each names the request that failed (`GET /orders/123`) and
//! says what to do; [`is_retriable`](crate::retry::is_retriable) decides which are
//! worth another attempt.

use std::fmt;
use std::time::Duration;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401 or 403.
    #[error(
        "ShipStation refused the credentials for {request} (HTTP {status}: {message}); check this connection's API key and secret (v1 and v2 keys differ), and that the plan includes API access"
    )]
    Unauthorized {
        request: String,
        status: u16,
        message: String,
    },

    /// 404: the record does not exist (or was merged away), or the path is wrong.
    #[error(
        "{request} found nothing (HTTP 404 for {path}); the record does not exist or was merged into another order (look for it in the survivor's mergedIds)"
    )]
    NotFound { request: String, path: String },

    /// 429 after every retry, or a rate window that would take longer than
    /// `max_rate_wait` to reopen.
    #[error(
        "{request} was not sent because ShipStation's rate limit for this API key is spent{}; retry later, or lower the request rate of every process sharing the key",
        match retry_after { Some(d) => format!(" for another {:.1}s", d.as_secs_f64()), None => String::new() }
    )]
    RateLimited {
        request: String,
        retry_after: Option<Duration>,
    },

    /// Any other non-success status. `message` comes from the body's `Message`,
    /// `message`, `ExceptionMessage`, `ModelState` or v2 `errors[].message`.
    #[error("{request} failed with HTTP {status}: {message}")]
    Api {
        request: String,
        status: u16,
        message: String,
    },

    /// A success status whose body is not what ShipStation documents.
    #[error(
        "could not read ShipStation's answer to {request} ({source}); the body starts with: {snippet}; this is a client bug or an API change, report it with this message"
    )]
    Decode {
        request: String,
        path: String,
        snippet: String,
        source: serde_json::Error,
    },

    /// No HTTP answer at all: timeout, connection refused or dropped.
    #[error(
        "{request} did not complete ({kind}): {source}; check the network and ShipStation's status page"
    )]
    Transport {
        request: String,
        kind: TransportKind,
        source: reqwest::Error,
    },

    /// A 3xx answer pointed off the origins this request may reach (the configured
    /// ShipStation origin; for a webhook's `resource_url`, its `ssapiN` shards too).
    /// The redirect was not followed, so nothing, credentials included, went to `to`.
    /// Never retried.
    #[error(
        "{request} was redirected by {} to {to}, off the ShipStation origin it may reach; the redirect was not followed and no credentials were sent. If ShipStation moved, set base_url to its new address; otherwise something between shipledger and ShipStation is redirecting its requests",
        without_query(from)
    )]
    RedirectRefused {
        request: String,
        /// The URL that answered with the redirect.
        from: url::Url,
        /// Its `Location`, resolved against `from`.
        to: String,
    },

    /// Refused before sending: the request breaks a documented ShipStation rule.
    #[error("{0}")]
    InvalidRequest(String),

    /// The client could not be built from its configuration.
    #[error("invalid ShipStation client configuration: {0}")]
    Config(String),
}

/// What kind of transport failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The per-attempt timeout elapsed.
    Timeout,
    /// No connection could be made: the request was never sent.
    Connect,
    /// The connection broke while sending or reading.
    Interrupted,
    /// Anything else (a redirect loop, a request that could not be built).
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Timeout => "timed out",
            TransportKind::Connect => "could not connect",
            TransportKind::Interrupted => "connection interrupted",
            TransportKind::Other => "transport error",
        })
    }
}

impl TransportKind {
    pub(crate) fn of(err: &reqwest::Error) -> TransportKind {
        if err.is_timeout() {
            TransportKind::Timeout
        } else if err.is_connect() {
            TransportKind::Connect
        } else if err.is_request() || err.is_body() || err.is_decode() {
            TransportKind::Interrupted
        } else {
            TransportKind::Other
        }
    }
}

/// `url` without its query (which may hold customer names), for messages.
fn without_query(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

impl Error {
    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { status, .. } | Error::Api { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// How long ShipStation asked us to wait, for [`Error::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl shipledger_core::retry::Classify for Error {
    /// Spent budget: after the named wait. Network failures (timeouts, connects, cut
    /// transfers), 408, 425 and 5xx: backoff. Credentials, redirects off the origin, configuration and answers
    /// we cannot read: an admin must act. Other refusals (4xx, a record not found, a
    /// request we would not send): ops must fix the data.
    fn classify(&self) -> shipledger_core::retry::Verdict {
        use shipledger_core::exception::Owner;
        use shipledger_core::retry::Verdict;
        match self {
            Error::RateLimited { retry_after: Some(after), .. } => Verdict::RetryAfter { after: *after },
            Error::RateLimited { retry_after: None, .. } => Verdict::Backoff,
            // Timeouts, refused connections, cut transfers: the network, transient.
            // Anything else reqwest reports (a redirect loop, a request it could not
            // build) repeats the same way: an admin's.
            Error::Transport { kind: TransportKind::Other, .. } => Verdict::GiveUp { owner: Owner::Admin },
            Error::Transport { .. } => Verdict::Backoff,
            Error::Api { status, .. } if *status >= 500 || *status == 408 || *status == 425 => Verdict::Backoff,
            Error::Unauthorized { .. } | Error::RedirectRefused { .. } | Error::Config(_) | Error::Decode { .. } => {
                Verdict::GiveUp { owner: Owner::Admin }
            }
            Error::Api { .. } | Error::NotFound { .. } | Error::InvalidRequest(_) => Verdict::GiveUp { owner: Owner::Ops },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The human message in a ShipStation error body, whatever its shape:
///
/// - v1 ASP.NET: `{"Message": "...", "ExceptionMessage": "...", "ModelState": {"field": ["..."]}}`
/// - v1 newer docs: `{"message": "..."}`
/// - v2: `{"request_id": "...", "errors": [{"message": "...", "error_code": "..."}]}`
///
/// An empty body gives `"empty response body"`; a body that is not JSON gives its
/// first 300 characters.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "empty response body".to_owned();
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return snippet(trimmed.as_bytes(), 300);
    };
    let mut parts: Vec<String> = Vec::new();
    let str_field = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(m) = str_field("Message").or_else(|| str_field("message")) {
        parts.push(m.to_owned());
    }
    if let Some(m) = str_field("ExceptionMessage") {
        parts.push(m.to_owned());
    }
    if let Some(state) = value.get("ModelState").and_then(|v| v.as_object()) {
        for (field, problems) in state {
            let problems: Vec<&str> = match problems {
                serde_json::Value::Array(items) => {
                    items.iter().filter_map(|p| p.as_str()).collect()
                }
                serde_json::Value::String(s) => vec![s.as_str()],
                _ => Vec::new(),
            };
            if !problems.is_empty() {
                parts.push(format!("{field}: {}", problems.join("; ")));
            }
        }
    }
    if let Some(errors) = value.get("errors").and_then(|v| v.as_array()) {
        for e in errors {
            let message = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            let code = e.get("error_code").and_then(|m| m.as_str());
            match code {
                Some(code) if !code.is_empty() => parts.push(format!("{message} ({code})")),
                _ if !message.is_empty() => parts.push(message.to_owned()),
                _ => {}
            }
        }
    }
    if parts.is_empty() {
        snippet(trimmed.as_bytes(), 300)
    } else {
        parts.join(" — ")
    }
}

/// The first `max` characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "<empty>".to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_error_shape_yields_its_message() {
        assert_eq!(
            error_message(br#"{"Message":"The request is invalid."}"#),
            "The request is invalid."
        );
        assert_eq!(
            error_message(br#"{"message":"Too Many Requests"}"#),
            "Too Many Requests"
        );
        assert_eq!(
            error_message(br#"{"Message":"An error has occurred.","ExceptionMessage":"Object reference not set.","StackTrace":null}"#),
            "An error has occurred. — Object reference not set."
        );
        assert_eq!(
            error_message(br#"{"Message":"The request is invalid.","ModelState":{"apiOrder":["Could not deserialize"]}}"#),
            "The request is invalid. — apiOrder: Could not deserialize"
        );
        assert_eq!(
            error_message(
                br#"{"request_id":"x","errors":[{"error_source":"shipstation","error_type":"validation","error_code":"invalid_address","message":"Bad address"}]}"#
            ),
            "Bad address (invalid_address)"
        );
    }

    #[test]
    fn empty_and_non_json_bodies_are_tolerated() {
        assert_eq!(error_message(b""), "empty response body");
        assert_eq!(error_message(b"  \n"), "empty response body");
        assert_eq!(
            error_message(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
    }
}
