//! The recorded plan of an event: which workflows it matched the first time it was
//! handled, even none.
//!
//! Kafka redelivers an event after a crash or a rebalance; by then the customer may have
//! changed (earlier runs of the same event changed it) and so may the workflow set. Planning
//! again could start runs the first delivery never started. The plan is recorded in the
//! transaction that records the event's runs, keyed by event id, and a redelivery replays
//! it: the same runs, continued where they stopped, and nothing new.

use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::Value;

/// Records that `event_id` matched `workflow_ids` (in execution order). Returns false,
/// changing nothing, when the event's plan was recorded before: the caller replays it.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    event_id: &str,
    partition: i32,
    workflow_ids: &[String],
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let workflows = Value::from(workflow_ids.to_vec());
    let inserted = conn
        .execute(statement(
            conn,
            "INSERT INTO event_plans (event_id, partition, workflows, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (event_id) DO NOTHING",
            vec![event_id.into(), partition.into(), workflows.into(), now.into()],
        ))
        .await?
        .rows_affected();
    Ok(inserted > 0)
}

/// The workflows `event_id` matched, in execution order, if its plan was recorded.
pub async fn get<C: ConnectionTrait>(conn: &C, event_id: &str) -> Result<Option<Vec<String>>, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT workflows FROM event_plans WHERE event_id = $1",
            vec![event_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let workflows: Value = row.try_get("", "workflows")?;
    Ok(Some(
        workflows
            .as_array()
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
    ))
}
