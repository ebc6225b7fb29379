//! Workflows and their history. Every save (create, update, soft delete) writes a
//! `workflow_versions` row saying who changed what and when, and bumps the change counter
//! ([`super::changes`]) in the same transaction, so nodes polling the counter reload
//! exactly when something changed and never see a workflow without its history. Loading
//! the live set from these rows (validating and compiling them) is [`crate::live`]'s.

use super::entities::{workflow_versions, workflows};
use super::{Database, StorageError};
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// What a version row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Deleted,
    /// Saved as a draft: it does not run until published ([`super::drafts`]).
    Draft,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Deleted => "deleted",
            Change::Draft => "draft",
        }
    }
}

/// Who saves: the author recorded on the version (the token's name, or a label when auth
/// is off) and the actor of its audit row (the token's name, or "anonymous"). A plain
/// `&str` is both, for callers inside the engine (seed, demo, tests).
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    pub author: &'a str,
    pub actor: &'a str,
}

impl<'a> From<&'a str> for By<'a> {
    fn from(name: &'a str) -> Self {
        By {
            author: name,
            actor: name,
        }
    }
}

/// The audit row of a workflow change, written in the change's transaction.
pub(super) async fn audit<C: ConnectionTrait>(
    conn: &C,
    by: By<'_>,
    action: &str,
    id: &str,
    versions: (Option<i64>, Option<i64>),
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let change = super::audit::Change {
        actor: by.actor,
        action,
        subject_kind: "workflow",
        subject_id: id.to_owned(),
        before_version: versions.0,
        after_version: versions.1,
        detail: None,
    };
    super::audit::record(conn, &change, now).await
}

/// A stored workflow. `definition` is the whole workflow JSON, id and version included;
/// it is validated again when loaded, against the schema of that moment.
pub type StoredWorkflow = workflows::Model;

/// One saved version of a workflow.
pub type WorkflowVersion = workflow_versions::Model;

/// Saves a new workflow, with `workflow.id` when given, else a generated one.
pub async fn create<'a>(
    db: &Database,
    workflow: &Workflow,
    changed_by: impl Into<By<'a>>,
) -> Result<StoredWorkflow, StorageError> {
    let by = changed_by.into();
    let id = workflow.id.clone().unwrap_or_else(generate_id);
    let now = Utc::now();
    let txn = db.begin().await?;
    if workflows::Entity::find_by_id(id.clone()).one(&txn).await?.is_some() {
        return Err(StorageError::WorkflowExists(id));
    }
    let definition = definition(workflow, &id, 1)?;
    let row = workflows::ActiveModel {
        id: Set(id.clone()),
        name: Set(workflow.name.clone()),
        trigger_event: Set(workflow.trigger_event.clone()),
        active: Set(workflow.active),
        priority: Set(workflow.priority),
        stop_after: Set(workflow.stop_after),
        definition: Set(definition.clone()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        published: Set(true),
    }
    .insert(&txn)
    .await?;
    record_version(&txn, &id, 1, definition, Change::Created, by.author, now).await?;
    audit(&txn, by, "workflow.create", &id, (None, Some(1)), now).await?;
    txn.commit().await?;
    Ok(row)
}

/// Replaces a live workflow's definition, as a new version. With `expected`, only if the
/// stored version is that one (optimistic concurrency: a client that read version N may
/// only replace version N), checked on the row locked in the transaction, so two saves
/// made from the same version cannot both succeed.
pub async fn update<'a>(
    db: &Database,
    id: &str,
    workflow: &Workflow,
    expected: Option<i64>,
    changed_by: impl Into<By<'a>>,
) -> Result<StoredWorkflow, StorageError> {
    let by = changed_by.into();
    let now = Utc::now();
    let txn = db.begin().await?;
    let current = locked(&txn, id)
        .await?
        .ok_or_else(|| StorageError::WorkflowNotFound(id.to_owned()))?;
    // Against the newest saved version, a draft included: a client that read version N
    // replaces N, not a draft someone saved since.
    let newest = newest_version(&txn, id).await?.unwrap_or(current.version);
    if let Some(expected) = expected.filter(|v| *v != newest) {
        return Err(StorageError::VersionConflict {
            id: id.to_owned(),
            current: newest,
            expected,
        });
    }
    let before = current.published.then_some(current.version);
    let version = newest + 1;
    let definition = definition(workflow, id, version)?;
    let mut row: workflows::ActiveModel = current.into();
    row.name = Set(workflow.name.clone());
    row.trigger_event = Set(workflow.trigger_event.clone());
    row.active = Set(workflow.active);
    row.priority = Set(workflow.priority);
    row.stop_after = Set(workflow.stop_after);
    row.definition = Set(definition.clone());
    row.version = Set(version);
    row.updated_at = Set(now);
    row.published = Set(true);
    let row = row.update(&txn).await?;
    // The version row's primary key (workflow_id, version) makes a concurrent save of the
    // same version fail here instead of overwriting silently.
    record_version(&txn, id, version, definition, Change::Updated, by.author, now).await?;
    audit(&txn, by, "workflow.update", id, (before, Some(version)), now).await?;
    txn.commit().await?;
    Ok(row)
}

/// Soft-deletes a workflow: it stops running and leaves lists, its history stays.
pub async fn delete<'a>(
    db: &Database,
    id: &str,
    changed_by: impl Into<By<'a>>,
) -> Result<StoredWorkflow, StorageError> {
    let by = changed_by.into();
    let now = Utc::now();
    let txn = db.begin().await?;
    let current = live(&txn, id).await?;
    let before = current.version;
    let version = newest_version(&txn, id).await?.unwrap_or(current.version) + 1;
    let definition = current.definition.clone();
    let mut row: workflows::ActiveModel = current.into();
    row.active = Set(false);
    row.version = Set(version);
    row.updated_at = Set(now);
    row.deleted_at = Set(Some(now));
    let row = row.update(&txn).await?;
    record_version(&txn, id, version, definition, Change::Deleted, by.author, now).await?;
    audit(&txn, by, "workflow.delete", id, (Some(before), Some(version)), now).await?;
    txn.commit().await?;
    Ok(row)
}

/// A live (not deleted) workflow.
pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<StoredWorkflow>, StorageError> {
    Ok(workflows::Entity::find_by_id(id.to_owned())
        .filter(workflows::Column::DeletedAt.is_null())
        .one(conn)
        .await?)
}

/// Every live workflow, in execution order (priority, then id).
pub async fn list<C: ConnectionTrait>(conn: &C) -> Result<Vec<StoredWorkflow>, StorageError> {
    Ok(workflows::Entity::find()
        .filter(workflows::Column::DeletedAt.is_null())
        .order_by_asc(workflows::Column::Priority)
        .order_by_asc(workflows::Column::Id)
        .all(conn)
        .await?)
}

/// The live workflows that run on events: published ones only, so a workflow that has
/// only drafts never runs (its row is inactive too; this says it twice).
pub async fn list_active<C: ConnectionTrait>(conn: &C) -> Result<Vec<StoredWorkflow>, StorageError> {
    Ok(workflows::Entity::find()
        .filter(workflows::Column::DeletedAt.is_null())
        .filter(workflows::Column::Active.eq(true))
        .filter(workflows::Column::Published.eq(true))
        .order_by_asc(workflows::Column::Priority)
        .order_by_asc(workflows::Column::Id)
        .all(conn)
        .await?)
}

/// Every saved version of a workflow, oldest first, deleted workflows included.
pub async fn versions<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Vec<WorkflowVersion>, StorageError> {
    Ok(workflow_versions::Entity::find()
        .filter(workflow_versions::Column::WorkflowId.eq(id))
        .order_by_asc(workflow_versions::Column::Version)
        .all(conn)
        .await?)
}

/// The newest `limit` versions of workflow `id`, oldest first: read in SQL, so a workflow
/// with a long history costs what is asked for, not its whole history.
pub async fn newest_versions<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    limit: u64,
) -> Result<Vec<WorkflowVersion>, StorageError> {
    let mut rows = workflow_versions::Entity::find()
        .filter(workflow_versions::Column::WorkflowId.eq(id))
        .order_by_desc(workflow_versions::Column::Version)
        .limit(limit.max(1))
        .all(conn)
        .await?;
    rows.reverse();
    Ok(rows)
}

/// Version `version` of workflow `id`, if it was saved (one row, by its key).
pub async fn version<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    version: i64,
) -> Result<Option<WorkflowVersion>, StorageError> {
    Ok(workflow_versions::Entity::find()
        .filter(workflow_versions::Column::WorkflowId.eq(id))
        .filter(workflow_versions::Column::Version.eq(version))
        .one(conn)
        .await?)
}

/// The row of workflow `id` (not deleted), locked until the transaction ends on PostgreSQL
/// (SQLite's one writer needs no lock), so two saves or publishes of it go one after the
/// other.
pub(super) async fn locked(txn: &DatabaseTransaction, id: &str) -> Result<Option<workflows::Model>, StorageError> {
    let mut query = workflows::Entity::find_by_id(id.to_owned()).filter(workflows::Column::DeletedAt.is_null());
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = sea_orm::QuerySelect::lock_exclusive(query);
    }
    Ok(query.one(txn).await?)
}

/// The newest saved version number of workflow `id` (a draft included), if any.
pub async fn newest_version<C: ConnectionTrait>(conn: &C, id: &str) -> Result<Option<i64>, StorageError> {
    Ok(workflow_versions::Entity::find()
        .filter(workflow_versions::Column::WorkflowId.eq(id))
        .order_by_desc(workflow_versions::Column::Version)
        .one(conn)
        .await?
        .map(|v| v.version))
}

async fn live<C: ConnectionTrait>(conn: &C, id: &str) -> Result<workflows::Model, StorageError> {
    get(conn, id)
        .await?
        .ok_or_else(|| StorageError::WorkflowNotFound(id.to_owned()))
}

pub(super) fn definition(workflow: &Workflow, id: &str, version: i64) -> Result<Value, StorageError> {
    let mut stored = workflow.clone();
    stored.id = Some(id.to_owned());
    stored.version = Some(version);
    serde_json::to_value(&stored).map_err(|source| StorageError::Encode {
        what: "workflow",
        source,
    })
}

pub(super) async fn record_version<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    version: i64,
    definition: Value,
    change: Change,
    changed_by: &str,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    workflow_versions::ActiveModel {
        workflow_id: Set(id.to_owned()),
        version: Set(version),
        definition: Set(definition),
        change: Set(change.as_str().to_owned()),
        changed_by: Set(changed_by.to_owned()),
        changed_at: Set(now),
    }
    .insert(conn)
    .await?;
    super::changes::bump(conn).await
}

/// A short id unlikely to collide across processes: a per-process start drawn from the
/// time and the process id, plus a counter, mixed so consecutive ids look unrelated.
pub(super) fn generate_id() -> String {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
        nanos ^ (u64::from(std::process::id()) << 40)
    });
    let seed = start.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("wf_{:012x}", mix(seed) & 0xffff_ffff_ffff)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The names of the workflows `ids` names (deleted ones included: a feed names what ran),
/// in one query; an unknown id is absent.
pub async fn names<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, StorageError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(workflows::Entity::find()
        .filter(workflows::Column::Id.is_in(ids.iter().cloned()))
        .all(conn)
        .await?
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_short_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| generate_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 15 && id.starts_with("wf_")));
    }
}
