//! Group commit (runner::batch): many customers' first transactions in one, and a failure
//! inside a batch holding up only the customer it belongs to.
//!
//! - Runner-level (a database, a [`ManualClock`], a stand-in for deliveries, no Kafka): a
//!   batch of 500 events with one poisoned customer; a batch of due resumes; the batch
//!   snapshots against the one-by-one snapshot.
//! - Topology-level (the embedded broker): 500 events with a poisoned customer among them,
//!   and a chain waiting on a slow delivery while other customers of its thread go on.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use chrono::{DateTime, Utc};
use common::{fresh, t0};
use engine::{note_bodies, runs_of_customer, runs_where, Engine};
use harness::{add_workflow, live_set, Sent};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use workflow_engine::clock::ManualClock;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::guards::cascade::Budget;
use workflow_engine::guards::identity::Mismatch;
use workflow_engine::runner::batch::{Batches, Done, Failed, Job, ResumeDone, BATCH_CEILING};
use workflow_engine::runner::{Ownership, Runner, Work};
use workflow_engine::storage::ownership::{self, Fence};
use workflow_engine::storage::runs::{status, step_status, RunFilter};
use workflow_engine::storage::{customers, scheduled, Database};

const PATIENCE: Duration = Duration::from_secs(60);

/// A runner of node-a owning partition 0 at `t0`, with the largest batches allowed, and
/// the fence it holds.
async fn owning_runner(db: &Database, clock: &ManualClock) -> (Runner, Fence) {
    let ownership = Ownership::default();
    let fence = ownership::acquire(db, 0, "node-a", t0()).await.unwrap();
    ownership.grant(fence);
    let runner = Runner {
        batches: Batches::new(BATCH_CEILING),
        ..harness::runner(db, "node-a", clock, &ownership, &Sent::default())
    };
    (runner, fence)
}

fn event(id: &str, customer_id: i64) -> EventEnvelope {
    EventEnvelope::from_value(
        json!({"id": id, "type": "customer.deposited", "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": {"amount": 10}}),
    )
    .unwrap()
}

/// Every customer gets a note; the poisoned customer's second workflow assigns a team that
/// does not exist, so its unit fails inside the batch's transaction.
async fn poisoned_workflows(db: &Database, poisoned: i64) {
    add_workflow(
        db,
        json!({"id": "everyone", "name": "A note for everyone", "trigger_event": "customer.deposited",
            "actions": [{"type": "add_note", "params": {"body": "noted {{customer.id}}"}}], "priority": 1}),
    )
    .await;
    add_workflow(
        db,
        json!({"id": "poison", "name": "A team that does not exist", "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [{"field": "customer.id", "operator": "eq", "value": poisoned}]},
            "actions": [{"type": "add_note", "params": {"body": "before"}},
                        {"type": "assign_to_team", "params": {"team_id": 999}}], "priority": 2}),
    )
    .await;
}

/// Everyone else's outcome: exactly one run, done, and its note exactly once.
async fn assert_healthy_once(db: &Database, customers: impl Iterator<Item = i64>) {
    let all = runs_where(db, RunFilter::default()).await;
    for c in customers {
        let mine: Vec<_> = all.iter().filter(|r| r.run.customer_id == c).collect();
        assert_eq!(mine.len(), 1, "customer {c}: exactly one run");
        assert_eq!(mine[0].run.workflow_id, "everyone");
        assert_eq!(mine[0].run.status, status::DONE, "customer {c}: {:?}", mine[0]);
        assert_eq!(note_bodies(db, c).await, [format!("noted {c}")], "customer {c}'s notes");
    }
}

/// The poisoned customer's outcome, as without batches: its first workflow done, the
/// poisoned one failed at the bad step with the reason, the step before it kept.
async fn assert_poisoned_as_before(db: &Database, poisoned: i64) {
    let mine = runs_of_customer(db, poisoned).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    let ok = mine.iter().find(|r| r.run.workflow_id == "everyone").unwrap();
    assert_eq!(ok.run.status, status::DONE);
    let bad = mine.iter().find(|r| r.run.workflow_id == "poison").unwrap();
    assert_eq!(bad.run.status, status::FAILED, "{bad:?}");
    assert!(
        bad.run.error.as_deref().is_some_and(|e| e.contains("no team 999")),
        "{bad:?}"
    );
    let steps: Vec<&str> = bad.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(steps, [step_status::DONE, step_status::FAILED]);
    assert_eq!(
        note_bodies(db, poisoned).await,
        [format!("noted {poisoned}"), "before".to_owned()]
    );
}

/// A batch of 500 events of 500 customers, one poisoned: one transaction cannot hold it,
/// so the batch is split until the poisoned unit is alone. The 499 others are recorded
/// and done exactly once; the poisoned one alone reports a failure, and the one-at-a-time
/// path then records its failure as it always did. (Committed whole or failed whole, the
/// 499 would have no runs after the batch: checked before the poisoned one goes on.)
#[actix_rt::test]
async fn a_poisoned_customer_in_a_batch_of_500_holds_up_only_itself() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence) = owning_runner(db, &clock).await;
    const POISONED: i64 = 250;
    common::add_customers(db, 1..=500).await;
    poisoned_workflows(db, POISONED).await;
    let set = live_set(db).await;

    let jobs: Vec<Job> = (1..=500)
        .map(|c| Job::Event {
            fence,
            event: Box::new(event(&format!("e{c}"), c)),
            set: Arc::clone(&set),
            sync: false,
            budget: Budget::outside(&format!("e{c}")),
        })
        .collect();
    let outcomes = runner.commit_batch(jobs).await;
    assert_eq!(outcomes.len(), 500);
    for (c, outcome) in (1..=500).zip(&outcomes) {
        match outcome {
            Ok(Done::Event(_)) => assert_ne!(c, POISONED, "the poisoned unit cannot commit"),
            Err(Failed::Alone(reason)) => {
                assert_eq!(c, POISONED, "only the poisoned unit fails: {reason}");
                assert!(reason.contains("no team 999"), "{reason}");
            }
            _ => panic!("customer {c}: unexpected outcome"),
        }
    }
    assert_healthy_once(db, (1..=500).filter(|&c| c != POISONED)).await;
    assert!(
        runs_of_customer(db, POISONED).await.is_empty(),
        "nothing of the poisoned unit committed"
    );

    // The executor's path for it: one at a time, the failure recorded as before.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let work = Work::Event {
        event: event(&format!("e{POISONED}"), POISONED),
        set: Arc::clone(&set),
        fence,
        recorded: tx,
    };
    runner.process(POISONED, work).await;
    assert!(rx.await.is_ok(), "the poisoned event is recorded");
    assert_poisoned_as_before(db, POISONED).await;
    assert_healthy_once(db, (1..=500).filter(|&c| c != POISONED)).await;
    t.finish().await;
}

/// An event reusing another customer's event id (security issue 22) in a batch is refused
/// alone: it writes nothing and replays nothing, and the units around it (new events and a
/// true redelivery) commit in the same transaction as before.
#[actix_rt::test]
async fn an_event_reusing_an_id_in_a_batch_is_refused_alone() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence) = owning_runner(db, &clock).await;
    common::add_customers(db, 1..=10).await;
    poisoned_workflows(db, 0).await;
    let set = live_set(db).await;
    let job = |id: &str, customer_id: i64| Job::Event {
        fence,
        event: Box::new(event(id, customer_id)),
        set: Arc::clone(&set),
        sync: false,
        budget: Budget::outside(id),
    };
    let first: Vec<Job> = (1..=10).map(|c| job(&format!("e{c}"), c)).collect();
    assert!(runner.commit_batch(first).await.iter().all(Result::is_ok));

    // New events of every customer, customer 7's event under customer 3's id, and customer
    // 5's own event again.
    let mut second: Vec<Job> = (1..=10).map(|c| job(&format!("n{c}"), c)).collect();
    second.insert(4, job("e3", 7));
    second.push(job("e5", 5));
    let outcomes = runner.commit_batch(second).await;
    assert_eq!(outcomes.len(), 12);
    for (i, outcome) in outcomes.iter().enumerate() {
        let Ok(Done::Event(done)) = outcome else {
            panic!("unit {i}: not committed");
        };
        let recorded = &done.recorded;
        match i {
            4 => {
                assert_eq!(recorded.refused, Some(Mismatch::Customer));
                assert!(recorded.runs.is_empty() && !recorded.replayed);
            }
            11 => assert!(recorded.replayed && recorded.refused.is_none()),
            _ => assert!(!recorded.replayed && recorded.refused.is_none() && recorded.runs.len() == 1),
        }
    }
    for c in 1..=10 {
        assert_eq!(runs_of_customer(db, c).await.len(), 2, "customer {c}");
        assert_eq!(note_bodies(db, c).await, [format!("noted {c}"), format!("noted {c}")]);
    }
    t.finish().await;
}

/// Due resumes of many customers commit together: each continuation off the schedule, its
/// run running and the note after the delay applied, in one transaction; a resume whose
/// claim is not this node's changes nothing.
#[actix_rt::test]
async fn due_resumes_commit_in_one_batch_and_a_stale_one_changes_nothing() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence) = owning_runner(db, &clock).await;
    common::add_customers(db, 1..=40).await;
    add_workflow(
        db,
        json!({"name": "later", "trigger_event": "customer.deposited", "actions": [
            {"type": "add_note", "params": {"body": "a"}},
            {"type": "delay", "params": {"hours": 1}},
            {"type": "add_note", "params": {"body": "b {{customer.id}}"}},
            {"type": "add_note", "params": {"body": "c"}}]}),
    )
    .await;
    let set = live_set(db).await;
    for c in 1..=40 {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let work = Work::Event {
            event: event(&format!("e{c}"), c),
            set: Arc::clone(&set),
            fence,
            recorded: tx,
        };
        runner.process(c, work).await;
    }
    clock.advance(Duration::from_secs(3601));
    let claimed = scheduled::claim_due(
        db,
        "node-a",
        &[0],
        clock_now(&clock),
        chrono::Duration::seconds(60),
        100,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 40);
    // Customer 40's claim is taken over by another node before it resumes: stale.
    let stolen = claimed.iter().find(|r| r.customer_id == 40).unwrap().run_id;
    db.connection()
        .execute(workflow_engine::storage::sql::statement(
            db.connection(),
            "UPDATE scheduled SET claimed_by = $1 WHERE run_id = $2",
            vec!["node-b".into(), stolen.into()],
        ))
        .await
        .unwrap();
    let jobs: Vec<Job> = claimed
        .iter()
        .map(|r| Job::Resume {
            fence,
            run_id: r.run_id,
            customer_id: r.customer_id,
        })
        .collect();
    let outcomes = runner.commit_batch(jobs).await;
    let mut stale = Vec::new();
    for (row, outcome) in claimed.iter().zip(&outcomes) {
        match outcome {
            Ok(Done::Resume(done)) => match done.as_ref() {
                ResumeDone::Stale => stale.push(row.customer_id),
                ResumeDone::Resumed { run, .. } => assert_eq!(run.run.status, status::DONE, "{run:?}"),
            },
            _ => panic!("customer {}: unexpected outcome", row.customer_id),
        }
    }
    assert_eq!(stale, [40]);
    for c in 1..=39 {
        let runs = runs_of_customer(db, c).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.status, status::DONE);
        let notes = note_bodies(db, c).await;
        assert_eq!(
            notes,
            ["a".to_owned(), format!("b {c}"), "c".to_owned()],
            "customer {c}"
        );
    }
    let waiting = runs_of_customer(db, 40).await;
    assert_eq!(waiting[0].run.status, status::WAITING);
    assert_eq!(note_bodies(db, 40).await, ["a"]);
    let left: Vec<i64> = scheduled::list(db.connection(), 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(left, [stolen], "only the stale continuation stays scheduled");
    t.finish().await;
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    workflow_engine::clock::Clock::now(clock)
}

/// The batch's snapshots are the one-by-one snapshots, statuses included, and a customer
/// without a row is absent.
#[actix_rt::test]
async fn batch_snapshots_equal_one_by_one_snapshots() {
    let t = fresh().await;
    let db = &t.db;
    workflow_engine::storage::seed::load_demo(db, "http://127.0.0.1:9/hook")
        .await
        .unwrap();
    let ids: Vec<i64> = vec![1, 2, 3, 4, 5, 999_999];
    let batch = customers::snapshots(db.connection(), &ids).await.unwrap();
    for id in ids {
        let one = customers::snapshot(db.connection(), id).await.unwrap();
        assert_eq!(batch.get(&id), one.as_ref(), "customer {id}");
    }
    t.finish().await;
}

/// With the customer sync on, a batch applies its events' sync before it loads their
/// customers: a `customer.registered` of a customer with no row creates it, and the plan
/// sees the fields it came with. A unit that does not ask for the sync changes nothing.
#[actix_rt::test]
async fn a_batch_syncs_its_customers_before_it_plans_them() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence) = owning_runner(db, &clock).await;
    let runner = Runner {
        sync_customers: true,
        ..runner
    };
    add_workflow(
        db,
        json!({"id": "welcome", "name": "Welcome", "trigger_event": "customer.registered",
            "conditions": {"match": "all", "rules": [{"field": "customer.first_name", "operator": "eq", "value": "Ada"}]},
            "actions": [{"type": "add_note", "params": {"body": "welcome {{customer.first_name}}"}}]}),
    )
    .await;
    let set = live_set(db).await;
    let registered = |c: i64| {
        EventEnvelope::from_value(
            json!({"id": format!("r{c}"), "type": "customer.registered", "customer_id": c,
            "occurred_at": "2026-11-25T10:00:00Z", "data": {"first_name": "Ada"}}),
        )
        .unwrap()
    };
    let jobs: Vec<Job> = (1..=4)
        .map(|c| Job::Event {
            fence,
            event: Box::new(registered(c)),
            set: Arc::clone(&set),
            sync: c != 4,
            budget: Budget::outside(&registered(c).id),
        })
        .collect();
    let outcomes = runner.commit_batch(jobs).await;
    assert!(outcomes.iter().all(|o| matches!(o, Ok(Done::Event(_)))));
    for c in 1..=3 {
        let customer = customers::get(db.connection(), c)
            .await
            .unwrap()
            .expect("created by the sync");
        assert_eq!(customer.first_name, "Ada");
        assert_eq!(customer.last_activity_at, Some("2026-11-25T10:00:00Z".parse().unwrap()));
        let runs = runs_of_customer(db, c).await;
        assert_eq!(runs.len(), 1, "customer {c}: {runs:?}");
        assert_eq!(note_bodies(db, c).await, ["welcome Ada"]);
    }
    assert!(customers::get(db.connection(), 4).await.unwrap().is_none());
    assert!(runs_of_customer(db, 4).await.is_empty());
    t.finish().await;
}

/// Through the broker: 500 events of 500 customers ready together, one customer
/// poisoned. Every other customer's event runs exactly once; the poisoned customer's
/// failure is recorded as it is without batches; every event's offset is committed (a
/// redelivery would show as a second note).
#[actix_rt::test]
async fn a_poisoned_customer_among_500_events_holds_up_only_itself() {
    const POISONED: i64 = 5250;
    let mut engine = Engine::new(|_| {}).await;
    let customers: Vec<i64> = (5001..=5500).collect();
    engine.add_customers(customers.clone()).await;
    poisoned_workflows(engine.db(), POISONED).await;
    let events: Vec<Value> = customers
        .iter()
        .map(
            |&c| json!({"id": format!("e{c}"), "type": "customer.deposited", "customer_id": c, "data": {"amount": 10}}),
        )
        .collect();
    // Published before the engine starts: every partition's events are ready together.
    engine.publish_all(&events).await;
    engine.start().await;
    let db = engine.db().clone();
    eventually!("every run ended", PATIENCE, {
        let all = runs_where(&db, RunFilter::default()).await;
        (all.len() == 501 && engine::all_ended(&all)).then_some(())
    });
    assert_healthy_once(&db, customers.iter().copied().filter(|&c| c != POISONED)).await;
    assert_poisoned_as_before(&db, POISONED).await;
    // A restart reads from the committed offsets: nothing runs again.
    engine.restart().await;
    engine
        .publish(&json!({"id": "last", "type": "customer.deposited", "customer_id": 5001, "data": {"amount": 1}}))
        .await;
    eventually!("the last event done", PATIENCE, {
        let all = runs_where(&db, RunFilter::default()).await;
        (all.len() == 502 && engine::all_ended(&all)).then_some(())
    });
    assert_healthy_once(&db, customers.iter().copied().filter(|&c| c != POISONED && c != 5001)).await;
    assert_poisoned_as_before(&db, POISONED).await;
    engine.finish().await;
}

/// A chain waiting on a slow delivery holds up its own customer only: with one executor
/// thread, another customer's events run to the end while the delivery is still waiting.
#[actix_rt::test]
async fn a_chain_waiting_on_a_delivery_does_not_hold_up_other_customers() {
    let mut engine = Engine::new(|s| {
        s.engine.arbiters = 1;
        s.delivery.timeout_ms = 30_000;
    })
    .await;
    engine.add_customers([6001, 6002]).await;
    let hook = engine.listener.url("/slow");
    add_workflow(
        engine.db(),
        json!({"id": "slow", "name": "Slow webhook", "trigger_event": "test.slow",
            "actions": [{"type": "webhook", "params": {"url": hook}},
                        {"type": "add_note", "params": {"body": "after the webhook"}}]}),
    )
    .await;
    add_workflow(
        engine.db(),
        json!({"id": "quick", "name": "Quick note", "trigger_event": "test.quick",
            "actions": [{"type": "add_note", "params": {"body": "quick {{event.n}}"}}]}),
    )
    .await;
    engine.listener.slow_down(Duration::from_secs(20));
    engine.start().await;
    engine
        .publish(&json!({"id": "slow-1", "type": "test.slow", "customer_id": 6001, "data": {}}))
        .await;
    let db = engine.db().clone();
    eventually!("the webhook to be received", PATIENCE, {
        (!engine.listener.received("/slow").is_empty()).then_some(())
    });
    let quick: Vec<Value> = (0..5)
        .map(|n| json!({"id": format!("quick-{n}"), "type": "test.quick", "customer_id": 6002, "data": {"n": n}}))
        .collect();
    engine.publish_all(&quick).await;
    eventually!("the other customer's events done", PATIENCE, {
        let runs = runs_of_customer(&db, 6002).await;
        (runs.len() == 5 && engine::all_ended(&runs)).then_some(())
    });
    // The slow chain is still waiting on its delivery at that point.
    let slow = runs_of_customer(&db, 6001).await;
    assert_eq!(slow.len(), 1);
    assert_ne!(slow[0].run.status, status::DONE, "{:?}", slow[0]);
    assert!(note_bodies(&db, 6001).await.is_empty());
    assert_eq!(
        note_bodies(&db, 6002).await,
        (0..5).map(|n| format!("quick {n}")).collect::<Vec<_>>()
    );
    engine.listener.slow_down(Duration::ZERO);
    eventually!("the slow chain done", PATIENCE, {
        let runs = runs_of_customer(&db, 6001).await;
        engine::all_ended(&runs).then_some(())
    });
    assert_eq!(note_bodies(&db, 6001).await, ["after the webhook"]);
    engine.finish().await;
}

#[test]
fn the_batch_size_is_capped() {
    assert_eq!(Batches::new(0).max(), 1);
    assert_eq!(Batches::new(7).max(), 7);
    assert_eq!(Batches::new(1_000_000).max(), BATCH_CEILING);
}

/// With the customer sync on, events of every type reach the runner, which counted them
/// under their own type: a producer sending random types grew `wfe_events_total{trigger}`
/// by a label value each (issue 25 saw 300). The label is the type only when a workflow
/// listens to it, as in the matcher.
#[actix_rt::test]
async fn synced_events_of_types_no_workflow_listens_to_share_one_label() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence) = owning_runner(db, &clock).await;
    let runner = Runner {
        sync_customers: true,
        ..runner
    };
    let set = live_set(db).await;
    let odd = "producer.random.type.42";
    let event = EventEnvelope::from_value(json!({"id": "odd-1", "type": odd, "customer_id": 7})).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    runner
        .process(
            7,
            Work::Event {
                event,
                set,
                fence,
                recorded: tx,
            },
        )
        .await;
    rx.await.expect("the event was handled");
    let triggers: Vec<String> = workflow_engine::metrics::Metrics::global()
        .registry
        .gather()
        .iter()
        .filter(|family| family.name() == "wfe_events_total")
        .flat_map(|family| family.get_metric().to_vec())
        .flat_map(|metric| metric.get_label().to_vec())
        .filter(|label| label.name() == "trigger")
        .map(|label| label.value().to_owned())
        .collect();
    assert!(triggers.iter().any(|t| t == "other"), "{triggers:?}");
    assert!(!triggers.iter().any(|t| t == odd), "{triggers:?}");
    t.finish().await;
}
