//! Customer sync from events (`engine.sync_customers`, on by default): what the engine
//! learns about customers from the events themselves, so runs work with no other writer.
//!
//! - `customer.registered` creates the customer from its payload when there is none
//!   (the built-in fields found in `data`; `registered_at` is the event's time). An
//!   existing customer is left as it is: the CRM's own writes win.
//! - Every event of a customer moves `last_activity_at` forward to the event's time (never
//!   backwards, never past now), which is what `customer.inactive_days` measures. The
//!   events the engine emits itself are not activity: an inactivity event must not end
//!   the inactivity it reports.
//!
//! [`apply`] is idempotent (an insert that does nothing when the row exists, an update
//! that only moves forward), so a redelivered event changes nothing, and it takes the
//! caller's transaction. It is called from one place, before the event's workflows are
//! planned, so the onboarding workflow of a new customer finds the customer.

use super::entities::customers;
use super::sql::statement;
use super::StorageError;
use crate::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde_json::{Map, Value};

/// The event that creates a customer.
pub const REGISTERED: &str = "customer.registered";

/// Event types the engine emits itself; they say nothing about the customer's activity.
pub const ENGINE_EMITTED: [&str; 3] = ["task.overdue", "customer.inactive_days", "compliance.freeze_requested"];

/// Longest text taken from a payload into a customer column.
const MAX_TEXT: usize = 1000;

/// Whether events of this type say anything about their customer (all but the engine's
/// own): the matcher routes them to the customer's executor even when no workflow listens.
pub fn applies_to(event_type: &str) -> bool {
    !ENGINE_EMITTED.contains(&event_type)
}

/// Applies what `event` says about its customer, in the caller's transaction.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    event: &EventEnvelope,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    apply_all(conn, &[event], now).await
}

/// [`apply`] for many events in the caller's transaction: each registration's insert,
/// then every activity time in one statement ([`touch_many`]) rather than one each, since
/// a batch's statements, not their work, are what an event costs.
pub async fn apply_all<C: ConnectionTrait>(
    conn: &C,
    events: &[&EventEnvelope],
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let mut touches = Vec::with_capacity(events.len());
    for event in events.iter().filter(|e| applies_to(&e.event_type)) {
        let at = event.occurred_at.unwrap_or(now).min(now);
        if event.event_type == REGISTERED {
            register(conn, event.customer_id, &event.data, at, now).await?;
        }
        touches.push((event.customer_id, at));
    }
    touch_many(conn, &touches).await
}

/// Most customers in one [`touch_many`] statement: two parameters each, well under
/// SQLite's 32,766 and PostgreSQL's 65,535.
pub const MAX_TOUCH_ROWS: usize = 1000;

/// Moves each customer's `last_activity_at` forward to its time, [`MAX_TOUCH_ROWS`]
/// customers a statement: a batch's events, or the activity writer's. Like a single
/// update it never moves a time backwards, so batches may land in any order and a
/// replayed one changes nothing. A customer named twice keeps its latest time: an
/// `UPDATE ... FROM` joining one row to several updates it from any one of them.
pub async fn touch_many<C: ConnectionTrait>(conn: &C, touches: &[(i64, DateTime<Utc>)]) -> Result<(), StorageError> {
    let mut latest: std::collections::BTreeMap<i64, DateTime<Utc>> = std::collections::BTreeMap::new();
    for &(customer_id, at) in touches {
        let entry = latest.entry(customer_id).or_insert(at);
        *entry = (*entry).max(at);
    }
    let touches: Vec<(i64, DateTime<Utc>)> = latest.into_iter().collect();
    for chunk in touches.chunks(MAX_TOUCH_ROWS) {
        let mut values = Vec::with_capacity(chunk.len() * 2);
        let mut rows = Vec::with_capacity(chunk.len());
        for (i, (customer_id, at)) in chunk.iter().enumerate() {
            values.push((*customer_id).into());
            values.push((*at).into());
            rows.push(format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
        }
        let sql = format!(
            "WITH touched (id, at) AS (VALUES {}) \
             UPDATE customers SET last_activity_at = touched.at FROM touched \
             WHERE customers.id = touched.id \
             AND (customers.last_activity_at IS NULL OR customers.last_activity_at < touched.at)",
            rows.join(", ")
        );
        conn.execute(statement(conn, &sql, values)).await?;
    }
    Ok(())
}

fn text(data: &Map<String, Value>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(Value::as_str)
        .map(|s| s.chars().take(MAX_TEXT).collect())
}

/// Inserts the customer from the payload unless it exists.
async fn register<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    data: &Map<String, Value>,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    // The payload may carry the fields at the top or under "customer".
    let data = match data.get("customer") {
        Some(Value::Object(inner)) => inner,
        _ => data,
    };
    let mut row = customers::ActiveModel {
        id: Set(id),
        registered_at: Set(Some(at)),
        last_activity_at: Set(Some(at)),
        custom_fields: Set(Value::Object(Map::new())),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(v) = text(data, "first_name") {
        row.first_name = Set(v);
    }
    if let Some(v) = text(data, "last_name") {
        row.last_name = Set(v);
    }
    if let Some(v) = text(data, "email") {
        row.email = Set(v);
    }
    if let Some(v) = text(data, "phone") {
        row.phone = Set(v);
    }
    if let Some(v) = text(data, "country") {
        row.country = Set(v);
    }
    if let Some(v) = text(data, "language") {
        row.language = Set(v);
    }
    if let Some(v) = text(data, "desk") {
        row.desk = Set(v);
    }
    if let Some(v) = data.get("balance").and_then(Value::as_f64).filter(|b| b.is_finite()) {
        row.balance = Set(v);
    }
    // An unknown zone would break send windows later: such a payload keeps the default.
    if let Some(v) = text(data, "timezone").filter(|tz| tz.parse::<chrono_tz::Tz>().is_ok()) {
        row.timezone = Set(v);
    }
    for (key, column) in [("email_opt_out", 0), ("sms_opt_out", 1)] {
        if let Some(v) = data.get(key).and_then(Value::as_bool) {
            match column {
                0 => row.email_opt_out = Set(v),
                _ => row.sms_opt_out = Set(v),
            }
        }
    }
    customers::Entity::insert(row)
        .on_conflict(OnConflict::column(customers::Column::Id).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
