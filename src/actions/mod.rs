//! The ten internal actions: the ones whose whole effect is in the database.
//!
//! [`run_internal_step`] applies one step in one transaction together with its record in
//! `run_steps`: either the effect and "step done" commit together, or nothing does. So a
//! replay after a crash finds the step done and repeats nothing, and a failure leaves no
//! half-applied change; the caller records the failure with
//! [`runs::mark_step_failed`](crate::storage::runs::mark_step_failed) and decides on a retry.
//!
//! Events an action emits (status changes, freeze requests) go to the outbox in the same
//! transaction, so they exist exactly when the change does.

mod assign;
mod counter;
mod flags;
mod fresh;
mod note;
pub mod preview;
mod status;
mod task;

pub use fresh::{apply_leading, record_and_apply, record_and_apply_in, Started};

use crate::catalogue::{Action, ActionKind};
use crate::clock::rfc3339;
use crate::guards::cascade::{Cause, MAX_DEPTH_VALUE};
use crate::storage::entities::{customers, run_steps, runs as run_rows};
use crate::storage::outbox::{self, Origin, OutboxKind};
use crate::storage::ownership::Fence;
use crate::storage::runs::{self, step_status};
use crate::storage::sql::statement;
use crate::storage::{Database, StorageError};
use crate::template::TemplateError;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait};
use serde_json::{json, Value};

/// What a step needs to know about its run.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// The partition's epoch the run is worked under: the step commits only while it is
    /// current.
    pub fence: Fence,
    pub run_id: i64,
    pub step_index: i32,
    /// The step the run goes on to once this one is done (see [`crate::flow`]).
    pub next_step: i32,
    pub customer_id: i64,
    pub workflow_id: &'a str,
    /// The template context of the run (`template::context` of its facts).
    pub facts_context: &'a Value,
    /// The time the step runs at; passed in so tests control it.
    pub now: DateTime<Utc>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// Applied now; `result` says what happened (e.g. `{"agent_id": 4}`) and is stored
    /// with the step.
    Done { result: Value },
    /// Already done by an earlier attempt: nothing was repeated.
    AlreadyDone,
}

/// Why an internal action could not apply. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0} is not an internal action")]
    NotInternal(&'static str),
    #[error("run {run_id} has no step {step_index}")]
    NoStep { run_id: i64, step_index: i32 },
    #[error("customer {0} not found")]
    CustomerNotFound(i64),
    #[error("no team {0}")]
    NoTeam(i64),
    #[error("team {0} has no active agent")]
    NoActiveAgent(i64),
    #[error("no agent {0}")]
    NoAgent(i64),
    #[error("agent {0} is not active")]
    AgentInactive(i64),
    #[error("customer {0} has no team")]
    NoCurrentTeam(i64),
    #[error("team {0} is not on the retention desk")]
    NotRetentionTeam(i64),
    #[error("no retention team")]
    NoRetentionTeam,
    #[error("no status type {0:?}")]
    NoStatusType(String),
    #[error("no {status_type} status named {name:?}")]
    NoStatusNamed { status_type: String, name: String },
    #[error("no status {0}")]
    NoStatusId(i64),
    #[error("status {status_id} is not a {status_type} status")]
    StatusOfOtherType { status_id: i64, status_type: String },
    #[error("customer {0} has no agent")]
    NoAssignedAgent(i64),
    #[error("agent {0} has no manager")]
    NoManager(i64),
    #[error("due time is out of range")]
    DueOutOfRange,
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ActionError {
    /// A database failure (the database may come back), as opposed to an action that cannot
    /// apply to this data (the database refusing the values included) and would fail again.
    pub fn is_transient(&self) -> bool {
        matches!(self, ActionError::Storage(e @ StorageError::Db(_)) if !e.is_refused_data())
    }

    /// The run's partition changed hands: stop, record nothing.
    pub fn is_fenced(&self) -> bool {
        matches!(self, ActionError::Storage(e) if e.is_fenced())
    }
}

impl crate::retry::Classify for ActionError {
    fn verdict(&self) -> crate::retry::Verdict {
        if self.is_transient() {
            crate::retry::Verdict::Transient
        } else {
            crate::retry::Verdict::Permanent
        }
    }
}

impl From<DbErr> for ActionError {
    fn from(e: DbErr) -> Self {
        ActionError::Storage(StorageError::Db(e))
    }
}

/// Whether `kind` is applied by [`run_internal_step`] (as opposed to delivered through
/// the outbox, or a delay handled by the scheduler).
pub fn is_internal(kind: ActionKind) -> bool {
    !kind.is_external() && kind != ActionKind::Delay && !kind.is_flow()
}

/// Applies one internal step in one transaction with its record; see the module doc.
pub async fn run_internal_step(
    db: &Database,
    ctx: &StepContext<'_>,
    action: &Action,
) -> Result<StepOutcome, ActionError> {
    let kind = action.kind();
    if !is_internal(kind) {
        return Err(ActionError::NotInternal(kind.name()));
    }
    let txn = db.begin_fenced(ctx.fence).await?;
    // Claiming the step row first serialises concurrent attempts of the same step on
    // PostgreSQL (the row stays locked until commit; the loser then sees it done).
    let claimed = txn
        .execute(statement(
            &txn,
            "UPDATE run_steps SET started_at = COALESCE(started_at, $1) \
             WHERE run_id = $2 AND step_index = $3 AND status <> $4",
            vec![
                ctx.now.into(),
                ctx.run_id.into(),
                ctx.step_index.into(),
                step_status::DONE.into(),
            ],
        ))
        .await?
        .rows_affected();
    if claimed == 0 {
        let step = run_steps::Entity::find_by_id((ctx.run_id, ctx.step_index))
            .one(&txn)
            .await?;
        txn.rollback().await?;
        return match step {
            Some(_) => Ok(StepOutcome::AlreadyDone),
            None => Err(ActionError::NoStep {
                run_id: ctx.run_id,
                step_index: ctx.step_index,
            }),
        };
    }
    let result = match apply(&txn, ctx, action).await {
        Ok(result) => result,
        Err(e) => {
            // The action's error is the one to report; a failed rollback ends the same way
            // (the connection drops the transaction).
            let _ = txn.rollback().await;
            return Err(e);
        }
    };
    runs::complete_step(&txn, ctx.run_id, ctx.step_index, ctx.next_step, &result, ctx.now).await?;
    txn.commit().await?;
    Ok(StepOutcome::Done { result })
}

async fn apply(txn: &DatabaseTransaction, ctx: &StepContext<'_>, action: &Action) -> Result<Value, ActionError> {
    match action {
        Action::AssignToTeam { team_id } => assign::to_team(txn, ctx, *team_id).await,
        Action::AssignToAgent { agent_id } => assign::to_agent(txn, ctx, *agent_id).await,
        Action::ReassignRoundRobin => assign::round_robin(txn, ctx).await,
        Action::HandoverToRetention { team_id } => assign::handover_to_retention(txn, ctx, *team_id).await,
        Action::SetStatus { status_type, status } => status::set(txn, ctx, status_type, status).await,
        Action::CreateTask {
            title,
            task_type,
            due_in,
        } => task::create(txn, ctx, title, task_type.as_deref(), *due_in).await,
        Action::AddNote { body } => note::add(txn, ctx, body).await,
        Action::IncrementManagerCounter { counter, by } => counter::increment(txn, ctx, counter, *by).await,
        Action::SetCustomerActive { active } => flags::set_active(txn, ctx, *active).await,
        Action::FreezeAccount { reason } => flags::freeze(txn, ctx, reason).await,
        other => Err(ActionError::NotInternal(other.kind().name())),
    }
}

/// The step's customer, locked for the transaction on PostgreSQL so concurrent steps of
/// one customer apply one after the other.
async fn customer<C: ConnectionTrait>(conn: &C, ctx: &StepContext<'_>) -> Result<customers::Model, ActionError> {
    use sea_orm::{QuerySelect, Select};
    let mut query: Select<customers::Entity> = customers::Entity::find_by_id(ctx.customer_id);
    if conn.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(conn)
        .await?
        .ok_or(ActionError::CustomerNotFound(ctx.customer_id))
}

/// Queues an event envelope for the topic, keyed by the step so a replay cannot queue it
/// twice.
async fn emit<C: ConnectionTrait>(
    conn: &C,
    ctx: &StepContext<'_>,
    suffix: &str,
    event_type: &str,
    data: Value,
) -> Result<String, ActionError> {
    let id = format!("run-{}-{}-{suffix}", ctx.run_id, ctx.step_index);
    let cause = cause(conn, ctx).await?;
    let envelope = json!({
        "id": id,
        "type": event_type,
        "customer_id": ctx.customer_id,
        "occurred_at": rfc3339(ctx.now),
        "data": data,
        "cause": cause,
    });
    let origin = Origin {
        run_id: Some(ctx.run_id),
        step_index: Some(ctx.step_index),
        customer_id: ctx.customer_id,
        partition: Some(ctx.fence.partition),
    };
    outbox::enqueue(conn, OutboxKind::Event, origin, envelope, &id, ctx.now).await?;
    Ok(id)
}

/// The cause an emitted event carries: the run's event and workflow, one level deeper
/// than the run's event as it claimed (a forged cause cannot make its events shallower),
/// and the root of the run's cascade as the runner recorded it after checking the run's
/// event's cause (guards::cascade). A run recorded before roots were kept is its own root.
async fn cause<C: ConnectionTrait>(conn: &C, ctx: &StepContext<'_>) -> Result<Cause, ActionError> {
    let run = run_rows::Entity::find_by_id(ctx.run_id)
        .one(conn)
        .await?
        .ok_or(ActionError::NoStep {
            run_id: ctx.run_id,
            step_index: ctx.step_index,
        })?;
    let depth = run
        .event
        .get("cause")
        .and_then(|c| c.get("depth"))
        .and_then(Value::as_u64)
        .and_then(|d| u32::try_from(d).ok())
        .unwrap_or(0);
    let root = run.cascade_root.unwrap_or_else(|| run.event_id.clone());
    Ok(Cause {
        event_id: run.event_id,
        workflow_id: run.workflow_id,
        depth: depth.saturating_add(1).min(MAX_DEPTH_VALUE),
        root: Some(root),
    })
}

/// The author of notes a workflow writes.
fn author(ctx: &StepContext<'_>) -> String {
    format!("workflow:{}", ctx.workflow_id)
}
