//! The stats rollup (issue 26) stays exact: whatever the runner, an operator and retention
//! do to runs and their steps, the stats read from the rollup (with its pending deltas,
//! folded or not) equal a count from scratch over the runs and steps themselves
//! (`stats::raw_counts`, `stats::raw_steps`), for ranges that start and end on the hour
//! or inside one, by hour and by day. Runs go through the runner at a [`ManualClock`]:
//! splits, held-out runs, goals reached before and after the split was recorded, waits
//! ended by their event, by their timeout and by a cancel, failures, retries, cancels,
//! redeliveries and a retention pass. A SQLite file, or PostgreSQL with
//! WFE_TEST_DATABASE_URL.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use actix_web::{test as web_test, App};
use chrono::{DateTime, Duration as Span, Utc};
use common::{fresh, t0};
use engine::runs_of_customer;
use harness::{add_workflow, owning_runner, resume_due, send};
use migrations::MigratorTrait;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use workflow_engine::clock::{Clock, ManualClock, SharedClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::retention::prune_once;
use workflow_engine::settings::Retention;
use workflow_engine::storage::runs::status;
use workflow_engine::storage::stats::{self, Bucket, Counted, Steps};
use workflow_engine::storage::{recovery, Database};

const WORKFLOW: &str = "exp";

/// `[since, until)`.
type Range = (DateTime<Utc>, DateTime<Utc>);

fn event(id: &str, event_type: &str, customer_id: i64) -> EventEnvelope {
    EventEnvelope::from_value(json!({
        "id": id, "type": event_type, "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": {"amount": 5}
    }))
    .unwrap()
}

fn note(body: &str) -> Value {
    json!({"type": "add_note", "params": {"body": body}})
}

/// A fifth held out; the rest split: one path waits two hours for a trade, the other fails
/// at a team that does not exist. The goal is a deposit within a week.
fn experiment() -> Value {
    json!({
        "id": WORKFLOW, "name": "experiment", "trigger_event": "customer.status_changed",
        "holdout": {"percent": 20},
        "goal": {"event": "customer.deposited", "within": {"days": 7}},
        "actions": [
            note("first"),
            {"type": "split", "params": {"paths": [
                {"percent": 50, "actions": [
                    note("a"),
                    {"type": "wait_for_event", "name": "trade", "params": {
                        "event": "customer.traded", "timeout": {"hours": 2},
                        "on_event": [note("traded")], "on_timeout": [note("idle"), note("nudge")]}}
                ]},
                {"percent": 50, "actions": [note("b"), {"type": "assign_to_team", "params": {"team_id": 999}}]}
            ]}}
        ]
    })
}

/// The ranges compared: whole history, hours cut at either end, within one hour, exact
/// hours, and by day from the middle of a day.
fn ranges() -> Vec<(Range, Bucket)> {
    let (t, m) = (t0(), Span::minutes);
    vec![
        ((t - Span::days(1), t + Span::days(5)), Bucket::Hour),
        ((t - Span::days(1), t + Span::days(5)), Bucket::Day),
        ((t + m(7), t + m(61)), Bucket::Hour),
        ((t + m(30), t + m(135)), Bucket::Hour),
        ((t + m(60), t + m(120)), Bucket::Hour),
        ((t + m(10), t + m(20)), Bucket::Hour),
        ((t + m(59), t + Span::days(2) + m(47)), Bucket::Hour),
        ((t + m(90), t + Span::days(3)), Bucket::Day),
        ((t + Span::days(2) - m(13), t + Span::days(2) + m(187)), Bucket::Hour),
    ]
}

/// The rollup's answer equals the count from scratch for every range, for both
/// workflows (runs of the other one share the tables and count only for it).
async fn assert_exact(db: &Database, when: &str) {
    for workflow in [WORKFLOW, "plain"] {
        for (range, bucket) in ranges() {
            let rolled = stats::read(db.connection(), workflow, range, bucket).await.unwrap();
            let raw: (Counted, Steps) = (
                stats::raw_counts(db.connection(), workflow, range, bucket)
                    .await
                    .unwrap(),
                stats::raw_steps(db.connection(), workflow, range).await.unwrap(),
            );
            assert_eq!(rolled, raw, "{when}: {workflow} over {range:?} by {bucket:?}");
        }
    }
}

/// The whole history of the experiment, from scratch.
async fn whole(db: &Database) -> (Counted, Steps) {
    let range = (t0() - Span::days(1), t0() + Span::days(5));
    (
        stats::raw_counts(db.connection(), WORKFLOW, range, Bucket::Hour)
            .await
            .unwrap(),
        stats::raw_steps(db.connection(), WORKFLOW, range).await.unwrap(),
    )
}

/// GET `path` against the API over `db`: `(status, body)`.
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

/// The API answers what the count from scratch says, in its JSON shape.
async fn assert_api_exact(db: &Database, (since, until): Range, bucket: &str) {
    let uri = format!(
        "/api/v1/workflows/{WORKFLOW}/stats?since={}&until={}&bucket={bucket}",
        workflow_engine::clock::rfc3339(since),
        workflow_engine::clock::rfc3339(until)
    );
    let (code, got) = get_json(db, &uri).await;
    assert_eq!(code, 200, "{got}");
    let b = Bucket::from_name(bucket).unwrap();
    let counted = stats::raw_counts(db.connection(), WORKFLOW, (since, until), b)
        .await
        .unwrap();
    let steps = stats::raw_steps(db.connection(), WORKFLOW, (since, until))
        .await
        .unwrap();
    let c = counted.counts;
    let want = json!({
        "entered": c.entered, "done": c.done, "failed": c.failed, "cancelled": c.cancelled,
        "waiting": c.waiting, "held_out": c.held_out, "goal_reached": c.goal_reached,
        "paths": steps.paths.iter().map(|(k, (n, g))| (k.clone(), json!({"entered": n, "goal_reached": g})))
            .collect::<serde_json::Map<_, _>>(),
        "steps": steps.steps,
        "series": counted.series.iter().map(|(at, c)| json!({
            "at": workflow_engine::clock::rfc3339(*at), "entered": c.entered, "done": c.done,
            "failed": c.failed, "goal_reached": c.goal_reached})).collect::<Vec<_>>(),
    });
    for field in [
        "entered",
        "done",
        "failed",
        "cancelled",
        "waiting",
        "held_out",
        "goal_reached",
        "paths",
        "steps",
        "series",
    ] {
        assert_eq!(got[field], want[field], "{field} over {uri}: {got}");
    }
}

/// The runs of `customer` of the experiment, oldest first.
async fn experiment_runs(db: &Database, customer: i64) -> Vec<workflow_engine::storage::runs::Run> {
    let mut runs: Vec<_> = runs_of_customer(db, customer)
        .await
        .into_iter()
        .filter(|r| r.run.workflow_id == WORKFLOW)
        .collect();
    runs.sort_by_key(|r| r.run.id);
    runs
}

#[actix_rt::test]
async fn the_rollup_equals_a_count_from_scratch_through_everything_runs_go_through() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0() + Span::minutes(5));
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=60).await;
    add_workflow(db, experiment()).await;
    add_workflow(
        db,
        json!({"id": "plain", "name": "plain", "trigger_event": "customer.status_changed", "actions": [note("plain")]}),
    )
    .await;

    // Thirty customers enter over an hour and a half, three minutes apart; one event is
    // delivered twice (a replay records nothing new).
    for c in 1..=30 {
        let entered = event(&format!("s{c}"), "customer.status_changed", c);
        send(&runner, fence, db, entered.clone()).await;
        if c == 4 {
            send(&runner, fence, db, entered).await;
        }
        clock.advance(Duration::from_secs(180));
    }
    // Every third deposits: the goal, after the split step was recorded (and for held-out
    // runs, which have no steps).
    for c in (3..=30).step_by(3) {
        send(&runner, fence, db, event(&format!("d{c}"), "customer.deposited", c)).await;
    }
    // Some waiting runs trade: their waits end by the event.
    for c in (1..=30).filter(|c| c % 4 == 1) {
        send(&runner, fence, db, event(&format!("x{c}"), "customer.traded", c)).await;
    }
    resume_due(&runner, fence, db, &clock).await;
    assert_exact(db, "after entering, goals and trades").await;

    // Operators: failed runs are retried (they fail again) or cancelled; some waiting
    // runs are cancelled.
    let now = clock.now();
    for c in 1..=30 {
        for run in experiment_runs(db, c).await {
            let id = run.run.id;
            match run.run.status.as_str() {
                status::FAILED if c % 2 == 0 => recovery::retry(db, id, now).await.unwrap(),
                status::FAILED if c % 3 == 0 => recovery::cancel(db, id, "enough", now).await.unwrap(),
                status::WAITING if c % 5 == 0 => recovery::cancel(db, id, "enough", now).await.unwrap(),
                _ => {}
            }
        }
    }
    assert_exact(db, "after retries were queued and cancels").await;
    resume_due(&runner, fence, db, &clock).await;
    assert_exact(db, "after the retries failed again").await;

    // Half the deltas folded, then the rest: exact either way.
    stats::compact(db, 40).await.unwrap();
    assert_exact(db, "after a partial compaction").await;
    // The rest of the waits time out.
    clock.advance(Duration::from_secs(3 * 3600));
    resume_due(&runner, fence, db, &clock).await;
    let folded = stats::compact_all(db, 25).await.unwrap();
    // SQLite's triggers add to the rollup at once; PostgreSQL's leave deltas to fold.
    let deltas = db.connection().get_database_backend() == sea_orm::DbBackend::Postgres;
    assert_eq!(folded > 0, deltas, "{folded} deltas folded");
    assert_exact(db, "after the timeouts and a full compaction").await;

    // What this history holds, so the comparisons above compare something.
    let (counted, steps) = whole(db).await;
    let c = counted.counts;
    assert_eq!(c.entered, 30);
    assert!(c.held_out > 0 && c.failed > 0 && c.cancelled > 0 && c.done > 0, "{c:?}");
    assert!(
        c.goal_reached > c.held_out_goal_reached && c.held_out_goal_reached > 0,
        "{c:?}"
    );
    assert_eq!(steps.paths.len(), 2, "{steps:?}");
    assert!(steps.paths.values().any(|(_, goals)| *goals > 0), "{steps:?}");
    assert!(steps.steps.keys().any(|k| k.contains("on_timeout")), "{steps:?}");
    assert!(steps.steps.keys().any(|k| k.contains("on_event")), "{steps:?}");

    // Two days later: thirty more customers, and ten of the first come back, over three
    // hours; some deposit, some waits end by a trade.
    clock.advance(Duration::from_secs(2 * 86_400 - 5 * 3600));
    for c in 1..=40 {
        let customer = if c <= 30 { c + 30 } else { c - 30 };
        send(
            &runner,
            fence,
            db,
            event(&format!("n{c}"), "customer.status_changed", customer),
        )
        .await;
        clock.advance(Duration::from_secs(270));
    }
    for c in (31..=60).step_by(4) {
        send(&runner, fence, db, event(&format!("d{c}"), "customer.deposited", c)).await;
        send(&runner, fence, db, event(&format!("x{c}"), "customer.traded", c)).await;
    }
    resume_due(&runner, fence, db, &clock).await;
    assert_exact(db, "after the second wave").await;
    assert_api_exact(db, (t0() - Span::days(1), t0() + Span::days(4)), "day").await;
    assert_api_exact(
        db,
        (t0() + Span::minutes(30), t0() + Span::days(2) + Span::minutes(95)),
        "hour",
    )
    .await;

    // Retention deletes the ended runs of the first wave (steps first, then runs), some
    // of them folded into the rollup, some still deltas.
    send(&runner, fence, db, event("late", "customer.deposited", 57)).await;
    let clock_now: SharedClock = Arc::new(ManualClock::new(clock.now()));
    let policy = Retention {
        runs_days: 1,
        plans_days: 0,
        outbox_days: 0,
        versions_keep: 0,
        batch_size: 7,
        pause_ms: 0,
        interval_secs: 3600,
        audit_days: 0,
    };
    let pruned = prune_once(db, &clock_now, &policy).await.unwrap();
    assert!(pruned.runs > 20, "{pruned:?}");
    assert_exact(db, "after retention").await;
    stats::compact_all(db, 1000).await.unwrap();
    assert!(
        stats::prune_empty(db.connection()).await.unwrap() > 0,
        "pruned runs left empty rows"
    );
    assert_exact(db, "after retention, compaction and the sweep").await;
    assert_api_exact(db, (t0() - Span::days(1), t0() + Span::days(4)), "hour").await;
    let (left, _) = whole(db).await;
    assert!(left.counts.entered < 70 && left.counts.entered > 20, "{left:?}");
    t.finish().await;
}

/// An existing database gets its rollup from the rows it holds when migration 000024
/// runs: the migration undone and done again, the stats are the same as from scratch.
#[actix_rt::test]
async fn the_migration_fills_the_rollup_from_existing_runs() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0() + Span::minutes(25));
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=20).await;
    add_workflow(db, experiment()).await;
    add_workflow(
        db,
        json!({"id": "plain", "name": "plain", "trigger_event": "customer.status_changed", "actions": [note("plain")]}),
    )
    .await;
    for c in 1..=20 {
        send(
            &runner,
            fence,
            db,
            event(&format!("s{c}"), "customer.status_changed", c),
        )
        .await;
        clock.advance(Duration::from_secs(400));
    }
    for c in (2..=20).step_by(2) {
        send(&runner, fence, db, event(&format!("d{c}"), "customer.deposited", c)).await;
    }
    migrations::Migrator::down(db.connection(), Some(1)).await.unwrap();
    db.migrate().await.unwrap();
    let (counted, _) = whole(db).await;
    assert_eq!(counted.counts.entered, 20);
    assert_exact(db, "after the backfill").await;
    t.finish().await;
}
