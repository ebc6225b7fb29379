//! Step transitions the executor needs beyond the internal actions: delays, external
//! deliveries through the outbox, resuming, failing, and finding unfinished runs. Each is
//! one transaction, so a crash leaves a run in a state recovery understands.

use super::entities::runs as run_rows;
use super::outbox::{self, Origin, OutboxKind};
use super::ownership::Fence;
use super::runs::{self, status, step_status, Run};
use super::sql::statement;
use super::{contact, scheduled, workflows, Database, StorageError};
use crate::guards::contact::Channel;
use crate::schema::FieldSchema;
use crate::validate::Validator;
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
pub use contact::Held;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Map, Value};

/// The idempotency key of a run's step, by its path in the workflow (`"2"`, or
/// `"2.paths.0.1"` in a journey): the same on every attempt and every replay.
pub fn idempotency_key(run_id: i64, path: impl std::fmt::Display) -> String {
    format!("run-{run_id}-step-{path}")
}

/// Parks the rest of a chain after the delay step at `step_index` until `due_at`; it goes
/// on at step `next`.
#[allow(clippy::too_many_arguments)]
pub async fn delay(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    next: i32,
    customer_id: i64,
    partition: i32,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        scheduled::schedule(txn, run_id, customer_id, partition, due_at, now).await?;
        runs::set_waiting(txn, run_id, step_index, next, now).await?;
        Ok(())
    })
    .await
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
    let until = crate::clock::rfc3339(opens_at);
    let result = json!({"waiting_for": "send_window", "until": until});
    let reason = format!("waiting for the send window to open at {until}");
    db.fenced(fence, async |txn| {
        scheduled::schedule(txn, run_id, customer_id, partition, opens_at, now).await?;
        runs::park_in(txn, run_id, step_index, &result, &reason, now).await
    })
    .await
}

/// Skips an email or SMS step for the customer's opt-out: the step is `skipped` with
/// `{"skipped": reason}` as its result and the run moves on to `next`, in one transaction.
pub async fn skip(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    next: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        runs::skip_in(txn, run_id, (step_index, next), reason, now).await
    })
    .await
}

/// Records a branch's decision in one transaction: the step `done` with the path taken as
/// its result, the rows of the paths not taken (`dropped`, each `[from, to)`) deleted, and
/// the run moved on to `next`, the taken path's first step (or the step after the branch).
/// A replay finds the run past the branch and never decides again.
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    db: &Database,
    fence: Fence,
    run_id: i64,
    step_index: i32,
    result: &Value,
    dropped: &[(i32, i32)],
    next: i32,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        runs::mark_step_done(txn, run_id, step_index, result, now).await?;
        for range in dropped {
            super::waits::drop_steps(txn, run_id, *range).await?;
        }
        runs::advance(txn, run_id, next, status::RUNNING, now).await?;
        Ok(())
    })
    .await
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
    // A wait's continuation is its timeout: it ends the wait unless the event did first.
    super::waits::time_out(&txn, run_id, now).await?;
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
    db.fenced(fence, async |txn| {
        runs::mark_step_failed(txn, run_id, step_index, error, now).await?;
        runs::finish_run(txn, run_id, Some(error), now).await?;
        Ok(())
    })
    .await
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
    db.fenced(fence, async |txn| {
        runs::mark_step_failed(txn, run_id, step_index, error, now).await?;
        Ok(())
    })
    .await
}

/// Ends a run whose steps are all done.
pub async fn finish(db: &Database, fence: Fence, run_id: i64, now: DateTime<Utc>) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        runs::finish_run(txn, run_id, None, now).await?;
        Ok(())
    })
    .await
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
    let Some(version) = workflows::version(conn, &r.workflow_id, r.workflow_version).await? else {
        return Ok(Err(format!(
            "workflow {} version {} not found",
            r.workflow_id, r.workflow_version
        )));
    };
    // Only the steps matter here: check them against the permissive default schema, as a
    // definition that was valid when saved (under other limits, other custom fields).
    let schema = FieldSchema::default();
    Ok(Validator::stored(&schema)
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
    pub request: outbox::OutboundRequest,
}

/// What [`begin_external`] found the step's delivery to be.
#[derive(Debug, Clone)]
pub enum Begun {
    /// Send it: this process holds the delivery's lease until the given time.
    Send(Queued),
    /// Another process's request for this step may still be out (it held the partition
    /// when it sent, and its lease has not run out): wait for its outcome, not send again.
    InFlight { by: String, until: DateTime<Utc> },
    /// A process that lost the partition while its request was out recorded what became
    /// of it; that outcome is now the step's (recorded in the same transaction).
    Settled(Result<Value, String>),
    /// A contact cap held the message: skipped or deferred, recorded in the same
    /// transaction; nothing was queued.
    Held(Held),
}

/// Queues an external step's request in the outbox (or finds it, on a replay), marks the
/// step waiting for delivery and takes the delivery's lease for `node` until
/// `lease_until`, in one transaction. See [`Begun`] for what else it may find.
///
/// The lease is what keeps a request from leaving twice when a partition moves while it
/// is out: the new owner waits for the old owner's outcome ([`settle_unowned`]) or for the
/// lease to run out, and the sender starts no attempt it could not finish within it.
#[allow(clippy::too_many_arguments)]
pub async fn begin_external(
    db: &Database,
    fence: Fence,
    run: &run_rows::Model,
    (step_index, next): (i32, i32),
    kind: crate::catalogue::ActionKind,
    request: &outbox::OutboundRequest,
    key: &str,
    lease: (&str, DateTime<Utc>),
    (go_on, capped): (bool, Option<Channel>),
    now: DateTime<Utc>,
) -> Result<Begun, StorageError> {
    let kind = match kind {
        crate::catalogue::ActionKind::SendEmail => OutboxKind::Email,
        crate::catalogue::ActionKind::SendSms => OutboxKind::Sms,
        _ => OutboxKind::Webhook,
    };
    let payload = serde_json::to_value(request).map_err(|source| StorageError::Encode {
        what: "request",
        source,
    })?;
    let (node, lease_until) = lease;
    let txn = db.begin_fenced(fence).await?;
    if let Some(channel) = capped {
        let send = contact::Message {
            run_id: run.id,
            customer_id: run.customer_id,
            partition: run.partition,
            channel,
            key,
            step: (step_index, next),
        };
        if let Some(held) = contact::take(&txn, &send, now).await? {
            txn.commit().await?;
            return Ok(Begun::Held(held));
        }
    }
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
    // A lease left on a row with an outcome: its sender lost the partition before it could
    // record the outcome with the step (`settle_unowned`). The outcome stands.
    if let (false, Some(sender)) = (fresh, &stored.claimed_by) {
        let attempts = stored.attempts;
        let kept = stored.kept.as_ref();
        let outcome = match stored.status.as_str() {
            outbox::status::DELIVERED => {
                let mut result = json!({"attempts": attempts, "delivered_by": sender});
                if let Some(response) = kept.and_then(|k| k.get("response")) {
                    result["response"] = response.clone();
                }
                Some(Ok(result))
            }
            outbox::status::FAILED => Some(Err(stored.last_error.clone().unwrap_or_default())),
            _ => None,
        };
        if let Some(outcome) = outcome {
            // The sender took the custom fields to save from the answer; they are written
            // with the step, as they would have been by the sender.
            if let (Ok(_), Some(Value::Object(fields))) = (&outcome, kept.and_then(|k| k.get("save"))) {
                super::customers::save_custom(&txn, run.customer_id, fields, now).await?;
            }
            let at = (step_index, next);
            record_outcome(&txn, run.id, at, stored.id, attempts, &outcome, go_on, now).await?;
            txn.commit().await?;
            return Ok(Begun::Settled(outcome));
        }
        let until = stored.claimed_until.unwrap_or(now);
        if sender != node && until > now {
            txn.rollback().await?;
            return Ok(Begun::InFlight {
                by: sender.clone(),
                until,
            });
        }
    }
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
        "UPDATE outbox SET claimed_by = $1, claimed_until = $2 WHERE id = $3",
        vec![node.into(), lease_until.into(), stored.id.into()],
    ))
    .await?;
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
    Ok(Begun::Send(Queued {
        outbox_id: stored.id,
        attempts: u32::try_from(stored.attempts).unwrap_or(0),
        request,
    }))
}

/// What a delivered step keeps of its answer (a journey's webhook): the body, recorded
/// with the step as `response`, and the customer's custom fields it saves from it,
/// written in the transaction that records the step done.
#[derive(Debug, Default)]
pub struct Kept<'a> {
    pub response: Option<&'a Value>,
    /// The customer and the custom fields to set.
    pub save: Option<(i64, &'a Map<String, Value>)>,
}

impl Kept<'_> {
    /// As left on the outbox row for the partition's next owner (`outbox.kept`); `None`
    /// when nothing was kept.
    fn stored(&self) -> Option<Value> {
        if self.response.is_none() && self.save.is_none() {
            return None;
        }
        let mut kept = Map::new();
        if let Some(response) = self.response {
            kept.insert("response".to_owned(), response.clone());
        }
        if let Some((_, fields)) = self.save {
            kept.insert("save".to_owned(), Value::Object(fields.clone()));
        }
        Some(Value::Object(kept))
    }
}

/// Records a delivery's outcome on the outbox row and the step, in one transaction, and
/// ends the delivery's lease. On failure the run fails too, unless `go_on` (the step's
/// `"on_error": "continue"`): then the run moves past the failed step and stays running.
#[allow(clippy::too_many_arguments)]
pub async fn finish_external(
    db: &Database,
    fence: Fence,
    run_id: i64,
    at: (i32, i32),
    outbox_id: i64,
    attempts: u32,
    outcome: &Result<u16, String>,
    kept: &Kept<'_>,
    go_on: bool,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        let outcome = outcome
            .as_ref()
            .map(|http_status| {
                let mut result = json!({"http_status": http_status, "attempts": attempts});
                if let Some(response) = kept.response {
                    result["response"] = response.clone();
                }
                result
            })
            .map_err(Clone::clone);
        if let (Ok(_), Some((customer_id, fields))) = (&outcome, kept.save) {
            super::customers::save_custom(txn, customer_id, fields, now).await?;
        }
        record_outcome(txn, run_id, at, outbox_id, attempts, &outcome, go_on, now).await?;
        Ok(())
    })
    .await
}

/// Records what became of a delivery whose partition moved away while its request was
/// out, on the outbox row alone and without the fence (it is a fact, not a decision): the
/// new owner, waiting on the lease, takes it as the step's outcome instead of sending the
/// request again, with what the step kept of the answer. Only the lease holder's pending
/// row is changed; returns whether it was.
pub async fn settle_unowned(
    db: &Database,
    outbox_id: i64,
    node: &str,
    (attempts, outcome): (u32, &Result<u16, String>),
    kept: &Kept<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    let (state, error, delivered_at) = match outcome {
        Ok(_) => (outbox::status::DELIVERED, None, Some(now)),
        Err(e) => (outbox::status::FAILED, Some(e.clone()), None),
    };
    let changed = db
        .execute(statement(
            db,
            "UPDATE outbox SET status = $1, attempts = $2, last_error = $3, delivered_at = $4, kept = $5 \
             WHERE id = $6 AND claimed_by = $7 AND status = $8",
            vec![
                state.into(),
                attempts.into(),
                error.into(),
                delivered_at.into(),
                kept.stored().into(),
                outbox_id.into(),
                node.into(),
                outbox::status::PENDING.into(),
            ],
        ))
        .await?;
    Ok(changed.rows_affected() > 0)
}

/// Gives up `node`'s lease on a delivery none of whose requests is out (it stopped before
/// sending, or its attempts ended with no outcome), so the partition's new owner sends it
/// at once instead of waiting for the lease to run out. Unfenced, like
/// [`settle_unowned`]: it states a fact about this process. Returns whether it did.
pub async fn release_unowned(db: &Database, outbox_id: i64, node: &str) -> Result<bool, StorageError> {
    let changed = db
        .execute(statement(
            db,
            "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
             WHERE id = $1 AND claimed_by = $2 AND status = $3",
            vec![outbox_id.into(), node.into(), outbox::status::PENDING.into()],
        ))
        .await?;
    Ok(changed.rows_affected() > 0)
}

/// The outcome of a delivery onto its outbox row (lease ended) and its step; `Ok` holds the
/// step's result.
#[allow(clippy::too_many_arguments)]
async fn record_outcome<C: ConnectionTrait>(
    txn: &C,
    run_id: i64,
    (step_index, next): (i32, i32),
    outbox_id: i64,
    attempts: i32,
    outcome: &Result<Value, String>,
    go_on: bool,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    match outcome {
        Ok(result) => {
            txn.execute(statement(
                txn,
                "UPDATE outbox SET status = $1, attempts = $2, delivered_at = COALESCE(delivered_at, $3), \
                 last_error = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = $4",
                vec![
                    outbox::status::DELIVERED.into(),
                    attempts.into(),
                    now.into(),
                    outbox_id.into(),
                ],
            ))
            .await?;
            runs::complete_step(txn, run_id, step_index, next, result, now).await?;
        }
        Err(error) => {
            txn.execute(statement(
                txn,
                "UPDATE outbox SET status = $1, attempts = $2, last_error = $3, claimed_by = NULL, \
                 claimed_until = NULL WHERE id = $4",
                vec![
                    outbox::status::FAILED.into(),
                    attempts.into(),
                    error.as_str().into(),
                    outbox_id.into(),
                ],
            ))
            .await?;
            runs::mark_step_failed(txn, run_id, step_index, error, now).await?;
        }
    }
    txn.execute(statement(
        txn,
        "UPDATE run_steps SET attempts = $1 WHERE run_id = $2 AND step_index = $3",
        vec![attempts.into(), run_id.into(), step_index.into()],
    ))
    .await?;
    if outcome.is_err() {
        if go_on {
            runs::advance(txn, run_id, next, status::RUNNING, now).await?;
        } else {
            let error = outcome.as_ref().err().map(String::as_str);
            runs::finish_run(txn, run_id, error, now).await?;
        }
    }
    Ok(())
}

/// Records a step that failed with `"on_error": "continue"`: the step is `failed` with its
/// error (what it would have done was rolled back) and the run moves on to `next`, still
/// running, in one transaction.
pub async fn fail_and_go_on(
    db: &Database,
    fence: Fence,
    run_id: i64,
    (step_index, next): (i32, i32),
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    db.fenced(fence, async |txn| {
        runs::mark_step_failed(txn, run_id, step_index, error, now).await?;
        // A wait that could not park goes on past both its outcomes, which never run.
        super::waits::drop_steps(txn, run_id, (step_index + 1, next)).await?;
        runs::advance(txn, run_id, next, status::RUNNING, now).await?;
        Ok(())
    })
    .await
}
