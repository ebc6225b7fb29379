//! A workflow's results over a time range (`GET /api/v1/workflows/{id}/stats`), counted
//! exactly from the runs table at the moment of the request.
//!
//! The counts and the series are one grouped read of the index
//! `ix_runs_workflow_stats` (workflow, created_at, status, goal_reached_at), which holds
//! every column they need: the database never touches the runs themselves. The paths of
//! splits and the steps' funnel join the step rows, one more grouped read.

use super::runs::{status, step_status};
use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::Value;
use std::collections::BTreeMap;

/// The width of the series' buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3600,
            Bucket::Day => 86_400,
        }
    }

    /// The SQL of a run's bucket as text, `YYYY-MM-DD` or `YYYY-MM-DD?HH` (UTC).
    fn sql(self, backend: DbBackend) -> &'static str {
        match (backend, self) {
            // SQLite keeps times as RFC 3339 text: the bucket is a prefix of it.
            (DbBackend::Sqlite, Bucket::Hour) => "substr(created_at, 1, 13)",
            (DbBackend::Sqlite, Bucket::Day) => "substr(created_at, 1, 10)",
            (_, Bucket::Hour) => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')",
            (_, Bucket::Day) => "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    }

    /// The start of the bucket [`Bucket::sql`] names.
    fn start(self, text: &str) -> Option<DateTime<Utc>> {
        match self {
            Bucket::Day => NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
            Bucket::Hour => {
                let text = format!("{}:00:00", text.get(..13)?.replace(' ', "T"));
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
                    .ok()
                    .map(|t| t.and_utc())
            }
        }
    }
}

/// Runs by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub entered: u64,
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub waiting: u64,
    pub held_out: u64,
    pub goal_reached: u64,
    /// Of `goal_reached`, the held-out runs'.
    pub held_out_goal_reached: u64,
}

impl Counts {
    fn add(&mut self, status: &str, runs: u64, goals: u64) {
        self.entered += runs;
        self.goal_reached += goals;
        match status {
            status::DONE => self.done += runs,
            status::FAILED => self.failed += runs,
            status::CANCELLED => self.cancelled += runs,
            status::WAITING => self.waiting += runs,
            status::HELD_OUT => {
                self.held_out += runs;
                self.held_out_goal_reached += goals;
            }
            _ => {}
        }
    }
}

/// A workflow's runs by outcome over `[since, until)`, in all and per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counted {
    pub counts: Counts,
    /// Each bucket with runs, in time order.
    pub series: Vec<(DateTime<Utc>, Counts)>,
}

/// Where a workflow's runs over `[since, until)` went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Steps {
    /// Each split's paths, by `"<step path>:<path index>"`: runs that took it, and of
    /// them those that reached the goal.
    pub paths: BTreeMap<String, (u64, u64)>,
    /// Runs that reached each step (its row is done, failed, waiting or skipped), by the
    /// step's path: the funnel.
    pub steps: BTreeMap<String, u64>,
}

/// Counts the runs of `workflow_id` created in `[since, until)` by status, in all and per
/// `bucket`: one grouped read of the stats index.
pub async fn counts<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
) -> Result<Counted, StorageError> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all(statement(
            conn,
            &format!(
                "SELECT {} AS at, status, COUNT(*) AS n, COUNT(goal_reached_at) AS goals FROM runs \
                 WHERE workflow_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1, 2 ORDER BY 1",
                bucket.sql(backend)
            ),
            vec![workflow_id.into(), since.into(), until.into()],
        ))
        .await?;
    let mut counted = Counted::default();
    for row in rows {
        let at: String = row.try_get("", "at")?;
        let run_status: String = row.try_get("", "status")?;
        let runs = count(row.try_get("", "n")?);
        let goals = count(row.try_get("", "goals")?);
        counted.counts.add(&run_status, runs, goals);
        let Some(start) = bucket.start(&at) else {
            continue;
        };
        match counted.series.last_mut() {
            Some((last, counts)) if *last == start => counts.add(&run_status, runs, goals),
            _ => {
                let mut counts = Counts::default();
                counts.add(&run_status, runs, goals);
                counted.series.push((start, counts));
            }
        }
    }
    Ok(counted)
}

/// The split paths and the funnel of the runs of `workflow_id` created in
/// `[since, until)`: one grouped join of their step rows.
pub async fn steps<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Steps, StorageError> {
    let reached = [
        step_status::DONE,
        step_status::FAILED,
        step_status::WAITING,
        step_status::SKIPPED,
    ];
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT s.step_index, s.path, CASE WHEN s.action_type = 'split' THEN s.result END AS taken, \
             COUNT(*) AS n, COUNT(r.goal_reached_at) AS goals \
             FROM runs r JOIN run_steps s ON s.run_id = r.id \
             WHERE r.workflow_id = $1 AND r.created_at >= $2 AND r.created_at < $3 \
             AND s.status IN ($4, $5, $6, $7) GROUP BY 1, 2, 3",
            vec![
                workflow_id.into(),
                since.into(),
                until.into(),
                reached[0].into(),
                reached[1].into(),
                reached[2].into(),
                reached[3].into(),
            ],
        ))
        .await?;
    let mut found = Steps::default();
    for row in rows {
        let index: i32 = row.try_get("", "step_index")?;
        let path: Option<String> = row.try_get("", "path")?;
        let path = path.unwrap_or_else(|| index.to_string());
        let runs = count(row.try_get("", "n")?);
        *found.steps.entry(path.clone()).or_default() += runs;
        let taken: Option<Value> = row.try_get("", "taken")?;
        if let Some(k) = taken.as_ref().and_then(|t| t.get("path")).and_then(Value::as_u64) {
            let entry = found.paths.entry(format!("{path}:{k}")).or_default();
            entry.0 += runs;
            entry.1 += count(row.try_get("", "goals")?);
        }
    }
    Ok(found)
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_read_back_as_their_start() {
        let day = Bucket::Day.start("2026-12-08").expect("a day");
        assert_eq!(crate::clock::rfc3339(day), "2026-12-08T00:00:00Z");
        let hour = Bucket::Hour.start("2026-12-08T13").expect("an hour");
        assert_eq!(crate::clock::rfc3339(hour), "2026-12-08T13:00:00Z");
        let spaced = Bucket::Hour.start("2026-12-08 13").expect("an hour");
        assert_eq!(spaced, hour);
        assert_eq!(Bucket::Day.start("garbage"), None);
    }
}
