//! Client configuration: where ShipStation is, the credentials (never printed), and
//! how patient the client is (timeouts, retries, the longest wait for a rate window).

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};
use url::Url;

/// A credential. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, and only the request builder calls it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value. Call it only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How to reach one ShipStation account through one API.
///
/// For v1 (`ssapi.shipstation.com`) `api_key` and `api_secret` are the Basic auth
/// pair; for v2 (`api.shipstation.com`, paths under `/v2`) `api_key` is the `API-Key`
/// header value and `api_secret` is unused. The two APIs have different credentials:
/// build one config for each with [`ClientConfig::v1`] and [`ClientConfig::v2`].
///
/// `Debug` redacts the credentials.
#[derive(Clone)]
pub struct ClientConfig {
    /// Root of the API: `https://ssapi.shipstation.com` for v1,
    /// `https://api.shipstation.com` for v2 (the client adds `/v2/...`), or a sandbox.
    pub base_url: Url,
    /// v1 API key, or the v2 `API-Key`.
    pub api_key: Secret,
    /// v1 API secret; `None` for v2.
    pub api_secret: Option<Secret>,
    /// Optional v1 `x-partner` header.
    pub partner_key: Option<Secret>,
    /// Per-attempt timeout (connect + send + whole body).
    pub timeout: Duration,
    /// Retries after the first attempt for retriable failures (429, 5xx, timeouts,
    /// connection errors). `0` means one attempt only.
    pub max_retries: u32,
    /// First backoff delay; doubles each retry, with jitter.
    pub backoff_base: Duration,
    /// Upper bound of one backoff delay.
    pub backoff_max: Duration,
    /// The longest the client waits for a rate window to reopen before giving up with
    /// [`Error::RateLimited`](crate::Error::RateLimited) so the caller can reschedule.
    pub max_rate_wait: Duration,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl ClientConfig {
    /// A v1 config with ShipStation's defaults: 30 s timeout, 4 retries, 0.5 s backoff
    /// base capped at 30 s, and up to 2 minutes of waiting for a rate window.
    pub fn v1(base_url: Url, api_key: impl Into<Secret>, api_secret: impl Into<Secret>) -> Self {
        ClientConfig {
            api_secret: Some(api_secret.into()),
            ..Self::v2(base_url, api_key)
        }
    }

    /// A v2 config (same defaults as [`ClientConfig::v1`]).
    pub fn v2(base_url: Url, api_key: impl Into<Secret>) -> Self {
        ClientConfig {
            base_url,
            api_key: api_key.into(),
            api_secret: None,
            partner_key: None,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_rate_wait: Duration::from_secs(120),
            user_agent: concat!("shipledger/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// The key under which this account's rate budget is kept: the API family and a
    /// SHA-256 fingerprint of the API key, so a budget store never holds the key itself.
    /// Every process using the same key gets the same budget key.
    pub fn budget_key(&self, api: &str) -> String {
        let digest = Sha256::digest(self.api_key.expose().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("shipstation-{api}:{hex}")
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key)
            .field(
                "api_secret",
                &self.api_secret.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "partner_key",
                &self.partner_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("max_rate_wait", &self.max_rate_wait)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_credential() {
        let config = ClientConfig::v1(
            "https://ssapi.shipstation.com".parse().unwrap(),
            "my-key-123",
            "my-secret-456",
        );
        let printed = format!("{config:?}");
        assert!(!printed.contains("my-key-123"), "{printed}");
        assert!(!printed.contains("my-secret-456"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn the_budget_key_fingerprints_the_api_key_without_containing_it() {
        let a = ClientConfig::v1("http://x".parse().unwrap(), "key-a", "s");
        let b = ClientConfig::v1("http://y".parse().unwrap(), "key-a", "other");
        assert_eq!(a.budget_key("v1"), b.budget_key("v1"));
        assert!(!a.budget_key("v1").contains("key-a"));
        assert_ne!(a.budget_key("v1"), a.budget_key("v2"));
    }
}
