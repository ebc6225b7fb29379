//! An event's runs recorded together with the internal steps they begin with, in one
//! transaction.
//!
//! Step by step, an event with three internal actions costs five commits and about thirty
//! statements: the runs, then each step in its own transaction, then the run's end. Runs
//! inserted in this transaction cannot be seen, let alone attempted, by anyone else until
//! it commits, so their leading internal steps need no claim and can commit with the runs:
//! the effects and their records still commit together or not at all, which is all the
//! one-transaction-per-step rule is for.
//!
//! The steps run in the order the executor would run them: each fresh run from its first
//! step, until a step that leaves the database (an external action or a delay) or a run
//! that is not fresh (a redelivered event); every later run waits for the executor, as
//! before. Any error rolls everything back and the caller takes the step-by-step path,
//! which records failures and retries as usual.
//!
//! Since the transaction either commits all of it or none, the run is inserted as it will
//! stand (past its applied steps, `done` when they were all) and its steps are inserted
//! once applied, as `done` with their results: no `UPDATE` per step and none for the
//! run, which were four of the about twelve statements of a three-action event.

use super::{apply, is_internal, ActionError, StepContext};
use crate::catalogue::ActionKind;
use crate::envelope::EventEnvelope;
use crate::flow::{stored_index, Flow, Slot};
use crate::guards::cascade::Budget;
use crate::storage::entities::run_steps;
use crate::storage::ownership::Fence;
use crate::storage::runs::{self, status, step_status, PlannedRun, Recorded, Run};
use crate::storage::Database;
use crate::verdict::Verdict;
use chrono::{DateTime, Utc};
use sea_orm::DatabaseTransaction;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// A run as recorded and started: its state after the commit, and the steps applied in
/// it with the time each took.
#[derive(Debug)]
pub struct Started {
    pub run: Run,
    pub applied: Vec<(ActionKind, Duration)>,
}

/// Records the plan and runs of `event` in the cascade `budget` places it in (see
/// [`runs::record_runs_in`]) and applies the leading internal steps of the fresh ones, in
/// one transaction fenced by `fence`. `flows[i]` are the steps of `planned[i]`; `context`
/// is the template context of the event and the customer; `awaited`, the customer, when
/// runs may wait for an event of this type ([`runs::record_runs_in`]).
#[allow(clippy::too_many_arguments)]
pub async fn record_and_apply(
    db: &Database,
    fence: Fence,
    event: &EventEnvelope,
    budget: &Budget,
    (planned, verdicts): (&[PlannedRun], &[Verdict]),
    flows: &[&Flow],
    context: &Value,
    awaited: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Result<Recorded<Started>, ActionError> {
    let txn = db.begin_fenced(fence).await?;
    let started = record_and_apply_in(
        &txn,
        fence,
        event,
        budget,
        (planned, verdicts),
        flows,
        context,
        awaited,
        now,
    )
    .await?;
    if started.replayed || started.refused.is_some() {
        // A redelivery or a refused event: nothing was written; the caller continues the
        // recorded runs, or refuses the event.
        txn.rollback().await?;
    } else {
        txn.commit().await?;
    }
    Ok(started)
}

/// [`record_and_apply`] inside the caller's transaction, which must be fenced by `fence`:
/// one event's unit of work. A batch calls it for each of its events in one transaction
/// (see [`crate::runner::batch`]); an error leaves the transaction to be rolled back.
#[allow(clippy::too_many_arguments)]
pub async fn record_and_apply_in(
    txn: &DatabaseTransaction,
    fence: Fence,
    event: &EventEnvelope,
    budget: &Budget,
    (planned, verdicts): (&[PlannedRun], &[Verdict]),
    flows: &[&Flow],
    context: &Value,
    awaited: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Result<Recorded<Started>, ActionError> {
    // How many leading steps each run applies here: its internal ones, up to the first
    // that leaves the database (or branches or waits). Before any branch or wait, the
    // layout is the list itself, so they are the first `head` slots. record_runs_in keeps
    // only the first unfinished run's.
    let heads: Vec<usize> = flows.iter().map(|flow| leading(flow, 0)).collect();
    let recorded = runs::record_runs_in(
        txn,
        event,
        budget,
        fence.partition,
        (planned, verdicts),
        Some(&heads),
        awaited,
        now,
    )
    .await?;
    if let Some(mismatch) = recorded.refused {
        // Another event's id: nothing was written and nothing of it may run.
        return Ok(Recorded {
            runs: Vec::new(),
            replayed: false,
            held_back: Vec::new(),
            over_budget: false,
            refused: Some(mismatch),
            reached: Vec::new(),
        });
    }
    if recorded.replayed {
        // A redelivery: nothing was written; the caller continues the recorded runs.
        return Ok(Recorded {
            runs: recorded
                .runs
                .into_iter()
                .map(|(run, _)| Started {
                    run,
                    applied: Vec::new(),
                })
                .collect(),
            replayed: true,
            held_back: Vec::new(),
            over_budget: false,
            refused: None,
            reached: Vec::new(),
        });
    }
    let mut started = Vec::with_capacity(recorded.runs.len());
    let mut written = Vec::new();
    for (mut run, fresh) in recorded.runs {
        // A run held back by its limit has no record, so runs and plans are matched by id.
        let flow = planned
            .iter()
            .position(|p| p.workflow_id == run.run.workflow_id)
            .and_then(|i| flows.get(i).copied());
        let mut applied = Vec::new();
        if let (true, Some(flow)) = (fresh, flow) {
            // Written ahead as past its head (record_runs_in); its steps are written
            // below, once applied, in one insert.
            let head = usize::try_from(run.run.next_step).unwrap_or(0);
            for (i, slot) in flow.slots().iter().enumerate().take(head) {
                let (_, took) = apply_step(txn, fence, &mut run, i, slot, context, now).await?;
                applied.push(took);
            }
            written.extend(run.steps.iter().cloned());
        }
        started.push(Started { run, applied });
    }
    runs::insert_steps(txn, &written).await?;
    Ok(Recorded {
        runs: started,
        replayed: false,
        held_back: recorded.held_back,
        over_budget: recorded.over_budget,
        refused: None,
        reached: recorded.reached,
    })
}

/// Applies the internal steps of `run` from its next step up to the first that leaves the
/// database (an external action or a delay, a branch or a wait) or its end, inside `txn`
/// (fenced by `fence`),
/// and moves the run past them: `running` at its next step, or `done`. `run` is updated
/// as committed. Returns the steps applied with the time each took, and whether the run
/// ended. Used for a fresh run (from step 0, with its recording) and for a resumed one
/// (after its delay, with its resume).
pub async fn apply_leading(
    txn: &DatabaseTransaction,
    fence: Fence,
    run: &mut Run,
    flow: &Flow,
    context: &Value,
    now: DateTime<Utc>,
) -> Result<(Vec<(ActionKind, Duration)>, bool), ActionError> {
    let start = usize::try_from(run.run.next_step).unwrap_or(0);
    let mut applied = Vec::new();
    let mut next = start;
    let mut left = leading(flow, start);
    while let Some(slot) = flow.get(next).filter(|_| left > 0) {
        left -= 1;
        let (result, took) = apply_step(txn, fence, run, next, slot, context, now).await?;
        runs::mark_step_done(txn, run.run.id, stored_index(next), &result, now).await?;
        applied.push(took);
        next = slot.next;
    }
    let ended = next >= flow.len();
    if !applied.is_empty() || ended {
        let run_status = if ended { status::DONE } else { status::RUNNING };
        let next_step = i32::try_from(next).unwrap_or(i32::MAX);
        runs::advance(txn, run.run.id, next_step, run_status, now).await?;
        if ended && run.run.error.is_some() {
            // As the step-by-step finish does: a run that ends well carries no error.
            runs::finish_run(txn, run.run.id, None, now).await?;
            run.run.error = None;
        }
        run.run.next_step = run.run.next_step.max(next_step);
        run.run.status = run_status.to_owned();
        run.run.updated_at = now;
    }
    Ok((applied, ended))
}

/// Applies step `i` of `run` in `txn` and marks its record in `run` done (the caller
/// writes it). Returns the step's result and its kind with the time it took.
async fn apply_step(
    txn: &DatabaseTransaction,
    fence: Fence,
    run: &mut Run,
    i: usize,
    slot: &Slot,
    context: &Value,
    now: DateTime<Utc>,
) -> Result<(Value, (ActionKind, Duration)), ActionError> {
    let step = &slot.step;
    let index = stored_index(i);
    let began = Instant::now();
    let ctx = StepContext {
        fence,
        run_id: run.run.id,
        step_index: index,
        next_step: stored_index(slot.next),
        customer_id: run.run.customer_id,
        workflow_id: &run.run.workflow_id,
        facts_context: context,
        now,
    };
    let result = apply(txn, &ctx, &step.action).await?;
    if let Some(record) = run.steps.iter_mut().find(|s| s.step_index == index) {
        mark_done(record, result.clone(), now);
    }
    Ok((result, (step.kind(), began.elapsed())))
}

/// How many steps from `start` this transaction may apply: the internal ones up to the
/// first that is not. None for a workflow with named steps: its templates read
/// `steps.<name>`, which the chain keeps up to date step by step.
fn leading(flow: &Flow, start: usize) -> usize {
    if flow.has_names() {
        return 0;
    }
    let mut count = 0;
    let mut at = start;
    while let Some(slot) = flow.get(at).filter(|s| is_internal(s.step.kind())) {
        count += 1;
        at = slot.next;
    }
    count
}

/// `record` as the step's `done` record says it: what [`runs::mark_step_done`] writes.
fn mark_done(record: &mut run_steps::Model, result: Value, now: DateTime<Utc>) {
    record.status = step_status::DONE.to_owned();
    record.attempts += 1;
    record.error = None;
    record.result = Some(result);
    record.started_at = record.started_at.or(Some(now));
    record.finished_at = Some(now);
}
