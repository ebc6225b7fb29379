//! A customer's activity feed: what happened to the customer, newest first, read from the
//! tables that record it.
//!
//! Sources, each with the time it is placed at:
//! - runs of the customer's workflows (`runs.created_at`);
//! - status changes and assignments: the `done` steps of `set_status` and of the
//!   `assign_*` / `reassign_round_robin` / `handover_to_retention` actions, read from
//!   `run_steps` joined with `runs` (`run_steps.finished_at`). Nothing else records them: a
//!   status or agent written through the CRM API directly (PUT /api/v1/customers/{id})
//!   keeps no history, so it is not in the feed;
//! - tasks created (`tasks.created_at`) and tasks marked done (`tasks.done_at`);
//! - notes (`notes.created_at`), the first [`NOTE_CHARS`] characters of each;
//! - messages: email, SMS and webhook rows of the outbox (`outbox.created_at`). Events the
//!   engine emitted are not messages and are left out.
//!
//! Paging is bounded per source: each source is one query of at most `limit + 1` rows
//! after the cursor, ordered by its time, then merged in memory; a page never reads a
//! customer's whole history. The order is total: time, then kind ([`Kind`]'s rank), then
//! the row's key, all descending, so entries of the same instant (the steps of one run
//! commonly share it) are neither skipped nor repeated across pages.

use super::entities::tasks;
use super::outbox::OutboxKind;
use super::runs::step_status;
use super::sql::statement;
use super::StorageError;
use crate::catalogue::ActionKind;
use crate::clock::rfc3339;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Value};
use std::fmt;
use std::str::FromStr;

/// Characters of a note's body the feed reads: a summary, never the whole text.
pub const NOTE_CHARS: usize = 200;

/// What an entry is. The order of the variants is their rank among entries of the same
/// instant: a run starts before its steps act, and a task is created before it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Run,
    StatusChange,
    Assignment,
    TaskCreated,
    Note,
    Message,
    TaskDone,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Run,
        Kind::StatusChange,
        Kind::Assignment,
        Kind::TaskCreated,
        Kind::Note,
        Kind::Message,
        Kind::TaskDone,
    ];

    /// The name the API shows as the entry's `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::StatusChange => "status_change",
            Kind::Assignment => "assignment",
            Kind::TaskCreated => "task_created",
            Kind::Note => "note",
            Kind::Message => "message",
            Kind::TaskDone => "task_done",
        }
    }

    fn rank(self) -> i8 {
        self as i8
    }
}

/// Where an entry sits in the feed; entries go in descending order of it. `rank` is the
/// kind's rank, or -1 in a cursor that is a bare time (everything strictly older).
/// `key` is the row's id, or (run id, step index) for steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub at: DateTime<Utc>,
    rank: i8,
    key: (i64, i32),
}

impl Position {
    /// Everything strictly before `at`.
    pub fn before(at: DateTime<Utc>) -> Self {
        Position {
            at,
            rank: -1,
            key: (0, 0),
        }
    }
}

/// A `before` cursor that is neither an RFC 3339 time nor a position this feed gave out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor of this feed: expected an RFC 3339 time or a next_before value, got {0:?}")]
pub struct BadCursor(pub String);

/// `<time>~<kind>~<id>~<step>` (a `next_before`), or a bare RFC 3339 time.
impl FromStr for Position {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Self, BadCursor> {
        let bad = || BadCursor(text.to_owned());
        let mut parts = text.split('~');
        let at = parts
            .next()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(bad)?
            .with_timezone(&Utc);
        let rest: Vec<&str> = parts.collect();
        match rest.as_slice() {
            [] => Ok(Position::before(at)),
            [kind, id, step] => {
                let kind = Kind::ALL.into_iter().find(|k| k.name() == *kind).ok_or_else(bad)?;
                Ok(Position {
                    at,
                    rank: kind.rank(),
                    key: (id.parse().map_err(|_| bad())?, step.parse().map_err(|_| bad())?),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `rfc3339` keeps every fractional digit: the cursor must name the stored instant.
        let at = rfc3339(self.at);
        match Kind::ALL.into_iter().find(|k| k.rank() == self.rank) {
            Some(kind) => write!(f, "{at}~{}~{}~{}", kind.name(), self.key.0, self.key.1),
            None => f.write_str(&at),
        }
    }
}

/// A run of the customer, without its event.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct RunRow {
    pub id: i64,
    pub workflow_id: String,
    pub workflow_version: i64,
    pub event_id: String,
    pub trigger: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A done step that changed a status or an assignment, with its result.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct StepRow {
    pub run_id: i64,
    pub step_index: i32,
    pub action_type: String,
    pub result: Option<serde_json::Value>,
    pub finished_at: DateTime<Utc>,
    pub workflow_id: String,
}

/// A note, its body cut to [`NOTE_CHARS`] characters by the query.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct NoteRow {
    pub id: i64,
    pub body: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

/// An email, SMS or webhook in the outbox. `payload` is the request as queued; whoever
/// shows it must leave out its headers and body.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct MessageRow {
    pub id: i64,
    pub kind: String,
    pub run_id: Option<i64>,
    pub step_index: Option<i32>,
    pub status: String,
    pub attempts: i32,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The row behind an entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Run(RunRow),
    Step(StepRow),
    Task(tasks::Model),
    Note(NoteRow),
    Message(MessageRow),
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub position: Position,
    pub detail: Detail,
}

/// One page of the feed, newest first; `next` is the cursor of the page after it, `None`
/// on the last page.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPage {
    pub entries: Vec<Entry>,
    pub next: Option<Position>,
}

/// How one source is read: its query (selecting the customer's rows with `$1`), the
/// column that places a row in time and the columns of its key.
struct Source {
    kind: Kind,
    select: String,
    time: &'static str,
    id: &'static str,
    step: Option<&'static str>,
}

fn quoted(names: impl IntoIterator<Item = &'static str>) -> String {
    names
        .into_iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn steps_of(kind: Kind, actions: &[ActionKind]) -> Source {
    Source {
        kind,
        select: format!(
            "SELECT s.run_id, s.step_index, s.action_type, s.result, s.finished_at, r.workflow_id \
             FROM run_steps s JOIN runs r ON r.id = s.run_id \
             WHERE r.customer_id = $1 AND s.status = '{}' AND s.action_type IN ({})",
            step_status::DONE,
            quoted(actions.iter().map(|a| a.name()))
        ),
        time: "s.finished_at",
        id: "s.run_id",
        step: Some("s.step_index"),
    }
}

fn sources() -> [Source; 7] {
    const TASK_COLUMNS: &str = "id, customer_id, title, task_type, due_at, assignee_id, done, overdue_emitted_at, \
                                created_at, run_id, step_index, done_at";
    [
        Source {
            kind: Kind::Run,
            select: "SELECT id, workflow_id, workflow_version, event_id, \"trigger\", status, created_at \
                     FROM runs WHERE customer_id = $1"
                .to_owned(),
            time: "created_at",
            id: "id",
            step: None,
        },
        steps_of(Kind::StatusChange, &[ActionKind::SetStatus]),
        steps_of(
            Kind::Assignment,
            &[
                ActionKind::AssignToTeam,
                ActionKind::AssignToAgent,
                ActionKind::ReassignRoundRobin,
                ActionKind::HandoverToRetention,
            ],
        ),
        Source {
            kind: Kind::TaskCreated,
            select: format!("SELECT {TASK_COLUMNS} FROM tasks WHERE customer_id = $1"),
            time: "created_at",
            id: "id",
            step: None,
        },
        Source {
            kind: Kind::Note,
            select: format!(
                "SELECT id, SUBSTR(body, 1, {NOTE_CHARS}) AS body, author, created_at FROM notes WHERE customer_id = $1"
            ),
            time: "created_at",
            id: "id",
            step: None,
        },
        Source {
            kind: Kind::Message,
            select: format!(
                "SELECT id, kind, run_id, step_index, status, attempts, payload, created_at \
                 FROM outbox WHERE customer_id = $1 AND kind IN ({})",
                quoted([OutboxKind::Email, OutboxKind::Sms, OutboxKind::Webhook].map(OutboxKind::as_str))
            ),
            time: "created_at",
            id: "id",
            step: None,
        },
        Source {
            kind: Kind::TaskDone,
            select: format!("SELECT {TASK_COLUMNS} FROM tasks WHERE customer_id = $1"),
            time: "done_at",
            id: "id",
            step: None,
        },
    ]
}

impl Source {
    /// The query of at most `limit` rows of this source after `before`, in feed order.
    fn query(&self, customer_id: i64, before: Option<Position>, limit: u64) -> (String, Vec<Value>) {
        let Source { time, id, .. } = self;
        let mut sql = format!("{} AND {time} IS NOT NULL", self.select);
        let mut values: Vec<Value> = vec![customer_id.into()];
        if let Some(c) = before {
            values.push(c.at.into());
            let rank = self.kind.rank();
            if rank < c.rank {
                // Below the cursor's kind: the cursor's own instant is still to come.
                sql.push_str(&format!(" AND {time} <= $2"));
            } else if rank > c.rank {
                sql.push_str(&format!(" AND {time} < $2"));
            } else {
                values.push(c.key.0.into());
                let later_key = match self.step {
                    Some(step) => {
                        values.push(c.key.1.into());
                        format!("{id} < $3 OR ({id} = $3 AND {step} < $4)")
                    }
                    None => format!("{id} < $3"),
                };
                sql.push_str(&format!(" AND ({time} < $2 OR ({time} = $2 AND ({later_key})))"));
            }
        }
        let step_order = self.step.map(|s| format!(", {s} DESC")).unwrap_or_default();
        sql.push_str(&format!(" ORDER BY {time} DESC, {id} DESC{step_order} LIMIT {limit}"));
        (sql, values)
    }

    async fn read<C: ConnectionTrait>(
        &self,
        conn: &C,
        customer_id: i64,
        before: Option<Position>,
        limit: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let (sql, values) = self.query(customer_id, before, limit);
        let stmt = statement(conn, &sql, values);
        let kind = self.kind;
        let entry = |at: DateTime<Utc>, key: (i64, i32), detail: Detail| Entry {
            kind,
            position: Position {
                at,
                rank: kind.rank(),
                key,
            },
            detail,
        };
        Ok(match kind {
            Kind::Run => RunRow::find_by_statement(stmt)
                .all(conn)
                .await?
                .into_iter()
                .map(|r| entry(r.created_at, (r.id, 0), Detail::Run(r)))
                .collect(),
            Kind::StatusChange | Kind::Assignment => StepRow::find_by_statement(stmt)
                .all(conn)
                .await?
                .into_iter()
                .map(|s| entry(s.finished_at, (s.run_id, s.step_index), Detail::Step(s)))
                .collect(),
            Kind::TaskCreated | Kind::TaskDone => tasks::Model::find_by_statement(stmt)
                .all(conn)
                .await?
                .into_iter()
                .filter_map(|t| {
                    let at = if kind == Kind::TaskDone {
                        t.done_at?
                    } else {
                        t.created_at
                    };
                    Some(entry(at, (t.id, 0), Detail::Task(t)))
                })
                .collect(),
            Kind::Note => NoteRow::find_by_statement(stmt)
                .all(conn)
                .await?
                .into_iter()
                .map(|n| entry(n.created_at, (n.id, 0), Detail::Note(n)))
                .collect(),
            Kind::Message => MessageRow::find_by_statement(stmt)
                .all(conn)
                .await?
                .into_iter()
                .map(|m| entry(m.created_at, (m.id, 0), Detail::Message(m)))
                .collect(),
        })
    }
}

/// At most `limit` entries of `customer_id`'s feed after `before` (from the newest when
/// `None`). Reads at most `limit + 1` rows from each source: one more than a page, so a
/// next page is announced only when there is one.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    customer_id: i64,
    before: Option<Position>,
    limit: u64,
) -> Result<ActivityPage, StorageError> {
    let mut entries = Vec::new();
    for source in sources() {
        entries.extend(source.read(conn, customer_id, before, limit + 1).await?);
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.position));
    let more = entries.len() as u64 > limit;
    entries.truncate(limit as usize);
    let next = if more { entries.last().map(|e| e.position) } else { None };
    Ok(ActivityPage { entries, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cursors_read_back_as_written() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap() + chrono::Duration::nanoseconds(123_456_789);
        let p = Position {
            at,
            rank: Kind::Assignment.rank(),
            key: (17, 3),
        };
        assert_eq!(p.to_string(), "2026-12-07T15:00:00.123456789Z~assignment~17~3");
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        let bare: Position = "2026-12-07T15:00:00Z".parse().unwrap();
        assert_eq!(
            bare,
            Position::before(Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap())
        );
        assert_eq!(bare.to_string().parse::<Position>(), Ok(bare));
        for bad in [
            "",
            "yesterday",
            "2026-12-07T15:00:00Z~note",
            "2026-12-07T15:00:00Z~nope~1~0",
            "2026-12-07T15:00:00Z~note~x~0",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bare_time_comes_after_every_entry_of_its_instant() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap();
        let run = Position {
            at,
            rank: Kind::Run.rank(),
            key: (1, 0),
        };
        assert!(Position::before(at) < run);
        // An older entry of a higher kind still comes after the cursor.
        let older_note = Position {
            at: at - chrono::Duration::seconds(1),
            rank: Kind::Note.rank(),
            key: (9, 0),
        };
        assert!(older_note < Position::before(at));
    }
}
