//! The executor: one actor per active customer, so one customer's events and resumed
//! chains run strictly one after another while different customers run in parallel.
//!
//! For an event it takes the customer snapshot (after that customer's earlier events were
//! applied), plans against it, records the runs durably together with the internal steps
//! they begin with (which lets the partition store the event's offset), then runs the rest
//! of each chain in priority order. A delay parks the rest of its
//! chain in the database and frees the executor; the scheduler resumes it later through
//! the same executor. Executors are created on demand by the matcher and stopped when idle,
//! so memory follows active customers, not all customers.

use super::delivery::{Deliver, DeliveryPool};
use super::metrics::{Mailbox, Metrics};
use crate::catalogue::Action;
use crate::conditions::Facts;
use crate::envelope::EventEnvelope;
use crate::plan::WorkflowSet;
use crate::storage::runs::{self, PlannedRun, Run};
use crate::storage::{customers, steps, Database, StorageError};
use crate::workflow::Step;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Work for one customer, taken in arrival order.
pub enum Work {
    /// A new event and the workflow set current when it was routed.
    Event {
        event: EventEnvelope,
        set: Arc<WorkflowSet>,
        partition: i32,
        recorded: oneshot::Sender<()>,
    },
    /// Continue a recorded run at its next step (after a delay, or after a restart).
    Resume { run_id: i64, due_at: Option<DateTime<Utc>> },
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Execute(pub Work);

/// Sent by the matcher once it has forgotten this executor: no more work will come.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Told to the matcher after `idle` without work, with how many items were processed, so it
/// can tell whether anything is still on its way.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Idle {
    pub customer_id: i64,
    pub processed: u64,
}

/// What every executor shares.
pub struct ExecutorDeps {
    pub db: Database,
    pub delivery: DeliveryPool,
    pub scheduler: Recipient<super::scheduler::Wake>,
    pub integrations: steps::Integrations,
    pub max_step_attempts: u32,
    pub idle: Duration,
    pub mailbox: Mailbox,
    /// Replaces every delay's duration (demos and tests).
    pub delay_override: Option<Duration>,
}

pub struct Executor {
    customer_id: i64,
    deps: Arc<ExecutorDeps>,
    router: Recipient<Idle>,
    queue: VecDeque<Work>,
    busy: bool,
    processed: u64,
    idle_timer: Option<SpawnHandle>,
}

impl Executor {
    pub fn new(customer_id: i64, deps: Arc<ExecutorDeps>, router: Recipient<Idle>) -> Self {
        Self {
            customer_id,
            deps,
            router,
            queue: VecDeque::new(),
            busy: false,
            processed: 0,
            idle_timer: None,
        }
    }

    /// Takes the next item, runs it to its end (or to its delay), then the next.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some(work) = self.queue.pop_front() else {
            let idle = self.deps.idle;
            self.idle_timer = Some(ctx.run_later(idle, |act, _ctx| {
                if !act.busy && act.queue.is_empty() {
                    act.router.do_send(Idle {
                        customer_id: act.customer_id,
                        processed: act.processed,
                    });
                }
            }));
            return;
        };
        if let Some(timer) = self.idle_timer.take() {
            ctx.cancel_future(timer);
        }
        self.busy = true;
        let job = process(Arc::clone(&self.deps), self.customer_id, work);
        ctx.spawn(job.into_actor(self).map(|_, act, ctx| {
            act.busy = false;
            act.processed += 1;
            act.pump(ctx);
        }));
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["executor"]).inc();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["executor"]).dec();
    }
}

impl Handler<Execute> for Executor {
    type Result = ();

    fn handle(&mut self, Execute(work): Execute, ctx: &mut Context<Self>) {
        self.deps.mailbox.handled();
        self.queue.push_back(work);
        self.pump(ctx);
    }
}

impl Handler<Stop> for Executor {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) {
        // The matcher sends Stop only when everything it routed here was processed.
        if self.queue.is_empty() && !self.busy {
            ctx.stop();
        }
    }
}

async fn process(deps: Arc<ExecutorDeps>, customer_id: i64, work: Work) {
    match work {
        Work::Event {
            event,
            set,
            partition,
            recorded,
        } => on_event(&deps, customer_id, event, &set, partition, recorded).await,
        Work::Resume { run_id, due_at } => {
            if let Some(due) = due_at {
                let late = (Utc::now() - due).num_milliseconds().max(0) as f64 / 1000.0;
                Metrics::global().scheduler_lateness.observe(late);
            }
            resume(&deps, customer_id, run_id).await
        }
    }
}

/// Retries a database operation until it succeeds: a database outage pauses the customer
/// (and, through unacknowledged offsets, consumption) instead of losing work.
async fn retry<T, F, Fut>(operation: &'static str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut wait = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                Metrics::global().db_retries.with_label_values(&[operation]).inc();
                tracing::warn!(operation, error = %e, retry_in_ms = wait.as_millis() as u64, "database operation failed, retrying");
                actix_rt::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn snapshot(db: &Database, customer_id: i64) -> Map<String, Value> {
    retry("snapshot", || customers::snapshot(db.connection(), customer_id))
        .await
        .unwrap_or_else(|| Map::from_iter([("id".to_owned(), Value::from(customer_id))]))
}

async fn on_event(
    deps: &ExecutorDeps,
    customer_id: i64,
    event: EventEnvelope,
    set: &WorkflowSet,
    partition: i32,
    recorded: oneshot::Sender<()>,
) {
    let metrics = Metrics::global();
    let customer = snapshot(&deps.db, customer_id).await;
    let plan = set.plan(Facts {
        event: &event,
        customer: &customer,
    });
    if plan.is_empty() {
        metrics.events.with_label_values(&[&event.event_type, "no_match"]).inc();
        let _ = recorded.send(());
        return;
    }
    let planned: Vec<PlannedRun> = plan
        .iter()
        .map(|w| PlannedRun {
            workflow_id: w.id.clone(),
            workflow_version: w.workflow.version.unwrap_or(1),
            steps: w.workflow.actions.iter().map(Step::kind).collect(),
        })
        .collect();
    let steps: Vec<&[Step]> = plan.iter().map(|w| w.workflow.actions.as_slice()).collect();
    let context = crate::template::context(&Facts {
        event: &event,
        customer: &customer,
    });
    let started = crate::actions::record_and_apply(&deps.db, &event, partition, &planned, &steps, &context, Utc::now());
    let runs = match started.await {
        Ok(started) => started
            .into_iter()
            .map(|s| {
                for (kind, took) in s.applied {
                    metrics
                        .action_seconds
                        .with_label_values(&[kind.name()])
                        .observe(took.as_secs_f64());
                    metrics.actions.with_label_values(&[kind.name(), "done"]).inc();
                }
                if s.run.run.status == runs::status::DONE {
                    run_done(&s.run, &event);
                }
                s.run
            })
            .collect(),
        Err(e) => {
            // Nothing of it was committed: the step-by-step path records the failure.
            tracing::debug!(event_id = %event.id, customer_id, error = %e, "recording with the first steps failed, going step by step");
            retry("record_runs", || {
                runs::record_runs(&deps.db, &event, partition, &planned, Utc::now())
            })
            .await
        }
    };
    let _ = recorded.send(());
    metrics.events.with_label_values(&[&event.event_type, "matched"]).inc();
    tracing::info!(event_id = %event.id, customer_id, trigger = %event.event_type, runs = runs.len(), "event matched");
    for (workflow, run) in plan.iter().zip(runs) {
        if run.run.status != runs::status::PENDING && run.run.status != runs::status::RUNNING {
            continue; // a redelivered event: this run already ended or waits on a delay
        }
        let chain = Chain {
            deps,
            run: &run,
            event: &event,
            steps: &workflow.workflow.actions,
        };
        chain.run(&customer, &context).await;
    }
}

/// Counts and logs a run that ended well.
fn run_done(run: &Run, event: &EventEnvelope) {
    Metrics::global().runs.with_label_values(&["done"]).inc();
    let run = &run.run;
    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, event_id = %event.id, "run done");
}

async fn resume(deps: &ExecutorDeps, customer_id: i64, run_id: i64) {
    let Some(run) = retry("load_run", || runs::get(deps.db.connection(), run_id)).await else {
        tracing::warn!(run_id, customer_id, "resumed run not found");
        return;
    };
    if run.run.status == runs::status::DONE || run.run.status == runs::status::FAILED {
        retry("resume", || steps::resumed(&deps.db, run_id, Utc::now())).await;
        return;
    }
    let event = match serde_json::from_value::<Value>(run.run.event.clone()).map(EventEnvelope::from_value) {
        Ok(Ok(event)) => event,
        _ => {
            fail_run(deps, &run, run.run.next_step, "stored event cannot be decoded").await;
            return;
        }
    };
    let steps = match retry("load_version", || steps::workflow_steps(deps.db.connection(), &run)).await {
        Ok(steps) => steps,
        Err(e) => {
            fail_run(deps, &run, run.run.next_step, &e).await;
            return;
        }
    };
    retry("resume", || steps::resumed(&deps.db, run_id, Utc::now())).await;
    let customer = snapshot(&deps.db, customer_id).await;
    let context = crate::template::context(&Facts {
        event: &event,
        customer: &customer,
    });
    Chain {
        deps,
        run: &run,
        event: &event,
        steps: &steps,
    }
    .run(&customer, &context)
    .await;
}

async fn fail_run(deps: &ExecutorDeps, run: &Run, step: i32, error: &str) {
    let id = run.run.id;
    retry("fail_run", || steps::fail(&deps.db, id, step, error, Utc::now())).await;
    Metrics::global().runs.with_label_values(&["failed"]).inc();
    tracing::warn!(run_id = id, workflow_id = %run.run.workflow_id, customer_id = run.run.customer_id, step, error, "run failed");
}

/// One run's chain from its next step.
struct Chain<'a> {
    deps: &'a ExecutorDeps,
    run: &'a Run,
    event: &'a EventEnvelope,
    steps: &'a [Step],
}

impl Chain<'_> {
    /// Runs the chain against `customer`; `context` is the template context of the event
    /// and that customer, built once for all of an event's chains.
    async fn run(&self, customer: &Map<String, Value>, context: &Value) {
        let metrics = Metrics::global();
        let run = &self.run.run;
        let facts = Facts {
            event: self.event,
            customer,
        };
        let start = usize::try_from(run.next_step).unwrap_or(0);
        for (i, step) in self.steps.iter().enumerate().skip(start) {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let kind = step.kind();
            let started = Instant::now();
            let outcome = match &step.action {
                Action::Delay { duration } => {
                    let wait = self.deps.delay_override.unwrap_or_else(|| duration.to_std());
                    let due_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    retry("delay", || {
                        steps::delay(
                            &self.deps.db,
                            run.id,
                            index,
                            run.customer_id,
                            run.partition,
                            due_at,
                            Utc::now(),
                        )
                    })
                    .await;
                    self.deps.scheduler.do_send(super::scheduler::Wake { due_at });
                    metrics.actions.with_label_values(&[kind.name(), "delayed"]).inc();
                    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, %due_at, "chain delayed");
                    return;
                }
                action if kind.is_external() => self.external(index, action, &facts, context).await,
                action => self.internal(index, action, context).await,
            };
            metrics
                .action_seconds
                .with_label_values(&[kind.name()])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => metrics.actions.with_label_values(&[kind.name(), "done"]).inc(),
                Err(failure) => {
                    metrics.actions.with_label_values(&[kind.name(), "failed"]).inc();
                    if failure.recorded {
                        Metrics::global().runs.with_label_values(&["failed"]).inc();
                        tracing::warn!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, error = %failure.message, "run failed");
                    } else {
                        fail_run(self.deps, self.run, index, &failure.message).await;
                    }
                    return;
                }
            }
        }
        retry("finish_run", || {
            runs::finish_run(self.deps.db.connection(), run.id, None, Utc::now())
        })
        .await;
        run_done(self.run, self.event);
    }

    /// Applies an internal step; retries database failures up to the configured attempts.
    async fn internal(&self, index: i32, action: &Action, context: &Value) -> Result<(), Failure> {
        let run = &self.run.run;
        let mut attempts = 0;
        loop {
            let ctx = crate::actions::StepContext {
                run_id: run.id,
                step_index: index,
                customer_id: run.customer_id,
                workflow_id: &run.workflow_id,
                facts_context: context,
                now: Utc::now(),
            };
            match crate::actions::run_internal_step(&self.deps.db, &ctx, action).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && attempts + 1 < self.deps.max_step_attempts => {
                    attempts += 1;
                    Metrics::global()
                        .actions
                        .with_label_values(&[action.kind().name(), "retried"])
                        .inc();
                    let message = e.to_string();
                    retry("mark_step_failed", || {
                        runs::mark_step_failed(self.deps.db.connection(), run.id, index, &message, Utc::now())
                    })
                    .await;
                    actix_rt::time::sleep(Duration::from_millis(200 * (1 << attempts.min(6)))).await;
                }
                Err(e) => return Err(Failure::unrecorded(e.to_string())),
            }
        }
    }

    /// Sends an email, SMS or webhook through the durable outbox and waits for delivery.
    async fn external(&self, index: i32, action: &Action, facts: &Facts<'_>, context: &Value) -> Result<(), Failure> {
        let run = &self.run.run;
        let request = retry("prepare_request", || {
            self.deps
                .integrations
                .request(self.deps.db.connection(), run, action, facts, context)
        })
        .await
        .map_err(Failure::unrecorded)?;
        let key = steps::idempotency_key(run.id, index);
        let queued = retry("enqueue", || {
            steps::begin_external(&self.deps.db, run, index, action.kind(), &request, &key, Utc::now())
        })
        .await;
        let report = self
            .deps
            .delivery
            .deliver(Deliver {
                request: queued.request,
                idempotency_key: key.clone(),
                attempts_before: queued.attempts,
            })
            .await;
        let outcome = report.outcome.map_err(|e| e.to_string());
        retry("finish_external", || {
            steps::finish_external(
                &self.deps.db,
                run.id,
                index,
                queued.outbox_id,
                report.attempts,
                &outcome,
                Utc::now(),
            )
        })
        .await;
        match &outcome {
            Ok(status) => {
                tracing::info!(run_id = run.id, step = index, kind = action.kind().name(), status, idempotency_key = %key, "delivered")
            }
            Err(e) => {
                tracing::warn!(run_id = run.id, step = index, kind = action.kind().name(), error = %e, attempts = report.attempts, "delivery failed")
            }
        }
        outcome.map(drop).map_err(|message| Failure {
            message,
            recorded: true,
        })
    }
}

/// Why a step failed, and whether its failure is already recorded with the run's.
struct Failure {
    message: String,
    recorded: bool,
}

impl Failure {
    fn unrecorded(message: String) -> Self {
        Self {
            message,
            recorded: false,
        }
    }
}
