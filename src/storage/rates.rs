//! Provider rate limits shared by every node: a send slot per request, reserved in the
//! database before the request leaves (docs/contact-policy.md, "Provider rate limits").
//!
//! A destination limited to `r` requests per second keeps its last `r` slots in a ring
//! (`rate_slots`, migration 000025). A new slot goes at the latest of: now, the slot `r`
//! places back plus [`WINDOW`], and the destination's latest slot (so slots never go back
//! in time, whatever the clocks of the nodes that reserve them). Then every `r + 1`
//! consecutive slots span at least `WINDOW`, so no window of that length holds more than
//! `r` of them. The sender waits for its slot and goes only if it is less than [`GUARD`]
//! late; a window of one second of actual sends therefore lies inside a window of
//! `WINDOW` of slots, and holds at most `r` requests, on any number of nodes.
//!
//! One reservation is one short transaction that begins with a write to the
//! destination's `rate_limits` row: that row's lock puts reservations from every node in
//! one order, on PostgreSQL (a row lock) and SQLite (the write lock) alike. A slot that
//! is not used (its sender died, or woke too late) is simply lost: the limit errs on the
//! side of sending less, never more.

use super::sql::statement;
use super::{Database, StorageError};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use std::time::Duration;

/// How late after its slot a request may still leave; later, the slot is given up and a
/// new one reserved. Covers the sender's wake-up and taking a request slot.
pub const GUARD: Duration = Duration::from_millis(50);

/// The span `r + 1` consecutive slots cover at least: one second, and the guard.
pub const WINDOW: Duration = Duration::from_millis(1000 + GUARD.as_millis() as u64);

/// The highest rate a destination may have: far above what providers allow, and it
/// bounds a destination's ring of slots.
pub const MAX_PER_SEC: u32 = 10_000;

/// A destination's limit, carried by each request built for it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rate {
    /// `email`, `sms_provider:<id>` or `webhook_endpoint:<id>`: whose slots.
    pub key: String,
    pub per_sec: u32,
}

/// A reservation's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Send at this time (now or later).
    At(DateTime<Utc>),
    /// The first free slot is after the latest time asked for; nothing was reserved.
    Beyond(DateTime<Utc>),
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Reserves the next slot of `rate` at or after `now`, if it is not after `latest`.
pub async fn reserve(
    db: &Database,
    rate: &Rate,
    now: DateTime<Utc>,
    latest: DateTime<Utc>,
) -> Result<Slot, StorageError> {
    let per_sec = i64::from(rate.per_sec.clamp(1, MAX_PER_SEC));
    let txn = db.connection().begin().await?;
    // The destination's row first: its lock orders the reservations. A rate that changed
    // starts a new ring (n = -1 marks it), its first slot a window after the old latest.
    let row = txn
        .query_one(statement(
            &txn,
            "INSERT INTO rate_limits (key, per_sec, n, last_ms) VALUES ($1, $2, 0, 0) \
             ON CONFLICT (key) DO UPDATE SET \
             n = CASE WHEN rate_limits.per_sec = excluded.per_sec THEN rate_limits.n + 1 ELSE -1 END, \
             per_sec = excluded.per_sec \
             RETURNING n, last_ms",
            vec![rate.key.clone().into(), per_sec.into()],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("rate limit {}", rate.key)))?;
    let n: i64 = row.try_get("", "n")?;
    let last_ms: i64 = row.try_get("", "last_ms")?;
    let window = WINDOW.as_millis() as i64;
    let (n, floor) = if n < 0 {
        txn.execute(statement(
            &txn,
            "DELETE FROM rate_slots WHERE key = $1",
            vec![rate.key.clone().into()],
        ))
        .await?;
        txn.execute(statement(
            &txn,
            "UPDATE rate_limits SET n = 0 WHERE key = $1",
            vec![rate.key.clone().into()],
        ))
        .await?;
        (0, last_ms + window)
    } else {
        let i = n % per_sec;
        let back = txn
            .query_one(statement(
                &txn,
                "SELECT at_ms FROM rate_slots WHERE key = $1 AND i = $2",
                vec![rate.key.clone().into(), i.into()],
            ))
            .await?;
        let floor = match back {
            Some(row) => row.try_get::<i64>("", "at_ms")? + window,
            None => i64::MIN,
        };
        (n, floor.max(last_ms))
    };
    let slot = millis(now).max(floor);
    if slot > millis(latest) {
        txn.rollback().await?;
        return Ok(Slot::Beyond(time(slot)));
    }
    txn.execute(statement(
        &txn,
        "INSERT INTO rate_slots (key, i, at_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (key, i) DO UPDATE SET at_ms = excluded.at_ms",
        vec![rate.key.clone().into(), (n % per_sec).into(), slot.into()],
    ))
    .await?;
    txn.execute(statement(
        &txn,
        "UPDATE rate_limits SET last_ms = $2 WHERE key = $1",
        vec![rate.key.clone().into(), slot.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(Slot::At(time(slot)))
}
