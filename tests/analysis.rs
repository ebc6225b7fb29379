//! Issue 15, the analysis slice, through what users see: save-time warnings of the HTTP
//! API (cycles, conflicts), the event archive (the archiver actor's batches and load
//! shedding, pruning by age and count) and POST /api/v1/backtest. The API runs in
//! process on a fresh SQLite file, or PostgreSQL with WFE_TEST_DATABASE_URL.

mod common;

use actix::prelude::*;
use actix_web::{test as atest, App};
use chrono::{DateTime, Duration, Utc};
use common::t0;
use serde_json::{json, Value};
use std::sync::Arc;
use workflow_engine::actors::archiver::Archiver;
use workflow_engine::actors::protocol::{ArchiveEvent, Halt};
use workflow_engine::api;
use workflow_engine::clock::{ManualClock, SharedClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::metrics::Metrics;
use workflow_engine::settings::{Archive, Retention};
use workflow_engine::storage::{archive, Database};

#[macro_use]
#[path = "common/engine.rs"]
#[allow(unused_imports, unused_macros)]
mod engine;

/// One request to the API (no auth), answering the status and the JSON body.
async fn call(db: &Database, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let state = common::api_state(db);
    let app = atest::init_service(
        App::new().configure(move |cfg| api::configure(cfg, state, 4 << 20, Option::<String>::None)),
    )
    .await;
    let mut req = match method {
        "POST" => atest::TestRequest::post(),
        "PUT" => atest::TestRequest::put(),
        _ => atest::TestRequest::get(),
    }
    .uri(path);
    if let Some(body) = body {
        req = req.set_json(body);
    }
    let resp = atest::call_service(&app, req.to_request()).await;
    let status = resp.status().as_u16();
    let bytes = atest::read_body(resp).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn messages(body: &Value, containing: &str) -> Vec<(String, String)> {
    body["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["message"].as_str().is_some_and(|m| m.contains(containing)))
        .map(|w| {
            (
                w["path"].as_str().unwrap_or_default().to_owned(),
                w["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn status_flip(name: &str, from: &str, to: &str) -> Value {
    json!({"name": name, "trigger_event": "customer.status_changed",
        "conditions": {"match": "all", "rules": [
            {"field": "event.status_type", "operator": "eq", "value": "sales"},
            {"field": "event.new_status", "operator": "eq", "value": from}]},
        "actions": [{"type": "set_status", "params": {"type": "sales", "status": to}}]})
}

#[actix_rt::test]
async fn saving_the_second_half_of_a_status_loop_warns_naming_the_cycle() {
    let test = common::fresh().await;
    let db = &test.db;
    let (status, first) = call(db, "POST", "/api/v1/workflows", Some(status_flip("A to B", "A", "B"))).await;
    assert_eq!(status, 201, "{first}");
    assert!(messages(&first, "cycle").is_empty(), "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();

    // B -> C leads nowhere back.
    let (_, other) = call(db, "POST", "/api/v1/workflows", Some(status_flip("B to C", "B", "C"))).await;
    assert!(messages(&other, "cycle").is_empty(), "{other}");

    let draft = status_flip("B to A", "B", "A");
    let (status, checked) = call(db, "POST", "/api/v1/workflows/validate", Some(draft.clone())).await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(messages(&checked, "cycle").len(), 1, "{checked}");

    let (status, second) = call(db, "POST", "/api/v1/workflows", Some(draft)).await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["id"].as_str().unwrap().to_owned();
    let cycle = messages(&second, "cycle");
    assert_eq!(cycle.len(), 1, "{second}");
    assert_eq!(cycle[0].0, "/actions/0");
    let expected = format!("\"B to A\" ({second_id}) -> \"A to B\" ({first_id}) -> \"B to A\" ({second_id})");
    assert!(cycle[0].1.contains(&expected), "{}", cycle[0].1);
    // The warning comes back as a warning, not an error.
    assert_eq!(second["warnings"][0]["severity"], "warning");

    // Switched off, it closes nothing.
    let mut off = second.clone();
    off["active"] = json!(false);
    off.as_object_mut().unwrap().remove("warnings");
    let (status, updated) = call(db, "PUT", &format!("/api/v1/workflows/{second_id}"), Some(off)).await;
    assert_eq!(status, 200, "{updated}");
    assert!(messages(&updated, "cycle").is_empty(), "{updated}");
    test.finish().await;
}

fn deposit_workflow(name: &str, conditions: Value, status: &str) -> Value {
    json!({"name": name, "trigger_event": "customer.deposited", "conditions": conditions,
        "actions": [{"type": "add_note", "params": {"body": "seen"}},
                    {"type": "set_status", "params": {"type": "sales", "status": status}}]})
}

#[actix_rt::test]
async fn contradicting_workflows_warn_when_they_can_match_the_same_events_only() {
    let test = common::fresh().await;
    let db = &test.db;
    let big = json!({"field": "event.amount", "operator": "gte", "value": 1000});
    let (status, vip) = call(
        db,
        "POST",
        "/api/v1/workflows",
        Some(deposit_workflow("VIP", big, "vip")),
    )
    .await;
    assert_eq!(status, 201, "{vip}");
    let vip_id = vip["id"].as_str().unwrap().to_owned();

    // Brazilian depositors may deposit 1000 or more: the trees overlap.
    let brazil = json!({"field": "customer.country", "operator": "eq", "value": "BR"});
    let (_, latam) = call(
        db,
        "POST",
        "/api/v1/workflows",
        Some(deposit_workflow("LatAm", brazil, "latam")),
    )
    .await;
    let conflicts = messages(&latam, "contradicts");
    assert_eq!(conflicts.len(), 1, "{latam}");
    assert_eq!(conflicts[0].0, "/actions/1");
    assert!(
        conflicts[0].1.contains(&format!("\"VIP\" ({vip_id})")),
        "{}",
        conflicts[0].1
    );
    assert!(
        conflicts[0].1.contains("\"latam\"") && conflicts[0].1.contains("\"vip\""),
        "{}",
        conflicts[0].1
    );

    // Small deposits can never be 1000 or more: provably disjoint, no warning against VIP.
    let small = json!({"match": "all", "rules": [{"field": "event.amount", "operator": "lt", "value": 100}]});
    let (_, micro) = call(
        db,
        "POST",
        "/api/v1/workflows",
        Some(deposit_workflow("Micro", small, "micro")),
    )
    .await;
    let against_vip: Vec<_> = messages(&micro, "contradicts")
        .into_iter()
        .filter(|(_, m)| m.contains(&vip_id))
        .collect();
    assert!(against_vip.is_empty(), "{micro}");
    // ... but it does overlap LatAm (a small Brazilian deposit).
    assert_eq!(messages(&micro, "contradicts").len(), 1, "{micro}");
    test.finish().await;
}

fn event(id: &str, event_type: &str, customer_id: i64, occurred_at: DateTime<Utc>, data: Value) -> EventEnvelope {
    EventEnvelope::from_value(json!({"id": id, "type": event_type, "customer_id": customer_id,
        "occurred_at": occurred_at.to_rfc3339(), "data": data}))
    .unwrap()
}

fn deposit(i: usize, customer_id: i64, amount: i64) -> EventEnvelope {
    event(
        &format!("dep-{i}"),
        "customer.deposited",
        customer_id,
        t0(),
        json!({"amount": amount}),
    )
}

async fn archived(db: &Database) -> u64 {
    archive::count(db.connection()).await.unwrap()
}

#[actix_rt::test]
async fn the_archiver_writes_in_batches_skips_redeliveries_and_sheds_load_when_full() {
    let test = common::fresh().await;
    let db = test.db.clone();
    // A full batch is written without waiting for the (hour-long) flush interval.
    let archiver = Archiver::new(db.clone(), 3, std::time::Duration::from_secs(3600)).start();
    let to: Recipient<ArchiveEvent> = archiver.clone().recipient();
    for i in 0..3 {
        assert!(ArchiveEvent::offer(&to, &deposit(i, 1, 100)));
    }
    let rows = eventually!("a full batch written", engine::PATIENCE, {
        let n = archived(&db).await;
        (n == 3).then_some(n)
    });
    assert_eq!(rows, 3);
    // A redelivered event is archived once; a partial batch is written at Halt.
    assert!(ArchiveEvent::offer(&to, &deposit(0, 1, 100)));
    assert!(ArchiveEvent::offer(&to, &deposit(3, 2, 100)));
    archiver.send(Halt).await.unwrap();
    assert_eq!(archived(&db).await, 4);
    let page = archive::page(
        db.connection(),
        &archive::PageQuery {
            triggers: &["customer.deposited".to_owned()],
            since: None,
            before: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["dep-3", "dep-2", "dep-1", "dep-0"], "newest first");
    assert_eq!(page[0].payload, json!({"amount": 100}));
    assert_eq!(page[0].occurred_at, t0());

    // A mailbox of one: the archiver has not run yet, so the next offers find it full and
    // are dropped, counted, and never block the caller.
    let dropped = || Metrics::global().archive_events.with_label_values(&["dropped"]).get();
    let before = dropped();
    let small = Archiver::create(|ctx| {
        ctx.set_mailbox_capacity(1);
        Archiver::new(db.clone(), 100, std::time::Duration::from_secs(3600))
    });
    let to: Recipient<ArchiveEvent> = small.clone().recipient();
    let taken = (10..20)
        .filter(|i| ArchiveEvent::offer(&to, &deposit(*i, 3, 5)))
        .count();
    assert!(taken < 10, "a full mailbox must refuse: {taken} of 10 taken");
    assert_eq!(dropped() - before, (10 - taken) as u64);
    small.send(Halt).await.unwrap();
    assert_eq!(archived(&db).await, 4 + taken as u64);
    test.finish().await;
}

#[actix_rt::test]
async fn retention_bounds_the_archive_by_age_and_by_count() {
    let test = common::fresh().await;
    let db = &test.db;
    let old: Vec<EventEnvelope> = (0..5).map(|i| deposit(i, 1, 1)).collect();
    let recent: Vec<EventEnvelope> = (5..12).map(|i| deposit(i, 1, 1)).collect();
    archive::insert(db.connection(), &old, t0()).await.unwrap();
    archive::insert(db.connection(), &recent, t0() + Duration::days(29))
        .await
        .unwrap();
    let clock: SharedClock = Arc::new(ManualClock::new(t0() + Duration::days(31)));
    let policy = Retention {
        runs_days: 0,
        plans_days: 0,
        outbox_days: 0,
        versions_keep: 0,
        audit_days: 0,
        batch_size: 2,
        pause_ms: 0,
        interval_secs: 3600,
    };
    let mut bounds = Archive {
        enabled: true,
        days: 30,
        max_events: 100,
        mailbox: 10,
        batch_size: 10,
        flush_ms: 1000,
    };
    // Age: the five archived 31 days ago go, in batches of two.
    let pruned = workflow_engine::retention::prune_archive(db, &clock, &policy, &bounds)
        .await
        .unwrap();
    assert_eq!((pruned, archived(db).await), (5, 7));
    // Count: the oldest beyond the newest 3 go.
    bounds.max_events = 3;
    let pruned = workflow_engine::retention::prune_archive(db, &clock, &policy, &bounds)
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    let page = archive::page(
        db.connection(),
        &archive::PageQuery {
            triggers: &["customer.deposited".to_owned()],
            since: None,
            before: None,
            limit: 10,
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids, ["dep-11", "dep-10", "dep-9"]);
    test.finish().await;
}

async fn set_country(db: &Database, customer_id: i64, country: &str) {
    use sea_orm::ConnectionTrait;
    db.execute(workflow_engine::storage::sql::statement(
        db,
        "UPDATE customers SET country = $1 WHERE id = $2",
        vec![country.into(), customer_id.into()],
    ))
    .await
    .unwrap();
}

#[actix_rt::test]
async fn backtest_judges_drafts_and_saved_workflows_on_archived_events_with_no_side_effects() {
    let test = common::fresh().await;
    let db = &test.db;
    common::add_customers(db, 1..=4).await;
    set_country(db, 1, "BR").await;
    set_country(db, 2, "BR").await;
    // 40 deposits: amounts 100, 200, ... 4000, customers 1..4 in turn, a day apart,
    // plus registrations no deposit workflow looks at.
    let deposits: Vec<EventEnvelope> = (0..40)
        .map(|i| {
            event(
                &format!("dep-{i}"),
                "customer.deposited",
                (i % 4) as i64 + 1,
                t0() + Duration::days(i as i64),
                json!({"amount": (i + 1) * 100}),
            )
        })
        .collect();
    archive::insert(db.connection(), &deposits, t0()).await.unwrap();
    let regs: Vec<EventEnvelope> = (0..5)
        .map(|i| event(&format!("reg-{i}"), "customer.registered", 1, t0(), json!({})))
        .collect();
    archive::insert(db.connection(), &regs, t0()).await.unwrap();

    let current = json!({"name": "Big deposits", "trigger_event": "customer.deposited",
        "conditions": {"field": "event.amount", "operator": "gte", "value": 3000},
        "actions": [{"type": "add_note", "params": {"body": "big"}}]});
    let (status, saved) = call(db, "POST", "/api/v1/workflows", Some(current)).await;
    assert_eq!(status, 201, "{saved}");
    let saved_id = saved["id"].as_str().unwrap().to_owned();
    let draft = json!({"name": "Big Brazilian deposits", "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [
            {"field": "event.amount", "operator": "gte", "value": 1000},
            {"field": "customer.country", "operator": "eq", "value": "BR"}]},
        "actions": [{"type": "add_note", "params": {"body": "big BR"}}]});

    let (status, body) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [draft.clone()], "workflow_ids": [saved_id]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 40, "{body}");
    let by_id = |id: &str| {
        body["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["workflow_id"] == id)
            .cloned()
            .unwrap()
    };
    // Amounts 3000..4000: 11 events.
    assert_eq!(by_id(&saved_id)["matched"], 11, "{body}");
    assert_eq!(by_id(&saved_id)["limited"], 0);
    // Amounts 1000..4000 (i = 9..=39) of customers 1 and 2 (i % 4 in {0, 1}): 7 + 8.
    let d = by_id("draft-0");
    assert_eq!(d["matched"], 15, "{body}");
    let sample = d["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 5, "the sample is capped");
    assert_eq!(sample[0]["event_id"], "dep-37", "newest first: {body}");
    assert_eq!(sample[0]["customer_id"], 2);
    assert_eq!(
        sample[0]["actions"],
        json!([{"type": "add_note", "params": {"body": "big BR"}}])
    );

    // Customers as stored now: customer 3 moves to Brazil.
    set_country(db, 3, "BR").await;
    let (_, now) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [draft.clone()]})),
    )
    .await;
    // ... adding i % 4 == 2: 10, 14, ..., 38.
    assert_eq!(now["workflows"][0]["matched"], 23, "{now}");

    // `since` and `limit` bound what is read; pages are 2,000 events, so a limit of 7
    // reads the newest 7 only.
    let since = (t0() + Duration::days(30)).to_rfc3339();
    let (_, recent) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [draft.clone()], "since": since})),
    )
    .await;
    assert_eq!(recent["events"], 10, "{recent}");
    let (_, few) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [draft], "limit": 7})),
    )
    .await;
    assert_eq!(few["events"], 7, "{few}");

    // No side effects: no runs, no notes.
    use sea_orm::{EntityTrait, PaginatorTrait};
    use workflow_engine::storage::entities::{notes, runs};
    assert_eq!(runs::Entity::find().count(db.connection()).await.unwrap(), 0);
    assert_eq!(notes::Entity::find().count(db.connection()).await.unwrap(), 0);
    test.finish().await;
}

#[actix_rt::test]
async fn backtest_input_is_bounded_and_each_problem_has_its_pointer() {
    let test = common::fresh().await;
    let db = &test.db;
    let (status, body) = call(
        db,
        "POST",
        "/api/v1/backtest",
        Some(
            json!({"workflows": [{"name": "x", "trigger_event": "customer.deposited", "actions": []}],
            "workflow_ids": ["nope", 3], "since": "yesterday", "limit": 100_001, "extra": 1}),
        ),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for want in ["/workflows/0/actions", "/workflow_ids/1", "/since", "/limit", "/extra"] {
        assert!(paths.contains(&want), "{want} missing in {body}");
    }
    let (status, body) = call(db, "POST", "/api/v1/backtest", Some(json!({"workflow_ids": ["nope"]}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "/workflow_ids/0", "{body}");
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("w{i}"), "trigger_event": "customer.deposited", "actions": [{"type": "add_note", "params": {"body": "x"}}]}))
        .collect();
    let (status, body) = call(db, "POST", "/api/v1/backtest", Some(json!({"workflows": many}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "/workflows", "{body}");
    assert!(body.to_string().contains("at most 50"), "{body}");
    test.finish().await;
}

#[actix_rt::test]
async fn the_running_engine_archives_every_consumed_event_and_the_backtest_reads_them() {
    let mut engine = engine::Engine::new(|s| {
        s.archive.flush_ms = 50;
    })
    .await;
    engine.add_customers([7]).await;
    engine
        .add_workflow(json!({"name": "notes deposits", "trigger_event": "customer.deposited",
            "actions": [{"type": "add_note", "params": {"body": "deposit"}}]}))
        .await;
    engine.start().await;
    engine
        .publish_all(&[
            json!({"id": "e2e-dep", "type": "customer.deposited", "customer_id": 7, "data": {"amount": 2500}}),
            // No workflow listens to this one: archived all the same, for tomorrow's drafts.
            json!({"id": "e2e-login", "type": "customer.logged_in", "customer_id": 7, "data": {}}),
        ])
        .await;
    let db = engine.db().clone();
    eventually!("both events archived", engine::PATIENCE, {
        (archived(&db).await == 2).then_some(())
    });
    let draft = json!({"name": "logins", "trigger_event": "customer.logged_in",
        "actions": [{"type": "add_note", "params": {"body": "hi"}}]});
    let (status, body) = call(&db, "POST", "/api/v1/backtest", Some(json!({"workflows": [draft]}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"], 1, "{body}");
    assert_eq!(body["workflows"][0]["sample"][0]["event_id"], "e2e-login", "{body}");
    engine.finish().await;
}

/// Issue 25: a destination the outbound guard would refuse (an internal address, a local
/// name) is a warning at save, with the pointer of the step, nested ones included, and in
/// the dry run, rather than a failed run later. A public name is left to the guard. The
/// targets a journey's nested steps name are checked as the top-level ones are.
#[actix_rt::test]
async fn destinations_the_guard_would_refuse_are_warned_at_save_and_in_the_dry_run() {
    let t = common::fresh().await;
    let hook = |url: &str| json!({"type": "webhook", "params": {"url": url}});
    let workflow = json!({"name": "hooks", "trigger_event": "customer.deposited", "actions": [
        hook("https://hooks.example.com/ok"),
        {"type": "branch", "params": {
            "paths": [{"when": {"field": "event.amount", "operator": "gt", "value": 0},
                       "actions": [hook("http://127.0.0.1:9/internal"),
                                   {"type": "assign_to_team", "params": {"team_id": 999}}]}],
            "otherwise": [hook("http://localhost:8025/mail")]}}]});
    let (status, saved) = call(&t.db, "POST", "/api/v1/workflows", Some(workflow)).await;
    assert_eq!(status, 201, "{saved}");
    let refused = messages(&saved, "refuse");
    let paths: Vec<&str> = refused.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/actions/1/params/paths/0/actions/0/params/url",
            "/actions/1/params/otherwise/0/params/url"
        ],
        "{saved}"
    );
    assert!(refused[0].1.contains("delivery.webhook_allowlist"), "{}", refused[0].1);
    assert!(refused[1].1.contains("localhost is a local name"), "{}", refused[1].1);
    // The targets check reads the nested steps too.
    assert_eq!(
        messages(&saved, "unknown team")[0].0,
        "/actions/1/params/paths/0/actions/1/params/team_id"
    );

    let event = json!({"id": "dry-1", "type": "customer.deposited", "customer_id": 1, "data": {"amount": 5}});
    let (status, dry) = call(&t.db, "POST", "/api/v1/dry-run", Some(json!({"event": event}))).await;
    assert_eq!(status, 200, "{dry}");
    let warned: Vec<&str> = dry["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["path"].as_str().unwrap())
        .collect();
    assert_eq!(warned, paths, "{dry}");
    assert_eq!(dry["warnings"][0]["workflow_id"], saved["id"]);
    t.finish().await;
}
