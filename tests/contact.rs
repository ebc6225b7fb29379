//! The contact policy (issue 27, caps): at runner level (a database, a [`ManualClock`],
//! deliveries answered at once), and its API.
//!
//! What must hold: caps count each customer's non-transactional sends per channel over a
//! sliding period, exactly, in the transaction that queues the send; a send past a cap is
//! skipped with the cap on its step, or deferred, parked like a delay, until the period
//! has room, also when the partition moves meanwhile; within one event the workflows take
//! the cap in priority order; a replay counts nothing twice; transactional messages are
//! never capped nor counted.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use actix_web::{test as web_test, App};
use common::{fresh, t0};
use engine::runs_of_customer;
use harness::{add_workflow, resume_due, send, Sent};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::time::Duration;
use workflow_engine::clock::{Clock, ManualClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::guards::contact::ContactPolicy;
use workflow_engine::problem::Problems;
use workflow_engine::runner::{Ownership, Runner};
use workflow_engine::storage::ownership::{self, Fence};
use workflow_engine::storage::runs::{status, step_status, Run};
use workflow_engine::storage::{contact, Database};

fn deposit(id: &str, customer_id: i64) -> EventEnvelope {
    EventEnvelope::from_value(json!({
        "id": id, "type": "customer.deposited", "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": {"amount": 10}
    }))
    .unwrap()
}

fn email(subject: &str) -> Value {
    json!({"type": "send_email", "params": {"subject": subject}})
}

async fn set_policy(db: &Database, policy: Value) {
    let mut problems = Problems::default();
    let policy = ContactPolicy::from_value(&policy, &mut problems).expect("a valid policy");
    contact::put_policy(db, &policy, Some("test"), t0()).await.unwrap();
}

/// A runner of `node` owning partition 0, whose deliveries `sent` counts.
async fn owning(db: &Database, node: &str, clock: &ManualClock, sent: &Sent) -> (Runner, Fence, Ownership) {
    let ownership = Ownership::default();
    let fence = ownership::acquire(db, 0, node, clock.now()).await.unwrap();
    ownership.grant(fence);
    (harness::runner(db, node, clock, &ownership, sent), fence, ownership)
}

/// The message step (the first) of each of the customer's runs, oldest first.
async fn message_steps(db: &Database, customer_id: i64) -> Vec<(String, Option<Value>)> {
    let mut runs: Vec<Run> = runs_of_customer(db, customer_id).await;
    runs.sort_by_key(|r| r.run.id);
    runs.iter()
        .map(|r| (r.steps[0].status.clone(), r.steps[0].result.clone()))
        .collect()
}

async fn counted(db: &Database) -> i64 {
    db.connection()
        .query_one(workflow_engine::storage::sql::statement(
            db.connection(),
            "SELECT COUNT(*) AS n FROM contact_log",
            vec![],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap()
}

#[actix_rt::test]
async fn caps_count_each_customers_sends_per_channel_and_skip_past_them() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let sent = Sent::default();
    let (runner, fence, _) = owning(db, "node-a", &clock, &sent).await;
    common::add_customers(db, 1..=2).await;
    set_policy(
        db,
        json!({"caps": [{"channel": "email", "max": 2, "per": {"days": 1}}], "on_cap": "skip"}),
    )
    .await;
    add_workflow(
        db,
        json!({"name": "thanks", "trigger_event": "customer.deposited",
               "actions": [email("thanks"), {"type": "add_note", "params": {"body": "after"}}]}),
    )
    .await;

    for n in 1..=3 {
        clock.advance(Duration::from_secs(3600));
        send(&runner, fence, db, deposit(&format!("a{n}"), 1)).await;
    }
    send(&runner, fence, db, deposit("b1", 2)).await;
    assert_eq!(sent.count(), 3, "two for customer 1, one for customer 2");
    let steps = message_steps(db, 1).await;
    assert_eq!(steps[0].0, step_status::DONE);
    assert_eq!(steps[1].0, step_status::DONE);
    assert_eq!(steps[2].0, step_status::SKIPPED);
    assert_eq!(
        steps[2].1,
        Some(json!({"skipped": "contact cap: at most 2 email per 1 day"}))
    );
    // The skipped run went on and ended.
    let runs = runs_of_customer(db, 1).await;
    assert!(runs.iter().all(|r| r.run.status == status::DONE), "{runs:?}");

    // The period slides: a day after the first send there is room for one more.
    clock.advance(Duration::from_secs(22 * 3600 + 60));
    send(&runner, fence, db, deposit("a4", 1)).await;
    assert_eq!(message_steps(db, 1).await[3].0, step_status::DONE);
    send(&runner, fence, db, deposit("a5", 1)).await;
    assert_eq!(
        message_steps(db, 1).await[4].0,
        step_status::SKIPPED,
        "the second send is still in the day"
    );
    assert_eq!(sent.count(), 4);
    t.finish().await;
}

#[actix_rt::test]
async fn transactional_messages_are_never_capped_nor_counted_and_a_replay_counts_nothing_twice() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let sent = Sent::default();
    let (runner, fence, _) = owning(db, "node-a", &clock, &sent).await;
    common::add_customers(db, 1..=1).await;
    set_policy(
        db,
        json!({"caps": [{"channel": "email", "max": 1, "per": {"days": 1}}]}),
    )
    .await;
    add_workflow(
        db,
        json!({"name": "receipt", "trigger_event": "customer.deposited",
               "actions": [{"type": "send_email", "transactional": true, "params": {"subject": "receipt"}}]}),
    )
    .await;
    for n in 1..=3 {
        send(&runner, fence, db, deposit(&format!("r{n}"), 1)).await;
    }
    assert_eq!(sent.count(), 3);
    assert_eq!(counted(db).await, 0, "transactional sends are not counted");

    add_workflow(
        db,
        json!({"name": "promo", "trigger_event": "customer.deposited", "actions": [email("promo")]}),
    )
    .await;
    send(&runner, fence, db, deposit("p1", 1)).await;
    // A redelivery replays the recorded plan: the counted send is not counted again, and
    // the step is not capped by its own count.
    send(&runner, fence, db, deposit("p1", 1)).await;
    assert_eq!(counted(db).await, 1);
    assert_eq!(sent.count(), 3 + 2, "the receipt and the promo of p1");
    t.finish().await;
}

#[actix_rt::test]
async fn within_one_event_workflows_take_the_cap_in_priority_order() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let sent = Sent::default();
    let (runner, fence, _) = owning(db, "node-a", &clock, &sent).await;
    common::add_customers(db, 1..=1).await;
    set_policy(
        db,
        json!({"caps": [{"channel": "email", "max": 1, "per": {"hours": 12}}]}),
    )
    .await;
    // Created low priority first, so creation order is not what decides.
    let low = add_workflow(
        db,
        json!({"name": "low", "trigger_event": "customer.deposited", "priority": 50, "actions": [email("low")]}),
    )
    .await;
    let high = add_workflow(
        db,
        json!({"name": "high", "trigger_event": "customer.deposited", "priority": 1, "actions": [email("high")]}),
    )
    .await;
    send(&runner, fence, db, deposit("d1", 1)).await;
    let runs = runs_of_customer(db, 1).await;
    let step_of = |id: &str| {
        runs.iter()
            .find(|r| r.run.workflow_id == id)
            .map(|r| r.steps[0].status.clone())
            .unwrap()
    };
    assert_eq!(step_of(&high), step_status::DONE);
    assert_eq!(step_of(&low), step_status::SKIPPED);
    t.finish().await;
}

/// A deferred send waits, parked like a delay, until the period has room; the partition
/// moves while it waits, and the new owner sends it once, counted once.
#[actix_rt::test]
async fn a_deferred_send_waits_for_room_and_survives_its_partition_moving() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let sent = Sent::default();
    let (a, fence_a, owner_a) = owning(db, "node-a", &clock, &sent).await;
    common::add_customers(db, 1..=1).await;
    set_policy(
        db,
        json!({"caps": [{"channel": "email", "max": 1, "per": {"hours": 1}}], "on_cap": "defer"}),
    )
    .await;
    add_workflow(
        db,
        json!({"name": "thanks", "trigger_event": "customer.deposited", "actions": [email("thanks")]}),
    )
    .await;
    send(&a, fence_a, db, deposit("d1", 1)).await;
    clock.advance(Duration::from_secs(600));
    send(&a, fence_a, db, deposit("d2", 1)).await;
    assert_eq!(sent.count(), 1);
    let mut runs = runs_of_customer(db, 1).await;
    runs.sort_by_key(|r| r.run.id);
    let deferred = &runs[1];
    assert_eq!(deferred.run.status, status::WAITING, "{deferred:?}");
    assert!(
        deferred
            .run
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("contact cap: at most 1 email per 1 hour"),
        "{deferred:?}"
    );
    assert_eq!(deferred.steps[0].result.as_ref().unwrap()["waiting_for"], "contact_cap");

    // node-b takes the partition; node-a is fenced and lets it go.
    let (b, fence_b, _) = owning(db, "node-b", &clock, &sent).await;
    owner_a.revoke(0);
    // Before the hour is up nothing is due.
    clock.advance(Duration::from_secs(40 * 60));
    assert_eq!(resume_due(&b, fence_b, db, &clock).await, 0);
    clock.advance(Duration::from_secs(20 * 60 + 1));
    assert_eq!(resume_due(&b, fence_b, db, &clock).await, 1);
    assert_eq!(sent.count(), 2, "sent once, by the new owner");
    let resumed = runs_of_customer(db, 1)
        .await
        .into_iter()
        .find(|r| r.run.id == deferred.run.id)
        .unwrap();
    assert_eq!(resumed.run.status, status::DONE, "{resumed:?}");
    assert_eq!(counted(db).await, 2);
    assert_eq!(resume_due(&b, fence_b, db, &clock).await, 0);
    t.finish().await;
}

async fn call(db: &Database, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let state = common::api_state(db);
    let app = web_test::init_service(
        App::new().configure(move |cfg| workflow_engine::api::configure(cfg, state, 1 << 20, None::<String>)),
    )
    .await;
    let request = match method {
        "PUT" => web_test::TestRequest::put()
            .uri(path)
            .set_json(body.unwrap_or_default()),
        "POST" => web_test::TestRequest::post()
            .uri(path)
            .set_json(body.unwrap_or_default()),
        _ => web_test::TestRequest::get().uri(path),
    };
    let response = web_test::call_service(&app, request.to_request()).await;
    let code = response.status().as_u16();
    let body = serde_json::from_slice(&web_test::read_body(response).await).unwrap_or(Value::Null);
    (code, body)
}

/// The policy through the API: stored as written, bad input refused with pointers, the
/// held sends by hour, and the dry run showing a send the cap would hold.
#[actix_rt::test]
async fn the_policy_api_validates_stores_and_the_dry_run_and_held_list_show_the_caps() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, 1..=1).await;
    let (code, empty) = call(db, "GET", "/api/v1/contact-policy", None).await;
    assert_eq!((code, empty), (200, json!({"caps": [], "on_cap": "skip"})));

    let (code, bad) = call(
        db,
        "PUT",
        "/api/v1/contact-policy",
        Some(json!({"caps": [{"channel": "pigeon", "max": -1, "per": {"days": 400}}], "on_cap": "later"})),
    )
    .await;
    assert_eq!(code, 422, "{bad}");
    let paths: Vec<&str> = bad["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for path in ["/caps/0/channel", "/caps/0/max", "/caps/0/per", "/on_cap"] {
        assert!(paths.contains(&path), "{path} missing from {bad:#}");
    }

    let policy = json!({"caps": [{"channel": "email", "max": 1, "per": {"days": 1}}], "on_cap": "defer"});
    let (code, stored) = call(db, "PUT", "/api/v1/contact-policy", Some(policy.clone())).await;
    assert_eq!((code, &stored), (200, &policy));
    assert_eq!(call(db, "GET", "/api/v1/contact-policy", None).await.1, policy);

    // The dry run: two workflows send an email; the cap lets the first through.
    for (name, priority) in [("first", 1), ("second", 2)] {
        add_workflow(
            db,
            json!({"name": name, "trigger_event": "customer.deposited", "priority": priority, "actions": [email(name)]}),
        )
        .await;
    }
    let (code, dry) = call(
        db,
        "POST",
        "/api/v1/dry-run",
        Some(json!({"event": {"id": "dry", "type": "customer.deposited", "customer_id": 1, "data": {}}})),
    )
    .await;
    assert_eq!(code, 200, "{dry}");
    assert_eq!(dry["plan"][0]["previews"][0].get("capped"), None, "{dry:#}");
    assert_eq!(
        dry["plan"][1]["previews"][0]["capped"],
        json!({"cap": "contact cap: at most 1 email per 1 day", "on_cap": "defer"})
    );

    // What the caps held shows by hour.
    let clock = ManualClock::new(chrono::Utc::now());
    let sent = Sent::default();
    let (runner, fence, _) = owning(db, "node-a", &clock, &sent).await;
    send(&runner, fence, db, deposit("d1", 1)).await;
    let (code, held) = call(db, "GET", "/api/v1/contact-policy/held", None).await;
    assert_eq!(code, 200, "{held}");
    let held = held["held"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (&held[0]["channel"], &held[0]["outcome"], &held[0]["count"]),
        (&json!("email"), &json!("deferred"), &json!(1))
    );
    let (code, _) = call(db, "GET", "/api/v1/contact-policy/held?hours=0", None).await;
    assert_eq!(code, 400);
    t.finish().await;
}

/// A message queued before a cap existed (its request still out when the policy changed)
/// is not capped when its step is taken up again: it was never counted, but it is already
/// on its way.
#[actix_rt::test]
async fn a_send_queued_before_the_cap_existed_is_not_held_when_taken_up_again() {
    use workflow_engine::catalogue::ActionKind;
    use workflow_engine::guards::contact::Channel;
    use workflow_engine::outbound::OutboundRequest;
    use workflow_engine::storage::runs::{self, PlannedRun};
    use workflow_engine::storage::steps;
    let t = fresh().await;
    let db = &t.db;
    let fence = common::fence(db, 0).await;
    let planned = [PlannedRun {
        workflow_id: "w".into(),
        workflow_version: 1,
        steps: vec![ActionKind::SendEmail],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    let run = runs::record_runs(db, fence, &deposit("e1", 1), &planned, t0())
        .await
        .unwrap()
        .runs
        .remove(0);
    let key = steps::idempotency_key(run.run.id, "0");
    let request: OutboundRequest = serde_json::from_value(
        json!({"kind": "email", "url": "http://email.invalid/send", "headers": {}, "body": "{}"}),
    )
    .unwrap();
    let begin = |capped: Option<Channel>| {
        let (run, request, key) = (run.run.clone(), request.clone(), key.clone());
        async move {
            steps::begin_external(
                db,
                fence,
                &run,
                (0, 1),
                ActionKind::SendEmail,
                &request,
                &key,
                ("node-a", t0() + chrono::Duration::seconds(60)),
                (false, capped),
                t0(),
            )
            .await
            .unwrap()
        }
    };
    assert!(
        matches!(begin(Some(Channel::Email)).await, steps::Begun::Send(_)),
        "no policy yet"
    );
    set_policy(
        db,
        json!({"caps": [{"channel": "email", "max": 1, "per": {"days": 1}}]}),
    )
    .await;
    // Another send of the customer fills the day.
    db.connection()
        .execute_unprepared(&format!(
            "INSERT INTO contact_log (run_id, step, customer_id, channel, sent_at) VALUES (999, 'other', 1, 'email', '{}')",
            t0().to_rfc3339()
        ))
        .await
        .unwrap();
    assert!(
        matches!(begin(Some(Channel::Email)).await, steps::Begun::Send(_)),
        "the queued send goes on"
    );
    t.finish().await;
}

/// The backtest replays a policy over the archive: "with this policy, these messages
/// would have been held"; a bad policy is a 422 pointing into it.
#[actix_rt::test]
async fn the_backtest_replays_a_policy_over_the_archive() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, 1..=2).await;
    add_workflow(
        db,
        json!({"name": "thanks", "trigger_event": "customer.deposited", "actions": [email("thanks")]}),
    )
    .await;
    let events: Vec<EventEnvelope> = (0..6)
        .map(|i| {
            EventEnvelope::from_value(json!({
                "id": format!("d{i}"), "type": "customer.deposited", "customer_id": 1 + i % 2,
                "occurred_at": workflow_engine::clock::rfc3339(t0() + chrono::Duration::hours(i)), "data": {}
            }))
            .unwrap()
        })
        .collect();
    workflow_engine::storage::archive::insert(db.connection(), &events, t0())
        .await
        .unwrap();
    let policy = json!({"caps": [{"channel": "email", "max": 2, "per": {"days": 1}}]});
    let (code, report) = call(db, "POST", "/api/v1/backtest", Some(json!({"contact_policy": policy}))).await;
    assert_eq!(code, 200, "{report}");
    // Three deposits each, within a day: the third of each customer is held.
    assert_eq!(
        report["contact"]["email"],
        json!({"messages": 6, "held": 2}),
        "{report:#}"
    );

    let (code, bad) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(json!({"contact_policy": {"caps": [{"channel": "email", "max": 0, "per": {"days": 1}}]}})),
    )
    .await;
    assert_eq!(code, 422, "{bad}");
    assert_eq!(
        bad["error"]["details"][0]["path"], "/contact_policy/caps/0/max",
        "{bad:#}"
    );
    t.finish().await;
}
