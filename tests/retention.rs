//! Retention: pruning deletes only what is old and ended, and keeps every event plan whose
//! runs are still there. Time is a fixed `now` on a manual clock; the database is a fresh
//! SQLite file, or PostgreSQL with WFE_TEST_DATABASE_URL.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::t0;
use sea_orm::ConnectionTrait;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use workflow_engine::clock::{ManualClock, SharedClock};
use workflow_engine::conditions::Limits;
use workflow_engine::retention::{prune_once, Pruned};
use workflow_engine::schema::FieldSchema;
use workflow_engine::settings::Retention;
use workflow_engine::storage::sql::statement;
use workflow_engine::storage::{workflows, Database};
use workflow_engine::validate::Validator;

/// "Now" in these tests: 100 days after t0. Rows dated t0 are old, rows a day before now
/// are recent.
fn now() -> DateTime<Utc> {
    t0() + Duration::days(100)
}

fn policy(days: u32) -> Retention {
    Retention {
        runs_days: days,
        plans_days: days,
        outbox_days: days,
        versions_keep: 0,
        audit_days: 0,
        // Small, so one round takes several batches.
        batch_size: 2,
        pause_ms: 0,
        interval_secs: 3600,
    }
}

async fn exec(db: &Database, sql: &str, values: Vec<sea_orm::Value>) {
    db.execute(statement(db, sql, values))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A run of `event_id` with `status`, last updated `at`, with two steps.
async fn run(db: &Database, id: i64, event_id: &str, status: &str, at: DateTime<Utc>) {
    exec(
        db,
        "INSERT INTO runs (id, event_id, workflow_id, workflow_version, customer_id, trigger, partition, event, \
         status, next_step, created_at, updated_at) VALUES ($1, $2, 'w', 1, 7, 'customer.deposited', 0, $3, $4, 0, $5, $5)",
        vec![id.into(), event_id.into(), json!({"id": event_id}).into(), status.into(), at.into()],
    )
    .await;
    for step in 0..2 {
        exec(
            db,
            "INSERT INTO run_steps (run_id, step_index, action_type, status, attempts) VALUES ($1, $2, 'add_note', 'done', 1)",
            vec![id.into(), step.into()],
        )
        .await;
    }
}

async fn plan(db: &Database, event_id: &str, at: DateTime<Utc>) {
    exec(
        db,
        "INSERT INTO event_plans (event_id, partition, workflows, created_at) VALUES ($1, 0, $2, $3)",
        vec![event_id.into(), json!(["w"]).into(), at.into()],
    )
    .await;
}

async fn message(db: &Database, key: &str, status: &str, at: DateTime<Utc>) {
    exec(
        db,
        "INSERT INTO outbox (kind, customer_id, payload, idempotency_key, status, attempts, next_attempt_at, created_at) \
         VALUES ('webhook', 7, $1, $2, $3, 1, $4, $4)",
        vec![json!({}).into(), key.into(), status.into(), at.into()],
    )
    .await;
}

async fn texts(db: &Database, sql: &str) -> BTreeSet<String> {
    db.query_all(statement(db, sql, vec![]))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

async fn count(db: &Database, sql: &str) -> i64 {
    let row = db.query_one(statement(db, sql, vec![])).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Old runs in every status, a recent one, plans with and without runs, and outbox
/// messages in every status.
async fn history(db: &Database) {
    let (old, recent) = (t0(), now() - Duration::days(1));
    for (id, status) in [
        (1, "done"),
        (2, "failed"),
        (3, "cancelled"),
        (4, "waiting"),
        (5, "running"),
        (6, "pending"),
    ] {
        run(db, id, &format!("ev-{id}"), status, old).await;
    }
    run(db, 7, "ev-7", "done", recent).await;
    for id in 1..=8 {
        plan(db, &format!("ev-{id}"), old).await;
    }
    plan(db, "ev-9", recent).await;
    message(db, "old-delivered", "delivered", old).await;
    message(db, "old-failed", "failed", old).await;
    message(db, "old-pending", "pending", old).await;
    message(db, "recent-delivered", "delivered", recent).await;
}

#[actix_rt::test]
async fn pruning_deletes_only_what_is_old_and_ended() {
    let test = common::fresh().await;
    let db = &test.db;
    history(db).await;
    let clock: SharedClock = Arc::new(ManualClock::new(now()));

    let pruned = prune_once(db, &clock, &policy(30)).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            runs: 3,
            plans: 4,
            outbox: 2,
            versions: 0,
            goals: 0,
            contact: 0,
            audit: 0
        }
    );
    assert_eq!(
        texts(db, "SELECT event_id FROM runs").await,
        set(&["ev-4", "ev-5", "ev-6", "ev-7"]),
        "runs that have not ended stay whatever their age, and recent ones"
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM run_steps").await,
        8,
        "the steps of the runs left, and only those"
    );
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM run_steps WHERE run_id IN (1, 2, 3)").await,
        0
    );
    assert_eq!(
        texts(db, "SELECT event_id FROM event_plans").await,
        set(&["ev-4", "ev-5", "ev-6", "ev-7", "ev-9"]),
        "a plan whose runs are still there stays; old plans without runs go"
    );
    assert_eq!(
        texts(db, "SELECT idempotency_key FROM outbox").await,
        set(&["old-pending", "recent-delivered"]),
        "a message not delivered yet stays"
    );

    let again = prune_once(db, &clock, &policy(30)).await.unwrap();
    assert_eq!(again, Pruned::default(), "nothing more to prune");
    test.finish().await;
}

#[actix_rt::test]
async fn zero_days_keeps_everything() {
    let test = common::fresh().await;
    let db = &test.db;
    history(db).await;
    let clock: SharedClock = Arc::new(ManualClock::new(now()));
    let pruned = prune_once(db, &clock, &policy(0)).await.unwrap();
    assert_eq!(pruned, Pruned::default());
    assert_eq!(count(db, "SELECT COUNT(*) FROM runs").await, 7);
    assert_eq!(count(db, "SELECT COUNT(*) FROM event_plans").await, 9);
    assert_eq!(count(db, "SELECT COUNT(*) FROM outbox").await, 4);
    test.finish().await;
}

/// A run of workflow `workflow_id` at `version` with `status`.
async fn run_of_version(db: &Database, id: i64, workflow_id: &str, version: i64, status: &str) {
    exec(
        db,
        "INSERT INTO runs (id, event_id, workflow_id, workflow_version, customer_id, trigger, partition, event, \
         status, next_step, created_at, updated_at) VALUES ($1, $2, $3, $4, 7, 'test.versions', 0, $5, $6, 0, $7, $7)",
        vec![
            id.into(),
            format!("ev-v{id}").into(),
            workflow_id.into(),
            version.into(),
            json!({}).into(),
            status.into(),
            now().into(),
        ],
    )
    .await;
}

/// Issue 22: version history grows with every save and had no bound. With
/// `retention.versions_keep`, a workflow keeps its newest versions, its current one, and
/// every version a run still needs (waiting runs resume with it, failed ones may be
/// retried); the rest go, and saving goes on numbering where it was.
#[actix_rt::test]
async fn version_history_keeps_the_newest_and_what_runs_still_need() {
    let test = common::fresh().await;
    let db = &test.db;
    let schema = FieldSchema::default();
    let definition = |n: i64| {
        Validator::new(&schema, Limits::default())
            .workflow(
                &json!({"id": "kept", "name": format!("save {n}"), "trigger_event": "test.versions",
                              "actions": [{"type": "add_note", "params": {"body": "n"}}]}),
            )
            .unwrap()
            .workflow
    };
    workflows::create(db, &definition(1), "alice").await.unwrap();
    for n in 2..=6 {
        workflows::update(db, "kept", &definition(n), None, "alice")
            .await
            .unwrap();
    }
    // Another workflow with one version: its only version is its current one.
    workflows::create(
        db,
        &Validator::new(&schema, Limits::default())
            .workflow(&json!({"id": "single", "name": "one", "trigger_event": "test.versions",
                              "actions": [{"type": "add_note", "params": {"body": "n"}}]}))
            .unwrap()
            .workflow,
        "alice",
    )
    .await
    .unwrap();
    for (id, version, status) in [(1, 1, "failed"), (2, 2, "waiting"), (3, 3, "done"), (4, 4, "cancelled")] {
        run_of_version(db, id, "kept", version, status).await;
    }
    let clock: SharedClock = Arc::new(ManualClock::new(now()));

    let mut keep_two = policy(0);
    keep_two.versions_keep = 2;
    let pruned = prune_once(db, &clock, &keep_two).await.unwrap();
    assert_eq!(pruned.versions, 2, "{pruned:?}");
    let versions = |id: &'static str| async move {
        workflows::versions(db.connection(), id)
            .await
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>()
    };
    assert_eq!(versions("kept").await, [1, 2, 5, 6]);
    assert_eq!(versions("single").await, [1]);
    assert_eq!(prune_once(db, &clock, &keep_two).await.unwrap(), Pruned::default());

    let saved = workflows::update(db, "kept", &definition(7), None, "alice")
        .await
        .unwrap();
    assert_eq!(saved.version, 7);
    assert_eq!(
        prune_once(db, &clock, &policy(0)).await.unwrap(),
        Pruned::default(),
        "0 keeps all"
    );
    test.finish().await;
}
