//! add_note: a line in the customer's activity feed, signed by the workflow.

use super::{author, customer, ActionError, StepContext};
use crate::storage::entities::notes;
use crate::template;
use sea_orm::{ActiveModelTrait, DatabaseTransaction, Set};
use serde_json::{json, Value};

pub(super) async fn add(txn: &DatabaseTransaction, ctx: &StepContext<'_>, body: &str) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let body = template::render(body, ctx.facts_context)?;
    let note = notes::ActiveModel {
        customer_id: Set(ctx.customer_id),
        body: Set(body),
        author: Set(author(ctx)),
        created_at: Set(ctx.now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    Ok(json!({"note_id": note.id}))
}
