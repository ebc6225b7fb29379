//! Account flags: set_customer_active, and freeze_account, which also queues
//! compliance.freeze_requested for the compliance system.

use super::{customer, emit, ActionError, StepContext};
use crate::storage::entities::customers;
use crate::template;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde_json::{json, Value};

pub(super) async fn set_active(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    active: bool,
) -> Result<Value, ActionError> {
    let before = customer(txn, ctx).await?;
    customers::Entity::update_many()
        .col_expr(customers::Column::Active, Expr::value(active))
        .col_expr(customers::Column::UpdatedAt, Expr::value(ctx.now))
        .filter(customers::Column::Id.eq(ctx.customer_id))
        .exec(txn)
        .await?;
    Ok(json!({"active": active, "was_active": before.active}))
}

pub(super) async fn freeze(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    reason: &str,
) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let reason = template::render(reason, ctx.facts_context)?;
    customers::Entity::update_many()
        .col_expr(customers::Column::Frozen, Expr::value(true))
        .col_expr(customers::Column::UpdatedAt, Expr::value(ctx.now))
        .filter(customers::Column::Id.eq(ctx.customer_id))
        .exec(txn)
        .await?;
    let event_id = emit(
        txn,
        ctx,
        "freeze",
        "compliance.freeze_requested",
        json!({"reason": reason}),
    )
    .await?;
    Ok(json!({"frozen": true, "reason": reason, "event_id": event_id}))
}
