//! The live workflow set: the active workflows as stored, validated again against today's
//! schema and limits, and compiled. Above storage (which only keeps the rows) and below
//! whoever runs or shows the set: the matcher, the dry run and the backtest.

use crate::conditions::Limits;
use crate::plan::WorkflowSet;
use crate::storage::workflows::StoredWorkflow;
use crate::storage::{changes, statuses, workflows, Database, StorageError};
use crate::validate::Validator;
use crate::workflow::Workflow;

/// The active workflows as stored, validated again (against today's schema and limits);
/// one that no longer validates is left out and logged.
pub async fn active(db: &Database, limits: Limits) -> Result<Vec<Workflow>, StorageError> {
    let schema = statuses::field_schema(db.connection()).await?;
    let validator = Validator::new(&schema, limits);
    let mut valid = Vec::new();
    for stored in workflows::list_active(db.connection()).await? {
        valid.extend(revalidate(&validator, &stored));
    }
    Ok(valid)
}

/// One stored workflow validated again; one that no longer validates is logged and left
/// out. Apart from [`active`] so the API can read the rows on its worker and validate
/// them on a blocking thread, one at a time between checks of its time budget.
pub fn revalidate(validator: &Validator<'_>, stored: &StoredWorkflow) -> Option<Workflow> {
    match validator.workflow(&stored.definition) {
        Ok(v) => Some(v.workflow),
        Err(e) => {
            tracing::error!(workflow_id = %stored.id, error = %e, "stored workflow left out");
            None
        }
    }
}

/// Builds the set of active workflows as stored, with the change counter it was read at.
/// A stored workflow that no longer validates or compiles is left out and logged; the
/// others keep running.
pub async fn load(db: &Database, limits: Limits) -> Result<(i64, WorkflowSet), StorageError> {
    let version = changes::current(db.connection()).await?;
    let valid = active(db, limits).await?;
    let (set, errors) = WorkflowSet::build(valid, &limits);
    for e in errors {
        tracing::error!(workflow_id = %e.workflow_id, error = %e, "stored workflow left out");
    }
    Ok((version, set))
}
