//! Scheduled continuations: the rest of a chain after a delay, with its due time.
//!
//! A node claims due rows of the partitions it owns for a lease (`claimed_by`,
//! `claimed_until`); a row whose lease ran out (its node died) is claimable again. On
//! PostgreSQL the claim locks with `FOR UPDATE SKIP LOCKED`, so nodes polling at once take
//! disjoint rows without waiting on each other; SQLite has one writer, so a conditional
//! update is enough.

use super::entities::scheduled;
use super::sql::statement;
use super::{Database, StorageError};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// A scheduled continuation.
pub type Scheduled = scheduled::Model;

/// Schedules the continuation of `run_id` at `due_at`, replacing an earlier one (a second
/// delay of the same run) and clearing any claim. Call it in the transaction that parks
/// the run.
pub async fn schedule<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    customer_id: i64,
    partition: i32,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    scheduled::Entity::insert(scheduled::ActiveModel {
        run_id: Set(run_id),
        customer_id: Set(customer_id),
        partition: Set(partition),
        due_at: Set(due_at),
        claimed_by: Set(None),
        claimed_until: Set(None),
        created_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(scheduled::Column::RunId)
            .update_columns([
                scheduled::Column::CustomerId,
                scheduled::Column::Partition,
                scheduled::Column::DueAt,
                scheduled::Column::ClaimedBy,
                scheduled::Column::ClaimedUntil,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` rows of `partitions` due at `now` and not under another live lease,
/// for `lease`, earliest first.
pub async fn claim_due(
    db: &Database,
    node_id: &str,
    partitions: &[i32],
    now: DateTime<Utc>,
    lease: Duration,
    limit: u64,
) -> Result<Vec<Scheduled>, StorageError> {
    if partitions.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    // Partition numbers are integers, so listing them inline is safe, and it avoids
    // array parameters, which SQLite lacks.
    let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    let lock = match db.get_database_backend() {
        DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    // Due rows of these partitions under no live claim, with the time as parameter $t.
    let claimable = |t: u8| {
        format!("partition IN ({list}) AND due_at <= ${t} AND (claimed_until IS NULL OR claimed_until <= ${t})")
    };
    // Look before claiming: the claim is a write, and on SQLite a write waits for (and
    // holds the one pooled connection through) any other process's write lock, so an idle
    // poll must not be one.
    let probe = format!("SELECT 1 AS one FROM scheduled WHERE {} LIMIT 1", claimable(1));
    if db.query_one(statement(db, &probe, vec![now.into()])).await?.is_none() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE scheduled SET claimed_by = $1, claimed_until = $2 \
         WHERE id IN (SELECT id FROM scheduled WHERE {} \
           ORDER BY due_at, id LIMIT $4 {lock}) \
         RETURNING id, run_id, customer_id, partition, due_at, claimed_by, claimed_until, created_at",
        claimable(3)
    );
    let until = now + lease;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .query_all(statement(
            db,
            &sql,
            vec![node_id.into(), until.into(), now.into(), limit.into()],
        ))
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| Scheduled::from_query_result(row, ""))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|s| (s.due_at, s.id));
    Ok(claimed)
}

/// When something of `partitions` next needs attention: the earliest due time of a row
/// that is free (or whose lease ran out), or the end of the earliest live lease, whichever
/// comes first. `None` when nothing is scheduled.
pub async fn next_due<C: ConnectionTrait>(
    conn: &C,
    partitions: &[i32],
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StorageError> {
    if partitions.is_empty() {
        return Ok(None);
    }
    let in_partitions = scheduled::Column::Partition.is_in(partitions.iter().copied());
    let free = scheduled::Entity::find()
        .filter(in_partitions.clone())
        .filter(
            Condition::any()
                .add(scheduled::Column::ClaimedUntil.is_null())
                .add(scheduled::Column::ClaimedUntil.lte(now)),
        )
        .order_by_asc(scheduled::Column::DueAt)
        .one(conn)
        .await?
        .map(|s| s.due_at);
    let leased = scheduled::Entity::find()
        .filter(in_partitions)
        .filter(scheduled::Column::ClaimedUntil.gt(now))
        .order_by_asc(scheduled::Column::ClaimedUntil)
        .one(conn)
        .await?
        .and_then(|s| s.claimed_until);
    Ok(match (free, leased) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Removes the continuation of `run_id` if `node` holds its claim and it is due at `now`;
/// call it in the transaction that resumes the run. Returns false, removing nothing, when
/// the continuation is not what was claimed: re-claimed by another process after the lease
/// ran out, replaced by a later delay of the run, or not due yet.
pub async fn complete<C: ConnectionTrait>(
    conn: &C,
    run_id: i64,
    node: &str,
    now: DateTime<Utc>,
) -> Result<bool, StorageError> {
    let deleted = conn
        .execute(statement(
            conn,
            "DELETE FROM scheduled WHERE run_id = $1 AND claimed_by = $2 AND due_at <= $3",
            vec![run_id.into(), node.into(), now.into()],
        ))
        .await?
        .rows_affected();
    Ok(deleted > 0)
}

/// Scheduled continuations, earliest first.
pub async fn list<C: ConnectionTrait>(conn: &C, limit: u64) -> Result<Vec<Scheduled>, StorageError> {
    Ok(scheduled::Entity::find()
        .order_by_asc(scheduled::Column::DueAt)
        .order_by_asc(scheduled::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}
