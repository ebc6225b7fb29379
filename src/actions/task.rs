//! create_task: a follow-up for the customer's agent, due some time from now.

use super::{customer, ActionError, StepContext};
use crate::clock::rfc3339;
use crate::duration::Duration;
use crate::storage::entities::tasks;
use crate::template;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, Set};
use serde_json::{json, Value};

pub(super) async fn create(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    title: &str,
    task_type: Option<&str>,
    due_in: Duration,
) -> Result<Value, ActionError> {
    let customer = customer(txn, ctx).await?;
    let title = template::render(title, ctx.facts_context)?;
    let due_at = i64::try_from(due_in.as_secs())
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|d| ctx.now.checked_add_signed(d))
        .ok_or(ActionError::DueOutOfRange)?;
    let task = tasks::ActiveModel {
        customer_id: Set(ctx.customer_id),
        title: Set(title),
        task_type: Set(task_type.map(str::to_owned)),
        due_at: Set(due_at),
        assignee_id: Set(customer.agent_id),
        done: Set(false),
        overdue_emitted_at: Set(None),
        created_at: Set(ctx.now),
        run_id: Set(Some(ctx.run_id)),
        step_index: Set(Some(ctx.step_index)),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(json!({"task_id": task.id, "due_at": rfc3339(due_at), "assignee_id": task.assignee_id}))
}
