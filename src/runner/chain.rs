//! One run's chain, from its next step: internal steps in their transactions, external
//! ones through the outbox and the delivery pool, a delay parked in the database.
//!
//! Before each step the chain checks that its partition is still held under the fence it
//! started with, and each step's transaction checks the same fence in the database: a
//! chain of a partition that moved away stops between steps, and one caught inside a step
//! commits nothing.

use super::{run_done, Runner, Stopped};
use crate::catalogue::Action;
use crate::conditions::Facts;
use crate::envelope::EventEnvelope;
use crate::guards::consent;
use crate::guards::window::{self, SendWindow};
use crate::metrics::Metrics;
use crate::outbound::send::{Deliver, DeliveryError};
use crate::retry::{Backoff, Classify};
use crate::storage::ownership::Fence;
use crate::storage::runs::Run;
use crate::storage::steps;
use crate::workflow::{OnError, Step};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// How often a chain waiting on another process's delivery of its step looks again.
const LEASE_POLL: Duration = Duration::from_secs(1);

/// Waits between attempts of an internal step that failed on the database.
const STEP_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

pub(super) struct Chain<'a> {
    pub runner: &'a Runner,
    pub fence: Fence,
    pub run: &'a Run,
    pub event: &'a EventEnvelope,
    pub steps: &'a [Step],
    /// The workflow's send window: email and SMS steps wait for it to open.
    pub window: Option<&'a SendWindow>,
}

/// Why a step did not complete.
enum Failure {
    /// The run failed; `recorded` when its failure is already recorded with the step.
    Failed {
        message: String,
        recorded: bool,
    },
    Stopped(Stopped),
}

impl From<Stopped> for Failure {
    fn from(s: Stopped) -> Self {
        Failure::Stopped(s)
    }
}

impl Chain<'_> {
    /// Runs the chain against `customer`; `context` is the template context of the event
    /// and that customer, built once for all of an event's chains.
    pub async fn run(&self, customer: &Map<String, Value>, context: &Value) -> Result<(), Stopped> {
        let runner = self.runner;
        let metrics = Metrics::global();
        let run = &self.run.run;
        let facts = Facts {
            event: self.event,
            customer,
        };
        let start = usize::try_from(run.next_step).unwrap_or(0);
        for (i, step) in self.steps.iter().enumerate().skip(start) {
            if !runner.ownership.holds(self.fence) {
                return Err(Stopped::Revoked);
            }
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            let kind = step.kind();
            let started = Instant::now();
            let outcome = match &step.action {
                Action::Delay { duration } => {
                    let wait = runner.delay_override.unwrap_or_else(|| duration.to_std());
                    let due_at = runner.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    runner
                        .db("delay", self.fence, || {
                            steps::delay(
                                &runner.db,
                                self.fence,
                                run.id,
                                index,
                                run.customer_id,
                                run.partition,
                                due_at,
                                runner.clock.now(),
                            )
                        })
                        .await?;
                    runner.wakeup.wake(due_at);
                    metrics.actions.with_label_values(&[kind.name(), "delayed"]).inc();
                    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, %due_at, "chain delayed");
                    return Ok(());
                }
                Action::SendEmail { .. } | Action::SendSms { .. } => {
                    if let Some(reason) = consent::skip_reason(kind, step.transactional, customer) {
                        runner
                            .db("skip", self.fence, || {
                                steps::skip(&runner.db, self.fence, run.id, index, reason, runner.clock.now())
                            })
                            .await?;
                        metrics.actions.with_label_values(&[kind.name(), "skipped"]).inc();
                        metrics.steps_skipped.with_label_values(&[reason]).inc();
                        tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, reason, "step skipped: the customer opted out");
                        continue;
                    }
                    let now = runner.clock.now();
                    let opens = self
                        .window
                        .map_or(now, |w| w.next_open(now, window::customer_zone(customer)));
                    if opens > now {
                        runner
                            .db("send_window", self.fence, || {
                                steps::wait_for_window(
                                    &runner.db,
                                    self.fence,
                                    run.id,
                                    index,
                                    run.customer_id,
                                    run.partition,
                                    opens,
                                    runner.clock.now(),
                                )
                            })
                            .await?;
                        runner.wakeup.wake(opens);
                        metrics.send_window_waits.inc();
                        tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, %opens, "step waits for its send window");
                        return Ok(());
                    }
                    self.external(index, step, &facts, context).await
                }
                _ if kind.is_external() => self.external(index, step, &facts, context).await,
                action => self.internal(index, action, context).await,
            };
            metrics
                .action_seconds
                .with_label_values(&[kind.name()])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => metrics.actions.with_label_values(&[kind.name(), "done"]).inc(),
                Err(Failure::Stopped(stopped)) => return Err(stopped),
                Err(Failure::Failed { message, recorded }) => {
                    metrics.actions.with_label_values(&[kind.name(), "failed"]).inc();
                    if step.on_error == OnError::Continue {
                        // A delivery's failure was recorded with the run moved past it.
                        if !recorded {
                            runner
                                .db("fail_and_go_on", self.fence, || {
                                    steps::fail_and_go_on(
                                        &runner.db,
                                        self.fence,
                                        run.id,
                                        index,
                                        &message,
                                        runner.clock.now(),
                                    )
                                })
                                .await?;
                        }
                        tracing::warn!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, error = %message, "step failed; the chain goes on (on_error: continue)");
                        continue;
                    }
                    if recorded {
                        metrics.runs.with_label_values(&["failed"]).inc();
                        tracing::warn!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, error = %message, "run failed");
                        return Ok(());
                    }
                    return runner.fail_run(self.fence, self.run, index, &message).await;
                }
            }
        }
        runner
            .db("finish_run", self.fence, || {
                steps::finish(&runner.db, self.fence, run.id, runner.clock.now())
            })
            .await?;
        run_done(self.run);
        Ok(())
    }

    /// Applies an internal step; retries database failures up to the configured attempts.
    async fn internal(&self, index: i32, action: &Action, context: &Value) -> Result<(), Failure> {
        let runner = self.runner;
        let run = &self.run.run;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ctx = crate::actions::StepContext {
                fence: self.fence,
                run_id: run.id,
                step_index: index,
                customer_id: run.customer_id,
                workflow_id: &run.workflow_id,
                facts_context: context,
                now: runner.clock.now(),
            };
            let error = match crate::actions::run_internal_step(&runner.db, &ctx, action).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_fenced() => return Err(Stopped::Revoked.into()),
                Err(e) => e,
            };
            let wait = STEP_BACKOFF.wait(attempt, error.verdict());
            match wait {
                Some(wait) if attempt < runner.max_step_attempts => {
                    Metrics::global()
                        .actions
                        .with_label_values(&[action.kind().name(), "retried"])
                        .inc();
                    let message = error.to_string();
                    runner
                        .db("mark_step_failed", self.fence, || {
                            steps::failed_attempt(&runner.db, self.fence, run.id, index, &message, runner.clock.now())
                        })
                        .await?;
                    runner.clock.sleep(wait).await;
                    if !runner.ownership.holds(self.fence) {
                        return Err(Stopped::Revoked.into());
                    }
                }
                _ => {
                    return Err(Failure::Failed {
                        message: error.to_string(),
                        recorded: false,
                    })
                }
            }
        }
    }

    /// Stops a delivery of a partition that moved away while none of its requests is out:
    /// its lease goes, so the new owner need not wait it out.
    async fn release(&self, outbox_id: i64, key: &str) -> Failure {
        let released = steps::release_unowned(&self.runner.db, outbox_id, &self.runner.node_id).await;
        tracing::info!(run_id = self.run.run.id, idempotency_key = %key, released = ?released, "partition moved before the request left; lease released");
        Stopped::Revoked.into()
    }

    /// Sends an email, SMS or webhook through the durable outbox and waits for delivery.
    async fn external(&self, index: i32, step: &Step, facts: &Facts<'_>, context: &Value) -> Result<(), Failure> {
        let action = &step.action;
        let runner = self.runner;
        let run = &self.run.run;
        let request = runner
            .db("prepare_request", self.fence, || {
                runner.integrations.request(&runner.db, run, action, facts, context)
            })
            .await?
            .map_err(|message| Failure::Failed {
                message,
                recorded: false,
            })?;
        let key = steps::idempotency_key(run.id, index);
        let go_on = step.on_error == OnError::Continue;
        // Attempts made under a lease that ran out, not yet on the outbox row.
        let mut made = 0;
        loop {
            let now = runner.clock.now();
            let lease_until = now + chrono::Duration::from_std(runner.delivery_lease).unwrap_or_default();
            let begun = runner
                .db("enqueue", self.fence, || {
                    steps::begin_external(
                        &runner.db,
                        self.fence,
                        run,
                        index,
                        action.kind(),
                        &request,
                        &key,
                        (&runner.node_id, lease_until),
                        go_on,
                        now,
                    )
                })
                .await?;
            let queued = match begun {
                steps::Begun::Send(queued) => queued,
                steps::Begun::Settled(outcome) => {
                    tracing::info!(run_id = run.id, step = index, idempotency_key = %key, ok = outcome.is_ok(), "delivery settled by the partition's previous owner");
                    return outcome.map(drop).map_err(|message| Failure::Failed {
                        message,
                        recorded: true,
                    });
                }
                steps::Begun::InFlight { by, until } => {
                    // The previous owner's request may still be out: wait for its outcome
                    // or its lease, looking again every LEASE_POLL.
                    tracing::info!(run_id = run.id, step = index, idempotency_key = %key, sender = %by, %until, "waiting for the previous owner's delivery");
                    let left = (until - now).to_std().unwrap_or_default();
                    runner.clock.sleep(left.min(LEASE_POLL)).await;
                    if !runner.ownership.holds(self.fence) {
                        return Err(Stopped::Revoked.into());
                    }
                    continue;
                }
            };
            // The last look before the request leaves: a partition that moved away is sent
            // by its new owner, under the same key, at once.
            if !runner.ownership.holds(self.fence) {
                return Err(self.release(queued.outbox_id, &key).await);
            }
            let attempts_before = queued.attempts + made;
            let report = runner
                .outbound
                .deliver(Deliver {
                    request: queued.request,
                    idempotency_key: key.clone(),
                    attempts_before,
                    send_until: Some(lease_until),
                })
                .await;
            if matches!(report.outcome, Err(DeliveryError::LeaseOver)) {
                // The lease went waiting for a request slot or between attempts. Still the
                // owner: take it again, counting on from the attempts made. Not: the new
                // owner sends once the lease is over.
                if !runner.ownership.holds(self.fence) {
                    return Err(self.release(queued.outbox_id, &key).await);
                }
                made += report.attempts.saturating_sub(attempts_before);
                continue;
            }
            let outcome = report.outcome.map_err(|e| e.to_string());
            let finished = runner
                .db("finish_external", self.fence, || {
                    steps::finish_external(
                        &runner.db,
                        self.fence,
                        run.id,
                        index,
                        queued.outbox_id,
                        report.attempts,
                        &outcome,
                        go_on,
                        runner.clock.now(),
                    )
                })
                .await;
            if let Err(Stopped::Revoked) = finished {
                // The partition moved while the request was out: leave its outcome on the
                // outbox row for the new owner, which waits for it instead of sending again.
                let settled = steps::settle_unowned(
                    &runner.db,
                    queued.outbox_id,
                    &runner.node_id,
                    report.attempts,
                    &outcome,
                    runner.clock.now(),
                )
                .await;
                tracing::info!(run_id = run.id, step = index, idempotency_key = %key, settled = ?settled, "partition moved while delivering; outcome left for the new owner");
                return Err(Stopped::Revoked.into());
            }
            finished?;
            match &outcome {
                Ok(status) => {
                    tracing::info!(run_id = run.id, step = index, kind = action.kind().name(), status, idempotency_key = %key, "delivered")
                }
                Err(e) => {
                    tracing::warn!(run_id = run.id, step = index, kind = action.kind().name(), error = %e, attempts = report.attempts, "delivery failed")
                }
            }
            return outcome.map(drop).map_err(|message| Failure::Failed {
                message,
                recorded: true,
            });
        }
    }
}
