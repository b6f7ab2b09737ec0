//! RSA-SHA256 signatures for v2 webhooks, as ShipStation sends them:
//! `x-shipengine-rsa-sha256-key-id` names the key, `x-shipengine-timestamp` carries the
//! send time (RFC 3339, UTC) and `x-shipengine-rsa-sha256-signature` is the base64
//! PKCS#1 v1.5 signature over `"{timestamp}.{raw body}"` ([`signed_message`]).
//! Receivers get the public key from `GET /jwks` (a JWK set, as ShipStation publishes
//! its keys) or `GET /_sandbox/webhook-key` (PEM).
//!
//! Generating a 2048-bit key takes a moment, so one key serves the whole process.

use std::sync::OnceLock;

use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};

/// The bytes that are signed: the timestamp header, a dot, the raw body.
pub fn signed_message(timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    message
}

pub struct Signer {
    key: SigningKey<Sha256>,
    public: RsaPublicKey,
    key_id: String,
}

static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();

impl Signer {
    /// The process's signing key (made on first use).
    pub fn generate(seed: u64) -> Result<Signer, String> {
        let private = match KEY.get() {
            Some(k) => k.clone(),
            None => {
                use rand::SeedableRng;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed);
                let k = RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
                KEY.get_or_init(|| k).clone()
            }
        };
        let public = RsaPublicKey::from(&private);
        let der = public.to_public_key_der().map_err(|e| e.to_string())?;
        let digest = Sha256::digest(der.as_bytes());
        let key_id = format!("sandbox-{}", hex(&digest[..8]));
        Ok(Signer { key: SigningKey::<Sha256>::new(private), public, key_id })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Base64 signature over [`signed_message`].
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let signature = self.key.sign(&signed_message(timestamp, body));
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    }

    pub fn public_key_pem(&self) -> String {
        self.public.to_public_key_pem(LineEnding::LF).expect("a public key encodes as PEM")
    }

    /// The JWK set served at `/jwks`.
    pub fn jwks(&self) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.key_id,
                "n": b64.encode(self.public.n().to_bytes_be()),
                "e": b64.encode(self.public.e().to_bytes_be()),
            }]
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    #[test]
    fn a_signature_verifies_with_the_published_key_and_not_for_another_body() {
        let signer = Signer::generate(1).unwrap();
        let ts = "2026-11-24T10:00:00Z";
        let sig = signer.sign(ts, br#"{"a":1}"#);
        let bytes = base64::engine::general_purpose::STANDARD.decode(sig).unwrap();
        let signature = Signature::try_from(bytes.as_slice()).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(signer.public.clone());
        assert!(verifier.verify(&signed_message(ts, br#"{"a":1}"#), &signature).is_ok());
        assert!(verifier.verify(&signed_message(ts, br#"{"a":2}"#), &signature).is_err());
    }
}
