//! Kafka plumbing shared by the runtime, the HTTP API and the tools: client configuration,
//! the embedded broker, a producer, and the start-up check that the brokers answer.
//!
//! Every client the engine makes is configured in three layers, later wins: the engine's
//! defaults (timeouts an operator may tune), the operator's `kafka.properties` (TLS, SASL
//! and anything else librdkafka knows), then the few settings the engine's guarantees
//! rest on ([`RESERVED`]), which `kafka.properties` may not name.

pub mod consumer;
pub mod journal;

pub use consumer::{consumer_config, DeadLetters, EngineConsumer, EngineContext, Rebalancing};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, DefaultProducerContext, FutureProducer, FutureRecord, Producer as _, ProducerContext,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use std::collections::BTreeMap;
use std::sync::Mutex;
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
    /// librdkafka refused a property (unknown name or bad value). The value is left out:
    /// it may be a password.
    #[error("kafka.properties.{name}: librdkafka refused it: {reason}")]
    Property { name: String, reason: String },
    /// A property the engine sets itself, for a guarantee it gives.
    #[error("kafka.properties.{name}: set by the engine ({why}); remove it")]
    Reserved { name: String, why: &'static str },
    /// The brokers did not answer a metadata request in time, or refused the client.
    /// `client_errors` are what librdkafka reported meanwhile (a refused TLS handshake, a
    /// failed SASL authentication): the metadata request itself only says it timed out.
    #[error("kafka brokers {brokers} unreachable within {timeout:?}{}", client_detail(.client_errors))]
    Unreachable {
        brokers: String,
        timeout: Duration,
        client_errors: Vec<String>,
        /// Boxed: the client errors made this the largest variant.
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("kafka topic {topic} does not exist on {brokers} ({reason}); create it first (docs/deployment.md)")]
    MissingTopic {
        topic: String,
        brokers: String,
        reason: String,
    },
}

/// The errors librdkafka reported during a probe, as the end of the `Unreachable` message.
fn client_detail(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({})", errors.join("; "))
    }
}

/// librdkafka properties from `kafka.properties`, by name.
pub type Properties = BTreeMap<String, String>;

/// Properties the engine sets on its clients and `kafka.properties` may not replace, with
/// why: at-least-once consumption rests on manual offset stores committed by the
/// client, the cooperative assignor keeps rebalances incremental, and the producer must
/// be idempotent and wait for every in-sync replica.
pub const RESERVED: &[(&str, &str)] = &[
    ("bootstrap.servers", "use kafka.brokers"),
    ("metadata.broker.list", "use kafka.brokers"),
    ("group.id", "use kafka.group_id"),
    ("auto.offset.reset", "use kafka.auto_offset_reset"),
    (
        "enable.auto.offset.store",
        "offsets are stored only once an event's runs are recorded",
    ),
    ("enable.auto.commit", "stored offsets are committed by the client"),
    (
        "partition.assignment.strategy",
        "cooperative-sticky keeps a rebalance to the partitions that move",
    ),
    ("acks", "every record waits for all in-sync replicas"),
    ("enable.idempotence", "retries must not duplicate records"),
];

/// Why `name` may not be given in `kafka.properties`, if it may not.
pub fn reserved_property(name: &str) -> Option<&'static str> {
    RESERVED.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
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

/// A client configuration in the three layers: `defaults` (the engine's, tunable), then
/// `properties` (the operator's), then `enforced` (the engine's, winning).
pub fn layered(
    brokers: &str,
    defaults: &[(&str, &str)],
    properties: &Properties,
    enforced: &[(&str, &str)],
) -> ClientConfig {
    let mut config = base_config(brokers);
    for (name, value) in defaults {
        config.set(*name, *value);
    }
    for (name, value) in properties {
        config.set(name, value);
    }
    config.set("bootstrap.servers", brokers);
    for (name, value) in enforced {
        config.set(*name, *value);
    }
    config
}

/// The producer's configuration: it waits for the broker's acknowledgement of every
/// record, so the engine marks what it published (dead letters, emitted events) only
/// once it is durable.
pub fn producer_config(brokers: &str, properties: &Properties) -> ClientConfig {
    layered(
        brokers,
        &[("message.timeout.ms", "30000"), ("linger.ms", "5")],
        properties,
        &[("acks", "all"), ("enable.idempotence", "true")],
    )
}

/// A producer with the engine's settings and no extra properties (the embedded broker,
/// tests, tools).
pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    producer_with(brokers, &Properties::new())
}

/// A producer with `kafka.properties` applied.
pub fn producer_with(brokers: &str, properties: &Properties) -> Result<FutureProducer, KafkaError> {
    Ok(producer_config(brokers, properties).create()?)
}

/// Checks `kafka.properties` against the engine's reserved names and against librdkafka
/// itself, for each client the engine makes (`configs`), so a typo fails start-up with
/// the property's name instead of at the first connection.
pub fn check_properties(properties: &Properties, configs: &[ClientConfig]) -> Result<(), KafkaError> {
    if let Some((name, why)) = properties
        .keys()
        .find_map(|name| reserved_property(name).map(|why| (name, why)))
    {
        return Err(KafkaError::Reserved {
            name: name.clone(),
            why,
        });
    }
    for config in configs {
        if let Err(e) = config.create_native_config() {
            return Err(match e {
                rdkafka::error::KafkaError::ClientConfig(_, reason, name, value) => refused(name, reason, &value),
                other => KafkaError::Client(other),
            });
        }
    }
    Ok(())
}

/// librdkafka's reason quotes the value; it may be a password, so it is left out.
fn refused(name: String, reason: String, value: &str) -> KafkaError {
    let reason = if value.is_empty() {
        reason
    } else {
        reason.replace(value, "<redacted>")
    };
    KafkaError::Property { name, reason }
}

/// How many distinct client errors a failed probe reports: the first few say why (a TLS
/// or SASL failure repeats on every reconnect).
const PROBE_ERRORS: usize = 3;

/// The probe's client context: it keeps the errors librdkafka reports while the probe
/// waits, so a failed start-up says why the brokers did not answer.
#[derive(Default)]
struct ProbeContext {
    errors: Mutex<Vec<String>>,
}

impl ClientContext for ProbeContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // "1/1 brokers are down" follows every failure and says nothing of why.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        // librdkafka ends a reason with timings ("(after 1ms in state SSL_HANDSHAKE)") that
        // differ on every retry of the same failure.
        let reason = reason.split(" (after ").next().unwrap_or(reason);
        let mut errors = self.errors.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if errors.len() < PROBE_ERRORS && !errors.iter().any(|e| e == reason) {
            tracing::warn!(%error, reason, "kafka client error during the start-up check");
            errors.push(reason.to_owned());
        }
    }
}

/// The probe sends nothing; a producer context is what lets it see error texts.
impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

impl ProbeContext {
    fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Start-up check: a client with the engine's properties fetches the metadata of
/// `topics` within `timeout`. Fails naming the brokers when they do not answer (with the
/// client's reason, such as a failed TLS handshake or SASL authentication) and naming a
/// topic that does not exist. Blocking: call it off the async threads.
///
/// The client is a producer because librdkafka hands a producer its error events with
/// their text; a consumer's poll gives only the code.
pub fn probe(brokers: &str, properties: &Properties, topics: &[&str], timeout: Duration) -> Result<(), KafkaError> {
    // A producer's metadata request creates a missing topic where the broker allows it;
    // the check must see it missing.
    let client: BaseProducer<ProbeContext> =
        layered(brokers, &[], properties, &[("allow.auto.create.topics", "false")])
            .create_with_context(ProbeContext::default())
            .map_err(|e| match e {
                rdkafka::error::KafkaError::ClientConfig(_, reason, name, value) => refused(name, reason, &value),
                other => KafkaError::Client(other),
            })?;
    let unreachable = |source| {
        // Serve the error events queued while the metadata request waited.
        for _ in 0..64 {
            client.poll(Duration::ZERO);
        }
        KafkaError::Unreachable {
            brokers: brokers.to_owned(),
            timeout,
            client_errors: client.context().errors(),
            source: Box::new(source),
        }
    };
    for topic in topics {
        let metadata = client
            .client()
            .fetch_metadata(Some(topic), timeout)
            .map_err(unreachable)?;
        let found = metadata.topics().iter().find(|t| t.name() == *topic);
        let missing = match found.map(|t| t.error().map(RDKafkaErrorCode::from)) {
            None => Some("not in the metadata".to_owned()),
            Some(Some(code @ RDKafkaErrorCode::UnknownTopicOrPartition)) => Some(code.to_string()),
            // Anything else (a leader election in progress) is the broker's business.
            Some(Some(code)) => {
                tracing::warn!(topic, error = %code, "kafka topic metadata has an error");
                None
            }
            Some(None) => None,
        };
        if let Some(reason) = missing {
            return Err(KafkaError::MissingTopic {
                topic: (*topic).to_owned(),
                brokers: brokers.to_owned(),
                reason,
            });
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn properties(pairs: &[(&str, &str)]) -> Properties {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The engine's clients for `kafka` pointed at a made-up broker: nothing connects.
    fn clients(kafka: &crate::settings::Kafka) -> Vec<ClientConfig> {
        vec![
            consumer_config("kafka-1:9092", &kafka.group_id, kafka),
            producer_config("kafka-1:9092", &kafka.properties),
        ]
    }

    #[test]
    fn a_property_librdkafka_does_not_know_is_refused_with_its_name() {
        let mut kafka = Settings::defaults().unwrap().kafka;
        kafka.properties = properties(&[("socket.keepalive.enabel", "true")]);
        let err = check_properties(&kafka.properties, &clients(&kafka)).unwrap_err();
        assert!(
            matches!(&err, KafkaError::Property { name, .. } if name == "socket.keepalive.enabel"),
            "{err}"
        );
        assert!(
            err.to_string().contains("kafka.properties.socket.keepalive.enabel"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_is_refused_without_echoing_it() {
        let mut kafka = Settings::defaults().unwrap().kafka;
        kafka.properties = properties(&[("security.protocol", "s3cr3t-not-a-protocol")]);
        let err = check_properties(&kafka.properties, &clients(&kafka))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka.properties.security.protocol"), "{err}");
        assert!(!err.contains("s3cr3t"), "the value may be a secret: {err}");
    }

    #[test]
    fn a_property_the_engine_sets_is_refused() {
        let mut kafka = Settings::defaults().unwrap().kafka;
        kafka.properties = properties(&[("enable.auto.offset.store", "true")]);
        let err = check_properties(&kafka.properties, &clients(&kafka)).unwrap_err();
        assert!(
            matches!(&err, KafkaError::Reserved { name, .. } if name == "enable.auto.offset.store"),
            "{err}"
        );
    }

    #[test]
    fn tls_and_sasl_properties_are_accepted() {
        // Needs rdkafka's `ssl` feature: without it librdkafka refuses SASL_SSL and SCRAM.
        let mut kafka = Settings::defaults().unwrap().kafka;
        kafka.properties = properties(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "engine"),
            ("sasl.password", "secret"),
            ("ssl.endpoint.identification.algorithm", "https"),
        ]);
        check_properties(&kafka.properties, &clients(&kafka)).unwrap();
        for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
            kafka.properties.insert("sasl.mechanisms".into(), mechanism.into());
            check_properties(&kafka.properties, &clients(&kafka)).unwrap();
        }
    }

    /// A client set for Kerberos, without the periodic `kinit` (nothing to log in to here).
    fn gssapi_client() -> Result<BaseProducer, rdkafka::error::KafkaError> {
        let kafka = properties(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "GSSAPI"),
            ("sasl.kerberos.service.name", "kafka"),
            ("sasl.kerberos.min.time.before.relogin", "0"),
        ]);
        layered("kafka-1:9092", &[], &kafka, &[]).create()
    }

    #[cfg(feature = "gssapi")]
    #[test]
    fn the_gssapi_build_makes_kerberos_clients() {
        if let Err(e) = gssapi_client() {
            panic!("a GSSAPI client in the gssapi build: {e}");
        }
    }

    /// Without the `gssapi` feature librdkafka has no Kerberos provider: a client asking
    /// for it is refused naming the mechanism, rather than failing at the first login.
    #[cfg(not(feature = "gssapi"))]
    #[test]
    fn the_default_build_refuses_kerberos_clients_naming_the_mechanism() {
        let err = gssapi_client()
            .err()
            .expect("no GSSAPI client without the gssapi feature");
        assert!(err.to_string().contains("GSSAPI"), "{err}");
    }

    #[test]
    fn a_good_property_reaches_every_client_and_the_engine_keeps_its_own() {
        let mut kafka = Settings::defaults().unwrap().kafka;
        kafka.brokers = "kafka-1:9092".into();
        kafka.group_id = "crm-engine".into();
        kafka.properties = properties(&[
            ("socket.keepalive.enable", "true"),
            ("session.timeout.ms", "45000"),
            ("linger.ms", "20"),
            // Reserved, so check_properties refuses it; the layering must win anyway.
            ("enable.auto.offset.store", "true"),
            ("acks", "1"),
        ]);
        let consumer = consumer_config(&kafka.brokers, &kafka.group_id, &kafka)
            .create_native_config()
            .unwrap();
        assert_eq!(consumer.get("socket.keepalive.enable").unwrap(), "true");
        assert_eq!(consumer.get("session.timeout.ms").unwrap(), "45000");
        assert_eq!(consumer.get("enable.auto.offset.store").unwrap(), "false");
        assert_eq!(consumer.get("group.id").unwrap(), "crm-engine");
        // librdkafka's own name for "latest".
        assert_eq!(consumer.get("auto.offset.reset").unwrap(), "largest");
        let producer = producer_config(&kafka.brokers, &kafka.properties)
            .create_native_config()
            .unwrap();
        assert_eq!(producer.get("socket.keepalive.enable").unwrap(), "true");
        assert_eq!(producer.get("linger.ms").unwrap(), "20");
        assert_eq!(producer.get("acks").unwrap(), "-1", "acks=all");
        assert_eq!(producer.get("enable.idempotence").unwrap(), "true");
    }
}
