//! Running customers' work: plans an event and records it, resumes runs, and runs each
//! chain step by step. Plain async code without actix: the executor actor only queues
//! work and hands it here one piece at a time, so this is tested with a
//! [`ManualClock`](crate::clock::ManualClock), a database and a fake delivery.
//!
//! Every piece of work carries the fence (partition and epoch) it was started under.
//! It runs only while [`Ownership`] holds that fence, stops at the next step when the
//! partition moves away, and every transaction it commits checks the fence in the
//! database, so a process that lost a partition records nothing more for it.
//!
//! - [`work`]: what is queued for a customer.
//! - [`ownership`]: the partitions this process works for, and their work in progress.
//! - [`batch`]: group commit: the first transaction of many customers' work in one.
//! - [`chain`]: one run's steps from its next one.

pub mod batch;
mod cascade;
pub mod chain;
pub mod ownership;
pub mod work;

pub use ownership::{Ownership, WorkGuard};
pub use work::{Handled, Ticket, Why, Work};

use crate::clock::SharedClock;
use crate::conditions::Facts;
use crate::envelope::EventEnvelope;
use crate::flow::Flow;
use crate::guards::cascade::Budget;
use crate::guards::identity::Mismatch;
use crate::metrics::{event_label, Metrics};
use crate::outbound::send::{Deliver, DeliveryReport};
use crate::outbound::Integrations;
use crate::plan::{CompiledWorkflow, WorkflowSet};
use crate::retry::{self, Backoff, Retried};
use crate::storage::ownership::Fence;
use crate::storage::runs::{self, status, Run};
use crate::storage::steps;
use crate::storage::{customers, recovery, Database, StorageError};
use cascade::cascade_over_budget;
use chain::Chain;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Sends an external step's request (the delivery pool, or a test's stand-in).
pub trait Outbound: Send + Sync {
    fn deliver(&self, request: Deliver) -> LocalBoxFuture<'static, DeliveryReport>;
}

/// Told the due time of every continuation parked, so the scheduler wakes for it.
pub trait Wakeup: Send + Sync {
    fn wake(&self, due_at: DateTime<Utc>);
}

/// Why a piece of work stopped without finishing: the partition moved to another owner
/// (nothing more may be recorded for it), or a storage error that retrying cannot mend.
#[derive(Debug)]
pub enum Stopped {
    Revoked,
    Storage(StorageError),
}

/// What every executor shares.
pub struct Runner {
    pub db: Database,
    pub clock: SharedClock,
    pub outbound: Arc<dyn Outbound>,
    pub wakeup: Arc<dyn Wakeup>,
    pub ownership: Ownership,
    pub integrations: Integrations,
    /// This process's name in claims (`scheduled.claimed_by`).
    pub node_id: String,
    pub max_step_attempts: u32,
    /// How long a delivery's sender holds it ([`steps::begin_external`]): long enough for
    /// every attempt the delivery policy allows, so the next owner of a partition that moves
    /// meanwhile waits for the outcome rather than sending again.
    ///
    /// [`steps::begin_external`]: crate::storage::steps::begin_external
    pub delivery_lease: Duration,
    /// Replaces every delay's duration (demos).
    pub delay_override: Option<Duration>,
    /// The partitions' group-commit lanes (`engine.batch_max` units a transaction).
    pub batches: batch::Batches,
    /// `engine.sync_customers`: events create and touch their customers ([`sync`](crate::storage::sync)).
    pub sync_customers: bool,
    /// Events the engine emitted deeper than this start no runs (`engine.max_cascade_depth`).
    pub max_cascade_depth: u32,
    /// An emitted event that would take the runs of its cascade past this starts none
    /// (`engine.max_cascade_runs`): the depth alone lets a fan-out grow exponentially.
    pub max_cascade_runs: u32,
    /// A run that would take its customer past this many waiting runs fails its wait step
    /// instead (`engine.max_waits_per_customer`).
    pub max_waits_per_customer: u32,
}

impl Runner {
    /// Does one piece of a customer's work to its end, to its next delay, or until its
    /// partition moves away. Work of a partition this process no longer holds (under the
    /// fence it was queued with) is dropped unstarted.
    pub async fn process(&self, customer_id: i64, work: Work) {
        let fence = work.fence();
        let Some(_guard) = self.ownership.enter(fence) else {
            tracing::debug!(
                customer_id,
                partition = fence.partition,
                "dropping work of a revoked partition"
            );
            Metrics::global().work_dropped.inc();
            return;
        };
        let outcome = match work {
            Work::Event {
                event,
                set,
                fence,
                recorded,
            } => {
                let span = event_span(&event);
                self.on_event(customer_id, event, &set, fence, recorded)
                    .instrument(span)
                    .await
            }
            Work::Resume { run_id, fence, why } => self.resume(customer_id, run_id, fence, why).await,
        };
        match outcome {
            Ok(()) => {}
            Err(Stopped::Revoked) => {
                tracing::info!(
                    customer_id,
                    partition = fence.partition,
                    "partition moved away; work stopped"
                )
            }
            Err(Stopped::Storage(e)) => {
                tracing::error!(customer_id, partition = fence.partition, error = %e, "work stopped")
            }
        }
    }

    /// Retries a database operation while the partition is held: a database outage
    /// pauses the customer (and, through unacknowledged offsets, consumption) instead of
    /// losing work. Stops on a fenced or permanent failure, or once the partition moved.
    pub async fn db<T, F, Fut>(&self, operation: &'static str, fence: Fence, f: F) -> Result<T, Stopped>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StorageError>>,
    {
        let lost = || !self.ownership.holds(fence);
        let on_retry = |e: &StorageError, _attempt: u32, wait: Duration| {
            Metrics::global().db_retries.with_label_values(&[operation]).inc();
            tracing::warn!(operation, error = %e, retry_in_ms = wait.as_millis() as u64, "database operation failed, retrying");
        };
        match retry::retry(&*self.clock, Backoff::STORAGE, None, lost, on_retry, f).await {
            Retried::Ok(v) => Ok(v),
            Retried::Failed { error, .. } if error.is_fenced() || !self.ownership.holds(fence) => Err(Stopped::Revoked),
            Retried::Failed { error, .. } => Err(Stopped::Storage(error)),
        }
    }

    async fn snapshot(&self, customer_id: i64, fence: Fence) -> Result<Map<String, Value>, Stopped> {
        Ok(self
            .db("snapshot", fence, || {
                customers::snapshot(self.db.connection(), customer_id)
            })
            .await?
            .unwrap_or_else(|| Map::from_iter([("id".to_owned(), Value::from(customer_id))])))
    }

    /// Applies what the event says about its customer (the one call of
    /// [`sync::apply`](crate::storage::sync::apply)) and reads the snapshot the event is
    /// planned against, in one fenced transaction: the plan sees the customer the event
    /// just created or touched. Idempotent, so a redelivery repeats it harmlessly.
    async fn synced_snapshot(
        &self,
        customer_id: i64,
        event: &EventEnvelope,
        fence: Fence,
    ) -> Result<Map<String, Value>, Stopped> {
        let now = self.clock.now();
        let snapshot = self
            .db("sync", fence, || async {
                let txn = self.db.begin_fenced(fence).await?;
                crate::storage::sync::apply(&txn, event, now).await?;
                let snapshot = customers::snapshot(&txn, customer_id).await?;
                txn.commit().await?;
                Ok(snapshot)
            })
            .await?;
        Ok(snapshot.unwrap_or_else(|| Map::from_iter([("id".to_owned(), Value::from(customer_id))])))
    }

    /// Records and runs one event. An event the database refuses (poison data, which no
    /// retry mends) is answered as refused, so its reader dead-letters it with the reason
    /// and the partition goes on, unless it was already answered as recorded (then a run's
    /// step failed on it, and that run records the failure).
    async fn on_event(
        &self,
        customer_id: i64,
        event: EventEnvelope,
        set: &Arc<WorkflowSet>,
        fence: Fence,
        recorded: oneshot::Sender<Handled>,
    ) -> Result<(), Stopped> {
        let mut answer = Some(recorded);
        let outcome = self.event_work(customer_id, &event, set, fence, &mut answer).await;
        match (outcome, answer.take()) {
            (Err(Stopped::Storage(e)), Some(answer)) if e.is_refused_data() => {
                let _ = answer.send(poisoned(&event, &e, set));
                Ok(())
            }
            (outcome, _) => outcome,
        }
    }

    async fn event_work(
        &self,
        customer_id: i64,
        event: &EventEnvelope,
        set: &Arc<WorkflowSet>,
        fence: Fence,
        recorded: &mut Option<oneshot::Sender<Handled>>,
    ) -> Result<(), Stopped> {
        let lineage = self.lineage(event, fence).await?;
        if crate::guards::cascade::stopped(lineage.depth, self.max_cascade_depth) {
            self.stop_cascade(event, &lineage, fence).await?;
            answer(recorded, Handled::Recorded);
            return Ok(());
        }
        let budget = Budget {
            lineage,
            max_runs: self.max_cascade_runs,
        };
        // What the event says of its customer is applied before it is planned: here when
        // the exits need the customer first, otherwise in the batch, before its snapshots.
        let has_exits = set.has_exits(&event.event_type);
        let sync = self.sync_customers && !has_exits;
        if has_exits {
            let customer = if self.sync_customers {
                self.synced_snapshot(customer_id, event, fence).await?
            } else {
                self.snapshot(customer_id, fence).await?
            };
            for workflow_id in set.exits(Facts::new(event, &customer)) {
                self.exit(event, workflow_id, fence).await?;
            }
        }
        let job = batch::Job::Event {
            fence,
            event: Box::new(event.clone()),
            set: Arc::clone(set),
            sync,
            budget: budget.clone(),
        };
        let EventRecorded {
            customer,
            context,
            plan,
            runs,
            replayed,
            held_back,
            over_budget,
            refused,
            reached,
        } = match self.batched(job).await {
            Ok(batch::Done::Event(done)) => {
                let done = *done;
                EventRecorded {
                    customer: done.customer,
                    context: done.context,
                    plan: done.plan,
                    ..started_runs(done.recorded)
                }
            }
            Ok(batch::Done::Resume(_)) | Err(batch::Failed::Alone(_)) => {
                self.record_alone(customer_id, event, &budget, set, fence).await?
            }
            Err(batch::Failed::Fenced) => return Err(Stopped::Revoked),
        };
        if let Some(mismatch) = refused {
            answer(recorded, refuse(event, mismatch, set));
            return Ok(());
        }
        answer(recorded, Handled::Recorded);
        if set.awaits(&event.event_type) && !replayed {
            // The event may have ended waits: their continuations are due now.
            self.wakeup.wake(self.clock.now());
        }
        let metrics = Metrics::global();
        for goal in &reached {
            metrics.goal_reached(&goal.workflow_id);
            if goal.exited {
                metrics.runs_exited.inc();
            }
        }
        if over_budget {
            cascade_over_budget(event, &budget);
            return Ok(());
        }
        for held in &held_back {
            metrics.runs_held_back.with_label_values(&[held.limited_by]).inc();
        }
        for run in runs.iter().filter(|r| r.run.status == status::HELD_OUT && !replayed) {
            metrics.held_out(&run.run.workflow_id);
        }
        let label = event_label(&event.event_type, set.listens_to(&event.event_type));
        if replayed {
            // A redelivery: its recorded runs go on where they stopped; nothing is planned.
            metrics.events.with_label_values(&[label, "replayed"]).inc();
            tracing::info!(event_id = %event.id, customer_id, runs = runs.len(), "redelivered event replays its recorded plan");
            for run in runs {
                if is_unfinished(&run) {
                    self.continue_recorded(customer_id, run, fence).await?;
                }
            }
            return Ok(());
        }
        if runs.is_empty() {
            metrics.events.with_label_values(&[label, "no_match"]).inc();
            return Ok(());
        }
        metrics.events.with_label_values(&[label, "matched"]).inc();
        tracing::info!(event_id = %event.id, customer_id, trigger = %event.event_type, runs = runs.len(), "event matched");
        for run in runs {
            if !is_unfinished(&run) {
                continue;
            }
            // Runs held back by a limit are missing, so runs find their workflow by id.
            let Some(workflow) = plan.iter().find(|w| w.id == run.run.workflow_id) else {
                continue;
            };
            let chain = Chain {
                runner: self,
                fence,
                run: &run,
                event,
                flow: workflow.workflow.flow(),
                window: workflow.workflow.send_window.as_ref(),
            };
            chain.run(&customer, &context).instrument(run_span(&run, None)).await?;
        }
        Ok(())
    }

    /// The one-at-a-time path of an event whose unit failed in its batch: its snapshot,
    /// its plan and its runs with their first steps in a transaction of their own, or
    /// when that fails too, the runs alone (the chain then records the failing step and
    /// retries it as usual).
    async fn record_alone(
        &self,
        customer_id: i64,
        event: &EventEnvelope,
        budget: &Budget,
        set: &WorkflowSet,
        fence: Fence,
    ) -> Result<EventRecorded, Stopped> {
        // The batch's sync may not have committed: applying it again is harmless.
        let customer = if self.sync_customers {
            self.synced_snapshot(customer_id, event, fence).await?
        } else {
            self.snapshot(customer_id, fence).await?
        };
        let (plan, verdicts) = set.judge(Facts::new(event, &customer));
        let planned = batch::planned_runs(&plan, customer_id);
        let flows: Vec<&Flow> = plan.iter().map(|w| w.workflow.flow()).collect();
        let context = crate::template::context(&Facts::new(event, &customer));
        let awaited = set.awaits(&event.event_type).then_some(&customer);
        let now = self.clock.now();
        let started = crate::actions::record_and_apply(
            &self.db,
            fence,
            event,
            budget,
            (&planned, &verdicts),
            &flows,
            &context,
            awaited,
            now,
        );
        let recorded = match started.await {
            Ok(started) => started_runs(started),
            Err(e) if e.is_fenced() => return Err(Stopped::Revoked),
            Err(e) => {
                // Nothing of it was committed: the step-by-step path records the failure.
                tracing::debug!(event_id = %event.id, customer_id, error = %e, "recording with the first steps failed, going step by step");
                let recorded = self
                    .db("record_runs", fence, || {
                        runs::record_cascade_runs(
                            &self.db,
                            fence,
                            event,
                            budget,
                            (&planned, &verdicts),
                            awaited,
                            self.clock.now(),
                        )
                    })
                    .await?;
                EventRecorded {
                    runs: recorded.runs,
                    replayed: recorded.replayed,
                    held_back: recorded.held_back,
                    over_budget: recorded.over_budget,
                    refused: recorded.refused,
                    reached: recorded.reached,
                    ..EventRecorded::default()
                }
            }
        };
        Ok(EventRecorded {
            customer,
            context,
            plan,
            ..recorded
        })
    }

    async fn resume(&self, customer_id: i64, run_id: i64, fence: Fence, why: Why) -> Result<(), Stopped> {
        let due_at = match why {
            Why::Due {
                due_at,
                ticket: _ticket,
            } => {
                let job = batch::Job::Resume {
                    fence,
                    run_id,
                    customer_id,
                };
                match self.batched(job).await {
                    Ok(batch::Done::Resume(done)) => return self.after_resume(customer_id, fence, due_at, *done).await,
                    Err(batch::Failed::Fenced) => return Err(Stopped::Revoked),
                    Ok(batch::Done::Event(_)) | Err(batch::Failed::Alone(_)) => Some(due_at),
                }
            }
            Why::Recover => None,
        };
        // One at a time: what a resume whose unit failed in its batch, or a recovery, does.
        let Some(run) = self
            .db("load_run", fence, || runs::get(self.db.connection(), run_id))
            .await?
        else {
            tracing::warn!(run_id, customer_id, "resumed run not found");
            return Ok(());
        };
        match due_at {
            Some(due_at) => {
                let now = self.clock.now();
                let node = self.node_id.as_str();
                if !self
                    .db("resume", fence, || steps::resumed(&self.db, fence, run_id, node, now))
                    .await?
                {
                    return self
                        .after_resume(customer_id, fence, due_at, batch::ResumeDone::Stale)
                        .await;
                }
                observe_lateness(now, due_at);
                // The run is running again from its next step, as just committed.
                let mut run = run;
                run.run.status = status::RUNNING.to_owned();
                self.continue_recorded(customer_id, run, fence).await
            }
            None if is_unfinished(&run) => self.continue_recorded(customer_id, run, fence).await,
            None => Ok(()),
        }
    }

    /// Goes on with a run whose resume was committed in a batch: its chain from the first
    /// step its batch did not apply.
    async fn after_resume(
        &self,
        customer_id: i64,
        fence: Fence,
        due_at: DateTime<Utc>,
        done: batch::ResumeDone,
    ) -> Result<(), Stopped> {
        let (run, ready) = match done {
            batch::ResumeDone::Stale => {
                tracing::debug!(
                    customer_id,
                    "stale resume ignored: the continuation is no longer what was claimed"
                );
                Metrics::global().stale_resumes.inc();
                return Ok(());
            }
            batch::ResumeDone::Resumed { run, ready } => (*run, ready),
        };
        observe_lateness(self.clock.now(), due_at);
        let Some(ready) = ready else {
            // The event or the workflow version cannot be used: the usual path fails the run.
            return self.continue_recorded(customer_id, run, fence).await;
        };
        count_applied(&ready.applied);
        if run.run.status == status::DONE {
            run_done(&run);
            return Ok(());
        }
        let span = run_span(&run, ready.event.trace.as_ref());
        Chain {
            runner: self,
            fence,
            run: &run,
            event: &ready.event,
            flow: ready.workflow.flow(),
            window: ready.workflow.send_window.as_ref(),
        }
        .run(&ready.customer, &ready.context)
        .instrument(span)
        .await
    }

    /// Runs a recorded run on from its next step, with the workflow version it started with.
    async fn continue_recorded(&self, customer_id: i64, run: Run, fence: Fence) -> Result<(), Stopped> {
        let event = match serde_json::from_value::<Value>(run.run.event.clone()).map(EventEnvelope::from_value) {
            Ok(Ok(event)) => EventEnvelope {
                trace: run.run.traceparent.as_deref().and_then(|t| t.parse().ok()),
                ..event
            },
            _ => {
                return self
                    .fail_run(fence, &run, run.run.next_step, "stored event cannot be decoded")
                    .await
            }
        };
        let workflow = match self
            .db("load_version", fence, || self.workflow_of(self.db.connection(), &run))
            .await?
        {
            Ok(workflow) => workflow,
            Err(e) => return self.fail_run(fence, &run, run.run.next_step, &e).await,
        };
        let customer = self.snapshot(customer_id, fence).await?;
        let context = crate::template::context(&Facts::new(&event, &customer));
        let span = run_span(&run, event.trace.as_ref());
        Chain {
            runner: self,
            fence,
            run: &run,
            event: &event,
            flow: workflow.flow(),
            window: workflow.send_window.as_ref(),
        }
        .run(&customer, &context)
        .instrument(span)
        .await
    }

    /// Cancels `workflow_id`'s waiting runs of the event's customer (its `exit_when` rule
    /// matched the event).
    async fn exit(&self, event: &EventEnvelope, workflow_id: &str, fence: Fence) -> Result<(), Stopped> {
        let reason = crate::guards::exit::reason(&event.event_type, &event.id);
        let cancelled = self
            .db("exit_waiting", fence, || {
                recovery::exit_waiting(
                    &self.db,
                    fence,
                    workflow_id,
                    event.customer_id,
                    &reason,
                    self.clock.now(),
                )
            })
            .await?;
        for run_id in &cancelled {
            Metrics::global().runs_exited.inc();
            Metrics::global().runs.with_label_values(&["cancelled"]).inc();
            tracing::info!(run_id, workflow_id, customer_id = event.customer_id, event_id = %event.id, "waiting run cancelled by exit_when");
        }
        Ok(())
    }

    async fn fail_run(&self, fence: Fence, run: &Run, step: i32, error: &str) -> Result<(), Stopped> {
        let id = run.run.id;
        self.db("fail_run", fence, || {
            steps::fail(&self.db, fence, id, step, error, self.clock.now())
        })
        .await?;
        Metrics::global().runs.with_label_values(&["failed"]).inc();
        tracing::warn!(run_id = id, workflow_id = %run.run.workflow_id, customer_id = run.run.customer_id, step, error, "run failed");
        Ok(())
    }
}

/// The span of an event's work: every log line of it names the event, and its trace when
/// it has one. Exported over OTLP, it continues the producer's trace.
fn event_span(event: &EventEnvelope) -> tracing::Span {
    let span = tracing::info_span!("event", event_id = %event.id, trace_id = tracing::field::Empty);
    if let Some(trace) = &event.trace {
        span.record("trace_id", trace.trace_id());
        crate::telemetry::continue_trace(&span, trace);
    }
    span
}

/// The span of one run's chain. Inside its event's span (the run just started) it is that
/// span's child, which already names the trace. On its own (resumed after a delay, a
/// restart or a retry) it names the trace the run was started with, and continues it when
/// exported.
fn run_span(run: &Run, trace: Option<&crate::trace::TraceParent>) -> tracing::Span {
    let nested = !tracing::Span::current().is_none();
    let span = tracing::info_span!(
        "run",
        run_id = run.run.id,
        workflow_id = %run.run.workflow_id,
        trace_id = tracing::field::Empty
    );
    if let (Some(trace), false) = (trace, nested) {
        span.record("trace_id", trace.trace_id());
        crate::telemetry::continue_trace(&span, trace);
    }
    span
}

/// Records how late a continuation started.
fn observe_lateness(now: DateTime<Utc>, due_at: DateTime<Utc>) {
    let late = (now - due_at).num_milliseconds().max(0) as f64 / 1000.0;
    Metrics::global().scheduler_lateness.observe(late);
}

/// Counts the steps a transaction applied, as the chain counts its own.
fn count_applied(applied: &[(crate::catalogue::ActionKind, Duration)]) {
    let metrics = Metrics::global();
    for (kind, took) in applied {
        metrics
            .action_seconds
            .with_label_values(&[kind.name()])
            .observe(took.as_secs_f64());
        metrics.actions.with_label_values(&[kind.name(), "done"]).inc();
    }
}

/// An event's runs as committed with their first steps: counted, and the ended ones
/// logged as done.
fn started_runs(started: runs::Recorded<crate::actions::Started>) -> EventRecorded {
    let runs = started
        .runs
        .into_iter()
        .map(|s| {
            count_applied(&s.applied);
            if s.run.run.status == status::DONE {
                run_done(&s.run);
            }
            s.run
        })
        .collect();
    EventRecorded {
        runs,
        replayed: started.replayed,
        held_back: started.held_back,
        over_budget: started.over_budget,
        refused: started.refused,
        reached: started.reached,
        ..EventRecorded::default()
    }
}

/// What recording an event gives its chains.
#[derive(Default)]
struct EventRecorded {
    /// The customer and template context the event was planned with.
    customer: Map<String, Value>,
    context: Value,
    plan: Vec<Arc<CompiledWorkflow>>,
    runs: Vec<Run>,
    /// A redelivery: the recorded runs go on, nothing new starts.
    replayed: bool,
    /// The runs its workflows' limits held back.
    held_back: Vec<runs::HeldBack>,
    /// Stopped by `engine.max_cascade_runs`: no runs.
    over_budget: bool,
    /// Another event's id: no runs, nothing replayed; the event is refused.
    refused: Option<Mismatch>,
    /// The runs whose goal the event reached.
    reached: Vec<crate::storage::goals::Reached>,
}

/// Sends the event's answer to its reader, once.
fn answer(recorded: &mut Option<oneshot::Sender<Handled>>, handled: Handled) {
    if let Some(tx) = recorded.take() {
        let _ = tx.send(handled);
    }
}

/// The answer for an event the database refused: dead-letter it with the database's
/// reason (see [`crate::storage::refuses_data`]).
fn poisoned(event: &EventEnvelope, error: &StorageError, set: &WorkflowSet) -> Handled {
    let label = event_label(&event.event_type, set.listens_to(&event.event_type));
    Metrics::global()
        .events
        .with_label_values(&[label, "dead_lettered"])
        .inc();
    tracing::warn!(
        event_id = %event.id,
        trigger = %event.event_type,
        customer_id = event.customer_id,
        %error,
        "the database refuses this event's data; it is dead-lettered and not run"
    );
    Handled::Refused(format!("the database refuses this event's data: {error}"))
}

/// An event refused because its id is another event's (security issue 22): counted,
/// logged, and answered as refused, so its partition's reader dead-letters it with the
/// reason and goes on. Nothing of it ran and nothing of the other event was replayed.
///
/// The `trigger` label is the type only when a workflow listens to it: with the customer
/// sync on, events of any type reach the executor, and a producer must not grow the label
/// set with refused events.
fn refuse(event: &EventEnvelope, mismatch: Mismatch, set: &WorkflowSet) -> Handled {
    let label = event_label(&event.event_type, set.listens_to(&event.event_type));
    Metrics::global().events.with_label_values(&[label, "refused"]).inc();
    Metrics::global()
        .events_refused
        .with_label_values(&[mismatch.label()])
        .inc();
    let reason = mismatch.reason(&event.id);
    tracing::warn!(
        event_id = %event.id,
        trigger = %event.event_type,
        customer_id = event.customer_id,
        differs = mismatch.label(),
        "event refused: its id is already taken by another event; it is dead-lettered and not run"
    );
    Handled::Refused(reason)
}

/// Whether a run still has steps to run now (not ended, not waiting on a delay).
fn is_unfinished(run: &Run) -> bool {
    run.run.status == status::PENDING || run.run.status == status::RUNNING
}

/// Counts and logs a run that ended well.
fn run_done(run: &Run) {
    Metrics::global().runs.with_label_values(&["done"]).inc();
    let run = &run.run;
    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, event_id = %run.event_id, "run done");
}
