//! Run recovery: an operator retries a failed run or cancels a waiting or failed one.
//!
//! Neither runs anything here. A retry puts the run back in the state a delay leaves it
//! in (`waiting`, with `next_step` at the failed step, and a `scheduled` row due now), so
//! the partition's owner, whichever process that is, resumes it through the same fenced
//! path as a delay (`steps::resumed`): the API process needs no ownership, and a retry
//! can never run beside the owner's own work of that customer. Steps before `next_step`
//! are done and are not run again; an external step keeps its idempotency key, so a
//! receiver that stores keys sees the retried delivery as the same one.
//!
//! A cancel ends the run (`cancelled`) and drops its continuation in one transaction.
//! A resume only wakes a run that is `waiting` (`runs::resume`), so a cancelled run never
//! runs again, even when its continuation was claimed just before the cancel.

use super::entities::{run_steps, runs as run_rows};
use super::runs::{self, status, step_status, RunFilter};
use super::sql::statement;
use super::{scheduled, Database, StorageError};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

/// Most runs one bulk retry or cancel acts on; the caller repeats the call for more.
pub const MAX_BULK: u64 = 1000;

/// Why a run could not be retried or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("run {0} not found")]
    NotFound(i64),
    /// The run is not in a state the operation applies to (e.g. retrying a done run).
    #[error("run {id} is {status}: {wanted}")]
    WrongStatus {
        id: i64,
        status: String,
        wanted: &'static str,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sea_orm::DbErr> for RecoveryError {
    fn from(e: sea_orm::DbErr) -> Self {
        RecoveryError::Storage(e.into())
    }
}

/// Puts a failed run back on the schedule, due `now`, from the step it failed at: that
/// step goes back to `pending` (its attempts and last error stay on record), the run
/// becomes `waiting` with its error cleared, and a `scheduled` row due now is written (an
/// earlier one replaced), all in one transaction. Fails with [`RecoveryError::WrongStatus`]
/// when the run is not failed, also when another retry won the race.
pub async fn retry(db: &Database, run_id: i64, now: DateTime<Utc>) -> Result<(), RecoveryError> {
    let txn = db.begin().await?;
    let Some(run) = run_rows::Entity::find_by_id(run_id).one(&txn).await? else {
        return Err(RecoveryError::NotFound(run_id));
    };
    let wrong = |status: String| RecoveryError::WrongStatus {
        id: run_id,
        status,
        wanted: "only a failed run can be retried",
    };
    if run.status != status::FAILED {
        return Err(wrong(run.status));
    }
    // Conditional, so two concurrent retries (or a retry and a cancel) cannot both win.
    let moved = txn
        .execute(statement(
            &txn,
            "UPDATE runs SET status = $1, error = NULL, updated_at = $2 WHERE id = $3 AND status = $4",
            vec![status::WAITING.into(), now.into(), run_id.into(), status::FAILED.into()],
        ))
        .await?
        .rows_affected();
    if moved == 0 {
        return Err(wrong("no longer failed".to_owned()));
    }
    // The chain stopped at `next_step` (it is advanced only past completed steps).
    txn.execute(statement(
        &txn,
        "UPDATE run_steps SET status = $1, finished_at = NULL WHERE run_id = $2 AND step_index = $3 AND status = $4",
        vec![
            step_status::PENDING.into(),
            run_id.into(),
            run.next_step.into(),
            step_status::FAILED.into(),
        ],
    ))
    .await?;
    scheduled::schedule(&txn, run_id, run.customer_id, run.partition, now, now).await?;
    txn.commit().await?;
    tracing::info!(run_id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = run.next_step, "run queued for retry");
    Ok(())
}

/// Cancels a waiting or failed run: `cancelled`, with a reason in `error`, and its
/// continuation (if any) deleted, in one transaction. Fails with
/// [`RecoveryError::WrongStatus`] for a run in any other state (a running run is being
/// worked on; a done or cancelled one is over).
pub async fn cancel(db: &Database, run_id: i64, reason: &str, now: DateTime<Utc>) -> Result<(), RecoveryError> {
    let txn = db.begin().await?;
    let Some(run) = run_rows::Entity::find_by_id(run_id).one(&txn).await? else {
        return Err(RecoveryError::NotFound(run_id));
    };
    let wrong = |status: String| RecoveryError::WrongStatus {
        id: run_id,
        status,
        wanted: "only a waiting or failed run can be cancelled",
    };
    if run.status != status::WAITING && run.status != status::FAILED {
        return Err(wrong(run.status));
    }
    let moved = txn
        .execute(statement(
            &txn,
            "UPDATE runs SET status = $1, error = $2, updated_at = $3 WHERE id = $4 AND status IN ($5, $6)",
            vec![
                status::CANCELLED.into(),
                reason.into(),
                now.into(),
                run_id.into(),
                status::WAITING.into(),
                status::FAILED.into(),
            ],
        ))
        .await?
        .rows_affected();
    if moved == 0 {
        return Err(wrong("no longer waiting or failed".to_owned()));
    }
    txn.execute(statement(
        &txn,
        "DELETE FROM scheduled WHERE run_id = $1",
        vec![run_id.into()],
    ))
    .await?;
    super::waits::forget(&txn, run_id).await?;
    // A parked delay step never finishes now; say so on the step rather than leave it waiting.
    run_steps::Entity::update_many()
        .col_expr(
            run_steps::Column::Status,
            sea_orm::sea_query::Expr::value(step_status::PENDING),
        )
        .filter(run_steps::Column::RunId.eq(run_id))
        .filter(run_steps::Column::Status.eq(step_status::WAITING))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(run_id, workflow_id = %run.workflow_id, customer_id = run.customer_id, reason, "run cancelled");
    Ok(())
}

/// Cancels the waiting runs of `workflow_id` of `customer_id` because an `exit_when` event
/// arrived: each `cancelled` with `reason`, its continuation deleted and its parked step
/// back to `pending`, all in one transaction fenced by `fence` (the runs are the customer's,
/// so of the partition the event came in on). Returns the ids cancelled.
pub async fn exit_waiting(
    db: &Database,
    fence: super::ownership::Fence,
    workflow_id: &str,
    customer_id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StorageError> {
    db.fenced(fence, async |txn| {
        let waiting: Vec<i64> = run_rows::Entity::find()
            .filter(run_rows::Column::CustomerId.eq(customer_id))
            .filter(run_rows::Column::WorkflowId.eq(workflow_id))
            .filter(run_rows::Column::Status.eq(status::WAITING))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut cancelled = Vec::with_capacity(waiting.len());
        for run_id in waiting {
            if super::waits::cancel_waiting(txn, run_id, reason, now).await? {
                cancelled.push(run_id);
            }
        }
        Ok(cancelled)
    })
    .await
}

/// Retries the failed runs `filter` selects, newest first, at most `limit` (capped at
/// [`MAX_BULK`]); each in its own transaction, so one that changed state meanwhile is
/// skipped, not an error. Returns how many were queued.
pub async fn retry_matching(
    db: &Database,
    filter: &RunFilter,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let ids = runs::ids_matching(db, filter, &[status::FAILED], limit.min(MAX_BULK)).await?;
    let mut affected = 0;
    for id in ids {
        match retry(db, id, now).await {
            Ok(()) => affected += 1,
            Err(RecoveryError::Storage(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(affected)
}

/// Cancels the waiting and failed runs `filter` selects, newest first, at most `limit`
/// (capped at [`MAX_BULK`]). Returns how many were cancelled.
pub async fn cancel_matching(
    db: &Database,
    filter: &RunFilter,
    reason: &str,
    limit: u64,
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let ids = runs::ids_matching(db, filter, &[status::WAITING, status::FAILED], limit.min(MAX_BULK)).await?;
    let mut affected = 0;
    for id in ids {
        match cancel(db, id, reason, now).await {
            Ok(()) => affected += 1,
            Err(RecoveryError::Storage(e)) => return Err(e),
            Err(_) => {}
        }
    }
    Ok(affected)
}
