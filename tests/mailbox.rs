//! The executor's mailbox is the customer's queue, so its depth meter counts work not done:
//! under a slow database it rises with what waits and falls as the work is done. Alone in
//! its test binary, as the meters are process-wide.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;

use engine::{note_bodies, Engine, PATIENCE};
use sea_orm::ConnectionTrait;
use serde_json::json;
use std::time::Duration;
use workflow_engine::metrics::Metrics;
use workflow_engine::storage::Database;

#[actix_rt::test]
async fn the_executor_mailbox_depth_rises_and_falls_with_real_work() {
    let mut e = Engine::new(|_| {}).await;
    e.add_customers([7]).await;
    e.add_workflow(json!({"name": "note", "trigger_event": "customer.deposited",
        "actions": [{"type": "add_note", "params": {"body": "deposit {{event.amount}}"}}]}))
        .await;
    e.start().await;
    let depth = || Metrics::global().mailbox("executor").depth();
    assert_eq!(depth(), 0);

    // Another connection holds the notes table (PostgreSQL) or the database's write lock
    // (SQLite): every note waits.
    let blocker = Database::connect_with_pool(&e.test.url, Some(1)).await.unwrap();
    if e.test.is_postgres() {
        blocker.execute_unprepared("BEGIN").await.unwrap();
        blocker
            .execute_unprepared("LOCK TABLE notes IN EXCLUSIVE MODE")
            .await
            .unwrap();
    } else {
        blocker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();
    }
    let events: Vec<_> = (1..=5)
        .map(|i| json!({"id": format!("m-{i}"), "type": "customer.deposited", "customer_id": 7, "data": {"amount": i}}))
        .collect();
    e.publish_all(&events).await;
    // One in progress, four queued behind it: five pieces of work not done.
    eventually!(
        "the depth to count the waiting work",
        PATIENCE,
        (depth() == 5).then_some(())
    );
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(depth(), 5, "nothing is done while the database is held");
    assert!(note_bodies(e.db(), 7).await.is_empty());

    blocker.execute_unprepared("COMMIT").await.unwrap();
    eventually!("the depth to fall to zero", PATIENCE, (depth() == 0).then_some(()));
    assert_eq!(
        note_bodies(e.db(), 7).await,
        ["deposit 1", "deposit 2", "deposit 3", "deposit 4", "deposit 5"]
    );
    blocker.close().await.unwrap();
    e.finish().await;
}
