//! Pruning old rows: ended runs with their steps, event plans no run needs any more, and
//! outbox messages that reached an end.
//!
//! Each call deletes at most `batch` rows of one kind, older than a cutoff the caller
//! computes from its clock, so the caller decides how fast to go and every statement
//! holds its locks briefly. Only what can never be needed again goes:
//! - a run only once it ended (done, failed, cancelled); pending, running and waiting
//!   runs stay whatever their age, and a run's steps go with it in one transaction;
//! - an event plan only when no run of its event is left, since a redelivered event
//!   replays its plan and re-creates the runs it names;
//! - an outbox message only once delivered or failed;
//! - a workflow version only when it is neither the workflow's current one nor among its
//!   newest `retention.versions_keep`, and no run that is not done or cancelled uses it.

use super::sql::statement;
use super::{Database, StorageError};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Value};

/// Run statuses that are final.
pub const ENDED_RUNS: [&str; 4] = ["done", "failed", "cancelled", "held_out"];

/// Deletes up to `batch` ended runs last updated before `cutoff`, and their steps.
/// Returns how many runs went.
pub async fn prune_runs(db: &Database, cutoff: DateTime<Utc>, batch: u64) -> Result<u64, StorageError> {
    let txn = db.begin().await?;
    // On PostgreSQL the rows are locked until the deletes commit, so a retry or cancel of
    // one of them waits and then finds it gone rather than half deleted; SKIP LOCKED lets
    // two processes prune side by side.
    let lock = match txn.get_database_backend() {
        DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let rows = txn
        .query_all(statement(
            &txn,
            &format!(
                "SELECT id FROM runs WHERE status IN ($1, $2, $3, $4) AND updated_at < $5 ORDER BY id LIMIT $6{lock}"
            ),
            vec![
                ENDED_RUNS[0].into(),
                ENDED_RUNS[1].into(),
                ENDED_RUNS[2].into(),
                ENDED_RUNS[3].into(),
                cutoff.into(),
                limit(batch),
            ],
        ))
        .await?;
    let ids: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get::<i64>("", "id"))
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        txn.commit().await?;
        return Ok(0);
    }
    let list = id_list(&ids);
    txn.execute_unprepared(&format!("DELETE FROM run_steps WHERE run_id IN ({list})"))
        .await?;
    txn.execute_unprepared(&format!("DELETE FROM goals WHERE run_id IN ({list})"))
        .await?;
    let deleted = txn
        .execute_unprepared(&format!("DELETE FROM runs WHERE id IN ({list})"))
        .await?
        .rows_affected();
    txn.commit().await?;
    Ok(deleted)
}

/// Deletes up to `batch` event plans recorded before `cutoff` whose event has no run
/// left. Returns how many went.
pub async fn prune_plans<C: ConnectionTrait>(conn: &C, cutoff: DateTime<Utc>, batch: u64) -> Result<u64, StorageError> {
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM event_plans WHERE event_id IN (\
               SELECT p.event_id FROM event_plans p WHERE p.created_at < $1 \
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = p.event_id) LIMIT $2)",
            vec![cutoff.into(), limit(batch)],
        ))
        .await?
        .rows_affected())
}

/// Deletes up to `batch` workflow versions older than each workflow's newest `keep`,
/// except a workflow's current version and any version a run still needs: one that is
/// not done or cancelled (pending, running and waiting runs go on with their version's
/// steps; a failed one may be retried). Returns how many went.
pub async fn prune_versions<C: ConnectionTrait>(conn: &C, keep: u32, batch: u64) -> Result<u64, StorageError> {
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM workflow_versions WHERE (workflow_id, version) IN (\
               SELECT v.workflow_id, v.version FROM workflow_versions v \
               WHERE v.version <= (SELECT MAX(n.version) FROM workflow_versions n \
                                   WHERE n.workflow_id = v.workflow_id) - $1 \
               AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = v.workflow_id AND w.version = v.version) \
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.workflow_id = v.workflow_id \
                               AND r.workflow_version = v.version AND r.status NOT IN ($2, $3, $4)) \
               ORDER BY v.workflow_id, v.version LIMIT $5)",
            vec![
                i64::from(keep).into(),
                ENDED_RUNS[0].into(),
                ENDED_RUNS[2].into(),
                ENDED_RUNS[3].into(),
                limit(batch),
            ],
        ))
        .await?
        .rows_affected())
}

/// Deletes up to `batch` delivered or failed outbox messages queued before `cutoff`.
/// Returns how many went.
pub async fn prune_outbox<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, StorageError> {
    use super::outbox::status;
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM outbox WHERE id IN (\
               SELECT id FROM outbox WHERE status IN ($1, $2) AND created_at < $3 ORDER BY id LIMIT $4)",
            vec![
                status::DELIVERED.into(),
                status::FAILED.into(),
                cutoff.into(),
                limit(batch),
            ],
        ))
        .await?
        .rows_affected())
}

fn limit(batch: u64) -> Value {
    i64::try_from(batch.max(1)).unwrap_or(i64::MAX).into()
}

/// Ids read from the database, as an SQL list: integers only, so nothing to escape.
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

/// Deletes up to `batch` archived events archived before `cutoff`, oldest first.
pub async fn prune_archive_older<C: ConnectionTrait>(
    conn: &C,
    cutoff: DateTime<Utc>,
    batch: u64,
) -> Result<u64, StorageError> {
    // Look first: a DELETE is a write even when it finds nothing, and on SQLite an idle
    // write waits out another process's write lock on the engine's one connection.
    let probe = "SELECT seq FROM event_archive WHERE archived_at < $1 LIMIT 1";
    if conn
        .query_one(statement(conn, probe, vec![cutoff.into()]))
        .await?
        .is_none()
    {
        return Ok(0);
    }
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM event_archive WHERE seq IN (\
               SELECT seq FROM event_archive WHERE archived_at < $1 ORDER BY seq LIMIT $2)",
            vec![cutoff.into(), limit(batch)],
        ))
        .await?
        .rows_affected())
}

/// Deletes up to `batch` of the oldest archived events beyond the newest `keep`.
pub async fn prune_archive_beyond<C: ConnectionTrait>(conn: &C, keep: u64, batch: u64) -> Result<u64, StorageError> {
    // The newest `keep` rows are found by walking the primary key from the top; the first
    // row past them marks where deleting starts. Exact whatever the gaps in `seq`.
    let offset = i64::try_from(keep).unwrap_or(i64::MAX);
    let edge = conn
        .query_one(statement(
            conn,
            "SELECT seq FROM event_archive ORDER BY seq DESC LIMIT 1 OFFSET $1",
            vec![offset.into()],
        ))
        .await?;
    let Some(edge) = edge else { return Ok(0) };
    let edge: i64 = edge.try_get("", "seq")?;
    Ok(conn
        .execute(statement(
            conn,
            "DELETE FROM event_archive WHERE seq IN (\
               SELECT seq FROM event_archive WHERE seq <= $1 ORDER BY seq LIMIT $2)",
            vec![edge.into(), limit(batch)],
        ))
        .await?
        .rows_affected())
}
