//! Runs and their steps: the durable record that makes effects exactly-once inside the
//! database. A run is unique per (event id, workflow id), so a redelivered event finds
//! its runs and resumes each at its first unfinished step instead of starting again.

use super::entities::{run_steps, runs};
use super::ownership::Fence;
use super::plans;
pub use super::progress::{advance, mark_step_done, park_in, skip_in, status, step_status};
use super::sql::statement;
use super::{entries, goals, waits};
use super::{Database, StorageError};
use crate::catalogue::ActionKind;
use crate::envelope::EventEnvelope;
use crate::experiment::goal::Goal;
use crate::guards::cascade::{self, Budget};
use crate::guards::identity::{self, Identity, Mismatch};
use crate::guards::limits::EntryLimit;
use crate::verdict::Verdict;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::{Map, Value};

/// A workflow chosen for an event: the version that matched and its steps in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub workflow_id: String,
    pub workflow_version: i64,
    /// One per slot of the workflow's [`Flow`](crate::flow::Flow).
    pub steps: Vec<ActionKind>,
    /// Each step's path in a journey's tree; empty for a plain list, whose paths are the
    /// indexes (stored as NULL).
    pub paths: Vec<String>,
    /// The workflow's per-customer limit: the run is recorded only if the customer may
    /// enter ([`entries::enter`], in the same transaction).
    pub limit: Option<EntryLimit>,
    /// The customer is in the workflow's holdout: the run is recorded `held_out`, with no
    /// steps.
    pub held_out: bool,
    /// The workflow's goal: the run watches for it from the moment it is recorded
    /// ([`goals::watch`]).
    pub goal: Option<Goal>,
}

/// A run with its steps in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub run: runs::Model,
    pub steps: Vec<run_steps::Model>,
}

/// Which runs to list; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub customer_id: Option<i64>,
    /// The runs one event started (the event inspector's "jump to the runs").
    pub event_id: Option<String>,
    pub workflow_id: Option<String>,
    pub status: Option<String>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only runs with an id below this one: the cursor of the next page (runs are listed
    /// newest first, by id, so a page boundary never moves when new runs arrive).
    pub before_id: Option<i64>,
    /// At most this many, newest first; 100 when `None`.
    pub limit: Option<u64>,
}

impl RunFilter {
    /// The query of the runs this filter selects (no order, no limit).
    fn select(&self) -> sea_orm::Select<runs::Entity> {
        let mut query = runs::Entity::find();
        if let Some(customer_id) = self.customer_id {
            query = query.filter(runs::Column::CustomerId.eq(customer_id));
        }
        if let Some(workflow_id) = &self.workflow_id {
            query = query.filter(runs::Column::WorkflowId.eq(workflow_id.as_str()));
        }
        if let Some(event_id) = &self.event_id {
            query = query.filter(runs::Column::EventId.eq(event_id.as_str()));
        }
        if let Some(status) = &self.status {
            query = query.filter(runs::Column::Status.eq(status.as_str()));
        }
        if let Some(since) = self.since {
            query = query.filter(runs::Column::CreatedAt.gte(since));
        }
        if let Some(until) = self.until {
            query = query.filter(runs::Column::CreatedAt.lt(until));
        }
        if let Some(before) = self.before_id {
            query = query.filter(runs::Column::Id.lt(before));
        }
        query
    }
}

/// An event's runs as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded<T> {
    /// The runs in plan order: as written now, or as they stand on a replay.
    pub runs: Vec<T>,
    /// The event's plan had been recorded before (a redelivery): `runs` are the recorded
    /// runs with their progress, and nothing was written.
    pub replayed: bool,
    /// Planned workflows whose limit held the customer back: no run was created for them,
    /// and `runs` leaves them out.
    pub held_back: Vec<HeldBack>,
    /// The event would have taken its cascade past `engine.max_cascade_runs`: it started
    /// no runs, its plan is recorded empty (a redelivery starts none either), and the run
    /// that emitted it has the reason.
    pub over_budget: bool,
    /// The event's id was taken by another event (another customer, type or content):
    /// this one is no redelivery. Nothing was written, `runs` is empty and the other
    /// event's plan was not replayed; the event must not run.
    pub refused: Option<Mismatch>,
    /// The runs of the customer whose goal this event reached.
    pub reached: Vec<goals::Reached>,
}

/// A planned run not created because of its workflow's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    pub workflow_id: String,
    /// `once_per_customer` or `cooldown`.
    pub limited_by: &'static str,
}

/// Records the plan of `event` and its runs, one per planned workflow, with their pending
/// steps, in one transaction fenced by `fence`. When the event's plan was recorded before
/// (a redelivered event), nothing is written and the recorded runs come back with their
/// progress, whatever `planned` says now: a redelivered event resumes where it stopped and
/// starts nothing new.
///
/// The event is recorded as an outside one, a cascade of its own; the runner records the
/// events it judged with [`record_cascade_runs`].
pub async fn record_runs(
    db: &Database,
    fence: Fence,
    event: &EventEnvelope,
    planned: &[PlannedRun],
    now: DateTime<Utc>,
) -> Result<Recorded<Run>, StorageError> {
    record_cascade_runs(db, fence, event, &Budget::outside(&event.id), (planned, &[]), None, now).await
}

/// [`record_runs`] of an event in the cascade `budget` places it in; `awaited` as for
/// [`record_runs_in`].
#[allow(clippy::too_many_arguments)]
pub async fn record_cascade_runs(
    db: &Database,
    fence: Fence,
    event: &EventEnvelope,
    budget: &Budget,
    planned: (&[PlannedRun], &[Verdict]),
    awaited: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Result<Recorded<Run>, StorageError> {
    let recorded = db
        .fenced(fence, async |txn| {
            record_runs_in(txn, event, budget, fence.partition, planned, None, awaited, now).await
        })
        .await?;
    Ok(Recorded {
        runs: recorded.runs.into_iter().map(|(run, _)| run).collect(),
        replayed: recorded.replayed,
        held_back: recorded.held_back,
        over_budget: recorded.over_budget,
        refused: recorded.refused,
        reached: recorded.reached,
    })
}

/// [`record_runs`] inside the caller's (fenced) transaction. Each run comes with whether
/// it was inserted now: a new run is returned as written, without reading it back, and no
/// other transaction can see it before this one commits.
///
/// The runs are recorded in `budget`'s cascade (`runs.cascade_root`). An event the engine
/// emitted is first checked against the cascade's budget: its runs are counted here, in
/// the transaction that would add to them, so the count holds across processes and
/// restarts (one customer's events, and so a cascade, are recorded one at a time under
/// the partition's fence). An event over the budget records an empty plan and notes the
/// reason on the run that emitted it, in this transaction too.
///
/// A plan already recorded under the event's id is replayed only for the event that
/// recorded it (same customer, type and content, [`identity::judge`]); any other event
/// with that id is refused (`refused`), writing nothing and replaying nothing. The judge
/// runs after the insert that conflicted, so of two events racing for one id, the one
/// that commits first keeps it.
///
/// With `heads` (`heads[i]`: how many leading steps of `planned[i]` the caller applies in
/// this transaction), each fresh run is written as it will stand once those steps are
/// applied: `next_step` past them, and `done`, `running` or `pending`; only the first run
/// that would not end gets its head, and the runs after it none, since they wait for it
/// in the executor. Its steps are then not inserted: the caller applies the head, marks
/// those steps done in the returned [`Run`] and writes every step with [`insert_steps`],
/// so a step applied in the recording transaction costs no statement of its own. (A step
/// that fails rolls the whole transaction back, so the run is never seen ahead of its
/// steps.) Without `heads`, runs start `pending` with their steps written `pending`.
#[allow(clippy::too_many_arguments)]
pub async fn record_runs_in<C: ConnectionTrait>(
    conn: &C,
    event: &EventEnvelope,
    budget: &Budget,
    partition: i32,
    (planned, verdicts): (&[PlannedRun], &[Verdict]),
    heads: Option<&[usize]>,
    awaited: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Result<Recorded<(Run, bool)>, StorageError> {
    let lineage = &budget.lineage;
    let over_budget = lineage.is_emitted()
        && !planned.is_empty()
        && budget.exceeded(cascade_runs(conn, &lineage.root).await?, planned.len());
    let workflow_ids: Vec<String> = if over_budget {
        Vec::new()
    } else {
        planned.iter().map(|p| p.workflow_id.clone()).collect()
    };
    let identity = Identity::of(event);
    let stopped: Vec<Verdict>;
    let verdicts = if over_budget {
        stopped = verdicts.iter().cloned().map(Verdict::stopped_by_budget).collect();
        &stopped
    } else {
        verdicts
    };
    let first_time = plans::record(conn, &event.id, &identity, partition, &workflow_ids, verdicts, now).await?;
    let mut reached = Vec::new();
    if let (true, Some(customer)) = (first_time, awaited) {
        // Only the first time: an event planned before a wait began must not end it when
        // it is redelivered.
        let woken = waits::resolve_event(conn, event, customer, now).await?;
        if !woken.is_empty() {
            tracing::info!(event_id = %event.id, customer_id = event.customer_id, runs = ?woken, "awaited event ends waits");
        }
        reached = goals::reach(conn, event, customer, now).await?;
        for reached in &reached {
            tracing::info!(event_id = %event.id, customer_id = event.customer_id, run_id = reached.run_id, workflow_id = %reached.workflow_id, exited = reached.exited, "run reached its goal");
        }
    }
    if first_time && over_budget {
        if let Some(run_id) = lineage.emitted_by {
            let reason = cascade::budget_reason(&event.event_type, &event.id, &lineage.root, budget.max_runs);
            note_reason(conn, run_id, &reason).await?;
        }
        return Ok(Recorded {
            runs: Vec::new(),
            replayed: false,
            held_back: Vec::new(),
            over_budget: true,
            refused: None,
            reached,
        });
    }
    if !first_time {
        let plan = plans::get(conn, &event.id).await?;
        if let Some(mismatch) = plan
            .as_ref()
            .and_then(|plan| identity::judge(&identity, &plan.identity).err())
        {
            return Ok(Recorded {
                runs: Vec::new(),
                replayed: false,
                held_back: Vec::new(),
                over_budget: false,
                refused: Some(mismatch),
                reached: Vec::new(),
            });
        }
        let recorded = plan.map(|plan| plan.workflows).unwrap_or_default();
        let mut runs = Vec::with_capacity(recorded.len());
        for workflow_id in recorded {
            let found = runs::Entity::find()
                .filter(runs::Column::EventId.eq(event.id.as_str()))
                .filter(runs::Column::WorkflowId.eq(workflow_id.as_str()))
                .one(conn)
                .await?;
            if let Some(run) = found {
                let steps = steps_of(conn, run.id).await?;
                runs.push((Run { run, steps }, false));
            }
        }
        return Ok(Recorded {
            runs,
            replayed: true,
            held_back: Vec::new(),
            over_budget: false,
            refused: None,
            reached: Vec::new(),
        });
    }
    let envelope = serde_json::to_value(event).map_err(|source| StorageError::Encode { what: "event", source })?;
    let mut recorded = Vec::with_capacity(planned.len());
    let mut held_back = Vec::new();
    // A run before this one will not end in this transaction: the rest wait for it.
    let mut blocked = false;
    for (i, plan) in planned.iter().enumerate() {
        if let Some(limit) = plan.limit {
            if !entries::enter(conn, &plan.workflow_id, event.customer_id, limit, now).await? {
                tracing::info!(event_id = %event.id, workflow_id = %plan.workflow_id, customer_id = event.customer_id, limited_by = limit.name(), "run held back by the workflow's limit");
                held_back.push(HeldBack {
                    workflow_id: plan.workflow_id.clone(),
                    limited_by: limit.name(),
                });
                continue;
            }
        }
        let head = match heads {
            Some(heads) if !blocked && !plan.held_out => heads.get(i).copied().unwrap_or(0).min(plan.steps.len()),
            _ => 0,
        };
        let run_status = match heads {
            _ if plan.held_out => status::HELD_OUT,
            Some(_) if head == plan.steps.len() => status::DONE,
            Some(_) if head > 0 => status::RUNNING,
            _ => status::PENDING,
        };
        let inserted = runs::Entity::insert(runs::ActiveModel {
            event_id: Set(event.id.clone()),
            workflow_id: Set(plan.workflow_id.clone()),
            workflow_version: Set(plan.workflow_version),
            customer_id: Set(event.customer_id),
            trigger: Set(event.event_type.clone()),
            partition: Set(partition),
            event: Set(envelope.clone()),
            status: Set(run_status.to_owned()),
            next_step: Set(i32::try_from(head).unwrap_or(i32::MAX)),
            error: Set(None),
            reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            traceparent: Set(event.trace.map(|t| t.to_string())),
            cascade_root: Set(Some(lineage.root.clone())),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([runs::Column::EventId, runs::Column::WorkflowId])
                .do_nothing()
                .to_owned(),
        )
        .exec_with_returning(conn)
        .await;
        let run = match inserted {
            Ok(run) => run,
            // The conflict clause skipped the insert: the run exists. sea-orm 1.1 says so
            // with RecordNotInserted where it inserts without RETURNING (SQLite) and with
            // RecordNotFound where RETURNING gave no row (PostgreSQL).
            Err(sea_orm::DbErr::RecordNotInserted | sea_orm::DbErr::RecordNotFound(_)) => {
                let run = runs::Entity::find()
                    .filter(runs::Column::EventId.eq(event.id.as_str()))
                    .filter(runs::Column::WorkflowId.eq(plan.workflow_id.as_str()))
                    .one(conn)
                    .await?
                    .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("run of {}", plan.workflow_id)))?;
                let steps = steps_of(conn, run.id).await?;
                recorded.push((Run { run, steps }, false));
                blocked = true;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(goal) = &plan.goal {
            goals::watch(conn, run.id, event.customer_id, goal, now).await?;
        }
        if plan.held_out {
            recorded.push((Run { run, steps: Vec::new() }, true));
            continue;
        }
        blocked = blocked || head < plan.steps.len();
        let steps: Vec<run_steps::Model> = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, kind)| run_steps::Model {
                run_id: run.id,
                step_index: i as i32,
                action_type: kind.name().to_owned(),
                status: step_status::PENDING.to_owned(),
                attempts: 0,
                error: None,
                result: None,
                started_at: None,
                finished_at: None,
                path: plan.paths.get(i).cloned(),
            })
            .collect();
        if heads.is_none() {
            insert_steps(conn, &steps).await?;
        }
        recorded.push((Run { run, steps }, true));
    }
    Ok(Recorded {
        runs: recorded,
        replayed: false,
        held_back,
        over_budget: false,
        refused: None,
        reached,
    })
}

/// Most step rows in one insert: 10 parameters a row, well under SQLite's 32,766.
const MAX_STEP_ROWS: usize = 1000;

/// Writes `steps` as they are (status, attempts, result, times) in multi-row inserts: the
/// steps of runs [`record_runs_in`] wrote with `heads`, once their heads are applied.
pub async fn insert_steps<C: ConnectionTrait>(conn: &C, steps: &[run_steps::Model]) -> Result<(), StorageError> {
    for chunk in steps.chunks(MAX_STEP_ROWS) {
        let rows = chunk.iter().map(|step| run_steps::ActiveModel {
            run_id: Set(step.run_id),
            step_index: Set(step.step_index),
            action_type: Set(step.action_type.clone()),
            status: Set(step.status.clone()),
            attempts: Set(step.attempts),
            error: Set(step.error.clone()),
            result: Set(step.result.clone()),
            started_at: Set(step.started_at),
            finished_at: Set(step.finished_at),
            path: Set(step.path.clone()),
        });
        run_steps::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// One run with its steps.
pub async fn get<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<Option<Run>, StorageError> {
    let Some(run) = runs::Entity::find_by_id(run_id).one(conn).await? else {
        return Ok(None);
    };
    let steps = steps_of(conn, run_id).await?;
    Ok(Some(Run { run, steps }))
}

/// Runs matching `filter`, newest first, with their steps.
pub async fn list<C: ConnectionTrait>(conn: &C, filter: &RunFilter) -> Result<Vec<Run>, StorageError> {
    let rows = filter
        .select()
        .order_by_desc(runs::Column::Id)
        .limit(filter.limit.unwrap_or(100))
        .all(conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut steps = if ids.is_empty() {
        Vec::new()
    } else {
        run_steps::Entity::find()
            .filter(run_steps::Column::RunId.is_in(ids))
            .order_by_asc(run_steps::Column::RunId)
            .order_by_asc(run_steps::Column::StepIndex)
            .all(conn)
            .await?
    };
    Ok(rows
        .into_iter()
        .map(|run| {
            let (mine, rest): (Vec<_>, Vec<_>) = steps.drain(..).partition(|s| s.run_id == run.id);
            steps = rest;
            Run { run, steps: mine }
        })
        .collect())
}

/// The ids of runs matching `filter` whose status is one of `statuses`, newest first, at
/// most `limit`: what a bulk retry or cancel acts on.
pub async fn ids_matching<C: ConnectionTrait>(
    conn: &C,
    filter: &RunFilter,
    statuses: &[&str],
    limit: u64,
) -> Result<Vec<i64>, StorageError> {
    Ok(filter
        .select()
        .filter(runs::Column::Status.is_in(statuses.iter().copied()))
        .order_by_desc(runs::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect())
}

/// Records a failed attempt of a step (the effect itself was rolled back): the step is
/// `failed` with its error and one more attempt, and the run carries the error too.
pub async fn mark_step_failed<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    step_index: i32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, attempts = attempts + 1, error = $2, \
         started_at = COALESCE(started_at, $3), finished_at = $3 \
         WHERE run_id = $4 AND step_index = $5 AND status <> 'done'",
        vec![
            step_status::FAILED.into(),
            error.into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    conn.execute(statement(
        conn,
        "UPDATE runs SET error = $1, updated_at = $2 WHERE id = $3",
        vec![error.into(), now.into(), run_id.into()],
    ))
    .await?;
    Ok(())
}

/// Marks a step done with what it did and moves the run on to step `next` (the step after
/// it in its workflow's [`Flow`](crate::flow::Flow)). Actions call this inside their
/// transaction, so the effect and the record commit together.
pub async fn complete_step<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    step_index: i32,
    next: i32,
    result: &Value,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    mark_step_done(conn, run_id, step_index, result, now).await?;
    advance(conn, run_id, next, status::RUNNING, now).await
}

/// Parks a run on its delay step: the step is `waiting`, the run `waiting` with `next`, its
/// step after the delay. Call it in the transaction that schedules the continuation.
pub async fn set_waiting<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    step_index: i32,
    next: i32,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, attempts = attempts + 1, \
         started_at = COALESCE(started_at, $2) WHERE run_id = $3 AND step_index = $4",
        vec![
            step_status::WAITING.into(),
            now.into(),
            run_id.into(),
            step_index.into(),
        ],
    ))
    .await?;
    advance(conn, run_id, next, status::WAITING, now).await
}

/// Wakes a waiting run: its delay steps are done and the run is running again. Returns
/// false, changing nothing, when the run is not waiting.
pub async fn resume<C: ConnectionTrait>(conn: &C, run_id: i64, now: DateTime<Utc>) -> Result<bool, StorageError> {
    let woken = conn
        .execute(statement(
            conn,
            "UPDATE runs SET status = $1, reason = NULL, updated_at = $2 WHERE id = $3 AND status = $4",
            vec![
                status::RUNNING.into(),
                now.into(),
                run_id.into(),
                status::WAITING.into(),
            ],
        ))
        .await?
        .rows_affected();
    if woken == 0 {
        return Ok(false);
    }
    // Delay steps before `next_step` are done; a step waiting at `next_step` (for its send
    // window) is not: it runs now.
    conn.execute(statement(
        conn,
        "UPDATE run_steps SET status = $1, finished_at = $2 WHERE run_id = $3 AND status = $4 \
         AND step_index < (SELECT next_step FROM runs WHERE id = $3)",
        vec![
            step_status::DONE.into(),
            now.into(),
            run_id.into(),
            step_status::WAITING.into(),
        ],
    ))
    .await?;
    Ok(true)
}

/// Ends a run: `done`, or `failed` with the error that stopped it.
pub async fn finish_run<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let status = if error.is_some() { status::FAILED } else { status::DONE };
    conn.execute(statement(
        conn,
        "UPDATE runs SET status = $1, error = $2, updated_at = $3 WHERE id = $4",
        vec![
            status.into(),
            error.map(str::to_owned).into(),
            now.into(),
            run_id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Notes on run `run_id` why it is as it is (e.g. an event it emitted was stopped by a
/// cascade limit). By id: the run comes from the outbox row of the event it emitted, never
/// from what an event claims (guards::cascade).
pub async fn note_reason<C: ConnectionTrait>(conn: &C, run_id: i64, reason: &str) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "UPDATE runs SET reason = $1 WHERE id = $2",
        vec![reason.into(), run_id.into()],
    ))
    .await?;
    Ok(())
}

/// How many runs the cascade of outside event `root` has started (its own included).
pub async fn cascade_runs<C: ConnectionTrait>(conn: &C, root: &str) -> Result<u64, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT COUNT(*) AS n FROM runs WHERE cascade_root = $1",
            vec![root.into()],
        ))
        .await?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn steps_of<C: ConnectionTrait>(conn: &C, run_id: i64) -> Result<Vec<run_steps::Model>, StorageError> {
    Ok(run_steps::Entity::find()
        .filter(run_steps::Column::RunId.eq(run_id))
        .order_by_asc(run_steps::Column::StepIndex)
        .all(conn)
        .await?)
}
