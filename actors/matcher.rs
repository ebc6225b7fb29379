//! The matcher: holds the compiled workflow set and routes events to customers' executors.
//!
//! The set is immutable and swapped whole when any process changes a workflow (a version
//! poll of the workflows change counter). An event no workflow listens to is acknowledged
//! at once, with no database access. The rest go to the customer's executor, created on
//! demand on one of the executor arbiters (chosen by customer id, so a customer always
//! lands on the same thread) and forgotten when idle. Routing is in arrival order: when an
//! executor's mailbox is full the matcher waits (backpressure reaches the partitions).

use super::consumer::{RecoverPartition, Route};
use super::executor::{Execute, Executor, ExecutorDeps, Idle, Stop, Work};
use super::metrics::{Mailbox, Metrics};
use crate::conditions::Limits;
use crate::plan::WorkflowSet;
use crate::storage::{statuses, steps, workflows, Database, StorageError};
use crate::validate::Validator;
use actix::dev::SendError;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Continue a recorded run (from the scheduler, or recovery).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resume {
    pub customer_id: i64,
    pub run_id: i64,
    pub due_at: Option<DateTime<Utc>>,
}

/// Rebuild the set from the database now (after a change made through this process).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Reload;

/// The live set, for the dry run and admin views.
#[derive(Debug, Message)]
#[rtype(result = "Arc<WorkflowSet>")]
pub struct CurrentSet;

/// Executors alive and what was sent to each.
struct Slot {
    addr: Addr<Executor>,
    sent: u64,
}

pub struct Matcher {
    db: Database,
    limits: Limits,
    set: Arc<WorkflowSet>,
    version: Option<i64>,
    poll: Duration,
    executors: HashMap<i64, Slot>,
    arbiters: Arc<[ArbiterHandle]>,
    deps: Arc<ExecutorDeps>,
    executor_mailbox: usize,
    mailbox: Mailbox,
}

impl Matcher {
    pub fn new(
        db: Database,
        limits: Limits,
        poll: Duration,
        arbiters: Arc<[ArbiterHandle]>,
        deps: Arc<ExecutorDeps>,
        executor_mailbox: usize,
    ) -> Self {
        Self {
            db,
            limits,
            set: Arc::new(WorkflowSet::default()),
            version: None,
            poll,
            executors: HashMap::new(),
            arbiters,
            deps,
            executor_mailbox,
            mailbox: Metrics::global().mailbox("matcher"),
        }
    }

    fn spawn_executor(&self, customer_id: i64, router: Recipient<Idle>) -> Addr<Executor> {
        let shard = customer_id.unsigned_abs() as usize % self.arbiters.len().max(1);
        let deps = Arc::clone(&self.deps);
        let capacity = self.executor_mailbox;
        Executor::start_in_arbiter(&self.arbiters[shard], move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            Executor::new(customer_id, deps, router)
        })
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
            let slot = match self.executors.get_mut(&customer_id) {
                Some(slot) => slot,
                None => {
                    let addr = self.spawn_executor(customer_id, router.clone());
                    self.executors.entry(customer_id).or_insert(Slot { addr, sent: 0 })
                }
            };
            match slot.addr.try_send(message) {
                Ok(()) => {
                    self.deps.mailbox.sent();
                    slot.sent += 1;
                    return None;
                }
                Err(SendError::Full(m)) => {
                    self.deps.mailbox.sent();
                    slot.sent += 1;
                    let addr = slot.addr.clone();
                    let mailbox = self.deps.mailbox.clone();
                    let waited = Instant::now();
                    return Some(Box::pin(
                        async move {
                            let _ = addr.send(m).await;
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
    fn reload_if_changed(&mut self, ctx: &mut Context<Self>, force: bool) {
        let db = self.db.clone();
        let limits = self.limits;
        let known = if force { None } else { self.version };
        ctx.spawn(
            async move {
                let version = workflows::change_counter(db.connection()).await?;
                if known == Some(version) {
                    return Ok(None);
                }
                let set = load_set(&db, limits).await?;
                Ok::<_, StorageError>(Some((version, set)))
            }
            .into_actor(self)
            .map(|result, act, _ctx| match result {
                Ok(Some((version, set))) => act.swap(version, set),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "workflow poll failed"),
            }),
        );
    }

    fn swap(&mut self, version: i64, set: WorkflowSet) {
        let metrics = Metrics::global();
        metrics.workflows_active.set(set.len() as i64);
        metrics.workflow_set_swaps.inc();
        tracing::info!(workflows = set.len(), version, "workflow set swapped");
        self.set = Arc::new(set);
        self.version = Some(version);
    }
}

/// Builds the set of active workflows as stored. A stored workflow that no longer
/// validates or compiles is left out and logged; the others keep running.
pub async fn load_set(db: &Database, limits: Limits) -> Result<WorkflowSet, StorageError> {
    let schema = statuses::field_schema(db.connection()).await?;
    let validator = Validator::new(&schema, limits);
    let mut valid = Vec::new();
    for stored in workflows::list_active(db.connection()).await? {
        match validator.workflow(&stored.definition) {
            Ok(v) => valid.push(v.workflow),
            Err(e) => tracing::error!(workflow_id = %stored.id, error = %e, "stored workflow left out"),
        }
    }
    let (set, errors) = WorkflowSet::build(valid, &limits);
    for e in errors {
        tracing::error!(workflow_id = %e.workflow_id, error = %e, "stored workflow left out");
    }
    Ok(set)
}

impl Actor for Matcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["matcher"]).inc();
        // No message is handled before the first set is loaded: an event routed against
        // the empty set would be acknowledged as "no workflow listens" and its offset
        // stored, losing it. Until the database answers, the partitions wait.
        let db = self.db.clone();
        let limits = self.limits;
        ctx.wait(
            async move {
                let mut wait = Duration::from_millis(100);
                loop {
                    let loaded = async {
                        let version = workflows::change_counter(db.connection()).await?;
                        Ok::<_, StorageError>((version, load_set(&db, limits).await?))
                    };
                    match loaded.await {
                        Ok(loaded) => return loaded,
                        Err(e) => {
                            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "loading the workflow set failed, retrying");
                            actix_rt::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|(version, set), act, _ctx| act.swap(version, set)),
        );
        ctx.run_interval(self.poll, |act, ctx| act.reload_if_changed(ctx, false));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["matcher"]).dec();
    }
}

impl Handler<Route> for Matcher {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, route: Route, ctx: &mut Context<Self>) -> Self::Result {
        self.mailbox.handled();
        if !self.set.listens_to(&route.event.event_type) {
            Metrics::global()
                .events
                .with_label_values(&[&route.event.event_type, "no_workflow"])
                .inc();
            let _ = route.recorded.send(());
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        if !self.set.may_match(&route.event) {
            Metrics::global()
                .events
                .with_label_values(&[&route.event.event_type, "no_match"])
                .inc();
            let _ = route.recorded.send(());
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let customer_id = route.event.customer_id;
        let work = Work::Event {
            event: route.event,
            set: Arc::clone(&self.set),
            partition: route.partition,
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
            due_at: msg.due_at,
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
        AtomicResponse::new(Box::pin(
            async move { steps::unfinished(db.connection(), msg.partition).await }
                .into_actor(self)
                .then(|result, act, ctx| -> ResponseActFuture<Self, Result<usize, String>> {
                    let runs = match result {
                        Ok(runs) => runs,
                        Err(e) => return Box::pin(fut::ready(Err(e.to_string()))),
                    };
                    let count = runs.len();
                    let waits: Vec<_> = runs
                        .into_iter()
                        .filter_map(|(run_id, customer_id)| {
                            act.dispatch(customer_id, Work::Resume { run_id, due_at: None }, ctx)
                        })
                        .collect();
                    // Full mailboxes: wait for each, in order, before the partition starts.
                    let mut chain: ResponseActFuture<Self, ()> = Box::pin(fut::ready(()));
                    for wait in waits {
                        chain = Box::pin(chain.then(|_, _, _| wait));
                    }
                    Box::pin(chain.map(move |_, _, _| Ok(count)))
                }),
        ))
    }
}

impl Handler<Idle> for Matcher {
    type Result = ();

    fn handle(&mut self, msg: Idle, _ctx: &mut Context<Self>) {
        if let Some(slot) = self.executors.get(&msg.customer_id) {
            if slot.sent == msg.processed {
                if let Some(slot) = self.executors.remove(&msg.customer_id) {
                    slot.addr.do_send(Stop);
                }
            }
        }
    }
}

impl Handler<Reload> for Matcher {
    type Result = ResponseActFuture<Self, Result<usize, String>>;

    fn handle(&mut self, _msg: Reload, _ctx: &mut Context<Self>) -> Self::Result {
        let db = self.db.clone();
        let limits = self.limits;
        Box::pin(
            async move {
                let version = workflows::change_counter(db.connection()).await?;
                Ok::<_, StorageError>((version, load_set(&db, limits).await?))
            }
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
