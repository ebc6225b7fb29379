//! Kafka plumbing shared by the runtime, the HTTP API and the tools: client configuration,
//! the embedded broker, and a producer.

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("kafka delivery to {topic} failed: {source}")]
    Delivery {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
}

/// The in-process broker of the embedded default: librdkafka's mock cluster, with the
/// engine's topics created. It lives as long as this value.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    pub fn start(topics: &[&str], partitions: i32) -> Result<Self, KafkaError> {
        let cluster = MockCluster::new(1)?;
        for topic in topics {
            cluster.create_topic(topic, partitions, 1)?;
        }
        Ok(Self { cluster })
    }

    /// The bootstrap address any Kafka client can produce to.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// Settings common to every client of the engine.
pub fn base_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "workflow-engine");
    config
}

/// A producer that waits for the broker's acknowledgement of every record, so the engine
/// marks what it published (dead letters, emitted events) only once it is durable.
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    Ok(base_config(brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "5")
        .create()?)
}

/// Publishes one record and waits for the broker's acknowledgement.
pub async fn publish(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: Option<rdkafka::message::OwnedHeaders>,
) -> Result<(i32, i64), KafkaError> {
    let mut record = FutureRecord::to(topic).key(key).payload(payload);
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    producer
        .send(record, Timeout::After(Duration::from_secs(30)))
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(source, _)| KafkaError::Delivery {
            topic: topic.to_owned(),
            source,
        })
}

impl crate::retry::Classify for KafkaError {
    /// A broker may come back: every Kafka failure is worth another try.
    fn verdict(&self) -> crate::retry::Verdict {
        crate::retry::Verdict::Transient
    }
}
