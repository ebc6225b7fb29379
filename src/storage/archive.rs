//! The event archive: consumed events written in multi-row batches (by the archiver
//! actor, off the hot path) and read back in pages by the backtest. Pruning by age and by
//! count is in [`super::retention`].

use super::entities::event_archive;
use super::StorageError;
use crate::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// One archived event, as the backtest reads it.
pub type ArchivedEvent = event_archive::Model;

/// Most rows in one INSERT: well under SQLite's 32,766 bound parameters (6 a row) and
/// PostgreSQL's 65,535.
pub const MAX_INSERT_ROWS: usize = 1000;

/// Archives `events` at `now` in multi-row inserts; an event archived before (a
/// redelivery) is skipped. Returns how many rows were written.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    events: &[EventEnvelope],
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let mut written = 0;
    for chunk in events.chunks(MAX_INSERT_ROWS) {
        let rows = chunk.iter().map(|e| event_archive::ActiveModel {
            event_id: Set(e.id.clone()),
            event_type: Set(e.event_type.clone()),
            customer_id: Set(e.customer_id),
            occurred_at: Set(e.occurred_at.unwrap_or(now)),
            archived_at: Set(now),
            payload: Set(serde_json::Value::Object(e.data.clone())),
            ..Default::default()
        });
        written += event_archive::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(event_archive::Column::EventId)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(written)
}

/// Which archived events a backtest reads.
#[derive(Debug, Clone)]
pub struct PageQuery<'a> {
    pub triggers: &'a [String],
    /// Only events that occurred at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events archived before this one (`seq` below it): the cursor of the previous page.
    pub before: Option<i64>,
    pub limit: u64,
}

/// A page of archived events of the given triggers, newest first.
pub async fn page<C: ConnectionTrait>(conn: &C, query: &PageQuery<'_>) -> Result<Vec<ArchivedEvent>, StorageError> {
    if query.triggers.is_empty() {
        return Ok(Vec::new());
    }
    let mut select = event_archive::Entity::find()
        .filter(event_archive::Column::EventType.is_in(query.triggers.iter().cloned()))
        .order_by_desc(event_archive::Column::Seq)
        .limit(query.limit.max(1));
    if let Some(since) = query.since {
        select = select.filter(event_archive::Column::OccurredAt.gte(since));
    }
    if let Some(before) = query.before {
        select = select.filter(event_archive::Column::Seq.lt(before));
    }
    Ok(select.all(conn).await?)
}

/// How many events the archive holds.
pub async fn count<C: ConnectionTrait>(conn: &C) -> Result<u64, StorageError> {
    use sea_orm::PaginatorTrait;
    Ok(event_archive::Entity::find().count(conn).await?)
}

/// Archived events read per statement: enough to amortise the round trip, few enough
/// that a page and its customers stay small in memory.
pub const PAGE: u64 = 2_000;

/// Hands the newest `limit` archived events of `triggers` (since `since`), newest first,
/// to `visit` with the customer as stored now, reading a page at a time and loading each
/// page's customers in one batch. A customer that no longer exists is `{"id"}` only, as
/// the dry run has it. Returns how many events were visited.
pub async fn replay<C: ConnectionTrait>(
    conn: &C,
    triggers: &[String],
    since: Option<DateTime<Utc>>,
    limit: u64,
    mut visit: impl FnMut(&EventEnvelope, &Map<String, Value>),
) -> Result<u64, StorageError> {
    let mut remaining = limit;
    let mut before = None;
    let mut visited = 0;
    while remaining > 0 {
        let asked = remaining.min(PAGE);
        let rows = page(
            conn,
            &PageQuery {
                triggers,
                since,
                before,
                limit: asked,
            },
        )
        .await?;
        let Some(last) = rows.last() else { break };
        before = Some(last.seq);
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.customer_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let snapshots = super::customers::snapshots(conn, &ids).await?;
        let got = rows.len() as u64;
        for row in rows {
            let event = EventEnvelope {
                id: row.event_id,
                event_type: row.event_type,
                customer_id: row.customer_id,
                occurred_at: Some(row.occurred_at),
                data: match row.payload {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                // Conditions read neither the cascade cause nor the trace context.
                cause: None,
                trace: None,
            };
            match snapshots.get(&row.customer_id) {
                Some(customer) => visit(&event, customer),
                None => visit(
                    &event,
                    &Map::from_iter([("id".to_owned(), Value::from(row.customer_id))]),
                ),
            }
        }
        visited += got;
        remaining = remaining.saturating_sub(got);
        if got < asked {
            break;
        }
    }
    Ok(visited)
}
