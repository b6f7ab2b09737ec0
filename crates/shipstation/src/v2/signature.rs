//! Verifying the RSA-SHA256 signature ShipStation v2 puts on every webhook.
//!
//! Three headers come with each delivery: [`KEY_ID_HEADER`] (which key signed),
//! [`SIGNATURE_HEADER`] (base64 of the RSASSA-PKCS1-v1_5 SHA-256 signature) and
//! [`TIMESTAMP_HEADER`] (when it was sent, ISO-8601 such as
//! `2026-08-04T12:00:00.000Z`). The signed message is built by [`signed_message`]:
//!
//! ```text
//! <x-shipengine-timestamp header, verbatim> + "." + <raw request body bytes>
//! ```
//!
//! ShipStation's validation guide describes the headers, the raw body and the
//! 5-minute window, but the part we could read does not spell out the message;
//! every public verifier we found (several independent projects) signs
//! `timestamp + "." + body`, so that is our assumption. The construction lives in
//! [`signed_message`] alone, so the sandbox signs identically and a correction is a
//! one-line change. The public keys are published as a JWKS
//! (`https://api.shipengine.com/jwks`, matched by `kid`): load them with
//! [`WebhookKeys::from_jwks`], or verify against one PEM with [`verify_v2_webhook`].
//!
//! Receivers should answer 404 when the headers are missing (hide the endpoint) and
//! 400 for a stale timestamp, per ShipStation's advice; [`VerifyError::http_status`]
//! says which.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// Header naming the signing key.
pub const KEY_ID_HEADER: &str = "x-shipengine-rsa-sha256-key-id";
/// Header carrying the base64 signature.
pub const SIGNATURE_HEADER: &str = "x-shipengine-rsa-sha256-signature";
/// Header carrying the send time.
pub const TIMESTAMP_HEADER: &str = "x-shipengine-timestamp";
/// ShipStation's suggested replay window, either side of now.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Why a v2 webhook was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the v2 webhook has no {0} header; it was not sent by ShipStation (answer 404)")]
    MissingHeader(&'static str),
    #[error("the v2 webhook timestamp {0:?} is neither ISO-8601 nor Unix seconds")]
    InvalidTimestamp(String),
    #[error(
        "the v2 webhook timestamp {timestamp} is {skew_secs}s away from now, outside the {window_secs}s window; a replay, or a clock off (check NTP)"
    )]
    Stale {
        timestamp: Timestamp,
        skew_secs: i64,
        window_secs: u64,
    },
    #[error("the v2 webhook signature is not valid base64 RSA signature data")]
    InvalidSignatureEncoding,
    #[error("the v2 webhook public key cannot be read: {0}")]
    InvalidKey(String),
    #[error(
        "the v2 webhook was signed with key {0:?}, which is not among the known keys; refresh the JWKS"
    )]
    UnknownKeyId(String),
    #[error(
        "the v2 webhook signature does not match its body and timestamp; it was altered or not sent by ShipStation"
    )]
    Mismatch,
}

impl VerifyError {
    /// The status a receiver should answer with: 404 without headers (hide the
    /// endpoint), 400 for a bad or stale timestamp, 401 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            VerifyError::MissingHeader(_) => 404,
            VerifyError::InvalidTimestamp(_) | VerifyError::Stale { .. } => 400,
            _ => 401,
        }
    }
}

/// The bytes ShipStation signs: the timestamp header exactly as received, a dot, and
/// the raw body. (Our reading of the docs; see the module documentation.)
pub fn signed_message(timestamp_header: &str, raw_body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp_header.len() + 1 + raw_body.len());
    message.extend_from_slice(timestamp_header.as_bytes());
    message.push(b'.');
    message.extend_from_slice(raw_body);
    message
}

/// Reads the timestamp header: ISO-8601 with an offset, or Unix seconds (13 digits
/// are taken as milliseconds).
pub fn parse_timestamp_header(value: &str) -> Result<Timestamp, VerifyError> {
    let text = value.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(n) = text.parse::<i64>() {
        let ts = if text.trim_start_matches('-').len() >= 13 {
            Timestamp::from_millisecond(n)
        } else {
            Timestamp::from_second(n)
        };
        return ts.map_err(|_| VerifyError::InvalidTimestamp(value.to_owned()));
    }
    Err(VerifyError::InvalidTimestamp(value.to_owned()))
}

fn check_headers<'a>(
    key_id: &'a str,
    signature: &'a str,
    timestamp: &'a str,
) -> Result<(), VerifyError> {
    if key_id.trim().is_empty() {
        return Err(VerifyError::MissingHeader(KEY_ID_HEADER));
    }
    if signature.trim().is_empty() {
        return Err(VerifyError::MissingHeader(SIGNATURE_HEADER));
    }
    if timestamp.trim().is_empty() {
        return Err(VerifyError::MissingHeader(TIMESTAMP_HEADER));
    }
    Ok(())
}

fn check_fresh(
    timestamp_header: &str,
    now: Timestamp,
    window: Duration,
) -> Result<(), VerifyError> {
    let timestamp = parse_timestamp_header(timestamp_header)?;
    let skew = now.duration_since(timestamp);
    let skew_secs = skew.as_secs();
    if skew.unsigned_abs() > window {
        return Err(VerifyError::Stale {
            timestamp,
            skew_secs,
            window_secs: window.as_secs(),
        });
    }
    Ok(())
}

fn check_signature(
    key: &RsaPublicKey,
    signature_b64: &str,
    timestamp_header: &str,
    raw_body: &[u8],
) -> Result<(), VerifyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| VerifyError::InvalidSignatureEncoding)?;
    let signature =
        Signature::try_from(bytes.as_slice()).map_err(|_| VerifyError::InvalidSignatureEncoding)?;
    VerifyingKey::<Sha256>::new(key.clone())
        .verify(&signed_message(timestamp_header, raw_body), &signature)
        .map_err(|_| VerifyError::Mismatch)
}

/// Reads an RSA public key from PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn public_key_from_pem(pem: &str) -> Result<RsaPublicKey, VerifyError> {
    RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
        .map_err(|e| VerifyError::InvalidKey(e.to_string()))
}

/// Verifies one v2 webhook delivery against one public key.
///
/// Checks, in order: all three headers present (`key_id_header` is not matched,
/// since the caller chose the key; use [`WebhookKeys`] to select by key id), the
/// timestamp within `window` of `now` (either direction: clocks skew), and the
/// signature over [`signed_message`]`(timestamp_header, raw_body)`.
pub fn verify_v2_webhook(
    public_key_pem: &str,
    key_id_header: &str,
    signature_header: &str,
    timestamp_header: &str,
    raw_body: &[u8],
    now: Timestamp,
    window: Duration,
) -> Result<(), VerifyError> {
    check_headers(key_id_header, signature_header, timestamp_header)?;
    check_fresh(timestamp_header, now, window)?;
    let key = public_key_from_pem(public_key_pem)?;
    check_signature(&key, signature_header, timestamp_header, raw_body)
}

/// The public keys that may sign v2 webhooks, by key id.
#[derive(Debug, Clone, Default)]
pub struct WebhookKeys {
    keys: HashMap<String, RsaPublicKey>,
}

impl WebhookKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a PEM key under `key_id`.
    pub fn insert_pem(&mut self, key_id: impl Into<String>, pem: &str) -> Result<(), VerifyError> {
        self.keys.insert(key_id.into(), public_key_from_pem(pem)?);
        Ok(())
    }

    /// Read a JWKS document (`{"keys":[{"kty":"RSA","kid":...,"n":...,"e":...}]}`);
    /// non-RSA keys are skipped.
    pub fn from_jwks(json: &[u8]) -> Result<Self, VerifyError> {
        #[derive(serde::Deserialize)]
        struct Jwks {
            keys: Vec<Jwk>,
        }
        #[derive(serde::Deserialize)]
        struct Jwk {
            kty: String,
            kid: Option<String>,
            n: Option<String>,
            e: Option<String>,
        }
        let jwks: Jwks = serde_json::from_slice(json)
            .map_err(|e| VerifyError::InvalidKey(format!("not a JWKS document: {e}")))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut out = WebhookKeys::new();
        for jwk in jwks.keys {
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                continue;
            };
            if jwk.kty != "RSA" {
                continue;
            }
            let decode = |s: &str| {
                b64.decode(s.trim_end_matches('=')).map_err(|err| {
                    VerifyError::InvalidKey(format!("JWK {kid}: bad base64url: {err}"))
                })
            };
            let key = RsaPublicKey::new(
                BigUint::from_bytes_be(&decode(&n)?),
                BigUint::from_bytes_be(&decode(&e)?),
            )
            .map_err(|err| VerifyError::InvalidKey(format!("JWK {kid}: {err}")))?;
            out.keys.insert(kid, key);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Like [`verify_v2_webhook`], choosing the key by `key_id_header`.
    pub fn verify(
        &self,
        key_id_header: &str,
        signature_header: &str,
        timestamp_header: &str,
        raw_body: &[u8],
        now: Timestamp,
        window: Duration,
    ) -> Result<(), VerifyError> {
        check_headers(key_id_header, signature_header, timestamp_header)?;
        check_fresh(timestamp_header, now, window)?;
        let key = self
            .keys
            .get(key_id_header.trim())
            .ok_or_else(|| VerifyError::UnknownKeyId(key_id_header.to_owned()))?;
        check_signature(key, signature_header, timestamp_header, raw_body)
    }
}

/// Signs a body the way ShipStation does (for emulators and tests): the base64
/// signature to send in [`SIGNATURE_HEADER`]. `private_key_pem` is PKCS#8 or PKCS#1.
pub fn sign_v2_webhook(
    private_key_pem: &str,
    timestamp_header: &str,
    raw_body: &[u8],
) -> Result<String, VerifyError> {
    let key = RsaPrivateKey::from_pkcs8_pem(private_key_pem.trim())
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(private_key_pem.trim()))
        .map_err(|e| VerifyError::InvalidKey(e.to_string()))?;
    let signature =
        SigningKey::<Sha256>::new(key).sign(&signed_message(timestamp_header, raw_body));
    Ok(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = include_str!("testdata/webhook_test_key.pem");
    const PUBLIC: &str = include_str!("testdata/webhook_test_pub.pem");
    const BODY: &[u8] = br#"{"resource_url":"https://api.shipstation.com/v2/labels/se-1/track","resource_type":"API_TRACK"}"#;
    const SENT: &str = "2026-08-04T12:00:00.000Z";

    fn now() -> Timestamp {
        SENT.parse().unwrap()
    }

    #[test]
    fn a_signed_delivery_verifies_and_any_change_breaks_it() {
        let sig = sign_v2_webhook(PRIVATE, SENT, BODY).unwrap();
        assert_eq!(
            verify_v2_webhook(PUBLIC, "kid-1", &sig, SENT, BODY, now(), DEFAULT_WINDOW),
            Ok(())
        );

        let mut tampered = BODY.to_vec();
        tampered.push(b' ');
        assert_eq!(
            verify_v2_webhook(
                PUBLIC,
                "kid-1",
                &sig,
                SENT,
                &tampered,
                now(),
                DEFAULT_WINDOW
            ),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is part of the message: a replay with a fresh timestamp fails.
        let later = "2026-08-04T12:01:00.000Z";
        assert_eq!(
            verify_v2_webhook(PUBLIC, "kid-1", &sig, later, BODY, now(), DEFAULT_WINDOW),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn deliveries_outside_the_window_are_refused_in_either_direction() {
        let sig = sign_v2_webhook(PRIVATE, SENT, BODY).unwrap();
        let late = now() + jiff::SignedDuration::from_secs(301);
        let err =
            verify_v2_webhook(PUBLIC, "kid-1", &sig, SENT, BODY, late, DEFAULT_WINDOW).unwrap_err();
        assert!(matches!(err, VerifyError::Stale { .. }), "{err}");
        assert_eq!(err.http_status(), 400);
        let early = now() - jiff::SignedDuration::from_secs(301);
        assert!(matches!(
            verify_v2_webhook(PUBLIC, "kid-1", &sig, SENT, BODY, early, DEFAULT_WINDOW),
            Err(VerifyError::Stale { .. })
        ));
        let edge = now() + jiff::SignedDuration::from_secs(300);
        assert_eq!(
            verify_v2_webhook(PUBLIC, "kid-1", &sig, SENT, BODY, edge, DEFAULT_WINDOW),
            Ok(())
        );
    }

    #[test]
    fn missing_headers_mean_404_and_garbage_means_401() {
        let err =
            verify_v2_webhook(PUBLIC, "", "x", SENT, BODY, now(), DEFAULT_WINDOW).unwrap_err();
        assert_eq!(err, VerifyError::MissingHeader(KEY_ID_HEADER));
        assert_eq!(err.http_status(), 404);
        let err =
            verify_v2_webhook(PUBLIC, "k", "!!!", SENT, BODY, now(), DEFAULT_WINDOW).unwrap_err();
        assert_eq!(err, VerifyError::InvalidSignatureEncoding);
        assert_eq!(err.http_status(), 401);
    }

    #[test]
    fn unix_second_timestamps_are_understood() {
        let ts = now().as_second().to_string();
        let sig = sign_v2_webhook(PRIVATE, &ts, BODY).unwrap();
        assert_eq!(
            verify_v2_webhook(PUBLIC, "k", &sig, &ts, BODY, now(), DEFAULT_WINDOW),
            Ok(())
        );
    }

    #[test]
    fn a_key_set_picks_the_key_by_id() {
        let public = public_key_from_pem(PUBLIC).unwrap();
        use rsa::traits::PublicKeyParts;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "kid": "ignored", "crv": "P-256"},
            {"kty": "RSA", "kid": "kid-7", "n": b64.encode(public.n().to_bytes_be()), "e": b64.encode(public.e().to_bytes_be())}
        ]});
        let keys = WebhookKeys::from_jwks(jwks.to_string().as_bytes()).unwrap();
        let sig = sign_v2_webhook(PRIVATE, SENT, BODY).unwrap();
        assert_eq!(
            keys.verify("kid-7", &sig, SENT, BODY, now(), DEFAULT_WINDOW),
            Ok(())
        );
        assert_eq!(
            keys.verify("kid-8", &sig, SENT, BODY, now(), DEFAULT_WINDOW),
            Err(VerifyError::UnknownKeyId("kid-8".into()))
        );
    }
}
