//! The engine in-process for runtime tests: a fresh migrated database (a SQLite file, or a
//! new PostgreSQL database when WFE_TEST_DATABASE_URL is set), an embedded broker held by
//! the test (librdkafka's mock cluster, so it outlives a restart of the engine), a local
//! HTTP listener standing in for the email service, the SMS provider and webhook targets,
//! and the actor topology started on them.
//!
//! With WFE_TEST_KAFKA_BROKERS set (e.g. a tansu broker, tier 5 of the design's testing
//! tiers), the tests use that broker instead, creating their uniquely named topics there.
//! WFE_TEST_KAFKA_PROPERTIES (`name=value;name=value`, e.g.
//! `security.protocol=ssl;ssl.ca.location=/tmp/ca.pem`) then becomes the engine's
//! `kafka.properties` and configures the tests' own admin, producer and reader clients
//! too, so the same tests run over TLS or SASL (tests/tls/run.sh).
//!
//! The database comes from tests/common/mod.rs, shared with the storage tests.
#![allow(dead_code)]

use crate::common::TestDb;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use workflow_engine::actors::topology::Topology;
use workflow_engine::conditions::Limits;
use workflow_engine::kafka;
use workflow_engine::outbound::signing::{ID_HEADER, TIMESTAMP_HEADER};
use workflow_engine::outbound::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER};
use workflow_engine::settings::{OffsetReset, Settings};
use workflow_engine::storage::entities::{customers, notes, tasks};
use workflow_engine::storage::runs::{self, Run, RunFilter};
use workflow_engine::storage::sql::statement;
use workflow_engine::storage::{seed, statuses, workflows, Database};
use workflow_engine::validate::Validator;

/// Partitions of the test topics: more than one, so several partition consumers run.
pub const PARTITIONS: i32 = 4;

/// How long a test waits for anything the engine does before failing.
pub const PATIENCE: Duration = Duration::from_secs(25);

/// Polls `$check` (an expression giving `Option<T>`, which may `.await`) every 50 ms until
/// it is `Some`, and yields the value; panics naming `$what` after `$limit`.
#[macro_export]
macro_rules! eventually {
    ($what:expr, $limit:expr, $check:expr) => {{
        let started = ::std::time::Instant::now();
        loop {
            if let Some(value) = $check {
                break value;
            }
            if started.elapsed() > $limit {
                panic!("timed out after {:?} waiting for {}", $limit, $what);
            }
            ::actix_rt::time::sleep(::std::time::Duration::from_millis(50)).await;
        }
    }};
}

// ---------------------------------------------------------------------------------------
// The stand-in HTTP services

/// One request the listener received, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub signature: Option<String>,
    /// Standard Webhooks' `webhook-id` and `webhook-timestamp`, which the signature covers.
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<i64>,
    /// The W3C trace context the request carried.
    pub traceparent: Option<String>,
    /// What an integration's `auth` puts on the request (Basic or Bearer credentials).
    pub authorization: Option<String>,
    /// An API-key header named `x-api-key`, as a provider's `{"type": "header"}` auth sets.
    pub api_key: Option<String>,
    /// The body as sent (signatures are over these bytes).
    pub raw: String,
    pub body: Value,
    pub status: u16,
    /// When the request arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    /// Path -> how many more requests to answer with 503.
    failures: Mutex<HashMap<String, u32>>,
    /// How long each answer takes (a slow receiver).
    delay: Mutex<Duration>,
    /// Path -> the raw body its 200 answers carry (`{"ok": true}` otherwise).
    answers: Mutex<HashMap<String, String>>,
}

/// A local HTTP server recording every POST; it can fail the first requests to a path.
pub struct Listener {
    pub base: String,
    inbox: Arc<Inbox>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(req: HttpRequest, body: web::Bytes, inbox: web::Data<Arc<Inbox>>) -> HttpResponse {
    let at = std::time::Instant::now();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = req.path().to_owned();
    let fail = {
        let mut failures = inbox.failures.lock().unwrap();
        match failures.get_mut(&path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    };
    let status = if fail { 503 } else { 200 };
    inbox.received.lock().unwrap().push(Received {
        idempotency_key: header(IDEMPOTENCY_HEADER),
        signature: header(SIGNATURE_HEADER),
        webhook_id: header(ID_HEADER),
        webhook_timestamp: header(TIMESTAMP_HEADER).and_then(|t| t.parse().ok()),
        traceparent: header("traceparent"),
        authorization: header("authorization"),
        api_key: header("x-api-key"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        path,
        status,
        at,
    });
    let delay = *inbox.delay.lock().unwrap();
    if !delay.is_zero() {
        actix_rt::time::sleep(delay).await;
    }
    let answer = inbox.answers.lock().unwrap().get(req.path()).cloned();
    match (fail, answer) {
        (true, _) => HttpResponse::ServiceUnavailable().finish(),
        (false, Some(raw)) => HttpResponse::Ok().content_type("application/json").body(raw),
        (false, None) => HttpResponse::Ok().json(serde_json::json!({"ok": true})),
    }
}

impl Listener {
    /// Starts on 127.0.0.1 on a free port. Call inside an actix system.
    pub fn start() -> Listener {
        let inbox = Arc::new(Inbox::default());
        let data = web::Data::new(Arc::clone(&inbox));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let base = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Listener { base, inbox, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Makes every answer take `delay`.
    pub fn slow_down(&self, delay: Duration) {
        *self.inbox.delay.lock().unwrap() = delay;
    }

    /// Answers the next `n` requests to `path` with 503.
    pub fn fail_first(&self, path: &str, n: u32) {
        self.inbox.failures.lock().unwrap().insert(path.to_owned(), n);
    }

    /// Answers requests to `path` with 200 and `raw` as the body.
    pub fn answer_with(&self, path: &str, raw: impl Into<String>) {
        self.inbox.answers.lock().unwrap().insert(path.to_owned(), raw.into());
    }

    /// Requests to `path`, in arrival order.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.inbox
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

// ---------------------------------------------------------------------------------------
// The engine

/// A database, a broker, a listener and (once started) the running topology.
pub struct Engine {
    pub test: TestDb,
    pub settings: Settings,
    pub listener: Listener,
    pub producer: FutureProducer,
    pub brokers: String,
    topology: Option<Topology>,
    /// Held by the test, so it outlives the engine across a restart.
    /// `None` when the tests run against an external broker (WFE_TEST_KAFKA_BROKERS).
    cluster: Option<MockCluster<'static, DefaultProducerContext>>,
}

impl Engine {
    /// Prepares everything but the topology, with settings for tests (unique topics and
    /// group, delays of 1 s, fast polls and retries, the listener allowed and used as the
    /// email service); `configure` adjusts them further.
    pub async fn new(configure: impl FnOnce(&mut Settings)) -> Engine {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        // RUST_LOG=workflow_engine=debug shows the engine's logs of a failing test.
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let tag = format!("{}-{n}", std::process::id());
        let listener = Listener::start();
        let mut settings = Settings::defaults().unwrap();
        settings.kafka.topic = format!("wfe-test-{tag}");
        settings.kafka.dead_letter_topic = format!("wfe-test-{tag}.dlq");
        settings.kafka.group_id = format!("wfe-test-group-{tag}");
        settings.engine.node_id = format!("test-node-{tag}");
        // Tests publish before the consumer has joined: start at the beginning.
        settings.kafka.auto_offset_reset = OffsetReset::Earliest;
        settings.engine.arbiters = 2;
        settings.engine.workflow_poll_ms = 200;
        settings.scheduler.delay_override_secs = 1;
        settings.scheduler.poll_interval_secs = 1;
        settings.delivery.webhook_allowlist = vec!["127.0.0.1".into()];
        settings.delivery.backoff_initial_ms = 50;
        settings.delivery.backoff_max_ms = 500;
        settings.delivery.timeout_ms = 3000;
        settings.delivery.email_url = listener.url("/email");
        let external = external_broker();
        if let Some((_, properties)) = &external {
            settings.kafka.properties = properties.clone();
        }
        configure(&mut settings);

        let topics = [settings.kafka.topic.clone(), settings.kafka.dead_letter_topic.clone()];
        let (cluster, brokers) = match external {
            Some((brokers, properties)) => {
                create_topics(&brokers, &properties, &topics).await;
                (None, brokers)
            }
            None => {
                let cluster = MockCluster::new(1).unwrap();
                for topic in &topics {
                    cluster.create_topic(topic, PARTITIONS, 1).unwrap();
                }
                let brokers = cluster.bootstrap_servers();
                (Some(cluster), brokers)
            }
        };
        // tansu 0.6 does not serve a fetch that starts inside a record batch: it goes on
        // from the next batch, so a consumer resuming from a committed offset in the middle
        // of one (as a hand-over's new owner does) never sees the rest of it. Real Kafka
        // and the mock cluster do. Against an external broker the tests' producer writes
        // one message a batch, so what they test is the engine, not that gap.
        let mut producer_properties = settings.kafka.properties.clone();
        if cluster.is_none() {
            producer_properties.insert("batch.num.messages".to_owned(), "1".to_owned());
        }
        let producer = kafka::producer_with(&brokers, &producer_properties).unwrap();
        Engine {
            test: crate::common::fresh().await,
            settings,
            listener,
            producer,
            brokers,
            topology: None,
            cluster,
        }
    }

    /// Makes the in-process broker answer every request `rtt` late (a slow or distant
    /// broker, as TLS and SASL against a loaded broker make it). Does nothing against an
    /// external broker, which is as slow as it is.
    pub fn slow_broker(&self, rtt: Duration) {
        if let Some(cluster) = &self.cluster {
            cluster.broker_round_trip_time(1, rtt).unwrap();
        }
    }

    pub fn db(&self) -> &Database {
        &self.test.db
    }

    pub fn topic(&self) -> &str {
        &self.settings.kafka.topic
    }

    /// A client configuration for the test's own readers: the broker and the engine's
    /// `kafka.properties` (TLS, SASL), as any other client of that broker needs.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        kafka::layered(&self.brokers, &[], &self.settings.kafka.properties, &[])
    }

    /// The demo data (teams, agents, statuses, customers 1..5, the seed workflows) with the
    /// webhook endpoint and the active SMS provider pointing at the listener.
    pub async fn seed_demo(&self) {
        seed::load_demo_against(self.db(), &self.listener.url(""))
            .await
            .unwrap();
    }

    /// Validates `definition` against the database's schema and saves it; returns its id.
    pub async fn add_workflow(&self, definition: Value) -> String {
        let schema = statuses::field_schema(self.db().connection()).await.unwrap();
        let validated = Validator::new(&schema, Limits::default())
            .workflow(&definition)
            .unwrap_or_else(|e| panic!("invalid test workflow {definition}: {e}"));
        workflows::create(self.db(), &validated.workflow, "test")
            .await
            .unwrap()
            .id
    }

    /// Inserts plain customers (no agent, no statuses, no activity date).
    pub async fn add_customers(&self, ids: impl IntoIterator<Item = i64>) {
        crate::common::add_customers(self.db(), ids).await;
    }

    /// Starts the topology and waits until its consumer owns partitions.
    pub async fn start(&mut self) {
        assert!(self.topology.is_none(), "engine already started");
        // A pool of its own: connections the topology opens belong to its arbiters'
        // runtimes, and a PostgreSQL connection dies with the runtime it was opened on.
        // Shared with the test, the test's reads after a stop would meet dead connections.
        // It seals secrets with `security.secret_key`, as the service's pool does.
        let mut db = self.test.connect_again().await;
        if let Some(key) = self.settings.security.sealing_key().expect("security.secret_key") {
            db = db.with_sealing_key(key);
        }
        let topology = Topology::start(&self.settings, db, &self.brokers).unwrap();
        eventually!(
            "the consumer to join the group",
            PATIENCE,
            topology.consuming().then_some(())
        );
        self.topology = Some(topology);
    }

    pub fn topology(&self) -> &Topology {
        self.topology.as_ref().expect("engine not started")
    }

    /// Graceful stop of the topology; the database, broker and listener stay.
    pub async fn stop(&mut self) {
        if let Some(topology) = self.topology.take() {
            topology.shutdown().await;
        }
    }

    /// A restart: stop, and a new topology on the same database, broker and group.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Produces one record and waits for the broker's acknowledgement.
    pub async fn publish_raw(&self, key: &str, payload: &[u8]) {
        kafka::publish(&self.producer, self.topic(), key, payload, None)
            .await
            .unwrap();
    }

    /// Produces an envelope keyed by its customer id with a `traceparent` header, as a
    /// traced producer would.
    pub async fn publish_traced(&self, event: &Value, traceparent: &str) {
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "traceparent",
            value: Some(traceparent),
        });
        let (key, payload) = (event["customer_id"].to_string(), event.to_string());
        kafka::publish(&self.producer, self.topic(), &key, payload.as_bytes(), Some(headers))
            .await
            .unwrap();
    }

    /// Produces an envelope keyed by its customer id.
    pub async fn publish(&self, event: &Value) {
        self.publish_raw(&event["customer_id"].to_string(), event.to_string().as_bytes())
            .await;
    }

    /// Produces many envelopes, enqueued in order (so each partition keeps their order),
    /// then waits for every acknowledgement.
    pub async fn publish_all(&self, events: &[Value]) {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let key = event["customer_id"].to_string();
            let payload = event.to_string();
            let record = FutureRecord::to(self.topic()).key(&key).payload(&payload);
            match self.producer.send_result(record) {
                Ok(ack) => acks.push(ack),
                Err((e, _)) => panic!("enqueueing an event failed: {e}"),
            }
        }
        for ack in acks {
            ack.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }

    /// Stops everything and drops the test database.
    pub async fn finish(mut self) {
        self.stop().await;
        self.listener.stop().await;
        let Engine {
            test,
            producer,
            cluster,
            ..
        } = self;
        drop(producer);
        drop(cluster);
        test.finish().await;
    }
}

/// The external broker to test against (WFE_TEST_KAFKA_BROKERS) and the client properties
/// it needs (WFE_TEST_KAFKA_PROPERTIES), or `None` for the in-process mock cluster.
fn external_broker() -> Option<(String, kafka::Properties)> {
    let brokers = std::env::var("WFE_TEST_KAFKA_BROKERS").ok().filter(|b| !b.is_empty())?;
    let properties = std::env::var("WFE_TEST_KAFKA_PROPERTIES").unwrap_or_default();
    Some((brokers, parse_properties(&properties)))
}

/// `name=value;name=value` into properties; a pair without `=` is a mistake in the
/// variable and fails the test at once rather than testing something else.
fn parse_properties(text: &str) -> kafka::Properties {
    text.split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.trim().to_owned(), value.trim().to_owned()),
            None => panic!("WFE_TEST_KAFKA_PROPERTIES: {pair:?} is not name=value"),
        })
        .collect()
}

/// Creates `topics` (PARTITIONS partitions) on an external broker.
async fn create_topics(brokers: &str, properties: &kafka::Properties, topics: &[String]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = kafka::layered(brokers, &[], properties, &[])
        .create()
        .expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    for result in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        if let Err((topic, e)) = result {
            panic!("cannot create topic {topic} on {brokers}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading results

/// Runs matching `filter` (up to 10 000), oldest first.
pub async fn runs_where(db: &Database, mut filter: RunFilter) -> Vec<Run> {
    filter.limit = Some(filter.limit.unwrap_or(10_000));
    let mut found = runs::list(db.connection(), &filter).await.unwrap();
    found.reverse();
    found
}

pub async fn runs_of_customer(db: &Database, customer_id: i64) -> Vec<Run> {
    runs_where(
        db,
        RunFilter {
            customer_id: Some(customer_id),
            ..Default::default()
        },
    )
    .await
}

pub async fn runs_of_event(db: &Database, event_id: &str) -> Vec<Run> {
    runs_where(db, RunFilter::default())
        .await
        .into_iter()
        .filter(|r| r.run.event_id == event_id)
        .collect()
}

/// Whether every run in `runs` has ended (done or failed).
pub fn all_ended(runs: &[Run]) -> bool {
    runs.iter()
        .all(|r| r.run.status == runs::status::DONE || r.run.status == runs::status::FAILED)
}

/// The customer's notes in the order they were written.
pub async fn notes_of(db: &Database, customer_id: i64) -> Vec<notes::Model> {
    notes::Entity::find()
        .filter(notes::Column::CustomerId.eq(customer_id))
        .order_by_asc(notes::Column::Id)
        .all(db.connection())
        .await
        .unwrap()
}

pub async fn note_bodies(db: &Database, customer_id: i64) -> Vec<String> {
    notes_of(db, customer_id).await.into_iter().map(|n| n.body).collect()
}

pub async fn tasks_of(db: &Database, customer_id: i64) -> Vec<tasks::Model> {
    tasks::Entity::find()
        .filter(tasks::Column::CustomerId.eq(customer_id))
        .order_by_asc(tasks::Column::Id)
        .all(db.connection())
        .await
        .unwrap()
}

pub async fn customer(db: &Database, id: i64) -> customers::Model {
    customers::Entity::find_by_id(id)
        .one(db.connection())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("customer {id} not found"))
}

/// The name of the customer's current status of `status_type`, read from
/// customer_statuses.
pub async fn status_name(db: &Database, customer_id: i64, status_type: &str) -> Option<String> {
    let conn = db.connection();
    let row = conn
        .query_one(statement(
            conn,
            "SELECT s.name AS name FROM customer_statuses cs \
             JOIN status_types t ON t.id = cs.status_type_id \
             JOIN statuses s ON s.id = cs.status_id \
             WHERE cs.customer_id = $1 AND t.name = $2",
            vec![customer_id.into(), status_type.into()],
        ))
        .await
        .unwrap()?;
    Some(row.try_get::<String>("", "name").unwrap())
}
