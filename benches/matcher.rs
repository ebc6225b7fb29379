//! Plans per second as the workflow set grows: 1, 100, 1,000 and 10,000 workflows on one
//! trigger; 10,000 spread over the 11 known triggers (where an event only looks at its
//! own trigger's share); and one workflow on the events' trigger beside 0 to 10,000 on
//! other triggers, whose cost should stay flat. Events and customers come from
//! tests/fixtures/seed_events.json.
//!
//! `cargo bench --bench matcher`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use workflow_engine::conditions::{Facts, Limits};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::plan::WorkflowSet;
use workflow_engine::schema::{FieldSchema, TRIGGERS};
use workflow_engine::validate::Validator;
use workflow_engine::workflow::Workflow;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture json")
}

/// Workflow `i` of a generated set: a realistic mix of gte/in/ends_with/regex/not under
/// all/any, with thresholds that vary so some match and most do not.
fn generated(i: usize, trigger: &str) -> Value {
    json!({
        "id": format!("w{i:05}"),
        "name": format!("generated {i}"),
        "trigger_event": trigger,
        "priority": (i % 50) as i64,
        "conditions": {"match": "all", "rules": [
            {"field": "event.amount", "operator": "gte", "value": (i % 20) * 1000},
            {"match": "any", "rules": [
                {"field": "customer.country", "operator": "in", "value": ["BR", "AR", "MX", "CL"]},
                {"not": {"field": "customer.email", "operator": "ends_with", "value": "@test.com"}},
                {"field": "customer.first_name", "operator": "regex", "value": format!("^[A-C].*{}$", i % 7)}
            ]},
            {"field": "customer.retention_status", "operator": "neq", "value": "blocked"}
        ]},
        "actions": [{"type": "add_note", "params": {"body": "generated"}}]
    })
}

fn build(definitions: impl Iterator<Item = Value>) -> WorkflowSet {
    let schema = FieldSchema::default();
    let validator = Validator::new(&schema, Limits::default());
    let workflows: Vec<Workflow> = definitions
        .map(|d| validator.workflow(&d).expect("valid generated workflow").workflow)
        .collect();
    let (set, errors) = WorkflowSet::build(workflows, &Limits::default());
    assert!(errors.is_empty());
    set
}

fn events() -> Vec<(EventEnvelope, Map<String, Value>)> {
    fixture("seed_events.json")["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let e = EventEnvelope::from_value(c["event"].clone()).expect("event");
            let mut e2 = e.clone();
            e2.event_type = "customer.deposited".into();
            (e2, c["customer"].as_object().cloned().expect("customer"))
        })
        .collect()
}

fn plans(c: &mut Criterion) {
    let events = events();
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(events.len() as u64));
    for n in [1usize, 100, 1_000, 10_000] {
        let set = build((0..n).map(|i| generated(i, "customer.deposited")));
        group.bench_with_input(BenchmarkId::new("one_trigger", n), &set, |b, set| {
            b.iter(|| {
                for (event, customer) in &events {
                    black_box(set.plan(Facts::new(event, customer)));
                }
            })
        });
    }
    let spread = build((0..10_000).map(|i| generated(i, TRIGGERS[i % TRIGGERS.len()].name)));
    group.bench_with_input(
        BenchmarkId::new("spread_over_11_triggers", 10_000),
        &spread,
        |b, set| {
            b.iter(|| {
                for (event, customer) in &events {
                    black_box(set.plan(Facts::new(event, customer)));
                }
            })
        },
    );
    let others: Vec<&str> = TRIGGERS
        .iter()
        .map(|t| t.name)
        .filter(|t| *t != "customer.deposited")
        .collect();
    for n in [0usize, 100, 1_000, 10_000] {
        let set = build(
            std::iter::once(generated(0, "customer.deposited")).chain((1..=n).map(|i| {
                // Distinct thresholds: other triggers' rules are many and never shared.
                let mut w = generated(i, others[i % others.len()]);
                w["conditions"]["rules"][0]["value"] = json!(i);
                w
            })),
        );
        group.bench_with_input(BenchmarkId::new("one_beside_others", n), &set, |b, set| {
            b.iter(|| {
                for (event, customer) in &events {
                    black_box(set.plan(Facts::new(event, customer)));
                }
            })
        });
    }
    let seed = build(fixture("seed_workflows.json").as_array().expect("seed").iter().cloned());
    group.bench_with_input(BenchmarkId::new("seed_workflows", 4), &seed, |b, set| {
        b.iter(|| {
            for (event, customer) in &events {
                black_box(set.plan(Facts::new(event, customer)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, plans);
criterion_main!(benches);
