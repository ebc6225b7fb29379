//! Scale: what the engine does with a large state, through the real engine (Topology,
//! librdkafka's mock broker, SQLite or PostgreSQL) and its default settings.
//!
//! ```sh
//! cargo bench --bench scale
//! WFE_BENCH_DELAYS=20000 WFE_BENCH_CUSTOMERS_SEEN=50000 cargo bench --bench scale
//! WFE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench scale
//! WFE_BENCH_SCALE=delays cargo bench --bench scale
//! ```
//!
//! Scenarios (`WFE_BENCH_SCALE=delays,customers,waits`, default all; each runs in a child
//! process of its own, so one's memory and metrics do not leak into the other's figures):
//!
//! - `delays`: the scheduler with `WFE_BENCH_DELAYS` (1,000,000) parked runs due over the
//!   next days. Prints the cost of the scheduler's two queries over that table, with and
//!   without the indexes of migration m20261125_000004 (dropped and recreated in the run);
//!   then the lateness of `WFE_BENCH_DUE` (20,000) runs coming due uniformly over
//!   `WFE_BENCH_DUE_WINDOW_SECS` (60) s from `WFE_BENCH_DUE_START_SECS` (15) s after the
//!   engine starts consuming; then the resume rate of `WFE_BENCH_BACKLOG` (20,000) runs
//!   all due at once. `WFE_BENCH_SCHEDULER_INDEXES=0` runs the engine without the
//!   indexes of m20261125_000004, for comparison.
//! - `customers`: memory as customers grow: `WFE_BENCH_CUSTOMERS_SEEN` (1,000,000) events,
//!   each of a new customer, all routed to an executor (a workflow whose condition reads a
//!   customer field, so the matcher's event-only pre-filter cannot drop them), with
//!   `engine.executor_idle_secs` = 2 so executors are evicted while the run goes on.
//!   Prints resident memory and live executors every 100,000 events consumed (every
//!   fifth of the events below 500,000).
//!
//! - `waits`: journeys, `WFE_BENCH_WAITS` (1,000,000) runs waiting for their customer's
//!   next event: the lookup an arriving event makes, with and without its index, and the
//!   engine's resident memory on that table (see [`waits`]).
//!
//! What the figures mean:
//!
//! - Parked runs are written in bulk exactly as the executor leaves a run parked on its
//!   delay (see [`park`]), so the real scheduler claims them and the real executor resumes
//!   and finishes them (the add_note step after the delay).
//! - Lateness is the delay step's `finished_at`, which `steps::resumed` writes when the
//!   executor takes the chain off the schedule, minus the due time written: the moment the
//!   continuation starts, read from the database rather than a histogram's buckets.
//!   "run done" is the run's last `updated_at` (its finish) minus the due time.
//! - Rows parked while the engine runs are followed by a `Wake` with their earliest due
//!   time, as the executor sends for every run it parks, so the scheduler wakes for them
//!   rather than at its next poll (30 s). The `lateness-tail` line (rows due in the
//!   window's second half) is the steady state.
//! - The backlog is written while the engine runs, all due at once; the rate is runs
//!   ended per second from the first resume to the last finish.
//! - Memory is the process's VmRSS (VmHWM for the peak). The mock broker and the producer
//!   live in this process too; production is paced to stay within 20,000 events of
//!   consumption, which keeps the broker's log small and never trimmed unread.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use workflow_engine::actors::protocol::Wake;
use workflow_engine::actors::topology::Topology;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::metrics::Metrics;
use workflow_engine::settings::Settings;
use workflow_engine::storage::sql::statement;
use workflow_engine::storage::workflows::StoredWorkflow;
use workflow_engine::storage::{scheduled, workflows, Database};
use workflow_engine::validate::Validator;

#[path = "common/database.rs"]
mod database;
use database::{drop_database, fresh_database};

const TOPIC: &str = "bench.events";
const DLQ: &str = "bench.dlq";
/// Every partition of the topic is assigned to this process, so the scheduler owns all.
const PARTITIONS: i32 = 4;
const TRIGGER: &str = "customer.deposited";
/// The node name the query probe claims under, so its claims can be undone exactly.
const PROBE_NODE: &str = "scale-probe";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The engine's settings as a deployment gets them, pointed at the mock broker's topics.
fn settings(group: &str) -> Settings {
    let mut settings = Settings::defaults().expect("defaults");
    settings.kafka.topic = TOPIC.into();
    settings.kafka.dead_letter_topic = DLQ.into();
    settings.kafka.group_id = group.into();
    // Events are produced before the engine joins the group.
    settings.kafka.auto_offset_reset = workflow_engine::settings::OffsetReset::Earliest;
    settings.log.level = "warn".into();
    // `WFE_BENCH_BATCH_MAX=1` commits every resume alone, as before group commit.
    if let Some(max) = std::env::var("WFE_BENCH_BATCH_MAX").ok().and_then(|v| v.parse().ok()) {
        settings.engine.batch_max = max;
    }
    settings
}

/// A mock cluster with the events topic (4 partitions, all owned by this process's one
/// consumer) and the dead-letter topic. librdkafka's mock partitions keep at most 5 MiB
/// or 100,000 message sets each and drop the oldest beyond that, so producers here never
/// run far ahead of the engine.
fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, PARTITIONS, 1).expect("topic");
    cluster.create_topic(DLQ, PARTITIONS, 1).expect("dlq");
    cluster
}

#[derive(Debug, FromQueryResult)]
struct Count {
    n: i64,
}

async fn count(db: &Database, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    let conn = db.connection();
    Count::find_by_statement(statement(conn, sql, values))
        .one(conn)
        .await
        .ok()
        .flatten()
        .map_or(0, |c| c.n)
}

/// Creates a workflow through the storage API, as the HTTP API would.
async fn create_workflow(db: &Database, definition: &Value) -> StoredWorkflow {
    let schema = workflow_engine::schema::FieldSchema::default();
    let validator = Validator::new(&schema, Default::default());
    let w = validator.workflow(definition).expect("valid bench workflow").workflow;
    workflows::create(db, &w, "bench").await.expect("create workflow")
}

/// Customers `ids`, as throughput.rs inserts them: the resumed step (add_note) needs its
/// customer.
async fn insert_customers(db: &Database, ids: std::ops::RangeInclusive<i64>) {
    let conn = db.connection();
    for chunk in ids.collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| {
                format!("({id}, 'C{id}', 'L{id}', 'c{id}@bench.example', '+5511{id:07}', 'BR', 'pt', 0, 'sales', true, false, '{{}}')")
            })
            .collect();
        let sql = format!(
            "INSERT INTO customers (id, first_name, last_name, email, phone, country, language, balance, desk, active, frozen, custom_fields) VALUES {}",
            values.join(", ")
        );
        conn.execute_unprepared(&sql).await.expect("insert customers");
    }
}

/// A timestamp as SQL text, in exactly the form sqlx binds a `DateTime<Utc>` on SQLite
/// (RFC 3339, `AutoSi` fractions, `+00:00`): SQLite compares these as text, so rows written
/// here must sort as rows the engine writes. PostgreSQL parses it as a timestamptz.
fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
}

/// Tells the engine's scheduler the earliest of `due` parked behind its back, as the
/// executor's `Wakeup` does for every run it parks, so the scheduler wakes for them
/// instead of finding them at its next poll (30 s).
fn wake(topology: &Topology, due: impl Iterator<Item = chrono::DateTime<chrono::Utc>>) {
    if let Some(due_at) = due.min() {
        topology.scheduler.do_send(Wake { due_at });
    }
}

/// One run parked on its delay: run `run_id` of customer `run_id`, due at `due_at`.
struct Parked {
    run_id: i64,
    due_at: chrono::DateTime<chrono::Utc>,
}

/// Writes, in multi-row INSERTs of 1,000 runs a transaction, exactly the rows the executor
/// leaves when a run of `workflow` (delay, add_note) parks on its delay: `runs` waiting at
/// step 1 with the event as recorded, the delay step `waiting` (one attempt, started), the
/// note step `pending`, and the `scheduled` continuation, unclaimed. See
/// `runs::record_runs`, `steps::delay`, `scheduled::schedule` and `runs::set_waiting`.
async fn park(db: &Database, workflow: &StoredWorkflow, runs: &[Parked]) {
    let parked_at = ts(chrono::Utc::now());
    let wf = &workflow.id;
    let version = workflow.version;
    for chunk in runs.chunks(1000) {
        let mut run_rows = Vec::with_capacity(chunk.len());
        let mut step_rows = Vec::with_capacity(chunk.len() * 2);
        let mut due_rows = Vec::with_capacity(chunk.len());
        for p in chunk {
            let (id, partition) = (p.run_id, p.run_id.rem_euclid(i64::from(PARTITIONS)));
            let event = EventEnvelope::from_value(json!({"id": format!("scale-{id}"), "type": TRIGGER,
                "customer_id": id, "data": {"amount": 100}}))
            .expect("bench envelope");
            let event = serde_json::to_string(&event)
                .expect("envelope json")
                .replace('\'', "''");
            run_rows.push(format!(
                "({id}, 'scale-{id}', '{wf}', {version}, {id}, '{TRIGGER}', {partition}, '{event}', 'waiting', 1, NULL, {parked_at}, {parked_at})"
            ));
            step_rows.push(format!(
                "({id}, 0, 'delay', 'waiting', 1, NULL, NULL, {parked_at}, NULL)"
            ));
            step_rows.push(format!("({id}, 1, 'add_note', 'pending', 0, NULL, NULL, NULL, NULL)"));
            due_rows.push(format!(
                "({id}, {id}, {partition}, {}, NULL, NULL, {parked_at})",
                ts(p.due_at)
            ));
        }
        let txn = db.begin().await.expect("begin");
        txn.execute_unprepared(&format!(
            "INSERT INTO runs (\"id\", \"event_id\", \"workflow_id\", \"workflow_version\", \"customer_id\", \"trigger\", \
             \"partition\", \"event\", \"status\", \"next_step\", \"error\", \"created_at\", \"updated_at\") VALUES {}",
            run_rows.join(", ")
        ))
        .await
        .expect("insert runs");
        txn.execute_unprepared(&format!(
            "INSERT INTO run_steps (\"run_id\", \"step_index\", \"action_type\", \"status\", \"attempts\", \"error\", \
             \"result\", \"started_at\", \"finished_at\") VALUES {}",
            step_rows.join(", ")
        ))
        .await
        .expect("insert run_steps");
        txn.execute_unprepared(&format!(
            "INSERT INTO scheduled (\"run_id\", \"customer_id\", \"partition\", \"due_at\", \"claimed_by\", \
             \"claimed_until\", \"created_at\") VALUES {}",
            due_rows.join(", ")
        ))
        .await
        .expect("insert scheduled");
        txn.commit().await.expect("commit");
    }
    if db.get_database_backend() == DbBackend::Postgres {
        // Ids were given explicitly: move the sequence past them, as inserts would have.
        db.execute_unprepared("SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs))")
            .await
            .expect("runs sequence");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the scheduler's queries cost over the parked table, each the median of `reps`.
struct Probe {
    /// `next_due` with no claim live (the scheduler's question after every tick).
    next_due: Duration,
    /// `claim_due` when nothing is due (every poll that finds nothing).
    claim_none: Duration,
    /// One `claim_due` that claims a full batch, and how many it claimed.
    claim_batch: (usize, Duration),
    /// `next_due` while that batch's leases are live (as after every claiming tick).
    next_due_leased: Duration,
}

/// Times the scheduler's storage calls directly, then undoes the probe's claims. `batch_due`
/// is a time by which about one batch of rows is due.
async fn probe(db: &Database, batch: u64, batch_due: chrono::DateTime<chrono::Utc>) -> Probe {
    const REPS: usize = 9;
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let lease = chrono::Duration::seconds(60);
    let mut times = Vec::new();
    for _ in 0..REPS {
        let t = Instant::now();
        scheduled::next_due(db.connection(), &partitions, chrono::Utc::now())
            .await
            .expect("next_due");
        times.push(t.elapsed());
    }
    let next_due = median(std::mem::take(&mut times));
    for _ in 0..REPS {
        let t = Instant::now();
        let claimed = scheduled::claim_due(db, PROBE_NODE, &partitions, chrono::Utc::now(), lease, batch)
            .await
            .expect("claim_due");
        times.push(t.elapsed());
        assert!(claimed.is_empty(), "nothing is due yet");
    }
    let claim_none = median(std::mem::take(&mut times));
    // Claim as if it were `batch_due`: a full batch, leased past now.
    let t = Instant::now();
    let claimed = scheduled::claim_due(db, PROBE_NODE, &partitions, batch_due, lease, batch)
        .await
        .expect("claim_due");
    let claim_batch = (claimed.len(), t.elapsed());
    for _ in 0..REPS {
        let t = Instant::now();
        scheduled::next_due(db.connection(), &partitions, chrono::Utc::now())
            .await
            .expect("next_due");
        times.push(t.elapsed());
    }
    let next_due_leased = median(times);
    db.execute(statement(
        db,
        "UPDATE scheduled SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by = $1",
        vec![PROBE_NODE.into()],
    ))
    .await
    .expect("undo probe claims");
    Probe {
        next_due,
        claim_none,
        claim_batch,
        next_due_leased,
    }
}

/// The indexes migration m20261125_000004 adds, as it creates them (dropped and recreated
/// here to measure the queries without and with them on the same data).
const SCHEDULER_INDEXES: [(&str, &str); 2] = [
    (
        "ix_scheduled_due",
        "CREATE INDEX IF NOT EXISTS ix_scheduled_due ON scheduled (due_at)",
    ),
    (
        "ix_scheduled_leased",
        "CREATE INDEX IF NOT EXISTS ix_scheduled_leased ON scheduled (partition, claimed_until) \
         WHERE claimed_until IS NOT NULL",
    ),
];

/// Resume and finish times of the runs with ids in `range`, from the database.
#[derive(Debug, FromQueryResult)]
struct Resumed {
    run_id: i64,
    status: String,
    /// The run's last update: its finish, for a run that is done.
    updated_at: chrono::DateTime<chrono::Utc>,
    /// The delay step's finish: set by `steps::resumed`, in the executor, when the chain
    /// is taken off the schedule to continue.
    resumed_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn resumed(db: &Database, range: std::ops::RangeInclusive<i64>) -> Vec<Resumed> {
    let conn = db.connection();
    Resumed::find_by_statement(statement(
        conn,
        "SELECT r.id AS run_id, r.status AS status, r.updated_at AS updated_at, s.finished_at AS resumed_at \
         FROM runs r JOIN run_steps s ON s.run_id = r.id AND s.step_index = 0 \
         WHERE r.id BETWEEN $1 AND $2",
        vec![(*range.start()).into(), (*range.end()).into()],
    ))
    .all(conn)
    .await
    .expect("read resumed runs")
}

/// Waits until every run in `range` is done or failed, or `deadline`. Returns whether all
/// ended.
async fn wait_ended(db: &Database, range: std::ops::RangeInclusive<i64>, deadline: Instant) -> bool {
    let total = range.end() - range.start() + 1;
    loop {
        let ended = count(
            db,
            "SELECT COUNT(*) AS n FROM runs WHERE id BETWEEN $1 AND $2 AND status IN ('done', 'failed')",
            vec![(*range.start()).into(), (*range.end()).into()],
        )
        .await;
        if ended >= total {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!("gave up waiting: {ended} of {total} runs ended");
            return false;
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sum of a counter family over all its labels.
fn counter_total(name: &str) -> f64 {
    Metrics::global()
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value()))
        .sum()
}

async fn delays() {
    let pending = env_or("WFE_BENCH_DELAYS", 1_000_000) as i64;
    let due = env_or("WFE_BENCH_DUE", 20_000) as i64;
    let window = env_or("WFE_BENCH_DUE_WINDOW_SECS", 60) as f64;
    let start_after = env_or("WFE_BENCH_DUE_START_SECS", 15) as f64;
    let backlog = env_or("WFE_BENCH_BACKLOG", 20_000) as i64;
    let settings = settings("engine-scale-delays");
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let (db, scratch) = fresh_database("delays", settings.database.max_connections).await;
    let backend = db.backend();
    let workflow = create_workflow(
        &db,
        &json!({"name": "later", "trigger_event": TRIGGER,
            "actions": [{"type": "delay", "params": {"days": 3}}, {"type": "add_note", "params": {"body": "resumed"}}]}),
    )
    .await;
    // Run ids (and customer ids, one customer a run): the far-future ones, then the stream
    // coming due, then the backlog. Only resumed runs need their customer row.
    let stream = pending + 1..=pending + due;
    let burst = pending + due + 1..=pending + due + backlog;
    insert_customers(&db, pending + 1..=pending + due + backlog).await;

    // The pending delays: due from one hour ahead over the next three days.
    let t = Instant::now();
    let now = chrono::Utc::now();
    let first_due = now + chrono::Duration::hours(1);
    let spread = 3.0 * 86_400.0 / pending.max(1) as f64;
    let far: Vec<Parked> = (1..=pending)
        .map(|id| Parked {
            run_id: id,
            due_at: first_due + chrono::Duration::milliseconds(((id - 1) as f64 * spread * 1000.0) as i64),
        })
        .collect();
    park(&db, &workflow, &far).await;
    drop(far);
    let load_time = t.elapsed();
    if db.get_database_backend() == DbBackend::Postgres {
        // As autovacuum would have by the time a table grew this large in service.
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    }
    println!(
        "delays/load          parked runs {pending:>8}  written in {:>6.1} s ({:>6.0} runs/s: runs + 2 run_steps + scheduled)  [{backend}]",
        load_time.as_secs_f64(),
        pending as f64 / load_time.as_secs_f64().max(1e-9)
    );

    // The scheduler's queries over that table, without then with the new indexes.
    let batch = settings.scheduler.claim_batch;
    for (label, create) in [("without", false), ("with", true)] {
        for (name, sql) in SCHEDULER_INDEXES {
            let statement = if create {
                sql.to_owned()
            } else {
                format!("DROP INDEX IF EXISTS {name}")
            };
            db.execute_unprepared(&statement).await.expect("scheduler index");
        }
        let batch_due = first_due + chrono::Duration::milliseconds((spread * batch as f64 * 1000.0) as i64);
        let p = probe(&db, batch, batch_due).await;
        println!(
            "delays/queries       parked runs {pending:>8}  {label:<7} m000004 indexes: next_due {:>8.2} ms  next_due with {} live leases {:>8.2} ms  claim_due with nothing due {:>7.2} ms  (medians of 9)  one claim_due of {} rows {:>7.2} ms  [{backend}]",
            ms(p.next_due),
            p.claim_batch.0,
            ms(p.next_due_leased),
            ms(p.claim_none),
            p.claim_batch.0,
            ms(p.claim_batch.1),
        );
    }

    // `WFE_BENCH_SCHEDULER_INDEXES=0` runs the engine on the schema before m000004, to
    // compare lateness and resume rate with and without its indexes.
    let indexes = std::env::var("WFE_BENCH_SCHEDULER_INDEXES").map_or(true, |v| v.trim() != "0");
    if !indexes {
        for (name, _) in SCHEDULER_INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await
                .expect("drop scheduler index");
        }
    }
    let schema = if indexes { "with" } else { "WITHOUT" };
    let metrics = Metrics::global();
    let topology = Topology::start(&settings, db.clone(), &brokers).expect("engine");
    while !topology.consuming() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let consuming = chrono::Utc::now();

    // The stream: due uniformly over the window, from `start_after` seconds on.
    let step = window / due.max(1) as f64;
    let stream_rows: Vec<Parked> = stream
        .clone()
        .map(|id| Parked {
            run_id: id,
            due_at: consuming
                + chrono::Duration::milliseconds(((start_after + (id - stream.start()) as f64 * step) * 1000.0) as i64),
        })
        .collect();
    let due_at: std::collections::HashMap<i64, chrono::DateTime<chrono::Utc>> =
        stream_rows.iter().map(|p| (p.run_id, p.due_at)).collect();
    park(&db, &workflow, &stream_rows).await;
    // As the executor does when it parks a run: tell the scheduler the due time.
    wake(&topology, stream_rows.iter().map(|p| p.due_at));
    drop(stream_rows);
    let deadline = Instant::now() + Duration::from_secs_f64(start_after + window + 600.0);
    let all = wait_ended(&db, stream.clone(), deadline).await;
    let rows = resumed(&db, stream.clone()).await;
    // The scheduler's first claim, to within the moment the first resume was recorded.
    let first_resume = rows.iter().filter_map(|r| r.resumed_at).min();
    // Lateness of every resumed run, and of those due in the second half of the window
    // (past the start-up catch-up: the steady state).
    let second_half = consuming + chrono::Duration::milliseconds(((start_after + window / 2.0) * 1000.0) as i64);
    let seconds = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let (mut late, mut late_steady, mut late_done) = (Vec::new(), Vec::new(), Vec::new());
    for r in &rows {
        let (Some(resumed_at), Some(due)) = (r.resumed_at, due_at.get(&r.run_id)) else {
            continue;
        };
        late.push(seconds(resumed_at - *due));
        if *due >= second_half {
            late_steady.push(seconds(resumed_at - *due));
        }
        if r.status == "done" {
            late_done.push(seconds(r.updated_at - *due));
        }
    }
    for v in [&mut late, &mut late_steady, &mut late_done] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    let failed = rows.iter().filter(|r| r.status == "failed").count();
    let first_resume_s = first_resume.map_or(f64::NAN, |f| seconds(f - consuming));
    println!(
        "delays/lateness      parked runs {pending:>8}  due {due} over {window} s from +{start_after} s  resumed {} (failed {failed}){}  lateness p50 {:.3} s  p99 {:.3} s  max {:.3} s  (run done: p50 {:.3} s  p99 {:.3} s)  first resume at +{first_resume_s:.1} s  {schema} m000004 indexes  [{backend}]",
        late.len(),
        if all { "" } else { " INCOMPLETE" },
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        percentile(&late, 1.0),
        percentile(&late_done, 0.5),
        percentile(&late_done, 0.99),
    );
    println!(
        "delays/lateness-tail parked runs {pending:>8}  due in the window's second half (from +{:.0} s): {} runs  lateness p50 {:.3} s  p99 {:.3} s  max {:.3} s  {schema} m000004 indexes  [{backend}]",
        start_after + window / 2.0,
        late_steady.len(),
        percentile(&late_steady, 0.5),
        percentile(&late_steady, 0.99),
        percentile(&late_steady, 1.0),
    );

    // The backlog: all due as they are written.
    let claimed_before = metrics.scheduler_claimed.get();
    let retries_before = counter_total("wfe_db_retries_total");
    let written = chrono::Utc::now();
    let burst_rows: Vec<Parked> = burst
        .clone()
        .map(|id| Parked {
            run_id: id,
            due_at: written,
        })
        .collect();
    park(&db, &workflow, &burst_rows).await;
    wake(&topology, burst_rows.iter().map(|p| p.due_at));
    drop(burst_rows);
    let all = wait_ended(&db, burst.clone(), Instant::now() + Duration::from_secs(900)).await;
    let rows = resumed(&db, burst.clone()).await;
    let first = rows.iter().filter_map(|r| r.resumed_at).min();
    let last = rows
        .iter()
        .filter(|r| r.status == "done" || r.status == "failed")
        .map(|r| r.updated_at)
        .max();
    let failed = rows.iter().filter(|r| r.status == "failed").count();
    let ended = rows
        .iter()
        .filter(|r| r.status == "done" || r.status == "failed")
        .count();
    let secs =
        |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| (b - a).num_milliseconds() as f64 / 1000.0;
    let (found, busy, total) = match (first, last) {
        (Some(f), Some(l)) => (secs(written, f), secs(f, l), secs(written, l)),
        _ => (f64::NAN, f64::NAN, f64::NAN),
    };
    println!(
        "delays/backlog       parked runs {pending:>8}  backlog {backlog} due at once  ended {ended} (failed {failed}){}  first resumed after {found:.1} s  all ended {busy:.1} s later: {:.0} resumed/s  (written to ended: {total:.1} s)  claims {} for {backlog} rows  db retries {}  {schema} m000004 indexes  [{backend}]",
        if all { "" } else { " INCOMPLETE" },
        ended as f64 / busy.max(1e-9),
        metrics.scheduler_claimed.get() - claimed_before,
        counter_total("wfe_db_retries_total") - retries_before,
    );
    topology.shutdown().await;
    drop_database(db, scratch).await;
    drop(cluster);
}

/// A memory figure of this process from /proc/self/status (`VmRSS`: resident now,
/// `VmHWM`: resident at its peak), in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn customers() {
    let seen = env_or("WFE_BENCH_CUSTOMERS_SEEN", 1_000_000);
    let every = if seen >= 500_000 { 100_000 } else { (seen / 5).max(1) };
    let mut settings = settings("engine-scale-customers");
    settings.engine.executor_idle_secs = 2;
    let idle = settings.engine.executor_idle_secs;
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let (db, scratch) = fresh_database("customers", settings.database.max_connections).await;
    let backend = db.backend();
    // Reads a customer field, so it cannot be decided on the event alone: every event goes
    // to its customer's executor, which takes the snapshot and plans; none matches.
    create_workflow(
        &db,
        &json!({"name": "never", "trigger_event": TRIGGER,
            "conditions": {"match": "all", "rules": [{"field": "customer.country", "operator": "eq", "value": "ZZ"}]},
            "actions": [{"type": "add_note", "params": {"body": "x"}}]}),
    )
    .await;
    let metrics = Metrics::global();
    let executors = metrics.actors.with_label_values(&["executor"]);
    let consumed = || -> u64 {
        ["no_workflow", "no_match", "matched"]
            .iter()
            .map(|o| metrics.events.with_label_values(&[TRIGGER, o]).get())
            .sum()
    };
    let (consumed_before, executors_before) = (consumed(), executors.get());
    let topology = Topology::start(&settings, db.clone(), &brokers).expect("engine");
    while !topology.consuming() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let start = Instant::now();
    // (label, consumed, RSS MiB, live executors, most live executors so far, elapsed s)
    let mut samples: Vec<(String, u64, f64, i64, i64, f64)> = Vec::new();
    let mut sample = |label: &str, n: u64, peak_live: i64| {
        samples.push((
            label.to_owned(),
            n,
            status_mib("VmRSS"),
            executors.get() - executors_before,
            peak_live,
            start.elapsed().as_secs_f64(),
        ));
    };
    sample("start", 0, 0);
    // Produce at most this far ahead of consumption, so the mock broker never trims
    // unread events and its log stays small.
    const AHEAD: usize = 20_000;
    const BATCH: usize = 5_000;
    let (mut produced, mut next, mut peak_live) = (0usize, every as u64, 0i64);
    let mut progress = (0u64, Instant::now());
    loop {
        let done = consumed() - consumed_before;
        peak_live = peak_live.max(executors.get() - executors_before);
        while done >= next && next <= seen as u64 {
            sample("", done, peak_live);
            next += every as u64;
        }
        if done >= seen as u64 {
            break;
        }
        if done != progress.0 {
            progress = (done, Instant::now());
        } else if progress.1.elapsed() > Duration::from_secs(120) {
            eprintln!("customers: no progress for 120 s at {done} of {seen} events");
            break;
        }
        if produced < seen && produced < done as usize + AHEAD {
            let n = BATCH.min(seen - produced);
            let mut deliveries = Vec::with_capacity(n);
            for i in produced..produced + n {
                let customer = i as i64 + 1;
                let payload = json!({"id": format!("seen-{customer}"), "type": TRIGGER, "customer_id": customer,
                    "data": {"amount": 100}})
                .to_string();
                let key = customer.to_string();
                let mut record = FutureRecord::to(TOPIC).key(&key).payload(&payload);
                loop {
                    match producer.send_result(record) {
                        Ok(delivery) => {
                            deliveries.push(delivery);
                            break;
                        }
                        Err((_, r)) => {
                            record = r;
                            actix_rt::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
            }
            for d in deliveries {
                let _ = d.await;
            }
            produced += n;
        } else {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let all = consumed() - consumed_before;
    let elapsed = start.elapsed();
    sample("all consumed", all, peak_live);
    actix_rt::time::sleep(Duration::from_secs(idle + 3)).await;
    sample(&format!("+{} s", idle + 3), all, peak_live);
    let evict_deadline = Instant::now() + Duration::from_secs(30);
    while executors.get() - executors_before > 0 && Instant::now() < evict_deadline {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    sample("evicted", all, peak_live);

    println!("customers/table      executor_idle_secs {idle}  [{backend}]");
    println!(
        "  {:>14} {:>12} {:>10} {:>15} {:>15} {:>10}",
        "", "consumed", "RSS MiB", "live executors", "most so far", "elapsed s"
    );
    for (label, n, rss, live, most, at) in &samples {
        println!("  {label:>14} {n:>12} {rss:>10.1} {live:>15} {most:>15} {at:>10.1}");
    }
    // Growth per 100k customers over the second half of the run: a plateau is ~0.
    let counted: Vec<_> = samples.iter().filter(|s| s.0.is_empty()).collect();
    let growth = match (counted.get(counted.len() / 2), counted.last()) {
        (Some(a), Some(b)) if b.1 > a.1 => (b.2 - a.2) / ((b.1 - a.1) as f64 / 100_000.0),
        _ => f64::NAN,
    };
    let rss_at = |label: &str| samples.iter().find(|s| s.0 == label).map_or(f64::NAN, |s| s.2);
    let peak = status_mib("VmHWM");
    println!(
        "customers/memory     customers seen {all:>8}{}  {:>6.0} ev/s  executor_idle_secs {idle}  RSS start {:.1} MiB  peak {peak:.1}  all consumed {:.1}  after eviction {:.1}  growth over the second half {growth:+.2} MiB per 100k customers  live executors peak {peak_live}, after eviction {}  [{backend}]",
        if all >= seen as u64 { "" } else { " INCOMPLETE" },
        all as f64 / elapsed.as_secs_f64().max(1e-9),
        rss_at("start"),
        rss_at("all consumed"),
        rss_at("evicted"),
        samples.last().map_or(0, |s| s.3),
    );
    topology.shutdown().await;
    drop_database(db, scratch).await;
    drop(cluster);
}

/// The journeys' `waits` index (migration m20261207_000017), dropped and recreated by the
/// `waits` scenario to show what it saves.
const WAITS_INDEX: (&str, &str) = (
    "ix_waits_customer_event",
    "CREATE INDEX IF NOT EXISTS ix_waits_customer_event ON waits (customer_id, event_type)",
);

/// Writes, in multi-row INSERTs of 1,000 runs a transaction, exactly the rows the executor
/// leaves when a run of the `waits` scenario's workflow (wait_for_event with one on_event
/// step) parks on its wait: the run `waiting` at step 0, the wait step `waiting`, the
/// on_event step `pending`, the `waits` row and its timeout as a `scheduled` row. See
/// `storage::waits::park`.
async fn park_waits(db: &Database, workflow: &StoredWorkflow, ids: std::ops::RangeInclusive<i64>) {
    let now = chrono::Utc::now();
    let parked_at = ts(now);
    let due = ts(now + chrono::Duration::days(3));
    let (wf, version) = (&workflow.id, workflow.version);
    for chunk in ids.collect::<Vec<_>>().chunks(1000) {
        let (mut runs, mut steps, mut waits, mut due_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &id in chunk {
            let partition = id.rem_euclid(i64::from(PARTITIONS));
            let event = EventEnvelope::from_value(json!({"id": format!("reg-{id}"), "type": "customer.registered",
                "customer_id": id, "data": {}}))
            .expect("bench envelope");
            let event = serde_json::to_string(&event)
                .expect("envelope json")
                .replace('\'', "''");
            runs.push(format!(
                "({id}, 'reg-{id}', '{wf}', {version}, {id}, 'customer.registered', {partition}, '{event}', 'waiting', 0, NULL, {parked_at}, {parked_at})"
            ));
            steps.push(format!(
                "({id}, 0, 'wait_for_event', 'waiting', 1, NULL, NULL, {parked_at}, NULL, NULL)"
            ));
            steps.push(format!(
                "({id}, 1, 'add_note', 'pending', 0, NULL, NULL, NULL, NULL, '0.on_event.0')"
            ));
            waits.push(format!(
                "({id}, {id}, '{TRIGGER}', {partition}, 0, 2, 2, 1, 2, NULL, '{{}}', {parked_at})"
            ));
            due_rows.push(format!("({id}, {id}, {partition}, {due}, NULL, NULL, {parked_at})"));
        }
        let txn = db.begin().await.expect("begin");
        for (sql, rows) in [
            ("INSERT INTO runs (\"id\", \"event_id\", \"workflow_id\", \"workflow_version\", \"customer_id\", \"trigger\", \
              \"partition\", \"event\", \"status\", \"next_step\", \"error\", \"created_at\", \"updated_at\") VALUES ", &runs),
            ("INSERT INTO run_steps (\"run_id\", \"step_index\", \"action_type\", \"status\", \"attempts\", \"error\", \
              \"result\", \"started_at\", \"finished_at\", \"path\") VALUES ", &steps),
            ("INSERT INTO waits (\"run_id\", \"customer_id\", \"event_type\", \"partition\", \"step_index\", \"split\", \
              \"end_index\", \"event_next\", \"timeout_next\", \"conditions\", \"steps\", \"started_at\") VALUES ", &waits),
            ("INSERT INTO scheduled (\"run_id\", \"customer_id\", \"partition\", \"due_at\", \"claimed_by\", \
              \"claimed_until\", \"created_at\") VALUES ", &due_rows),
        ] {
            txn.execute_unprepared(&format!("{sql}{}", rows.join(", "))).await.expect("park waits");
        }
        txn.commit().await.expect("commit");
    }
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT MAX(id) FROM runs))")
            .await
            .expect("runs sequence");
    }
}

/// Journeys: `WFE_BENCH_WAITS` (1,000,000) runs waiting for their customer's next deposit.
/// Prints the cost of the lookup an arriving event makes (the query of
/// `storage::waits::resolve_event`, for a customer who waits and one who does not),
/// without then with the waits index; then the engine's resident memory when it starts
/// on that table and after it consumed `WFE_BENCH_WAIT_EVENTS` (20,000) deposits, half of
/// them of waiting customers (each ends its wait and runs the on_event step) and half of
/// customers who do not wait. The bench writes the rows itself, so it also prints the
/// resident memory before the engine starts: the engine's own share is the difference.
/// Run it with `WFE_BENCH_WAITS=0` for the baseline.
async fn waits() {
    let waiting = env_or("WFE_BENCH_WAITS", 1_000_000) as i64;
    let events = env_or("WFE_BENCH_WAIT_EVENTS", 20_000) as i64;
    let settings = settings("engine-scale-waits");
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let (db, scratch) = fresh_database("waits", settings.database.max_connections).await;
    let backend = db.backend();
    let workflow = create_workflow(
        &db,
        &json!({"name": "first deposit", "trigger_event": "customer.registered", "actions": [
            {"type": "wait_for_event", "name": "deposit", "params": {"event": TRIGGER, "timeout": {"days": 3},
                "on_event": [{"type": "add_note", "params": {"body": "deposited"}}]}}]}),
    )
    .await;
    // Customers 1..=waiting wait; the events go to the first events/2 of them and to as
    // many customers after them, who do not.
    let half = events / 2;
    if waiting > 0 {
        insert_customers(&db, 1..=half.min(waiting)).await;
    }
    insert_customers(&db, waiting + 1..=waiting + half).await;
    let t = Instant::now();
    if waiting > 0 {
        park_waits(&db, &workflow, 1..=waiting).await;
    }
    let load = t.elapsed();
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.expect("analyze");
    }
    println!(
        "waits/load           waiting runs {waiting:>8}  written in {:>6.1} s  [{backend}]",
        load.as_secs_f64()
    );
    let lookup = "SELECT w.run_id, w.partition, w.step_index, w.split, w.end_index, w.event_next, \
         w.conditions, w.steps, r.event AS trigger_event FROM waits w JOIN runs r ON r.id = w.run_id \
         WHERE w.customer_id = $1 AND w.event_type = $2 ORDER BY w.started_at, w.run_id";
    let time_lookup = |customer: i64| {
        let db = db.clone();
        async move {
            let conn = db.connection();
            let mut samples = Vec::with_capacity(9);
            for _ in 0..9 {
                let t = Instant::now();
                conn.query_all(statement(conn, lookup, vec![customer.into(), TRIGGER.into()]))
                    .await
                    .expect("lookup");
                samples.push(t.elapsed());
            }
            median(samples)
        }
    };
    for (label, create) in [("without", false), ("with", true)] {
        let sql = if create {
            WAITS_INDEX.1.to_owned()
        } else {
            format!("DROP INDEX IF EXISTS {}", WAITS_INDEX.0)
        };
        db.execute_unprepared(&sql).await.expect("waits index");
        let (one, none) = (time_lookup(waiting.max(1) / 2).await, time_lookup(waiting + 1).await);
        println!(
            "waits/lookup         waiting runs {waiting:>8}  {label:<7} the index: a waiting customer {:>8.3} ms  a customer who does not wait {:>8.3} ms  (medians of 9)  [{backend}]",
            ms(one),
            ms(none)
        );
    }

    // The rows were written by this process: what that left resident (SQLite's page cache,
    // the allocator's arenas) is in every figure below, engine or not.
    let rss_loaded = status_mib("VmRSS");
    let topology = Topology::start(&settings, db.clone(), &brokers).expect("engine");
    while !topology.consuming() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let rss_start = status_mib("VmRSS");
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let customers: Vec<i64> = (1..=half.min(waiting)).chain(waiting + 1..=waiting + half).collect();
    let mut deliveries = Vec::with_capacity(customers.len());
    for customer in &customers {
        let payload = json!({"id": format!("dep-{customer}"), "type": TRIGGER, "customer_id": customer,
            "data": {"amount": 100}})
        .to_string();
        let key = customer.to_string();
        let mut record = FutureRecord::to(TOPIC).key(&key).payload(&payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    break;
                }
                Err((_, r)) => {
                    record = r;
                    actix_rt::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for d in deliveries {
        let _ = d.await;
    }
    let t = Instant::now();
    let expected = half.min(waiting);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut ended = 0;
    while Instant::now() < deadline {
        ended = count(&db, "SELECT COUNT(*) AS n FROM runs WHERE status = 'done'", vec![]).await;
        if ended >= expected {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let consumed_in = t.elapsed();
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    println!(
        "waits/memory         waiting runs {waiting:>8}  RSS before the engine {rss_loaded:.1} MiB  engine started {rss_start:.1} MiB (+{:.1})  after {} deposits ({ended} waits ended{}) {:.1} MiB  peak {:.1} MiB  in {:.1} s  [{backend}]",
        rss_start - rss_loaded,
        customers.len(),
        if ended >= expected { "" } else { ", INCOMPLETE" },
        status_mib("VmRSS"),
        status_mib("VmHWM"),
        consumed_in.as_secs_f64(),
    );
    topology.shutdown().await;
    drop_database(db, scratch).await;
    drop(cluster);
}

fn main() {
    let wanted = std::env::var("WFE_BENCH_SCALE").unwrap_or_default();
    let scenarios: Vec<&str> = ["delays", "customers", "waits"]
        .into_iter()
        .filter(|s| wanted.trim().is_empty() || wanted.split(',').any(|w| w.trim() == *s))
        .collect();
    if scenarios.len() > 1 {
        // One process per scenario: resident memory and process-wide metrics start clean.
        let exe = std::env::current_exe().expect("own executable");
        for scenario in scenarios {
            let status = std::process::Command::new(&exe)
                .args(std::env::args_os().skip(1))
                .env("WFE_BENCH_SCALE", scenario)
                .status()
                .expect("run scenario");
            if !status.success() {
                eprintln!("scenario {scenario} failed: {status}");
                std::process::exit(1);
            }
        }
        return;
    }
    let runner = actix_rt::System::new();
    runner.block_on(async move {
        match scenarios.first() {
            Some(&"delays") => delays().await,
            Some(&"customers") => customers().await,
            Some(&"waits") => waits().await,
            _ => eprintln!("WFE_BENCH_SCALE names no scenario (delays, customers, waits)"),
        }
    });
}
