//! A workflow's results over a time range (`GET /api/v1/workflows/{id}/stats`), exact
//! against the runs table at the moment of the request, and fast on any history.
//!
//! Whole hours of a range are read from the rollup (migration 000024): database triggers
//! on `runs` and `run_steps` count every change of what is counted into `stats_rollup`,
//! one row per workflow, hour and counted thing. On PostgreSQL they write +1/-1 rows of
//! `stats_deltas` instead (inserts only: no row that every transaction of a workflow
//! would wait on), and [`compact`] folds those into the rollup; on SQLite, one writer at
//! a time, they add to the rollup directly. A read sums rollup and deltas in one
//! statement, so it is exact whether or not a compaction ran, and one that runs meanwhile
//! (it moves rows from one table to the other in one transaction) is seen whole or not at
//! all. A week of hours is a few thousand rows, whatever the number of runs.
//!
//! The parts of an hour at either end of a range that does not start or end on the hour
//! are counted from the runs and their steps themselves ([`raw_counts`], [`raw_steps`],
//! through `ix_runs_workflow_stats`): at most two hours of runs. The same raw functions
//! over a whole range are the reference the tests hold the rollup to. Days are summed
//! from their hours.

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

/// A run's hour, as migration 000024's triggers write it (`YYYY-MM-DD?HH`, UTC, on
/// SQLite; a `timestamp` on PostgreSQL), and that hour as text the stats read back.
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

/// The rollup's `hour` column as text the stats read back.
fn rollup_label(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => "hour",
        _ => "to_char(hour, 'YYYY-MM-DD\"T\"HH24')",
    }
}

/// The hour a time's bound falls in, written as the rollup holds it.
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
    fn merge(&mut self, other: &Counts) {
        self.entered += other.entered;
        self.done += other.done;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.waiting += other.waiting;
        self.held_out += other.held_out;
        self.goal_reached += other.goal_reached;
        self.held_out_goal_reached += other.held_out_goal_reached;
    }

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

impl Counted {
    fn merge(&mut self, other: Counted, bucket: Bucket) {
        self.counts.merge(&other.counts);
        let mut series: BTreeMap<DateTime<Utc>, Counts> = std::mem::take(&mut self.series).into_iter().collect();
        for (at, counts) in other.series {
            series.entry(bucket.of(at)).or_default().merge(&counts);
        }
        self.series = series.into_iter().collect();
    }
}

impl Steps {
    fn merge(&mut self, other: Steps) {
        for (key, (runs, goals)) in other.paths {
            let entry = self.paths.entry(key).or_default();
            entry.0 += runs;
            entry.1 += goals;
        }
        for (key, runs) in other.steps {
            *self.steps.entry(key).or_default() += runs;
        }
    }
}

/// The whole hours of `[since, until)`: `(first, last)`, empty when `first >= last`.
fn whole_hours(since: DateTime<Utc>, until: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let hour_of = |t: DateTime<Utc>| t.duration_trunc(Duration::hours(1)).unwrap_or(t);
    let first = if hour_of(since) == since {
        since
    } else {
        hour_of(since) + Duration::hours(1)
    };
    (first, hour_of(until))
}

/// Everything the stats answer for the runs of `workflow_id` created in `[since, until)`:
/// the counts in all and per `bucket`, the split paths and the funnel. Whole hours come
/// from the rollup and its pending deltas, in one read; the parts of an hour at either
/// end from the runs themselves.
pub async fn read<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
) -> Result<(Counted, Steps), StorageError> {
    let (first, last) = whole_hours(since, until);
    if first >= last {
        let counted = raw_counts(conn, workflow_id, (since, until), bucket).await?;
        return Ok((counted, raw_steps(conn, workflow_id, (since, until)).await?));
    }
    let (mut counted, mut found) = rolled_up(conn, workflow_id, (first, last), bucket).await?;
    for (from, to) in [(since, first), (last, until)] {
        if from < to {
            counted.merge(raw_counts(conn, workflow_id, (from, to), bucket).await?, bucket);
            found.merge(raw_steps(conn, workflow_id, (from, to)).await?);
        }
    }
    Ok((counted, found))
}

/// The rollup and the deltas not yet folded into it, summed over the whole hours
/// `[first, last)`: one grouped read of the rollup's key range and of the deltas.
async fn rolled_up<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    (first, last): (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
) -> Result<(Counted, Steps), StorageError> {
    let backend = conn.get_database_backend();
    let label = rollup_label(backend);
    let range = format!(
        "workflow_id = $1 AND hour >= {} AND hour < {}",
        hour_bound(backend, 2),
        hour_bound(backend, 3)
    );
    let rows = conn
        .query_all(statement(
            conn,
            &format!(
                "SELECT {label} AS at, kind, key, CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(goals) AS BIGINT) AS goals \
                 FROM (SELECT hour, kind, key, n, goals FROM stats_rollup WHERE {range} \
                 UNION ALL SELECT hour, kind, key, n, goals FROM stats_deltas WHERE {range}) AS counted \
                 GROUP BY hour, kind, key"
            ),
            vec![workflow_id.into(), first.into(), last.into()],
        ))
        .await?;
    let mut hours: BTreeMap<DateTime<Utc>, Counts> = BTreeMap::new();
    let (mut counted, mut found) = (Counted::default(), Steps::default());
    for row in rows {
        let (n, goals) = (count(row.try_get("", "n")?), count(row.try_get("", "goals")?));
        if n == 0 && goals == 0 {
            // Runs that left the hour (retention, a status moved on): nothing to show.
            continue;
        }
        let kind: String = row.try_get("", "kind")?;
        let key: String = row.try_get("", "key")?;
        match kind.as_str() {
            "run" => {
                counted.counts.add(&key, n, goals);
                let at: String = row.try_get("", "at")?;
                if let Some(start) = hour_start(&at) {
                    hours.entry(bucket.of(start)).or_default().add(&key, n, goals);
                }
            }
            "step" => *found.steps.entry(key).or_default() += n,
            "path" => {
                let entry = found.paths.entry(key).or_default();
                entry.0 += n;
                entry.1 += goals;
            }
            _ => {}
        }
    }
    counted.series = hours.into_iter().collect();
    Ok((counted, found))
}

/// Folds up to `batch` pending deltas into the rollup, in one transaction; returns how
/// many it folded (fewer than `batch`: none are left, as far as this node can take).
/// On SQLite the triggers write none, and this finds nothing (it still folds deltas,
/// should a database hold some).
///
/// Safe with every node doing it at once: on PostgreSQL one statement takes the deltas
/// it deletes with `FOR UPDATE SKIP LOCKED` (two nodes fold disjoint sets) and adds them
/// to the rollup rows in key order (two folds touching the same rows wait for each other
/// rather than deadlock); on SQLite the transaction is the only writer from its first
/// statement on, so its two statements see the same deltas.
pub async fn compact(db: &super::Database, batch: u64) -> Result<u64, StorageError> {
    let limit = sea_orm::Value::BigInt(Some(i64::try_from(batch.max(1)).unwrap_or(i64::MAX)));
    let upsert = "ON CONFLICT (workflow_id, hour, kind, key) DO UPDATE SET \
                  n = stats_rollup.n + excluded.n, goals = stats_rollup.goals + excluded.goals";
    let conn = db.connection();
    if conn.get_database_backend() == DbBackend::Postgres {
        let row = conn
            .query_one(statement(
                conn,
                &format!(
                    "WITH moved AS (DELETE FROM stats_deltas WHERE ctid = ANY(ARRAY(\
                     SELECT ctid FROM stats_deltas LIMIT $1 FOR UPDATE SKIP LOCKED)) \
                     RETURNING workflow_id, hour, kind, key, n, goals), \
                     folded AS (INSERT INTO stats_rollup (workflow_id, hour, kind, key, n, goals) \
                     SELECT workflow_id, hour, kind, key, SUM(n), SUM(goals) FROM moved \
                     GROUP BY workflow_id, hour, kind, key ORDER BY workflow_id, hour, kind, key {upsert}) \
                     SELECT COUNT(*) AS n FROM moved"
                ),
                vec![limit],
            ))
            .await?;
        let folded: i64 = match row {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        return Ok(count(folded));
    }
    let txn = db.begin().await?;
    let taken = "id <= (SELECT MAX(id) FROM (SELECT id FROM stats_deltas ORDER BY id LIMIT $1))";
    txn.execute(statement(
        &txn,
        &format!(
            "INSERT INTO stats_rollup (workflow_id, hour, kind, key, n, goals) \
             SELECT workflow_id, hour, kind, key, SUM(n), SUM(goals) FROM stats_deltas WHERE {taken} \
             GROUP BY workflow_id, hour, kind, key {upsert}"
        ),
        vec![limit.clone()],
    ))
    .await?;
    let folded = txn
        .execute(statement(
            &txn,
            &format!("DELETE FROM stats_deltas WHERE {taken}"),
            vec![limit],
        ))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(folded)
}

/// Folds every pending delta, `batch` at a time; returns how many.
pub async fn compact_all(db: &super::Database, batch: u64) -> Result<u64, StorageError> {
    let mut total = 0;
    loop {
        let folded = compact(db, batch).await?;
        total += folded;
        if folded < batch.max(1) {
            return Ok(total);
        }
    }
}

/// Deletes rollup rows that count nothing any more (their runs were pruned, or moved to
/// another status): the reads skip them, this keeps the table from growing with them.
pub async fn prune_empty<C: ConnectionTrait>(conn: &C) -> Result<u64, StorageError> {
    Ok(conn
        .execute_unprepared("DELETE FROM stats_rollup WHERE n = 0 AND goals = 0")
        .await?
        .rows_affected())
}

/// The reference: the runs of `workflow_id` created in `[since, until)` by status, in all
/// and per `bucket`, counted from the runs themselves (through `ix_runs_workflow_stats`).
/// [`read`] uses it for the parts of an hour at a range's ends; tests compare the rollup
/// to it over whole ranges.
pub async fn raw_counts<C: ConnectionTrait>(
    conn: &C,
    workflow_id: &str,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
) -> Result<Counted, StorageError> {
    let (hour, label) = hour_sql(conn.get_database_backend());
    let rows = conn
        .query_all(statement(
            conn,
            &format!(
                "SELECT {label} AS at, status, COUNT(*) AS n, COUNT(goal_reached_at) AS goals FROM runs \
                 WHERE workflow_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY {hour}, status"
            ),
            vec![workflow_id.into(), since.into(), until.into()],
        ))
        .await?;
    let mut hours: BTreeMap<DateTime<Utc>, Counts> = BTreeMap::new();
    let mut counted = Counted::default();
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
    counted.series = hours.into_iter().collect();
    Ok(counted)
}

/// The reference for the split paths and the funnel of the runs of `workflow_id` created
/// in `[since, until)`: one grouped join of their step rows. [`read`] uses it for the
/// parts of an hour at a range's ends.
pub async fn raw_steps<C: ConnectionTrait>(
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

    /// Whole hours come from the rollup; what is left at either end from the runs.
    #[test]
    fn a_range_is_cut_into_whole_hours_and_the_ends() {
        let at = |h: u32, m: u32| {
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 8, h, m, 0)
                .single()
                .expect("a time")
        };
        assert_eq!(whole_hours(at(10, 30), at(12, 15)), (at(11, 0), at(12, 0)));
        assert_eq!(whole_hours(at(10, 0), at(12, 0)), (at(10, 0), at(12, 0)));
        let (first, last) = whole_hours(at(10, 10), at(10, 50));
        assert!(first >= last, "no whole hour inside one hour");
    }
}
