//! Whether an event whose id already has a recorded plan is a redelivery of that event
//! (security issue 22).
//!
//! A plan is recorded under the event's id and a redelivery replays it: the recorded runs
//! go on where they stopped, with the event they recorded. An id is only the producer's
//! word, though. Taken alone, it let another customer's event (or an event of another
//! type) with a used id pass for a redelivery: swallowed, and replaying the first
//! customer's unfinished runs in the second customer's executor. So the plan also keeps
//! what makes the event itself, its [`Identity`]: customer, type and a digest of its
//! content. A redelivery is the same in all three; anything else is refused, never run.
//!
//! Pure: the storage layer reads what was recorded, this decides.

use crate::envelope::EventEnvelope;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// What identifies an event beyond its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub customer_id: i64,
    pub event_type: String,
    /// SHA-256 (hex) of the canonical JSON of the event's content ([`digest`]).
    pub digest: String,
}

impl Identity {
    pub fn of(event: &EventEnvelope) -> Self {
        Self {
            customer_id: event.customer_id,
            event_type: event.event_type.clone(),
            digest: digest(event),
        }
    }
}

/// What a recorded plan says of the event that recorded it. Plans recorded before the
/// identity was kept have none of it; their runs still name the customer and the type
/// (both `None` when the plan started no run: nothing of it can be replayed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub customer_id: Option<i64>,
    pub event_type: Option<String>,
    pub digest: Option<String>,
}

/// How an event differs from the one that recorded the plan under its id: the first
/// difference found, customer before type before content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("its customer differs")]
    Customer,
    #[error("its type differs")]
    Type,
    #[error("its content differs")]
    Content,
}

impl Mismatch {
    /// Why the event was refused, for the dead-letter topic's `wfe-error` header and the
    /// log. It names what differs but nothing of the other event: the other event may be
    /// another customer's, and the producer reading its dead letters may not be.
    pub fn reason(self, event_id: &str) -> String {
        format!(
            "event id {event_id:?} is already taken by another event ({self}): a redelivery must carry \
             the same customer, type and content; the event was refused and not run"
        )
    }

    /// The reason as a metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Mismatch::Customer => "customer",
            Mismatch::Type => "type",
            Mismatch::Content => "content",
        }
    }
}

/// Whether `event` may replay the plan recorded with `recorded`. What was not recorded is
/// not compared: an old plan without a digest is judged by its customer and type.
pub fn judge(event: &Identity, recorded: &Recorded) -> Result<(), Mismatch> {
    if recorded.customer_id.is_some_and(|c| c != event.customer_id) {
        return Err(Mismatch::Customer);
    }
    if recorded.event_type.as_deref().is_some_and(|t| t != event.event_type) {
        return Err(Mismatch::Type);
    }
    if recorded.digest.as_deref().is_some_and(|d| d != event.digest) {
        return Err(Mismatch::Content);
    }
    Ok(())
}

/// SHA-256, as hex, of the canonical JSON (keys sorted, no spaces) of the event's
/// content: `data`, `cause` and `occurred_at` as the producer gave it.
///
/// An `occurred_at` the consumer took from the broker's timestamp is left out: a message
/// published again (the embedded broker's journal at start, a producer retrying) gets a
/// new timestamp, and is still the same event. Canonical, so that key order (which a
/// producer or a JSON library may change between sends) does not make two sends of one
/// event differ.
pub fn digest(event: &EventEnvelope) -> String {
    let mut content = serde_json::Map::new();
    content.insert("data".into(), Value::Object(event.data.clone()));
    let cause = event
        .cause
        .as_ref()
        .and_then(|cause| serde_json::to_value(cause).ok())
        .unwrap_or(Value::Null);
    content.insert("cause".into(), cause);
    let occurred_at = match (event.occurred_at, event.occurred_at_stamped) {
        (Some(at), false) => Value::from(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        _ => Value::Null,
    };
    content.insert("occurred_at".into(), occurred_at);
    let mut canonical = String::new();
    write_canonical(&Value::Object(content), &mut canonical);
    let hash = Sha256::digest(canonical.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Writes `value` as JSON with every object's keys in order, whatever order the map keeps.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> EventEnvelope {
        EventEnvelope::from_value(value).unwrap()
    }

    fn base() -> Value {
        json!({"id": "e1", "type": "customer.deposited", "customer_id": 1,
               "occurred_at": "2026-12-07T10:00:00Z", "data": {"amount": 5, "currency": "EUR"}})
    }

    #[test]
    fn the_same_event_in_another_key_order_has_the_same_digest() {
        let reordered = event(json!({"data": {"currency": "EUR", "amount": 5}, "customer_id": 1,
            "occurred_at": "2026-12-07T10:00:00Z", "type": "customer.deposited", "id": "e1"}));
        assert_eq!(digest(&event(base())), digest(&reordered));
    }

    #[test]
    fn other_content_other_digest() {
        let mut other = base();
        other["data"]["amount"] = json!(6);
        assert_ne!(digest(&event(base())), digest(&event(other)));
        let mut later = base();
        later["occurred_at"] = json!("2026-12-07T10:00:01Z");
        assert_ne!(digest(&event(base())), digest(&event(later)));
        let mut caused = base();
        caused["cause"] = json!({"event_id": "e0", "workflow_id": "w", "depth": 1});
        assert_ne!(digest(&event(base())), digest(&event(caused)));
    }

    #[test]
    fn a_broker_timestamp_is_not_content() {
        let mut undated = base();
        undated.as_object_mut().unwrap().remove("occurred_at");
        let stamped = |at: &str| EventEnvelope {
            occurred_at: Some(at.parse().unwrap()),
            occurred_at_stamped: true,
            ..event(undated.clone())
        };
        assert_eq!(
            digest(&stamped("2026-12-07T10:00:00Z")),
            digest(&stamped("2026-12-07T11:00:00Z"))
        );
        assert_eq!(digest(&stamped("2026-12-07T10:00:00Z")), digest(&event(undated)));
    }

    #[test]
    fn judged_by_what_was_recorded() {
        let identity = Identity::of(&event(base()));
        let recorded = Recorded {
            customer_id: Some(1),
            event_type: Some("customer.deposited".into()),
            digest: Some(identity.digest.clone()),
        };
        assert_eq!(judge(&identity, &recorded), Ok(()));
        let other_customer = Recorded {
            customer_id: Some(2),
            ..recorded.clone()
        };
        assert_eq!(judge(&identity, &other_customer), Err(Mismatch::Customer));
        let other_type = Recorded {
            event_type: Some("customer.registered".into()),
            ..recorded.clone()
        };
        assert_eq!(judge(&identity, &other_type), Err(Mismatch::Type));
        let other_content = Recorded {
            digest: Some("0".repeat(64)),
            ..recorded
        };
        assert_eq!(judge(&identity, &other_content), Err(Mismatch::Content));
        // An old plan: what its runs say, or nothing.
        let old = Recorded {
            customer_id: Some(1),
            event_type: Some("customer.deposited".into()),
            digest: None,
        };
        assert_eq!(judge(&identity, &old), Ok(()));
        assert_eq!(judge(&identity, &Recorded::default()), Ok(()));
    }

    #[test]
    fn the_reason_names_the_id_and_the_difference_only() {
        let reason = Mismatch::Customer.reason("e1");
        assert!(
            reason.contains("\"e1\"") && reason.contains("customer differs"),
            "{reason}"
        );
    }
}
