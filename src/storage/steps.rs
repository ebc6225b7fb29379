//! Step transitions the executor needs beyond the internal actions: delays, external
//! deliveries through the outbox, resuming, failing, and finding unfinished runs. Each is
//! one transaction, so a crash leaves a run in a state recovery understands.

use super::entities::runs as run_rows;
use super::outbox::{self, Origin, OutboxKind};
use super::ownership::Fence;
use super::runs::{self, status, step_status, Run};
use super::sql::statement;
use super::{scheduled, workflows, Database, StorageError};
use crate::conditions::Limits;
use crate::outbound::OutboundRequest;
use crate::schema::FieldSchema;
use crate::validate::Validator;
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

/// Building outbound requests lives in [`crate::outbound`]; re-exported so the executor
/// keeps calling `steps::Integrations`.
pub use crate::outbound::Integrations;

/// The idempotency key of a run's step: the same on every attempt and every replay.
pub fn idempotency_key(run_id: i64, step_index: i32) -> String {
    format!("run-{run_id}-step-{step_index}")
}

/// Parks the rest of a chain after the delay step at `step_index` until `due_at`.
#[allow(clippy::too_many_arguments)]
pub async fn delay(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    customer_id: i64,
    partition: i32,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    scheduled::schedule(&txn, run_id, customer_id, partition, due_at, now).await?;
    runs::set_waiting(&txn, run_id, step_index, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Parks a run at its email or SMS step `step_index` until its send window opens at
/// `opens_at`: the step is `waiting` with the reason as its result, the run `waiting` at
/// that same step with the reason, and a continuation scheduled as for a delay. On resume
/// the step runs (the window and consent are checked again then).
#[allow(clippy::too_many_arguments)]
pub async fn wait_for_window(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    customer_id: i64,
    partition: i32,
    opens_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let until = super::customers::rfc3339(opens_at);
    let result = json!({"waiting_for": "send_window", "until": until});
    let reason = format!("waiting for the send window to open at {until}");
    let txn = db.begin_fenced(fence).await?;
    scheduled::schedule(&txn, run_id, customer_id, partition, opens_at, now).await?;
    txn.execute(statement(
        &txn,
        "UPDATE run_steps SET status = $1, result = $2, started_at = COALESCE(started_at, $3) \
         WHERE run_id = $4 AND step_index = $5",
        vec![
            step_status::WAITING.into(),
            result.into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    txn.execute(statement(
        &txn,
        "UPDATE runs SET status = $1, reason = $2, updated_at = $3 WHERE id = $4",
        vec![status::WAITING.into(), reason.into(), now.into(), run_id.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Skips an email or SMS step for the customer's opt-out: the step is `skipped` with
/// `{"skipped": reason}` as its result and the run moves past it, in one transaction.
pub async fn skip(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    txn.execute(statement(
        &txn,
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
    runs::advance(&txn, run_id, step_index + 1, status::RUNNING, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Takes a due continuation off the schedule and marks its run running again, together,
/// if it is still what `node` claimed: the row is still claimed by `node` (not re-claimed
/// by another process after the lease ran out, nor rescheduled by a later delay), it is
/// due at `now`, and the run is waiting. Returns false, changing nothing, otherwise: the
/// resume is stale and must not run the chain.
pub async fn resumed(
    db: &Database,
    fence: Fence,
    run_id: i64,
    node: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let txn = db.begin_fenced(fence).await?;
    if !scheduled::complete(&txn, run_id, node, now).await? || !runs::resume(&txn, run_id, now).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    txn.commit().await?;
    Ok(true)
}

/// Fails a step and its run with `error`.
pub async fn fail(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    runs::mark_step_failed(&txn, run_id, step_index, error, now).await?;
    runs::finish_run(&txn, run_id, Some(error), now).await?;
    txn.commit().await?;
    Ok(())
}

/// Records a failed attempt of a step that will be tried again.
pub async fn failed_attempt(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    runs::mark_step_failed(&txn, run_id, step_index, error, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Ends a run whose steps are all done.
pub async fn finish(db: &Database, fence: Fence, run_id: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    runs::finish_run(&txn, run_id, None, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Runs of `partition` that were recorded but not finished (not waiting on a delay), in
/// the order they were recorded: `(run_id, customer_id)`.
pub async fn unfinished<C: ConnectionTrait>(conn: &C, partition: i32) -> Result<Vec<(i64, i64)>, StorageError> {
    Ok(run_rows::Entity::find()
        .filter(run_rows::Column::Partition.eq(partition))
        .filter(run_rows::Column::Status.is_in([status::PENDING, status::RUNNING]))
        .order_by_asc(run_rows::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.id, r.customer_id))
        .collect())
}

/// The workflow version a run started with (its steps and send window), so a chain
/// resumed after an edit finishes as it began. `Ok(Err(_))` when that version is gone or
/// no longer valid.
pub async fn workflow_version<C: ConnectionTrait>(
    conn: &C,
    run: &Run,
) -> Result<Result<Workflow, String>, StorageError> {
    let r = &run.run;
    let versions = workflows::versions(conn, &r.workflow_id).await?;
    let Some(version) = versions.into_iter().find(|v| v.version == r.workflow_version) else {
        return Ok(Err(format!(
            "workflow {} version {} not found",
            r.workflow_id, r.workflow_version
        )));
    };
    // Only the steps matter here: check them against the permissive default schema, with
    // limits high enough that a definition saved under other limits still loads.
    let schema = FieldSchema::default();
    let limits = Limits {
        max_condition_depth: Limits::DEPTH_CEILING,
        max_rules: usize::MAX,
        max_actions: usize::MAX,
        ..Limits::default()
    };
    Ok(Validator::new(&schema, limits)
        .workflow(&version.definition)
        .map(|v| v.workflow)
        .map_err(|e| e.to_string()))
}

/// An external step queued in the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub outbox_id: i64,
    /// Attempts made before (a replay continues the count).
    pub attempts: u32,
    /// The request as first queued: a replay resends exactly that.
    pub request: OutboundRequest,
}

/// Queues an external step's request in the outbox (or finds it, on a replay) and marks the
/// step waiting for delivery, in one transaction.
#[allow(clippy::too_many_arguments)]
pub async fn begin_external(
    db: &Database,
    fence: Fence,
    run: &run_rows::Model,
    step_index: i32,
    kind: crate::catalogue::ActionKind,
    request: &OutboundRequest,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Queued, StorageError> {
    let kind = match kind {
        crate::catalogue::ActionKind::SendEmail => OutboxKind::Email,
        crate::catalogue::ActionKind::SendSms => OutboxKind::Sms,
        _ => OutboxKind::Webhook,
    };
    let payload = serde_json::to_value(request).map_err(|source| StorageError::Encode {
        what: "request",
        source,
    })?;
    let txn = db.begin_fenced(fence).await?;
    let origin = Origin {
        run_id: Some(run.id),
        step_index: Some(step_index),
        customer_id: run.customer_id,
        partition: Some(run.partition),
    };
    let fresh = outbox::enqueue(&txn, kind, origin, payload.clone(), key, now).await?;
    let mut stored = outbox::by_key(&txn, key)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("outbox {key}")))?;
    if !fresh && stored.status == outbox::status::FAILED {
        // The step is run again after its delivery gave up: an operator retried the run
        // (storage::recovery). Send the request as built now, since the endpoint or
        // provider may have been fixed, under the same key, counting on from the
        // attempts already made.
        outbox::requeue(&txn, stored.id, &payload, now).await?;
        tracing::info!(
            run_id = run.id,
            step = step_index,
            idempotency_key = key,
            "failed delivery queued again"
        );
        stored.payload = payload;
    }
    txn.execute(statement(
        &txn,
        "UPDATE run_steps SET status = $1, started_at = COALESCE(started_at, $2) \
         WHERE run_id = $3 AND step_index = $4 AND status <> 'done'",
        vec![
            step_status::WAITING.into(),
            now.into(),
            run.id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    let request = serde_json::from_value(stored.payload.clone()).unwrap_or_else(|_| request.clone());
    Ok(Queued {
        outbox_id: stored.id,
        attempts: u32::try_from(stored.attempts).unwrap_or(0),
        request,
    })
}

/// Records a delivery's outcome on the outbox row and the step, in one transaction. On
/// failure the run fails too, unless `go_on` (the step's `"on_error": "continue"`): then
/// the run moves past the failed step and stays running.
#[allow(clippy::too_many_arguments)]
pub async fn finish_external(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    outbox_id: i64,
    attempts: u32,
    outcome: &Result<u16, String>,
    go_on: bool,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    match outcome {
        Ok(http_status) => {
            txn.execute(statement(
                &txn,
                "UPDATE outbox SET status = $1, attempts = $2, delivered_at = $3, last_error = NULL WHERE id = $4",
                vec![
                    outbox::status::DELIVERED.into(),
                    attempts.into(),
                    now.into(),
                    outbox_id.into(),
                ],
            ))
            .await?;
            let result = json!({"http_status": http_status, "attempts": attempts});
            runs::complete_step(&txn, run_id, step_index, &result, now).await?;
            txn.execute(statement(
                &txn,
                "UPDATE run_steps SET attempts = $1 WHERE run_id = $2 AND step_index = $3",
                vec![attempts.into(), run_id.into(), step_index.into()],
            ))
            .await?;
        }
        Err(error) => {
            txn.execute(statement(
                &txn,
                "UPDATE outbox SET status = $1, attempts = $2, last_error = $3 WHERE id = $4",
                vec![
                    outbox::status::FAILED.into(),
                    attempts.into(),
                    error.as_str().into(),
                    outbox_id.into(),
                ],
            ))
            .await?;
            runs::mark_step_failed(&txn, run_id, step_index, error, now).await?;
            txn.execute(statement(
                &txn,
                "UPDATE run_steps SET attempts = $1 WHERE run_id = $2 AND step_index = $3",
                vec![attempts.into(), run_id.into(), step_index.into()],
            ))
            .await?;
            if go_on {
                runs::advance(&txn, run_id, step_index + 1, status::RUNNING, now).await?;
            } else {
                runs::finish_run(&txn, run_id, Some(error), now).await?;
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Records a step that failed with `"on_error": "continue"`: the step is `failed` with its
/// error (what it would have done was rolled back) and the run moves past it, still
/// running, in one transaction.
pub async fn fail_and_go_on(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let txn = db.begin_fenced(fence).await?;
    runs::mark_step_failed(&txn, run_id, step_index, error, now).await?;
    runs::advance(&txn, run_id, step_index + 1, status::RUNNING, now).await?;
    txn.commit().await?;
    Ok(())
}
