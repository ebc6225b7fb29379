//! Experiments (issue 26) at runner level (a database, a [`ManualClock`], no Kafka), and the
//! stats API over what the runs recorded.
//!
//! What must hold: a split's path and a workflow's holdout come from the customer's stable
//! draw, recorded with the run; held-out customers get a `held_out` run that performs
//! nothing and still counts for limits and goals; a goal is reached at most once per run,
//! only by an event after the run started and within its window, also when the partition
//! moved meanwhile; the stats count the runs table exactly.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use actix_web::{test as web_test, App};
use common::{fresh, t0};
use engine::{note_bodies, runs_of_customer};
use harness::{add_workflow, owning_runner, resume_due, send};
use serde_json::{json, Value};
use std::time::Duration;
use workflow_engine::clock::{Clock, ManualClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::experiment::assign;
use workflow_engine::runner::Handled;
use workflow_engine::storage::runs::{status, Run};
use workflow_engine::storage::{plans, Database};

fn event(id: &str, event_type: &str, customer_id: i64, data: Value) -> EventEnvelope {
    EventEnvelope::from_value(json!({
        "id": id, "type": event_type, "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": data
    }))
    .unwrap()
}

fn note(body: &str) -> Value {
    json!({"type": "add_note", "params": {"body": body}})
}

/// The runs of `workflow_id` for the customer, oldest first.
async fn runs_of(db: &Database, customer_id: i64, workflow_id: &str) -> Vec<Run> {
    let mut runs: Vec<Run> = runs_of_customer(db, customer_id)
        .await
        .into_iter()
        .filter(|r| r.run.workflow_id == workflow_id)
        .collect();
    runs.sort_by_key(|r| r.run.id);
    runs
}

/// "A win-back: half get an SMS-like note, half a call task; a tenth are held out; did
/// they deposit within a week?"
fn win_back(holdout: u8) -> Value {
    json!({
        "id": "win-back", "name": "win back", "trigger_event": "customer.status_changed",
        "holdout": {"percent": holdout},
        "goal": {"event": "customer.deposited", "within": {"days": 7},
                 "conditions": {"field": "event.amount", "operator": "gt", "value": 0}},
        "actions": [
            note("first"),
            {"type": "split", "params": {"paths": [
                {"percent": 50, "actions": [note("a")]},
                {"percent": 50, "actions": [note("b")]}
            ]}}
        ]
    })
}

#[actix_rt::test]
async fn a_split_sends_each_customer_down_its_stable_path_and_a_replay_keeps_it() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=40).await;
    let id = add_workflow(db, win_back(0)).await;
    let mut taken = [0; 2];
    for c in 1..=40 {
        let changed = event(&format!("s{c}"), "customer.status_changed", c, json!({}));
        send(&runner, fence, db, changed.clone()).await;
        // A redelivery replays the recorded path; a second event draws the same one.
        send(&runner, fence, db, changed).await;
        send(
            &runner,
            fence,
            db,
            event(&format!("t{c}"), "customer.status_changed", c, json!({})),
        )
        .await;
        let want = assign::split_path(&[50, 50], assign::bucket(c, &id, "1"));
        taken[want] += 1;
        let runs = runs_of(db, c, &id).await;
        assert_eq!(runs.len(), 2, "one run per event: {runs:?}");
        for run in &runs {
            assert_eq!(run.run.status, status::DONE, "{run:?}");
            let shown: Vec<String> = run.steps.iter().filter_map(|s| s.path.clone()).collect();
            assert_eq!(shown, ["0", "1", &format!("1.paths.{want}.0")], "only the path taken");
            assert_eq!(run.steps[1].result, Some(json!({"path": want})));
        }
        let body = if want == 0 { "a" } else { "b" };
        assert_eq!(note_bodies(db, c).await, ["first", body, "first", body]);
    }
    assert!(taken[0] > 10 && taken[1] > 10, "both paths are drawn: {taken:?}");
    t.finish().await;
}

#[actix_rt::test]
async fn held_out_customers_get_a_run_that_performs_nothing_and_limits_count_them() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=40).await;
    let mut definition = win_back(50);
    definition["limits"] = json!({"once_per_customer": true});
    let id = add_workflow(db, definition).await;
    let mut held = 0;
    for c in 1..=40 {
        let first = format!("s{c}");
        let answer = send(
            &runner,
            fence,
            db,
            event(&first, "customer.status_changed", c, json!({})),
        )
        .await;
        assert_eq!(answer, Some(Handled::Recorded));
        send(
            &runner,
            fence,
            db,
            event(&format!("again{c}"), "customer.status_changed", c, json!({})),
        )
        .await;
        let runs = runs_of(db, c, &id).await;
        assert_eq!(runs.len(), 1, "the limit counts held-out runs too: {runs:?}");
        let verdicts = plans::inspect(db.connection(), &first)
            .await
            .unwrap()
            .and_then(|p| p.verdicts)
            .unwrap();
        if assign::held_out(c, &id, 50) {
            held += 1;
            assert_eq!(runs[0].run.status, status::HELD_OUT);
            assert!(runs[0].steps.is_empty(), "{runs:?}");
            assert!(note_bodies(db, c).await.is_empty(), "a held-out run performs nothing");
            assert_eq!(verdicts[0].verdict, "held_out");
        } else {
            assert_eq!(runs[0].run.status, status::DONE);
            assert_eq!(note_bodies(db, c).await.len(), 2);
            assert_eq!(verdicts[0].verdict, "matched");
        }
    }
    assert!((8..=32).contains(&held), "about half held out: {held}");
    t.finish().await;
}

#[actix_rt::test]
async fn a_goal_is_reached_once_by_the_first_matching_event_after_the_run_within_its_window() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=3).await;
    // The trigger is the goal's own type: the event that starts a run never reaches its goal.
    let id = add_workflow(
        db,
        json!({"name": "deposit again", "trigger_event": "customer.deposited",
               "goal": {"event": "customer.deposited", "within": {"days": 7},
                        "conditions": {"field": "event.amount", "operator": "gte", "value": {"field": "trigger.amount"}}},
               "actions": [note("thanks")]}),
    )
    .await;
    let deposit = |id: &str, c: i64, amount: i64| event(id, "customer.deposited", c, json!({"amount": amount}));
    send(&runner, fence, db, deposit("d1", 1, 100)).await;
    let first = runs_of(db, 1, &id).await.remove(0);
    assert_eq!(first.run.goal_reached_at, None, "the trigger is not its own goal");
    // Nor is its redelivery, though it meets the conditions (100 >= 100).
    send(&runner, fence, db, deposit("d1", 1, 100)).await;
    assert_eq!(runs_of(db, 1, &id).await[0].run.goal_reached_at, None, "a redelivery");

    // Smaller than the trigger: not the goal. Its own run starts, watching for its goal.
    clock.advance(Duration::from_secs(3600));
    send(&runner, fence, db, deposit("d2", 1, 50)).await;
    assert_eq!(runs_of(db, 1, &id).await[0].run.goal_reached_at, None);

    // As large: the goal, at this moment; the run of d2 reaches its goal too (150 >= 50).
    clock.advance(Duration::from_secs(3600));
    let reached_at = clock.now();
    send(&runner, fence, db, deposit("d3", 1, 150)).await;
    let runs = runs_of(db, 1, &id).await;
    assert_eq!(runs[0].run.goal_reached_at, Some(reached_at));
    assert_eq!(runs[1].run.goal_reached_at, Some(reached_at));
    assert_eq!(runs[2].run.goal_reached_at, None, "d3's own run");

    // Later matching events change nothing: once per run.
    clock.advance(Duration::from_secs(3600));
    send(&runner, fence, db, deposit("d4", 1, 500)).await;
    let again = runs_of(db, 1, &id).await;
    assert_eq!(again[0].run.goal_reached_at, Some(reached_at));
    assert_eq!(
        again[2].run.goal_reached_at,
        Some(clock.now()),
        "d3's run reached by d4"
    );

    // Past the window: not reached, and the watch is gone.
    send(&runner, fence, db, deposit("late-start", 2, 10)).await;
    clock.advance(Duration::from_secs(8 * 86_400));
    send(&runner, fence, db, deposit("late", 2, 1000)).await;
    assert_eq!(runs_of(db, 2, &id).await[0].run.goal_reached_at, None);
    t.finish().await;
}

/// A goal event reads at most `goals::MAX_PER_EVENT` (1000) watching runs of its
/// customer, so one event's transaction stays bounded however many runs watch; the runs
/// past the bound are reached by the customer's next goal event.
#[actix_rt::test]
async fn one_goal_event_reaches_at_most_a_thousand_runs_and_the_next_one_the_rest() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(
        db,
        json!({"name": "watch", "trigger_event": "customer.status_changed",
               "goal": {"event": "customer.deposited", "within": {"days": 7}},
               "actions": [note("watched")]}),
    )
    .await;
    let bound = workflow_engine::storage::goals::MAX_PER_EVENT as usize;
    for i in 0..=bound {
        send(
            &runner,
            fence,
            db,
            event(&format!("s{i}"), "customer.status_changed", 1, json!({})),
        )
        .await;
    }
    let reached = |runs: &[Run]| runs.iter().filter(|r| r.run.goal_reached_at.is_some()).count();
    assert_eq!(runs_of(db, 1, &id).await.len(), bound + 1);
    clock.advance(Duration::from_secs(60));
    send(
        &runner,
        fence,
        db,
        event("d1", "customer.deposited", 1, json!({"amount": 1})),
    )
    .await;
    assert_eq!(reached(&runs_of(db, 1, &id).await), bound);
    send(
        &runner,
        fence,
        db,
        event("d2", "customer.deposited", 1, json!({"amount": 1})),
    )
    .await;
    assert_eq!(reached(&runs_of(db, 1, &id).await), bound + 1);
    t.finish().await;
}

#[actix_rt::test]
async fn a_goal_with_exit_cancels_the_waiting_run_and_held_out_runs_reach_goals_too() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=30).await;
    let id = add_workflow(
        db,
        json!({"id": "nudge", "name": "nudge", "trigger_event": "customer.registered",
               "holdout": {"percent": 30},
               "goal": {"event": "customer.deposited", "within": {"days": 7}, "exit": true},
               "actions": [{"type": "delay", "params": {"days": 2}}, note("nudge")]}),
    )
    .await;
    for c in 1..=30 {
        send(
            &runner,
            fence,
            db,
            event(&format!("r{c}"), "customer.registered", c, json!({})),
        )
        .await;
        clock.advance(Duration::from_secs(60));
        send(
            &runner,
            fence,
            db,
            event(&format!("d{c}"), "customer.deposited", c, json!({"amount": 10})),
        )
        .await;
        let run = runs_of(db, c, &id).await.remove(0);
        assert!(run.run.goal_reached_at.is_some(), "{run:?}");
        if assign::held_out(c, &id, 30) {
            assert_eq!(run.run.status, status::HELD_OUT, "a held-out run stays held out");
        } else {
            assert_eq!(run.run.status, status::CANCELLED);
            assert_eq!(
                run.run.error.as_deref(),
                Some(&*format!("goal reached: customer.deposited event d{c}"))
            );
        }
    }
    // The cancelled runs' delays are gone: nothing resumes, no nudge is written.
    clock.advance(Duration::from_secs(3 * 86_400));
    assert_eq!(resume_due(&runner, fence, db, &clock).await, 0);
    for c in 1..=30 {
        assert!(note_bodies(db, c).await.is_empty());
    }
    t.finish().await;
}

/// The partition moves between the run and the goal event: the old owner, fenced, marks
/// nothing; the event redelivered to the new owner reaches the goal, once.
#[actix_rt::test]
async fn a_goal_survives_its_partition_moving() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (a, fence_a, owner_a) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=1).await;
    let id = add_workflow(db, win_back(0)).await;
    send(&a, fence_a, db, event("s1", "customer.status_changed", 1, json!({}))).await;
    clock.advance(Duration::from_secs(60));
    let (b, fence_b, _) = owning_runner(db, "node-b", &clock).await;
    let deposit = event("d1", "customer.deposited", 1, json!({"amount": 5}));
    let stale = send(&a, fence_a, db, deposit.clone()).await;
    assert_ne!(stale, Some(Handled::Recorded), "a fenced owner records nothing");
    assert_eq!(runs_of(db, 1, &id).await[0].run.goal_reached_at, None);
    owner_a.revoke(0);
    let reached_at = clock.now();
    send(&b, fence_b, db, deposit.clone()).await;
    clock.advance(Duration::from_secs(60));
    send(&b, fence_b, db, deposit).await;
    assert_eq!(runs_of(db, 1, &id).await[0].run.goal_reached_at, Some(reached_at));
    t.finish().await;
}

/// `GET path` against the API over `db`: `(status, body)`.
async fn get_json(db: &Database, path: &str) -> (u16, Value) {
    let state = common::api_state(db);
    let app = web_test::init_service(
        App::new().configure(move |cfg| workflow_engine::api::configure(cfg, state, 1 << 20, None::<String>)),
    )
    .await;
    let response = web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request()).await;
    let status = response.status().as_u16();
    let body = serde_json::from_slice(&web_test::read_body(response).await).unwrap_or(Value::Null);
    (status, body)
}

/// The stats count the runs table exactly: outcomes, the holdout, goals, each split path,
/// the funnel and the series; the lift comes with its interval once both sides are large
/// enough, and says why not before.
#[actix_rt::test]
async fn stats_count_the_runs_exactly_and_give_the_lift_when_there_are_enough() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=200).await;
    let id = add_workflow(db, win_back(50)).await;
    let since = workflow_engine::clock::rfc3339(t0() - chrono::Duration::hours(1));
    let until = workflow_engine::clock::rfc3339(t0() + chrono::Duration::days(1));
    let uri = format!("/api/v1/workflows/{id}/stats?since={since}&until={until}&bucket=hour");

    for c in 1..=10 {
        send(
            &runner,
            fence,
            db,
            event(&format!("s{c}"), "customer.status_changed", c, json!({})),
        )
        .await;
    }
    let (code, few) = get_json(db, &uri).await;
    assert_eq!(code, 200, "{few}");
    assert_eq!(few["entered"], 10);
    assert_eq!(few["lift"], Value::Null);
    assert!(few["lift_note"].as_str().unwrap().contains("too few runs"), "{few}");

    // The other 190, an hour later; every third customer deposits.
    clock.advance(Duration::from_secs(3600));
    for c in 11..=200 {
        send(
            &runner,
            fence,
            db,
            event(&format!("s{c}"), "customer.status_changed", c, json!({})),
        )
        .await;
    }
    clock.advance(Duration::from_secs(600));
    for c in (3..=200).step_by(3) {
        send(
            &runner,
            fence,
            db,
            event(&format!("d{c}"), "customer.deposited", c, json!({"amount": 1})),
        )
        .await;
    }
    let (code, stats) = get_json(db, &uri).await;
    assert_eq!(code, 200, "{stats}");

    // The same counts, from the runs themselves.
    let mut held = 0u64;
    let (mut goals, mut held_goals) = (0u64, 0u64);
    let mut paths = [(0u64, 0u64); 2];
    for c in 1..=200 {
        let run = runs_of(db, c, &id).await.remove(0);
        let reached = u64::from(run.run.goal_reached_at.is_some());
        assert_eq!(reached, u64::from(c % 3 == 0));
        goals += reached;
        if run.run.status == status::HELD_OUT {
            held += 1;
            held_goals += reached;
        } else {
            let k = run.steps[1].result.as_ref().unwrap()["path"].as_u64().unwrap() as usize;
            paths[k].0 += 1;
            paths[k].1 += reached;
        }
    }
    assert_eq!(stats["entered"], 200);
    assert_eq!(stats["done"], 200 - held);
    assert_eq!(stats["held_out"], held);
    assert_eq!(stats["goal_reached"], goals);
    assert_eq!(stats["failed"], 0);
    assert_eq!(stats["waiting"], 0);
    for (k, (entered, reached)) in paths.iter().enumerate() {
        assert_eq!(
            stats["paths"][format!("1:{k}")],
            json!({"entered": entered, "goal_reached": reached}),
            "{stats}"
        );
    }
    assert_eq!(stats["steps"]["0"], 200 - held, "the funnel: {stats}");
    assert_eq!(stats["steps"]["1"], 200 - held);
    let series = stats["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "two hours with runs: {stats}");
    assert_eq!(series[0]["at"], json!(workflow_engine::clock::rfc3339(t0())));
    assert_eq!(series[0]["entered"], 10);
    assert_eq!(series[1]["entered"], 190);
    let treated_rate = (goals - held_goals) as f64 / (200 - held) as f64;
    let holdout_rate = held_goals as f64 / held as f64;
    let lift = &stats["lift"];
    assert!(
        (lift["treated_rate"].as_f64().unwrap() - treated_rate).abs() < 1e-12,
        "{stats}"
    );
    assert!((lift["holdout_rate"].as_f64().unwrap() - holdout_rate).abs() < 1e-12);
    let (lo, hi) = (lift["ci95"][0].as_f64().unwrap(), lift["ci95"][1].as_f64().unwrap());
    let difference = lift["difference"].as_f64().unwrap();
    assert!(lo < difference && difference < hi, "{lift}");

    // Ranges that start or end inside an hour count exactly there too.
    let within = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        format!(
            "/api/v1/workflows/{id}/stats?since={}&until={}&bucket=hour",
            workflow_engine::clock::rfc3339(from),
            workflow_engine::clock::rfc3339(to)
        )
    };
    let minutes = chrono::Duration::minutes;
    for (from, to, entered) in [
        (t0() - minutes(30), t0() + minutes(30), 10),
        (t0() + minutes(30), t0() + minutes(61), 190),
        (t0() + minutes(1), t0() + minutes(59), 0),
        (t0(), t0() + minutes(60), 10),
        (t0() - minutes(90), t0() + minutes(150), 200),
    ] {
        let (code, part) = get_json(db, &within(from, to)).await;
        assert_eq!(
            (code, &part["entered"]),
            (200, &json!(entered)),
            "{from} to {to}: {part}"
        );
    }

    // Bad input.
    let (code, bad) = get_json(db, &format!("/api/v1/workflows/{id}/stats?bucket=week")).await;
    assert_eq!((code, bad["error"]["path"].clone()), (400, json!("bucket")), "{bad}");
    let (code, _) = get_json(db, "/api/v1/workflows/nope/stats").await;
    assert_eq!(code, 404);
    let (code, _) = get_json(
        db,
        &format!("/api/v1/workflows/{id}/stats?since=2020-01-01T00:00:00Z&bucket=hour"),
    )
    .await;
    assert_eq!(code, 400, "over the most buckets");
    t.finish().await;
}

/// Bad experiments are refused at save with a pointer to the field.
#[test]
fn bad_experiments_are_refused_with_pointers() {
    use workflow_engine::conditions::Limits;
    use workflow_engine::schema::FieldSchema;
    use workflow_engine::validate::Validator;
    let schema = FieldSchema::default();
    let validator = Validator::new(&schema, Limits::default());
    let invalid = validator
        .workflow(&json!({
            "name": "bad", "trigger_event": "customer.registered",
            "holdout": {"percent": 60},
            "goal": {"event": "customer.deposited", "within": {"days": 400}, "exit": "yes"},
            "actions": [
                {"type": "split", "params": {"paths": [
                    {"percent": 50, "actions": [note("a")]},
                    {"percent": 40, "actions": [note("b")]}
                ]}},
                {"type": "split", "params": {"paths": [{"percent": 101, "actions": []}]}},
                {"type": "split", "params": {"paths": []}}
            ]
        }))
        .expect_err("invalid");
    let at: Vec<(String, String)> = invalid
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.message.clone()))
        .collect();
    let has = |path: &str, words: &str| {
        assert!(
            at.iter().any(|(p, m)| p == path && m.contains(words)),
            "no {path:?} problem with {words:?} in {at:#?}"
        )
    };
    has("/holdout/percent", "from 0 to 50");
    has("/goal/within", "at most 366 days");
    has("/goal/exit", "expected true or false");
    has("/actions/0/params/paths", "sum to 90, not 100");
    has("/actions/1/params/paths/0/percent", "from 0 to 100");
    has("/actions/2/params/paths", "non-empty");

    // Empty paths cost no step: a split or a branch of a thousand of them is refused by
    // its own cap, not by the tree's step count.
    let many: Vec<Value> = (0..1000)
        .map(|k| json!({"percent": if k == 0 { 100 } else { 0 }, "actions": []}))
        .collect();
    let branches: Vec<Value> = (0..1000)
        .map(|_| json!({"when": {"field": "event.amount", "operator": "gt", "value": 0}, "actions": []}))
        .collect();
    let wide = validator
        .workflow(
            &json!({"name": "wide", "trigger_event": "customer.registered", "actions": [
                {"type": "split", "params": {"paths": many}},
                {"type": "branch", "params": {"paths": branches}},
                note("after")
            ]}),
        )
        .expect_err("too many paths");
    for at in ["/actions/0/params/paths", "/actions/1/params/paths"] {
        assert!(
            wide.problems
                .iter()
                .any(|p| p.path == at && p.message.contains("more than the maximum of 20")),
            "{at}: {:#?}",
            wide.problems
        );
    }
}

/// The dry run shows what a run would do for this customer: held out (nothing performed)
/// or the split path its stable draw takes, the same as a real run's.
#[actix_rt::test]
async fn the_dry_run_shows_the_holdout_and_the_split_path_a_run_would_take() {
    let t = fresh().await;
    let db = &t.db;
    common::add_customers(db, 1..=20).await;
    let id = add_workflow(db, win_back(30)).await;
    let state = common::api_state(db);
    let app = web_test::init_service(
        App::new().configure(move |cfg| workflow_engine::api::configure(cfg, state, 1 << 20, None::<String>)),
    )
    .await;
    for c in 1..=20 {
        let request = web_test::TestRequest::post()
            .uri("/api/v1/dry-run")
            .set_json(json!({"event": {"id": "dry", "type": "customer.status_changed", "customer_id": c, "data": {}}}))
            .to_request();
        let body: Value = web_test::call_and_read_body_json(&app, request).await;
        let planned = &body["plan"][0];
        if assign::held_out(c, &id, 30) {
            assert_eq!(planned["held_out"], json!(true), "{body:#}");
            assert_eq!(body["evaluated"][0]["held_out"], json!(true));
        } else {
            assert_eq!(planned.get("held_out"), None, "{body:#}");
            let want = assign::split_path(&[50, 50], assign::bucket(c, &id, "1"));
            let split = &planned["previews"][1];
            assert_eq!(split["path"], json!(want), "{split:#}");
            let body = if want == 0 { "a" } else { "b" };
            assert_eq!(split["actions"][0]["rendered"]["body"], json!(body), "{split:#}");
        }
    }
    assert!(runs_of_customer(db, 1).await.is_empty(), "nothing ran");
    t.finish().await;
}
