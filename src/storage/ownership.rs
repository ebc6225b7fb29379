//! Partition ownership, fenced by epoch.
//!
//! Kafka decides which process consumes a partition, but a process can go on working for
//! a partition it has lost (a chain in flight when the rebalance came, a resume queued
//! behind other work, a process paused past its session timeout). Each hand-over takes a
//! new epoch here ([`acquire`]), and every transaction that records a step of a
//! partition's work checks that its epoch is still the current one ([`check`]) before it
//! commits anything, so a stale owner's work fails with [`StorageError::Fenced`] and
//! leaves no trace.
//!
//! On PostgreSQL the check takes the partition's advisory lock shared for the transaction
//! (`pg_advisory_xact_lock_shared`) before it reads the epoch, and [`acquire`] takes it
//! exclusive: steps of one partition check at once without waiting on each other, and the
//! new owner's epoch bump waits until the steps already past the check have committed, so
//! no step of the old epoch commits after the new owner starts. An advisory lock lives in
//! the server's lock table; a row lock (`FOR SHARE`) did the same but wrote the row (a
//! multixact) on every step. SQLite has a single writer, which gives the same order.

use super::sql::statement;
use super::{Database, StorageError};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend};

/// The first key of the partitions' advisory locks (the second is the partition): "wfe\0"
/// as an integer, so they stay apart from other users' advisory locks.
const LOCK_SPACE: i32 = 0x7766_6500;

/// The epoch a piece of work was started under, for its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub partition: i32,
    pub epoch: i64,
}

/// Takes ownership of `partition` for `node`: the epoch moves on by one, fencing out
/// whoever held it. Returns the new fence.
pub async fn acquire(db: &Database, partition: i32, node: &str, now: DateTime<Utc>) -> Result<Fence, StorageError> {
    let txn = db.begin().await?;
    lock(&txn, partition, "pg_advisory_xact_lock").await?;
    let row = txn
        .query_one(statement(
            &txn,
            "INSERT INTO partition_owners (partition, owner, epoch, updated_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (partition) DO UPDATE SET epoch = partition_owners.epoch + 1, \
             owner = excluded.owner, updated_at = excluded.updated_at \
             RETURNING epoch",
            vec![partition.into(), node.into(), now.into()],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("owner of partition {partition}")))?;
    let epoch = row.try_get("", "epoch")?;
    txn.commit().await?;
    Ok(Fence { partition, epoch })
}

/// Fails with [`StorageError::Fenced`] unless `fence` is the partition's current epoch.
/// Call it first in a transaction that records work of the partition.
pub async fn check<C: ConnectionTrait>(conn: &C, fence: Fence) -> Result<(), StorageError> {
    lock(conn, fence.partition, "pg_advisory_xact_lock_shared").await?;
    let current: Option<i64> = conn
        .query_one(statement(
            conn,
            "SELECT epoch FROM partition_owners WHERE partition = $1",
            vec![fence.partition.into()],
        ))
        .await?
        .map(|row| row.try_get("", "epoch"))
        .transpose()?;
    if current == Some(fence.epoch) {
        Ok(())
    } else {
        Err(StorageError::Fenced {
            partition: fence.partition,
            epoch: fence.epoch,
            current,
        })
    }
}

/// Takes the partition's advisory lock with `function` until the transaction ends, on
/// PostgreSQL; nothing on SQLite (one writer).
async fn lock<C: ConnectionTrait>(conn: &C, partition: i32, function: &str) -> Result<(), StorageError> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute(statement(
            conn,
            &format!("SELECT {function}($1, $2)"),
            vec![LOCK_SPACE.into(), partition.into()],
        ))
        .await?;
    }
    Ok(())
}

/// The current owner and epoch of each partition, for admin views and tests.
pub async fn owners<C: ConnectionTrait>(conn: &C) -> Result<Vec<(i32, String, i64)>, StorageError> {
    let rows = conn
        .query_all(statement(
            conn,
            "SELECT partition, owner, epoch FROM partition_owners ORDER BY partition",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "partition")?,
                r.try_get("", "owner")?,
                r.try_get("", "epoch")?,
            ))
        })
        .collect()
}
