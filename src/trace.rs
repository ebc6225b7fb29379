//! W3C trace context (`traceparent`) carried from an event to what it causes.
//!
//! A producer that traces its requests puts a `traceparent` header on the Kafka message
//! (or on `POST /api/v1/events`). The engine keeps it with the event's runs, names its trace
//! id in the log lines of the work it does for the event, and passes the trace on: as the
//! `traceparent` header of outgoing webhooks, emails and SMS requests and of the events it
//! emits. So a tracing backend shows a deposit, the workflow it started and the webhook that
//! workflow called as one trace.
//!
//! Each hop the engine passes on gets a parent id derived from what is sent (the delivery's
//! idempotency key, the emitted event's id): stable across retries of the same delivery,
//! distinct between deliveries, and known when the delivery is queued, in the transaction
//! of its step. Built with the `otlp` feature, the engine also exports spans of its own
//! that continue the trace ([`crate::telemetry::continue_trace`]); the hops' parent ids are
//! not among them. Only version `00` is understood; any other or a malformed value is
//! ignored, as the W3C recommendation says a receiver should.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Header name, on Kafka messages and HTTP requests alike.
pub const HEADER: &str = "traceparent";

/// A parsed `traceparent`: `00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a header value is not a usable trace context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent: {0}")]
pub struct InvalidTraceParent(&'static str);

impl TraceParent {
    /// Reads a header value, `None` when it is absent or invalid (a bad trace header must
    /// never stop an event).
    pub fn from_header(value: Option<&[u8]>) -> Option<Self> {
        std::str::from_utf8(value?).ok()?.parse().ok()
    }

    /// The trace id as 32 lowercase hex digits, as log lines name it.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The trace id's 16 bytes.
    pub fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The id of the producer's span, the parent of what the engine does for the event.
    pub fn parent_id_bytes(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags (bit 0: the producer sampled the trace).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// The context for a hop this engine makes on behalf of the traced event: same trace,
    /// same flags, a parent id derived from this context's and from `hop` (what identifies
    /// the hop), so equal requests made for different events are still different hops.
    pub fn child(&self, hop: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(self.trace_id)
            .chain_update(self.parent_id)
            .chain_update(hop.as_bytes())
            .finalize();
        let mut parent_id = [0u8; 8];
        parent_id.copy_from_slice(&digest[..8]);
        if parent_id == [0; 8] {
            parent_id[7] = 1; // all zeroes is invalid
        }
        Self { parent_id, ..*self }
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value.len() != 55 {
            return Err(InvalidTraceParent("expected 55 characters"));
        }
        let mut parts = value.split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidTraceParent("expected four dash-separated fields"));
        };
        if version != "00" {
            return Err(InvalidTraceParent("only version 00 is understood"));
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        let mut flag = [0u8; 1];
        unhex(trace, &mut trace_id)?;
        unhex(parent, &mut parent_id)?;
        unhex(flags, &mut flag)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(InvalidTraceParent("an all-zero id"));
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags: flag[0],
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex only, as the recommendation requires.
fn unhex(text: &str, out: &mut [u8]) -> Result<(), InvalidTraceParent> {
    if text.len() != out.len() * 2 {
        return Err(InvalidTraceParent("a field of the wrong length"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(InvalidTraceParent("not lowercase hex")),
    };
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_round_trips() {
        let parsed: TraceParent = GIVEN.parse().unwrap();
        assert_eq!(parsed.to_string(), GIVEN);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceParent::from_header(Some(GIVEN.as_bytes())), Some(parsed));
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?}");
        }
        assert_eq!(TraceParent::from_header(Some(&[0xff, 0xfe])), None);
        assert_eq!(TraceParent::from_header(None), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_and_gets_a_stable_parent_per_hop() {
        let parsed: TraceParent = GIVEN.parse().unwrap();
        let a = parsed.child("run-1-2");
        assert_eq!(a.trace_id(), parsed.trace_id());
        assert_eq!(a.flags, parsed.flags);
        assert_ne!(a.parent_id, parsed.parent_id);
        assert_eq!(a, parsed.child("run-1-2"));
        assert_ne!(a, parsed.child("run-1-3"));
        assert!(a.to_string().parse::<TraceParent>().is_ok());
    }
}
