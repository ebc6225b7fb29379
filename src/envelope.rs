//! The event envelope: the JSON value of every message on the events topic.
//!
//! `{"id", "type", "customer_id", "occurred_at"?, "data"?}`. Keys the engine does not know
//! are ignored so producers can add metadata without breaking consumers. An envelope that
//! cannot be decoded is not an engine failure: the consumer dead-letters it with
//! [`EnvelopeError`]'s message and moves on.

pub use crate::guards::cascade::Cause;
use crate::guards::cascade::MAX_DEPTH_VALUE;
use crate::problem::{json_type_name, Pointer, Problem, Problems};
use crate::trace::TraceParent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest accepted `id` and `type`: both end up in database keys and metric labels.
pub const MAX_ID_LEN: usize = 200;

/// A decoded platform event: the body of POST /api/v1/events, and a run's `event`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventEnvelope {
    /// Producer-assigned unique id; with the workflow id it makes a run unique, so a
    /// redelivered event is recognised.
    pub id: String,
    /// The trigger name, e.g. `customer.deposited`. Any type is valid: a new event type needs
    /// no code change.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Also the Kafka key, so one customer's events stay in one partition, in order.
    pub customer_id: i64,
    /// When it happened at the source; `None` means "use the broker timestamp".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Option<DateTime<Utc>>,
    /// `occurred_at` is the broker's timestamp, set by the consumer, not the producer's:
    /// it is no part of what the event says, so the event's digest leaves it out (a
    /// message published again has a new one). Not part of the JSON.
    #[serde(skip)]
    pub occurred_at_stamped: bool,
    /// The payload conditions read as `event.*`, `transaction.*`, `order.*`, ...
    /// Optional on the way in (absent or null is `{}`), always there on the way out.
    #[schema(required = false)]
    pub data: Map<String, Value>,
    /// Set on events the engine emits: the run that emitted it and how deep the cascade
    /// is. `None` for events from outside the engine (depth 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The W3C trace context of the message that carried the event (its `traceparent`
    /// header), not part of the JSON: the runs keep it in a column of their own.
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

/// Why bytes could not be turned into an [`EventEnvelope`].
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid envelope: {}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
}

/// The envelope as it arrives, before the required keys are checked. Unknown keys are
/// skipped by serde without being materialised.
#[derive(Deserialize)]
struct Raw {
    id: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    customer_id: Option<Value>,
    occurred_at: Option<Value>,
    data: Option<Value>,
    cause: Option<Value>,
}

impl EventEnvelope {
    /// Decodes a Kafka message value.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let raw: Raw = serde_json::from_slice(bytes)?;
        Self::from_raw(raw).map_err(EnvelopeError::Invalid)
    }

    /// Validates an envelope already parsed as JSON (the HTTP API receives it so).
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        let raw: Raw = serde_json::from_value(value)?;
        Self::from_raw(raw).map_err(EnvelopeError::Invalid)
    }

    fn from_raw(raw: Raw) -> Result<Self, Vec<Problem>> {
        let root = Pointer::root();
        let mut problems = Problems::default();
        let id = required_text(raw.id, &root.key("id"), &mut problems);
        let event_type = required_text(raw.event_type, &root.key("type"), &mut problems);
        let customer_id = customer_id(raw.customer_id, &root.key("customer_id"), &mut problems);
        let occurred_at = match raw.occurred_at {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    problems.error(&root.key("occurred_at"), format!("expected an RFC 3339 timestamp: {e}"));
                    None
                }
            },
            Some(other) => {
                problems.error(
                    &root.key("occurred_at"),
                    format!("expected an RFC 3339 timestamp, got {}", json_type_name(&other)),
                );
                None
            }
        };
        let data = match raw.data {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(other) => {
                problems.error(
                    &root.key("data"),
                    format!("expected an object, got {}", json_type_name(&other)),
                );
                Map::new()
            }
        };
        let cause = match raw.cause {
            None | Some(Value::Null) => None,
            Some(value) => cause(value, &root.key("cause"), &mut problems),
        };
        match (id, event_type, customer_id) {
            (Some(id), Some(event_type), Some(customer_id)) if !problems.has_errors() => Ok(Self {
                id,
                event_type,
                customer_id,
                occurred_at,
                occurred_at_stamped: false,
                data,
                cause,
                trace: None,
            }),
            _ => Err(problems.into_vec()),
        }
    }

    /// The Kafka key this event must be produced with.
    pub fn key(&self) -> String {
        self.customer_id.to_string()
    }
}

fn required_text(value: Option<Value>, path: &Pointer, problems: &mut Problems) -> Option<String> {
    match value {
        None | Some(Value::Null) => problems.error(path, "is required"),
        Some(Value::String(s)) if s.trim().is_empty() => problems.error(path, "must not be empty"),
        Some(Value::String(s)) if s.len() > MAX_ID_LEN => {
            problems.error(path, format!("is longer than {MAX_ID_LEN} characters"))
        }
        Some(Value::String(s)) => return Some(s),
        Some(other) => problems.error(path, format!("expected a string, got {}", json_type_name(&other))),
    }
    None
}

/// `{"event_id", "workflow_id", "depth", "root"?}`, each checked so a broken cause is
/// reported at its key. A well-formed cause is still only a claim: the runner trusts it
/// only when the outbox vouches for it (`guards::cascade`).
fn cause(value: Value, path: &Pointer, problems: &mut Problems) -> Option<Cause> {
    let Value::Object(mut object) = value else {
        problems.error(
            path,
            format!(
                "expected {{\"event_id\", \"workflow_id\", \"depth\"}}, got {}",
                json_type_name(&value)
            ),
        );
        return None;
    };
    let event_id = required_text(object.remove("event_id"), &path.key("event_id"), problems);
    let workflow_id = required_text(object.remove("workflow_id"), &path.key("workflow_id"), problems);
    let depth = match object.remove("depth") {
        Some(Value::Number(n)) => match n.as_u64().and_then(|d| u32::try_from(d).ok()) {
            Some(d) if (1..=MAX_DEPTH_VALUE).contains(&d) => Some(d),
            _ => {
                problems.error(
                    &path.key("depth"),
                    format!("expected a whole number from 1 to {MAX_DEPTH_VALUE}, got {n}"),
                );
                None
            }
        },
        None | Some(Value::Null) => {
            problems.error(&path.key("depth"), "is required");
            None
        }
        Some(other) => {
            problems.error(
                &path.key("depth"),
                format!("expected a whole number, got {}", json_type_name(&other)),
            );
            None
        }
    };
    let root = match object.remove("root") {
        None | Some(Value::Null) => None,
        value => required_text(value, &path.key("root"), problems),
    };
    Some(Cause {
        event_id: event_id?,
        workflow_id: workflow_id?,
        depth: depth?,
        root,
    })
}

/// Customer ids are positive integers; producers that write them as strings (`"1042"`,
/// common when the id is also the message key) are accepted.
fn customer_id(value: Option<Value>, path: &Pointer, problems: &mut Problems) -> Option<i64> {
    let id = match &value {
        None | Some(Value::Null) => {
            problems.error(path, "is required");
            return None;
        }
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    match id {
        Some(id) if id > 0 => Some(id),
        _ => {
            let got = value.as_ref().map_or("nothing", json_type_name);
            problems.error(path, format!("expected a positive integer, got {got}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_contract_example() {
        let e = EventEnvelope::decode(
            br#"{"id": "7d9c", "type": "customer.deposited", "customer_id": 1042,
                "occurred_at": "2026-11-25T10:15:00Z", "extra": {"ignored": true},
                "data": {"amount": 1500, "currency": "USD", "transaction": {"type": "deposit"}}}"#,
        )
        .unwrap();
        assert_eq!(e.id, "7d9c");
        assert_eq!(e.event_type, "customer.deposited");
        assert_eq!(e.customer_id, 1042);
        assert_eq!(e.key(), "1042");
        assert_eq!(e.occurred_at.unwrap().to_rfc3339(), "2026-11-25T10:15:00+00:00");
        assert_eq!(e.data["amount"], 1500);
    }

    #[test]
    fn optional_parts_default() {
        let e = EventEnvelope::decode(br#"{"id": "a", "type": "x.y", "customer_id": "7"}"#).unwrap();
        assert_eq!(e.customer_id, 7);
        assert!(e.occurred_at.is_none());
        assert!(e.data.is_empty());
    }

    #[test]
    fn reports_every_missing_or_bad_key() {
        let err =
            EventEnvelope::decode(br#"{"customer_id": -3, "occurred_at": "yesterday", "data": [1]}"#).unwrap_err();
        let EnvelopeError::Invalid(problems) = err else {
            panic!("expected invalid, got {err}")
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/id", "/type", "/customer_id", "/occurred_at", "/data"]);
    }

    #[test]
    fn carries_its_cause_and_old_envelopes_stay_valid() {
        let e = EventEnvelope::decode(
            br#"{"id": "run-1-0-status", "type": "customer.status_changed", "customer_id": 7,
                "cause": {"event_id": "e1", "workflow_id": "wf-a", "depth": 2, "root": "e0"}}"#,
        )
        .unwrap();
        let cause = e.cause.clone().unwrap();
        assert_eq!(
            (
                cause.event_id.as_str(),
                cause.workflow_id.as_str(),
                cause.depth,
                cause.root.as_deref()
            ),
            ("e1", "wf-a", 2, Some("e0"))
        );
        assert_eq!(serde_json::to_value(&e).unwrap()["cause"]["root"], "e0");
        assert_eq!(serde_json::to_value(&e).unwrap()["cause"]["depth"], 2);
        let old = EventEnvelope::decode(br#"{"id": "a", "type": "x.y", "customer_id": 7}"#).unwrap();
        assert!(old.cause.is_none());
        assert!(serde_json::to_value(&old).unwrap().get("cause").is_none());
    }

    #[test]
    fn reports_a_broken_cause_at_its_key() {
        let err = EventEnvelope::decode(
            br#"{"id": "a", "type": "x.y", "customer_id": 7, "cause": {"event_id": "", "depth": -1}}"#,
        )
        .unwrap_err();
        let EnvelopeError::Invalid(problems) = err else {
            panic!("expected invalid, got {err}")
        };
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/cause/event_id", "/cause/workflow_id", "/cause/depth"]);
        assert!(EventEnvelope::decode(br#"{"id": "a", "type": "x.y", "customer_id": 7, "cause": 3}"#).is_err());
    }

    #[test]
    fn garbage_is_a_json_error_not_a_panic() {
        for bytes in [&b""[..], b"not json", b"[1,2]", b"\xff\xfe", b"{\"id\": 1"] {
            assert!(EventEnvelope::decode(bytes).is_err());
        }
    }
}
