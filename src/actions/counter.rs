//! increment_manager_counter: adds to a named counter of the manager of the customer's
//! agent, with one atomic upsert so concurrent increments from several processes add up.

use super::{customer, ActionError, StepContext};
use crate::storage::entities::agents;
use crate::storage::sql::statement;
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait};
use serde_json::{json, Value};

pub(super) async fn increment(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    counter: &str,
    by: i64,
) -> Result<Value, ActionError> {
    let customer = customer(txn, ctx).await?;
    let agent_id = customer.agent_id.ok_or(ActionError::NoAssignedAgent(ctx.customer_id))?;
    let agent = agents::Entity::find_by_id(agent_id)
        .one(txn)
        .await?
        .ok_or(ActionError::NoAgent(agent_id))?;
    let manager_id = agent.manager_id.ok_or(ActionError::NoManager(agent_id))?;
    let row = txn
        .query_one(statement(
            txn,
            "INSERT INTO manager_counters (manager_id, counter, value) VALUES ($1, $2, $3) \
             ON CONFLICT (manager_id, counter) DO UPDATE SET value = manager_counters.value + excluded.value \
             RETURNING value",
            vec![manager_id.into(), counter.into(), by.into()],
        ))
        .await?;
    let value = match row {
        Some(row) => Some(row.try_get::<i64>("", "value")?),
        None => None,
    };
    Ok(json!({"manager_id": manager_id, "counter": counter, "by": by, "value": value}))
}
