//! Journeys (issue 24): branches and waits for the customer's next event, at runner level
//! (a database, a [`ManualClock`], deliveries answered at once, no Kafka): every resume is
//! driven by the test, so each race is placed exactly.
//!
//! What must hold: a branch takes one path, recorded with its step, and the run shows only
//! that path; a wait ends exactly once, by the customer's next matching event or by its
//! timeout, whichever commits first; an event planned before the wait began (the trigger
//! itself, a redelivery) never ends it; the awaited event still starts its own workflows;
//! a partition that moves while a run waits hands the wait to its new owner.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use common::{fresh, t0};
use engine::{note_bodies, runs_of_customer};
use harness::{add_workflow, owning_runner, resume, resume_due, send, Sent};
use serde_json::{json, Value};
use std::time::Duration;
use workflow_engine::clock::{Clock, ManualClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::runner::{Handled, Ownership, Runner};
use workflow_engine::storage::ownership;
use workflow_engine::storage::runs::{status, step_status, Run};
use workflow_engine::storage::{scheduled, Database};

fn event(id: &str, event_type: &str, customer_id: i64, data: Value) -> EventEnvelope {
    EventEnvelope::from_value(json!({
        "id": id, "type": event_type, "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": data
    }))
    .unwrap()
}

/// The one run of `workflow_id` for the customer.
async fn run_of(db: &Database, customer_id: i64, workflow_id: &str) -> Run {
    let runs: Vec<Run> = runs_of_customer(db, customer_id)
        .await
        .into_iter()
        .filter(|r| r.run.workflow_id == workflow_id)
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

fn paths(run: &Run) -> Vec<String> {
    run.steps
        .iter()
        .map(|s| s.path.clone().unwrap_or_else(|| s.step_index.to_string()))
        .collect()
}

fn note(body: &str) -> Value {
    json!({"type": "add_note", "params": {"body": body}})
}

/// "After registration, wait up to 3 days for the first deposit; a big one goes to the VIP
/// desk, a small one gets a thank-you, none gets a nudge": the issue's example, with notes.
fn first_deposit() -> Value {
    json!({
        "name": "first deposit", "trigger_event": "customer.registered",
        "actions": [
            {"type": "wait_for_event", "name": "deposit", "params": {
                "event": "customer.deposited", "timeout": {"days": 3},
                "conditions": {"field": "event.amount", "operator": "gt", "value": 0},
                "on_event": [
                    {"type": "branch", "name": "size", "params": {
                        "paths": [{"when": {"field": "steps.deposit.event.amount", "operator": "gte", "value": 1000},
                                   "actions": [note("vip {{steps.deposit.event.amount}}")]}],
                        "otherwise": [note("thanks")]
                    }}
                ],
                "on_timeout": [note("nudge")]
            }},
            note("after")
        ]
    })
}

/// How many runs wait for an event, all customers together.
async fn waits(db: &Database) -> i64 {
    use sea_orm::ConnectionTrait;
    db.connection()
        .query_one(workflow_engine::storage::sql::statement(
            db.connection(),
            "SELECT COUNT(*) AS n FROM waits",
            vec![],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

fn wait_of(run: &Run) -> &workflow_engine::storage::entities::run_steps::Model {
    run.steps.iter().find(|s| s.step_index == 0).unwrap()
}

#[actix_rt::test]
async fn the_next_matching_event_ends_a_wait_and_its_branch_takes_one_path() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, first_deposit()).await;

    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    let run = run_of(db, 1, &id).await;
    assert_eq!(run.run.status, status::WAITING);
    assert_eq!(wait_of(&run).status, step_status::WAITING);

    // An event of the awaited type that does not meet the conditions leaves it waiting.
    clock.advance(Duration::from_secs(60));
    send(
        &runner,
        fence,
        db,
        event("d0", "customer.deposited", 1, json!({"amount": 0})),
    )
    .await;
    assert_eq!(run_of(db, 1, &id).await.run.status, status::WAITING);

    // The next one that does ends it; the chain goes on through the scheduler, now.
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 2500})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    let run = run_of(db, 1, &id).await;
    assert_eq!(run.run.status, status::DONE, "{run:?}");
    assert_eq!(note_bodies(db, 1).await, ["vip 2500", "after"]);
    let wait = wait_of(&run).result.clone().unwrap();
    assert_eq!(wait["timed_out"], json!(false));
    assert_eq!(wait["event_id"], json!("d1"));
    // Only the path taken is shown: no timeout step, no otherwise step.
    assert_eq!(paths(&run), ["0", "0.on_event.0", "0.on_event.0.paths.0.0", "1"]);
    assert_eq!(run.steps[1].result, Some(json!({"path": 0})));

    // The timeout, due later, finds nothing to do.
    clock.advance(Duration::from_secs(4 * 86_400));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert_eq!(note_bodies(db, 1).await, ["vip 2500", "after"]);
    t.finish().await;
}

#[actix_rt::test]
async fn without_the_event_the_timeout_ends_the_wait_once() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, first_deposit()).await;

    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    clock.advance(Duration::from_secs(3 * 86_400 - 1));
    assert_eq!(
        resume_due(&runner, fence, db, &clock).await,
        0,
        "not due before its timeout"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    let run = run_of(db, 1, &id).await;
    assert_eq!(run.run.status, status::DONE);
    assert_eq!(note_bodies(db, 1).await, ["nudge", "after"]);
    assert_eq!(wait_of(&run).result, Some(json!({"timed_out": true})));
    assert_eq!(paths(&run), ["0", "0.on_timeout.0", "1"]);

    // A deposit after the timeout starts nothing of this run.
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert_eq!(note_bodies(db, 1).await, ["nudge", "after"]);
    t.finish().await;
}

/// The race: the timeout's continuation is claimed (due), and the awaited event is
/// recorded before the claim is acted on. The event's transaction ends the wait first;
/// the claimed timeout finds its continuation changed and does nothing. One outcome.
#[actix_rt::test]
async fn an_event_and_the_timeout_racing_give_one_outcome() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, first_deposit()).await;
    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;

    clock.advance(Duration::from_secs(3 * 86_400));
    let claimed = scheduled::claim_due(db, "node-a", &[0], clock.now(), chrono::Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the timeout is due and claimed");
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 10})),
    )
    .await;
    // The claimed timeout is resumed now: stale.
    resume(&runner, fence, &claimed[0]).await;
    // The event's continuation runs.
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    let run = run_of(db, 1, &id).await;
    assert_eq!(run.run.status, status::DONE);
    assert_eq!(note_bodies(db, 1).await, ["thanks", "after"]);
    assert_eq!(wait_of(&run).result.as_ref().unwrap()["timed_out"], json!(false));
    t.finish().await;
}

/// The other order: the timeout's resume commits first, then the event comes: the event
/// finds no wait and ends nothing.
#[actix_rt::test]
async fn a_timeout_committed_first_leaves_the_event_nothing_to_end() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, first_deposit()).await;
    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 10})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert_eq!(note_bodies(db, 1).await, ["nudge", "after"]);
    assert_eq!(run_of(db, 1, &id).await.run.status, status::DONE);
    t.finish().await;
}

/// Timeouts claimed by a scheduler whose resumes queued behind a backlog until the claims'
/// leases ran out: the continuations are claimed again and resumed, then the first claims'
/// resumes come and find nothing to do. Customer 1's wait times out once; customer 2's
/// deposit, arriving while the first claim was out, ends that wait once, by the event.
#[actix_rt::test]
async fn a_timeout_claimed_twice_after_its_lease_ran_out_ends_the_wait_once() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=2).await;
    let id = add_workflow(db, first_deposit()).await;
    let lease = chrono::Duration::seconds(60);
    let claim = || {
        let now = clock.now();
        async move { scheduled::claim_due(db, "node-a", &[0], now, lease, 100).await.unwrap() }
    };
    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    send(&runner, fence, db, event("r2", "customer.registered", 2, json!({}))).await;
    clock.advance(Duration::from_secs(3 * 86_400));
    let first = claim().await;
    assert_eq!(first.len(), 2, "both timeouts are due and claimed");
    assert!(claim().await.is_empty(), "the lease holds");
    // Customer 2's deposit comes while the claims are out.
    send(
        &runner,
        fence,
        db,
        event("d2", "customer.deposited", 2, json!({"amount": 10})),
    )
    .await;

    clock.advance(Duration::from_secs(61));
    let second = claim().await;
    assert_eq!(second.len(), 2, "claimed again once the lease ran out: {second:?}");
    for row in second.iter().chain(&first) {
        resume(&runner, fence, row).await;
    }
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert_eq!(note_bodies(db, 1).await, ["nudge", "after"]);
    assert_eq!(note_bodies(db, 2).await, ["thanks", "after"]);
    for customer in [1, 2] {
        assert_eq!(run_of(db, customer, &id).await.run.status, status::DONE);
    }
    assert_eq!(waits(db).await, 0);
    t.finish().await;
}

/// An event planned before the wait began never ends it, even redelivered after; the
/// awaited event still starts the workflows that listen to it.
#[actix_rt::test]
async fn an_event_from_before_the_wait_never_ends_it_and_the_awaited_event_starts_its_own_workflows() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let own = add_workflow(
        db,
        json!({"name": "every deposit", "trigger_event": "customer.deposited", "actions": [note("deposit seen")]}),
    )
    .await;
    let id = add_workflow(db, first_deposit()).await;
    // A deposit before the registration: recorded (it starts "every deposit").
    let early = event("d0", "customer.deposited", 1, json!({"amount": 99}));
    send(&runner, fence, db, early.clone()).await;
    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    assert_eq!(run_of(db, 1, &id).await.run.status, status::WAITING);
    // Redelivered now (the broker replays it after a crash): its plan is recorded, so it
    // replays and ends nothing.
    assert_eq!(send(&runner, fence, db, early).await, Some(Handled::Recorded));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert_eq!(run_of(db, 1, &id).await.run.status, status::WAITING);
    // The next deposit ends the wait and starts "every deposit" once more.
    clock.advance(Duration::from_millis(1));
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 7})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    assert_eq!(
        note_bodies(db, 1).await,
        ["deposit seen", "deposit seen", "thanks", "after"]
    );
    assert_eq!(
        runs_of_customer(db, 1)
            .await
            .iter()
            .filter(|r| r.run.workflow_id == own)
            .count(),
        2
    );
    t.finish().await;
}

/// A wait compares the awaited event with the trigger: `{"field": "trigger.*"}`.
#[actix_rt::test]
async fn a_wait_compares_the_awaited_event_with_its_trigger() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(
        db,
        json!({"name": "confirm", "trigger_event": "transaction.pending", "actions": [
            {"type": "wait_for_event", "name": "done", "params": {
                "event": "transaction.completed", "timeout": {"hours": 1},
                "conditions": {"field": "transaction.id", "operator": "eq", "value": {"field": "trigger.transaction.id"}},
                "on_event": [note("confirmed {{steps.done.event.transaction.id}}")]
            }}
        ]}),
    )
    .await;
    send(
        &runner,
        fence,
        db,
        event("p1", "transaction.pending", 1, json!({"transaction": {"id": "t-7"}})),
    )
    .await;
    send(
        &runner,
        fence,
        db,
        event("c1", "transaction.completed", 1, json!({"transaction": {"id": "t-6"}})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0, "another transaction");
    send(
        &runner,
        fence,
        db,
        event("c2", "transaction.completed", 1, json!({"transaction": {"id": "t-7"}})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 1);
    assert_eq!(note_bodies(db, 1).await, ["confirmed t-7"]);
    assert_eq!(run_of(db, 1, &id).await.run.status, status::DONE);
    t.finish().await;
}

/// The partition moves while the run waits: the old owner is fenced, the new owner's
/// event ends the wait and its scheduler goes on; nothing runs twice.
#[actix_rt::test]
async fn a_wait_survives_its_partition_moving() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (a, fence_a, owner_a) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, first_deposit()).await;
    send(&a, fence_a, db, event("r1", "customer.registered", 1, json!({}))).await;

    // node-b takes the partition; node-a has not noticed yet.
    clock.advance(Duration::from_secs(60));
    let (b, fence_b, _) = owning_runner(db, "node-b", &clock).await;
    assert!(fence_b.epoch > fence_a.epoch);
    // node-a, still believing it owns it, sees the deposit: fenced, it ends nothing.
    let stale = send(
        &a,
        fence_a,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5000})),
    )
    .await;
    assert_ne!(stale, Some(Handled::Recorded), "a fenced owner records nothing");
    assert_eq!(run_of(db, 1, &id).await.run.status, status::WAITING);
    owner_a.revoke(0);
    // The broker redelivers it to node-b: the wait ends there.
    send(
        &b,
        fence_b,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5000})),
    )
    .await;
    assert!(owner_a.partitions().is_empty(), "node-a's scheduler claims nothing now");
    assert_eq!(resume_due(&b, fence_b, db, &clock).await, 1);
    assert_eq!(note_bodies(db, 1).await, ["vip 5000", "after"]);
    assert_eq!(run_of(db, 1, &id).await.run.status, status::DONE);
    t.finish().await;
}

/// A branch decides on the customer as stored when its turn comes (an earlier step's
/// change included), and the run keeps only the path it took.
#[actix_rt::test]
async fn a_branch_sees_earlier_steps_changes_and_records_its_path() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(
        db,
        json!({"name": "deactivate then branch", "trigger_event": "customer.deposited", "actions": [
            {"type": "set_customer_active", "params": {"active": false}},
            {"type": "branch", "params": {
                "paths": [{"when": {"field": "customer.active", "operator": "eq", "value": true}, "actions": [note("active")]}],
                "otherwise": [note("inactive")]
            }}
        ]}),
    )
    .await;
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5})),
    )
    .await;
    let run = run_of(db, 1, &id).await;
    assert_eq!(run.run.status, status::DONE, "{run:?}");
    assert_eq!(note_bodies(db, 1).await, ["inactive"]);
    assert_eq!(paths(&run), ["0", "1", "1.otherwise.0"]);
    assert_eq!(run.steps[1].result, Some(json!({"path": "otherwise"})));
    t.finish().await;
}

/// Bad journeys are refused at save with a pointer into the tree, every problem at once.
#[test]
fn bad_journeys_are_refused_with_pointers_into_the_tree() {
    use workflow_engine::conditions::Limits;
    use workflow_engine::schema::FieldSchema;
    use workflow_engine::validate::Validator;
    let schema = FieldSchema::default();
    let problems = |actions: Value| -> Vec<(String, String)> {
        let definition = json!({"name": "j", "trigger_event": "customer.registered", "actions": actions});
        match Validator::new(&schema, Limits::default()).workflow(&definition) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid
                .problems
                .into_iter()
                .filter(|p| p.severity == workflow_engine::problem::Severity::Error)
                .map(|p| (p.path, p.message))
                .collect(),
        }
    };
    let at = |actions: Value| -> Vec<String> { problems(actions).into_iter().map(|(p, _)| p).collect() };

    // A team id of the wrong type, two levels down.
    assert_eq!(
        at(
            json!([{"type": "branch", "params": {"paths": [{"when": {"field": "customer.country", "operator": "eq", "value": "DE"},
            "actions": [note("x"), {"type": "assign_to_team", "params": {"team_id": "seven"}}]}]}}])
        ),
        ["/actions/0/params/paths/0/actions/1/params/team_id"]
    );
    // A duplicate name, a name that is not snake_case, a wait without a name.
    assert_eq!(
        at(json!([
            {"type": "add_note", "name": "a", "params": {"body": "1"}},
            {"type": "add_note", "name": "a", "params": {"body": "2"}},
            {"type": "add_note", "name": "Not Snake", "params": {"body": "3"}},
            {"type": "wait_for_event", "params": {"event": "customer.deposited", "timeout": {"days": 1}}}
        ])),
        ["/actions/1/name", "/actions/2/name", "/actions/3/name"]
    );
    // steps.<name> of a step that does not run before, and of one inside another path.
    assert_eq!(
        at(json!([
            {"type": "branch", "params": {"paths": [
                {"when": {"field": "steps.later.path", "operator": "eq", "value": 0}, "actions": [
                    {"type": "add_note", "name": "inner", "params": {"body": "x"}}]}]}},
            {"type": "branch", "name": "later", "params": {"paths": [
                {"when": {"field": "steps.inner.note_id", "operator": "is_not_empty"}, "actions": []}]}}
        ])),
        [
            "/actions/0/params/paths/0/when/field",
            "/actions/1/params/paths/0/when/field"
        ]
    );
    // steps.* in the workflow's own conditions is refused too.
    let definition = json!({"name": "j", "trigger_event": "customer.registered",
        "conditions": {"field": "steps.a.x", "operator": "is_empty"}, "actions": [note("x")]});
    let invalid = Validator::new(&schema, Limits::default())
        .workflow(&definition)
        .unwrap_err();
    assert_eq!(invalid.problems[0].path, "/conditions/field");
    // A timeout of zero, or over a year.
    assert_eq!(
        at(
            json!([{"type": "wait_for_event", "name": "w", "params": {"event": "customer.deposited", "timeout": {"days": 400}}}])
        ),
        ["/actions/0/params/timeout"]
    );
    // Deeper than 8 levels of actions.
    let mut deep = json!([note("bottom")]);
    for _ in 0..8 {
        deep = json!([{"type": "branch", "params": {"paths": [{"when": {"field": "customer.country", "operator": "is_empty"}, "actions": deep}]}}]);
    }
    let found = problems(deep);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains("deeper than the maximum of 8"), "{found:?}");
    // More than 200 steps in all.
    let many: Vec<Value> = (0..45).map(|i| note(&i.to_string())).collect();
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"type": "branch", "params": {"paths": [{"when": {"field": "customer.country", "operator": "is_empty"}, "actions": many}]}}))
        .collect();
    let found = problems(Value::Array(five));
    assert!(
        found
            .iter()
            .any(|(_, m)| m.contains("more than the maximum of 200 steps")),
        "{found:?}"
    );
}

/// The dry run shows a journey as a run would take it: a branch it can decide names its
/// path with each path's trace and the taken path's steps; a wait shows both
/// continuations; a branch that reads a step's result is left undecided with every path.
#[actix_rt::test]
async fn the_dry_run_shows_the_path_a_branch_takes_and_both_continuations_of_a_wait() {
    use actix_web::{test as web_test, App};
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, 1..=1).await;
    add_workflow(
        db,
        json!({"id": "size", "name": "size", "trigger_event": "customer.deposited", "actions": [
            {"type": "branch", "params": {
                "paths": [{"when": {"field": "event.amount", "operator": "gte", "value": 1000}, "actions": [note("big {{event.amount}}")]}],
                "otherwise": [note("small {{event.amount}}")]}},
            {"type": "wait_for_event", "name": "next", "params": {
                "event": "customer.deposited", "timeout": {"days": 1},
                "on_event": [{"type": "branch", "params": {"paths": [
                    {"when": {"field": "steps.next.event.amount", "operator": "gt", "value": 0}, "actions": [note("again")]}]}}],
                "on_timeout": [note("quiet")]}}
        ]}),
    )
    .await;
    let app = web_test::init_service(
        App::new()
            .configure(|cfg| workflow_engine::api::configure(cfg, common::api_state(db), 1 << 20, None::<String>)),
    )
    .await;
    let request = web_test::TestRequest::post()
        .uri("/api/v1/dry-run")
        .set_json(
            json!({"event": {"id": "dry", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 50}}}),
        )
        .to_request();
    let body: Value = web_test::call_and_read_body_json(&app, request).await;
    let previews = &body["plan"][0]["previews"];
    let branch = &previews[0];
    assert_eq!(branch["path"], json!("otherwise"), "{body:#}");
    assert_eq!(branch["paths"][0]["result"], json!(false), "{branch:#}");
    assert_eq!(
        branch["actions"][0]["rendered"]["body"],
        json!("small 50"),
        "{branch:#}"
    );
    let wait = &previews[1];
    assert_eq!(wait["waits_for"], json!("customer.deposited"), "{wait:#}");
    assert_eq!(wait["on_timeout"][0]["rendered"]["body"], json!("quiet"), "{wait:#}");
    let inner = &wait["on_event"][0];
    assert_eq!(inner["path"], Value::Null, "{inner:#}");
    assert_eq!(
        inner["every_path"][0][0]["rendered"]["body"],
        json!("again"),
        "{inner:#}"
    );
    // Nothing ran.
    assert!(runs_of_customer(db, 1).await.is_empty());
    t.finish().await;
}

/// A named webhook's answer is recorded with its step and readable as
/// `steps.<name>.response.*`; its `save` writes custom fields in the transaction that
/// records the step done. An answer that is not JSON, or over 64 KiB, fails a step that
/// saves, with the reason; the engine goes on. Through the embedded broker and a real HTTP receiver.
#[actix_rt::test]
async fn a_webhooks_answer_is_read_by_later_steps_and_saved_into_custom_fields() {
    use sea_orm::ConnectionTrait;
    let mut e = engine::Engine::new(|_| {}).await;
    e.add_customers(1..=2).await;
    e.db()
        .connection()
        .execute_unprepared("INSERT INTO custom_field_definitions (name, field_type) VALUES ('account_ref', 'string')")
        .await
        .unwrap();
    e.listener
        .answer_with("/open", r#"{"account": {"id": "A-77"}, "tier": "gold"}"#);
    e.listener.answer_with("/text", "accepted");
    // Valid JSON, one byte over what a step keeps.
    let big = format!(r#"{{"id": "{}"}}"#, "x".repeat(64 * 1024 - 10 + 1));
    assert_eq!(big.len(), 64 * 1024 + 1);
    e.listener.answer_with("/big", &big);
    let (open, text, big) = (e.listener.url("/open"), e.listener.url("/text"), e.listener.url("/big"));
    e.add_workflow(json!({"name": "open account", "trigger_event": "customer.registered", "actions": [
        {"type": "webhook", "name": "open", "params": {"url": open}, "save": {"customer.custom.account_ref": "/account/id"}},
        {"type": "branch", "params": {"paths": [
            {"when": {"field": "steps.open.response.tier", "operator": "eq", "value": "gold"},
             "actions": [note("gold {{steps.open.response.account.id}}")]}],
            "otherwise": [note("plain")]}}
    ]}))
    .await;
    e.add_workflow(
        json!({"name": "bad answer", "trigger_event": "customer.verified", "actions": [
            {"type": "webhook", "name": "ask", "params": {"url": text}, "save": {"customer.custom.account_ref": "/id"},
             "on_error": "continue"},
            {"type": "webhook", "name": "big", "params": {"url": big}, "save": {"customer.custom.account_ref": "/id"}}
        ]}),
    )
    .await;
    e.start().await;
    e.publish(&json!({"id": "reg-1", "type": "customer.registered", "customer_id": 1, "data": {}}))
        .await;
    e.publish(&json!({"id": "ver-2", "type": "customer.verified", "customer_id": 2, "data": {}}))
        .await;
    let runs = eventually!("both runs to end", engine::PATIENCE, {
        let runs = engine::runs_where(e.db(), Default::default()).await;
        (runs.len() == 2 && runs.iter().all(|r| r.run.status == "done" || r.run.status == "failed")).then_some(runs)
    });
    let opened = runs.iter().find(|r| r.run.event_id == "reg-1").unwrap();
    assert_eq!(opened.run.status, "done", "{opened:?}");
    assert_eq!(
        opened.steps[0].result.as_ref().unwrap()["response"],
        json!({"account": {"id": "A-77"}, "tier": "gold"})
    );
    assert_eq!(note_bodies(e.db(), 1).await, ["gold A-77"]);
    assert_eq!(
        engine::customer(e.db(), 1).await.custom_fields["account_ref"],
        json!("A-77")
    );

    let bad = runs.iter().find(|r| r.run.event_id == "ver-2").unwrap();
    assert_eq!(bad.run.status, "failed", "{bad:?}");
    let error = bad.steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("nothing saved") && error.contains("not JSON"), "{error}");
    let error = bad.steps[1].error.clone().unwrap_or_default();
    assert!(
        error.contains("nothing saved") && error.contains("over 64 KiB"),
        "{error}"
    );
    assert!(engine::customer(e.db(), 2)
        .await
        .custom_fields
        .get("account_ref")
        .is_none());
    e.finish().await;
}

/// `save` is refused at save time unless it targets one of the database's custom fields
/// with a JSON pointer, on a webhook step.
#[actix_rt::test]
async fn a_save_must_target_a_custom_field_with_a_pointer() {
    use sea_orm::ConnectionTrait;
    use workflow_engine::conditions::Limits;
    use workflow_engine::storage::statuses;
    use workflow_engine::validate::Validator;
    let t = fresh().await;
    t.db.connection()
        .execute_unprepared("INSERT INTO custom_field_definitions (name, field_type) VALUES ('account_ref', 'string')")
        .await
        .unwrap();
    let schema = statuses::field_schema(t.db.connection()).await.unwrap();
    let paths = |step: Value| -> Vec<String> {
        let definition = json!({"name": "s", "trigger_event": "customer.registered", "actions": [step]});
        match Validator::new(&schema, Limits::default()).workflow(&definition) {
            Ok(_) => Vec::new(),
            Err(invalid) => invalid.problems.into_iter().map(|p| p.path).collect(),
        }
    };
    let hook = |save: Value| json!({"type": "webhook", "params": {"url": "https://x.example/"}, "save": save});
    assert!(paths(hook(json!({"customer.custom.account_ref": "/id"}))).is_empty());
    assert_eq!(
        paths(hook(json!({"customer.country": "/id"}))),
        ["/actions/0/save/customer.country"]
    );
    assert_eq!(
        paths(hook(json!({"customer.custom.country": "/id"}))),
        ["/actions/0/save/customer.custom.country"]
    );
    assert_eq!(
        paths(hook(json!({"customer.custom.nope": "/id"}))),
        ["/actions/0/save/customer.custom.nope"]
    );
    assert_eq!(
        paths(hook(json!({"customer.custom.account_ref": "id"}))),
        ["/actions/0/save/customer.custom.account_ref"]
    );
    assert_eq!(
        paths(json!({"type": "add_note", "params": {"body": "x"}, "save": {"customer.custom.account_ref": "/id"}})),
        ["/actions/0/save"]
    );
    t.finish().await;
}

/// An `exit_when` event cancels a run waiting for an event: its wait goes with it, so the
/// awaited event that comes later ends nothing and its timeout finds nothing either.
#[actix_rt::test]
async fn exit_when_cancels_a_waiting_run_and_its_wait() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let mut journey = first_deposit();
    journey["exit_when"] = json!([{"trigger_event": "customer.closed"}]);
    let id = add_workflow(db, journey).await;
    send(&runner, fence, db, event("r1", "customer.registered", 1, json!({}))).await;
    send(&runner, fence, db, event("x1", "customer.closed", 1, json!({}))).await;
    assert_eq!(run_of(db, 1, &id).await.run.status, status::CANCELLED);
    assert_eq!(waits(db).await, 0, "the cancelled run's wait went with it");
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5})),
    )
    .await;
    clock.advance(Duration::from_secs(4 * 86_400));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    assert!(note_bodies(db, 1).await.is_empty());
    assert_eq!(run_of(db, 1, &id).await.run.status, status::CANCELLED);
    t.finish().await;
}

/// A producer that starts runs without end for one customer fills that customer's
/// allowance of waits (`engine.max_waits_per_customer`), not the table: the run past it
/// fails its wait with the reason, and the customer's next event still ends the waits
/// there are. Every event of theirs reads at most that many rows.
#[actix_rt::test]
async fn a_customer_has_at_most_max_waits_runs_waiting() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let ownership = Ownership::default();
    let fence = ownership::acquire(db, 0, "node-a", clock.now()).await.unwrap();
    ownership.grant(fence);
    let runner = Runner {
        max_waits_per_customer: 2,
        ..harness::runner(db, "node-a", &clock, &ownership, &Sent::default())
    };
    common::add_customers(db, 1..=2).await;
    let id = add_workflow(db, first_deposit()).await;
    for (n, customer) in [(1, 1), (2, 1), (3, 1), (4, 2)] {
        send(
            &runner,
            fence,
            db,
            event(&format!("r{n}"), "customer.registered", customer, json!({})),
        )
        .await;
    }
    let runs = runs_of_customer(db, 1).await;
    let statuses: Vec<&str> = runs.iter().map(|r| r.run.status.as_str()).collect();
    assert_eq!(statuses, [status::WAITING, status::WAITING, status::FAILED], "{runs:?}");
    let error = runs[2].steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("max_waits_per_customer"), "{error}");
    assert_eq!(
        run_of(db, 2, &id).await.run.status,
        status::WAITING,
        "another customer's allowance is their own"
    );
    assert_eq!(waits(db).await, 3);

    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 5})),
    )
    .await;
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 2);
    assert_eq!(note_bodies(db, 1).await, ["thanks", "after", "thanks", "after"]);
    assert_eq!(waits(db).await, 1);
    t.finish().await;
}
