//! Status types with their statuses, and the custom field definitions: what the field
//! schema needs to offer `customer.<type>_status` and broker-defined fields without a
//! code change.

use super::entities::{custom_field_definitions, status_types, statuses};
use super::StorageError;
use crate::schema::{CustomField, FieldSchema, FieldType, Status, StatusType};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// Every status type, in creation order, each with its statuses in creation order.
pub async fn status_types<C: ConnectionTrait>(conn: &C) -> Result<Vec<StatusType>, StorageError> {
    let types = status_types::Entity::find()
        .order_by_asc(status_types::Column::Id)
        .all(conn)
        .await?;
    let all = statuses::Entity::find()
        .order_by_asc(statuses::Column::Id)
        .all(conn)
        .await?;
    Ok(types
        .into_iter()
        .map(|t| StatusType {
            statuses: all
                .iter()
                .filter(|s| s.status_type_id == t.id)
                .map(|s| Status {
                    id: s.id,
                    name: s.name.clone(),
                })
                .collect(),
            name: t.name,
        })
        .collect())
}

/// The broker-defined customer fields. An unknown type name reads as `any`, so a field
/// defined by a newer version still works, unchecked.
pub async fn custom_fields<C: ConnectionTrait>(conn: &C) -> Result<Vec<CustomField>, StorageError> {
    let rows = custom_field_definitions::Entity::find()
        .order_by_asc(custom_field_definitions::Column::Name)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| CustomField {
            field_type: field_type(&r.field_type),
            name: r.name,
        })
        .collect())
}

/// The field schema of this database's status types and custom fields.
pub async fn field_schema<C: ConnectionTrait>(conn: &C) -> Result<FieldSchema, StorageError> {
    Ok(FieldSchema::new(
        &status_types(conn).await?,
        &custom_fields(conn).await?,
    ))
}

fn field_type(name: &str) -> FieldType {
    match name {
        "number" => FieldType::Number,
        "string" => FieldType::String,
        "boolean" => FieldType::Boolean,
        "datetime" => FieldType::Datetime,
        "list" => FieldType::List,
        _ => FieldType::Any,
    }
}

/// The id of the status type `name`, created if missing.
pub async fn ensure_status_type<C: ConnectionTrait>(conn: &C, name: &str) -> Result<i64, StorageError> {
    status_types::Entity::insert(status_types::ActiveModel {
        name: Set(name.to_owned()),
        ..Default::default()
    })
    .on_conflict(OnConflict::column(status_types::Column::Name).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    let row = status_types::Entity::find()
        .filter(status_types::Column::Name.eq(name))
        .one(conn)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("status type {name:?}")))?;
    Ok(row.id)
}

/// The id of the status `name` of the type `status_type_id`, created if missing.
pub async fn ensure_status<C: ConnectionTrait>(conn: &C, status_type_id: i64, name: &str) -> Result<i64, StorageError> {
    statuses::Entity::insert(statuses::ActiveModel {
        status_type_id: Set(status_type_id),
        name: Set(name.to_owned()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([statuses::Column::StatusTypeId, statuses::Column::Name])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    let row = statuses::Entity::find()
        .filter(statuses::Column::StatusTypeId.eq(status_type_id))
        .filter(statuses::Column::Name.eq(name))
        .one(conn)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("status {name:?}")))?;
    Ok(row.id)
}

/// Defines (or retypes) a custom customer field.
pub async fn define_custom_field<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    field_type: FieldType,
) -> Result<(), StorageError> {
    custom_field_definitions::Entity::insert(custom_field_definitions::ActiveModel {
        name: Set(name.to_owned()),
        field_type: Set(field_type.name().to_owned()),
    })
    .on_conflict(
        OnConflict::column(custom_field_definitions::Column::Name)
            .update_column(custom_field_definitions::Column::FieldType)
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Longest status type name: it becomes the field names `customer.<type>_status(_id)`.
pub const MAX_TYPE_NAME_LEN: usize = 64;
/// Longest status name.
pub const MAX_STATUS_NAME_LEN: usize = 200;

/// A status type row, if `name` exists.
pub async fn type_by_name<C: ConnectionTrait>(
    conn: &C,
    name: &str,
) -> Result<Option<status_types::Model>, StorageError> {
    Ok(status_types::Entity::find()
        .filter(status_types::Column::Name.eq(name))
        .one(conn)
        .await?)
}

/// A page of status types by id.
pub async fn list_types<C: ConnectionTrait>(
    conn: &C,
    page: super::crm::Page,
) -> Result<Vec<status_types::Model>, StorageError> {
    use sea_orm::QuerySelect;
    let mut query = status_types::Entity::find()
        .order_by_asc(status_types::Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(status_types::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

/// A page of the statuses of type `type_id` by id.
pub async fn list_statuses<C: ConnectionTrait>(
    conn: &C,
    type_id: i64,
    page: super::crm::Page,
) -> Result<Vec<statuses::Model>, StorageError> {
    use sea_orm::QuerySelect;
    let mut query = statuses::Entity::find()
        .filter(statuses::Column::StatusTypeId.eq(type_id))
        .order_by_asc(statuses::Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(statuses::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

/// Creates the status type `name`; an existing one is a conflict. Every node's workflow
/// set is reloaded, and GET /api/v1/schema shows the type's fields at once.
pub async fn create_type(db: &super::Database, name: &str) -> Result<status_types::Model, super::crm::CrmError> {
    use sea_orm::TransactionTrait;
    let txn = db.connection().begin().await?;
    if type_by_name(&txn, name).await?.is_some() {
        return Err(super::crm::CrmError::Conflict(format!(
            "status type {name:?} already exists"
        )));
    }
    ensure_status_type(&txn, name).await?;
    super::changes::bump(&txn).await?;
    let row = type_by_name(&txn, name)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("status type {name:?}")))?;
    txn.commit().await?;
    Ok(row)
}

/// Creates the status `name` of type `type_name`; an unknown type is not found, an
/// existing status a conflict.
pub async fn create_status(
    db: &super::Database,
    type_name: &str,
    name: &str,
) -> Result<statuses::Model, super::crm::CrmError> {
    use super::crm::CrmError;
    use sea_orm::TransactionTrait;
    let txn = db.connection().begin().await?;
    let Some(status_type) = type_by_name(&txn, type_name).await? else {
        return Err(CrmError::NotFound(format!("status type {type_name:?} not found")));
    };
    let exists = statuses::Entity::find()
        .filter(statuses::Column::StatusTypeId.eq(status_type.id))
        .filter(statuses::Column::Name.eq(name))
        .one(&txn)
        .await?;
    if exists.is_some() {
        return Err(CrmError::Conflict(format!(
            "status {name:?} of type {type_name:?} already exists"
        )));
    }
    let id = ensure_status(&txn, status_type.id, name).await?;
    super::changes::bump(&txn).await?;
    txn.commit().await?;
    Ok(statuses::Model {
        id,
        status_type_id: status_type.id,
        name: name.to_owned(),
    })
}
