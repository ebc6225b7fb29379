//! The change counter of the live workflow set. Every node polls it and reloads its set
//! when it moves. It moves with every workflow save and with every change that decides
//! which stored workflows validate (status types, statuses, custom fields), always in the
//! transaction of that change, so a node never reloads before the change is visible.

use super::entities::change_counters;
use super::sql::statement;
use super::StorageError;
use sea_orm::{ConnectionTrait, EntityTrait};

/// The counter's row in `change_counters`.
const COUNTER: &str = "workflows";

/// Moves the counter by one, in `conn`'s transaction.
pub async fn bump<C: ConnectionTrait>(conn: &C) -> Result<(), StorageError> {
    conn.execute(statement(
        conn,
        "INSERT INTO change_counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1",
        vec![COUNTER.into()],
    ))
    .await?;
    Ok(())
}

/// The counter now: how many changes so far (0 on a fresh database).
pub async fn current<C: ConnectionTrait>(conn: &C) -> Result<i64, StorageError> {
    Ok(change_counters::Entity::find_by_id(COUNTER.to_owned())
        .one(conn)
        .await?
        .map_or(0, |c| c.value))
}
