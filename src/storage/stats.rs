//! A workflow's results over a time range (`GET /api/v1/workflows/{id}/stats`), counted
//! exactly from the runs table at the moment of the request.
//!
//! The counts and the series group the runs by the hour they were created in, read from
//! the index `ix_runs_workflow_hour` (workflow, hour, status, goal_reached_at) in its own
//! order: no sort, and the database never touches the runs themselves. Whole hours of the
//! range come from that index; the parts of an hour at either end of a range that does
//! not start or end on the hour come from `ix_runs_workflow_stats` (workflow, created_at,
//! ...). Days are summed from their hours. The paths of splits and the steps' funnel
//! join the step rows, one more grouped read.

use super::runs::{status, step_status};
use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};
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

    /// The start of the bucket `at` (an hour's start) falls in.
    fn of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Bucket::Hour => at,
            Bucket::Day => at.duration_trunc(Duration::days(1)).unwrap_or(at),
        }
    }
}

/// A run's hour as the hourly index holds it (migration 000023 writes the same), and
/// that hour as text the stats read back, `YYYY-MM-DD?HH` (UTC).
fn hour_sql(backend: DbBackend) -> (&'static str, &'static str) {
    match backend {
        // SQLite keeps times as RFC 3339 text: the hour is a prefix of it.
        DbBackend::Sqlite => ("substr(created_at, 1, 13)", "substr(created_at, 1, 13)"),
        _ => (
            "date_trunc('hour', created_at AT TIME ZONE 'UTC')",
            "to_char(date_trunc('hour', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24')",
        ),
    }
}

/// The hour a time's bound falls in, written as the index compares it.
fn hour_bound(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Sqlite => format!("substr(${n}, 1, 13)"),
        _ => format!("date_trunc('hour', ${n} AT TIME ZONE 'UTC')"),
    }
}

/// The start of the hour `text` names (`YYYY-MM-DDTHH` or `YYYY-MM-DD HH`).
fn hour_start(text: &str) -> Option<DateTime<Utc>> {
    let text = format!("{}:00:00", text.get(..13)?.replace(' ', "T"));
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
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
    let (hour, label) = hour_sql(backend);
    let hour_of = |t: DateTime<Utc>| t.duration_trunc(Duration::hours(1)).unwrap_or(t);
    let first_whole = if hour_of(since) == since {
        since
    } else {
        hour_of(since) + Duration::hours(1)
    };
    let last_whole = hour_of(until);
    // Each read: its condition on the range, and the range.
    let mut reads: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(3);
    if first_whole < last_whole {
        reads.push((
            format!(
                "{hour} >= {} AND {hour} < {}",
                hour_bound(backend, 2),
                hour_bound(backend, 3)
            ),
            first_whole,
            last_whole,
        ));
    }
    for (from, to) in [(since, first_whole.min(until)), (last_whole.max(first_whole), until)] {
        if from < to {
            reads.push(("created_at >= $2 AND created_at < $3".to_owned(), from, to));
        }
    }
    let mut hours: BTreeMap<DateTime<Utc>, Counts> = BTreeMap::new();
    let mut counted = Counted::default();
    for (range, from, to) in reads {
        let rows = conn
            .query_all(statement(
                conn,
                &format!(
                    "SELECT {label} AS at, status, COUNT(*) AS n, COUNT(goal_reached_at) AS goals FROM runs \
                     WHERE workflow_id = $1 AND {range} GROUP BY {hour}, status"
                ),
                vec![workflow_id.into(), from.into(), to.into()],
            ))
            .await?;
        for row in rows {
            let at: String = row.try_get("", "at")?;
            let run_status: String = row.try_get("", "status")?;
            let runs = count(row.try_get("", "n")?);
            let goals = count(row.try_get("", "goals")?);
            counted.counts.add(&run_status, runs, goals);
            if let Some(start) = hour_start(&at) {
                hours.entry(bucket.of(start)).or_default().add(&run_status, runs, goals);
            }
        }
    }
    counted.series = hours.into_iter().collect();
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
    fn hours_read_back_as_their_start_and_days_sum_them() {
        let hour = hour_start("2026-12-08T13").expect("an hour");
        assert_eq!(crate::clock::rfc3339(hour), "2026-12-08T13:00:00Z");
        assert_eq!(hour_start("2026-12-08 13"), Some(hour));
        assert_eq!(hour_start("garbage"), None);
        assert_eq!(crate::clock::rfc3339(Bucket::Day.of(hour)), "2026-12-08T00:00:00Z");
        assert_eq!(Bucket::Hour.of(hour), hour);
    }
}
