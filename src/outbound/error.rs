//! Why a request was not delivered, and whether that is worth another attempt: shared by
//! the sender ([`super::send`]) and what paces its attempts ([`super::pace`]).

use crate::retry::{Classify, Verdict};
use std::time::Duration;

/// Why a request was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Will not be retried: a 4xx other than 408/429, a refused or malformed target, an
    /// invalid header.
    #[error("{0}")]
    Permanent(String),
    /// Retried until the attempts run out.
    #[error("{0}")]
    Transient(String),
    /// Retried, not before the server's `Retry-After` (capped by the backoff maximum).
    #[error("{0}")]
    RetryAfter(String, Duration),
    /// Not attempted: the attempt could outlast the sender's lease on the delivery.
    #[error("the delivery's lease ran out before the next attempt")]
    LeaseOver,
}

impl DeliveryError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent(_))
    }
}

impl Classify for DeliveryError {
    fn verdict(&self) -> Verdict {
        match self {
            DeliveryError::Permanent(_) | DeliveryError::LeaseOver => Verdict::Permanent,
            DeliveryError::Transient(_) => Verdict::Transient,
            DeliveryError::RetryAfter(_, after) => Verdict::After(*after),
        }
    }
}
