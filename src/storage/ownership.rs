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
//! On PostgreSQL the check reads the row `FOR SHARE`: steps of one partition check at
//! once without waiting on each other, and [`acquire`]'s update waits until the steps
//! already past the check have committed, so no step of the old epoch commits after the
//! new owner starts. SQLite has a single writer, which gives the same order.

use super::sql::statement;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend};

/// The epoch a piece of work was started under, for its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub partition: i32,
    pub epoch: i64,
}

/// Takes ownership of `partition` for `node`: the epoch moves on by one, fencing out
/// whoever held it. Returns the new fence.
pub async fn acquire<C: ConnectionTrait>(
    conn: &C,
    partition: i32,
    node: &str,
    now: DateTime<Utc>,
) -> Result<Fence, StorageError> {
    let row = conn
        .query_one(statement(
            conn,
            "INSERT INTO partition_owners (partition, owner, epoch, updated_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (partition) DO UPDATE SET epoch = partition_owners.epoch + 1, \
             owner = excluded.owner, updated_at = excluded.updated_at \
             RETURNING epoch",
            vec![partition.into(), node.into(), now.into()],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound(format!("owner of partition {partition}")))?;
    Ok(Fence {
        partition,
        epoch: row.try_get("", "epoch")?,
    })
}

/// Fails with [`StorageError::Fenced`] unless `fence` is the partition's current epoch.
/// Call it first in a transaction that records work of the partition.
pub async fn check<C: ConnectionTrait>(conn: &C, fence: Fence) -> Result<(), StorageError> {
    let lock = match conn.get_database_backend() {
        DbBackend::Postgres => " FOR SHARE",
        _ => "",
    };
    let current: Option<i64> = conn
        .query_one(statement(
            conn,
            &format!("SELECT epoch FROM partition_owners WHERE partition = $1{lock}"),
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
