//! The runner-level harness shared by the tests that drive a [`Runner`] directly (a
//! database, a [`ManualClock`], no Kafka): deliveries answered at once, no scheduler, and
//! workflows saved through the validator as the API saves them.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use serde_json::Value;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workflow_engine::clock::{Clock, ManualClock};
use workflow_engine::conditions::Limits;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::live;
use workflow_engine::outbound::send::{Deliver, DeliveryReport};
use workflow_engine::plan::WorkflowSet;
use workflow_engine::runner::batch::Batches;
use workflow_engine::runner::{Handled, Ticket, Why, Work};
use workflow_engine::runner::{Outbound, Ownership, Runner, Wakeup};
use workflow_engine::storage::ownership::{self, Fence};
use workflow_engine::storage::scheduled;
use workflow_engine::storage::{statuses, workflows, Database};
use workflow_engine::validate::Validator;

/// Accepts every request at once and remembers its idempotency key.
#[derive(Default, Clone)]
pub struct Sent(Arc<Mutex<Vec<String>>>);

impl Sent {
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl Outbound for Sent {
    fn deliver(&self, request: Deliver) -> LocalBoxFuture<'static, DeliveryReport> {
        self.0.lock().unwrap().push(request.idempotency_key);
        Box::pin(std::future::ready(DeliveryReport {
            attempts: request.attempts_before + 1,
            outcome: Ok(200),
            response: None,
        }))
    }
}

/// No scheduler: the tests resume runs themselves.
pub struct NoWakeup;

impl Wakeup for NoWakeup {
    fn wake(&self, _due_at: DateTime<Utc>) {}
}

/// A runner of node `node_id` whose deliveries go to `sent`. The customer sync is off (the
/// tests add their customers); a test that needs it sets `sync_customers`.
pub fn runner(db: &Database, node_id: &str, clock: &ManualClock, ownership: &Ownership, sent: &Sent) -> Runner {
    Runner {
        db: db.clone(),
        clock: Arc::new(clock.clone()),
        outbound: Arc::new(sent.clone()),
        wakeup: Arc::new(NoWakeup),
        ownership: ownership.clone(),
        integrations: workflow_engine::outbound::Integrations {
            email_url: "http://email.invalid/send".into(),
            email_rate_per_sec: None,
            webhook_secret: String::new(),
            keyring: Arc::default(),
        },
        node_id: node_id.into(),
        max_step_attempts: 3,
        max_cascade_depth: 5,
        max_cascade_runs: workflow_engine::guards::cascade::DEFAULT_MAX_RUNS,
        max_waits_per_customer: workflow_engine::storage::waits::DEFAULT_MAX_PER_CUSTOMER,
        delivery_lease: Duration::from_secs(60),
        delay_override: None,
        batches: Batches::default(),
        sync_customers: false,
    }
}

/// Saves `definition` as the API would; panics on a workflow the validator refuses.
pub async fn add_workflow(db: &Database, definition: Value) -> String {
    let schema = statuses::field_schema(db.connection()).await.unwrap();
    let validated = Validator::new(&schema, Limits::default())
        .workflow(&definition)
        .unwrap_or_else(|e| panic!("invalid test workflow: {e}"));
    workflows::create(db, &validated.workflow, "test").await.unwrap().id
}

/// The active workflows as the matcher would hold them.
pub async fn live_set(db: &Database) -> Arc<WorkflowSet> {
    Arc::new(live::load(db, Limits::default()).await.unwrap().1)
}

/// A runner of node `node` that owns partition 0 under a fresh fence.
pub async fn owning_runner(db: &Database, node: &str, clock: &ManualClock) -> (Runner, Fence, Ownership) {
    let ownership = Ownership::default();
    let fence = ownership::acquire(db, 0, node, clock.now()).await.unwrap();
    ownership.grant(fence);
    let runner = runner(db, node, clock, &ownership, &Sent::default());
    (runner, fence, ownership)
}

/// Hands `event` to the runner as the matcher would, and waits for its work to end; its
/// answer, or `None` when the work stopped unanswered (a fenced owner).
pub async fn send(runner: &Runner, fence: Fence, db: &Database, event: EventEnvelope) -> Option<Handled> {
    let set = live_set(db).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let customer_id = event.customer_id;
    runner
        .process(
            customer_id,
            Work::Event {
                event,
                set,
                fence,
                recorded: tx,
            },
        )
        .await;
    rx.await.ok()
}

/// Claims what is due on partition 0 for `runner`'s node and resumes it, as the scheduler
/// would. Returns how many continuations it resumed.
pub async fn resume_due(runner: &Runner, fence: Fence, db: &Database, clock: &ManualClock) -> usize {
    let claimed = scheduled::claim_due(
        db,
        &runner.node_id,
        &[0],
        clock.now(),
        chrono::Duration::seconds(60),
        100,
    )
    .await
    .unwrap();
    for row in &claimed {
        resume(runner, fence, row).await;
    }
    claimed.len()
}

/// Resumes one claimed continuation, as the scheduler hands it to its customer's executor.
pub async fn resume(runner: &Runner, fence: Fence, row: &scheduled::Scheduled) {
    let counter = Arc::new(AtomicUsize::new(0));
    let why = Why::Due {
        due_at: row.due_at,
        ticket: Ticket::issue(&counter),
    };
    let work = Work::Resume {
        run_id: row.run_id,
        fence,
        why,
    };
    runner.process(row.customer_id, work).await;
}
