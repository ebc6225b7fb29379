//! What leaves the engine over HTTP (email, SMS, webhooks): the request as the outbox keeps
//! it, how it is built from a step, and its signature.

mod build;

pub use build::Integrations;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Header carrying the idempotency key on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header carrying `sha256=<hex hmac of the body>` when a secret is configured.
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// A request built when its step runs. `body` is the exact JSON text sent (and signed),
/// kept as text so a database's JSON normalisation cannot change its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// email, sms or webhook: a metric label.
    pub kind: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + digest.len() * 2);
    hex.push_str("sha256=");
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
