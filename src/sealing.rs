//! Integration secrets encrypted at rest (issue 22, finding 5): webhook endpoints' signing
//! secrets and the `auth` credentials of endpoints and SMS providers are kept sealed with
//! `security.secret_key`, so a database dump, a backup or a read replica does not hand out
//! the credentials of every integration.
//!
//! AES-256-GCM through OpenSSL: the engine already links OpenSSL (awc's TLS, librdkafka's
//! SSL) and calls it for TLS, so this adds no crate to build or audit, and OpenSSL's AES-GCM
//! is the constant-time, hardware-accelerated one. A fresh random 96-bit nonce per value;
//! the column a value belongs to is its associated data, so a sealed value copied into
//! another column does not open.
//!
//! A sealed value is text: `sealed:v1:<base64 of nonce | tag | ciphertext>`. Text without
//! the prefix is a value written before a key was set; it is read as it is, and sealed
//! when the engine starts with a key ([`crate::storage::secrets`]).

use base64::Engine as _;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

/// What a sealed value starts with.
pub const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("security.secret_key must be 32 bytes, as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)")]
    BadKey,
    #[error("a sealed secret cannot be opened without security.secret_key")]
    NoKey,
    #[error("a sealed secret does not open with security.secret_key (another key, or the value was altered)")]
    WrongKey,
    #[error("encryption failed: {0}")]
    Crypto(String),
}

/// The key secrets are sealed with.
#[derive(Clone)]
pub struct SealingKey([u8; 32]);

/// Never shows the key.
impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

impl SealingKey {
    /// 32 bytes written as 64 hex digits or as base64; whitespace around is ignored.
    pub fn parse(text: &str) -> Result<SealingKey, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SealError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| SealError::BadKey)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(SealingKey(key))
    }

    /// `plaintext` sealed for `column` (the associated data).
    pub fn seal(&self, column: &str, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce).map_err(|e| SealError::Crypto(e.to_string()))?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            column.as_bytes(),
            plaintext.as_bytes(),
            &mut tag,
        )
        .map_err(|e| SealError::Crypto(e.to_string()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ciphertext);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// The plaintext of a value [`seal`](Self::seal)ed for `column`.
    pub fn open(&self, column: &str, sealed: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::WrongKey)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| SealError::WrongKey)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let plaintext = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            column.as_bytes(),
            ciphertext,
            tag,
        )
        .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plaintext).map_err(|_| SealError::WrongKey)
    }
}

/// Whether `value` is sealed (else it was written before a key was set).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Seals `value` when there is a key; without one it is kept as it is.
pub fn seal(key: Option<&SealingKey>, column: &str, value: &str) -> Result<String, SealError> {
    match key {
        Some(key) => key.seal(column, value),
        None => Ok(value.to_owned()),
    }
}

/// Opens `value`: a sealed one with the key, one written before a key was set as it is.
pub fn open(key: Option<&SealingKey>, column: &str, value: &str) -> Result<String, SealError> {
    match (key, is_sealed(value)) {
        (_, false) => Ok(value.to_owned()),
        (Some(key), true) => key.open(column, value),
        (None, true) => Err(SealError::NoKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_values_open_only_with_their_key_and_column() {
        let key = SealingKey::parse(HEX).unwrap();
        let sealed = key.seal("sms_providers.auth", "hunter2").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("hunter2"), "{sealed}");
        assert_ne!(
            sealed,
            key.seal("sms_providers.auth", "hunter2").unwrap(),
            "a fresh nonce"
        );
        assert_eq!(key.open("sms_providers.auth", &sealed).unwrap(), "hunter2");
        assert_eq!(key.open("webhook_endpoints.auth", &sealed), Err(SealError::WrongKey));
        let other = SealingKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(other.open("sms_providers.auth", &sealed), Err(SealError::WrongKey));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push('A');
        assert!(key.open("sms_providers.auth", &altered).is_err());
        assert_eq!(open(None, "c", &sealed), Err(SealError::NoKey));
        assert_eq!(open(None, "c", "plain").unwrap(), "plain");
        assert_eq!(open(Some(&key), "c", "plain").unwrap(), "plain");
    }

    #[test]
    fn keys_are_32_bytes_in_hex_or_base64() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(SealingKey::parse(&b64).is_ok());
        assert!(SealingKey::parse(&format!(" {HEX}\n")).is_ok());
        for bad in [
            "",
            "abc",
            &HEX[..62],
            &base64::engine::general_purpose::STANDARD.encode([7u8; 16]),
        ] {
            assert_eq!(SealingKey::parse(bad).unwrap_err(), SealError::BadKey, "{bad}");
        }
        assert!(!format!("{:?}", SealingKey::parse(HEX).unwrap()).contains("0102"));
    }
}
