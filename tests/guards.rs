//! The guard rails at run time (issue 15): per-customer limits exact under concurrency and
//! across processes, send windows in the customer's zone across a DST change, consent,
//! exit on event (the churn rescue), cascades stopped at their depth, and the dry run
//! reporting them as a real run decides them.
//!
//! Runner-level, as tests/cluster.rs: a database (SQLite, or PostgreSQL when
//! WFE_TEST_DATABASE_URL is set), a [`ManualClock`], a stand-in for deliveries, no Kafka.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use actix_web::{test as web_test, App};
use chrono::{DateTime, Utc};
use common::{fresh, t0, TestDb};
use engine::{note_bodies, runs_of_customer, tasks_of};
use harness::{add_workflow, live_set, Sent};
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use workflow_engine::catalogue::ActionKind;
use workflow_engine::clock::{Clock, ManualClock};
use workflow_engine::conditions::Limits;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::guards::limits::EntryLimit;
use workflow_engine::metrics::Metrics;
use workflow_engine::plan::WorkflowSet;
use workflow_engine::runner::{Ownership, Runner, Ticket, Why, Work};
use workflow_engine::storage::entities::outbox;
use workflow_engine::storage::ownership::{self, Fence};
use workflow_engine::storage::runs::{self, status, step_status, PlannedRun};
use workflow_engine::storage::{scheduled, statuses, Database};
use workflow_engine::validate::Validator;

// ---------------------------------------------------------------------------------------
// Harness

struct Node {
    runner: Runner,
    sent: Sent,
    fence: Fence,
    clock: ManualClock,
}

async fn node(t: &TestDb, start: DateTime<Utc>) -> Node {
    let clock = ManualClock::new(start);
    let ownership = Ownership::default();
    let fence = ownership::acquire(&t.db, 0, "node-a", start).await.unwrap();
    ownership.grant(fence);
    let sent = Sent::default();
    let runner = harness::runner(&t.db, "node-a", &clock, &ownership, &sent);
    Node {
        runner,
        sent,
        fence,
        clock,
    }
}

impl Node {
    /// Handles `event` as the executor would.
    async fn handle(&self, set: &Arc<WorkflowSet>, event: EventEnvelope) {
        let (tx, rx) = oneshot::channel();
        let customer_id = event.customer_id;
        let work = Work::Event {
            event,
            set: Arc::clone(set),
            fence: self.fence,
            recorded: tx,
        };
        self.runner.process(customer_id, work).await;
        assert!(rx.await.is_ok(), "the event was not acknowledged");
    }

    /// Claims what is due now and resumes it, as the scheduler would; returns how many.
    async fn resume_due(&self) -> usize {
        let rows = scheduled::claim_due(
            &self.runner.db,
            "node-a",
            &[0],
            self.clock.now(),
            chrono::Duration::seconds(60),
            100,
        )
        .await
        .unwrap();
        let in_flight = Arc::default();
        let n = rows.len();
        for row in rows {
            let work = Work::Resume {
                run_id: row.run_id,
                fence: self.fence,
                why: Why::Due {
                    due_at: row.due_at,
                    ticket: Ticket::issue(&in_flight),
                },
            };
            self.runner.process(row.customer_id, work).await;
        }
        n
    }
}

fn event(id: &str, event_type: &str, customer_id: i64, data: Value) -> EventEnvelope {
    EventEnvelope::from_value(json!({"id": id, "type": event_type, "customer_id": customer_id, "data": data})).unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn set_customer(db: &Database, id: i64, assignments: &str) {
    db.execute_unprepared(&format!("UPDATE customers SET {assignments} WHERE id = {id}"))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// Per-customer limits

/// The issue's test: 50 concurrent qualifying events of one customer give exactly one run
/// of a once_per_customer workflow. On PostgreSQL the events are spread over five
/// connection pools, five sets of sessions as five processes would have; SQLite is one
/// process's database (one writer), so there they share the pool.
#[actix_rt::test]
async fn fifty_concurrent_events_of_one_customer_give_one_run() {
    let t = fresh().await;
    common::add_customers(&t.db, [1]).await;
    let fence = common::fence(&t.db, 0).await;
    let mut pools = vec![t.db.clone()];
    for _ in 0..if t.is_postgres() { 4 } else { 0 } {
        pools.push(t.connect_again().await);
    }
    let planned = [PlannedRun {
        workflow_id: "welcome".into(),
        workflow_version: 1,
        steps: vec![ActionKind::AddNote],
        paths: Vec::new(),
        limit: Some(EntryLimit::OncePerCustomer),
        held_out: false,
        goal: None,
    }];
    let attempts = (0..50).map(|i| {
        let db = pools[i % pools.len()].clone();
        let planned = planned.clone();
        async move {
            let e = event(&format!("deposit-{i}"), "customer.deposited", 1, json!({"amount": 100}));
            runs::record_runs(&db, fence, &e, &planned, t0()).await.unwrap()
        }
    });
    let recorded = futures_util::future::join_all(attempts).await;
    let created: usize = recorded.iter().map(|r| r.runs.len()).sum();
    let held: usize = recorded.iter().map(|r| r.held_back.len()).sum();
    assert_eq!(created, 1, "runs created by 50 concurrent events");
    assert_eq!(held, 49);
    assert!(recorded
        .iter()
        .flat_map(|r| &r.held_back)
        .all(|h| h.limited_by == "once_per_customer"));
    assert_eq!(runs_of_customer(&t.db, 1).await.len(), 1, "runs in the database");
    for pool in pools.into_iter().skip(1) {
        pool.close().await.unwrap();
    }
    t.finish().await;
}

/// A cooldown lets the customer in again once the period since the last entry is over,
/// judged by the clock the run is recorded at.
#[actix_rt::test]
async fn a_cooldown_lets_the_customer_in_again_after_its_period() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1]).await;
    let n = node(&t, t0()).await;
    add_workflow(
        db,
        json!({"id": "nudge", "name": "nudge", "trigger_event": "customer.deposited",
               "limits": {"cooldown": {"days": 1}},
               "actions": [{"type": "add_note", "params": {"body": "nudge"}}]}),
    )
    .await;
    let set = live_set(db).await;
    n.handle(&set, event("d1", "customer.deposited", 1, json!({}))).await;
    n.clock.advance(Duration::from_secs(23 * 3600));
    n.handle(&set, event("d2", "customer.deposited", 1, json!({}))).await;
    assert_eq!(note_bodies(db, 1).await, ["nudge"], "inside the cooldown");
    n.clock.advance(Duration::from_secs(3600));
    n.handle(&set, event("d3", "customer.deposited", 1, json!({}))).await;
    assert_eq!(note_bodies(db, 1).await, ["nudge", "nudge"], "after the cooldown");
    n.clock.advance(Duration::from_secs(60));
    n.handle(&set, event("d4", "customer.deposited", 1, json!({}))).await;
    assert_eq!(
        note_bodies(db, 1).await.len(),
        2,
        "the cooldown counts from the last entry"
    );
    assert_eq!(runs_of_customer(db, 1).await.len(), 2, "held-back runs are not created");
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Send windows

/// An email outside the customer's window waits, persisted like a delay, and goes out
/// when the window opens, in the customer's zone: Berlin moves its clocks forward in the
/// night of 2026-03-29, so 09:00 local is 07:00 UTC that morning (08:00 UTC the day
/// before). The run shows `waiting` with its reason meanwhile.
#[actix_rt::test]
async fn an_email_outside_the_window_waits_for_it_across_a_dst_change() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1]).await;
    set_customer(db, 1, "timezone = 'Europe/Berlin'").await;
    // Saturday 21:30 in Berlin (CET, UTC+1).
    let n = node(&t, utc("2026-03-28T20:30:00Z")).await;
    add_workflow(
        db,
        json!({"id": "welcome", "name": "welcome", "trigger_event": "customer.deposited",
               "send_window": {"from": "09:00", "to": "20:00"},
               "actions": [{"type": "add_note", "params": {"body": "deposit seen"}},
                           {"type": "send_email", "params": {"subject": "Thank you"}},
                           {"type": "add_note", "params": {"body": "mailed"}}]}),
    )
    .await;
    let set = live_set(db).await;
    n.handle(&set, event("d1", "customer.deposited", 1, json!({}))).await;

    let run = &runs_of_customer(db, 1).await[0];
    assert_eq!(run.run.status, status::WAITING);
    assert_eq!(run.run.next_step, 1, "the run waits at its email step");
    let reason = run.run.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("send window") && reason.contains("2026-03-29T07:00:00"),
        "{reason}"
    );
    assert_eq!(run.steps[1].status, step_status::WAITING);
    assert_eq!(run.steps[1].result.as_ref().unwrap()["waiting_for"], "send_window");
    let due: Vec<DateTime<Utc>> = scheduled::list(db, 10)
        .await
        .unwrap()
        .iter()
        .map(|s| s.due_at)
        .collect();
    assert_eq!(due, [utc("2026-03-29T07:00:00Z")], "parked until 09:00 CEST");
    assert_eq!(n.sent.count(), 0);
    assert_eq!(note_bodies(db, 1).await, ["deposit seen"]);

    n.clock.set(utc("2026-03-29T06:59:00Z"));
    assert_eq!(n.resume_due().await, 0, "not due before the window opens");
    n.clock.set(utc("2026-03-29T07:00:00Z"));
    assert_eq!(n.resume_due().await, 1);
    assert_eq!(n.sent.count(), 1, "the email went out when the window opened");
    let run = &runs_of_customer(db, 1).await[0];
    assert_eq!(run.run.status, status::DONE, "{:?}", run.run);
    assert_eq!(run.run.reason, None);
    assert!(
        run.steps.iter().all(|s| s.status == step_status::DONE),
        "{:?}",
        run.steps
    );
    assert_eq!(note_bodies(db, 1).await, ["deposit seen", "mailed"]);
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Consent

/// An opted-out customer's marketing email is skipped with the reason on the step; a
/// transactional one still goes out, and the chain goes on.
#[actix_rt::test]
async fn opted_out_customers_get_only_transactional_messages() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1, 2]).await;
    set_customer(db, 1, "email_opt_out = true, sms_opt_out = true").await;
    let n = node(&t, t0()).await;
    add_workflow(
        db,
        json!({"id": "mail", "name": "mail", "trigger_event": "customer.deposited",
               "actions": [{"type": "send_email", "params": {"subject": "Offer"}},
                           {"type": "send_email", "params": {"subject": "Receipt"}, "transactional": true},
                           {"type": "add_note", "params": {"body": "done"}}]}),
    )
    .await;
    let set = live_set(db).await;
    n.handle(&set, event("d1", "customer.deposited", 1, json!({}))).await;
    assert_eq!(
        n.sent.count(),
        1,
        "only the transactional email to the opted-out customer"
    );
    let run = &runs_of_customer(db, 1).await[0];
    assert_eq!(run.run.status, status::DONE);
    assert_eq!(run.steps[0].status, step_status::SKIPPED);
    assert_eq!(run.steps[0].result, Some(json!({"skipped": "email_opt_out"})));
    assert_eq!(run.steps[1].status, step_status::DONE);
    assert_eq!(note_bodies(db, 1).await, ["done"]);

    n.handle(&set, event("d2", "customer.deposited", 2, json!({}))).await;
    assert_eq!(n.sent.count(), 3, "a customer who did not opt out gets both");
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Exit on event

fn churn_rescue() -> Value {
    json!({"id": "churn-rescue", "name": "churn rescue", "trigger_event": "customer.inactive_days",
           "exit_when": [{"trigger_event": "customer.deposited",
                          "conditions": {"match": "all", "rules": [
                              {"field": "event.amount", "operator": "gt", "value": 0}]}}],
           "actions": [{"type": "delay", "params": {"days": 2}},
                       {"type": "create_task", "params": {"title": "Call the customer", "due_in": {"hours": 4}}},
                       {"type": "add_note", "params": {"body": "rescue call planned"}}]})
}

/// The issue's churn rescue: a two-day delay before a call task; a deposit during the
/// wait cancels the run, and neither the task nor the note is made. A customer who does
/// not deposit gets both, so the chain would have made them.
#[actix_rt::test]
async fn a_deposit_during_the_wait_cancels_the_churn_rescue() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1, 2]).await;
    let n = node(&t, t0()).await;
    add_workflow(db, churn_rescue()).await;
    let set = live_set(db).await;
    assert!(set.listens_to("customer.deposited"), "exit triggers reach the runner");

    for c in [1, 2] {
        n.handle(
            &set,
            event(&format!("idle-{c}"), "customer.inactive_days", c, json!({"days": 30})),
        )
        .await;
    }
    n.clock.advance(Duration::from_secs(24 * 3600));
    // A deposit of nothing does not meet the exit condition.
    n.handle(&set, event("zero", "customer.deposited", 1, json!({"amount": 0})))
        .await;
    let waiting = runs_of_customer(db, 1).await[0].run.clone();
    assert_eq!(waiting.status, status::WAITING);
    // The dry run of the deposit names the run it would cancel, and cancels nothing.
    let app = web_test::init_service(
        App::new()
            .configure(|cfg| workflow_engine::api::configure(cfg, common::api_state(db), 1 << 20, None::<String>)),
    )
    .await;
    let request = web_test::TestRequest::post()
        .uri("/api/v1/dry-run")
        .set_json(
            json!({"event": {"id": "dry", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 500}}}),
        )
        .to_request();
    let body: Value = web_test::call_and_read_body_json(&app, request).await;
    assert_eq!(
        body["exits"],
        json!([{"workflow_id": "churn-rescue", "cancels": [waiting.id]}]),
        "{body:#}"
    );
    assert_eq!(runs_of_customer(db, 1).await[0].run.status, status::WAITING);
    n.handle(&set, event("dep-1", "customer.deposited", 1, json!({"amount": 500})))
        .await;

    let run = &runs_of_customer(db, 1).await[0];
    assert_eq!(run.run.status, status::CANCELLED);
    let reason = run.run.error.clone().unwrap_or_default();
    assert!(
        reason.contains("customer.deposited") && reason.contains("dep-1"),
        "{reason}"
    );
    assert_eq!(
        runs_of_customer(db, 2).await[0].run.status,
        status::WAITING,
        "others wait on"
    );

    n.clock.advance(Duration::from_secs(2 * 24 * 3600));
    assert_eq!(n.resume_due().await, 1, "only customer 2's continuation is left");
    assert!(tasks_of(db, 1).await.is_empty(), "the cancelled rescue made a task");
    assert!(
        note_bodies(db, 1).await.is_empty(),
        "the cancelled rescue wrote its note"
    );
    assert_eq!(tasks_of(db, 2).await.len(), 1);
    assert_eq!(note_bodies(db, 2).await, ["rescue call planned"]);
    assert_eq!(runs_of_customer(db, 2).await[0].run.status, status::DONE);
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Cascades

/// Two workflows that set each other's statuses forever stop at the depth: the events the
/// engine emits carry their cause and depth, the one past `max_cascade_depth` starts no
/// run, is counted, and is noted on the run that emitted it.
#[actix_rt::test]
async fn workflows_that_trigger_each_other_stop_at_the_maximum_depth() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1]).await;
    let sales = statuses::ensure_status_type(db, "sales").await.unwrap();
    for name in ["hot", "cold"] {
        statuses::ensure_status(db, sales, name).await.unwrap();
    }
    let n = node(&t, t0()).await;
    let flip = |id: &str, from: &str, to: &str| {
        json!({"id": id, "name": id, "trigger_event": "customer.status_changed",
               "conditions": {"match": "all", "rules": [{"field": "event.new_status", "operator": "eq", "value": from}]},
               "actions": [{"type": "set_status", "params": {"type": "sales", "status": to}}]})
    };
    add_workflow(db, flip("cool-down", "hot", "cold")).await;
    add_workflow(db, flip("heat-up", "cold", "hot")).await;
    add_workflow(
        db,
        json!({"id": "start", "name": "start", "trigger_event": "customer.deposited",
               "actions": [{"type": "set_status", "params": {"type": "sales", "status": "hot"}}]}),
    )
    .await;
    let set = live_set(db).await;
    let stopped = Metrics::global().cascades_stopped.with_label_values(&["depth"]);
    let stopped_before = stopped.get();

    n.handle(&set, event("outside", "customer.deposited", 1, json!({})))
        .await;
    // Feed every event the engine emits back in, as the relay and the consumer would,
    // until none is left; a runaway loop would never end, so stop at 50.
    let mut handled = 0;
    let mut depths = Vec::new();
    loop {
        let emitted = outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.kind == "event")
            .collect::<Vec<_>>();
        if handled == emitted.len() || handled >= 50 {
            break;
        }
        for row in &emitted[handled..] {
            let e = EventEnvelope::from_value(row.payload.clone()).unwrap();
            let cause = e.cause.clone().expect("an emitted event carries its cause");
            depths.push(cause.depth);
            n.handle(&set, e).await;
        }
        handled = emitted.len();
    }
    assert_eq!(
        depths,
        [1, 2, 3, 4, 5, 6],
        "one emitted event per generation, up to one past the maximum"
    );
    let runs = runs_of_customer(db, 1).await;
    assert_eq!(runs.len(), 6, "the outside event's run and one per depth 1..=5");
    assert_eq!(stopped.get() - stopped_before, 1);
    // The run of the depth-5 event emitted the depth-6 one: it says so.
    let noted: Vec<&str> = runs.iter().filter_map(|r| r.run.reason.as_deref()).collect();
    assert_eq!(noted.len(), 1, "{noted:?}");
    assert!(
        noted[0].contains("cascade stopped") && noted[0].contains("depth 6"),
        "{}",
        noted[0]
    );
    t.finish().await;
}

/// The runs a cascade may start from one outside event (`engine.max_cascade_runs`).
const RUN_BUDGET: u64 = workflow_engine::guards::cascade::DEFAULT_MAX_RUNS as u64;

/// A workflow on `compliance.freeze_requested` whose `breadth` actions each emit that
/// event again: every run starts `breadth` more, a fan-out the depth limit alone lets grow
/// to `breadth`^5 runs. Saved through storage, as a workflow stored before the save-time
/// check existed.
fn fan_out(breadth: usize) -> Value {
    let freeze = json!({"type": "freeze_account", "params": {"reason": "review"}});
    json!({"id": format!("fan-out-{breadth}"), "name": format!("fan-out {breadth}"),
           "trigger_event": "compliance.freeze_requested",
           "actions": vec![freeze; breadth]})
}

async fn runs_count(db: &Database, customer_id: i64) -> u64 {
    use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
    workflow_engine::storage::entities::runs::Entity::find()
        .filter(workflow_engine::storage::entities::runs::Column::CustomerId.eq(customer_id))
        .count(db)
        .await
        .unwrap()
}

/// Feeds every event the engine emitted for `customer_id` back in, as the relay and the
/// consumer would, until none is left; gives up once the customer has more than `give_up`
/// runs (a runaway fan-out). Returns how many emitted events were fed.
async fn feed_back(n: &Node, set: &Arc<WorkflowSet>, customer_id: i64, give_up: u64) -> u64 {
    use sea_orm::{ColumnTrait, QueryFilter};
    let db = &n.runner.db;
    let mut fed = std::collections::HashSet::new();
    loop {
        let pending: Vec<outbox::Model> = outbox::Entity::find()
            .filter(outbox::Column::Kind.eq("event"))
            .filter(outbox::Column::CustomerId.eq(customer_id))
            .order_by_asc(outbox::Column::Id)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| !fed.contains(&o.id))
            .collect();
        if pending.is_empty() {
            return fed.len() as u64;
        }
        for (i, row) in pending.iter().enumerate() {
            fed.insert(row.id);
            n.handle(set, EventEnvelope::from_value(row.payload.clone()).unwrap())
                .await;
            if i % 25 == 0 && runs_count(db, customer_id).await > give_up {
                return fed.len() as u64;
            }
        }
    }
}

/// Issue 22, finding 4: a workflow that re-triggers itself through several actions fans
/// out under the depth limit (breadth 3 gave 364 runs from one event, breadth 5 gave
/// 3,906). The runs of one outside event's cascade are counted in the database and the
/// event that would go past `engine.max_cascade_runs` starts none: it is counted as
/// stopped and noted on the run that emitted it, as the depth limit does.
#[actix_rt::test]
async fn a_self_triggering_fan_out_stops_at_the_run_budget() {
    for breadth in [3usize, 5] {
        let t = fresh().await;
        let db = &t.db;
        common::add_customers(db, [1]).await;
        let n = node(&t, t0()).await;
        add_workflow(db, fan_out(breadth)).await;
        let set = live_set(db).await;
        // Only this test stops cascades by their runs, so the counter's change is its own.
        let stopped = Metrics::global().cascades_stopped.with_label_values(&["runs"]);
        let stopped_before = stopped.get();

        n.handle(&set, event("outside", "compliance.freeze_requested", 1, json!({})))
            .await;
        // The wider cascade goes on in another process (a restart, a hand-over): the count
        // is the database's, not a runner's.
        let n = if breadth == 5 { node(&t, t0()).await } else { n };
        let fed = feed_back(&n, &set, 1, RUN_BUDGET * 2).await;

        let runs = runs_count(db, 1).await;
        assert_eq!(runs, RUN_BUDGET, "breadth {breadth}: runs from one outside event");
        // Every emitted event fed back either started its one run or was stopped.
        assert_eq!(
            stopped.get() - stopped_before,
            fed - (runs - 1),
            "breadth {breadth}: emitted events stopped"
        );
        let noted = runs_of_customer(db, 1)
            .await
            .into_iter()
            .filter_map(|r| r.run.reason)
            .collect::<Vec<_>>();
        assert!(
            !noted.is_empty(),
            "breadth {breadth}: no run says its cascade was stopped"
        );
        // The budget stops the fan-out before its depth does.
        assert!(
            noted
                .iter()
                .all(|r| r.contains("cascade stopped") && r.contains("100 runs")),
            "{noted:?}"
        );
        t.finish().await;
    }
}

/// Saving a workflow that re-triggers itself through more than one action is refused
/// with the pointer of the action that makes it fan out; with one such action the depth
/// limit bounds it (a chain, not a tree), so it is allowed.
#[actix_rt::test]
async fn a_workflow_that_fans_out_into_itself_is_refused_at_save_time() {
    let t = fresh().await;
    let db = &t.db;
    let app = web_test::init_service(
        App::new()
            .configure(|cfg| workflow_engine::api::configure(cfg, common::api_state(db), 1 << 20, None::<String>)),
    )
    .await;
    for uri in ["/api/v1/workflows/validate", "/api/v1/workflows"] {
        let request = web_test::TestRequest::post().uri(uri).set_json(fan_out(2)).to_request();
        let response = web_test::call_service(&app, request).await;
        assert_eq!(response.status().as_u16(), 422, "{uri}");
        let body: Value = web_test::read_body_json(response).await;
        assert_eq!(body["error"]["path"], "/actions/1", "{uri}: {body:#}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("compliance.freeze_requested"), "{message}");
    }
    let request = web_test::TestRequest::post()
        .uri("/api/v1/workflows")
        .set_json(fan_out(1))
        .to_request();
    let response = web_test::call_service(&app, request).await;
    assert_eq!(
        response.status().as_u16(),
        201,
        "one emitting action is a chain the depth bounds"
    );
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// The dry run

/// The dry run reports what a real run decides: a customer who entered a once-per-customer
/// workflow is `limited_by` it (and it leaves the plan), an opted-out customer's email is
/// `skipped`, and an email outside the window `waits_until` its opening in the customer's
/// zone, after the delays before it.
#[actix_rt::test]
async fn the_dry_run_reports_limits_consent_and_windows_as_a_run_decides_them() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, [1]).await;
    set_customer(db, 1, "timezone = 'Europe/Berlin', sms_opt_out = true").await;
    let n = node(&t, utc("2026-03-28T10:00:00Z")).await;
    add_workflow(
        db,
        json!({"id": "welcome", "name": "welcome", "trigger_event": "customer.deposited",
               "limits": {"once_per_customer": true},
               "actions": [{"type": "add_note", "params": {"body": "welcome"}}]}),
    )
    .await;
    add_workflow(
        db,
        json!({"id": "follow-up", "name": "follow-up", "trigger_event": "customer.deposited",
               "send_window": {"from": "09:00", "to": "20:00"},
               "actions": [{"type": "send_sms", "params": {"text": "hi"}},
                           {"type": "delay", "params": {"hours": 11}},
                           {"type": "send_email", "params": {"subject": "Still there?"}}]}),
    )
    .await;
    let app = web_test::init_service(
        App::new()
            .configure(|cfg| workflow_engine::api::configure(cfg, common::api_state(db), 1 << 20, None::<String>)),
    )
    .await;
    let dry = |id: &str| {
        web_test::TestRequest::post()
            .uri("/api/v1/dry-run")
            .set_json(
                json!({"event": {"id": id, "type": "customer.deposited", "customer_id": 1,
                                       "occurred_at": "2026-03-28T10:00:00Z", "data": {}}}),
            )
            .to_request()
    };
    let body: Value = web_test::call_and_read_body_json(&app, dry("dry-1")).await;
    let plan: Vec<&str> = body["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(plan, ["follow-up", "welcome"], "{body:#}");
    let follow = &body["plan"][0];
    assert_eq!(follow["previews"][0]["skipped"], "sms_opt_out", "{follow:#}");
    // 10:00 UTC + 11 h = 21:00 UTC = 22:00 CET: the email waits for 09:00 CEST on the 29th.
    assert_eq!(
        follow["previews"][2]["waits_until"], "2026-03-29T07:00:00Z",
        "{follow:#}"
    );
    assert!(body["evaluated"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["limited_by"].is_null()));

    // A real run enters the customer; the dry run then says the limit holds them back.
    let set = live_set(db).await;
    n.handle(&set, event("real", "customer.deposited", 1, json!({}))).await;
    let body: Value = web_test::call_and_read_body_json(&app, dry("dry-2")).await;
    let plan: Vec<&str> = body["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(plan, ["follow-up"], "{body:#}");
    let welcome = body["evaluated"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["workflow_id"] == "welcome")
        .unwrap();
    assert_eq!(welcome["limited_by"], "once_per_customer", "{body:#}");
    // And a real run agrees: no second run of it.
    n.handle(&set, event("real-2", "customer.deposited", 1, json!({})))
        .await;
    let welcomes = runs_of_customer(db, 1)
        .await
        .into_iter()
        .filter(|r| r.run.workflow_id == "welcome")
        .count();
    assert_eq!(welcomes, 1);
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// Validation

fn problems(definition: Value) -> Vec<String> {
    let schema = workflow_engine::schema::FieldSchema::default();
    match Validator::new(&schema, Limits::default()).workflow(&definition) {
        Ok(v) => v.warnings.iter().map(|p| p.to_string()).collect(),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

/// Every guard key is checked with the JSON pointer of the bad value, exit conditions
/// against their own trigger's fields, and the number of exit rules is capped.
#[test]
fn guard_keys_are_validated_with_their_paths() {
    let base = || {
        json!({"name": "w", "trigger_event": "customer.inactive_days",
               "actions": [{"type": "send_email", "params": {"subject": "hi"}}]})
    };
    let with = |key: &str, value: Value| {
        let mut d = base();
        d[key] = value;
        problems(d)
    };
    assert!(problems(base()).is_empty());
    let ok = with(
        "exit_when",
        json!([{"trigger_event": "customer.deposited",
                "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gt", "value": 0}]}}]),
    );
    assert!(ok.is_empty(), "{ok:?}");
    // event.amount is a number on customer.deposited: the exit rule is typed by its own trigger.
    let typed = with(
        "exit_when",
        json!([{"trigger_event": "customer.deposited",
                "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gt", "value": "x"}]}}]),
    );
    assert!(
        typed[0].starts_with("/exit_when/0/conditions/rules/0/value:"),
        "{typed:?}"
    );
    let bad_trigger = with("exit_when", json!([{"trigger_event": "no spaces"}]));
    assert!(
        bad_trigger[0].starts_with("/exit_when/0/trigger_event:"),
        "{bad_trigger:?}"
    );
    let unknown = with("exit_when", json!([{"trigger_event": "a.b", "when": 1}]));
    assert!(unknown[0].starts_with("/exit_when/0/when: unknown key"), "{unknown:?}");
    let many = with("exit_when", Value::from(vec![json!({"trigger_event": "a.b"}); 11]));
    assert!(
        many[0].starts_with("/exit_when: has 11 exit rules, more than the maximum of 10"),
        "{many:?}"
    );
    let limit = with("limits", json!({"cooldown": {"hours": 0}}));
    assert!(limit[0].starts_with("/limits/cooldown:"), "{limit:?}");
    let window = with("send_window", json!({"from": "25:00", "to": "20:00"}));
    assert!(window[0].starts_with("/send_window/from:"), "{window:?}");
    let mut tx = base();
    tx["actions"] = json!([{"type": "add_note", "params": {"body": "x"}, "transactional": true}]);
    let tx = problems(tx);
    assert!(
        tx[0].starts_with("/actions/0/transactional: only send_email and send_sms"),
        "{tx:?}"
    );
    let mut tx = base();
    tx["actions"][0]["transactional"] = json!("yes");
    assert!(problems(tx)[0].starts_with("/actions/0/transactional: expected true or false"));
}

/// A definition with every guard key reads back in the shape it was written in.
#[test]
fn guard_keys_read_back_as_written() {
    let definition = json!({"name": "w", "trigger_event": "customer.inactive_days",
        "limits": {"cooldown": {"days": 7}},
        "send_window": {"from": "09:00", "to": "20:00", "days": ["mon", "fri"]},
        "exit_when": [{"trigger_event": "customer.deposited"}],
        "actions": [{"type": "send_email", "params": {"subject": "hi"}, "transactional": true}]});
    let schema = workflow_engine::schema::FieldSchema::default();
    let workflow = Validator::new(&schema, Limits::default())
        .workflow(&definition)
        .unwrap()
        .workflow;
    let back = serde_json::to_value(&workflow).unwrap();
    for key in ["limits", "send_window", "exit_when"] {
        assert_eq!(back[key], definition[key], "{key}");
    }
    assert_eq!(back["actions"][0]["transactional"], true);
}
