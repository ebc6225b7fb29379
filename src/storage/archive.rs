//! The event archive: consumed events written in multi-row batches (by the archiver
//! actor, off the hot path) and read back in pages by the backtest ([`Replay`]: two short
//! statements a page, no connection held between pages). Pruning by age and by count is
//! in [`super::retention`].

use super::entities::event_archive;
use super::StorageError;
use crate::envelope::EventEnvelope;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// One archived event, as the backtest reads it.
pub type ArchivedEvent = event_archive::Model;

/// Most rows in one INSERT: well under SQLite's 32,766 bound parameters (6 a row) and
/// PostgreSQL's 65,535.
pub const MAX_INSERT_ROWS: usize = 1000;

/// What one [`insert`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Archived {
    /// Rows written.
    pub written: u64,
    /// Events the database refused ([`super::refuses_data`]), left out of the archive.
    pub refused: u64,
}

/// Archives `events` at `now` in multi-row inserts; an event archived before (a
/// redelivery) is skipped. An insert the database refuses for the data of one of its
/// events is split in two, down to that event, which alone is left out: poison data costs
/// its own row, never its batch. Any other failure is returned.
pub async fn insert<C: ConnectionTrait>(
    conn: &C,
    events: &[EventEnvelope],
    now: DateTime<Utc>,
) -> Result<Archived, StorageError> {
    let mut archived = Archived::default();
    // Ranges still to write, the next one last.
    let mut ranges: Vec<&[EventEnvelope]> = events.chunks(MAX_INSERT_ROWS).rev().collect();
    while let Some(range) = ranges.pop() {
        match insert_rows(conn, range, now).await {
            Ok(written) => archived.written += written,
            Err(e) if e.is_refused_data() && range.len() > 1 => {
                let (first, second) = range.split_at(range.len() / 2);
                ranges.extend([second, first]);
            }
            Err(e) if e.is_refused_data() => {
                tracing::warn!(event_id = %range[0].id, error = %e, "the database refuses this event's data; left out of the archive");
                archived.refused += 1;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(archived)
}

/// One multi-row insert of at most [`MAX_INSERT_ROWS`] events.
async fn insert_rows<C: ConnectionTrait>(
    conn: &C,
    events: &[EventEnvelope],
    now: DateTime<Utc>,
) -> Result<u64, StorageError> {
    let rows = events.iter().map(|e| event_archive::ActiveModel {
        event_id: Set(e.id.clone()),
        event_type: Set(e.event_type.clone()),
        customer_id: Set(e.customer_id),
        occurred_at: Set(e.occurred_at.unwrap_or(now)),
        archived_at: Set(now),
        payload: Set(serde_json::Value::Object(e.data.clone())),
        ..Default::default()
    });
    Ok(event_archive::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(event_archive::Column::EventId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?)
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

/// The archived event `event_id`, if the archive holds it.
pub async fn get<C: ConnectionTrait>(conn: &C, event_id: &str) -> Result<Option<ArchivedEvent>, StorageError> {
    Ok(event_archive::Entity::find()
        .filter(event_archive::Column::EventId.eq(event_id))
        .one(conn)
        .await?)
}

/// A customer's archived events, newest first, below `before` (a `seq`): the operator's
/// "what did this customer send". Served by the index on `(customer_id, seq)`.
pub async fn of_customer<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    before: Option<i64>,
    limit: u64,
) -> Result<Vec<ArchivedEvent>, StorageError> {
    let mut select = event_archive::Entity::find()
        .filter(event_archive::Column::CustomerId.eq(customer_id))
        .order_by_desc(event_archive::Column::Seq)
        .limit(limit.max(1));
    if let Some(before) = before {
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

/// One page of archived events with their customers as stored now.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<EventEnvelope>,
    /// Every event's customer; one that no longer exists is `{"id"}` only, as the dry run
    /// has it.
    customers: HashMap<i64, Map<String, Value>>,
}

impl Page {
    /// The events, newest first, each with its customer.
    pub fn iter(&self) -> impl Iterator<Item = (&EventEnvelope, &Map<String, Value>)> {
        self.events
            .iter()
            .filter_map(|e| Some((e, self.customers.get(&e.customer_id)?)))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A read of the archive a page at a time, newest first: each [`Replay::next`] is two
/// short statements (the events, then their customers in one batch), so a backtest holds
/// no connection or transaction between pages and the engine's own queries go in between.
#[derive(Debug, Clone)]
pub struct Replay {
    triggers: Vec<String>,
    since: Option<DateTime<Utc>>,
    remaining: u64,
    /// The cursor: `seq` of the last event read.
    before: Option<i64>,
    done: bool,
}

impl Replay {
    /// The newest `limit` archived events of `triggers` (since `since`).
    pub fn new(triggers: Vec<String>, since: Option<DateTime<Utc>>, limit: u64) -> Self {
        Self {
            triggers,
            since,
            remaining: limit,
            before: None,
            done: false,
        }
    }

    /// The next page, or `None` when the events asked for have been read.
    pub async fn next<C: ConnectionTrait>(&mut self, conn: &C) -> Result<Option<Page>, StorageError> {
        if self.done || self.remaining == 0 {
            return Ok(None);
        }
        let asked = self.remaining.min(PAGE);
        let rows = page(
            conn,
            &PageQuery {
                triggers: &self.triggers,
                since: self.since,
                before: self.before,
                limit: asked,
            },
        )
        .await?;
        let Some(last) = rows.last() else {
            self.done = true;
            return Ok(None);
        };
        self.before = Some(last.seq);
        let got = rows.len() as u64;
        self.remaining = self.remaining.saturating_sub(got);
        self.done = got < asked;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.customer_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut customers = super::customers::snapshots(conn, &ids).await?;
        for id in ids {
            customers
                .entry(id)
                .or_insert_with(|| Map::from_iter([("id".to_owned(), Value::from(id))]));
        }
        let events = rows
            .into_iter()
            .map(|row| EventEnvelope {
                id: row.event_id,
                event_type: row.event_type,
                customer_id: row.customer_id,
                occurred_at: Some(row.occurred_at),
                occurred_at_stamped: false,
                data: match row.payload {
                    Value::Object(map) => map,
                    _ => Map::new(),
                },
                // Conditions read neither the cascade cause nor the trace context.
                cause: None,
                trace: None,
            })
            .collect();
        Ok(Some(Page { events, customers }))
    }
}

/// Hands the newest `limit` archived events of `triggers` (since `since`), newest first,
/// to `visit` with the customer as stored now, a [`Replay`] page at a time. Returns how
/// many events were visited.
pub async fn replay<C: ConnectionTrait>(
    conn: &C,
    triggers: &[String],
    since: Option<DateTime<Utc>>,
    limit: u64,
    mut visit: impl FnMut(&EventEnvelope, &Map<String, Value>),
) -> Result<u64, StorageError> {
    let mut pages = Replay::new(triggers.to_vec(), since, limit);
    let mut visited = 0;
    while let Some(page) = pages.next(conn).await? {
        for (event, customer) in page.iter() {
            visit(event, customer);
        }
        visited += page.len() as u64;
    }
    Ok(visited)
}
