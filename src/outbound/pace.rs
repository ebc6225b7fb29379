//! When an attempt may leave: a slot under its destination's rate limit (if it has one),
//! then one of the process's request slots.
//!
//! The order matters: a request waits for its rate slot holding nothing, so a limited
//! destination's queue never takes request slots from other destinations, and the
//! customer's chain (which awaits its delivery) is the only work it holds up. The wait is
//! on the system clock, not the delivery's jittered one: a slot is a time, and a request
//! that leaves more than [`rates::GUARD`] after its slot gives it up and reserves another.

use super::error::DeliveryError;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::storage::rates::{self, Rate, Slot};
use crate::storage::Database;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What an attempt waits for before it leaves.
pub struct Pace {
    /// The process's request slots (`delivery.concurrency`).
    slots: Arc<Semaphore>,
    /// Where rate slots are reserved; `None` sends limited requests unpaced (tests of the
    /// sender alone).
    rates: Option<Database>,
    clock: SharedClock,
}

impl Pace {
    pub fn new(concurrency: usize, rates: Option<Database>, clock: SharedClock) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            rates,
            clock,
        }
    }

    /// Waits until an attempt for a request limited by `rate` may leave, and returns the
    /// request slot it holds while out. `latest` is the last time it may leave (its
    /// lease); a rate slot only after that is not taken, and the attempt is told
    /// [`DeliveryError::LeaseOver`], so the chain takes a new lease and asks again.
    pub async fn admit(
        &self,
        rate: Option<&Rate>,
        latest: Option<DateTime<Utc>>,
    ) -> Result<OwnedSemaphorePermit, DeliveryError> {
        let (Some(rate), Some(db)) = (rate, &self.rates) else {
            return self.request_slot().await;
        };
        let mut queued = None;
        loop {
            let now = self.clock.now();
            let reserved = rates::reserve(db, rate, now, latest.unwrap_or(DateTime::<Utc>::MAX_UTC))
                .await
                .map_err(|e| DeliveryError::Transient(format!("reserving a slot under the rate limit failed: {e}")))?;
            let at = match reserved {
                Slot::At(at) => at,
                Slot::Beyond(at) => {
                    tracing::info!(destination = %rate.key, first_free = %at, "no slot under the rate limit within the delivery's lease");
                    return Err(DeliveryError::LeaseOver);
                }
            };
            if at > now {
                queued.get_or_insert_with(|| Metrics::global().rate_queued(&rate.key));
                self.clock.sleep((at - now).to_std().unwrap_or_default()).await;
            }
            let permit = self.request_slot().await?;
            let late = self.clock.now() - at;
            if late <= chrono::Duration::from_std(rates::GUARD).unwrap_or_default() {
                return Ok(permit);
            }
            // Too late for its slot (the request slots were all taken): leaving now could
            // crowd a later window, so give the slot up and reserve again.
            tracing::debug!(destination = %rate.key, late_ms = late.num_milliseconds(), "rate slot missed; reserving another");
        }
    }

    async fn request_slot(&self) -> Result<OwnedSemaphorePermit, DeliveryError> {
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| DeliveryError::Transient("the delivery pool is closed".to_owned()))
    }
}
