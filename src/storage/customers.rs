//! The customer snapshot conditions and templates read: the customer row as JSON, custom
//! fields flattened in, and every status type's current status by id and by name.

use super::entities::customers;
use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, SecondsFormat, Utc};
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
    let Some(c) = get(conn, customer_id).await? else {
        return Ok(None);
    };
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT st.name AS type_name, s.id AS status_id, s.name AS status_name \
             FROM status_types st \
             LEFT JOIN customer_statuses cs ON cs.status_type_id = st.id AND cs.customer_id = $1 \
             LEFT JOIN statuses s ON s.id = cs.status_id \
             ORDER BY st.id",
            vec![customer_id.into()],
        ))
        .await?;
    let mut map = fields(c);
    for row in rows {
        add_status(&mut map, &row)?;
    }
    Ok(Some(map))
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

/// Timestamps in snapshots and payloads: RFC 3339 in UTC with a `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
