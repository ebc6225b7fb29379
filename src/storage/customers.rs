//! The customer snapshot conditions and templates read: the customer row as JSON, custom
//! fields flattened in, and every status type's current status by id and by name.

use super::entities::customers;
use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{Map, Value};

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
    let mut map = fields(c);
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
    for row in rows {
        let type_name: String = row.try_get("", "type_name")?;
        let status_id: Option<i64> = row.try_get("", "status_id")?;
        let status_name: Option<String> = row.try_get("", "status_name")?;
        put_status(&mut map, &type_name, status_id, status_name);
    }
    Ok(Some(map))
}

/// Most customers [`snapshots`] loads in one statement (bound parameters stay well under
/// SQLite's limit).
pub const MAX_SNAPSHOT_BATCH: usize = 500;

/// The snapshots of many customers in three statements per [`MAX_SNAPSHOT_BATCH`], the
/// same as [`snapshot`] gives one by one; customers that do not exist are absent.
pub async fn snapshots<C: ConnectionTrait>(
    conn: &C,
    customer_ids: &[i64],
) -> Result<std::collections::HashMap<i64, Map<String, Value>>, StorageError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let mut out = std::collections::HashMap::with_capacity(customer_ids.len());
    let type_rows = conn
        .query_all(statement(conn, "SELECT name FROM status_types ORDER BY id", vec![]))
        .await?;
    let types: Vec<String> = type_rows
        .iter()
        .map(|r| r.try_get::<String>("", "name"))
        .collect::<Result<_, _>>()?;
    for chunk in customer_ids.chunks(MAX_SNAPSHOT_BATCH) {
        let models = customers::Entity::find()
            .filter(customers::Column::Id.is_in(chunk.iter().copied()))
            .all(conn)
            .await?;
        if models.is_empty() {
            continue;
        }
        let ids: Vec<i64> = models.iter().map(|m| m.id).collect();
        for model in models {
            let id = model.id;
            let mut map = fields(model);
            for t in &types {
                put_status(&mut map, t, None, None);
            }
            out.insert(id, map);
        }
        // Ids are integers read from the database: nothing to escape.
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
        let rows = conn
            .query_all(statement(
                conn,
                &format!(
                    "SELECT cs.customer_id, st.name AS type_name, s.id AS status_id, s.name AS status_name \
                     FROM customer_statuses cs \
                     JOIN status_types st ON st.id = cs.status_type_id \
                     JOIN statuses s ON s.id = cs.status_id \
                     WHERE cs.customer_id IN ({list})"
                ),
                vec![],
            ))
            .await?;
        for row in rows {
            let customer_id: i64 = row.try_get("", "customer_id")?;
            let type_name: String = row.try_get("", "type_name")?;
            let status_id: Option<i64> = row.try_get("", "status_id")?;
            let status_name: Option<String> = row.try_get("", "status_name")?;
            if let Some(map) = out.get_mut(&customer_id) {
                put_status(map, &type_name, status_id, status_name);
            }
        }
    }
    Ok(out)
}

fn put_status(map: &mut Map<String, Value>, type_name: &str, id: Option<i64>, name: Option<String>) {
    map.insert(format!("{type_name}_status_id"), id.map_or(Value::Null, Value::from));
    map.insert(format!("{type_name}_status"), name.map_or(Value::Null, Value::from));
}

/// The customer row's fields: custom fields first, built-in columns over them.
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

/// Timestamps in snapshots and payloads: RFC 3339 in UTC with a `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
