//! Group commit per partition: the recording work of many customers, ready at the same
//! time, committed in one transaction.
//!
//! Each customer's executor still does its customer's work one piece at a time, so
//! per-customer order is what it was. What changes is who commits the piece's first
//! transaction: an event's plan and runs with their leading internal steps, or a due
//! run's resume with the internal steps after its delay. The executor hands that unit to
//! its partition's lane and waits for it; the first executor to find the lane idle leads:
//! it takes every unit queued (up to the batch size), loads their customers' snapshots in
//! one query, and commits the units in one transaction fenced by the partition's epoch,
//! each unit by the same per-unit function as before
//! ([`record_and_apply_in`](crate::actions::record_and_apply_in), or the resume below).
//! Units queued meanwhile form the next batch, led by the next executor waiting, so the
//! batch grows with the load and a lone event commits at once, with no timer.
//!
//! A unit that fails fails its whole transaction. The batch is then split in two and each
//! half committed on its own, down to one unit: the failing customer's unit alone ends in
//! failure and its executor takes the step-by-step path, which records the failure and
//! retries as it always did; every other unit is committed once. A transaction that
//! cannot even begin (the database is down) is not split: every unit goes one at a time,
//! each retrying with backoff as before. A fenced batch (the partition moved away)
//! records nothing, as before.

use super::Runner;
use crate::actions::{self, ActionError, Started};
use crate::catalogue::ActionKind;
use crate::conditions::Facts;
use crate::envelope::EventEnvelope;
use crate::flow::Flow;
use crate::guards::cascade::Budget;
use crate::plan::{CompiledWorkflow, WorkflowSet};
use crate::storage::ownership::Fence;
use crate::storage::runs::{self, PlannedRun, Recorded, Run};
use crate::storage::{customers, scheduled, steps, StorageError};
use crate::verdict::Verdict;
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// The largest batch allowed, whatever the configuration says: a batch holds its
/// customers' snapshots and plans in memory and one transaction's locks.
pub const BATCH_CEILING: usize = 1000;

/// The batch size when none is configured (`engine.batch_max`).
pub const BATCH_DEFAULT: usize = 500;

/// How many workflow versions' steps are kept decoded for resumes.
const STEPS_CACHED: usize = 1024;

/// Decoded steps by (workflow id, version).
type StepsCache = HashMap<(String, i64), Arc<Workflow>>;

/// The lanes of the partitions this process works for, and what they share.
pub struct Batches {
    max: usize,
    lanes: Mutex<HashMap<i32, Lane>>,
    /// Steps of workflow versions, decoded once: a version never changes once saved.
    steps: Mutex<StepsCache>,
}

impl Default for Batches {
    fn default() -> Self {
        Self::new(BATCH_DEFAULT)
    }
}

impl Batches {
    /// Lanes committing at most `max` units a transaction (clamped to 1..=[`BATCH_CEILING`]).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.clamp(1, BATCH_CEILING),
            lanes: Mutex::default(),
            steps: Mutex::default(),
        }
    }

    /// The batch size in force.
    pub fn max(&self) -> usize {
        self.max
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Lane>> {
        self.lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Queued>,
    /// An executor is committing this lane's units; it hands over when it is done.
    leading: bool,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<Reply>,
}

enum Reply {
    Done(Outcome),
    /// Lead the lane now, starting with this (your own) job.
    Lead(Job),
}

/// One unit of a customer's work, committed in a batch.
pub enum Job {
    /// Plan `event` against its customer and record the plan, the runs and their leading
    /// internal steps; first apply what the event says of its customer when `sync` is set
    /// (`engine.sync_customers`, [`sync::apply`](crate::storage::sync::apply)).
    Event {
        fence: Fence,
        /// Boxed: an envelope is far larger than a resume's ids.
        event: Box<EventEnvelope>,
        set: Arc<WorkflowSet>,
        sync: bool,
        /// The event's cascade, as the runner judged its cause.
        budget: Budget,
    },
    /// Take run `run_id`'s due continuation off the schedule (as claimed by this node),
    /// mark it running and apply its internal steps after the delay.
    Resume {
        fence: Fence,
        run_id: i64,
        customer_id: i64,
    },
}

impl Job {
    fn fence(&self) -> Fence {
        match self {
            Job::Event { fence, .. } | Job::Resume { fence, .. } => *fence,
        }
    }

    fn customer_id(&self) -> i64 {
        match self {
            Job::Event { event, .. } => event.customer_id,
            Job::Resume { customer_id, .. } => *customer_id,
        }
    }
}

/// What a unit came to.
pub type Outcome = Result<Done, Failed>;

/// A unit committed.
pub enum Done {
    Event(Box<EventDone>),
    Resume(Box<ResumeDone>),
}

/// An event recorded, with what its chains need next.
pub struct EventDone {
    pub customer: Map<String, Value>,
    pub context: Value,
    pub plan: Vec<Arc<CompiledWorkflow>>,
    pub recorded: Recorded<Started>,
}

/// A resume committed.
pub enum ResumeDone {
    /// The continuation is no longer what was claimed: nothing was changed.
    Stale,
    /// Running again; the steps after the delay not applied yet are the chain's. `ready`
    /// is `None` when the run's event or workflow version cannot be used: the chain's
    /// usual path fails the run with the reason.
    Resumed { run: Box<Run>, ready: Option<Box<Ready>> },
}

/// A resumed run prepared for its chain.
pub struct Ready {
    pub event: EventEnvelope,
    pub workflow: Arc<Workflow>,
    pub customer: Map<String, Value>,
    pub context: Value,
    pub applied: Vec<(ActionKind, Duration)>,
}

/// Why a unit was not committed.
#[derive(Debug)]
pub enum Failed {
    /// The partition moved away: nothing may be recorded for it.
    Fenced,
    /// The unit failed alone (or the batch could not be run): its executor takes the
    /// one-at-a-time path.
    Alone(String),
}

/// A unit's failure inside its transaction.
#[derive(Debug, thiserror::Error)]
enum UnitError {
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The continuation was taken off the schedule but its run was not waiting: that must
    /// not commit (the one-at-a-time resume rolls it back and calls it stale).
    #[error("run {0} is not waiting")]
    NotWaiting(i64),
    /// The transaction could not even begin (the database is unreachable): no unit is at
    /// fault, so splitting would only multiply the failures.
    #[error(transparent)]
    Begin(StorageError),
}

impl UnitError {
    fn is_fenced(&self) -> bool {
        match self {
            UnitError::Action(e) => e.is_fenced(),
            UnitError::Storage(e) | UnitError::Begin(e) => e.is_fenced(),
            UnitError::NotWaiting(_) => false,
        }
    }
}

/// Gives the lane to the next waiting executor (or leaves it idle) when the leader is
/// done, including when its future is dropped mid-batch, so a lane is never left led by
/// nobody.
struct Leadership<'a> {
    batches: &'a Batches,
    partition: i32,
}

impl Drop for Leadership<'_> {
    fn drop(&mut self) {
        let mut lanes = self.batches.lock();
        let Some(lane) = lanes.get_mut(&self.partition) else {
            return;
        };
        while let Some(next) = lane.queue.pop_front() {
            let Queued { job, reply } = next;
            if reply.send(Reply::Lead(job)).is_ok() {
                return;
            }
            // That executor is gone (its work was dropped): try the next.
        }
        lane.leading = false;
        lanes.remove(&self.partition);
    }
}

impl Runner {
    /// Commits `job` in its partition's next batch and returns what it came to.
    pub(super) async fn batched(&self, job: Job) -> Outcome {
        let partition = job.fence().partition;
        let waiting = {
            let mut lanes = self.batches.lock();
            let lane = lanes.entry(partition).or_default();
            if lane.leading {
                let (reply, rx) = oneshot::channel();
                lane.queue.push_back(Queued { job, reply });
                Err(rx)
            } else {
                lane.leading = true;
                Ok(job)
            }
        };
        let mine = match waiting {
            Ok(job) => job,
            Err(rx) => match rx.await {
                Ok(Reply::Done(outcome)) => return outcome,
                Ok(Reply::Lead(job)) => job,
                Err(_) => return Err(Failed::Alone("the batch was dropped".to_owned())),
            },
        };
        let _leadership = Leadership {
            batches: &self.batches,
            partition,
        };
        let mut jobs = vec![mine];
        let mut replies = Vec::new();
        {
            let mut lanes = self.batches.lock();
            if let Some(lane) = lanes.get_mut(&partition) {
                while jobs.len() < self.batches.max {
                    let Some(Queued { job, reply }) = lane.queue.pop_front() else {
                        break;
                    };
                    jobs.push(job);
                    replies.push(reply);
                }
            }
        }
        let mut outcomes = self.commit_batch(jobs).await.into_iter();
        let own = outcomes
            .next()
            .unwrap_or_else(|| Err(Failed::Alone("no outcome".to_owned())));
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(Reply::Done(outcome));
        }
        own
    }

    /// Commits `jobs` (units of different customers) in as few transactions as their
    /// failures allow, and returns each one's outcome, in order. Public for the tests that
    /// prove a failure holds up only its own customer; the executors come through
    /// [`Runner::process`].
    ///
    /// The events' customer sync comes first, in one transaction per fence, so the
    /// snapshots loaded next show what the events created or touched. A unit whose sync
    /// could not commit goes one at a time, where the sync is retried with the rest.
    pub async fn commit_batch(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        let metrics = crate::metrics::Metrics::global();
        metrics.batch_units.observe(jobs.len() as f64);
        let mut outcomes: Vec<Option<Outcome>> = self.sync(&jobs).await.into_iter().map(|f| f.map(Err)).collect();
        let ready: Vec<Job> = jobs
            .into_iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| outcome.is_none())
            .map(|(job, _)| job)
            .collect();
        let mut committed = self.commit_synced(ready).await.into_iter();
        for slot in &mut outcomes {
            if slot.is_none() {
                *slot = committed.next();
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Failed::Alone("not committed".to_owned()))))
            .collect()
    }

    /// Applies the sync of every event in `jobs` that asks for it, one transaction per run
    /// of jobs under the same fence, and returns, per job, why it cannot go on (`None` when
    /// it can).
    async fn sync(&self, jobs: &[Job]) -> Vec<Option<Failed>> {
        let mut failed: Vec<Option<Failed>> = jobs.iter().map(|_| None).collect();
        let now = self.clock.now();
        let mut from = 0;
        while from < jobs.len() {
            let fence = jobs[from].fence();
            let to = (from..jobs.len())
                .find(|&i| jobs[i].fence() != fence)
                .unwrap_or(jobs.len());
            let events: Vec<&EventEnvelope> = jobs[from..to]
                .iter()
                .filter_map(|job| match job {
                    Job::Event { event, sync: true, .. } => Some(event.as_ref()),
                    _ => None,
                })
                .collect();
            if !events.is_empty() {
                let applied = async {
                    let txn = self.db.begin_fenced(fence).await?;
                    crate::storage::sync::apply_all(&txn, &events, now).await?;
                    txn.commit().await.map_err(StorageError::from)
                };
                if let Err(e) = applied.await {
                    tracing::debug!(error = %e, units = to - from, "batch customer sync failed; units go one at a time");
                    for slot in &mut failed[from..to] {
                        *slot = Some(if e.is_fenced() {
                            Failed::Fenced
                        } else {
                            Failed::Alone(e.to_string())
                        });
                    }
                }
            }
            from = to;
        }
        failed
    }

    /// [`Runner::commit_batch`] after the sync.
    async fn commit_synced(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        let metrics = crate::metrics::Metrics::global();
        let ids: Vec<i64> = jobs.iter().map(Job::customer_id).collect();
        let snapshots = match customers::snapshots(self.db.connection(), &ids).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, units = jobs.len(), "batch snapshots failed; units go one at a time");
                return jobs.iter().map(|_| Err(Failed::Alone(e.to_string()))).collect();
            }
        };
        let now = self.clock.now();
        let prepared: Vec<Prepared> = jobs.into_iter().map(|job| prepare(job, &snapshots)).collect();
        let mut outcomes: Vec<Option<Outcome>> = prepared.iter().map(|_| None).collect();
        // Ranges still to commit, in order; a failed range is split in two.
        let mut ranges = VecDeque::from([(0, prepared.len())]);
        while let Some((from, to)) = ranges.pop_front() {
            if from >= to {
                continue;
            }
            let fence = prepared[from].fence();
            // Units of one fence per transaction (an epoch change mid-lane splits it).
            let to = (from..to).find(|&i| prepared[i].fence() != fence).map_or(to, |split| {
                ranges.push_front((split, to));
                split
            });
            match self.attempt(fence, &prepared[from..to], now).await {
                Ok(done) => {
                    for (slot, d) in outcomes[from..to].iter_mut().zip(done) {
                        *slot = Some(Ok(d));
                    }
                }
                Err(e) if e.is_fenced() => {
                    for slot in &mut outcomes[from..to] {
                        *slot = Some(Err(Failed::Fenced));
                    }
                }
                Err(e @ UnitError::Begin(_)) => {
                    // Every unit goes one at a time, each retrying with backoff.
                    tracing::warn!(error = %e, units = to - from, "batch could not begin; units go one at a time");
                    for slot in &mut outcomes[from..to] {
                        *slot = Some(Err(Failed::Alone(e.to_string())));
                    }
                }
                Err(e) if to - from == 1 => {
                    tracing::debug!(error = %e, customer_id = prepared[from].customer_id(), "unit failed alone");
                    outcomes[from] = Some(Err(Failed::Alone(e.to_string())));
                }
                Err(e) => {
                    metrics.batch_splits.inc();
                    tracing::debug!(error = %e, units = to - from, "batch failed; splitting it");
                    let mid = from + (to - from) / 2;
                    ranges.push_front((mid, to));
                    ranges.push_front((from, mid));
                }
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Failed::Alone("not committed".to_owned()))))
            .collect()
    }

    /// One transaction over `units`, each by its per-unit function.
    async fn attempt(&self, fence: Fence, units: &[Prepared], now: DateTime<Utc>) -> Result<Vec<Done>, UnitError> {
        let txn = self.db.begin_fenced(fence).await.map_err(|e| {
            if e.is_fenced() {
                UnitError::Storage(e)
            } else {
                UnitError::Begin(e)
            }
        })?;
        let mut done = Vec::with_capacity(units.len());
        for unit in units {
            done.push(match unit {
                Prepared::Event {
                    fence,
                    event,
                    budget,
                    customer,
                    context,
                    plan,
                    planned,
                    verdicts,
                    awaits,
                } => {
                    let flows: Vec<&Flow> = plan.iter().map(|w| w.workflow.flow()).collect();
                    let awaited = awaits.then_some(customer);
                    let recorded = actions::record_and_apply_in(
                        &txn,
                        *fence,
                        event,
                        budget,
                        (planned, verdicts),
                        &flows,
                        context,
                        awaited,
                        now,
                    )
                    .await?;
                    Done::Event(Box::new(EventDone {
                        customer: customer.clone(),
                        context: context.clone(),
                        plan: plan.clone(),
                        recorded,
                    }))
                }
                Prepared::Resume {
                    fence,
                    run_id,
                    customer,
                    ..
                } => Done::Resume(Box::new(self.resume_in(&txn, *fence, *run_id, customer, now).await?)),
            });
        }
        txn.commit().await.map_err(StorageError::from)?;
        Ok(done)
    }

    /// A resume's unit: the continuation off the schedule, the run running, its internal
    /// steps after the delay applied. What `steps::resumed` and the chain's first steps do
    /// one transaction each.
    async fn resume_in(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        fence: Fence,
        run_id: i64,
        customer: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<ResumeDone, UnitError> {
        if !scheduled::complete(txn, run_id, &self.node_id, now).await? {
            return Ok(ResumeDone::Stale);
        }
        if !runs::resume(txn, run_id, now).await? {
            return Err(UnitError::NotWaiting(run_id));
        }
        // A wait's continuation is its timeout: it ends the wait unless the event did first.
        crate::storage::waits::time_out(txn, run_id, now).await?;
        let Some(mut run) = runs::get(txn, run_id).await? else {
            return Err(UnitError::NotWaiting(run_id));
        };
        let event = match serde_json::from_value::<Value>(run.run.event.clone()).map(EventEnvelope::from_value) {
            Ok(Ok(event)) => EventEnvelope {
                trace: run.run.traceparent.as_deref().and_then(|t| t.parse().ok()),
                ..event
            },
            _ => {
                return Ok(ResumeDone::Resumed {
                    run: Box::new(run),
                    ready: None,
                })
            }
        };
        let Ok(workflow) = self.workflow_of(txn, &run).await? else {
            return Ok(ResumeDone::Resumed {
                run: Box::new(run),
                ready: None,
            });
        };
        let context = crate::template::context(&Facts::new(&event, customer));
        let (applied, _ended) = actions::apply_leading(txn, fence, &mut run, workflow.flow(), &context, now).await?;
        Ok(ResumeDone::Resumed {
            run: Box::new(run),
            ready: Some(Box::new(Ready {
                event,
                workflow,
                customer: customer.clone(),
                context,
                applied,
            })),
        })
    }

    /// The steps of the workflow version `run` started with, decoded once per version.
    /// `None` when that version is gone or no longer valid.
    pub(super) async fn workflow_of<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        run: &Run,
    ) -> Result<Result<Arc<Workflow>, String>, StorageError> {
        let key = (run.run.workflow_id.clone(), run.run.workflow_version);
        let cached = {
            let cache = self.batches.steps.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&key).cloned()
        };
        if let Some(workflow) = cached {
            return Ok(Ok(workflow));
        }
        let workflow = match steps::workflow_version(conn, run).await? {
            Ok(workflow) => Arc::new(workflow),
            Err(e) => return Ok(Err(e)),
        };
        let mut cache = self.batches.steps.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= STEPS_CACHED {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&workflow));
        Ok(Ok(workflow))
    }
}

/// A job with what it needs that does not depend on the transaction.
enum Prepared {
    Event {
        fence: Fence,
        /// Boxed: an envelope is far larger than a resume's ids.
        event: Box<EventEnvelope>,
        budget: Budget,
        customer: Map<String, Value>,
        context: Value,
        plan: Vec<Arc<CompiledWorkflow>>,
        planned: Vec<PlannedRun>,
        /// The verdict on each workflow of the trigger, recorded with the plan.
        verdicts: Vec<Verdict>,
        /// Runs may wait for events of its type ([`WorkflowSet::awaits`]).
        awaits: bool,
    },
    Resume {
        fence: Fence,
        run_id: i64,
        customer_id: i64,
        customer: Map<String, Value>,
    },
}

impl Prepared {
    fn fence(&self) -> Fence {
        match self {
            Prepared::Event { fence, .. } | Prepared::Resume { fence, .. } => *fence,
        }
    }

    fn customer_id(&self) -> i64 {
        match self {
            Prepared::Event { event, .. } => event.customer_id,
            Prepared::Resume { customer_id, .. } => *customer_id,
        }
    }
}

/// The customer's snapshot as loaded for the batch, or just its id when it has no row.
fn customer_of(snapshots: &HashMap<i64, Map<String, Value>>, customer_id: i64) -> Map<String, Value> {
    snapshots
        .get(&customer_id)
        .cloned()
        .unwrap_or_else(|| Map::from_iter([("id".to_owned(), Value::from(customer_id))]))
}

/// Plans an event against its customer, as the one-at-a-time path does.
fn prepare(job: Job, snapshots: &HashMap<i64, Map<String, Value>>) -> Prepared {
    match job {
        Job::Event {
            fence,
            event,
            set,
            budget,
            ..
        } => {
            let customer = customer_of(snapshots, event.customer_id);
            let facts = Facts::new(&event, &customer);
            let (plan, verdicts) = set.judge(facts);
            let planned = planned_runs(&plan, event.customer_id);
            let context = crate::template::context(&Facts::new(&event, &customer));
            let awaits = set.awaits(&event.event_type);
            Prepared::Event {
                fence,
                event,
                budget,
                customer,
                context,
                plan,
                planned,
                verdicts,
                awaits,
            }
        }
        Job::Resume {
            fence,
            run_id,
            customer_id,
        } => Prepared::Resume {
            fence,
            run_id,
            customer_id,
            customer: customer_of(snapshots, customer_id),
        },
    }
}

/// The paths a journey's step rows carry; none for a plain list (its paths are its
/// indexes).
pub(super) fn journey_paths(flow: &crate::flow::Flow) -> Vec<String> {
    if flow.is_journey() {
        flow.slots().iter().map(|s| s.path.clone()).collect()
    } else {
        Vec::new()
    }
}

/// The runs a plan records for the customer.
pub(super) fn planned_runs(plan: &[Arc<CompiledWorkflow>], customer_id: i64) -> Vec<PlannedRun> {
    plan.iter()
        .map(|w| PlannedRun {
            workflow_id: w.id.clone(),
            workflow_version: w.workflow.version.unwrap_or(1),
            steps: w.workflow.flow().slots().iter().map(|s| s.step.kind()).collect(),
            paths: journey_paths(w.workflow.flow()),
            limit: w.workflow.limits,
            held_out: w.holds_out(customer_id),
            goal: w.workflow.goal.clone(),
        })
        .collect()
}
