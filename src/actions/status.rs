//! set_status: the customer's status of one type, by id or by name, announced as
//! customer.status_changed (customer.retention_changed for the retention type) through
//! the outbox so other workflows can react.

use super::{customer, emit, ActionError, StepContext};
use crate::catalogue::StatusRef;
use crate::storage::entities::{customer_statuses, status_types, statuses};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set};
use serde_json::{json, Value};

pub(super) async fn set(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    type_name: &str,
    wanted: &StatusRef,
) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let status_type = status_types::Entity::find()
        .filter(status_types::Column::Name.eq(type_name))
        .one(txn)
        .await?
        .ok_or_else(|| ActionError::NoStatusType(type_name.to_owned()))?;
    let status = match wanted {
        StatusRef::Id(id) => {
            let status = statuses::Entity::find_by_id(*id)
                .one(txn)
                .await?
                .ok_or(ActionError::NoStatusId(*id))?;
            if status.status_type_id != status_type.id {
                return Err(ActionError::StatusOfOtherType {
                    status_id: *id,
                    status_type: type_name.to_owned(),
                });
            }
            status
        }
        StatusRef::Name(name) => statuses::Entity::find()
            .filter(statuses::Column::StatusTypeId.eq(status_type.id))
            .filter(statuses::Column::Name.eq(name.as_str()))
            .one(txn)
            .await?
            .ok_or_else(|| ActionError::NoStatusNamed {
                status_type: type_name.to_owned(),
                name: name.clone(),
            })?,
    };
    let old_id = customer_statuses::Entity::find_by_id((ctx.customer_id, status_type.id))
        .one(txn)
        .await?
        .map(|cs| cs.status_id);
    let mut result = json!({
        "status_type": type_name,
        "old_status_id": old_id,
        "new_status_id": status.id,
        "new_status": status.name,
    });
    // Setting the status it already has changes nothing and announces nothing, so a
    // workflow reacting to status changes cannot loop on itself.
    if old_id == Some(status.id) {
        result["changed"] = Value::from(false);
        return Ok(result);
    }
    let old_name = match old_id {
        Some(id) => statuses::Entity::find_by_id(id).one(txn).await?.map(|s| s.name),
        None => None,
    };
    customer_statuses::Entity::insert(customer_statuses::ActiveModel {
        customer_id: Set(ctx.customer_id),
        status_type_id: Set(status_type.id),
        status_id: Set(status.id),
        updated_at: Set(ctx.now),
    })
    .on_conflict(
        OnConflict::columns([
            customer_statuses::Column::CustomerId,
            customer_statuses::Column::StatusTypeId,
        ])
        .update_columns([
            customer_statuses::Column::StatusId,
            customer_statuses::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    let event_type = if type_name == "retention" {
        "customer.retention_changed"
    } else {
        "customer.status_changed"
    };
    let data = json!({
        "status_type": type_name,
        "old_status_id": old_id,
        "old_status": old_name,
        "new_status_id": status.id,
        "new_status": status.name,
    });
    let event_id = emit(txn, ctx, "status", event_type, data).await?;
    result["old_status"] = Value::from(old_name);
    result["changed"] = Value::from(true);
    result["event_id"] = Value::from(event_id);
    Ok(result)
}
