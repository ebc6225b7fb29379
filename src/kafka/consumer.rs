//! The engine's consumer as a Kafka client: its settings, its context (rebalances and
//! lag) and the dead-letter topic undecodable and refused events go to. The actors that
//! drive it (the group member and the partitions' readers) use these; nothing here knows
//! them.

use super::KafkaError;
use crate::clock::SystemClock;
use crate::metrics::Metrics;
use crate::retry::{self, Backoff, Retried};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A rebalance step reported by the consumer's callback thread, answered once handled.
#[derive(Debug)]
pub enum Rebalancing {
    Assigned(Vec<i32>, std::sync::mpsc::SyncSender<()>),
    Revoked(Vec<i32>, std::sync::mpsc::SyncSender<()>),
}

/// The consumer's context: forwards rebalances to the engine's group member (the Kafka
/// source actor) and waits until it
/// has split (assign) or handed over (revoke) the partitions, and exports lag from
/// statistics.
pub struct EngineContext {
    topic: String,
    rebalances: mpsc::UnboundedSender<Rebalancing>,
}

/// How long a rebalance callback waits for partitions to be split or handed over.
const REBALANCE_WAIT: Duration = Duration::from_secs(60);

impl EngineContext {
    /// A context for a consumer of `topic` that sends each rebalance step to `rebalances`
    /// and waits for its acknowledgement.
    pub fn new(topic: String, rebalances: mpsc::UnboundedSender<Rebalancing>) -> Self {
        Self { topic, rebalances }
    }

    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    fn forward(&self, make: impl FnOnce(std::sync::mpsc::SyncSender<()>) -> Rebalancing) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.rebalances.send(make(tx)).is_ok() && rx.recv_timeout(REBALANCE_WAIT).is_err() {
            tracing::error!("rebalance step not handled within {REBALANCE_WAIT:?}");
        }
    }
}

impl ClientContext for EngineContext {
    fn stats(&self, statistics: Statistics) {
        let metrics = Metrics::global();
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics
                        .consumer_lag
                        .with_label_values(&[&partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            tracing::info!(?partitions, "partitions revoked");
            self.forward(|ack| Rebalancing::Revoked(partitions, ack));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = self.partitions(tpl);
                tracing::info!(?partitions, "partitions assigned");
                self.forward(|ack| Rebalancing::Assigned(partitions, ack));
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

pub type EngineConsumer = StreamConsumer<EngineContext>;

/// Client settings of the engine's consumer: offsets stored by hand after processing,
/// committed in the background and on hand-over; the cooperative-sticky assignor.
///
/// `kafka.properties` lies between the engine's tunable defaults and the settings the
/// engine's guarantees rest on, which win (see [`crate::kafka::layered`]).
pub fn consumer_config(brokers: &str, group_id: &str, kafka: &crate::settings::Kafka) -> ClientConfig {
    super::layered(
        brokers,
        &[
            ("auto.commit.interval.ms", "1000"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
            ("statistics.interval.ms", "5000"),
        ],
        &kafka.properties,
        &[
            ("group.id", group_id),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", kafka.offset_reset().as_str()),
            ("partition.assignment.strategy", "cooperative-sticky"),
        ],
    )
}

/// Where events the engine does not take go, with the reason (`wfe-error`) and their
/// original bytes: undecodable ones, and ones refused after decoding (an id already taken
/// by another event).
#[derive(Clone)]
pub struct DeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
}

/// Waits between attempts at the broker (dead letters) and at recovery.
pub const BROKER_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(10),
};

impl DeadLetters {
    /// Publishes `message` to the dead-letter topic, retrying until it is acknowledged or
    /// `stop` is raised: the offset must not pass an event that is neither processed nor
    /// dead-lettered.
    pub async fn publish(&self, message: &OwnedMessage, reason: &str, stop: &watch::Receiver<bool>) -> bool {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "wfe-error",
                value: Some(reason),
            })
            .insert(Header {
                key: "wfe-source-topic",
                value: Some(message.topic()),
            })
            .insert(Header {
                key: "wfe-source-partition",
                value: Some(&message.partition().to_string()),
            })
            .insert(Header {
                key: "wfe-source-offset",
                value: Some(&message.offset().to_string()),
            });
        let key = message.key().map(String::from_utf8_lossy).unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        let (partition, offset) = (message.partition(), message.offset());
        let on_retry = |e: &KafkaError, _: u32, _: Duration| {
            tracing::error!(error = %e, partition, offset, "dead-letter publish failed, retrying");
        };
        let published = retry::retry(
            &SystemClock,
            BROKER_BACKOFF,
            None,
            || *stop.borrow(),
            on_retry,
            || super::publish(&self.producer, &self.topic, &key, payload, Some(headers.clone())),
        );
        matches!(published.await, Retried::Ok(_))
    }
}
