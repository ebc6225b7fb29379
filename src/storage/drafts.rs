//! Drafts, approvals and publishing (issue 28).
//!
//! Which version of a workflow is live is decided in one place: the `workflows` row. Its
//! `definition` and `version` are the live version, and the live set every node compiles
//! ([`crate::live`]) is read from those rows alone. A draft is a `workflow_versions` row
//! with change `draft` and nothing else: saving one leaves the `workflows` row as it is,
//! so the live version keeps running unchanged and a draft never reaches the matcher.
//! Publishing copies a saved version into the row (and moves the change counter, so every
//! node reloads). Runs in flight are untouched: a run keeps the version it started with
//! and reads that version's row when it resumes.
//!
//! A workflow created as a draft has a row all the same (so it lists and can be read),
//! with `published` false and `active` false; [`super::workflows::list_active`] skips it.
//!
//! Every save, approval and publish writes its audit row in its own transaction.

use super::entities::{workflow_approvals, workflow_versions, workflows};
use super::sql::statement;
use super::workflows::{self as stored, By, Change, StoredWorkflow, WorkflowVersion};
use super::{Database, StorageError};
use crate::workflow::Workflow;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use std::collections::HashMap;

/// Why an approval or a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("workflow {0:?} not found")]
    NotFound(String),
    #[error("workflow {id:?} has no version {version}")]
    NoVersion { id: String, version: i64 },
    #[error("workflow {0:?} has no draft to publish")]
    NoDraft(String),
    #[error("version {version} of workflow {id:?} is a deletion and cannot be approved or published")]
    Deleted { id: String, version: i64 },
    #[error("{by:?} saved version {version} of workflow {id:?} and cannot approve it: another token must")]
    SelfApproval { id: String, version: i64, by: String },
    #[error("version {version} of workflow {id:?} needs the approval of a token other than its author before it is published")]
    ApprovalRequired { id: String, version: i64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sea_orm::DbErr> for ChangeError {
    fn from(e: sea_orm::DbErr) -> Self {
        ChangeError::Storage(e.into())
    }
}

/// Saves `workflow` as a draft: a new workflow (`existing` false: with its id, else a
/// generated one) whose row is unpublished, or the next version of an existing one, whose
/// live version stays as it is. With `expected`, only if the newest saved version is that
/// one. Returns the draft's version row.
pub async fn save<'a>(
    db: &Database,
    workflow: &Workflow,
    existing: bool,
    expected: Option<i64>,
    by: impl Into<By<'a>>,
) -> Result<WorkflowVersion, StorageError> {
    let by = by.into();
    let now = Utc::now();
    let txn = db.begin().await?;
    let (id, version, before) = if existing {
        let id = workflow.id.clone().unwrap_or_default();
        let mut query = workflows::Entity::find_by_id(id.clone()).filter(workflows::Column::DeletedAt.is_null());
        if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
            query = sea_orm::QuerySelect::lock_exclusive(query);
        }
        let current = query
            .one(&txn)
            .await?
            .ok_or_else(|| StorageError::WorkflowNotFound(id.clone()))?;
        let newest = stored::newest_version(&txn, &id).await?.unwrap_or(current.version);
        if let Some(expected) = expected.filter(|v| *v != newest) {
            return Err(StorageError::VersionConflict {
                id,
                current: newest,
                expected,
            });
        }
        let before = current.published.then_some(current.version);
        (id, newest + 1, before)
    } else {
        let id = workflow.id.clone().unwrap_or_else(stored::generate_id);
        if workflows::Entity::find_by_id(id.clone()).one(&txn).await?.is_some() {
            return Err(StorageError::WorkflowExists(id));
        }
        workflows::ActiveModel {
            id: Set(id.clone()),
            name: Set(workflow.name.clone()),
            trigger_event: Set(workflow.trigger_event.clone()),
            // Never runs before it is published, whatever the draft says.
            active: Set(false),
            priority: Set(workflow.priority),
            stop_after: Set(workflow.stop_after),
            definition: Set(stored::definition(workflow, &id, 1)?),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            published: Set(false),
        }
        .insert(&txn)
        .await?;
        (id, 1, None)
    };
    let definition = stored::definition(workflow, &id, version)?;
    stored::record_version(&txn, &id, version, definition, Change::Draft, by.author, now).await?;
    stored::audit(&txn, by, "workflow.draft", &id, (before, Some(version)), now).await?;
    let row = stored::version(&txn, &id, version)
        .await?
        .ok_or_else(|| StorageError::WorkflowNotFound(id.clone()))?;
    txn.commit().await?;
    Ok(row)
}

/// The newest draft of a workflow whose live row is `row`: the newest version saved as a
/// draft after the live one (any draft, while nothing is published).
pub async fn newest_draft<C: ConnectionTrait>(
    conn: &C,
    row: &StoredWorkflow,
) -> Result<Option<WorkflowVersion>, StorageError> {
    let mut query = workflow_versions::Entity::find()
        .filter(workflow_versions::Column::WorkflowId.eq(row.id.as_str()))
        .filter(workflow_versions::Column::Change.eq(Change::Draft.as_str()));
    if row.published {
        query = query.filter(workflow_versions::Column::Version.gt(row.version));
    }
    Ok(query
        .order_by_desc(workflow_versions::Column::Version)
        .one(conn)
        .await?)
}

/// Every workflow's newest version saved as a draft, in one query (for the list, which
/// shows a `draft_version` beside each live one that is newer).
pub async fn newest_drafts<C: ConnectionTrait>(conn: &C) -> Result<HashMap<String, i64>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT workflow_id, MAX(version) AS version FROM workflow_versions WHERE change = $1 GROUP BY workflow_id",
            vec![Change::Draft.as_str().into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "workflow_id")?,
                row.try_get::<i64>("", "version")?,
            ))
        })
        .collect()
}

/// The version a publish means: `version` when given, else the newest draft.
pub async fn to_publish<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    version: Option<i64>,
) -> Result<WorkflowVersion, ChangeError> {
    let row = stored::get(conn, id)
        .await?
        .ok_or_else(|| ChangeError::NotFound(id.to_owned()))?;
    let found = match version {
        Some(v) => stored::version(conn, id, v).await?,
        None => newest_draft(conn, &row).await?,
    };
    let found = match (found, version) {
        (Some(found), _) => found,
        (None, Some(v)) => {
            return Err(ChangeError::NoVersion {
                id: id.to_owned(),
                version: v,
            })
        }
        (None, None) => return Err(ChangeError::NoDraft(id.to_owned())),
    };
    if found.change == Change::Deleted.as_str() {
        return Err(ChangeError::Deleted {
            id: id.to_owned(),
            version: found.version,
        });
    }
    Ok(found)
}

/// Records `by`'s approval of version `version` of `id`. Refused to the version's author
/// (four eyes: whoever saved it cannot be the one who approves it). Approving twice is
/// one approval.
pub async fn approve(db: &Database, id: &str, version: i64, by: By<'_>) -> Result<WorkflowVersion, ChangeError> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let found = to_publish(&txn, id, Some(version)).await?;
    if found.changed_by == by.author {
        return Err(ChangeError::SelfApproval {
            id: id.to_owned(),
            version,
            by: by.author.to_owned(),
        });
    }
    let already = workflow_approvals::Entity::find_by_id((id.to_owned(), version, by.author.to_owned()))
        .one(&txn)
        .await?;
    if already.is_none() {
        workflow_approvals::ActiveModel {
            workflow_id: Set(id.to_owned()),
            version: Set(version),
            approved_by: Set(by.author.to_owned()),
            approved_at: Set(now),
        }
        .insert(&txn)
        .await?;
    }
    stored::audit(&txn, by, "workflow.approve", id, (None, Some(version)), now).await?;
    txn.commit().await?;
    Ok(found)
}

/// The tokens that approved version `version` of `id`, other than its author.
pub async fn approvals<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    version: &WorkflowVersion,
) -> Result<Vec<workflow_approvals::Model>, StorageError> {
    Ok(workflow_approvals::Entity::find()
        .filter(workflow_approvals::Column::WorkflowId.eq(id))
        .filter(workflow_approvals::Column::Version.eq(version.version))
        .filter(workflow_approvals::Column::ApprovedBy.ne(version.changed_by.as_str()))
        .order_by_asc(workflow_approvals::Column::ApprovedAt)
        .all(conn)
        .await?)
}

/// Makes version `version` of `id` live: its definition (`workflow`, that version as
/// validated today by the caller) goes into the workflow's row. With `require_approval`,
/// only once a token other than its author approved it (checked in the publishing
/// transaction).
pub async fn publish(
    db: &Database,
    id: &str,
    version: &WorkflowVersion,
    workflow: &Workflow,
    require_approval: bool,
    by: By<'_>,
) -> Result<StoredWorkflow, ChangeError> {
    let now = Utc::now();
    let txn = db.begin().await?;
    let current = stored::locked(&txn, id)
        .await?
        .ok_or_else(|| ChangeError::NotFound(id.to_owned()))?;
    if require_approval && approvals(&txn, id, version).await?.is_empty() {
        return Err(ChangeError::ApprovalRequired {
            id: id.to_owned(),
            version: version.version,
        });
    }
    let before = current.published.then_some(current.version);
    let mut row: workflows::ActiveModel = current.into();
    row.name = Set(workflow.name.clone());
    row.trigger_event = Set(workflow.trigger_event.clone());
    row.active = Set(workflow.active);
    row.priority = Set(workflow.priority);
    row.stop_after = Set(workflow.stop_after);
    row.definition = Set(version.definition.clone());
    row.version = Set(version.version);
    row.updated_at = Set(now);
    row.published = Set(true);
    let row = row.update(&txn).await?;
    super::changes::bump(&txn).await?;
    stored::audit(&txn, by, "workflow.publish", id, (before, Some(version.version)), now).await?;
    txn.commit().await?;
    Ok(row)
}
