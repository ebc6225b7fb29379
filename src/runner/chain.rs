//! One run's chain, from its next step: internal steps in their transactions, external
//! ones through the outbox and the delivery pool, a delay parked in the database.
//!
//! Before each step the chain checks that its partition is still held under the fence it
//! started with, and each step's transaction checks the same fence in the database: a
//! chain of a partition that moved away stops between steps, and one caught inside a step
//! commits nothing.

use super::{run_done, Runner, Stopped};
use crate::catalogue::{Action, BranchPath, SplitPath};
use crate::conditions::{holds, Facts, Journey, Limits};
use crate::envelope::EventEnvelope;
use crate::experiment::assign;
use crate::flow::{stored_index, Flow, Slot};
use crate::guards::consent;
use crate::guards::contact::Channel;
use crate::guards::window::{self, SendWindow};
use crate::metrics::Metrics;
use crate::outbound::send::{Deliver, DeliveryError};
use crate::retry::{Backoff, Classify};
use crate::storage::ownership::Fence;
use crate::storage::runs::Run;
use crate::storage::steps;
use crate::storage::{runs, waits};
use crate::workflow::OnError;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
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
    /// The run's workflow version's steps, as laid out for runs.
    pub flow: &'a Flow,
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
    /// A contact cap held the message (skipped, the run moved on; or deferred, the run
    /// parked), recorded with the step.
    Held(steps::Held),
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
        let facts = Facts::new(self.event, customer);
        // A journey's named steps are readable as `steps.<name>` in later templates and
        // conditions: what they recorded, read again after each named step.
        let mut named = named_results(self.flow, &self.run.steps);
        let mut context = Cow::Borrowed(context);
        if self.flow.has_names() {
            context = Cow::Owned(with_steps(&context, &named));
        }
        let mut pc = usize::try_from(run.next_step).unwrap_or(0);
        while let Some(slot) = self.flow.get(pc) {
            if !runner.ownership.holds(self.fence) {
                return Err(Stopped::Revoked);
            }
            let index = stored_index(pc);
            let next = stored_index(slot.next);
            let step = &slot.step;
            let kind = step.kind();
            let started = Instant::now();
            let outcome = match &step.action {
                Action::Branch { paths, .. } => {
                    pc = self.branch(slot, index, paths, &named).await?;
                    self.path_taken(step, &mut named, &mut context).await?;
                    continue;
                }
                Action::Split { paths } => {
                    pc = self.split(slot, index, paths).await?;
                    self.path_taken(step, &mut named, &mut context).await?;
                    continue;
                }
                Action::WaitForEvent {
                    event,
                    conditions,
                    timeout,
                    ..
                } => match self
                    .wait(slot, index, (event, conditions.as_ref()), timeout, &named)
                    .await?
                {
                    waits::Parked::Waiting => return Ok(()),
                    waits::Parked::Full => Err(Failure::Failed {
                        message: format!(
                            "customer {} already has {} runs waiting for an event (engine.max_waits_per_customer)",
                            run.customer_id, runner.max_waits_per_customer
                        ),
                        recorded: false,
                    }),
                },
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
                                next,
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
                                steps::skip(&runner.db, self.fence, run.id, index, next, reason, runner.clock.now())
                            })
                            .await?;
                        metrics.actions.with_label_values(&[kind.name(), "skipped"]).inc();
                        metrics.steps_skipped.with_label_values(&[reason]).inc();
                        tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, reason, "step skipped: the customer opted out");
                        pc = slot.next;
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
                    self.external(slot, index, &facts, &context).await
                }
                _ if kind.is_external() => self.external(slot, index, &facts, &context).await,
                action => self.internal((index, next), action, &context).await,
            };
            metrics
                .action_seconds
                .with_label_values(&[kind.name()])
                .observe(started.elapsed().as_secs_f64());
            match outcome {
                Ok(()) => metrics.actions.with_label_values(&[kind.name(), "done"]).inc(),
                Err(Failure::Stopped(stopped)) => return Err(stopped),
                Err(Failure::Held(steps::Held::Skipped(reason))) => {
                    metrics.actions.with_label_values(&[kind.name(), "skipped"]).inc();
                    metrics.contact_held.with_label_values(&[kind.name(), "skipped"]).inc();
                    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, %reason, "message skipped by a contact cap");
                    pc = slot.next;
                    continue;
                }
                Err(Failure::Held(steps::Held::Deferred { until, reason })) => {
                    runner.wakeup.wake(until);
                    metrics.contact_held.with_label_values(&[kind.name(), "deferred"]).inc();
                    tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, %reason, %until, "message deferred by a contact cap");
                    return Ok(());
                }
                Err(Failure::Failed { message, recorded }) => {
                    metrics.actions.with_label_values(&[kind.name(), "failed"]).inc();
                    if step.on_error != OnError::Continue {
                        if recorded {
                            metrics.runs.with_label_values(&["failed"]).inc();
                            tracing::warn!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, error = %message, "run failed");
                            return Ok(());
                        }
                        return runner.fail_run(self.fence, self.run, index, &message).await;
                    }
                    // A delivery's failure was recorded with the run moved past it.
                    if !recorded {
                        runner
                            .db("fail_and_go_on", self.fence, || {
                                steps::fail_and_go_on(
                                    &runner.db,
                                    self.fence,
                                    run.id,
                                    (index, next),
                                    &message,
                                    runner.clock.now(),
                                )
                            })
                            .await?;
                    }
                    tracing::warn!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = index, error = %message, "step failed; the chain goes on (on_error: continue)");
                }
            }
            if step.name.is_some() {
                self.reread_named(&mut named, &mut context).await?;
            }
            pc = slot.next;
        }
        runner
            .db("finish_run", self.fence, || {
                steps::finish(&runner.db, self.fence, run.id, runner.clock.now())
            })
            .await?;
        run_done(self.run);
        Ok(())
    }

    /// Parks the run on its wait step: the wait, its blocks and where each outcome goes
    /// on, and its timeout (a delay for `scheduler.delay_override_secs`). The chain ends
    /// here; the awaited event or the timeout goes on with it ([`waits`]). A customer with
    /// no room for another wait gets `Full`, with nothing written.
    async fn wait(
        &self,
        slot: &Slot,
        index: i32,
        (event, conditions): (&str, Option<&crate::conditions::ConditionNode>),
        timeout: &crate::duration::Duration,
        named: &Map<String, Value>,
    ) -> Result<waits::Parked, Stopped> {
        let runner = self.runner;
        let run = &self.run.run;
        let wait = runner.delay_override.unwrap_or_else(|| timeout.to_std());
        let due_at = runner.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let first = usize::try_from(index).unwrap_or(0) + 1;
        let (on_event, on_timeout) = match &slot.fork {
            Some(fork) => (fork.block(0), fork.block(1)),
            None => (first..first, first..first),
        };
        let target =
            |block: &std::ops::Range<usize>| stored_index(if block.is_empty() { slot.next } else { block.start });
        let park = waits::Park {
            run_id: run.id,
            customer_id: run.customer_id,
            partition: run.partition,
            step_index: index,
            split: stored_index(on_timeout.start),
            end: stored_index(on_timeout.end),
            event_next: target(&on_event),
            timeout_next: target(&on_timeout),
            event_type: event,
            conditions,
            steps: named,
            due_at,
            max_waits: runner.max_waits_per_customer,
        };
        let parked = runner
            .db("wait_for_event", self.fence, || {
                waits::park(&runner.db, self.fence, &park, runner.clock.now())
            })
            .await?;
        if parked == waits::Parked::Full {
            return Ok(parked);
        }
        runner.wakeup.wake(due_at);
        let metrics = Metrics::global();
        metrics
            .actions
            .with_label_values(&[slot.step.kind().name(), "waiting"])
            .inc();
        tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = %slot.path, awaited = %event, %due_at, "chain waits for an event");
        Ok(parked)
    }

    /// Decides a branch: the first path whose `when` holds, against the trigger, the
    /// customer as stored now (earlier steps' changes included) and the named steps'
    /// results; `otherwise` when none does. The decision commits with the step, so a
    /// replay goes on down the recorded path and never decides again. Returns the slot to
    /// go on from.
    async fn branch(
        &self,
        slot: &Slot,
        index: i32,
        paths: &[BranchPath],
        named: &Map<String, Value>,
    ) -> Result<usize, Stopped> {
        let runner = self.runner;
        let run = &self.run.run;
        let customer = runner.snapshot(run.customer_id, self.fence).await?;
        let facts = Facts {
            journey: Some(Journey {
                trigger: self.event,
                steps: named,
            }),
            ..Facts::new(self.event, &customer)
        };
        let limits = Limits::saved();
        let chosen = paths.iter().position(|path| match holds(&path.when, facts, &limits) {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(run_id = run.id, step = %slot.path, error = %e, "a branch path's conditions do not compile; the path is not taken");
                false
            }
        });
        let block = chosen.unwrap_or(paths.len());
        let result = match chosen {
            Some(k) => json!({ "path": k }),
            None => json!({ "path": "otherwise" }),
        };
        self.take_path(slot, index, block, &result).await
    }

    /// Decides a split: the path the customer's stable bucket falls in
    /// ([`crate::experiment::assign`]), the same on every node, after a restart and in the
    /// dry run. Recorded like a branch's decision, so a replay reads it, never draws again.
    async fn split(&self, slot: &Slot, index: i32, paths: &[SplitPath]) -> Result<usize, Stopped> {
        let run = &self.run.run;
        let percents: Vec<u8> = paths.iter().map(|p| p.percent).collect();
        let bucket = assign::bucket(run.customer_id, &run.workflow_id, &slot.path);
        let block = assign::split_path(&percents, bucket);
        self.take_path(slot, index, block, &json!({ "path": block })).await
    }

    /// Records a branch's or a split's decision to take its `block`: the step done with
    /// `result`, the other blocks' step rows deleted (a run shows only the path it took)
    /// and the run moved on to the block's first step (or past the step, for an empty
    /// block), in one transaction. Returns the slot to go on from.
    async fn take_path(&self, slot: &Slot, index: i32, block: usize, result: &Value) -> Result<usize, Stopped> {
        let runner = self.runner;
        let run = &self.run.run;
        let (keep, end) = match &slot.fork {
            Some(fork) => (fork.block(block), fork.end),
            None => (slot.next..slot.next, slot.next),
        };
        let target = if keep.is_empty() { slot.next } else { keep.start };
        let first = usize::try_from(index).unwrap_or(0) + 1;
        let dropped = [
            (stored_index(first), stored_index(keep.start)),
            (stored_index(keep.end), stored_index(end)),
        ];
        runner
            .db("branch", self.fence, || {
                steps::decide(
                    &runner.db,
                    self.fence,
                    run.id,
                    index,
                    result,
                    &dropped,
                    stored_index(target),
                    runner.clock.now(),
                )
            })
            .await?;
        tracing::info!(run_id = run.id, workflow_id = %run.workflow_id, customer_id = run.customer_id, step = %slot.path, kind = slot.step.kind().name(), path = %result["path"], "path taken");
        Ok(target)
    }

    /// After a branch or a split took its path: counted, and a named one's result read
    /// into the context.
    async fn path_taken(
        &self,
        step: &crate::workflow::Step,
        named: &mut Map<String, Value>,
        context: &mut Cow<'_, Value>,
    ) -> Result<(), Stopped> {
        Metrics::global()
            .actions
            .with_label_values(&[step.kind().name(), "done"])
            .inc();
        if step.name.is_some() {
            self.reread_named(named, context).await?;
        }
        Ok(())
    }

    /// Reads the named steps' results again (a named step just finished) and puts them in
    /// the template context.
    async fn reread_named(&self, named: &mut Map<String, Value>, context: &mut Cow<'_, Value>) -> Result<(), Stopped> {
        let runner = self.runner;
        let run_id = self.run.run.id;
        let Some(run) = runner
            .db("read_steps", self.fence, || runs::get(runner.db.connection(), run_id))
            .await?
        else {
            return Ok(());
        };
        *named = named_results(self.flow, &run.steps);
        *context = Cow::Owned(with_steps(context, named));
        Ok(())
    }

    /// Applies an internal step; retries database failures up to the configured attempts.
    async fn internal(&self, (index, next): (i32, i32), action: &Action, context: &Value) -> Result<(), Failure> {
        let runner = self.runner;
        let run = &self.run.run;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ctx = crate::actions::StepContext {
                fence: self.fence,
                run_id: run.id,
                step_index: index,
                next_step: next,
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
    async fn external(&self, slot: &Slot, index: i32, facts: &Facts<'_>, context: &Value) -> Result<(), Failure> {
        let step = &slot.step;
        let at = (index, stored_index(slot.next));
        let action = &step.action;
        let runner = self.runner;
        let run = &self.run.run;
        let mut request = runner
            .db("prepare_request", self.fence, || {
                runner.integrations.request(&runner.db, run, action, facts, context)
            })
            .await?
            .map_err(|message| Failure::Failed {
                message,
                recorded: false,
            })?;
        // A named step's answer is readable as steps.<name>.response; a save writes from it.
        request.keep_response = step.name.is_some() || !step.save.is_empty();
        let key = steps::idempotency_key(run.id, &slot.path);
        let go_on = step.on_error == OnError::Continue;
        // Messages count against the contact policy's caps, unless transactional.
        let capped = Channel::of(step.kind()).filter(|_| !step.transactional);
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
                        at,
                        action.kind(),
                        &request,
                        &key,
                        (&runner.node_id, lease_until),
                        (go_on, capped),
                        now,
                    )
                })
                .await?;
            let queued = match begun {
                steps::Begun::Send(queued) => queued,
                steps::Begun::Held(held) => return Err(Failure::Held(held)),
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
                // The lease went waiting for a request slot or between attempts, or the
                // destination's rate limit has no slot free within it. Still the owner:
                // take it again, counting on from the attempts made. Not: the new owner
                // sends once the lease is over.
                if !runner.ownership.holds(self.fence) {
                    return Err(self.release(queued.outbox_id, &key).await);
                }
                let sent = report.attempts.saturating_sub(attempts_before);
                if sent == 0 {
                    // Behind a queue longer than a lease: ask again a little later.
                    runner.clock.sleep(LEASE_POLL).await;
                }
                made += sent;
                continue;
            }
            let mut outcome = report.outcome.map_err(|e| e.to_string());
            let response = report.response.as_ref().and_then(|r| r.as_ref().ok());
            let mut saved = Map::new();
            if outcome.is_ok() && !step.save.is_empty() {
                match &report.response {
                    Some(Ok(body)) => saved.extend(step.save.iter().map(|(field, pointer)| {
                        (field.clone(), body.pointer(pointer).cloned().unwrap_or(Value::Null))
                    })),
                    Some(Err(why)) => outcome = Err(format!("nothing saved: {why}")),
                    None => outcome = Err("nothing saved: the answer was not kept".to_owned()),
                }
            }
            let kept = steps::Kept {
                response,
                save: (!saved.is_empty()).then_some((run.customer_id, &saved)),
            };
            let finished = runner
                .db("finish_external", self.fence, || {
                    steps::finish_external(
                        &runner.db,
                        self.fence,
                        run.id,
                        at,
                        queued.outbox_id,
                        report.attempts,
                        &outcome,
                        &kept,
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
                    (report.attempts, &outcome),
                    &kept,
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

/// What the run's named steps recorded, by name: done steps' results (a wait's outcome, a
/// branch's path, an action's result).
fn named_results(flow: &Flow, rows: &[crate::storage::entities::run_steps::Model]) -> Map<String, Value> {
    let mut named = Map::new();
    if !flow.has_names() {
        return named;
    }
    for row in rows {
        let name = usize::try_from(row.step_index)
            .ok()
            .and_then(|i| flow.get(i))
            .and_then(|slot| slot.step.name.as_ref());
        if let (Some(name), Some(result)) = (name, &row.result) {
            if row.status == crate::storage::runs::step_status::DONE {
                named.insert(name.clone(), result.clone());
            }
        }
    }
    named
}

/// The template context with the named steps' results as `steps`.
fn with_steps(context: &Value, named: &Map<String, Value>) -> Value {
    let mut context = context.clone();
    if let Value::Object(map) = &mut context {
        map.insert("steps".to_owned(), Value::Object(named.clone()));
    }
    context
}
