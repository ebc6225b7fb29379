//! Runs waiting for their customer's next event (a journey's `wait_for_event`), and the
//! two ways a wait ends: the awaited event, or the timeout.
//!
//! A waiting run is a `waits` row and a `scheduled` row due at the timeout; it holds no
//! executor and no memory. Exactly one outcome happens, once: each way of ending deletes
//! the `waits` row first and goes on only if it deleted it.
//! - The awaited event ends it in the transaction that records the event's plan, so only
//!   an event planned after the wait was committed (the customer's next one, in the
//!   customer's order) can end it, and a redelivered event, whose plan was recorded
//!   before, never does. The run's continuation is rescheduled for now (its claim
//!   cleared, so a resume of the timeout in flight finds it is no longer what it claimed),
//!   and the chain goes on from the wait's `on_event` through the scheduler, queued
//!   behind the customer's work of the moment.
//! - The timeout ends it in the transaction that takes the due continuation off the
//!   schedule ([`time_out`]).
//!
//! Both commit under the partition's fence. On PostgreSQL the second `DELETE` of the row
//! waits for the first transaction and then finds nothing; SQLite has one writer.
//!
//! Whichever way it ends, the step records it (`{"timed_out": bool, "event": ...}`), the
//! rows of the other outcome's steps are deleted (a run shows only the path it took) and
//! the run's next step becomes the outcome's first one.

use super::ownership::Fence;
use super::progress::{mark_step_done, status, step_status};
use super::sql::statement;
use super::{scheduled, Database, StorageError};
use crate::conditions::{holds, ConditionNode, Facts, Journey, Limits};
use crate::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult};
use serde_json::{json, Map, Value};

/// The default of `engine.max_waits_per_customer`: far more journeys than a customer is in
/// at once, few enough that an event reads its customer's waits in one small query.
pub const DEFAULT_MAX_PER_CUSTOMER: u32 = 100;

/// A run about to wait, with everything its two outcomes need.
#[derive(Debug, Clone)]
pub struct Park<'a> {
    pub run_id: i64,
    pub customer_id: i64,
    pub partition: i32,
    /// The wait step's index.
    pub step_index: i32,
    /// The first step of `on_timeout`; `on_event`'s are `step_index + 1 .. split`.
    pub split: i32,
    /// Past the last step of `on_timeout`.
    pub end: i32,
    /// Where the run goes on when the event comes, and when the timeout passes.
    pub event_next: i32,
    pub timeout_next: i32,
    pub event_type: &'a str,
    /// The wait's conditions, as validated.
    pub conditions: Option<&'a ConditionNode>,
    /// What the run's named steps produced so far (`steps.*` of the conditions).
    pub steps: &'a Map<String, Value>,
    pub due_at: DateTime<Utc>,
    /// How many runs the customer may have waiting (`engine.max_waits_per_customer`).
    pub max_waits: u32,
}

/// What became of a run that asked to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    Waiting,
    /// The customer already has `max_waits` runs waiting: nothing was written.
    Full,
}

/// Parks a run on its wait step, in one fenced transaction: the wait, its timeout as a
/// scheduled continuation, the step `waiting` and the run `waiting` at that step. The
/// customer's waits are counted first, in the same transaction: a producer that starts
/// runs without end for one customer fills their allowance, not the table, and every event
/// of theirs reads at most `max_waits` rows ([`resolve_event`]). One customer's runs
/// park one at a time under the partition's fence, so the count cannot race.
pub async fn park(db: &Database, fence: Fence, wait: &Park<'_>, now: DateTime<Utc>) -> Result<Parked, StorageError> {
    let conditions = match wait.conditions {
        Some(node) => Some(serde_json::to_value(node).map_err(|source| StorageError::Encode {
            what: "wait conditions",
            source,
        })?),
        None => None,
    };
    let until = crate::clock::rfc3339(wait.due_at);
    let waiting = json!({"waiting_for": wait.event_type, "until": until});
    let reason = format!("waiting for {} until {until}", wait.event_type);
    db.fenced(fence, async |txn| {
        let parked = txn
            .query_one(statement(
                txn,
                "SELECT COUNT(*) AS n FROM waits WHERE customer_id = $1",
                vec![wait.customer_id.into()],
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if parked >= i64::from(wait.max_waits) {
            return Ok(Parked::Full);
        }
        txn.execute(statement(
            txn,
            "INSERT INTO waits (run_id, customer_id, event_type, partition, step_index, split, end_index, \
             event_next, timeout_next, conditions, steps, started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                wait.run_id.into(),
                wait.customer_id.into(),
                wait.event_type.into(),
                wait.partition.into(),
                wait.step_index.into(),
                wait.split.into(),
                wait.end.into(),
                wait.event_next.into(),
                wait.timeout_next.into(),
                conditions.clone().into(),
                Value::Object(wait.steps.clone()).into(),
                now.into(),
            ],
        ))
        .await?;
        scheduled::schedule(txn, wait.run_id, wait.customer_id, wait.partition, wait.due_at, now).await?;
        txn.execute(statement(
            txn,
            "UPDATE run_steps SET status = $1, result = $2, attempts = attempts + 1, \
             started_at = COALESCE(started_at, $3) WHERE run_id = $4 AND step_index = $5",
            vec![
                step_status::WAITING.into(),
                waiting.clone().into(),
                now.into(),
                wait.run_id.into(),
                wait.step_index.into(),
            ],
        ))
        .await?;
        txn.execute(statement(
            txn,
            "UPDATE runs SET status = $1, reason = $2, updated_at = $3 WHERE id = $4",
            vec![
                status::WAITING.into(),
                reason.clone().into(),
                now.into(),
                wait.run_id.into(),
            ],
        ))
        .await?;
        Ok(Parked::Waiting)
    })
    .await
}

/// Ends, inside the caller's transaction (the one recording `event`'s plan, fenced by its
/// partition), every wait of the event's customer for its type whose conditions the event
/// meets, oldest first. Returns the runs it woke, each rescheduled to go on now. A wait
/// whose conditions cannot be judged is left to its timeout.
pub async fn resolve_event<C: ConnectionTrait>(
    conn: &C,
    event: &EventEnvelope,
    customer: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT w.run_id, w.partition, w.step_index, w.split, w.end_index, w.event_next, \
             w.conditions, w.steps, r.event AS trigger_event \
             FROM waits w JOIN runs r ON r.id = w.run_id \
             WHERE w.customer_id = $1 AND w.event_type = $2 ORDER BY w.started_at, w.run_id",
            vec![event.customer_id.into(), event.event_type.as_str().into()],
        ))
        .await?;
    let mut woken = Vec::new();
    for row in rows {
        let wait = Waiting::from_row(&row)?;
        if !wait.admits(event, customer) {
            continue;
        }
        if !take(conn, wait.run_id).await? {
            continue;
        }
        let result = json!({
            "timed_out": false,
            "event": event.data,
            "event_id": event.id,
            "event_type": event.event_type,
        });
        let outcome = Outcome {
            run_id: wait.run_id,
            step_index: wait.step_index,
            dropped: (wait.split, wait.end),
            next: wait.event_next,
            result: &result,
        };
        outcome.record(conn, now).await?;
        scheduled::schedule(conn, wait.run_id, event.customer_id, wait.partition, now, now).await?;
        woken.push(wait.run_id);
    }
    Ok(woken)
}

/// Ends the wait of `run_id` by its timeout, inside the transaction that took its due
/// continuation off the schedule and woke the run. Returns false, changing nothing, when
/// the run has no wait (the continuation was a delay's, or the awaited event ended the
/// wait first).
pub async fn time_out<C: ConnectionTrait>(conn: &C, run_id: i64, now: DateTime<Utc>) -> Result<bool, StorageError> {
    let Some(row) = conn
        .query_one(statement(
            conn,
            "SELECT step_index, split, end_index, timeout_next FROM waits WHERE run_id = $1",
            vec![run_id.into()],
        ))
        .await?
    else {
        return Ok(false);
    };
    if !take(conn, run_id).await? {
        return Ok(false);
    }
    let step_index: i32 = row.try_get("", "step_index")?;
    let split: i32 = row.try_get("", "split")?;
    let result = json!({"timed_out": true});
    Outcome {
        run_id,
        step_index,
        dropped: (step_index + 1, split),
        next: row.try_get("", "timeout_next")?,
        result: &result,
    }
    .record(conn, now)
    .await?;
    Ok(true)
}

/// Deletes the wait of `run_id`, if any (its run was cancelled).
pub async fn forget<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<(), StorageError> {
    take(conn, run_id).await.map(drop)
}

/// Cancels `run_id` inside the caller's fenced transaction if it is waiting (an
/// `exit_when` rule, a goal with `exit`): `cancelled` with `reason`, its continuation and
/// its wait deleted, its waiting step back to pending. False, changing nothing, for a run
/// in any other state.
pub async fn cancel_waiting<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let moved = conn
        .execute(statement(
            conn,
            "UPDATE runs SET status = $1, error = $2, reason = NULL, updated_at = $3 WHERE id = $4 AND status = $5",
            vec![
                status::CANCELLED.into(),
                reason.into(),
                now.into(),
                run_id.into(),
                status::WAITING.into(),
            ],
        ))
        .await?
        .rows_affected();
    if moved == 0 {
        return Ok(false);
    }
    conn.execute(statement(
        conn,
        "DELETE FROM scheduled WHERE run_id = $1",
        vec![run_id.into()],
    ))
    .await?;
    forget(conn, run_id).await?;
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1 WHERE run_id = $2 AND status = $3",
        vec![step_status::PENDING.into(), run_id.into(), step_status::WAITING.into()],
    ))
    .await?;
    Ok(true)
}

/// Deletes the wait row of `run_id`: true for the one transaction that deleted it.
async fn take<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<bool, StorageError> {
    let deleted = conn
        .execute(statement(
            conn,
            "DELETE FROM waits WHERE run_id = $1",
            vec![run_id.into()],
        ))
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// A wait as [`resolve_event`] reads it.
struct Waiting {
    run_id: i64,
    partition: i32,
    step_index: i32,
    split: i32,
    end: i32,
    event_next: i32,
    conditions: Option<Value>,
    steps: Map<String, Value>,
    trigger: Value,
}

impl Waiting {
    fn from_row(row: &QueryResult) -> Result<Self, StorageError> {
        let steps: Value = row.try_get("", "steps")?;
        Ok(Self {
            run_id: row.try_get("", "run_id")?,
            partition: row.try_get("", "partition")?,
            step_index: row.try_get("", "step_index")?,
            split: row.try_get("", "split")?,
            end: row.try_get("", "end_index")?,
            event_next: row.try_get("", "event_next")?,
            conditions: row.try_get("", "conditions")?,
            steps: match steps {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            trigger: row.try_get("", "trigger_event")?,
        })
    }

    /// Whether `event` meets the wait's conditions. A stored tree or trigger that cannot be
    /// read (it was written by this code, so only a damaged row) admits nothing: the
    /// timeout ends that wait.
    fn admits(&self, event: &EventEnvelope, customer: &Map<String, Value>) -> bool {
        let Some(conditions) = &self.conditions else {
            return true;
        };
        let (Ok(node), Ok(trigger)) = (
            serde_json::from_value::<ConditionNode>(conditions.clone()),
            EventEnvelope::from_value(self.trigger.clone()),
        ) else {
            tracing::warn!(
                run_id = self.run_id,
                "a waiting run's conditions cannot be read; its timeout ends it"
            );
            return false;
        };
        let facts = Facts {
            journey: Some(Journey {
                trigger: &trigger,
                steps: &self.steps,
            }),
            ..Facts::new(event, customer)
        };
        match holds(&node, facts, &Limits::saved()) {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(run_id = self.run_id, error = %e, "a waiting run's conditions do not compile; its timeout ends it");
                false
            }
        }
    }
}

/// One way a wait ended, as its step records it.
struct Outcome<'a> {
    run_id: i64,
    step_index: i32,
    /// The other outcome's steps, `[from, to)`: their rows go.
    dropped: (i32, i32),
    next: i32,
    result: &'a Value,
}

impl Outcome<'_> {
    async fn record<C: ConnectionTrait>(&self, conn: &C, now: DateTime<Utc>) -> Result<(), StorageError> {
        mark_step_done(conn, self.run_id, self.step_index, self.result, now).await?;
        drop_steps(conn, self.run_id, self.dropped).await?;
        conn.execute(statement(
            conn,
            "UPDATE runs SET next_step = $1, reason = NULL, updated_at = $2 WHERE id = $3",
            vec![self.next.into(), now.into(), self.run_id.into()],
        ))
        .await?;
        Ok(())
    }
}

/// Deletes the step rows `[from, to)` of a run: the steps of a path it did not take.
pub async fn drop_steps<C: ConnectionTrait>(conn: &C, run_id: i64, (from, to): (i32, i32)) -> Result<(), StorageError> {
    if from < to {
        conn.execute(statement(
            conn,
            "DELETE FROM run_steps WHERE run_id = $1 AND step_index >= $2 AND step_index < $3",
            vec![run_id.into(), from.into(), to.into()],
        ))
        .await?;
    }
    Ok(())
}
