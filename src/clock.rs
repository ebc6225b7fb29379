//! Time as a dependency: what runs chains, retries and leases asks a [`Clock`] for the
//! time and for sleeps, so tests drive time instead of sleeping through it.
//!
//! [`SystemClock`] is the real one. [`ManualClock`] is for tests: its time moves only when
//! the test advances it, or when something sleeps on it (a sleep returns at once and moves
//! the clock forward by its length), so a retry with backoff or a lease that runs out is
//! tested in microseconds, deterministically.

use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A sleep in progress.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the engine's code gets the time from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Waits `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// The system's time and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock for tests: time stands still until advanced; a sleep advances it and returns.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }

    /// Sets the clock (forward or back).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

/// A clock for tests whose sleeps wait until the test moves it past their end (a
/// [`ManualClock`]'s return at once and move it themselves): a scheduler or a chain
/// waiting on a timer or a lease stays waiting until the test says that much time passed.
#[derive(Debug, Clone)]
pub struct SteppedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: Arc<tokio::sync::Notify>,
}

impl SteppedClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::default(),
        }
    }

    /// Moves the clock forward and wakes the sleeps that are over.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) +=
            chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.moved.notify_waiters();
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        let until = self.now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let clock = self.clone();
        Box::pin(async move {
            loop {
                // Registered before the check, so an advance between the two is not missed.
                let moved = clock.moved.notified();
                if clock.now() >= until {
                    return;
                }
                moved.await;
            }
        })
    }
}

/// Timestamps in snapshots and payloads: RFC 3339 in UTC with a `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_manual_clock_moves_only_when_told_or_slept_on() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(5));
        futures_util::FutureExt::now_or_never(clock.sleep(Duration::from_secs(60))).expect("sleep returns at once");
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(65));
    }
}
