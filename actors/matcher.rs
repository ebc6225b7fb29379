//! The matcher: holds the compiled workflow set and routes events to customers' executors.
//!
//! The set is immutable and swapped whole when any process changes a workflow (a version
//! poll of the workflows change counter), and only for a newer version: a slow load never
//! puts an older set back. An event no workflow listens to is acknowledged at once, with
//! no database access, unless `engine.sync_customers` needs it to reach its customer.
//! The rest go to the customer's executor, created on demand (by the topology's factory,
//! on the arbiter of the customer) and forgotten when idle. Routing is
//! in arrival order: when an executor's mailbox is full the matcher waits (backpressure
//! reaches the partitions).

use super::detached::detached;
use super::protocol::{
    ArchiveEvent, CurrentSet, Execute, Idle, RecoverPartition, Reload, Resume, Route, Stop, TouchActivity,
};
use crate::conditions::Limits;
use crate::metrics::{event_label, Mailbox, Metrics};
use crate::plan::WorkflowSet;
use crate::retry::{self, Backoff, Retried};
use crate::runner::{Handled, Why, Work};
use crate::storage::{changes, steps, Database};
use actix::dev::SendError;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the matcher reaches one executor.
#[derive(Clone)]
pub struct ExecutorHandle {
    pub execute: Recipient<Execute>,
    pub stop: Recipient<Stop>,
}

/// Starts the executor of a customer; `Recipient<Idle>` is the matcher's own address.
pub type SpawnExecutor = Arc<dyn Fn(i64, Recipient<Idle>) -> ExecutorHandle + Send + Sync>;

/// Executors alive and what was sent to each.
struct Slot {
    handle: ExecutorHandle,
    sent: u64,
}

pub struct Matcher {
    db: Database,
    limits: Limits,
    set: Arc<WorkflowSet>,
    version: Option<i64>,
    poll: Duration,
    executors: HashMap<i64, Slot>,
    spawn: SpawnExecutor,
    /// The executors' mailbox meter: counted here when sent, there when done.
    executor_mailbox: Mailbox,
    mailbox: Mailbox,
    /// `engine.sync_customers`: every customer event goes to its executor, even one no
    /// workflow listens to, since it still moves the customer's `last_activity_at`.
    sync_customers: bool,
    /// Where every routed event is offered for the backtest archive, if it is kept.
    archive: Option<Recipient<ArchiveEvent>>,
    /// With the customer sync, where events no workflow can act on go for their
    /// customer's `last_activity_at` instead of to their executors
    /// (`engine.activity_flush_ms`; `None` = through the executors).
    activity: Option<Recipient<TouchActivity>>,
    /// The activity writer's mailbox meter, resolved once (counted per event).
    activity_mailbox: Mailbox,
}

impl Matcher {
    pub fn new(db: Database, limits: Limits, poll: Duration, spawn: SpawnExecutor) -> Self {
        Self {
            db,
            limits,
            set: Arc::new(WorkflowSet::default()),
            version: None,
            poll,
            executors: HashMap::new(),
            spawn,
            executor_mailbox: Metrics::global().mailbox("executor"),
            mailbox: Metrics::global().mailbox("matcher"),
            sync_customers: false,
            archive: None,
            activity: None,
            activity_mailbox: Metrics::global().mailbox("activity"),
        }
    }

    /// Routes every customer event to its executor for the customer sync
    /// ([`sync`](crate::storage::sync)); the engine's own events still take the fast path.
    pub fn with_customer_sync(mut self, on: bool) -> Self {
        self.sync_customers = on;
        self
    }

    /// Sends the events no workflow can act on to `writer` for their customers' activity,
    /// rather than through their executors.
    pub fn with_activity(mut self, writer: Recipient<TouchActivity>) -> Self {
        self.activity = Some(writer);
        self
    }

    /// Hands an event no workflow can act on to the activity writer, which answers its
    /// `recorded` once the customer's time is written. Returns a future when the writer's
    /// mailbox is full: the matcher waits, as for a full executor.
    fn touch(
        &self,
        writer: &Recipient<TouchActivity>,
        route: Route,
        outcome: &str,
        listened: bool,
    ) -> Option<ResponseActFuture<Self, ()>> {
        let counted = Metrics::global()
            .events
            .with_label_values(&[event_label(&route.event.event_type, listened), outcome]);
        let touch = TouchActivity {
            customer_id: route.event.customer_id,
            occurred_at: route.event.occurred_at,
            recorded: route.recorded,
            counted,
        };
        self.activity_mailbox.sent();
        match writer.try_send(touch) {
            Ok(()) => None,
            Err(SendError::Full(touch)) => {
                let (writer, mailbox) = (writer.clone(), self.activity_mailbox.clone());
                let waited = Instant::now();
                Some(Box::pin(
                    async move {
                        // Gone only when stopping: the event is then not answered and
                        // its reader reads it again.
                        let _ = writer.send(touch).await;
                        mailbox.waited(waited.elapsed());
                    }
                    .into_actor(self),
                ))
            }
            Err(SendError::Closed(_)) => None,
        }
    }

    /// Offers every routed event to `archiver` (dropped when its mailbox is full).
    pub fn with_archive(mut self, archiver: Recipient<ArchiveEvent>) -> Self {
        self.archive = Some(archiver);
        self
    }

    /// Hands `work` to the customer's executor, in order. Returns a future when the
    /// executor's mailbox is full: the matcher must wait for it before routing anything
    /// else, or order would be lost.
    fn dispatch(
        &mut self,
        customer_id: i64,
        work: Work,
        ctx: &mut Context<Self>,
    ) -> Option<ResponseActFuture<Self, ()>> {
        let router = ctx.address().recipient();
        let mut message = Execute(work);
        for _ in 0..2 {
            let slot = self.executors.entry(customer_id).or_insert_with(|| Slot {
                handle: (self.spawn)(customer_id, router.clone()),
                sent: 0,
            });
            match slot.handle.execute.try_send(message) {
                Ok(()) => {
                    self.executor_mailbox.sent();
                    slot.sent += 1;
                    return None;
                }
                Err(SendError::Full(m)) => {
                    self.executor_mailbox.sent();
                    slot.sent += 1;
                    let execute = slot.handle.execute.clone();
                    let mailbox = self.executor_mailbox.clone();
                    let waited = Instant::now();
                    return Some(Box::pin(
                        async move {
                            if execute.send(m).await.is_err() {
                                // The executor is gone; its work is dropped like any
                                // work of a stopped process, and recovered by the owner.
                                mailbox.handled();
                            }
                            mailbox.waited(waited.elapsed());
                        }
                        .into_actor(self),
                    ));
                }
                Err(SendError::Closed(m)) => {
                    self.executors.remove(&customer_id);
                    message = m;
                }
            }
        }
        tracing::error!(customer_id, "executor could not be started");
        None
    }

    /// Loads the active workflows and builds a new set, if the change counter moved.
    fn reload_if_changed(&mut self, ctx: &mut Context<Self>) {
        let (db, limits, known) = (self.db.clone(), self.limits, self.version);
        ctx.spawn(
            detached(async move {
                let version = changes::current(db.connection()).await?;
                if known == Some(version) {
                    return Ok(None);
                }
                crate::live::load(&db, limits).await.map(Some)
            })
            .into_actor(self)
            .map(|result, act, _ctx| match result {
                Ok(Some((version, set))) => {
                    act.swap(version, set);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "workflow poll failed"),
            }),
        );
    }

    /// Puts `set` live unless a newer one already is.
    fn swap(&mut self, version: i64, set: WorkflowSet) -> bool {
        if self.version.is_some_and(|live| version < live) {
            tracing::debug!(version, live = self.version, "older workflow set ignored");
            return false;
        }
        let metrics = Metrics::global();
        metrics.workflows_active.set(set.len() as i64);
        metrics.workflow_set_swaps.inc();
        tracing::info!(workflows = set.len(), version, "workflow set swapped");
        self.set = Arc::new(set);
        self.version = Some(version);
        true
    }

    fn acknowledge(route: Route, outcome: &str, listened: bool) {
        Metrics::global()
            .events
            .with_label_values(&[event_label(&route.event.event_type, listened), outcome])
            .inc();
        let _ = route.recorded.send(Handled::Recorded);
    }
}

impl Actor for Matcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["matcher"]).inc();
        // No message is handled before the first set is loaded: an event routed against
        // the empty set would be acknowledged as "no workflow listens" and its offset
        // stored, losing it. Until the database answers, the partitions wait.
        let (db, limits) = (self.db.clone(), self.limits);
        ctx.wait(
            async move {
                let on_retry = |e: &crate::storage::StorageError, _: u32, wait: Duration| {
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "loading the workflow set failed, retrying");
                };
                let clock = crate::clock::SystemClock;
                match retry::retry(&clock, Backoff::STORAGE, None, || false, on_retry, || {
                    crate::live::load(&db, limits)
                })
                .await
                {
                    Retried::Ok(loaded) => Some(loaded),
                    Retried::Failed { error, .. } => {
                        tracing::error!(error = %error, "the workflow set cannot be loaded");
                        None
                    }
                }
            }
            .into_actor(self)
            .map(|loaded, act, _ctx| {
                if let Some((version, set)) = loaded {
                    act.swap(version, set);
                }
            }),
        );
        ctx.run_interval(self.poll, |act, ctx| act.reload_if_changed(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["matcher"]).dec();
    }
}

impl Handler<Route> for Matcher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, route: Route, ctx: &mut Context<Self>) -> Self::Result {
        self.mailbox.handled();
        if let Some(archiver) = &self.archive {
            ArchiveEvent::offer(archiver, &route.event);
        }
        let event_type = route.event.event_type.as_str();
        let listened = self.set.listens_to(event_type);
        let idle = if !listened {
            Some("no_workflow")
        } else if !self.set.may_match(&route.event) {
            Some("no_match")
        } else {
            None
        };
        if let Some(outcome) = idle {
            // An event no workflow can act on still says its customer was active (with
            // the sync on). A registration goes to its executor, which creates the
            // customer before that customer's next events are planned; any other goes to
            // the activity writer, or to its executor when there is none.
            let synced = self.sync_customers && crate::storage::sync::applies_to(event_type);
            if !synced {
                Self::acknowledge(route, outcome, listened);
                return AtomicResponse::new(Box::pin(fut::ready(())));
            }
            if event_type != crate::storage::sync::REGISTERED {
                if let Some(writer) = &self.activity {
                    return AtomicResponse::new(
                        self.touch(writer, route, outcome, listened)
                            .unwrap_or_else(|| Box::pin(fut::ready(()))),
                    );
                }
            }
        }
        let customer_id = route.event.customer_id;
        let work = Work::Event {
            event: route.event,
            set: Arc::clone(&self.set),
            fence: route.fence,
            recorded: route.recorded,
        };
        AtomicResponse::new(
            self.dispatch(customer_id, work, ctx)
                .unwrap_or_else(|| Box::pin(fut::ready(()))),
        )
    }
}

impl Handler<Resume> for Matcher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Resume, ctx: &mut Context<Self>) -> Self::Result {
        let work = Work::Resume {
            run_id: msg.run_id,
            fence: msg.fence,
            why: Why::Due {
                due_at: msg.due_at,
                ticket: msg.ticket,
            },
        };
        AtomicResponse::new(
            self.dispatch(msg.customer_id, work, ctx)
                .unwrap_or_else(|| Box::pin(fut::ready(()))),
        )
    }
}

impl Handler<RecoverPartition> for Matcher {
    type Result = AtomicResponse<Self, Result<usize, String>>;

    fn handle(&mut self, msg: RecoverPartition, _ctx: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let fence = msg.fence;
        AtomicResponse::new(Box::pin(
            detached(async move { steps::unfinished(db.connection(), fence.partition).await })
                .into_actor(self)
                .then(
                    move |result, act, ctx| -> ResponseActFuture<Self, Result<usize, String>> {
                        let runs = match result {
                            Ok(runs) => runs,
                            Err(e) => return Box::pin(fut::ready(Err(e.to_string()))),
                        };
                        let count = runs.len();
                        let waits: Vec<_> = runs
                            .into_iter()
                            .filter_map(|(run_id, customer_id)| {
                                let work = Work::Resume {
                                    run_id,
                                    fence,
                                    why: Why::Recover,
                                };
                                act.dispatch(customer_id, work, ctx)
                            })
                            .collect();
                        // Full mailboxes: wait for each, in order, before the partition starts.
                        let mut chain: ResponseActFuture<Self, ()> = Box::pin(fut::ready(()));
                        for wait in waits {
                            chain = Box::pin(chain.then(|_, _, _| wait));
                        }
                        Box::pin(chain.map(move |_, _, _| Ok(count)))
                    },
                ),
        ))
    }
}

impl Handler<Idle> for Matcher {
    type Result = ();

    fn handle(&mut self, msg: Idle, _ctx: &mut Context<Self>) {
        if self
            .executors
            .get(&msg.customer_id)
            .is_some_and(|s| s.sent == msg.processed)
        {
            if let Some(slot) = self.executors.remove(&msg.customer_id) {
                slot.handle.stop.do_send(Stop);
            }
        }
    }
}

impl Handler<Reload> for Matcher {
    type Result = ResponseActFuture<Self, Result<usize, String>>;

    fn handle(&mut self, _msg: Reload, _ctx: &mut Context<Self>) -> Self::Result {
        let (db, limits) = (self.db.clone(), self.limits);
        Box::pin(
            detached(async move { crate::live::load(&db, limits).await })
                .into_actor(self)
                .map(|result, act, _ctx| match result {
                    Ok((version, set)) => {
                        let n = set.len();
                        act.swap(version, set);
                        Ok(n)
                    }
                    Err(e) => Err(e.to_string()),
                }),
        )
    }
}

impl Handler<CurrentSet> for Matcher {
    type Result = MessageResult<CurrentSet>;

    fn handle(&mut self, _msg: CurrentSet, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Arc::clone(&self.set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ownership::Fence;

    /// The workflow poll is a future the matcher spawns; recovery used to be an atomic
    /// response, during which actix polls none of the actor's spawned futures. With one
    /// pooled connection (SQLite), a poll waiting for the connection when a recovery
    /// began was handed the connection first and then never polled: the recovery waited
    /// out the pool's acquire timeout (30 s) and failed, and the partition's reader, all
    /// routing and the API waited with it.
    #[actix_rt::test]
    async fn a_recovery_does_not_wait_on_the_matchers_own_workflow_poll() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let spawn: SpawnExecutor = Arc::new(|_, _| unreachable!("nothing to recover, no executor"));
        let matcher = Matcher::new(db.clone(), Limits::default(), Duration::from_millis(50), spawn).start();
        matcher.send(CurrentSet).await.unwrap();

        // The test holds the only connection; the matcher's next poll queues for it, then
        // a recovery does.
        let held = db.begin().await.unwrap();
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        let recovery = matcher.send(RecoverPartition {
            fence: Fence { partition: 0, epoch: 1 },
        });
        let recovery = actix_rt::spawn(recovery);
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        held.commit().await.unwrap();

        assert_eq!(recovery.await.unwrap().unwrap(), Ok(0));
    }
}
