//! Publishing on the embedded broker without losing what was acknowledged
//! ([`crate::storage::journal`] keeps the rows). With an external cluster the broker is
//! durable and messages go straight to it; on the embedded default each message is
//! journaled before it is published, the consumer group's progress prunes the journal, and
//! [`replay`] publishes what is left when the engine starts.

use super::{publish, KafkaError};
use crate::storage::journal;
use crate::storage::{Database, StorageError};
use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("journaling the message failed: {0}")]
    Storage(#[from] StorageError),
    #[error("reading the committed offsets stopped: {0}")]
    Stopped(String),
}

/// One message to publish: its topic, key, payload and W3C `traceparent`, if it has one;
/// the journal keeps it as it is.
pub use crate::storage::journal::Entry as Message;

/// Publishes `message`, journaled first when `journal` is the embedded broker's database,
/// and answers its partition and offset once the broker has it. A message the broker
/// refused leaves no row: its sender was told it failed and sends it again.
pub async fn publish_durably(
    journal: Option<&Database>,
    producer: &FutureProducer,
    message: Message<'_>,
) -> Result<(i32, i64), JournalError> {
    let Some(db) = journal else {
        return Ok(send(producer, message).await?);
    };
    let id = journal::append(db.connection(), message, Utc::now()).await?;
    match send(producer, message).await {
        Ok((partition, offset)) => {
            // Without its position the row is published again at the next start: a
            // duplicate the engine recognises by the event's id, never a loss.
            if let Err(e) = journal::published(db.connection(), id, partition, offset).await {
                tracing::warn!(journal_id = id, error = %e, "recording a journaled message's position failed");
            }
            Ok((partition, offset))
        }
        Err(e) => {
            if let Err(forget) = journal::forget(db.connection(), id).await {
                tracing::warn!(journal_id = id, error = %forget, "removing an unpublished journal row failed");
            }
            Err(e.into())
        }
    }
}

async fn send(producer: &FutureProducer, message: Message<'_>) -> Result<(i32, i64), KafkaError> {
    let headers = message.traceparent.map(|value| {
        OwnedHeaders::new().insert(Header {
            key: crate::trace::HEADER,
            value: Some(value),
        })
    });
    publish(
        producer,
        message.topic,
        message.key,
        message.payload.as_bytes(),
        headers,
    )
    .await
}

/// Rows read per statement when replaying.
const PAGE: u64 = 500;

/// Publishes every journaled message again, oldest first (so each customer's events keep
/// their order), and records where each now sits. Run at start, before the consumer
/// joins: these are the messages the group had not committed past when the last process
/// stopped. Returns how many were published.
pub async fn replay(db: &Database, producer: &FutureProducer) -> Result<u64, JournalError> {
    let (mut last, mut count) = (0, 0);
    loop {
        let rows = journal::after(db.connection(), last, PAGE).await?;
        let Some(newest) = rows.last() else { break };
        last = newest.id;
        for row in &rows {
            let message = Message {
                topic: &row.topic,
                key: &row.message_key,
                payload: &row.payload,
                traceparent: row.traceparent.as_deref(),
            };
            let (partition, offset) = send(producer, message).await?;
            journal::published(db.connection(), row.id, partition, offset).await?;
            count += 1;
        }
    }
    Ok(count)
}

/// The offsets `consumer`'s group has committed on `topic`'s partitions (the next offset
/// it will read), for [`prune`]. `consumer` is a client of the group that is not a member.
/// Blocks for up to `timeout`: call it off the async workers.
pub fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, KafkaError> {
    let mut asked = TopicPartitionList::new();
    for partition in 0..partitions {
        asked.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(asked, timeout)?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(next) => Some((e.partition(), next)),
            _ => None,
        })
        .collect())
}

/// Deletes the journaled messages of `topic` below the `committed` offsets: consumed, with
/// their outcomes recorded. Returns how many went.
pub async fn prune(db: &Database, topic: &str, committed: &[(i32, i64)]) -> Result<u64, StorageError> {
    let mut pruned = 0;
    for &(partition, next) in committed {
        pruned += journal::consumed(db.connection(), topic, partition, next).await?;
    }
    Ok(pruned)
}

/// How often [`Pruner::run`] reads the group's progress.
pub const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Prunes the journal of a topic as the engine's consumer group commits.
#[derive(Clone)]
pub struct Pruner {
    consumer: Arc<BaseConsumer>,
    db: Database,
    topic: String,
    partitions: i32,
}

impl Pruner {
    /// A client of `group` on `brokers` (not a member: it only reads committed offsets).
    pub fn new(db: Database, brokers: &str, group: &str, topic: &str, partitions: i32) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer = super::base_config(brokers).set("group.id", group).create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            db,
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// One round: reads the committed offsets (off the async workers) and deletes what
    /// they passed. Returns how many rows went.
    pub async fn once(&self) -> Result<u64, JournalError> {
        let (consumer, topic, partitions) = (self.consumer.clone(), self.topic.clone(), self.partitions);
        let offsets = tokio::task::spawn_blocking(move || committed(&consumer, &topic, partitions, PRUNE_EVERY))
            .await
            .map_err(|e| JournalError::Stopped(e.to_string()))??;
        Ok(prune(&self.db, &self.topic, &offsets).await?)
    }

    /// A round every [`PRUNE_EVERY`] until the runtime stops. A failed round is logged and
    /// the next one tries again: the journal only grows meanwhile.
    pub async fn run(self) {
        loop {
            actix_rt::time::sleep(PRUNE_EVERY).await;
            match self.once().await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "consumed messages left the journal"),
                Err(e) => tracing::warn!(error = %e, "pruning the journal of the embedded broker failed"),
            }
        }
    }
}
