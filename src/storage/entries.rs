//! Workflow entries: when each customer last entered each limited workflow, so a limit
//! (`once_per_customer`, `cooldown`) holds across events, processes and restarts.
//!
//! [`enter`] is one conditional statement, run in the transaction that records the run:
//! an insert that does nothing when the customer entered before (once), or an upsert that
//! updates only an entry older than the cooldown. Two transactions racing for one customer
//! cannot both succeed: SQLite has one writer, and PostgreSQL makes the second wait on the
//! first's row and then re-checks the condition against the committed entry.

use super::sql::statement;
use super::StorageError;
use crate::guards::limits::{cooldown_cutoff, EntryLimit};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};

/// Enters `customer_id` into `workflow_id` at `now` if `limit` lets them. Returns false,
/// changing nothing, when the limit holds the customer back. Call it in the transaction
/// that records the run, so the entry exists exactly when the run does.
pub async fn enter<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    customer_id: i64,
    limit: EntryLimit,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let (sql, values) = match limit {
        EntryLimit::OncePerCustomer => (
            "INSERT INTO workflow_entries (workflow_id, customer_id, entered_at) VALUES ($1, $2, $3) \
             ON CONFLICT (workflow_id, customer_id) DO NOTHING",
            vec![workflow_id.into(), customer_id.into(), now.into()],
        ),
        EntryLimit::Cooldown(period) => (
            "INSERT INTO workflow_entries (workflow_id, customer_id, entered_at) VALUES ($1, $2, $3) \
             ON CONFLICT (workflow_id, customer_id) DO UPDATE SET entered_at = excluded.entered_at \
             WHERE workflow_entries.entered_at <= $4",
            vec![
                workflow_id.into(),
                customer_id.into(),
                now.into(),
                cooldown_cutoff(period, now).into(),
            ],
        ),
    };
    let entered = conn.execute(statement(conn, sql, values)).await?.rows_affected();
    Ok(entered > 0)
}

#[derive(FromQueryResult)]
struct Entry {
    entered_at: DateTime<Utc>,
}

/// When `customer_id` last entered `workflow_id`, if ever: what the dry run judges a limit
/// by, with [`EntryLimit::held_back`].
pub async fn last_entered<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    customer_id: i64,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "SELECT entered_at FROM workflow_entries WHERE workflow_id = $1 AND customer_id = $2",
            vec![workflow_id.into(), customer_id.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => Some(Entry::from_query_result(&row, "")?.entered_at),
        None => None,
    })
}
