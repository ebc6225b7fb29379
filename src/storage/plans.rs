//! The recorded plan of an event: which workflows it matched the first time it was
//! handled, even none, and what identified that event.
//!
//! Kafka redelivers an event after a crash or a rebalance; by then the customer may have
//! changed (earlier runs of the same event changed it) and so may the workflow set. Planning
//! again could start runs the first delivery never started. The plan is recorded in the
//! transaction that records the event's runs, keyed by event id, and a redelivery replays
//! it: the same runs, continued where they stopped, and nothing new.
//!
//! An id alone does not make a redelivery: the plan keeps the event's customer, type and
//! digest ([`identity`](crate::guards::identity)), and only the same event may replay it.

use super::sql::statement;
use super::StorageError;
use crate::guards::identity::{self, Identity};
use crate::verdict::Verdict;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::Value;

/// A plan as the event inspector reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspected {
    pub workflows: Vec<String>,
    /// `None` on plans recorded before verdicts were.
    pub verdicts: Option<Vec<Verdict>>,
    pub partition: i32,
    pub created_at: DateTime<Utc>,
}

/// A plan as recorded: the workflows, in execution order, and what identified the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub workflows: Vec<String>,
    pub identity: identity::Recorded,
}

/// Records that the event `identity` describes, `event_id`, matched `workflow_ids` (in
/// execution order), with the verdict on every workflow of its trigger. Returns false,
/// changing nothing, when a plan was recorded under `event_id` before: the caller judges
/// whether the event is the one that recorded it ([`judge`]) and replays it if so.
#[allow(clippy::too_many_arguments)]
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    event_id: &str,
    identity: &Identity,
    partition: i32,
    workflow_ids: &[String],
    verdicts: &[Verdict],
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let workflows = Value::from(workflow_ids.to_vec());
    let verdicts = serde_json::to_value(verdicts).map_err(|source| StorageError::Encode {
        what: "verdicts",
        source,
    })?;
    let inserted = conn
        .execute(statement(
            conn,
            "INSERT INTO event_plans (event_id, partition, workflows, created_at, customer_id, event_type, digest, verdicts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
            vec![
                event_id.into(),
                partition.into(),
                workflows.into(),
                now.into(),
                identity.customer_id.into(),
                identity.event_type.as_str().into(),
                identity.digest.as_str().into(),
                verdicts.into(),
            ],
        ))
        .await?
        .rows_affected();
    Ok(inserted > 0)
}

/// The plan recorded under `event_id`, if any. A plan recorded before the identity was
/// kept gets the customer and type its runs were recorded with (`None` without runs).
pub async fn get<C: ConnectionTrait>(conn: &C, event_id: &str) -> Result<Option<Plan>, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT workflows, customer_id, event_type, digest FROM event_plans WHERE event_id = $1",
            vec![event_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let workflows: Value = row.try_get("", "workflows")?;
    let mut identity = identity::Recorded {
        customer_id: row.try_get("", "customer_id")?,
        event_type: row.try_get("", "event_type")?,
        digest: row.try_get("", "digest")?,
    };
    if identity.customer_id.is_none() && identity.event_type.is_none() {
        if let Some(run) = conn
            .query_one(statement(
                conn,
                "SELECT customer_id, \"trigger\" FROM runs WHERE event_id = $1 ORDER BY id LIMIT 1",
                vec![event_id.into()],
            ))
            .await?
        {
            identity.customer_id = Some(run.try_get("", "customer_id")?);
            identity.event_type = Some(run.try_get("", "trigger")?);
        }
    }
    Ok(Some(Plan {
        workflows: workflows
            .as_array()
            .map(|ids| ids.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        identity,
    }))
}

/// The plan recorded under `event_id`, with its verdicts, for the event inspector.
pub async fn inspect<C: ConnectionTrait>(conn: &C, event_id: &str) -> Result<Option<Inspected>, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT workflows, verdicts, partition, created_at FROM event_plans WHERE event_id = $1",
            vec![event_id.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let workflows: Value = row.try_get("", "workflows")?;
    let verdicts: Option<Value> = row.try_get("", "verdicts")?;
    Ok(Some(Inspected {
        workflows: serde_json::from_value(workflows).unwrap_or_default(),
        // A verdict list this version cannot read is shown as none rather than failing the
        // whole inspection.
        verdicts: verdicts.and_then(|v| serde_json::from_value(v).ok()),
        partition: row.try_get("", "partition")?,
        created_at: row.try_get("", "created_at")?,
    }))
}
