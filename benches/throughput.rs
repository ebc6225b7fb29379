//! End-to-end throughput: N events produced to the broker, measured until every run is
//! recorded and every action done, against the baseline of the same run: a bare rdkafka
//! consumer reading the same events (the ceiling for consumption).
//!
//! ```sh
//! cargo bench --bench throughput
//! WFE_BENCH_EVENTS=20000 WFE_BENCH_CUSTOMERS=5000 cargo bench --bench throughput
//! WFE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench throughput
//! WFE_BENCH_SCENARIOS=unrouted,no_match cargo bench --bench throughput
//! WFE_BENCH_PACED=0.5 WFE_BENCH_PACED_EVENTS=5000 cargo bench --bench throughput
//! WFE_BENCH_BATCH_MAX=1 cargo bench --bench throughput   # no group commit, for comparison
//! WFE_BENCH_ACTIVITY_FLUSH_MS=0 cargo bench --bench throughput   # idle events through executors
//! ```
//!
//! Scenarios: `unrouted` (no workflow listens to the events' trigger), `no_match` (one
//! workflow listens; its conditions never hold), `three_actions` (one workflow matches every
//! event and runs three database actions), `seed` (the seed's workflows on the demo data,
//! external requests answered by a local listener). Latency is produce time to the last
//! run's finish, per event.
//!
//! Paced mode: after the maximum, scenarios that run actions are fed again, on the same
//! engine, at a fixed rate of `WFE_BENCH_PACED` (0.5) times the maximum just measured,
//! `WFE_BENCH_PACED_EVENTS` (a quarter of the events) events, and print the latency from
//! produce to the last action under that load (p50/p99/max) beside the maximum: under a
//! backlog, latency is mostly queueing; paced, it is what an event costs. 0 turns it off.

use actix_web::{web, App, HttpResponse, HttpServer};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use workflow_engine::actors::topology::Topology;
use workflow_engine::metrics::Metrics;
use workflow_engine::settings::Settings;
use workflow_engine::storage::sql::statement;
use workflow_engine::storage::{seed, workflows, Database};
use workflow_engine::validate::Validator;

#[path = "common/database.rs"]
mod database;
use database::{drop_database, fresh_database};

const TOPIC: &str = "bench.events";
const PARTITIONS: i32 = 4;
/// How far the producer may run ahead of the reader, in events (about 1 MiB a partition).
const AHEAD: usize = 20_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Scenario {
    name: &'static str,
    trigger: &'static str,
    workflows: Vec<Value>,
    demo_data: bool,
}

fn scenarios() -> Vec<Scenario> {
    let note = |body: &str| json!({"type": "add_note", "params": {"body": body}});
    let all = vec![
        Scenario {
            name: "unrouted",
            trigger: "customer.deposited",
            workflows: vec![json!({"name": "elsewhere", "trigger_event": "customer.traded", "actions": [note("x")]})],
            demo_data: false,
        },
        Scenario {
            name: "no_match",
            trigger: "customer.deposited",
            workflows: vec![json!({"name": "never", "trigger_event": "customer.deposited",
                "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gt", "value": 1e12}]},
                "actions": [note("x")]})],
            demo_data: false,
        },
        Scenario {
            name: "three_actions",
            trigger: "customer.deposited",
            workflows: vec![json!({"name": "three", "trigger_event": "customer.deposited",
                "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 0}]},
                "actions": [note("deposit {{event.amount}}"), {"type": "set_customer_active", "params": {"active": true}},
                            note("seq {{event.seq}}")]})],
            demo_data: false,
        },
        Scenario {
            name: "seed",
            trigger: "customer.deposited",
            workflows: vec![],
            demo_data: true,
        },
    ];
    let wanted = std::env::var("WFE_BENCH_SCENARIOS").unwrap_or_default();
    all.into_iter()
        .filter(|s| wanted.is_empty() || wanted.split(',').any(|w| w.trim() == s.name))
        .collect()
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

async fn count(db: &Database, sql: &str) -> i64 {
    let conn = db.connection();
    Count::find_by_statement(statement(conn, sql, vec![]))
        .one(conn)
        .await
        .ok()
        .flatten()
        .map_or(0, |c| c.n)
}

async fn insert_customers(db: &Database, customers: usize) {
    let conn = db.connection();
    for chunk in (1..=customers).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| {
                let country = ["BR", "AR", "MX", "DE", "GB"][id % 5];
                format!("({id}, 'C{id}', 'L{id}', 'c{id}@bench.example', '+5511{id:07}', '{country}', 'pt', 0, 'sales', true, false, '{{}}')")
            })
            .collect();
        let sql = format!(
            "INSERT INTO customers (id, first_name, last_name, email, phone, country, language, balance, desk, active, frozen, custom_fields) VALUES {} ON CONFLICT (id) DO NOTHING",
            values.join(", ")
        );
        conn.execute_unprepared(&sql).await.expect("insert customers");
    }
}

/// Produces `events` deposits keyed over `customers`, each stamped with its send time,
/// staying within AHEAD events of `consumed()`: librdkafka's mock broker trims a
/// partition's log past 5 MiB, so a reader further behind would lose unread events.
async fn produce(
    brokers: &str,
    topic: &str,
    events: usize,
    customers: usize,
    trigger: &str,
    consumed: impl Fn() -> usize,
) {
    produce_paced(brokers, topic, "bench", events, customers, trigger, None, consumed).await
}

/// [`produce`] with event ids `{prefix}-{i}` and, with `rate` (events/s), event `i` sent
/// no earlier than `i / rate` seconds after the first: a fixed offered load.
#[allow(clippy::too_many_arguments)]
async fn produce_paced(
    brokers: &str,
    topic: &str,
    prefix: &str,
    events: usize,
    customers: usize,
    trigger: &str,
    rate: Option<f64>,
    consumed: impl Fn() -> usize,
) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let mut pending = Vec::with_capacity(10_000);
    let began = Instant::now();
    for i in 0..events {
        while i.saturating_sub(consumed()) > AHEAD {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(rate) = rate {
            let at = began + Duration::from_secs_f64(i as f64 / rate);
            if at > Instant::now() {
                actix_rt::time::sleep_until(at.into()).await;
            }
        }
        let customer = 1 + (i * 7919) % customers;
        let amount = [250, 800, 1500, 12000][i % 4];
        let event = json!({"id": format!("{prefix}-{i}"), "type": trigger, "customer_id": customer,
            "occurred_at": chrono::Utc::now().to_rfc3339(),
            "data": {"amount": amount, "currency": "USD", "seq": i, "transaction": {"type": "deposit"}}});
        let (key, payload) = (customer.to_string(), event.to_string());
        let mut record = FutureRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((_, r)) => {
                    record = r;
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        if pending.len() == 10_000 {
            for p in pending.drain(..) {
                let _ = p.await;
            }
        }
    }
    for p in pending {
        let _ = p.await;
    }
}

/// The ceiling: a bare consumer reading every event while they are produced; the time from
/// the first send to the last message read.
async fn baseline(brokers: &str, events: usize, customers: usize, trigger: &str) -> Duration {
    let topic = "bench.baseline";
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "baseline")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    // Join the group first (as the engine does before its clock starts): a marker event
    // read back means the consumer is assigned and fetching.
    produce(brokers, topic, 1, customers, "bench.warmup", || 0).await;
    let _ = consumer.recv().await.expect("warm-up message");
    let start = Instant::now();
    let seen = std::cell::Cell::new(0);
    let producing = produce(brokers, topic, events, customers, trigger, || seen.get());
    let reading = async {
        while seen.get() < events {
            let message = consumer.recv().await.expect("message");
            let _ = serde_json::from_slice::<Value>(rdkafka::Message::payload(&message).unwrap_or_default());
            seen.set(seen.get() + 1);
        }
    };
    futures_util::join!(producing, reading);
    start.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Latency of every event whose id starts with `prefix`: its produce time (the envelope's
/// occurred_at) to the finish of its last run, in ms, sorted.
async fn latency(db: &Database, prefix: &str) -> Vec<f64> {
    #[derive(Debug, FromQueryResult)]
    struct Finished {
        event_id: String,
        event: Value,
        updated_at: chrono::DateTime<chrono::Utc>,
    }
    let conn = db.connection();
    let rows = Finished::find_by_statement(statement(
        conn,
        "SELECT event_id, event, updated_at FROM runs WHERE event_id LIKE $1",
        vec![format!("{prefix}%").into()],
    ))
    .all(conn)
    .await
    .unwrap_or_default();
    let mut last: std::collections::HashMap<
        String,
        (chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>),
    > = std::collections::HashMap::new();
    for row in rows {
        let produced = row
            .event
            .get("occurred_at")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let entry = last.entry(row.event_id).or_insert((row.updated_at, produced));
        entry.0 = entry.0.max(row.updated_at);
    }
    let mut latency: Vec<f64> = last
        .values()
        .filter_map(|(finished, produced)| Some((*finished - (*produced)?).num_microseconds()? as f64 / 1000.0))
        .collect();
    latency.sort_by(|a, b| a.total_cmp(b));
    latency
}

/// Waits until `events` more events than `before` were consumed and no run is pending or
/// running; false after an hour.
async fn wait_done(db: &Database, seen: &impl Fn() -> u64, before: u64, events: usize, start: Instant, name: &str) {
    loop {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        let consumed = seen() - before;
        if consumed as usize >= events
            && count(
                db,
                "SELECT COUNT(*) AS n FROM runs WHERE status IN ('pending', 'running')",
            )
            .await
                == 0
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            eprintln!("{name}: gave up after an hour");
            break;
        }
    }
}

async fn run(scenario: Scenario, events: usize, customers: usize) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    cluster
        .create_topic("bench.baseline", PARTITIONS, 1)
        .expect("baseline topic");
    cluster.create_topic("bench.dlq", PARTITIONS, 1).expect("dlq");
    let brokers = cluster.bootstrap_servers();
    let mut settings = Settings::defaults().expect("defaults");
    // The pool the service runs with.
    let (db, scratch) = fresh_database(scenario.name, settings.database.max_connections).await;

    let listener = HttpServer::new(|| App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() })))
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("listener");
    let base = format!("http://{}", listener.addrs()[0]);
    let listener = listener.run();
    let listener_handle = listener.handle();
    actix_rt::spawn(listener);

    insert_customers(&db, customers).await;
    if scenario.demo_data {
        seed::load_demo_against(&db, &base).await.expect("demo data");
    }
    let schema = workflow_engine::schema::FieldSchema::default();
    let validator = Validator::new(&schema, Default::default());
    for definition in &scenario.workflows {
        let w = validator.workflow(definition).expect("valid bench workflow").workflow;
        workflows::create(&db, &w, "bench").await.expect("create workflow");
    }

    let base_time = baseline(&brokers, events, customers, scenario.trigger).await;

    settings.kafka.topic = TOPIC.into();
    settings.kafka.dead_letter_topic = "bench.dlq".into();
    settings.kafka.group_id = format!("engine-{}", scenario.name);
    // The events are on the topic before the engine joins the group.
    settings.kafka.auto_offset_reset = workflow_engine::settings::OffsetReset::Earliest;
    settings.delivery.email_url = format!("{base}/email");
    settings.delivery.webhook_allowlist = vec!["127.0.0.1".into()];
    settings.log.level = "warn".into();
    // `WFE_BENCH_BATCH_MAX=1` records every event alone, as before group commit.
    if let Some(max) = std::env::var("WFE_BENCH_BATCH_MAX").ok().and_then(|v| v.parse().ok()) {
        settings.engine.batch_max = max;
    }
    // `WFE_BENCH_ACTIVITY_FLUSH_MS=0` sends events no workflow can act on through their
    // executors, as before the activity writer.
    if let Some(ms) = std::env::var("WFE_BENCH_ACTIVITY_FLUSH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        settings.engine.activity_flush_ms = ms;
    }
    let metrics = Metrics::global();
    let seen = || -> u64 {
        ["no_workflow", "no_match", "matched"]
            .iter()
            .map(|o| metrics.events.with_label_values(&[scenario.trigger, o]).get())
            .sum()
    };
    let seen_before = seen();
    let topology = Topology::start(&settings, db.clone(), &brokers).expect("engine");
    while !topology.consuming() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    produce(&brokers, TOPIC, events, customers, scenario.trigger, || {
        (seen() - seen_before) as usize
    })
    .await;
    wait_done(&db, &seen, seen_before, events, start, scenario.name).await;
    let engine_time = start.elapsed();
    let runs = count(&db, "SELECT COUNT(*) AS n FROM runs").await;
    let failed = count(&db, "SELECT COUNT(*) AS n FROM runs WHERE status = 'failed'").await;
    let latencies = latency(&db, "bench-").await;
    let rate = |d: Duration| events as f64 / d.as_secs_f64().max(1e-9);
    // Paced: the same engine, fed at a fixed share of the maximum it just reached.
    let share = std::env::var("WFE_BENCH_PACED")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.5);
    let paced = if runs > 0 && share > 0.0 {
        let offered = rate(engine_time) * share;
        let paced_events = env_or("WFE_BENCH_PACED_EVENTS", events / 4).max(1);
        let before = seen();
        let start = Instant::now();
        produce_paced(
            &brokers,
            TOPIC,
            "paced",
            paced_events,
            customers,
            scenario.trigger,
            Some(offered),
            || (seen() - before) as usize,
        )
        .await;
        wait_done(&db, &seen, before, paced_events, start, scenario.name).await;
        Some((offered, paced_events, latency(&db, "paced-").await))
    } else {
        None
    };
    topology.shutdown().await;
    listener_handle.stop(false).await;
    println!(
        "{:<14} events {:>7}  customers {:>6}  runs {:>7} (failed {:>4})  baseline {:>8.0} ev/s  engine {:>8.0} ev/s  engine/baseline {:>6.3}  latency p50 {:>9.1} ms  p99 {:>9.1} ms  [{}]",
        scenario.name,
        events,
        customers,
        runs,
        failed,
        rate(base_time),
        rate(engine_time),
        rate(engine_time) / rate(base_time),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        db.backend(),
    );
    if let Some((offered, paced_events, latency)) = paced {
        println!(
            "{:<14} paced at {:>3.0}% of the maximum: {:>8.0} ev/s offered, {:>7} events  latency produce to last action p50 {:>9.1} ms  p99 {:>9.1} ms  max {:>9.1} ms  [{}]",
            scenario.name,
            share * 100.0,
            offered,
            paced_events,
            percentile(&latency, 0.5),
            percentile(&latency, 0.99),
            percentile(&latency, 1.0),
            db.backend(),
        );
    }
    drop_database(db, scratch).await;
    drop(cluster);
}

fn main() {
    let events = env_or("WFE_BENCH_EVENTS", 200_000);
    let customers = env_or("WFE_BENCH_CUSTOMERS", 50_000);
    let runner = actix_rt::System::new();
    runner.block_on(async move {
        for scenario in scenarios() {
            run(scenario, events, customers).await;
        }
    });
}
