//! The audit log: who changed what, when. One row per change to a workflow (create,
//! update, draft, delete, approve, publish), to CRM configuration (teams, agents, status
//! types and statuses, webhook endpoints, SMS providers), to the contact policy, and per
//! run retry or cancel.
//!
//! A row is written by [`record`] on the connection the change is made on: inside the
//! change's transaction wherever the storage function has one (workflows, the contact
//! policy), so a change never lands without its row and a failed change leaves none.
//! Where the change's transaction belongs to a storage function the API only calls (CRM
//! configuration, run retry and cancel), the handler records the change right after it
//! commits; docs/changes.md says what that leaves open. Rows are only inserted: nothing
//! in the API edits or deletes one, and only `retention.audit_days` prunes them.
//!
//! `detail` never holds a secret: configuration bodies are recorded as the API shows
//! them, which is with URLs redacted and write-only credentials left out.

use super::entities::audit_log;
use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::Value;

/// A stored audit row.
pub type AuditEntry = audit_log::Model;

/// "anonymous": the actor of a change made with auth off, whatever a header claims.
pub const ANONYMOUS: &str = "anonymous";

/// A change to record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The token's name, or [`ANONYMOUS`].
    pub actor: &'a str,
    /// `<kind>.<verb>`, e.g. `workflow.publish`, `team.update`, `run.cancel`.
    pub action: &'a str,
    /// What was changed: `workflow`, `team`, `run`, ...
    pub subject_kind: &'a str,
    pub subject_id: String,
    /// A workflow's version before and after the change.
    pub before_version: Option<i64>,
    pub after_version: Option<i64>,
    /// A small JSON object: for configuration `{"before", "after"}` bodies as the API
    /// shows them (secrets redacted).
    pub detail: Option<Value>,
}

/// Writes `change` on `conn`: inside the change's own transaction when `conn` is one.
pub async fn record<C: ConnectionTrait>(conn: &C, change: &Change<'_>, at: DateTime<Utc>) -> Result<(), StorageError> {
    audit_log::ActiveModel {
        at: Set(at),
        actor: Set(change.actor.to_owned()),
        action: Set(change.action.to_owned()),
        subject_kind: Set(change.subject_kind.to_owned()),
        subject_id: Set(change.subject_id.clone()),
        before_version: Set(change.before_version),
        after_version: Set(change.after_version),
        detail: Set(change.detail.clone()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Up to `limit` rows, oldest first (by id, the order they were written in), after id
/// `after` (the previous page's cursor) and at or after `since`.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    since: Option<DateTime<Utc>>,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<AuditEntry>, StorageError> {
    let mut query = audit_log::Entity::find()
        .order_by_asc(audit_log::Column::Id)
        .limit(limit.max(1));
    if let Some(since) = since {
        query = query.filter(audit_log::Column::At.gte(since));
    }
    if let Some(after) = after {
        query = query.filter(audit_log::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

/// Deletes up to `batch` rows written before `cutoff` (the retention job, only when
/// `retention.audit_days` is set). Returns how many went.
pub async fn prune<C: ConnectionTrait>(conn: &C, cutoff: DateTime<Utc>, batch: u64) -> Result<u64, StorageError> {
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
            vec![cutoff.into(), i64::try_from(batch).unwrap_or(i64::MAX).into()],
        ))
        .await?
        .rows_affected())
}
