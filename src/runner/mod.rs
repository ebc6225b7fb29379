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
//! - [`chain`]: one run's steps from its next one.

pub mod chain;
pub mod ownership;
pub mod work;

pub use ownership::{Ownership, WorkGuard};
pub use work::{Ticket, Why, Work};

use crate::actors::metrics::{event_label, Metrics};
use crate::actors::protocol::{Deliver, DeliveryReport};
use crate::clock::SharedClock;
use crate::conditions::Facts;
use crate::envelope::EventEnvelope;
use crate::plan::WorkflowSet;
use crate::retry::{self, Backoff, Retried};
use crate::storage::ownership::Fence;
use crate::storage::runs::{self, status, PlannedRun, Run};
use crate::storage::steps::{self, Integrations};
use crate::storage::{customers, Database, StorageError};
use crate::workflow::Step;
use chain::Chain;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

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
    /// Replaces every delay's duration (demos).
    pub delay_override: Option<Duration>,
    /// `engine.sync_customers`: events create and touch their customers ([`sync`](crate::storage::sync)).
    pub sync_customers: bool,
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
            } => self.on_event(customer_id, event, &set, fence, recorded).await,
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

    async fn on_event(
        &self,
        customer_id: i64,
        event: EventEnvelope,
        set: &WorkflowSet,
        fence: Fence,
        recorded: oneshot::Sender<()>,
    ) -> Result<(), Stopped> {
        let metrics = Metrics::global();
        let customer = if self.sync_customers {
            self.synced_snapshot(customer_id, &event, fence).await?
        } else {
            self.snapshot(customer_id, fence).await?
        };
        let plan = set.plan(Facts {
            event: &event,
            customer: &customer,
        });
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
        let now = self.clock.now();
        let started = crate::actions::record_and_apply(&self.db, fence, &event, &planned, &steps, &context, now);
        let (runs, replayed) = match started.await {
            Ok(started) => {
                let replayed = started.replayed;
                let runs: Vec<Run> = started
                    .runs
                    .into_iter()
                    .map(|s| {
                        for (kind, took) in s.applied {
                            metrics
                                .action_seconds
                                .with_label_values(&[kind.name()])
                                .observe(took.as_secs_f64());
                            metrics.actions.with_label_values(&[kind.name(), "done"]).inc();
                        }
                        if s.run.run.status == status::DONE {
                            run_done(&s.run);
                        }
                        s.run
                    })
                    .collect();
                (runs, replayed)
            }
            Err(e) if e.is_fenced() => return Err(Stopped::Revoked),
            Err(e) => {
                // Nothing of it was committed: the step-by-step path records the failure.
                tracing::debug!(event_id = %event.id, customer_id, error = %e, "recording with the first steps failed, going step by step");
                let recorded = self
                    .db("record_runs", fence, || {
                        runs::record_runs(&self.db, fence, &event, &planned, self.clock.now())
                    })
                    .await?;
                (recorded.runs, recorded.replayed)
            }
        };
        let _ = recorded.send(());
        let label = event_label(&event.event_type, true);
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
        for (workflow, run) in plan.iter().zip(runs) {
            if !is_unfinished(&run) {
                continue;
            }
            let chain = Chain {
                runner: self,
                fence,
                run: &run,
                event: &event,
                steps: &workflow.workflow.actions,
            };
            chain.run(&customer, &context).await?;
        }
        Ok(())
    }

    async fn resume(&self, customer_id: i64, run_id: i64, fence: Fence, why: Why) -> Result<(), Stopped> {
        let Some(run) = self
            .db("load_run", fence, || runs::get(self.db.connection(), run_id))
            .await?
        else {
            tracing::warn!(run_id, customer_id, "resumed run not found");
            return Ok(());
        };
        match why {
            Why::Due {
                due_at,
                ticket: _ticket,
            } => {
                let now = self.clock.now();
                let node = self.node_id.as_str();
                if !self
                    .db("resume", fence, || steps::resumed(&self.db, fence, run_id, node, now))
                    .await?
                {
                    tracing::debug!(
                        run_id,
                        customer_id,
                        "stale resume ignored: the continuation is no longer what was claimed"
                    );
                    Metrics::global().stale_resumes.inc();
                    return Ok(());
                }
                let late = (now - due_at).num_milliseconds().max(0) as f64 / 1000.0;
                Metrics::global().scheduler_lateness.observe(late);
                // The run is running again from its next step, as just committed.
                let mut run = run;
                run.run.status = status::RUNNING.to_owned();
                self.continue_recorded(customer_id, run, fence).await
            }
            Why::Recover if is_unfinished(&run) => self.continue_recorded(customer_id, run, fence).await,
            Why::Recover => Ok(()),
        }
    }

    /// Runs a recorded run on from its next step, with the workflow version it started with.
    async fn continue_recorded(&self, customer_id: i64, run: Run, fence: Fence) -> Result<(), Stopped> {
        let event = match serde_json::from_value::<Value>(run.run.event.clone()).map(EventEnvelope::from_value) {
            Ok(Ok(event)) => event,
            _ => {
                return self
                    .fail_run(fence, &run, run.run.next_step, "stored event cannot be decoded")
                    .await
            }
        };
        let steps = match self
            .db("load_version", fence, || {
                steps::workflow_steps(self.db.connection(), &run)
            })
            .await?
        {
            Ok(steps) => steps,
            Err(e) => return self.fail_run(fence, &run, run.run.next_step, &e).await,
        };
        let customer = self.snapshot(customer_id, fence).await?;
        let context = crate::template::context(&Facts {
            event: &event,
            customer: &customer,
        });
        Chain {
            runner: self,
            fence,
            run: &run,
            event: &event,
            steps: &steps,
        }
        .run(&customer, &context)
        .await
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
