//! Where runs and their steps stand: the statuses as stored, and the statements that move
//! a run or a step from one to the next. The lowest layer of the run records: `runs`,
//! `waits`, `goals` and `contact` build on it, so none of them needs another's module to
//! mark a step or move a run.

use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};

/// Run statuses, as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const WAITING: &str = "waiting";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    /// Stopped by an operator (`POST /api/v1/runs/{id}/cancel`): never resumed.
    pub const CANCELLED: &str = "cancelled";
    /// The customer is in the workflow's holdout: the run is recorded, counted by limits
    /// and goals, and performs nothing.
    pub const HELD_OUT: &str = "held_out";
    /// Every run status, for filters.
    pub const ALL: [&str; 7] = [PENDING, RUNNING, WAITING, DONE, FAILED, CANCELLED, HELD_OUT];
}

/// Step statuses, as stored.
pub mod step_status {
    pub const PENDING: &str = "pending";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
    pub const WAITING: &str = "waiting";
    /// Not run for this customer (an opt-out): the result says why.
    pub const SKIPPED: &str = "skipped";
}

/// Marks a step done with what it did, leaving the run as it is: for a caller that applies
/// several steps in one transaction and moves the run once, with [`advance`].
pub async fn mark_step_done<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    step_index: i32,
    result: &Value,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, attempts = attempts + 1, error = NULL, result = $2, \
         started_at = COALESCE(started_at, $3), finished_at = $3 \
         WHERE run_id = $4 AND step_index = $5",
        vec![
            step_status::DONE.into(),
            result.clone().into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Moves `next_step` forward to `next` (never back, so a late replay cannot rewind it) and
/// sets the run's status.
pub async fn advance<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    next: i32,
    run_status: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE runs SET next_step = CASE WHEN next_step < $1 THEN $1 ELSE next_step END, \
         status = $2, updated_at = $3 WHERE id = $4",
        vec![next.into(), run_status.into(), now.into(), run_id.into()],
    ))
    .await?;
    Ok(())
}

/// Parks a run at step `step_index` inside the caller's transaction, its continuation
/// already scheduled: the step `waiting` with `result`, the run `waiting` at that same
/// step with `reason`. On resume the step runs again from the start.
pub async fn park_in<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    step_index: i32,
    result: &Value,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, result = $2, started_at = COALESCE(started_at, $3) \
         WHERE run_id = $4 AND step_index = $5",
        vec![
            step_status::WAITING.into(),
            result.clone().into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    conn.execute(statement(
        conn,
        "UPDATE runs SET status = $1, reason = $2, updated_at = $3 WHERE id = $4",
        vec![status::WAITING.into(), reason.into(), now.into(), run_id.into()],
    ))
    .await?;
    Ok(())
}

/// [`super::steps::skip`] inside the caller's transaction (a contact cap skips in the transaction that
/// would have queued the send).
pub async fn skip_in<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    (step_index, next): (i32, i32),
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, result = $2, error = NULL, \
         started_at = COALESCE(started_at, $3), finished_at = $3 WHERE run_id = $4 AND step_index = $5",
        vec![
            step_status::SKIPPED.into(),
            json!({ "skipped": reason }).into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    advance(conn, run_id, next, status::RUNNING, now).await?;
    Ok(())
}
