//! One way to retry: a failure is either transient (the same call may succeed later: a
//! database or broker outage, a 503) or permanent (it would fail again: bad data, a 404, a
//! fenced partition), and transient failures are retried with capped exponential backoff.
//!
//! Every loop that retries (the executor's database calls, the matcher's set loading, the
//! consumer's recovery and dead-lettering, deliveries) uses this, so the split and the
//! backoff are decided in one place and tested with a [`ManualClock`](crate::clock::ManualClock).

use crate::clock::Clock;
use std::future::Future;
use std::time::Duration;

/// What to do after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the backoff.
    Transient,
    /// Try again, but not before this long (a server's `Retry-After`), capped by the
    /// backoff's maximum.
    After(Duration),
    /// Give up: it would fail again.
    Permanent,
}

/// Errors that know whether retrying can help.
pub trait Classify {
    fn verdict(&self) -> Verdict;
}

/// Capped exponential backoff: `initial`, doubled per attempt, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// 50 ms doubling to 5 s: database and broker calls.
    pub const STORAGE: Backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_secs(5),
    };

    /// The wait after failed attempt `attempt` (counted from 1).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max)
    }

    /// The wait after failed attempt `attempt` with `verdict`; `None` for a permanent one.
    pub fn wait(&self, attempt: u32, verdict: Verdict) -> Option<Duration> {
        match verdict {
            Verdict::Permanent => None,
            Verdict::Transient => Some(self.delay(attempt)),
            Verdict::After(at_least) => Some(at_least.min(self.max).max(self.delay(attempt))),
        }
    }
}

/// How a retried operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried<T, E> {
    Ok(T),
    /// A permanent failure, or the last of `max_attempts` transient ones.
    Failed {
        error: E,
        attempts: u32,
    },
}

/// Calls `f` until it succeeds, fails permanently, `max_attempts` are made (`None`: no
/// limit) or `give_up` says so (checked before every wait, e.g. "this partition was
/// revoked"). `on_retry` sees each failure that is retried, with the wait before the next
/// attempt (for logs and metrics).
pub async fn retry<T, E, F, Fut>(
    clock: &dyn Clock,
    backoff: Backoff,
    max_attempts: Option<u32>,
    mut give_up: impl FnMut() -> bool,
    mut on_retry: impl FnMut(&E, u32, Duration),
    mut f: F,
) -> Retried<T, E>
where
    E: Classify,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match f().await {
            Ok(v) => return Retried::Ok(v),
            Err(e) => e,
        };
        let last = max_attempts.is_some_and(|max| attempt >= max);
        match backoff.wait(attempt, error.verdict()) {
            Some(wait) if !last && !give_up() => {
                on_retry(&error, attempt, wait);
                clock.sleep(wait).await;
            }
            _ => {
                return Retried::Failed {
                    error,
                    attempts: attempt,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{TimeZone, Utc};

    #[derive(Debug, PartialEq)]
    struct E(Verdict);
    impl Classify for E {
        fn verdict(&self) -> Verdict {
            self.0
        }
    }

    fn clock() -> ManualClock {
        ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap())
    }

    const B: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
    };

    #[test]
    fn backoff_doubles_and_is_capped() {
        let waits: Vec<u128> = (1..=6).map(|a| B.delay(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(B.delay(u32::MAX), Duration::from_secs(1));
        assert_eq!(B.wait(1, Verdict::Permanent), None);
        assert_eq!(
            B.wait(1, Verdict::After(Duration::from_millis(700))),
            Some(Duration::from_millis(700))
        );
        assert_eq!(
            B.wait(1, Verdict::After(Duration::from_secs(3600))),
            Some(Duration::from_secs(1))
        );
    }

    #[actix_rt::test]
    async fn transient_failures_are_retried_with_backoff_until_success() {
        let clock = clock();
        let start = clock.now();
        let mut calls = 0;
        let mut seen = Vec::new();
        let out = retry(
            &clock,
            B,
            None,
            || false,
            |_: &E, n, wait| seen.push((n, wait)),
            || {
                calls += 1;
                let ok = calls == 4;
                async move {
                    if ok {
                        Ok(calls)
                    } else {
                        Err(E(Verdict::Transient))
                    }
                }
            },
        )
        .await;
        assert_eq!(out, Retried::Ok(4));
        assert_eq!(seen.len(), 3);
        assert_eq!((clock.now() - start).num_milliseconds(), 100 + 200 + 400);
    }

    #[actix_rt::test]
    async fn permanent_failures_stop_at_once_and_attempts_are_bounded() {
        let clock = clock();
        let out: Retried<(), E> = retry(
            &clock,
            B,
            None,
            || false,
            |_, _, _| {},
            || async { Err(E(Verdict::Permanent)) },
        )
        .await;
        assert_eq!(
            out,
            Retried::Failed {
                error: E(Verdict::Permanent),
                attempts: 1
            }
        );
        let out: Retried<(), E> = retry(
            &clock,
            B,
            Some(3),
            || false,
            |_, _, _| {},
            || async { Err(E(Verdict::Transient)) },
        )
        .await;
        assert_eq!(
            out,
            Retried::Failed {
                error: E(Verdict::Transient),
                attempts: 3
            }
        );
        let out: Retried<(), E> = retry(
            &clock,
            B,
            None,
            || true,
            |_, _, _| {},
            || async { Err(E(Verdict::Transient)) },
        )
        .await;
        assert_eq!(
            out,
            Retried::Failed {
                error: E(Verdict::Transient),
                attempts: 1
            }
        );
    }
}
