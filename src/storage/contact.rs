//! The contact policy's storage: the policy row, and the caps' count of each customer's
//! sends (crate::guards::contact).
//!
//! A counted send is a `contact_log` row keyed by its step's idempotency key, written by
//! the transaction that queues the send ([`super::steps::begin_external`]) with one
//! conditional statement: the row goes in only while every cap of its channel has room
//! over its sliding period. The partition's fence orders one customer's sends, the key
//! makes a replay count nothing twice, and the statement makes the check and the count
//! one. A send that finds no room is skipped or deferred in that same transaction and
//! leaves a `contact_held` row for the policy page's chart.

use super::sql::statement;
use super::{scheduled, StorageError};
use crate::guards::contact::{Cap, Channel, ContactPolicy, OnCap};
use crate::problem::Problems;
use chrono::{DateTime, DurationRound, Utc};
use sea_orm::{ConnectionTrait, Value as SqlValue};
use serde_json::{json, Value};

/// The stored policy; none (no caps) when it was never set. A stored policy that no longer
/// reads (only a damaged row: it was validated when written) caps nothing, with a warning.
pub async fn policy<C: ConnectionTrait>(conn: &C) -> Result<ContactPolicy, StorageError> {
    let Some(row) = conn
        .query_one(statement(
            conn,
            "SELECT policy FROM contact_policy WHERE id = 1",
            vec![],
        ))
        .await?
    else {
        return Ok(ContactPolicy::default());
    };
    let stored: Value = row.try_get("", "policy")?;
    let mut problems = Problems::default();
    Ok(ContactPolicy::from_value(&stored, &mut problems).unwrap_or_else(|| {
        tracing::warn!(problems = ?problems.into_vec(), "the stored contact policy does not read; nothing is capped");
        ContactPolicy::default()
    }))
}

/// Replaces the policy.
pub async fn put_policy<C: ConnectionTrait>(
    conn: &C,
    policy: &ContactPolicy,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let stored = serde_json::to_value(policy).map_err(|source| StorageError::Encode {
        what: "contact policy",
        source,
    })?;
    conn.execute(statement(
        conn,
        "INSERT INTO contact_policy (id, policy, updated_at, updated_by) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
        vec![stored.into(), now.into(), by.map(str::to_owned).into()],
    ))
    .await?;
    Ok(())
}

/// A message about to be queued, as the caps see it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub run_id: i64,
    pub customer_id: i64,
    pub partition: i32,
    pub channel: Channel,
    /// The step's idempotency key: one count per step, whatever replays.
    pub key: &'a str,
    /// The step, and the one after it (where a skip goes on).
    pub step: (i32, i32),
}

/// A send a cap held, as recorded with its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The step is skipped with the cap as its reason, the run moved on.
    Skipped(String),
    /// The run waits at the step until the cap's period has room.
    Deferred { until: DateTime<Utc>, reason: String },
}

/// Decides a send against the policy's caps inside the caller's fenced transaction (the
/// one that queues it): counts it if every cap of its channel has room (`None`: queue
/// it), else skips or defers its step per `on_cap`, recording which cap held it. A send
/// queued or counted before (a replay) and one no cap covers always go.
pub async fn take<C: ConnectionTrait>(
    conn: &C,
    send: &Message<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Held>, StorageError> {
    let policy = policy(conn).await?;
    let caps: Vec<&Cap> = policy.caps_of(send.channel).collect();
    if caps.is_empty() || queued(conn, send.key).await? {
        // Uncapped, or queued before (counted then, or before any cap existed).
        return Ok(None);
    }
    // One conditional statement: the row goes in only while every cap has room; a step
    // counted before (a replay) conflicts and counts nothing.
    let mut values: Vec<SqlValue> = vec![
        send.run_id.into(),
        send.key.into(),
        send.customer_id.into(),
        send.channel.name().into(),
        now.into(),
    ];
    let mut room = Vec::with_capacity(caps.len());
    for cap in &caps {
        let since = now - period(cap);
        values.push(since.into());
        values.push(i64::from(cap.max).into());
        let (s, m) = (values.len() - 1, values.len());
        room.push(format!(
            "(SELECT COUNT(*) FROM contact_log WHERE customer_id = $3 AND channel = $4 AND sent_at > ${s}) < ${m}"
        ));
    }
    let inserted = conn
        .execute(statement(
            conn,
            &format!(
                "INSERT INTO contact_log (run_id, step, customer_id, channel, sent_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE {} ON CONFLICT (run_id, step) DO NOTHING",
                room.join(" AND ")
            ),
            values,
        ))
        .await?
        .rows_affected();
    if inserted == 1 || counted(conn, send).await? {
        return Ok(None);
    }
    // Held: by the cap whose period makes room last.
    let mut held: Option<(DateTime<Utc>, &Cap)> = None;
    for cap in caps {
        if let Some(until) = room_at(conn, send, cap, now).await? {
            if held.is_none_or(|(later, _)| until > later) {
                held = Some((until, cap));
            }
        }
    }
    let Some((until, cap)) = held else {
        // No cap is full after all (the insert conflicted with a row gone since): go.
        return Ok(None);
    };
    let reason = cap.describe();
    let outcome = match policy.on_cap {
        OnCap::Skip => "skipped",
        OnCap::Defer => "deferred",
    };
    conn.execute(statement(
        conn,
        "INSERT INTO contact_held (run_id, step, customer_id, channel, outcome, at) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            send.run_id.into(),
            send.key.into(),
            send.customer_id.into(),
            send.channel.name().into(),
            outcome.into(),
            now.into(),
        ],
    ))
    .await?;
    let (step_index, next) = send.step;
    match policy.on_cap {
        OnCap::Skip => {
            super::progress::skip_in(conn, send.run_id, (step_index, next), &reason, now).await?;
            Ok(Some(Held::Skipped(reason)))
        }
        OnCap::Defer => {
            let result = json!({"waiting_for": "contact_cap", "until": crate::clock::rfc3339(until), "cap": reason});
            let why = format!("{reason}: waiting until {}", crate::clock::rfc3339(until));
            scheduled::schedule(conn, send.run_id, send.customer_id, send.partition, until, now).await?;
            super::progress::park_in(conn, send.run_id, step_index, &result, &why, now).await?;
            Ok(Some(Held::Deferred { until, reason }))
        }
    }
}

/// What the caps would decide for a send at `now`, changing nothing (the dry run): the cap
/// that would hold it, and when its period has room. `already` sends of the channel the
/// dry run previews before this one count as made.
pub async fn would_hold<'p, C: ConnectionTrait>(
    conn: &C,
    policy: &'p ContactPolicy,
    customer_id: i64,
    channel: Channel,
    already: u32,
    now: DateTime<Utc>,
) -> Result<Option<&'p Cap>, StorageError> {
    for cap in policy.caps_of(channel) {
        let row = conn
            .query_one(statement(
                conn,
                "SELECT COUNT(*) AS n FROM contact_log WHERE customer_id = $1 AND channel = $2 AND sent_at > $3",
                vec![customer_id.into(), channel.name().into(), (now - period(cap)).into()],
            ))
            .await?;
        let made = row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0);
        if made + i64::from(already) >= i64::from(cap.max) {
            return Ok(Some(cap));
        }
    }
    Ok(None)
}

/// Sends held by a cap since `since`, by hour, channel and outcome (the policy page).
pub async fn held_since<C: ConnectionTrait>(
    conn: &C,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, String, String, u64)>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT at, channel, outcome FROM contact_held WHERE at >= $1 ORDER BY at",
            vec![since.into()],
        ))
        .await?;
    let mut out: Vec<(DateTime<Utc>, String, String, u64)> = Vec::new();
    for row in rows {
        let at: DateTime<Utc> = row.try_get("", "at")?;
        let hour = at.duration_trunc(chrono::Duration::hours(1)).unwrap_or(at);
        let channel: String = row.try_get("", "channel")?;
        let outcome: String = row.try_get("", "outcome")?;
        match out
            .iter_mut()
            .find(|(h, c, o, _)| *h == hour && *c == channel && *o == outcome)
        {
            Some(entry) => entry.3 += 1,
            None => out.push((hour, channel, outcome, 1)),
        }
    }
    Ok(out)
}

/// Deletes counted sends older than any cap can look back, and held records as old
/// (the retention job). Returns how many rows went.
pub async fn prune<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>, batch: u64) -> Result<u64, StorageError> {
    let before = now - chrono::Duration::seconds(i64::try_from(crate::guards::contact::MAX_PER_SECS).unwrap_or(0));
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let log = conn
        .execute(statement(
            conn,
            "DELETE FROM contact_log WHERE (run_id, step) IN \
             (SELECT run_id, step FROM contact_log WHERE sent_at < $1 LIMIT $2)",
            vec![before.into(), limit.into()],
        ))
        .await?
        .rows_affected();
    let held = conn
        .execute(statement(
            conn,
            "DELETE FROM contact_held WHERE (run_id, step, at) IN \
             (SELECT run_id, step, at FROM contact_held WHERE at < $1 LIMIT $2)",
            vec![before.into(), limit.into()],
        ))
        .await?
        .rows_affected();
    Ok(log + held)
}

fn period(cap: &Cap) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(cap.per.as_secs()).unwrap_or(i64::MAX / 1000))
}

/// Whether the step's request is in the outbox already (a replay of a queued step).
async fn queued<C: ConnectionTrait>(conn: &C, key: &str) -> Result<bool, StorageError> {
    Ok(conn
        .query_one(statement(
            conn,
            "SELECT 1 AS one FROM outbox WHERE idempotency_key = $1",
            vec![key.into()],
        ))
        .await?
        .is_some())
}

/// Whether the step's send was counted before (a replay of a counted step).
async fn counted<C: ConnectionTrait>(conn: &C, send: &Message<'_>) -> Result<bool, StorageError> {
    Ok(conn
        .query_one(statement(
            conn,
            "SELECT 1 AS one FROM contact_log WHERE run_id = $1 AND step = $2",
            vec![send.run_id.into(), send.key.into()],
        ))
        .await?
        .is_some())
}

/// When `cap`'s period next has room for the customer, if it is full now: the time its
/// `max`-th newest counted send leaves the period.
async fn room_at<C: ConnectionTrait>(
    conn: &C,
    send: &Message<'_>,
    cap: &Cap,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT sent_at FROM contact_log WHERE customer_id = $1 AND channel = $2 AND sent_at > $3 \
             ORDER BY sent_at DESC LIMIT 1 OFFSET $4",
            vec![
                send.customer_id.into(),
                send.channel.name().into(),
                (now - period(cap)).into(),
                i64::from(cap.max.saturating_sub(1)).into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let sent_at: DateTime<Utc> = row.try_get("", "sent_at")?;
    // Just past the moment it leaves the period (`sent_at > now - per` counts it until then).
    Ok(Some(sent_at + period(cap) + chrono::Duration::milliseconds(1)))
}
