//! Webhook signatures per the Standard Webhooks spec (<https://www.standardwebhooks.com>):
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 of
//! HMAC-SHA256 over "id.timestamp.body">`. Covering the id and the timestamp, not only the
//! body, lets a receiver drop replays (same id) and stale captures (old timestamp).
//!
//! Secrets are configured as text: `whsec_<base64>` (the spec's form) is base64-decoded,
//! anything else is used as its raw bytes. Several secrets separated by whitespace are all
//! used during a rotation: the signature header carries one `v1,...` entry per secret, and
//! a receiver that knows either secret accepts the request.
//!
//! Requests are signed when they are sent, not when they are queued, so a retry or a replay
//! after a restart carries a fresh timestamp. The outbox row therefore keeps only a
//! reference to the secrets ([`Keyring::register`]'s key id), never a secret.

use super::auth::Credentials;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Header carrying the message id (the idempotency key).
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the Unix time of the attempt, in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The signing keys of one endpoint (or the default), decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets(Vec<Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} keys)", self.0.len())
    }
}

impl Secrets {
    /// Parses whitespace-separated secrets; `None` when there is none (unsigned).
    pub fn parse(config: &str) -> Option<Secrets> {
        let keys: Vec<Vec<u8>> = config
            .split_whitespace()
            .map(|s| match s.strip_prefix("whsec_") {
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_else(|_| s.as_bytes().to_vec()),
                None => s.as_bytes().to_vec(),
            })
            .collect();
        (!keys.is_empty()).then_some(Secrets(keys))
    }

    /// The `webhook-signature` value: one `v1,<base64>` per secret, space-separated.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.0
            .iter()
            .map(|key| format!("v1,{}", signature(key, id, timestamp, body)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Base64 of HMAC-SHA256(key, "id.timestamp.body").
fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// What a receiver does: true when any `v1,` entry of `header` matches any of `secrets`
/// (configured text, as above). The timestamp's age is the receiver's own check.
pub fn verify(secrets: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(secrets) = Secrets::parse(secrets) else {
        return false;
    };
    header
        .split_whitespace()
        .filter_map(|e| e.strip_prefix("v1,"))
        .any(|given| {
            secrets
                .0
                .iter()
                .any(|key| constant_time_eq(signature(key, id, timestamp, body).as_bytes(), given.as_bytes()))
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Secrets by key id, so the sender finds the secrets a queued request refers to.
///
/// A key id is `<hash>:<source>`: the hash of the configured secret text (the same secrets
/// always get the same hash, different ones never share it, and it reveals nothing usable)
/// and where the secrets came from (`default` or `endpoint:<name>`). The sender looks up the
/// hash first, so a request is signed with the secrets it was queued under; when those are
/// gone (the secret was rotated and the process restarted), the source's current secrets
/// sign it, as a rebuilt request would be.
///
/// Shared by the request builder ([`Integrations`](super::Integrations)) and the delivery
/// pool (the topology gives both the same one): the builder registers what it signs with
/// on every build, including a replay's rebuild, so the keyring holds the secrets of every
/// request this process sends. Bounded: a full keyring is cleared (secrets are
/// re-registered by the next build).
///
/// It holds the credentials of integrations' `auth` the same way
/// ([`register_auth`](Keyring::register_auth)), for the same reason: a queued request
/// refers to them and never holds them.
#[derive(Default)]
pub struct Keyring {
    keys: RwLock<HashMap<String, Arc<Secrets>>>,
    credentials: RwLock<HashMap<String, Arc<Credentials>>>,
}

/// Shows how many keys are held, never the secrets.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.keys.read().map_or(0, |k| k.len());
        let credentials = self.credentials.read().map_or(0, |k| k.len());
        f.debug_struct("Keyring")
            .field("keys", &held)
            .field("credentials", &credentials)
            .finish()
    }
}

/// Most entries held; far above any real number of endpoints.
const KEYRING_CAPACITY: usize = 10_000;

impl Keyring {
    /// Registers the secrets configured for `source` and returns their key id; `None` for
    /// no secret.
    pub fn register(&self, source: &str, config: &str) -> Option<String> {
        let secrets = Arc::new(Secrets::parse(config)?);
        let digest = Sha256::digest(format!("workflow-engine keyring\n{config}").as_bytes());
        let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() + 2 > KEYRING_CAPACITY {
            keys.clear();
        }
        keys.insert(hash.clone(), Arc::clone(&secrets));
        keys.insert(format!("source:{source}"), secrets);
        Some(format!("{hash}:{source}"))
    }

    /// The secrets of key id `id` (see the type's doc), if this process knows them.
    pub fn get(&self, id: &str) -> Option<Arc<Secrets>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        lookup(&keys, id)
    }

    /// Registers the credentials of `source` (`sms:<name>`, `endpoint:<name>`) and returns
    /// their key id, as [`register`](Self::register) does for signing secrets: the hash
    /// of the stored form first, the source's current credentials when those are gone.
    pub fn register_auth(&self, source: &str, credentials: &Credentials) -> String {
        let digest = Sha256::digest(format!("workflow-engine credentials\n{}", credentials.to_stored()).as_bytes());
        let hash: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let credentials = Arc::new(credentials.clone());
        let mut held = self.credentials.write().unwrap_or_else(|e| e.into_inner());
        if held.len() + 2 > KEYRING_CAPACITY {
            held.clear();
        }
        held.insert(hash.clone(), Arc::clone(&credentials));
        held.insert(format!("source:{source}"), credentials);
        format!("{hash}:{source}")
    }

    /// The credentials of key id `id`, if this process knows them.
    pub fn credentials(&self, id: &str) -> Option<Arc<Credentials>> {
        let held = self.credentials.read().unwrap_or_else(|e| e.into_inner());
        lookup(&held, id)
    }
}

/// `<hash>:<source>`: the entry of the hash, else the source's current one.
fn lookup<T>(held: &HashMap<String, Arc<T>>, id: &str) -> Option<Arc<T>> {
    let (hash, source) = id.split_once(':').unwrap_or((id, ""));
    held.get(hash)
        .or_else(|| held.get(&format!("source:{source}")).filter(|_| !source.is_empty()))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_per_the_standard_webhooks_spec() {
        // The spec's reference vector (standard-webhooks test suite).
        let secrets = Secrets::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secrets.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        // Another id, timestamp or body does not verify: a captured request cannot be
        // replayed under a new id or time.
        assert!(!verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_other",
            1614265330,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
    }

    #[test]
    fn every_secret_of_a_rotation_signs() {
        let header = Secrets::parse("old-secret  new-secret").unwrap().sign("id", 1, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify("old-secret", "id", 1, b"{}", &header));
        assert!(verify("new-secret", "id", 1, b"{}", &header));
        assert!(!verify("other", "id", 1, b"{}", &header));
        assert!(Secrets::parse("  ").is_none());
    }

    #[test]
    fn the_keyring_finds_secrets_by_an_id_that_is_not_the_secret() {
        let keyring = Keyring::default();
        let id = keyring.register("endpoint:test-a", "whsec_c2VjcmV0").unwrap();
        assert!(!id.contains("c2VjcmV0") && !id.contains("secret"), "{id}");
        assert_eq!(keyring.register("endpoint:test-a", "whsec_c2VjcmV0"), Some(id.clone()));
        assert_eq!(*keyring.get(&id).unwrap(), Secrets::parse("secret").unwrap());
        assert_eq!(keyring.register("endpoint:test-a", ""), None);
        // Rotated and restarted: the hash is unknown, the source's current secrets sign.
        let stale = format!("000000000000000000000000:{}", "endpoint:test-a");
        assert_eq!(*keyring.get(&stale).unwrap(), Secrets::parse("secret").unwrap());
        assert!(keyring.get("000000000000000000000000:endpoint:unknown").is_none());
    }

    #[test]
    fn the_keyring_holds_credentials_by_reference() {
        let keyring = Keyring::default();
        let credentials = Credentials::Bearer { token: "t0ken".into() };
        let id = keyring.register_auth("sms:one", &credentials);
        assert!(!id.contains("t0ken"), "{id}");
        assert_eq!(*keyring.credentials(&id).unwrap(), credentials);
        let rotated = Credentials::Bearer { token: "other".into() };
        keyring.register_auth("sms:one", &rotated);
        assert_eq!(
            *keyring.credentials(&id).unwrap(),
            credentials,
            "queued under the old ones"
        );
        assert_eq!(
            *keyring.credentials("000000000000000000000000:sms:one").unwrap(),
            rotated
        );
        assert!(keyring.credentials("000000000000000000000000:sms:two").is_none());
    }
}
