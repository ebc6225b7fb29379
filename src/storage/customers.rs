//! The customer snapshot conditions and templates read: the customer row as JSON, custom
//! fields flattened in, and every status type's current status by id and by name.

use super::entities::customers;
use super::sql::statement;
use super::StorageError;
use crate::clock::rfc3339;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryResult};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The customer row, if any.
pub async fn get<C: ConnectionTrait>(conn: &C, customer_id: i64) -> Result<Option<customers::Model>, StorageError> {
    Ok(customers::Entity::find_by_id(customer_id).one(conn).await?)
}

/// The customer as `customer.*` fields see it, or `None` when there is no such customer.
///
/// Custom fields come first and built-in columns overwrite them, so a custom field can
/// never masquerade as, say, `country`. For every status type there are both
/// `<type>_status_id` and `<type>_status`, null when the customer has none of that type,
/// so a rule on a type the customer lacks sees an empty value rather than a missing one.
pub async fn snapshot<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
) -> Result<Option<Map<String, Value>>, StorageError> {
    // The same two queries as a batch of one: one way to build a snapshot.
    Ok(snapshots(conn, &[customer_id]).await?.remove(&customer_id))
}

/// The most customers [`snapshots`] loads at once: the statement's parameters stay well
/// below every backend's limit (SQLite's is 32,766).
pub const SNAPSHOTS_MAX: usize = 1000;

/// The snapshots of `customer_ids` (see [`snapshot`]) in two queries, whatever their
/// number: a batch of events plans against its customers without a round trip each.
/// Customers that do not exist are absent from the map. At most [`SNAPSHOTS_MAX`] ids are
/// asked for per query; more are loaded in several.
pub async fn snapshots<C: ConnectionTrait>(
    conn: &C,
    customer_ids: &[i64],
) -> Result<HashMap<i64, Map<String, Value>>, StorageError> {
    let mut ids: Vec<i64> = customer_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut found = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(SNAPSHOTS_MAX) {
        let rows = customers::Entity::find()
            .filter(customers::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        for c in rows {
            found.insert(c.id, fields(c));
        }
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let rows = conn
            .query_all(statement(
                conn,
                &format!(
                    "SELECT c.id AS customer_id, st.name AS type_name, s.id AS status_id, s.name AS status_name \
                     FROM customers c CROSS JOIN status_types st \
                     LEFT JOIN customer_statuses cs ON cs.status_type_id = st.id AND cs.customer_id = c.id \
                     LEFT JOIN statuses s ON s.id = cs.status_id \
                     WHERE c.id IN ({}) ORDER BY c.id, st.id",
                    placeholders.join(", ")
                ),
                chunk.iter().map(|&id| id.into()).collect(),
            ))
            .await?;
        for row in rows {
            let customer_id: i64 = row.try_get("", "customer_id")?;
            if let Some(map) = found.get_mut(&customer_id) {
                add_status(map, &row)?;
            }
        }
    }
    Ok(found)
}

/// The customer row as `customer.*` fields, without statuses.
fn fields(c: customers::Model) -> Map<String, Value> {
    let mut map = match c.custom_fields {
        Value::Object(fields) => fields,
        _ => Map::new(),
    };
    let time = |t: Option<DateTime<Utc>>| t.map_or(Value::Null, |t| Value::from(rfc3339(t)));
    let builtins = [
        ("id", Value::from(c.id)),
        ("first_name", Value::from(c.first_name)),
        ("last_name", Value::from(c.last_name)),
        ("email", Value::from(c.email)),
        ("phone", Value::from(c.phone)),
        ("country", Value::from(c.country)),
        ("language", Value::from(c.language)),
        (
            "balance",
            serde_json::Number::from_f64(c.balance).map_or(Value::Null, Value::Number),
        ),
        ("registered_at", time(c.registered_at)),
        ("last_activity_at", time(c.last_activity_at)),
        ("agent_id", c.agent_id.map_or(Value::Null, Value::from)),
        ("team_id", c.team_id.map_or(Value::Null, Value::from)),
        ("desk", Value::from(c.desk)),
        ("active", Value::from(c.active)),
        ("frozen", Value::from(c.frozen)),
        ("updated_at", Value::from(rfc3339(c.updated_at))),
        ("timezone", Value::from(c.timezone)),
        ("email_opt_out", Value::from(c.email_opt_out)),
        ("sms_opt_out", Value::from(c.sms_opt_out)),
    ];
    for (key, value) in builtins {
        map.insert(key.to_owned(), value);
    }
    map
}

/// One status type's row (`type_name`, `status_id`, `status_name`) as its two fields.
fn add_status(map: &mut Map<String, Value>, row: &QueryResult) -> Result<(), StorageError> {
    let type_name: String = row.try_get("", "type_name")?;
    let status_id: Option<i64> = row.try_get("", "status_id")?;
    let status_name: Option<String> = row.try_get("", "status_name")?;
    map.insert(
        format!("{type_name}_status_id"),
        status_id.map_or(Value::Null, Value::from),
    );
    map.insert(
        format!("{type_name}_status"),
        status_name.map_or(Value::Null, Value::from),
    );
    Ok(())
}

/// A customer as written through the API or an import line: every field optional. A
/// field given is set; a field left out keeps its stored value (a new customer gets the
/// column's default), so a CRM can send just what changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerInput {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
    pub balance: Option<f64>,
    pub registered_at: Option<Option<DateTime<Utc>>>,
    pub last_activity_at: Option<Option<DateTime<Utc>>>,
    pub agent_id: Option<Option<i64>>,
    pub team_id: Option<Option<i64>>,
    pub desk: Option<String>,
    pub active: Option<bool>,
    pub frozen: Option<bool>,
    /// An IANA name, checked by the caller.
    pub timezone: Option<String>,
    pub email_opt_out: Option<bool>,
    pub sms_opt_out: Option<bool>,
    /// Replaces the custom fields when given.
    pub custom: Option<Map<String, Value>>,
    /// (type name, status name): each sets the customer's status of that type.
    pub statuses: Vec<(String, String)>,
}

/// The type a custom field is defined with the first time a customer carries it.
fn inferred_type(value: &Value) -> crate::schema::FieldType {
    use crate::schema::FieldType;
    match value {
        Value::Number(_) => FieldType::Number,
        Value::String(_) => FieldType::String,
        Value::Bool(_) => FieldType::Boolean,
        Value::Array(_) => FieldType::List,
        _ => FieldType::Any,
    }
}

/// Creates or updates customer `id` in the caller's transaction; true when created.
///
/// Statuses are named by type and status name; an unknown one is refused with the JSON
/// pointer `/statuses/<type>`. A custom field no customer had before is defined (its type
/// taken from the value) and the workflow change counter moves, so the matcher's field
/// schema and GET /api/v1/schema know it at once.
pub async fn upsert<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    input: CustomerInput,
    now: DateTime<Utc>,
) -> Result<bool, super::crm::CrmError> {
    use super::crm::CrmError;
    use super::entities::{custom_field_definitions, customer_statuses, statuses as status_rows};
    use crate::problem::{Pointer, Problem, Severity};
    use sea_orm::sea_query::OnConflict;
    use sea_orm::{ActiveModelTrait, ColumnTrait, IntoActiveModel, QueryFilter, Set};

    let mut problems = Vec::new();
    let mut resolved = Vec::with_capacity(input.statuses.len());
    for (type_name, status_name) in &input.statuses {
        let at = Pointer::root().key("statuses").key(type_name);
        let Some(status_type) = super::statuses::type_by_name(conn, type_name).await? else {
            problems.push(Problem {
                path: at.as_str().to_owned(),
                message: format!("unknown status type {type_name:?}"),
                severity: Severity::Error,
            });
            continue;
        };
        let status = status_rows::Entity::find()
            .filter(status_rows::Column::StatusTypeId.eq(status_type.id))
            .filter(status_rows::Column::Name.eq(status_name.as_str()))
            .one(conn)
            .await?;
        match status {
            Some(s) => resolved.push((status_type.id, s.id)),
            None => problems.push(Problem {
                path: at.as_str().to_owned(),
                message: format!("unknown status {status_name:?} of type {type_name:?}"),
                severity: Severity::Error,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(CrmError::Invalid(problems));
    }
    if let Some(custom) = &input.custom {
        let mut defined = false;
        for (name, value) in custom {
            if value.is_null() {
                continue;
            }
            let known = custom_field_definitions::Entity::find_by_id(name.clone())
                .one(conn)
                .await?
                .is_some();
            if !known {
                super::statuses::define_custom_field(conn, name, inferred_type(value)).await?;
                defined = true;
            }
        }
        if defined {
            super::changes::bump(conn).await?;
        }
    }

    let existing = get(conn, id).await?;
    let created = existing.is_none();
    let mut row = match existing {
        Some(found) => found.into_active_model(),
        None => customers::ActiveModel {
            id: Set(id),
            custom_fields: Set(Value::Object(Map::new())),
            ..Default::default()
        },
    };
    let i = input;
    if let Some(v) = i.first_name {
        row.first_name = Set(v);
    }
    if let Some(v) = i.last_name {
        row.last_name = Set(v);
    }
    if let Some(v) = i.email {
        row.email = Set(v);
    }
    if let Some(v) = i.phone {
        row.phone = Set(v);
    }
    if let Some(v) = i.country {
        row.country = Set(v);
    }
    if let Some(v) = i.language {
        row.language = Set(v);
    }
    if let Some(v) = i.balance {
        row.balance = Set(v);
    }
    if let Some(v) = i.registered_at {
        row.registered_at = Set(v);
    }
    if let Some(v) = i.last_activity_at {
        row.last_activity_at = Set(v);
    }
    if let Some(v) = i.agent_id {
        row.agent_id = Set(v);
    }
    if let Some(v) = i.team_id {
        row.team_id = Set(v);
    }
    if let Some(v) = i.desk {
        row.desk = Set(v);
    }
    if let Some(v) = i.active {
        row.active = Set(v);
    }
    if let Some(v) = i.frozen {
        row.frozen = Set(v);
    }
    if let Some(v) = i.timezone {
        row.timezone = Set(v);
    }
    if let Some(v) = i.email_opt_out {
        row.email_opt_out = Set(v);
    }
    if let Some(v) = i.sms_opt_out {
        row.sms_opt_out = Set(v);
    }
    if let Some(v) = i.custom {
        row.custom_fields = Set(Value::Object(v));
    }
    row.updated_at = Set(now);
    if created {
        customers::Entity::insert(row).exec_without_returning(conn).await?;
    } else {
        row.update(conn).await?;
    }
    for (status_type_id, status_id) in resolved {
        customer_statuses::Entity::insert(customer_statuses::ActiveModel {
            customer_id: Set(id),
            status_type_id: Set(status_type_id),
            status_id: Set(status_id),
            updated_at: Set(now),
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
        .exec_without_returning(conn)
        .await?;
    }
    Ok(created)
}

/// Deletes customer `id` and its statuses (its runs, notes and tasks stay as history);
/// false when there was no such customer.
pub async fn delete<C: ConnectionTrait>(conn: &C, id: i64) -> Result<bool, StorageError> {
    use super::entities::customer_statuses;
    use sea_orm::{ColumnTrait, QueryFilter};
    customer_statuses::Entity::delete_many()
        .filter(customer_statuses::Column::CustomerId.eq(id))
        .exec(conn)
        .await?;
    Ok(customers::Entity::delete_by_id(id).exec(conn).await?.rows_affected > 0)
}

/// The customer's statuses as (type name, status name), by type.
pub async fn statuses_of<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Vec<(String, String)>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT st.name AS type_name, s.name AS status_name FROM customer_statuses cs \
             JOIN status_types st ON st.id = cs.status_type_id JOIN statuses s ON s.id = cs.status_id \
             WHERE cs.customer_id = $1 ORDER BY st.id",
            vec![id.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "type_name")?, r.try_get("", "status_name")?)))
        .collect()
}

/// Sets custom fields of customer `customer_id` (a journey's webhook `save`), keeping the
/// others; a customer without a row is left alone. Call it in the transaction that
/// records the step.
pub async fn save_custom<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    fields: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let Some(row) = customers::Entity::find_by_id(customer_id).one(conn).await? else {
        return Ok(());
    };
    let mut custom = match row.custom_fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    custom.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    conn.execute(statement(
        conn,
        "UPDATE customers SET custom_fields = $1, updated_at = $2 WHERE id = $3",
        vec![Value::Object(custom).into(), now.into(), customer_id.into()],
    ))
    .await?;
    Ok(())
}

/// The most characters of a customer search.
pub const MAX_SEARCH: usize = 100;

/// A page of customers for the operator's list, newest first by id, below `before_id`.
/// With `search`, only those whose id is it, or whose first name, last name or e-mail
/// starts with it (ignoring case; SQLite folds ASCII letters only). Each prefix is read as
/// a range on `lower(column)`, which the indexes of migration 000020 serve.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    search: Option<&str>,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<customers::Model>, StorageError> {
    use sea_orm::sea_query::{Expr, Func};
    use sea_orm::{Condition, QueryOrder, QuerySelect};
    let mut query = customers::Entity::find();
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        let low: String = search.to_lowercase().chars().take(MAX_SEARCH).collect();
        // The first text after every one that starts with `low`.
        let high = {
            let mut chars: Vec<char> = low.chars().collect();
            let last = chars
                .pop()
                .map_or('\u{0}', |c| char::from_u32(c as u32 + 1).unwrap_or(char::MAX));
            chars.push(last);
            chars.into_iter().collect::<String>()
        };
        let mut any = Condition::any();
        for column in [
            customers::Column::FirstName,
            customers::Column::LastName,
            customers::Column::Email,
        ] {
            let lower = || Expr::expr(Func::lower(Expr::col(column)));
            any = any.add(lower().gte(low.as_str()).and(lower().lt(high.as_str())));
        }
        if let Ok(id) = search.parse::<i64>() {
            any = any.add(customers::Column::Id.eq(id));
        }
        query = query.filter(any);
    }
    if let Some(before) = before_id {
        query = query.filter(customers::Column::Id.lt(before));
    }
    Ok(query
        .order_by_desc(customers::Column::Id)
        .limit(limit.max(1))
        .all(conn)
        .await?)
}
