//! The runtime in a cluster: partitions that move while chains are in flight.
//!
//! - Runner-level (a database, a [`ManualClock`], a stand-in for deliveries, no Kafka):
//!   a lease that runs out under a backlog of due resumes, a recovery that comes while
//!   the run already waits on a delay, a redelivered event after the workflows changed,
//!   two attempts at one step, a stale epoch.
//! - Topology-level: two engines sharing one broker and one database, the second joining
//!   mid-stream and the first leaving gracefully, with a slow receiver.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::{fresh, t0, TestDb};
use engine::{note_bodies, runs_of_customer, runs_where, Engine};
use futures_util::future::LocalBoxFuture;
use harness::{add_workflow, live_set, Sent};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use workflow_engine::actions::{run_internal_step, StepContext, StepOutcome};
use workflow_engine::actors::topology::Topology;
use workflow_engine::catalogue::Action;
use workflow_engine::clock::{Clock, ManualClock, SteppedClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::guards::identity::Mismatch;
use workflow_engine::outbound::send::{Deliver, DeliveryError, DeliveryReport};
use workflow_engine::plan::WorkflowSet;
use workflow_engine::runner::Outbound;
use workflow_engine::runner::{Handled, Ownership, Runner, Ticket, Why, Work};
use workflow_engine::storage::ownership::{self, Fence};
use workflow_engine::storage::runs::{self, PlannedRun, RunFilter};
use workflow_engine::storage::steps;
use workflow_engine::storage::{scheduled, Database};

// ---------------------------------------------------------------------------------------
// Runner-level harness

struct Node {
    runner: Runner,
    #[allow(dead_code)]
    sent: Sent,
}

fn node(db: &Database, name: &str, clock: &ManualClock, ownership: &Ownership) -> Node {
    let sent = Sent::default();
    let runner = Runner {
        sync_customers: true,
        ..harness::runner(db, name, clock, ownership, &sent)
    };
    Node { runner, sent }
}

fn event(id: &str, customer_id: i64, amount: i64) -> EventEnvelope {
    EventEnvelope::from_value(
        json!({"id": id, "type": "customer.deposited", "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": {"amount": amount}}),
    )
    .unwrap()
}

/// Handles `event` as the executor would; returns whether it was acknowledged as recorded.
async fn handle(runner: &Runner, set: &Arc<WorkflowSet>, fence: Fence, event: EventEnvelope) -> bool {
    let (tx, rx) = oneshot::channel();
    let customer_id = event.customer_id;
    let work = Work::Event {
        event,
        set: Arc::clone(set),
        fence,
        recorded: tx,
    };
    runner.process(customer_id, work).await;
    rx.await.is_ok()
}

fn resume(run_id: i64, fence: Fence, due_at: DateTime<Utc>, in_flight: &Arc<std::sync::atomic::AtomicUsize>) -> Work {
    Work::Resume {
        run_id,
        fence,
        why: Why::Due {
            due_at,
            ticket: Ticket::issue(in_flight),
        },
    }
}

/// What `node`'s scheduler claims of partition 0 at `now`, for a 60 s lease: every one of
/// the 20 due continuations.
async fn claim(db: &Database, node: &str, now: DateTime<Utc>) -> Vec<scheduled::Scheduled> {
    let rows = scheduled::claim_due(db, node, &[0], now, ChronoDuration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 20, "{node} claims every due continuation");
    rows
}

/// `node` resumes what it claimed, one after another.
async fn resume_all(
    node: &Node,
    rows: Vec<scheduled::Scheduled>,
    fence: Fence,
    in_flight: &Arc<std::sync::atomic::AtomicUsize>,
) {
    for row in rows {
        node.runner
            .process(row.customer_id, resume(row.run_id, fence, row.due_at, in_flight))
            .await;
    }
}

/// A fresh database where "node-a" owns partition 0.
async fn owned_by_a(t: &TestDb, ownership: &Ownership) -> Fence {
    let fence = ownership::acquire(&t.db, 0, "node-a", t0()).await.unwrap();
    ownership.grant(fence);
    fence
}

// ---------------------------------------------------------------------------------------
// Runner-level tests

/// The issue's defect 1: resumes that are no longer what was claimed (a recovery of a run
/// that went on to wait, a claim whose lease ran out while it queued behind a backlog and
/// was claimed again, a claim another node took over) must not run the chain, which
/// before skipped a pending delay or ran a continuation twice.
#[actix_rt::test]
async fn a_stale_resume_never_runs_a_continuation_early_or_twice() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let ownership = Ownership::default();
    let fence = owned_by_a(&t, &ownership).await;
    let a = node(db, "node-a", &clock, &ownership);
    let b = node(db, "node-b", &clock, &ownership);
    common::add_customers(db, 1..=20).await;
    add_workflow(
        db,
        json!({"name": "two waits", "trigger_event": "customer.deposited", "actions": [
            {"type": "add_note", "params": {"body": "a"}},
            {"type": "delay", "params": {"hours": 1}},
            {"type": "add_note", "params": {"body": "b"}},
            {"type": "delay", "params": {"hours": 1}},
            {"type": "add_note", "params": {"body": "c"}}]}),
    )
    .await;
    let set = live_set(db).await;
    for c in 1..=20 {
        assert!(handle(&a.runner, &set, fence, event(&format!("e{c}"), c, 10)).await);
    }
    let run_ids: BTreeMap<i64, i64> = runs_where(db, RunFilter::default())
        .await
        .iter()
        .map(|r| (r.run.customer_id, r.run.id))
        .collect();
    assert_eq!(run_ids.len(), 20);

    // A recovery that found customer 1's run running, handled after the run parked.
    let work = Work::Resume {
        run_id: run_ids[&1],
        fence,
        why: Why::Recover,
    };
    a.runner.process(1, work).await;
    assert_eq!(note_bodies(db, 1).await, ["a"], "a stale recovery skipped the delay");

    let in_flight = Arc::default();

    // Due: node-a claims every continuation; they queue behind a backlog past the lease,
    // and node-a's scheduler claims them all again.
    clock.advance(Duration::from_secs(3600));
    let first = claim(db, "node-a", clock.now()).await;
    clock.advance(Duration::from_secs(61));
    let again = claim(db, "node-a", clock.now()).await;
    resume_all(&a, first, fence, &in_flight).await;
    resume_all(&a, again, fence, &in_flight).await;
    for c in 1..=20 {
        assert_eq!(
            note_bodies(db, c).await,
            ["a", "b"],
            "customer {c}: the second claim ran past the second delay"
        );
    }
    assert_eq!(in_flight.load(std::sync::atomic::Ordering::Acquire), 0);

    // The second wait: node-a claims, its lease runs out, node-b claims. node-a's resume
    // is stale and does nothing; node-b's runs the continuation, once.
    clock.advance(Duration::from_secs(3600));
    let by_a = claim(db, "node-a", clock.now()).await;
    clock.advance(Duration::from_secs(61));
    let by_b = claim(db, "node-b", clock.now()).await;
    resume_all(&a, by_a, fence, &in_flight).await;
    for c in 1..=20 {
        assert_eq!(
            note_bodies(db, c).await,
            ["a", "b"],
            "customer {c}: node-a's expired claim ran the chain"
        );
    }
    resume_all(&b, by_b, fence, &in_flight).await;
    for c in 1..=20 {
        assert_eq!(note_bodies(db, c).await, ["a", "b", "c"]);
        let runs = runs_of_customer(db, c).await;
        assert_eq!(runs[0].run.status, "done");
    }
    assert!(scheduled::list(db, 100).await.unwrap().is_empty());
    t.finish().await;
}

/// The issue's defect 3: a redelivered event replays its recorded plan, even an empty
/// one, and is never planned again against workflows (or a customer) that changed since.
#[actix_rt::test]
async fn a_redelivered_event_after_the_workflows_changed_starts_nothing_new() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let ownership = Ownership::default();
    let fence = owned_by_a(&t, &ownership).await;
    let a = node(db, "node-a", &clock, &ownership);
    common::add_customers(db, [1]).await;
    add_workflow(
        db,
        json!({"name": "big", "trigger_event": "customer.deposited", "priority": 100,
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 100}]},
            "actions": [{"type": "add_note", "params": {"body": "big {{event.amount}}"}}]}),
    )
    .await;
    let before = live_set(db).await;
    assert!(handle(&a.runner, &before, fence, event("small", 1, 50)).await);
    assert!(handle(&a.runner, &before, fence, event("large", 1, 500)).await);
    assert_eq!(note_bodies(db, 1).await, ["big 500"]);

    add_workflow(
        db,
        json!({"name": "any", "trigger_event": "customer.deposited", "priority": 200,
            "actions": [{"type": "add_note", "params": {"body": "any {{event.amount}}"}}]}),
    )
    .await;
    let after = live_set(db).await;
    assert!(handle(&a.runner, &after, fence, event("small", 1, 50)).await);
    assert!(handle(&a.runner, &after, fence, event("large", 1, 500)).await);
    assert_eq!(note_bodies(db, 1).await, ["big 500"], "a redelivery was planned again");
    assert_eq!(runs_of_customer(db, 1).await.len(), 1);

    // A new event is planned against the new set.
    assert!(handle(&a.runner, &after, fence, event("later", 1, 500)).await);
    assert_eq!(note_bodies(db, 1).await, ["big 500", "big 500", "any 500"]);
    t.finish().await;
}

/// Security issue 22 at the runner: customer A's event `e1` was recorded but its run not
/// finished (a crash). Customer B's event with the id `e1` is not a redelivery: B's
/// executor must not go on with A's run (A's data to whatever B's work reaches), nor start
/// anything; it is refused. A's own redelivery still replays the run.
#[actix_rt::test]
async fn an_event_reusing_another_customers_id_never_replays_that_customers_run() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let ownership = Ownership::default();
    let fence = owned_by_a(&t, &ownership).await;
    let a = node(db, "node-a", &clock, &ownership);
    common::add_customers(db, [1, 2]).await;
    let hook = add_workflow(
        db,
        json!({"name": "hook", "trigger_event": "customer.deposited",
        "actions": [
            {"type": "add_note", "params": {"body": "for {{customer.id}}: {{event.amount}}"}},
            {"type": "webhook", "params": {"url": "https://hooks.example.com/deposits",
                "body": {"customer": "{{customer.id}}", "amount": "{{event.amount}}"}}}
        ]}),
    )
    .await;
    let set = live_set(db).await;
    // A's event as a crashed process left it: plan and run recorded, nothing run.
    let planned = [PlannedRun {
        workflow_id: hook.clone(),
        workflow_version: 1,
        steps: vec![
            workflow_engine::catalogue::ActionKind::AddNote,
            workflow_engine::catalogue::ActionKind::Webhook,
        ],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    runs::record_runs(db, fence, &event("e1", 1, 500), &planned, t0())
        .await
        .unwrap();

    // B's event under the same id: judged where it is recorded (in its batch), and with
    // the customer sync on, before the sync too.
    for sync_customers in [false, true] {
        let b = node(db, "node-a", &clock, &ownership);
        let b = Node {
            runner: Runner {
                sync_customers,
                ..b.runner
            },
            sent: b.sent,
        };
        let (tx, rx) = oneshot::channel();
        let work = Work::Event {
            event: event("e1", 2, 7),
            set: Arc::clone(&set),
            fence,
            recorded: tx,
        };
        b.runner.process(2, work).await;
        let answer = rx.await;
        assert!(note_bodies(db, 1).await.is_empty(), "A's run went on in B's executor");
        assert!(note_bodies(db, 2).await.is_empty());
        assert_eq!(b.sent.count(), 0, "A's webhook was sent from B's executor");
        let runs = runs_of_customer(db, 1).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.status, "pending", "A's run was replayed for B");
        assert!(runs_of_customer(db, 2).await.is_empty());
        assert!(
            matches!(answer, Ok(Handled::Refused(ref reason)) if reason.contains("customer differs")),
            "{answer:?}"
        );
    }

    // The one-at-a-time record (a unit that failed in its batch) refuses it too, writing
    // nothing.
    let refused = runs::record_runs(db, fence, &event("e1", 2, 7), &planned, t0())
        .await
        .unwrap();
    assert_eq!(refused.refused, Some(Mismatch::Customer));
    assert!(refused.runs.is_empty() && !refused.replayed);
    let mut other_type = event("e1", 1, 500);
    other_type.event_type = "customer.registered".into();
    let refused = runs::record_runs(db, fence, &other_type, &planned, t0()).await.unwrap();
    assert_eq!(refused.refused, Some(Mismatch::Type));
    let refused = runs::record_runs(db, fence, &event("e1", 1, 501), &planned, t0())
        .await
        .unwrap();
    assert_eq!(refused.refused, Some(Mismatch::Content));
    assert_eq!(runs_of_customer(db, 1).await[0].run.status, "pending");

    // A's own redelivery replays the recorded run.
    let (tx, rx) = oneshot::channel();
    let work = Work::Event {
        event: event("e1", 1, 500),
        set: Arc::clone(&set),
        fence,
        recorded: tx,
    };
    a.runner.process(1, work).await;
    assert_eq!(rx.await.ok(), Some(Handled::Recorded));
    assert_eq!(note_bodies(db, 1).await, ["for 1: 500"]);
    assert_eq!(a.sent.count(), 1);
    assert_eq!(runs_of_customer(db, 1).await[0].run.status, "done");
    t.finish().await;
}

/// Two attempts at the same step (a replay racing the original, two processes) apply it
/// once; an attempt under an epoch that is no longer current commits nothing.
#[actix_rt::test]
async fn two_attempts_at_one_step_apply_once_and_a_stale_epoch_commits_nothing() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1]).await;
    let old = ownership::acquire(db, 0, "node-a", t0()).await.unwrap();
    let planned = [PlannedRun {
        workflow_id: "w".into(),
        workflow_version: 1,
        steps: vec![workflow_engine::catalogue::ActionKind::AddNote; 2],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    let recorded = runs::record_runs(db, old, &event("e1", 1, 10), &planned, t0())
        .await
        .unwrap();
    let run_id = recorded.runs[0].run.id;
    let note = Action::AddNote { body: "once".into() };
    let context = json!({});
    let ctx = |fence: Fence, step_index: i32| StepContext {
        fence,
        run_id,
        step_index,
        next_step: step_index + 1,
        customer_id: 1,
        workflow_id: "w",
        facts_context: &context,
        now: t0(),
    };
    let (one, two) = (ctx(old, 0), ctx(old, 0));
    let (first, second) = futures_util::join!(run_internal_step(db, &one, &note), run_internal_step(db, &two, &note));
    let mut outcomes = [first.unwrap(), second.unwrap()]
        .map(|o| matches!(o, StepOutcome::AlreadyDone))
        .to_vec();
    outcomes.sort();
    assert_eq!(outcomes, [false, true], "exactly one attempt applies the step");
    assert_eq!(note_bodies(db, 1).await, ["once"]);

    // The partition moves: the old owner's next step is fenced off, the new one's applies.
    let new = ownership::acquire(db, 0, "node-b", t0()).await.unwrap();
    assert_eq!(new.epoch, old.epoch + 1);
    let stale = run_internal_step(db, &ctx(old, 1), &note).await.unwrap_err();
    assert!(stale.is_fenced(), "{stale}");
    assert_eq!(note_bodies(db, 1).await, ["once"]);
    run_internal_step(db, &ctx(new, 1), &note).await.unwrap();
    assert_eq!(note_bodies(db, 1).await, ["once", "once"]);
    // Recording under the stale epoch fails too, writing nothing.
    let e = runs::record_runs(db, old, &event("e2", 1, 10), &planned, t0())
        .await
        .unwrap_err();
    assert!(e.is_fenced());
    assert_eq!(runs_of_customer(db, 1).await.len(), 1);
    t.finish().await;
}

/// Requests that stay out until the test answers them, as a slow receiver's would; each
/// one's key is remembered as it leaves.
#[derive(Clone)]
struct Held {
    sent: Arc<std::sync::Mutex<Vec<String>>>,
    answers: Arc<tokio::sync::Semaphore>,
    /// What the next answers are, oldest first.
    outcomes: Arc<std::sync::Mutex<std::collections::VecDeque<Result<u16, DeliveryError>>>>,
    /// The body of every 2xx answer, for requests that keep it (a journey's webhook).
    body: Arc<std::sync::Mutex<Option<Value>>>,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            sent: Arc::default(),
            answers: Arc::new(tokio::sync::Semaphore::new(0)),
            outcomes: Arc::default(),
            body: Arc::default(),
        }
    }
}

impl Held {
    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }

    /// Lets the oldest request still out end with `outcome`.
    fn answer_one(&self, outcome: Result<u16, DeliveryError>) {
        self.outcomes.lock().unwrap().push_back(outcome);
        self.answers.add_permits(1);
    }
}

impl Outbound for Held {
    fn deliver(&self, request: Deliver) -> LocalBoxFuture<'static, DeliveryReport> {
        self.sent.lock().unwrap().push(request.idempotency_key);
        let (answers, outcomes) = (Arc::clone(&self.answers), Arc::clone(&self.outcomes));
        let body = self.body.lock().unwrap().clone();
        Box::pin(async move {
            answers.acquire().await.unwrap().forget();
            let outcome = outcomes.lock().unwrap().pop_front().unwrap();
            let keep = request.request.keep_response && outcome.is_ok();
            DeliveryReport {
                attempts: request.attempts_before + u32::from(outcome != Err(DeliveryError::LeaseOver)),
                outcome,
                response: body.filter(|_| keep).map(Ok),
            }
        })
    }
}

/// The partition moves to `to` under a new epoch, as when the broker gives it to another
/// member before the old one let it go (a member it thought dead, a hand-over that ran
/// out of time): `from` is told only afterwards.
async fn move_partition(db: &Database, from: &Ownership, to: &Ownership, node: &str, now: DateTime<Utc>) -> Fence {
    let fence = ownership::acquire(db, 0, node, now).await.unwrap();
    to.grant(fence);
    from.revoke(0);
    fence
}

/// Lets spawned work run until `done` holds (real time only paces the polling).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A webhook out when its partition moves is not sent again by the new owner while the
/// old one may still get its answer: the new owner waits for the outcome the old one
/// leaves on the outbox row and goes on from it. Only when the sender's lease runs out
/// with no outcome (it died) is the request sent again, under the same key.
#[actix_rt::test]
async fn a_request_out_when_its_partition_moves_is_not_sent_again_while_its_sender_lives() {
    let t = fresh().await;
    let db = &t.db;
    let clock = SteppedClock::new(t0());
    let (own_a, own_b) = (Ownership::default(), Ownership::default());
    let fence_a = owned_by_a(&t, &own_a).await;
    let (held_a, held_b) = (Held::default(), Held::default());
    let unused = ManualClock::new(t0());
    let a = Arc::new(Runner {
        outbound: Arc::new(held_a.clone()),
        clock: Arc::new(clock.clone()),
        ..harness::runner(db, "node-a", &unused, &own_a, &Sent::default())
    });
    let b = Arc::new(Runner {
        outbound: Arc::new(held_b.clone()),
        clock: Arc::new(clock.clone()),
        ..harness::runner(db, "node-b", &unused, &own_b, &Sent::default())
    });
    let lease = a.delivery_lease;
    common::add_customers(db, [1, 2, 3]).await;
    add_workflow(
        db,
        json!({"name": "hook, then a note", "trigger_event": "customer.deposited", "actions": [
            {"type": "webhook", "params": {"url": "http://127.0.0.1:9/hook"}},
            {"type": "add_note", "params": {"body": "after the hook"}}]}),
    )
    .await;
    let set = live_set(db).await;
    // Customer `customer_id`'s deposit event, handled by `runner` in a task of its own.
    let deposit = |runner: &Arc<Runner>, customer_id: i64, fence: Fence| {
        let (runner, set) = (Arc::clone(runner), Arc::clone(&set));
        let event = event(&format!("e{customer_id}"), customer_id, 10);
        actix_rt::spawn(async move { handle(&runner, &set, fence, event).await })
    };
    let recover = |runner: &Arc<Runner>, customer_id: i64, run_id: i64, fence: Fence| {
        let runner = Arc::clone(runner);
        actix_rt::spawn(async move {
            let work = Work::Resume {
                run_id,
                fence,
                why: Why::Recover,
            };
            runner.process(customer_id, work).await
        })
    };

    // node-a's request for customer 1 is out when the partition moves to node-b, whose
    // recovery finds the run at its webhook.
    let sending = deposit(&a, 1, fence_a);
    until("node-a's request to leave", || held_a.sent().len() == 1).await;
    let fence_b = move_partition(db, &own_a, &own_b, "node-b", clock.now()).await;
    let run_1 = runs_of_customer(db, 1).await[0].run.id;
    let waiting = recover(&b, 1, run_1, fence_b);
    for _ in 0..3 {
        clock.advance(Duration::from_secs(1));
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(held_b.sent().is_empty(), "node-b sent what node-a still had out");
    // node-a's answer comes; it cannot record it with the step any more (fenced), so it
    // leaves it on the outbox row, where node-b finds it and goes on without sending.
    held_a.answer_one(Ok(200));
    assert!(sending.await.unwrap(), "the event was recorded before the request left");
    clock.advance(Duration::from_secs(1));
    waiting.await.unwrap();
    assert!(held_b.sent().is_empty(), "node-b sent the request again");
    let run = runs_of_customer(db, 1).await.remove(0);
    assert_eq!(run.run.status, "done");
    assert_eq!(run.steps[0].status, "done");
    assert_eq!(run.steps[0].result.as_ref().unwrap()["delivered_by"], "node-a");
    assert_eq!(note_bodies(db, 1).await, ["after the hook"]);

    // node-b's request for customer 2 is out when node-b dies: node-a, owner again, waits
    // out node-b's lease and then sends the request itself, under the same key.
    let dying = deposit(&b, 2, fence_b);
    until("node-b's request to leave", || held_b.sent().len() == 1).await;
    dying.abort();
    let fence_a = move_partition(db, &own_b, &own_a, "node-a", clock.now()).await;
    let run_2 = runs_of_customer(db, 2).await[0].run.id;
    let resending = recover(&a, 2, run_2, fence_a);
    clock.advance(lease - Duration::from_secs(1));
    actix_rt::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(held_a.sent().len(), 1, "node-a sent before node-b's lease ran out");
    clock.advance(Duration::from_secs(2));
    until("node-a to send the request again", || held_a.sent().len() == 2).await;
    held_a.answer_one(Ok(200));
    resending.await.unwrap();
    let key = steps::idempotency_key(run_2, 0);
    assert_eq!(held_b.sent()[0], key);
    assert_eq!(held_a.sent()[1], key, "sent again under the same key");
    assert_eq!(runs_of_customer(db, 2).await[0].run.status, "done");
    assert_eq!(note_bodies(db, 2).await, ["after the hook"]);

    // node-a's request for customer 3 is out when the partition moves to node-b; then its
    // attempts stop at the end of its lease with no answer. It records no failure that
    // never happened, and with nothing of its own out it gives the lease up: node-b sends
    // at once rather than when the lease would have run out.
    let stopping = deposit(&a, 3, fence_a);
    until("node-a's request to leave", || held_a.sent().len() == 3).await;
    let fence_b = move_partition(db, &own_a, &own_b, "node-b", clock.now()).await;
    let run_3 = runs_of_customer(db, 3).await[0].run.id;
    let waiting = recover(&b, 3, run_3, fence_b);
    held_a.answer_one(Err(DeliveryError::LeaseOver));
    assert!(stopping.await.unwrap());
    clock.advance(Duration::from_secs(1));
    until("node-b to send the request", || held_b.sent().len() == 2).await;
    held_b.answer_one(Ok(200));
    waiting.await.unwrap();
    assert_eq!(held_b.sent()[1], steps::idempotency_key(run_3, 0));
    assert_eq!(runs_of_customer(db, 3).await[0].run.status, "done");
    assert_eq!(note_bodies(db, 3).await, ["after the hook"]);
    t.finish().await;
}

/// A journey's webhook whose partition moves while its request is out: the answer the old
/// owner gets reaches the new owner with the outcome, so the step keeps the response, its
/// `save` writes the custom field and later steps read `steps.<name>.response`.
#[actix_rt::test]
async fn a_webhooks_answer_and_save_survive_its_partition_moving_while_it_is_out() {
    use sea_orm::ConnectionTrait;
    let t = fresh().await;
    let db = &t.db;
    let clock = SteppedClock::new(t0());
    let (own_a, own_b) = (Ownership::default(), Ownership::default());
    let fence_a = owned_by_a(&t, &own_a).await;
    let (held_a, held_b) = (Held::default(), Held::default());
    *held_a.body.lock().unwrap() = Some(json!({"account": {"id": "A-77"}}));
    let unused = ManualClock::new(t0());
    let runner = |held: &Held, node: &str, own: &Ownership| {
        Arc::new(Runner {
            outbound: Arc::new(held.clone()),
            clock: Arc::new(clock.clone()),
            ..harness::runner(db, node, &unused, own, &Sent::default())
        })
    };
    common::add_customers(db, [1]).await;
    db.connection()
        .execute_unprepared("INSERT INTO custom_field_definitions (name, field_type) VALUES ('account_ref', 'string')")
        .await
        .unwrap();
    let (a, b) = (runner(&held_a, "node-a", &own_a), runner(&held_b, "node-b", &own_b));
    add_workflow(
        db,
        json!({"name": "open an account", "trigger_event": "customer.deposited", "actions": [
            {"type": "webhook", "name": "open", "params": {"url": "http://127.0.0.1:9/open"},
             "save": {"customer.custom.account_ref": "/account/id"}},
            {"type": "add_note", "params": {"body": "opened {{steps.open.response.account.id}}"}}]}),
    )
    .await;
    let set = live_set(db).await;
    let sending = {
        let (a, set) = (Arc::clone(&a), Arc::clone(&set));
        actix_rt::spawn(async move { handle(&a, &set, fence_a, event("e1", 1, 10)).await })
    };
    until("node-a's request to leave", || held_a.sent().len() == 1).await;
    let fence_b = move_partition(db, &own_a, &own_b, "node-b", clock.now()).await;
    let run_id = runs_of_customer(db, 1).await[0].run.id;
    let waiting = {
        let b = Arc::clone(&b);
        actix_rt::spawn(async move {
            let why = Why::Recover;
            b.process(
                1,
                Work::Resume {
                    run_id,
                    fence: fence_b,
                    why,
                },
            )
            .await
        })
    };
    clock.advance(Duration::from_secs(1));
    held_a.answer_one(Ok(200));
    assert!(sending.await.unwrap());
    clock.advance(Duration::from_secs(1));
    waiting.await.unwrap();
    assert!(held_b.sent().is_empty(), "node-b sent the request again");
    let run = runs_of_customer(db, 1).await.remove(0);
    assert_eq!(run.run.status, "done", "{run:?}");
    assert_eq!(run.steps[0].result.as_ref().unwrap()["delivered_by"], "node-a");
    assert_eq!(
        run.steps[0].result.as_ref().unwrap()["response"],
        json!({"account": {"id": "A-77"}})
    );
    assert_eq!(note_bodies(db, 1).await, ["opened A-77"]);
    assert_eq!(
        engine::customer(db, 1).await.custom_fields["account_ref"],
        json!("A-77")
    );
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Two engines

/// The issue's defect 2, black-box: `webhook -> delay -> webhook` chains over 40
/// customers, a receiver that answers in 0.5 s, a second engine joining mid-stream and
/// the first leaving gracefully. No key may be sent twice, no continuation before its
/// delay, every chain once, each customer's first webhooks in event order.
#[actix_rt::test]
async fn a_graceful_hand_over_mid_stream_sends_nothing_twice_and_nothing_early() {
    hand_over_mid_stream(Duration::ZERO).await;
}

/// The same against a broker that answers every request late: commits, heartbeats and the
/// rebalance's rounds all take longer, so hand-overs meet work further along.
#[actix_rt::test]
async fn a_graceful_hand_over_against_a_slow_broker_sends_nothing_twice_and_nothing_early() {
    hand_over_mid_stream(Duration::from_millis(250)).await;
}

async fn hand_over_mid_stream(broker_rtt: Duration) {
    const DELAY: Duration = Duration::from_secs(2);
    let mut a = Engine::new(|s| {
        s.scheduler.delay_override_secs = DELAY.as_secs();
        s.delivery.timeout_ms = 10_000;
    })
    .await;
    a.slow_broker(broker_rtt);
    a.listener.slow_down(Duration::from_millis(500));
    a.add_customers(1..=40).await;
    let (first, second) = (a.listener.url("/first"), a.listener.url("/second"));
    a.add_workflow(
        json!({"name": "chain", "trigger_event": "customer.deposited", "actions": [
        {"type": "webhook", "params": {"url": first}},
        {"type": "delay", "params": {"minutes": 10}},
        {"type": "webhook", "params": {"url": second}}]}),
    )
    .await;
    a.start().await;
    let events: Vec<Value> = (0..240)
        .map(|i| json!({"id": format!("ho-{i}"), "type": "customer.deposited", "customer_id": 1 + i % 40, "data": {"amount": i}}))
        .collect();
    a.publish_all(&events[..120]).await;

    // A second process joins the group mid-stream.
    let mut settings_b = a.settings.clone();
    settings_b.engine.node_id = format!("{}-b", settings_b.engine.node_id);
    let db_b = a.test.connect_again().await;
    let b = Topology::start(&settings_b, db_b, &a.brokers).unwrap();
    // A cooperative rebalance takes two rounds of the group protocol; on the mock cluster
    // each waits for the members' next heartbeat round, so give it more than PATIENCE.
    eventually!(
        "the second engine to own partitions",
        Duration::from_secs(90),
        b.consuming().then_some(())
    );
    a.publish_all(&events[120..]).await;
    eventually!(
        "continuations under way",
        engine::PATIENCE,
        (a.listener.received("/second").len() >= 20).then_some(())
    );
    // The first leaves gracefully while chains are in flight.
    a.stop().await;
    // A pool of its own: the engine's pool holds connections opened on a's executor
    // threads, which died with a's arbiters.
    let db = a.test.connect_again().await;
    eventually!("every chain to finish", Duration::from_secs(120), {
        let runs = runs_where(&db, RunFilter::default()).await;
        (runs.len() == 240 && runs.iter().all(|r| r.run.status == "done")).then_some(())
    });
    b.shutdown().await;

    let mut sends: HashMap<String, usize> = HashMap::new();
    for r in a.listener.all() {
        *sends.entry(r.idempotency_key.clone().unwrap_or_default()).or_default() += 1;
    }
    let doubled: Vec<_> = sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "keys sent more than once: {doubled:?}");
    assert_eq!(sends.len(), 480);

    let at = |path: &str| -> HashMap<String, std::time::Instant> {
        a.listener
            .received(path)
            .into_iter()
            .map(|r| (r.body["event"]["id"].as_str().unwrap().to_owned(), r.at))
            .collect()
    };
    let (firsts, seconds) = (at("/first"), at("/second"));
    for (id, sent) in &seconds {
        let waited = sent.duration_since(firsts[id]);
        assert!(
            waited >= DELAY,
            "{id}: continuation {waited:?} after its first webhook, before the delay"
        );
    }
    let mut order: BTreeMap<i64, Vec<(std::time::Instant, i64)>> = BTreeMap::new();
    for r in a.listener.received("/first") {
        let event = &r.body["event"];
        let n: i64 = event["id"].as_str().unwrap()[3..].parse().unwrap();
        order
            .entry(event["customer_id"].as_i64().unwrap())
            .or_default()
            .push((r.at, n));
    }
    for (customer, mut sent) in order {
        sent.sort();
        let ids: Vec<i64> = sent.iter().map(|(_, n)| *n).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "customer {customer}: first webhooks out of event order");
    }
    a.finish().await;
}

/// Journeys: runs wait for each customer's next deposit while their partitions move to a
/// second engine and the first leaves. Half the customers deposit (some before the move
/// ends, some after), the others do not and time out. Every run ends with exactly one
/// outcome, once: its customer's receiver got exactly one request, the one the wait
/// step recorded (`/event` when it was not `timed_out`), and nothing was sent twice.
#[actix_rt::test]
async fn waits_end_exactly_once_while_their_partitions_move() {
    const TIMEOUT_SECS: u64 = 20;
    let mut a = Engine::new(|s| {
        // The wait's timeout counts as a delay for the override.
        s.scheduler.delay_override_secs = TIMEOUT_SECS;
    })
    .await;
    a.add_customers(1..=40).await;
    let (on_event, on_timeout) = (a.listener.url("/event"), a.listener.url("/timeout"));
    let journey = a
        .add_workflow(
            json!({"name": "first deposit", "trigger_event": "customer.registered", "actions": [
            {"type": "wait_for_event", "name": "deposit", "params": {
                "event": "customer.deposited", "timeout": {"days": 3},
                "on_event": [{"type": "webhook", "params": {"url": on_event}}],
                "on_timeout": [{"type": "webhook", "params": {"url": on_timeout}}]}}]}),
        )
        .await;
    a.start().await;
    let registrations: Vec<Value> = (1..=40)
        .map(|c| json!({"id": format!("reg-{c}"), "type": "customer.registered", "customer_id": c, "data": {}}))
        .collect();
    a.publish_all(&registrations).await;
    let db = a.test.connect_again().await;
    eventually!("every run to wait", engine::PATIENCE, {
        let runs = runs_where(&db, RunFilter::default()).await;
        (runs.len() == 40 && runs.iter().all(|r| r.run.status == "waiting")).then_some(())
    });
    let deposit = |c: i64| json!({"id": format!("dep-{c}"), "type": "customer.deposited", "customer_id": c, "data": {"amount": 100}});
    // Odd customers deposit: the first ten before the second engine joins.
    a.publish_all(&(1..=20).step_by(2).map(deposit).collect::<Vec<_>>())
        .await;

    let mut settings_b = a.settings.clone();
    settings_b.engine.node_id = format!("{}-b", settings_b.engine.node_id);
    let b = Topology::start(&settings_b, a.test.connect_again().await, &a.brokers).unwrap();
    eventually!(
        "the second engine to own partitions",
        Duration::from_secs(90),
        b.consuming().then_some(())
    );
    a.publish_all(&(21..=40).step_by(2).map(deposit).collect::<Vec<_>>())
        .await;
    // The first leaves gracefully while runs wait; the second takes every partition.
    a.stop().await;
    eventually!("every run to end", Duration::from_secs(120), {
        let runs = runs_where(&db, RunFilter::default()).await;
        (runs.len() == 40 && runs.iter().all(|r| r.run.status == "done")).then_some(())
    });
    b.shutdown().await;

    let mut sends: HashMap<String, usize> = HashMap::new();
    let mut outcome_of: HashMap<i64, Vec<&'static str>> = HashMap::new();
    for (path, outcome) in [("/event", "event"), ("/timeout", "timeout")] {
        for r in a.listener.received(path) {
            *sends.entry(r.idempotency_key.clone().unwrap_or_default()).or_default() += 1;
            let customer = r.body["event"]["customer_id"].as_i64().unwrap();
            outcome_of.entry(customer).or_default().push(outcome);
        }
    }
    let doubled: Vec<_> = sends.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "keys sent more than once: {doubled:?}");
    for c in 1..=40 {
        let runs: Vec<_> = runs_of_customer(&db, c)
            .await
            .into_iter()
            .filter(|r| r.run.workflow_id == journey)
            .collect();
        assert_eq!(runs.len(), 1, "customer {c}");
        let wait = runs[0].steps.iter().find(|s| s.step_index == 0).unwrap();
        let timed_out = wait.result.as_ref().unwrap()["timed_out"].as_bool().unwrap();
        let expected = if timed_out { "timeout" } else { "event" };
        assert_eq!(
            outcome_of.get(&c).cloned().unwrap_or_default(),
            [expected],
            "customer {c}: {wait:?}"
        );
        if c % 2 == 0 {
            assert!(timed_out, "customer {c} never deposited");
        }
        assert_eq!(runs[0].steps.len(), 2, "only the path taken: {:?}", runs[0].steps);
    }
    a.finish().await;
}
