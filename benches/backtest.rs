//! The backtest over a full page run: `WFE_BENCH_ARCHIVED` (100,000) archived deposits of
//! `WFE_BENCH_CUSTOMERS` (10,000) customers, judged by a draft and the current version of
//! a workflow (the builder's comparison), exactly as POST /api/v1/backtest does it:
//! archive pages of 2,000 newest first, each page's customers loaded in one batch, every
//! event evaluated by both workflows.
//!
//! ```sh
//! cargo bench --bench backtest
//! WFE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench backtest
//! ```
//!
//! The archive and the customers are written once before measuring (not measured).

#[path = "common/database.rs"]
mod database;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use workflow_engine::backtest::Backtest;
use workflow_engine::conditions::Limits;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::schema::FieldSchema;
use workflow_engine::storage::{archive, Database};
use workflow_engine::validate::Validator;
use workflow_engine::workflow::Workflow;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn workflow(value: Value) -> Workflow {
    Validator::new(&FieldSchema::default(), Limits::default())
        .workflow(&value)
        .expect("bench workflow")
        .workflow
}

async fn fill(db: &Database, customers: u64, archived: u64) {
    let countries = ["BR", "AR", "GB", "DE", "MX"];
    let ids: Vec<u64> = (1..=customers).collect();
    for chunk in ids.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| {
                let country = countries[(*id as usize) % countries.len()];
                format!("({id}, 'F{id}', 'L{id}', 'c{id}@bench.example', '+1{id:09}', '{country}', 'en', {}, 'sales', true, false, '{{\"tier\": \"t{}\"}}')", id * 10, id % 3)
            })
            .collect();
        db.execute_unprepared(&format!(
            "INSERT INTO customers (id, first_name, last_name, email, phone, country, language, balance, desk, active, frozen, custom_fields) VALUES {}",
            values.join(", ")
        ))
        .await
        .expect("customers");
    }
    let t0 = chrono::Utc::now() - chrono::Duration::days(7);
    let events: Vec<EventEnvelope> = (0..archived)
        .map(|i| {
            EventEnvelope::from_value(json!({"id": format!("bench-{i}"), "type": "customer.deposited",
                "customer_id": (i % customers) + 1,
                "occurred_at": (t0 + chrono::Duration::seconds(i as i64)).to_rfc3339(),
                "data": {"amount": (i * 37) % 5000, "currency": if i % 2 == 0 { "USD" } else { "EUR" },
                         "transaction": {"type": "deposit"}}}))
            .expect("envelope")
        })
        .collect();
    archive::insert(db.connection(), &events, chrono::Utc::now())
        .await
        .expect("archive");
}

fn bench(c: &mut Criterion) {
    let customers = env("WFE_BENCH_CUSTOMERS", 10_000);
    let archived = env("WFE_BENCH_ARCHIVED", 100_000);
    let runtime = actix_rt::Runtime::new().expect("runtime");
    let (db, scratch) = runtime.block_on(async {
        let (db, scratch) = database::fresh_database("backtest", 10).await;
        fill(&db, customers, archived).await;
        (db, scratch)
    });
    let current = workflow(
        json!({"id": "current", "name": "big deposits", "trigger_event": "customer.deposited",
        "conditions": {"field": "event.amount", "operator": "gte", "value": 3000},
        "actions": [{"type": "add_note", "params": {"body": "big"}}]}),
    );
    let draft = workflow(
        json!({"id": "draft-0", "name": "big LatAm deposits", "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [
            {"field": "event.amount", "operator": "gte", "value": 1000},
            {"field": "transaction.type", "operator": "eq", "value": "deposit"},
            {"field": "customer.country", "operator": "in", "value": ["BR", "AR", "MX"]}]},
        "actions": [{"type": "add_note", "params": {"body": "big latam"}}]}),
    );
    let mut group = c.benchmark_group("backtest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(archived));
    group.bench_function(format!("{archived}_events_{customers}_customers_2_workflows"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut backtest =
                    Backtest::new(vec![current.clone(), draft.clone()], &Limits::default()).expect("compile");
                let triggers = backtest.triggers();
                let read = archive::replay(db.connection(), &triggers, None, archived, |e, c| {
                    backtest.observe(e, c)
                })
                .await
                .expect("replay");
                assert_eq!(read, archived);
                let report = backtest.finish();
                assert!(report.workflows.iter().all(|w| w.matched > 0));
                report
            })
        })
    });
    group.finish();
    runtime.block_on(database::drop_database(db, scratch));
}

criterion_group!(benches, bench);
criterion_main!(benches);
