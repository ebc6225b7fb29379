//! What leaves the engine over HTTP (email, SMS, webhooks): the request as the outbox keeps
//! it, how it is built from a step, its signature and credentials. How its URL is shown
//! is [`crate::redact`]'s.

pub mod auth;
mod build;
pub mod destinations;
mod error;
pub mod guard;
pub mod pace;
pub mod send;
pub mod signing;

pub use build::{check_header, check_header_value, Integrations};

use hmac::{KeyInit, Mac};

/// Header carrying the idempotency key on every attempt.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header carrying the signature when a secret is configured: Standard Webhooks'
/// `webhook-signature` (see [`signing`]). The old body-only `X-Signature` is no longer sent.
pub const SIGNATURE_HEADER: &str = signing::SIGNATURE_HEADER;

pub use crate::catalogue::{is_reserved_header, RESERVED_HEADERS};

pub use crate::storage::outbox::OutboundRequest;

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`: the signature this engine
/// sent before Standard Webhooks. Not sent any more; kept for receivers' and tests' tooling
/// that still computes it.
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

    #[test]
    fn workflow_headers_cannot_replace_engine_headers_or_be_invalid() {
        for name in [
            "Idempotency-Key",
            "idempotency-key",
            "WEBHOOK-SIGNATURE",
            "x-signature",
            "Content-Type",
            " host",
        ] {
            assert!(
                check_header(name, "x").unwrap_err().contains("set by the engine"),
                "{name}"
            );
        }
        assert!(check_header("x-ok", "a\r\nx-injected: 1").is_err());
        assert!(check_header("bad name", "x").is_err());
        assert!(check_header("x-tenant", "acme").is_ok());
    }
}
