//! Runs watching for their workflow's goal (`"goal"`, crate::experiment::goal): one
//! `goals` row per run, written with the run, deleted when the goal is reached.
//!
//! An arriving event of a goal's type looks its customer's rows up by (customer, event
//! type) in the transaction that records its plan, as waits are ([`super::waits`]), so a
//! goal is never found by a scan, and only an event planned after the run was recorded
//! can reach it (never the run's own trigger, never a redelivery). Marking the run is one
//! conditional statement (`goal_reached_at IS NULL`), so a run reaches its goal at most
//! once whatever replays; the row's deletion in the same transaction keeps later events
//! from reading it.
//!
//! A row past its window is deleted by the first event that reads it and by the
//! retention job.

use super::sql::statement;
use super::{waits, StorageError};
use crate::conditions::{holds, ConditionNode, Facts, Journey, Limits};
use crate::envelope::EventEnvelope;
use crate::experiment::goal::{self, Goal};
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Map, Value};

/// Most goal rows one event reads: a customer with more runs watching one goal event than
/// this (a workflow without limits entered thousands of times in its window) has the
/// oldest ones judged, and the rest by the customer's next such event.
pub const MAX_PER_EVENT: u64 = 1000;

/// Starts watching for `goal` on behalf of a run just recorded at `now`.
pub async fn watch<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    customer_id: i64,
    goal: &Goal,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let conditions = match &goal.conditions {
        Some(node) => Some(serde_json::to_value(node).map_err(|source| StorageError::Encode {
            what: "goal conditions",
            source,
        })?),
        None => None,
    };
    let until = now + chrono::Duration::seconds(i64::try_from(goal.within.as_secs()).unwrap_or(i64::MAX / 1000));
    conn.execute(statement(
        conn,
        "INSERT INTO goals (run_id, customer_id, event_type, conditions, until, exit_run) VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            run_id.into(),
            customer_id.into(),
            goal.event.as_str().into(),
            conditions.into(),
            until.into(),
            goal.exit.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A run whose goal an event reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub run_id: i64,
    pub workflow_id: String,
    /// The run was waiting and its goal has `exit`: it was cancelled.
    pub exited: bool,
}

/// Marks, inside the caller's transaction (the one recording `event`'s plan, fenced by its
/// partition), every run of the event's customer watching for a goal of the event's type
/// whose window is open at `now` and whose conditions the event meets; a waiting run whose
/// goal has `exit` is cancelled with the reason. Rows past their window are deleted.
pub async fn reach<C: ConnectionTrait>(
    conn: &C,
    event: &EventEnvelope,
    customer: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<Vec<Reached>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            &format!(
                "SELECT g.run_id, g.conditions, g.until, g.exit_run, r.workflow_id, r.event AS trigger_event \
                 FROM goals g JOIN runs r ON r.id = g.run_id \
                 WHERE g.customer_id = $1 AND g.event_type = $2 ORDER BY g.run_id LIMIT {MAX_PER_EVENT}"
            ),
            vec![event.customer_id.into(), event.event_type.as_str().into()],
        ))
        .await?;
    let mut reached = Vec::new();
    for row in rows {
        let run_id: i64 = row.try_get("", "run_id")?;
        let until: DateTime<Utc> = row.try_get("", "until")?;
        if until < now {
            forget(conn, run_id).await?;
            continue;
        }
        let conditions: Option<Value> = row.try_get("", "conditions")?;
        let trigger: Value = row.try_get("", "trigger_event")?;
        if !admits(run_id, conditions, trigger, event, customer) {
            continue;
        }
        conn.execute(statement(
            conn,
            "UPDATE runs SET goal_reached_at = $1 WHERE id = $2 AND goal_reached_at IS NULL",
            vec![now.into(), run_id.into()],
        ))
        .await?;
        forget(conn, run_id).await?;
        let exit: bool = row.try_get("", "exit_run")?;
        // Cancels only a run still waiting.
        let exited =
            exit && waits::cancel_waiting(conn, run_id, &goal::exit_reason(&event.event_type, &event.id), now).await?;
        reached.push(Reached {
            run_id,
            workflow_id: row.try_get("", "workflow_id")?,
            exited,
        });
    }
    Ok(reached)
}

/// Stops watching for the goal of `run_id`, if it still was.
pub async fn forget<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "DELETE FROM goals WHERE run_id = $1",
        vec![run_id.into()],
    ))
    .await?;
    Ok(())
}

/// Deletes up to `batch` rows whose window closed before `now` (the retention job).
/// Returns how many went.
pub async fn prune_closed<C: ConnectionTrait>(conn: &C, now: DateTime<Utc>, batch: u64) -> Result<u64, StorageError> {
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM goals WHERE run_id IN (SELECT run_id FROM goals WHERE until < $1 ORDER BY run_id LIMIT $2)",
            vec![now.into(), i64::try_from(batch).unwrap_or(i64::MAX).into()],
        ))
        .await?
        .rows_affected())
}

/// Whether `event` meets a goal's conditions (`event.*` the goal event, `trigger.*` the
/// run's trigger). A stored tree or trigger that cannot be read (only a damaged row)
/// admits nothing.
fn admits(
    run_id: i64,
    conditions: Option<Value>,
    trigger: Value,
    event: &EventEnvelope,
    customer: &Map<String, Value>,
) -> bool {
    let Some(conditions) = conditions else {
        return true;
    };
    let (Ok(node), Ok(trigger)) = (
        serde_json::from_value::<ConditionNode>(conditions),
        EventEnvelope::from_value(trigger),
    ) else {
        tracing::warn!(
            run_id,
            "a run's goal conditions cannot be read; the goal is not reached"
        );
        return false;
    };
    let no_steps = Map::new();
    let facts = Facts {
        journey: Some(Journey {
            trigger: &trigger,
            steps: &no_steps,
        }),
        ..Facts::new(event, customer)
    };
    holds(&node, facts, &Limits::saved()).unwrap_or_else(|e| {
        tracing::warn!(run_id, error = %e, "a run's goal conditions do not compile; the goal is not reached");
        false
    })
}
