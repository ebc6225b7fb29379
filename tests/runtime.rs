//! The actor runtime end to end, in-process: events produced to the embedded broker (a
//! mock cluster the test holds), the engine's topology consuming them, SQLite (or
//! PostgreSQL when WFE_TEST_DATABASE_URL is set), and a local HTTP listener standing in
//! for the email service, the SMS provider and webhook targets. The proofs of issue 4.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;

use chrono::{DateTime, Utc};
use engine::{
    all_ended, customer, note_bodies, runs_of_customer, runs_of_event, runs_where, status_name, tasks_of, Engine,
    PATIENCE,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use std::collections::HashMap;
use workflow_engine::metrics::Metrics;
use workflow_engine::outbound::signing::verify;
use workflow_engine::storage::entities::{outbox, runs as run_rows};
use workflow_engine::storage::runs::{status, step_status, Run, RunFilter};
use workflow_engine::storage::steps::idempotency_key;

fn envelope(id: &str, event_type: &str, customer_id: i64, data: Value) -> Value {
    json!({"id": id, "type": event_type, "customer_id": customer_id, "data": data})
}

/// A workflow on `trigger` whose only step writes `body` as a note.
fn note_workflow(id: &str, trigger: &str, body: &str, priority: i32) -> Value {
    json!({"id": id, "name": format!("note {id}"), "trigger_event": trigger,
           "actions": [{"type": "add_note", "params": {"body": body}}], "priority": priority})
}

/// The run of `workflow_id` among `runs`.
fn run_of<'a>(runs: &'a [Run], workflow_id: &str) -> &'a Run {
    runs.iter()
        .find(|r| r.run.workflow_id == workflow_id)
        .unwrap_or_else(|| panic!("no run of {workflow_id}"))
}

fn assert_done(run: &Run) {
    assert_eq!(
        run.run.status,
        status::DONE,
        "run {} of {} ended {} ({:?})",
        run.run.id,
        run.run.workflow_id,
        run.run.status,
        run.run.error
    );
    for step in &run.steps {
        assert_eq!(step.status, step_status::DONE, "step {step:?}");
    }
}

/// Lines of the metrics text naming `metric` and containing every one of `labels`.
fn metric_lines(text: &str, metric: &str, labels: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && labels.iter().all(|x| l.contains(x)))
        .map(str::to_owned)
        .collect()
}

/// `due_at` is `due_in` after the task's creation, which happened while the test ran.
fn assert_due(
    task: &workflow_engine::storage::entities::tasks::Model,
    due_in: chrono::Duration,
    window: (DateTime<Utc>, DateTime<Utc>),
) {
    let slack = chrono::Duration::seconds(1);
    assert!(
        task.created_at >= window.0 - slack && task.created_at <= window.1 + slack,
        "task {} created at {} outside the test's window {window:?}",
        task.title,
        task.created_at
    );
    let off = (task.due_at - task.created_at - due_in).num_milliseconds().abs();
    assert!(
        off <= 1,
        "task {} due at {} not {due_in} after {}",
        task.title,
        task.due_at,
        task.created_at
    );
}

#[actix_rt::test]
async fn the_seeds_three_use_cases_run_end_to_end_through_kafka() {
    let mut engine = Engine::new(|_| {}).await;
    engine.seed_demo().await;
    engine
        .add_workflow(json!({
            "id": "test-follow-up", "name": "Deposit follow-up after a pause",
            "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000}]},
            "actions": [
                {"type": "delay", "params": {"minutes": 5}},
                {"type": "add_note", "params": {"body": "Follow-up: {{event.amount}} {{event.currency}}"}}
            ],
            "priority": 50
        }))
        .await;
    engine.start().await;
    let started = Utc::now();

    let events = [
        // Churning customer rescue: Ana's retention status turned churning.
        envelope(
            "uc-1",
            "customer.retention_changed",
            1,
            json!({"status_type": "retention", "old_status": "active", "new_status": "churning"}),
        ),
        // New depositor onboarding: Bruno (BR) deposits 1,500.
        envelope(
            "uc-2",
            "customer.deposited",
            2,
            json!({"amount": 1500, "currency": "USD", "transaction": {"type": "deposit"}}),
        ),
        // High-value deposit alert: Ana (BR, churning) deposits 12,000.
        envelope(
            "uc-3",
            "customer.deposited",
            1,
            json!({"amount": 12000, "currency": "USD", "transaction": {"type": "deposit"}}),
        ),
    ];
    for event in &events {
        engine.publish(event).await;
    }

    let db = engine.db().clone();
    let ids = ["uc-1", "uc-2", "uc-3"];
    // uc-1: churning rescue; uc-2: onboarding + follow-up; uc-3: high-value, the example,
    // onboarding, follow-up (the follow-ups after their delay).
    let runs: Vec<Run> = eventually!("the seven runs of the three events to end", PATIENCE, {
        let runs: Vec<Run> = runs_where(&db, RunFilter::default())
            .await
            .into_iter()
            .filter(|r| ids.contains(&r.run.event_id.as_str()))
            .collect();
        (runs.len() == 7 && all_ended(&runs)).then_some(runs)
    });
    let finished = Utc::now();
    let of_event = |id: &str| -> Vec<Run> { runs.iter().filter(|r| r.run.event_id == id).cloned().collect() };
    let workflow_ids = |runs: &[Run]| -> Vec<String> { runs.iter().map(|r| r.run.workflow_id.clone()).collect() };
    for run in &runs {
        assert_done(run);
    }
    let (uc1, uc2, uc3) = (of_event("uc-1"), of_event("uc-2"), of_event("uc-3"));
    // Recorded in priority order (lower first).
    assert_eq!(workflow_ids(&uc1), ["seed-churning"]);
    assert_eq!(workflow_ids(&uc2), ["seed-onboarding", "test-follow-up"]);
    assert_eq!(
        workflow_ids(&uc3),
        ["seed-high-value", "seed-example", "seed-onboarding", "test-follow-up"]
    );

    // CRM rows. Ana: handed to retention twice (round-robin over the retention desk: Rita,
    // then Omar), then assigned to agent 4 by onboarding; VIP in sales.
    let ana = customer(&db, 1).await;
    assert_eq!(
        (ana.agent_id, ana.team_id, ana.desk.as_str()),
        (Some(4), Some(3), "retention")
    );
    assert_eq!(status_name(&db, 1, "sales").await.as_deref(), Some("vip"));
    assert_eq!(status_name(&db, 1, "retention").await.as_deref(), Some("churning"));
    let bruno = customer(&db, 2).await;
    assert_eq!(
        (bruno.agent_id, bruno.team_id, bruno.desk.as_str()),
        (Some(4), Some(3), "retention")
    );
    assert_eq!(status_name(&db, 2, "sales").await.as_deref(), Some("new"));
    assert_eq!(
        note_bodies(&db, 1).await,
        [
            "Auto: churning rescue initiated",
            "Handed over to retention: Rita Retention",
            "Handed over to retention: Omar Retention",
            "Auto-assigned",
            "Follow-up: 12000 USD",
        ]
    );
    assert_eq!(note_bodies(&db, 2).await, ["Follow-up: 1500 USD"]);
    let window = (started, finished);
    let ana_tasks = tasks_of(&db, 1).await;
    assert_eq!(ana_tasks.len(), 2, "{ana_tasks:?}");
    assert_eq!(ana_tasks[0].title, "Call Ana: churning");
    assert_eq!(ana_tasks[0].task_type.as_deref(), Some("call"));
    assert_eq!(ana_tasks[0].assignee_id, Some(1), "created before any reassignment");
    assert_due(&ana_tasks[0], chrono::Duration::days(1), window);
    assert_eq!(ana_tasks[1].title, "Follow up with Ana after first deposit");
    assert_eq!(ana_tasks[1].task_type.as_deref(), Some("follow_up"));
    assert_eq!(ana_tasks[1].assignee_id, Some(4), "created after assign_to_agent 4");
    assert_due(&ana_tasks[1], chrono::Duration::days(2), window);
    let bruno_tasks = tasks_of(&db, 2).await;
    assert_eq!(bruno_tasks.len(), 1, "{bruno_tasks:?}");
    assert_eq!(bruno_tasks[0].title, "Follow up with Bruno after first deposit");
    assert_eq!(bruno_tasks[0].assignee_id, Some(4));
    assert_due(&bruno_tasks[0], chrono::Duration::days(2), window);

    // External requests: bodies and idempotency keys (run id + step index).
    let listener = &engine.listener;
    let key = |run: &Run, step: i32| Some(idempotency_key(run.run.id, step));
    let sms = listener.received("/sms");
    assert_eq!(sms.len(), 1, "{sms:?}");
    let churning = run_of(&uc1, "seed-churning");
    assert_eq!(sms[0].idempotency_key, key(churning, 0));
    assert_eq!(
        sms[0].body["text"],
        "Ana, we miss you. Your account manager will call you."
    );
    assert_eq!(sms[0].body["to"], "+15550000001");
    assert_eq!(sms[0].body["template"], "win_back");
    assert_eq!(sms[0].body["provider"], "demo-sms");
    assert_eq!(sms[0].body["customer_id"], 1);

    let slack = listener.received("/slack");
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert_eq!(slack[0].idempotency_key, key(run_of(&uc3, "seed-high-value"), 0));
    assert_eq!(
        slack[0].body,
        json!({"text": "High-value deposit: 12000 USD from customer 1"})
    );
    assert_eq!(slack[0].signature, None, "no secret configured");

    let emails = listener.received("/email");
    assert_eq!(emails.len(), 3, "{emails:?}");
    let email_with_key = |k: Option<String>| -> Value {
        let found: Vec<_> = emails.iter().filter(|e| e.idempotency_key == k).collect();
        assert_eq!(found.len(), 1, "one email with key {k:?}: {emails:?}");
        found[0].body.clone()
    };
    let welcome_back = email_with_key(key(run_of(&uc3, "seed-example"), 1));
    assert_eq!(welcome_back["subject"], "Welcome back!");
    assert_eq!(welcome_back["to"], "ana.souza@example.com");
    assert_eq!(welcome_back["event_id"], "uc-3");
    let ana_welcome = email_with_key(key(run_of(&uc3, "seed-onboarding"), 1));
    assert_eq!(ana_welcome["subject"], "Bem-vindo, Ana!");
    assert_eq!(ana_welcome["template"], "welcome_br");
    let bruno_welcome = email_with_key(key(run_of(&uc2, "seed-onboarding"), 1));
    assert_eq!(bruno_welcome["subject"], "Bem-vindo, Bruno!");
    assert_eq!(bruno_welcome["to"], "bruno.lima@example.com");
    assert_eq!(bruno_welcome["language"], "pt");
    assert!(listener.all().iter().all(|r| r.status == 200));

    // The delayed chains were parked (the delay step recorded) and resumed.
    for run in [run_of(&uc2, "test-follow-up"), run_of(&uc3, "test-follow-up")] {
        assert_eq!(run.steps[0].action_type, "delay");
        assert_eq!(run.steps[0].status, step_status::DONE);
        assert_eq!(run.run.next_step, 2);
    }

    // Metrics: events by outcome, and every actor's mailbox.
    let text = Metrics::global().render();
    assert!(
        !metric_lines(
            &text,
            "wfe_events_total",
            &["outcome=\"matched\"", "trigger=\"customer.deposited\""]
        )
        .is_empty(),
        "{text}"
    );
    assert!(text.contains("wfe_mailbox_depth{actor=\"executor\"}"), "{text}");
    assert!(text.contains("wfe_mailbox_capacity{actor=\"matcher\"}"), "{text}");
    engine.finish().await;
}

#[actix_rt::test]
async fn each_customers_events_apply_in_order_under_load() {
    const CUSTOMERS: i64 = 20;
    const EVENTS: i64 = 15;
    let mut engine = Engine::new(|_| {}).await;
    let customers: Vec<i64> = (2001..2001 + CUSTOMERS).collect();
    engine.add_customers(customers.clone()).await;
    // Two workflows per event: order must hold across workflows too.
    engine
        .add_workflow(note_workflow("order-a", "test.sequenced", "a {{event.seq}}", 1))
        .await;
    engine
        .add_workflow(note_workflow("order-b", "test.sequenced", "b {{event.seq}}", 2))
        .await;
    engine.start().await;

    // Interleaved: every customer's event 0, then every customer's event 1, ...
    let events: Vec<Value> = (0..EVENTS)
        .flat_map(|seq| {
            customers
                .iter()
                .map(move |&c| envelope(&format!("seq-{c}-{seq}"), "test.sequenced", c, json!({"seq": seq})))
        })
        .collect();
    engine.publish_all(&events).await;

    let db = engine.db().clone();
    let expected_runs = (CUSTOMERS * EVENTS * 2) as u64;
    eventually!("every run to be done", PATIENCE, {
        let done = run_rows::Entity::find()
            .filter(run_rows::Column::Status.eq(status::DONE))
            .count(db.connection())
            .await
            .unwrap();
        (done >= expected_runs).then_some(())
    });
    let all = runs_where(&db, RunFilter::default()).await;
    assert_eq!(all.len() as u64, expected_runs, "one run per event and workflow");
    for run in &all {
        assert_done(run);
    }
    for &c in &customers {
        let expected: Vec<String> = (0..EVENTS)
            .flat_map(|seq| [format!("a {seq}"), format!("b {seq}")])
            .collect();
        assert_eq!(note_bodies(&db, c).await, expected, "customer {c}'s notes");
        // Runs were recorded in event order as well.
        let recorded: Vec<String> = runs_of_customer(&db, c)
            .await
            .iter()
            .map(|r| format!("{} {}", r.run.event_id, r.run.workflow_id))
            .collect();
        let expected: Vec<String> = (0..EVENTS)
            .flat_map(|seq| [format!("seq-{c}-{seq} order-a"), format!("seq-{c}-{seq} order-b")])
            .collect();
        assert_eq!(recorded, expected, "customer {c}'s runs");
    }
    engine.finish().await;
}

#[actix_rt::test]
async fn a_redelivered_event_changes_nothing() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([3001]).await;
    engine
        .add_workflow(json!({
            "id": "redelivered", "name": "Three effects", "trigger_event": "test.redelivered",
            "actions": [
                {"type": "add_note", "params": {"body": "noted {{event.n}}"}},
                {"type": "create_task", "params": {"title": "call {{customer.first_name}}", "due_in": {"hours": 1}}},
                {"type": "send_email", "params": {"subject": "Hello {{customer.first_name}}"}}
            ],
            "priority": 1
        }))
        .await;
    engine
        .add_workflow(note_workflow("redelivered-too", "test.redelivered", "second", 2))
        .await;
    engine
        .add_workflow(note_workflow("sentinel", "test.sentinel", "sentinel {{event.n}}", 1))
        .await;
    engine.start().await;

    let event = envelope("dup-1", "test.redelivered", 3001, json!({"n": 1}));
    // The same bytes twice, back to back, then a sentinel of the same customer: once the
    // sentinel ran, both copies were handled (one customer's events run in order).
    engine.publish(&event).await;
    engine.publish(&event).await;
    engine
        .publish(&envelope("sentinel-1", "test.sentinel", 3001, json!({"n": 1})))
        .await;
    let db = engine.db().clone();
    let sentinel_done = |runs: Vec<Run>| (runs.len() == 1 && all_ended(&runs)).then_some(());
    eventually!(
        "the first sentinel",
        PATIENCE,
        sentinel_done(runs_of_event(&db, "sentinel-1").await)
    );
    // Again, long after the first copy finished.
    engine.publish(&event).await;
    engine
        .publish(&envelope("sentinel-2", "test.sentinel", 3001, json!({"n": 2})))
        .await;
    eventually!(
        "the second sentinel",
        PATIENCE,
        sentinel_done(runs_of_event(&db, "sentinel-2").await)
    );

    let runs = runs_of_event(&db, "dup-1").await;
    assert_eq!(runs.len(), 2, "one run per workflow: {runs:?}");
    for run in &runs {
        assert_done(run);
    }
    assert_eq!(
        note_bodies(&db, 3001).await,
        ["noted 1", "second", "sentinel 1", "sentinel 2"]
    );
    assert_eq!(tasks_of(&db, 3001).await.len(), 1);
    let run = run_of(&runs, "redelivered");
    let key = idempotency_key(run.run.id, 2);
    let emails = engine.listener.received("/email");
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert_eq!(emails[0].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(emails[0].body["subject"], "Hello First3001");
    let queued = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(key.as_str()))
        .all(db.connection())
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].status.as_str(), queued[0].attempts), ("delivered", 1));
    engine.finish().await;
}

/// A redelivery is not planned again: after a workflow that also matches the event was
/// added, the same event starts nothing new (its recorded plan is replayed).
#[actix_rt::test]
async fn a_redelivered_event_after_a_workflow_changed_starts_nothing_new() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([3101]).await;
    engine
        .add_workflow(
            json!({"id": "big", "name": "Big", "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 100}]},
            "actions": [{"type": "add_note", "params": {"body": "big {{event.amount}}"}}]}),
        )
        .await;
    engine
        .add_workflow(note_workflow("sentinel", "test.sentinel", "sentinel {{event.n}}", 1))
        .await;
    engine.start().await;
    let db = engine.db().clone();
    let first = envelope("redo-1", "customer.deposited", 3101, json!({"amount": 500}));
    engine.publish(&first).await;
    eventually!("the first run", PATIENCE, {
        let runs = runs_of_event(&db, "redo-1").await;
        (runs.len() == 1 && all_ended(&runs)).then_some(())
    });

    // A workflow every deposit matches; a small deposit shows when the engine has it.
    engine
        .add_workflow(
            json!({"id": "any", "name": "Any", "trigger_event": "customer.deposited",
            "actions": [{"type": "add_note", "params": {"body": "any {{event.amount}}"}}], "priority": 200}),
        )
        .await;
    let mut n = 0;
    eventually!("the new workflow to be live", PATIENCE, {
        n += 1;
        let id = format!("probe-{n}");
        engine
            .publish(&envelope(&id, "customer.deposited", 3101, json!({"amount": n})))
            .await;
        actix_rt::time::sleep(std::time::Duration::from_millis(200)).await;
        let notes = note_bodies(&db, 3101).await;
        notes.iter().any(|n| n.starts_with("any ")).then_some(())
    });

    // The first event again, then a sentinel of the same customer: once it ran, the
    // redelivery was handled.
    engine.publish(&first).await;
    engine
        .publish(&envelope("redo-sentinel", "test.sentinel", 3101, json!({"n": 1})))
        .await;
    eventually!("the sentinel", PATIENCE, {
        let runs = runs_of_event(&db, "redo-sentinel").await;
        (runs.len() == 1 && all_ended(&runs)).then_some(())
    });
    let runs = runs_of_event(&db, "redo-1").await;
    assert_eq!(
        runs.iter().map(|r| r.run.workflow_id.as_str()).collect::<Vec<_>>(),
        ["big"],
        "the redelivery was planned again"
    );
    let notes = note_bodies(&db, 3101).await;
    assert_eq!(notes.iter().filter(|n| n.ends_with(" 500")).count(), 1, "{notes:?}");
    engine.finish().await;
}

#[actix_rt::test]
async fn a_restart_in_the_middle_of_a_chain_completes_it_exactly_once() {
    let mut engine = Engine::new(|s| {
        // Long enough that the chain is still parked when the first engine has stopped.
        s.scheduler.delay_override_secs = 3;
        // No polling to fall back on: the restarted engine must look at its partitions'
        // delays when it is assigned them.
        s.scheduler.poll_interval_secs = 3600;
    })
    .await;
    engine.add_customers([4001]).await;
    engine
        .add_workflow(json!({
            "id": "chain", "name": "Note, wait, note", "trigger_event": "test.chain",
            "actions": [
                {"type": "add_note", "params": {"body": "before {{event.n}}"}},
                {"type": "delay", "params": {"minutes": 5}},
                {"type": "add_note", "params": {"body": "after {{event.n}}"}}
            ]
        }))
        .await;
    engine
        .add_workflow(note_workflow("sentinel", "test.sentinel", "sentinel", 1))
        .await;
    engine.start().await;
    engine
        .publish(&envelope("chain-1", "test.chain", 4001, json!({"n": 1})))
        .await;
    let db = engine.db().clone();
    let waiting = eventually!("the run to wait on its delay", PATIENCE, {
        let runs = runs_of_event(&db, "chain-1").await;
        runs.into_iter().find(|r| r.run.status == status::WAITING)
    });
    assert_eq!(note_bodies(&db, 4001).await, ["before 1"]);

    engine.stop().await;
    let parked = runs_of_event(&db, "chain-1").await;
    assert_eq!(
        parked[0].run.status,
        status::WAITING,
        "the stopped engine must not resume the chain (precondition of this test)"
    );
    assert_eq!(note_bodies(&db, 4001).await, ["before 1"]);

    engine.start().await;
    let run = eventually!("the chain to finish after the restart", PATIENCE, {
        let runs = runs_of_event(&db, "chain-1").await;
        (runs.len() == 1 && all_ended(&runs)).then(|| runs[0].clone())
    });
    assert_eq!(run.run.id, waiting.run.id);
    assert_done(&run);
    // A later event of the same customer: anything replayed before it has run by now.
    engine
        .publish(&envelope("chain-sentinel", "test.sentinel", 4001, json!({})))
        .await;
    eventually!("the sentinel", PATIENCE, {
        let runs = runs_of_event(&db, "chain-sentinel").await;
        (runs.len() == 1 && all_ended(&runs)).then_some(())
    });
    assert_eq!(note_bodies(&db, 4001).await, ["before 1", "after 1", "sentinel"]);
    assert_eq!(runs_of_customer(&db, 4001).await.len(), 2);
    engine.finish().await;
}

/// A run whose second internal step cannot apply: the first step's effect is kept once,
/// the run fails at the second step with the reason, the third never runs, and the next
/// workflow of the event still runs. (The first steps of an event commit together with
/// its runs; a failure there must roll back and leave the step-by-step record.)
#[actix_rt::test]
async fn a_failing_internal_step_fails_its_run_and_keeps_what_came_before() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([4101]).await;
    engine
        .add_workflow(json!({
            "id": "breaks", "name": "Note, then a team that does not exist", "trigger_event": "test.breaks",
            "actions": [
                {"type": "add_note", "params": {"body": "before"}},
                {"type": "assign_to_team", "params": {"team_id": 999}},
                {"type": "add_note", "params": {"body": "never"}}
            ],
            "priority": 1
        }))
        .await;
    engine
        .add_workflow(note_workflow("after-it", "test.breaks", "next workflow", 2))
        .await;
    engine.start().await;
    engine
        .publish(&envelope("breaks-1", "test.breaks", 4101, json!({})))
        .await;

    let db = engine.db().clone();
    let runs = eventually!("both runs ended", PATIENCE, {
        let runs = runs_of_event(&db, "breaks-1").await;
        (runs.len() == 2 && all_ended(&runs)).then_some(runs)
    });
    let broken = run_of(&runs, "breaks");
    assert_eq!(broken.run.status, status::FAILED, "{broken:?}");
    assert!(
        broken.run.error.as_deref().is_some_and(|e| e.contains("no team 999")),
        "{broken:?}"
    );
    let statuses: Vec<&str> = broken.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, [step_status::DONE, step_status::FAILED, step_status::PENDING]);
    assert_done(run_of(&runs, "after-it"));
    assert_eq!(note_bodies(&db, 4101).await, ["before", "next workflow"]);
    engine.finish().await;
}

#[actix_rt::test]
async fn malformed_events_are_dead_lettered_and_the_rest_processed() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([5001]).await;
    engine
        .add_workflow(note_workflow("noted", "test.note", "good {{event.n}}", 1))
        .await;
    engine.start().await;
    let missing_customer = json!({"id": "no-customer", "type": "test.note", "data": {"n": 99}}).to_string();
    // Each is refused with its own reason; none stops the partition.
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "invalid json"),
        (missing_customer.into_bytes(), "customer_id"),
        (
            br#"{"id": "wrong-type", "type": "test.note", "customer_id": "abc"}"#.to_vec(),
            "customer_id",
        ),
        (
            br#"{"id": "out-of-range", "type": "test.note", "customer_id": 1e30}"#.to_vec(),
            "customer_id",
        ),
        (
            format!(
                r#"{{"id": "nested", "type": "test.note", "customer_id": 5001, "data": {{"n": {}1{}}}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )
            .into_bytes(),
            "recursion limit",
        ),
    ];
    // A big but valid event (about 800 KB of data) is processed like any other.
    let filler = "x".repeat(800_000);
    // One key, so one partition, in this order.
    engine
        .publish(&envelope("good-1", "test.note", 5001, json!({"n": 1})))
        .await;
    for (payload, _) in &bad {
        engine.publish_raw("5001", payload).await;
    }
    engine
        .publish(&envelope(
            "good-2",
            "test.note",
            5001,
            json!({"n": 2, "filler": filler}),
        ))
        .await;

    let db = engine.db().clone();
    eventually!("both good events", PATIENCE, {
        let runs = runs_of_customer(&db, 5001).await;
        (runs.len() == 2 && all_ended(&runs)).then_some(())
    });
    for run in runs_of_customer(&db, 5001).await {
        assert_done(&run);
    }
    assert_eq!(note_bodies(&db, 5001).await, ["good 1", "good 2"]);

    // The dead-letter topic has both, with their original bytes and the reason.
    let dlq = &engine.settings.kafka.dead_letter_topic;
    let reader: StreamConsumer = engine
        .client_config()
        .set("group.id", format!("{dlq}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..engine::PARTITIONS {
        assignment.add_partition_offset(dlq, p, Offset::Beginning).unwrap();
    }
    reader.assign(&assignment).unwrap();
    let mut dead = Vec::new();
    while dead.len() < bad.len() {
        let message = tokio::time::timeout(PATIENCE, reader.recv())
            .await
            .expect("dead letters on the topic")
            .unwrap();
        let headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        dead.push((
            message.payload().unwrap_or_default().to_vec(),
            message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            headers,
        ));
    }
    // Same key, so same dead-letter partition, in the order they were read: the original
    // bytes, and the reason in a header.
    for ((payload, reason), (dead_payload, key, headers)) in bad.iter().zip(&dead) {
        assert!(dead_payload == payload, "{reason}: the original bytes");
        assert_eq!(key.as_deref(), Some("5001"));
        assert_eq!(headers.get("wfe-source-topic"), Some(&engine.settings.kafka.topic));
        assert_eq!(
            headers.get("wfe-source-partition"),
            dead[0].2.get("wfe-source-partition")
        );
        let error = headers.get("wfe-error").cloned().unwrap_or_default();
        assert!(error.contains(reason), "wanted {reason:?} in {error:?}");
    }
    let offsets: Vec<i64> = dead.iter().map(|d| d.2["wfe-source-offset"].parse().unwrap()).collect();
    let consecutive: Vec<i64> = (offsets[0]..offsets[0] + bad.len() as i64).collect();
    assert_eq!(offsets, consecutive, "consecutive in the source partition");
    let text = Metrics::global().render();
    assert!(
        !metric_lines(&text, "wfe_events_total", &["outcome=\"dead_lettered\""]).is_empty(),
        "{text}"
    );
    engine.finish().await;
}

/// The first `n` messages of the dead-letter topic: payload, key and headers.
async fn dead_letters(engine: &Engine, n: usize) -> Vec<(Value, HashMap<String, String>)> {
    let dlq = &engine.settings.kafka.dead_letter_topic;
    let reader: StreamConsumer = engine
        .client_config()
        .set("group.id", format!("{dlq}-identity-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..engine::PARTITIONS {
        assignment.add_partition_offset(dlq, p, Offset::Beginning).unwrap();
    }
    reader.assign(&assignment).unwrap();
    let mut dead = Vec::new();
    while dead.len() < n {
        let message = tokio::time::timeout(PATIENCE, reader.recv())
            .await
            .expect("dead letters on the topic")
            .unwrap();
        let headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let payload = serde_json::from_slice(message.payload().unwrap_or_default()).unwrap_or(Value::Null);
        dead.push((payload, headers));
    }
    dead
}

/// Security issue 22: an event id is not an identity on its own. An event reusing the id
/// of another customer's event (or of an event of another type) is not a redelivery: it
/// starts nothing, replays nothing, reaches no receiver, and goes to the dead-letter
/// topic with the reason; a true redelivery (the same envelope again) still replays.
#[actix_rt::test]
async fn an_event_reusing_another_events_id_is_dead_lettered_never_run() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([7101, 7102]).await;
    let hook = engine.listener.url("/identity");
    engine
        .add_workflow(json!({
            "id": "identity-hook", "name": "Tell the outside", "trigger_event": "test.identity",
            "actions": [
                {"type": "add_note", "params": {"body": "noted {{event.n}}"}},
                {"type": "webhook", "params": {"url": hook,
                    "body": {"customer": "{{customer.id}}", "n": "{{event.n}}"}}}
            ]
        }))
        .await;
    engine
        .add_workflow(note_workflow(
            "identity-other",
            "test.identity_other",
            "other {{event.n}}",
            1,
        ))
        .await;
    engine
        .add_workflow(note_workflow("sentinel", "test.sentinel", "sentinel {{event.n}}", 1))
        .await;
    engine.start().await;
    let db = engine.db().clone();

    let first = envelope("shared-1", "test.identity", 7101, json!({"n": 1}));
    engine.publish(&first).await;
    eventually!("customer A's run", PATIENCE, {
        let runs = runs_of_event(&db, "shared-1").await;
        (runs.len() == 1 && all_ended(&runs)).then_some(())
    });
    assert_eq!(engine.listener.received("/identity").len(), 1);

    // The same id from customer B, the same id and customer with another type, the same
    // id and customer and type with other data; then A's true redelivery.
    engine
        .publish(&envelope("shared-1", "test.identity", 7102, json!({"n": 2})))
        .await;
    engine
        .publish(&envelope("shared-1", "test.identity_other", 7101, json!({"n": 3})))
        .await;
    engine
        .publish(&envelope("shared-1", "test.identity", 7101, json!({"n": 4})))
        .await;
    engine.publish(&first).await;
    for (id, customer) in [("sentinel-a", 7101), ("sentinel-b", 7102)] {
        engine
            .publish(&envelope(id, "test.sentinel", customer, json!({"n": customer})))
            .await;
    }
    for id in ["sentinel-a", "sentinel-b"] {
        eventually!("the sentinel", PATIENCE, {
            let runs = runs_of_event(&db, id).await;
            (runs.len() == 1 && all_ended(&runs)).then_some(())
        });
    }

    // B got no run, nothing of A's run was replayed for B, no receiver heard of B.
    let runs = runs_of_event(&db, "shared-1").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].run.customer_id, 7101);
    assert_done(&runs[0]);
    assert_eq!(note_bodies(&db, 7101).await, ["noted 1", "sentinel 7101"]);
    assert_eq!(note_bodies(&db, 7102).await, ["sentinel 7102"]);
    let received = engine.listener.received("/identity");
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].body["customer"], "7101");

    // The three impostors are dead-lettered with the reason; the redelivery is not.
    let dead = dead_letters(&engine, 3).await;
    let mut reasons: Vec<(i64, String, String)> = dead
        .iter()
        .map(|(payload, headers)| {
            assert_eq!(payload["id"], "shared-1");
            (
                payload["data"]["n"].as_i64().unwrap_or_default(),
                payload["type"].as_str().unwrap_or_default().to_owned(),
                headers.get("wfe-error").cloned().unwrap_or_default(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons[0].0 == 2 && reasons[0].2.contains("customer differs"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == 3 && reasons[1].2.contains("type differs"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].0 == 4 && reasons[2].2.contains("content differs"),
        "{reasons:?}"
    );
    for (_, _, reason) in &reasons {
        assert!(reason.contains("shared-1"), "{reason}");
    }
    // The reason tells B's producer nothing of A.
    assert!(!reasons[0].2.contains("7101"), "{reasons:?}");
    let text = Metrics::global().render();
    let refused: u64 = metric_lines(&text, "wfe_events_total", &["outcome=\"refused\""])
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(refused, 3, "{text}");
    engine.finish().await;
}

#[actix_rt::test]
async fn a_failing_webhook_is_retried_and_delivered_once_without_holding_up_others() {
    const SECRET: &str = "test-secret";
    let mut engine = Engine::new(|s| {
        // Retries spaced widely enough that the other customer's work visibly finishes
        // while this one still waits.
        s.delivery.backoff_initial_ms = 2000;
        s.delivery.backoff_max_ms = 5000;
        s.delivery.max_attempts = 5;
        s.delivery.webhook_secret = SECRET.into();
    })
    .await;
    engine.add_customers([6001, 6002]).await;
    let hook = engine.listener.url("/hook");
    engine
        .add_workflow(json!({
            "id": "hook", "name": "Tell the outside", "trigger_event": "test.hook",
            "actions": [{"type": "webhook", "params": {"url": hook,
                "body": {"customer": "{{customer.id}}", "n": "{{event.n}}"}}}]
        }))
        .await;
    engine
        .add_workflow(note_workflow("other", "test.other", "other {{event.n}}", 1))
        .await;
    engine.listener.fail_first("/hook", 2);
    engine.start().await;

    engine
        .publish(&envelope("hook-1", "test.hook", 6001, json!({"n": 7})))
        .await;
    let listener = &engine.listener;
    eventually!("the first webhook attempt", PATIENCE, {
        (!listener.received("/hook").is_empty()).then_some(())
    });
    let others: Vec<Value> = (0..5)
        .map(|n| envelope(&format!("other-{n}"), "test.other", 6002, json!({"n": n})))
        .collect();
    engine.publish_all(&others).await;
    let db = engine.db().clone();
    eventually!("the other customer's runs", PATIENCE, {
        let runs = runs_of_customer(&db, 6002).await;
        (runs.len() == 5 && all_ended(&runs)).then_some(())
    });
    let hook_run = runs_of_event(&db, "hook-1").await;
    assert_ne!(
        hook_run[0].run.status,
        status::DONE,
        "the other customer finished while the webhook was still being retried"
    );
    assert!(listener.received("/hook").len() < 3);
    assert_eq!(
        note_bodies(&db, 6002).await,
        ["other 0", "other 1", "other 2", "other 3", "other 4"]
    );

    let run = eventually!("the webhook run to end", PATIENCE, {
        let runs = runs_of_event(&db, "hook-1").await;
        all_ended(&runs).then(|| runs[0].clone())
    });
    assert_done(&run);
    assert_eq!(run.steps[0].attempts, 3);
    let requests = listener.received("/hook");
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 200],
        "{requests:?}"
    );
    let key = idempotency_key(run.run.id, 0);
    for request in &requests {
        assert_eq!(request.idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(request.body, json!({"customer": "6001", "n": "7"}));
        // Standard Webhooks: the signature covers the id (the idempotency key), the
        // timestamp and the body.
        assert_eq!(request.webhook_id.as_deref(), Some(key.as_str()));
        let (id, at, signature) = (
            request.webhook_id.as_deref().unwrap(),
            request.webhook_timestamp.unwrap(),
            request.signature.as_deref().unwrap(),
        );
        assert!(verify(SECRET, id, at, request.raw.as_bytes(), signature), "{request:?}");
        assert!(!verify("another secret", id, at, request.raw.as_bytes(), signature));
    }
    let queued = outbox::Entity::find()
        .filter(outbox::Column::IdempotencyKey.eq(key.as_str()))
        .one(db.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((queued.status.as_str(), queued.attempts), ("delivered", 3));
    engine.finish().await;
}

#[actix_rt::test]
async fn priority_orders_matching_workflows_and_stop_after_skips_the_rest() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([7001]).await;
    let trigger = "test.ranked";
    engine.add_workflow(note_workflow("p30", trigger, "p30", 30)).await;
    engine.add_workflow(note_workflow("p10", trigger, "p10", 10)).await;
    engine
        .add_workflow(json!({
            "id": "p20-stop", "name": "stops the rest", "trigger_event": trigger,
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 100}]},
            "actions": [{"type": "add_note", "params": {"body": "p20-stop"}}],
            "priority": 20, "stop_after": true
        }))
        .await;
    engine.add_workflow(note_workflow("p40", trigger, "p40", 40)).await;
    engine
        .add_workflow(json!({
            "id": "p5-never", "name": "never matches", "trigger_event": trigger,
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000000}]},
            "actions": [{"type": "add_note", "params": {"body": "p5"}}],
            "priority": 5, "stop_after": true
        }))
        .await;
    engine.start().await;
    // The stopping workflow matches the first event and not the second.
    engine
        .publish(&envelope("ranked-1", trigger, 7001, json!({"amount": 500})))
        .await;
    engine
        .publish(&envelope("ranked-2", trigger, 7001, json!({"amount": 50})))
        .await;
    let db = engine.db().clone();
    let runs = eventually!("both events' runs", PATIENCE, {
        let runs = runs_of_customer(&db, 7001).await;
        (runs.len() == 5 && all_ended(&runs)).then_some(runs)
    });
    for run in &runs {
        assert_done(run);
    }
    let recorded: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r.run.event_id.clone(), r.run.workflow_id.clone()))
        .collect();
    let pairs = |event: &str, ids: &[&str]| -> Vec<(String, String)> {
        ids.iter().map(|w| (event.to_owned(), (*w).to_owned())).collect()
    };
    let mut expected = pairs("ranked-1", &["p10", "p20-stop"]);
    expected.extend(pairs("ranked-2", &["p10", "p30", "p40"]));
    assert_eq!(recorded, expected);
    assert_eq!(note_bodies(&db, 7001).await, ["p10", "p20-stop", "p10", "p30", "p40"]);
    engine.finish().await;
}

/// Issue 14: a run that failed on its webhook, retried once the receiver is fixed, goes on
/// from the failed step through the owner's scheduler: the note before it is not written
/// again, the delivery is made under the same idempotency key, and the chain finishes.
#[actix_rt::test]
async fn a_retried_run_goes_on_from_its_failed_step_without_repeating_what_was_done() {
    use workflow_engine::storage::recovery;
    let mut engine = Engine::new(|s| {
        s.delivery.backoff_initial_ms = 50;
        s.delivery.backoff_max_ms = 100;
        s.delivery.max_attempts = 2;
    })
    .await;
    engine.add_customers([7101]).await;
    let hook = engine.listener.url("/flaky");
    engine
        .add_workflow(json!({
            "id": "flaky", "name": "Note, webhook, note", "trigger_event": "test.flaky",
            "actions": [
                {"type": "add_note", "params": {"body": "before"}},
                {"type": "webhook", "params": {"url": hook}},
                {"type": "add_note", "params": {"body": "after"}}
            ]
        }))
        .await;
    // Down for both attempts of the first run.
    engine.listener.fail_first("/flaky", 2);
    engine.start().await;
    engine
        .publish(&envelope("flaky-1", "test.flaky", 7101, json!({})))
        .await;
    let db = engine.db().clone();
    let failed = eventually!("the run to fail", PATIENCE, {
        let runs = runs_of_event(&db, "flaky-1").await;
        (!runs.is_empty() && all_ended(&runs)).then(|| runs[0].clone())
    });
    assert_eq!(failed.run.status, status::FAILED, "{failed:?}");
    let statuses: Vec<&str> = failed.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, [step_status::DONE, step_status::FAILED, step_status::PENDING]);
    assert_eq!(note_bodies(&db, 7101).await, ["before"]);

    // The receiver is back (fail_first is used up); the operator retries.
    recovery::retry(&db, failed.run.id, Utc::now()).await.unwrap();
    let run = eventually!("the retried run to finish", PATIENCE, {
        let runs = runs_of_event(&db, "flaky-1").await;
        runs.first().filter(|r| r.run.status == status::DONE).cloned()
    });
    assert_done(&run);
    assert_eq!(note_bodies(&db, 7101).await, ["before", "after"], "no step ran twice");
    let requests = engine.listener.received("/flaky");
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [503, 503, 200]);
    let key = idempotency_key(run.run.id, 1);
    assert!(
        requests
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some(key.as_str())),
        "{requests:?}"
    );
    assert_eq!(run.steps[1].attempts, 3, "attempts count on across the retry");
    engine.finish().await;
}

/// Issue 14: `"on_error": "continue"` records a failed delivery and goes on; the default
/// still fails the run.
#[actix_rt::test]
async fn on_error_continue_goes_past_a_failed_delivery() {
    let mut engine = Engine::new(|s| {
        s.delivery.backoff_initial_ms = 50;
        s.delivery.backoff_max_ms = 100;
        s.delivery.max_attempts = 2;
    })
    .await;
    engine.add_customers([7201]).await;
    let slack = engine.listener.url("/slack");
    engine
        .add_workflow(json!({
            "id": "handover", "name": "Tell Slack, then hand over", "trigger_event": "test.handover",
            "actions": [
                {"type": "webhook", "params": {"url": slack}, "on_error": "continue"},
                {"type": "add_note", "params": {"body": "handed over"}}
            ]
        }))
        .await;
    engine.listener.fail_first("/slack", 1000);
    engine.start().await;
    engine
        .publish(&envelope("handover-1", "test.handover", 7201, json!({})))
        .await;
    let db = engine.db().clone();
    let run = eventually!("the run to end", PATIENCE, {
        let runs = runs_of_event(&db, "handover-1").await;
        (!runs.is_empty() && all_ended(&runs)).then(|| runs[0].clone())
    });
    assert_eq!(run.run.status, status::DONE, "{run:?}");
    let statuses: Vec<&str> = run.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, [step_status::FAILED, step_status::DONE]);
    assert!(run.steps[0].error.is_some(), "{run:?}");
    assert_eq!(note_bodies(&db, 7201).await, ["handed over"]);
    engine.finish().await;
}

/// A traced producer's `traceparent` goes on with the work its event causes: to the
/// webhooks of the event's run and, through the status change that run emits, to the
/// webhooks of the run that event starts. An untraced event's requests carry none.
#[actix_rt::test]
async fn a_traceparent_reaches_webhooks_and_the_events_a_run_emits() {
    use workflow_engine::storage::statuses;
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let given = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([6101, 6102]).await;
    let sales = statuses::ensure_status_type(engine.db(), "sales").await.unwrap();
    statuses::ensure_status(engine.db(), sales, "contacted").await.unwrap();
    let (first, second) = (engine.listener.url("/first"), engine.listener.url("/second"));
    engine
        .add_workflow(json!({
            "id": "first", "name": "First hop", "trigger_event": "test.traced",
            "actions": [
                {"type": "webhook", "params": {"url": first, "body": {"customer": "{{customer.id}}"}}},
                {"type": "set_status", "params": {"type": "sales", "status": "contacted"}}
            ]
        }))
        .await;
    engine
        .add_workflow(json!({
            "id": "second", "name": "Second hop", "trigger_event": "customer.status_changed",
            "actions": [{"type": "webhook", "params": {"url": second, "body": {"customer": "{{customer.id}}"}}}]
        }))
        .await;
    engine.start().await;

    engine
        .publish_traced(&envelope("traced-1", "test.traced", 6101, json!({})), &given)
        .await;
    engine
        .publish(&envelope("untraced-1", "test.traced", 6102, json!({})))
        .await;
    let listener = &engine.listener;
    let requests = eventually!("both hops of both customers", PATIENCE, {
        let all = [listener.received("/first"), listener.received("/second")].concat();
        (all.len() == 4).then_some(all)
    });
    let of = |customer: &str| -> Vec<Option<String>> {
        requests
            .iter()
            .filter(|r| r.body["customer"] == customer)
            .map(|r| r.traceparent.clone())
            .collect()
    };
    let traced = of("6101");
    assert_eq!(traced.len(), 2, "{requests:?}");
    let mut parents = Vec::new();
    for traceparent in &traced {
        let traceparent = traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("a traced event's webhook carries traceparent: {requests:?}"));
        let fields: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(fields.len(), 4, "{traceparent}");
        assert_eq!((fields[0], fields[1], fields[3]), ("00", TRACE_ID, "01"));
        assert_ne!(fields[2], "00f067aa0ba902b7", "each hop has a parent id of its own");
        parents.push(fields[2].to_owned());
    }
    assert_ne!(parents[0], parents[1]);
    assert_eq!(of("6102"), [None, None]);
    engine.finish().await;
}

/// Issue 22, finding 8: an `events` token (or a producer on the topic) sends an event
/// whose `cause` names another customer's run, deep enough to be stopped. The engine only
/// trusts a cause its own outbox vouches for: the forged event starts nothing (its claimed
/// depth still counts, so a forged cause cannot reset the limit) and the named run's
/// `reason` and records are as they were.
#[actix_rt::test]
async fn a_forged_cause_from_the_api_does_not_touch_the_run_it_names() {
    let mut engine = Engine::new(|_| {}).await;
    engine.add_customers([7001, 7002]).await;
    engine
        .add_workflow(note_workflow("victim", "customer.deposited", "deposit seen", 1))
        .await;
    engine
        .add_workflow(note_workflow("on-status", "customer.status_changed", "status seen", 1))
        .await;
    engine
        .add_workflow(note_workflow("sentinel", "test.sentinel", "sentinel", 1))
        .await;
    engine.start().await;
    let db = engine.db().clone();
    engine
        .publish(&envelope("victim-event", "customer.deposited", 7001, json!({})))
        .await;
    let before = eventually!("the victim's run", PATIENCE, {
        let runs = runs_of_event(&db, "victim-event").await;
        (runs.len() == 1 && all_ended(&runs)).then(|| runs[0].clone())
    });
    assert_eq!(before.run.reason, None);

    let state = workflow_engine::api::AppState {
        db: db.clone(),
        limits: workflow_engine::conditions::Limits::default(),
        producer: engine.producer.clone(),
        topic: engine.topic().to_owned(),
        brokers: engine.brokers.clone(),
        embedded: false,
        node_id: "test".into(),
        matcher: None,
        readiness: Default::default(),
        webhook_allowlist: Vec::new(),
        heavy: workflow_engine::api::Heavy::new(&Default::default(), workflow_engine::clock::system()),
        changes: Default::default(),
    };
    let app = actix_web::test::init_service(
        actix_web::App::new().configure(|cfg| workflow_engine::api::configure(cfg, state, 1 << 20, None::<String>)),
    )
    .await;
    let forged = |id: &str, depth: u32| {
        json!({"id": id, "type": "customer.status_changed", "customer_id": 7002,
               "data": {"status_type": "sales", "new_status": "vip"},
               "cause": {"event_id": "victim-event", "workflow_id": "victim", "depth": depth}})
    };
    // Past the depth limit (the stop path notes the emitting run), then within it.
    for body in [forged("forged-deep", 99), forged("forged-shallow", 1)] {
        let request = actix_web::test::TestRequest::post()
            .uri("/api/v1/events")
            .set_json(&body)
            .to_request();
        let response = actix_web::test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), 202, "{body}");
    }
    // The same customer's events run in order: once the sentinel ran, both were handled.
    engine
        .publish(&envelope("sentinel-forged", "test.sentinel", 7002, json!({})))
        .await;
    eventually!("the sentinel", PATIENCE, {
        let runs = runs_of_event(&db, "sentinel-forged").await;
        (runs.len() == 1 && all_ended(&runs)).then_some(())
    });

    let after = runs_of_event(&db, "victim-event").await;
    assert_eq!(after, [before], "the named run is as it was");
    assert!(
        runs_of_event(&db, "forged-deep").await.is_empty(),
        "its claimed depth still stops it"
    );
    assert_eq!(note_bodies(&db, 7001).await, ["deposit seen"]);
    // Within the depth limit the forged event is an outside event of its own customer.
    assert_eq!(runs_of_event(&db, "forged-shallow").await.len(), 1);
    engine.finish().await;
}

/// Security issue 22, poison data: PostgreSQL refuses a string JSON allows (`\u0000` in a
/// `jsonb` or `text` value), and it would refuse it on every retry. Such an event must not
/// stall its customer or its partition, nor take the rest of its batch or of the archive's
/// batch with it: it goes to the dead-letter topic with the database's reason, and every
/// other event, before and after it, runs and is archived.
#[actix_rt::test]
#[cfg_attr(not(wfe_postgres), ignore = "needs PostgreSQL in WFE_TEST_DATABASE_URL")]
async fn an_event_the_database_refuses_is_dead_lettered_and_the_rest_go_on() {
    let mut engine = Engine::new(|s| {
        // One archive batch for all four events.
        s.archive.flush_ms = 500;
    })
    .await;
    engine.add_customers([7201, 7202]).await;
    engine
        .add_workflow(note_workflow("poison", "test.poison", "got {{event.n}}", 1))
        .await;
    engine.start().await;
    let db = engine.db().clone();
    engine
        .publish_all(&[
            envelope("poison-1", "test.poison", 7201, json!({"n": 1})),
            envelope("poison-2", "test.poison", 7201, json!({"n": 2, "bad": "nul\u{0}here"})),
            envelope("poison-3", "test.poison", 7201, json!({"n": 3})),
            envelope("poison-4", "test.poison", 7202, json!({"n": 4})),
        ])
        .await;
    for id in ["poison-1", "poison-3", "poison-4"] {
        eventually!("the event's run", PATIENCE, {
            let runs = runs_of_event(&db, id).await;
            (runs.len() == 1 && all_ended(&runs)).then_some(())
        });
    }
    assert_eq!(note_bodies(&db, 7201).await, ["got 1", "got 3"]);
    assert_eq!(note_bodies(&db, 7202).await, ["got 4"]);
    assert!(runs_of_event(&db, "poison-2").await.is_empty());

    let dead = dead_letters(&engine, 1).await;
    assert_eq!(dead[0].0["id"], "poison-2");
    let reason = dead[0].1.get("wfe-error").cloned().unwrap_or_default();
    assert!(reason.contains("database"), "{reason}");

    let archived = eventually!("the archive's batch", PATIENCE, {
        let triggers = ["test.poison".to_owned()];
        let page = workflow_engine::storage::archive::PageQuery {
            triggers: &triggers,
            since: None,
            before: None,
            limit: 10,
        };
        let rows = workflow_engine::storage::archive::page(db.connection(), &page)
            .await
            .unwrap();
        (rows.len() == 3).then_some(rows)
    });
    let mut ids: Vec<&str> = archived.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["poison-1", "poison-3", "poison-4"]);
    engine.finish().await;
}

/// Issue 25: a fresh install sends its first email. `delivery.email_url` (a local
/// integration service by default) is named by the engine's own configuration, so it
/// passes the outbound guard with an empty allowlist; a webhook a workflow points at the
/// same local address still does not.
#[actix_rt::test]
async fn the_configured_email_service_is_trusted_and_workflow_urls_are_not() {
    let mut engine = Engine::new(|s| {
        s.delivery.webhook_allowlist.clear();
        s.delivery.max_attempts = 1;
    })
    .await;
    engine.add_customers([7301]).await;
    let hook = engine.listener.url("/hook");
    engine
        .add_workflow(json!({
            "id": "first-email", "name": "Welcome", "trigger_event": "test.welcome",
            "actions": [
                {"type": "send_email", "params": {"subject": "Welcome {{customer.first_name}}"}},
                {"type": "webhook", "params": {"url": hook}}
            ]
        }))
        .await;
    engine.start().await;
    engine
        .publish(&envelope("welcome-1", "test.welcome", 7301, json!({})))
        .await;
    let db = engine.db().clone();
    let run = eventually!("the run to end", PATIENCE, {
        let runs = runs_of_event(&db, "welcome-1").await;
        (runs.len() == 1 && all_ended(&runs)).then(|| runs[0].clone())
    });
    assert_eq!(engine.listener.received("/email").len(), 1, "the email was sent");
    assert!(engine.listener.received("/hook").is_empty(), "the webhook was not");
    assert_eq!(run.run.status, status::FAILED);
    assert_eq!(run.steps[0].status, step_status::DONE);
    let error = run.steps[1].error.clone().unwrap_or_default();
    assert!(error.contains("127.0.0.1"), "{error}");
    engine.finish().await;
}

/// Issue 29: with the customer sync on, events no workflow can act on only move their
/// customer's `last_activity_at`, through the activity writer instead of an executor and
/// a transaction each. The times land as the executors' sync would have written them
/// (forward only, an older event after a newer one changes nothing), an unlistened
/// registration still creates its customer before that customer's next event is
/// planned, and a listened event of the same customer after them still runs.
#[actix_rt::test]
async fn events_no_workflow_can_act_on_move_activity_forward_only() {
    let mut engine = Engine::new(|s| {
        s.engine.sync_customers = true;
        s.engine.activity_flush_ms = 50;
    })
    .await;
    engine.add_customers([7401, 7402]).await;
    engine
        .add_workflow(note_workflow("after-activity", "test.after_activity", "after", 1))
        .await;
    engine.start().await;
    let at = |day: u32| format!("2026-11-{day:02}T10:00:00Z");
    let mut events = Vec::new();
    for (n, customer, day) in [(1, 7401, 20), (2, 7402, 10), (3, 7402, 12), (4, 7402, 11)] {
        events.push(json!({"id": format!("idle-{n}"), "type": "test.nobody_listens",
                           "customer_id": customer, "occurred_at": at(day)}));
    }
    events.push(
        json!({"id": "idle-reg", "type": "customer.registered", "customer_id": 7403,
                       "occurred_at": at(5), "data": {"first_name": "Nova"}}),
    );
    for customer in [7401, 7403] {
        events.push(envelope(
            &format!("after-{customer}"),
            "test.after_activity",
            customer,
            json!({}),
        ));
    }
    engine.publish_all(&events).await;
    let db = engine.db().clone();
    for customer in [7401, 7403] {
        eventually!("the listened event after the idle ones", PATIENCE, {
            let runs = runs_of_event(&db, &format!("after-{customer}")).await;
            (runs.len() == 1 && all_ended(&runs)).then_some(())
        });
    }
    assert_eq!(
        note_bodies(&db, 7403).await,
        ["after"],
        "the registration created the customer first"
    );
    assert_eq!(customer(&db, 7403).await.first_name, "Nova");
    let activity = |day: u32| Some(at(day).parse::<DateTime<Utc>>().unwrap());
    eventually!("customer 7402's activity", PATIENCE, {
        let seen = customer(&db, 7402).await.last_activity_at;
        (seen >= activity(11)).then_some(())
    });
    assert_eq!(customer(&db, 7402).await.last_activity_at, activity(12), "forward only");
    // The listened event carries no time: it moved 7401's activity on to now.
    assert!(customer(&db, 7401).await.last_activity_at > activity(20));
    engine.finish().await;
}
