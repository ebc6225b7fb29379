//! The embedded broker's journal (docs/guarantees.md, "The embedded broker"). The
//! in-process broker keeps its log in memory, so an event it acknowledged is gone when the
//! process dies before the consumer group commits past it. On the embedded default every
//! message the engine publishes (an API event, an emitted event) is written here first;
//! rows the group has committed past are deleted as it goes, and what is left is
//! published again, in the order it was journaled, when the engine starts.

use super::entities::broker_journal;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

/// One journaled message.
pub type JournaledMessage = broker_journal::Model;

/// What is journaled: the message as it is about to be published.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub payload: &'a str,
    pub traceparent: Option<&'a str>,
}

/// Journals `entry` at `now`, not yet published; returns its id.
pub async fn append<C: ConnectionTrait>(conn: &C, entry: Entry<'_>, now: DateTime<Utc>) -> Result<i64, StorageError> {
    let row = broker_journal::ActiveModel {
        topic: Set(entry.topic.to_owned()),
        message_key: Set(entry.key.to_owned()),
        payload: Set(entry.payload.to_owned()),
        traceparent: Set(entry.traceparent.map(str::to_owned)),
        kafka_partition: Set(None),
        kafka_offset: Set(None),
        journaled_at: Set(now),
        ..Default::default()
    };
    Ok(broker_journal::Entity::insert(row).exec(conn).await?.last_insert_id)
}

/// Records where this process's broker put message `id`.
pub async fn published<C: ConnectionTrait>(conn: &C, id: i64, partition: i32, offset: i64) -> Result<(), StorageError> {
    broker_journal::Entity::update_many()
        .col_expr(broker_journal::Column::KafkaPartition, partition.into())
        .col_expr(broker_journal::Column::KafkaOffset, offset.into())
        .filter(broker_journal::Column::Id.eq(id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Deletes message `id`, which the broker refused (its sender was told so).
pub async fn forget<C: ConnectionTrait>(conn: &C, id: i64) -> Result<(), StorageError> {
    broker_journal::Entity::delete_by_id(id).exec(conn).await?;
    Ok(())
}

/// Up to `limit` journaled messages after `after` (an id), oldest first: what a start
/// publishes again.
pub async fn after<C: ConnectionTrait>(
    conn: &C,
    after: i64,
    limit: u64,
) -> Result<Vec<JournaledMessage>, StorageError> {
    Ok(broker_journal::Entity::find()
        .filter(broker_journal::Column::Id.gt(after))
        .order_by_asc(broker_journal::Column::Id)
        .limit(limit.max(1))
        .all(conn)
        .await?)
}

/// Deletes the messages of `topic`'s `partition` below `committed`, the consumer group's
/// committed offset there: they were consumed and their outcomes recorded. Returns how many
/// went.
pub async fn consumed<C: ConnectionTrait>(
    conn: &C,
    topic: &str,
    partition: i32,
    committed: i64,
) -> Result<u64, StorageError> {
    Ok(broker_journal::Entity::delete_many()
        .filter(broker_journal::Column::Topic.eq(topic))
        .filter(broker_journal::Column::KafkaPartition.eq(partition))
        .filter(broker_journal::Column::KafkaOffset.lt(committed))
        .exec(conn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Database;

    fn entry<'a>(payload: &'a str) -> Entry<'a> {
        Entry {
            topic: "crm.events",
            key: "7",
            payload,
            traceparent: None,
        }
    }

    /// Only what the group committed past goes; what was never published stays.
    #[actix_rt::test]
    async fn committed_messages_go_and_the_rest_stays_in_order() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let conn = db.connection();
        let now = Utc::now();
        let a = append(conn, entry("a"), now).await.unwrap();
        let b = append(conn, entry("b"), now).await.unwrap();
        let _c = append(conn, entry("c"), now).await.unwrap();
        published(conn, a, 0, 10).await.unwrap();
        published(conn, b, 0, 11).await.unwrap();

        assert_eq!(consumed(conn, "crm.events", 0, 11).await.unwrap(), 1);
        assert_eq!(consumed(conn, "other", 0, 100).await.unwrap(), 0);
        let left: Vec<_> = after(conn, 0, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(left, ["b", "c"]);
        assert_eq!(after(conn, b, 10).await.unwrap().len(), 1);
    }
}
