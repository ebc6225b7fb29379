//! Security issue 22, finding 3: the user-sized work of the API (backtest, dry run,
//! validation with its save-time analysis, saves) runs off the HTTP workers on a bounded
//! pool, within a time budget and a work budget. Driven through the HTTP API in process,
//! on a fresh SQLite file (or PostgreSQL with WFE_TEST_DATABASE_URL).

#[path = "common/attacks.rs"]
mod attacks;
mod common;

use actix_web::{test as atest, App};
use attacks::regex_workflow;
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use workflow_engine::api::{self, AppState, Heavy};
use workflow_engine::clock::{self, ManualClock};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::settings::Api;
use workflow_engine::storage::{archive, Database};

#[macro_use]
#[path = "common/engine.rs"]
#[allow(unused_imports, unused_macros)]
mod engine;

fn state(db: &Database, heavy: Heavy) -> AppState {
    AppState {
        db: db.clone(),
        limits: Default::default(),
        // Never connected: these tests publish nothing.
        producer: workflow_engine::kafka::producer_with("127.0.0.1:9", &Default::default()).unwrap(),
        topic: "crm.events".into(),
        brokers: "127.0.0.1:9".into(),
        embedded: false,
        node_id: "test".into(),
        matcher: None,
        readiness: Default::default(),
        webhook_allowlist: Vec::new(),
        heavy,
        changes: Default::default(),
    }
}

fn pool(settings: Api) -> Heavy {
    Heavy::new(&settings, clock::system())
}

/// One request to `app`: the status, the `Retry-After` header and the JSON body.
macro_rules! send {
    ($app:expr, $method:expr, $path:expr, $body:expr) => {{
        let body: Option<Value> = $body;
        let mut req = if $method == "POST" {
            atest::TestRequest::post()
        } else {
            atest::TestRequest::get()
        }
        .uri($path);
        if let Some(body) = body {
            req = req.set_json(body);
        }
        let resp = atest::call_service($app, req.to_request()).await;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = atest::read_body(resp).await;
        (
            status,
            retry_after,
            serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        )
    }};
}

/// One request to a fresh API over `state`: the status and the JSON body.
async fn call(state: AppState, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let app = atest::init_service(
        App::new().configure(move |cfg| api::configure(cfg, state, 4 << 20, Option::<String>::None)),
    )
    .await;
    let (status, _, body) = send!(&app, method, path, body);
    (status, body)
}

fn big_deposits() -> Value {
    json!({"name": "big deposits", "trigger_event": "customer.deposited",
           "conditions": {"field": "event.amount", "operator": "gte", "value": 1000},
           "actions": [{"type": "add_note", "params": {"body": "big"}}]})
}

fn deposit(i: usize, amount: i64) -> Value {
    json!({"id": format!("dep-{i}"), "type": "customer.deposited", "customer_id": 1,
           "occurred_at": "2026-11-25T10:00:00Z", "data": {"amount": amount}})
}

async fn archive_deposits(db: &Database, n: usize) {
    let events: Vec<EventEnvelope> = (0..n)
        .map(|i| EventEnvelope::from_value(deposit(i, 500 * i as i64)).unwrap())
        .collect();
    archive::insert(db.connection(), &events, Utc::now()).await.unwrap();
}

/// A door the pool's CPU-bound parts wait at until the test opens it: the requests hold
/// their permits, on blocking threads, for as long as the test needs, with no sleep.
#[derive(Clone, Default)]
struct Door(Arc<(Mutex<bool>, Condvar)>);

impl Door {
    fn wait(&self) {
        let (open, turn) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = turn.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, turn) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        turn.notify_all();
    }
}

/// Opens the door however the test ends: a failed assertion must not leave blocking
/// threads waiting, which the runtime would wait for at its end.
struct OpenOnDrop(Door);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[actix_rt::test]
async fn beyond_the_pool_a_heavy_request_gets_429_with_retry_after_and_healthz_still_answers() {
    let test = common::fresh().await;
    let door = Door::default();
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let waiting = door.clone();
    let heavy = pool(Api {
        heavy_concurrency: 2,
        heavy_timeout_ms: 30_000,
        ..Api::default()
    })
    .with_probe(move || {
        let _ = entered_tx.send(());
        waiting.wait();
    });
    let state = state(&test.db, heavy);
    let app = atest::init_service(
        App::new().configure(move |cfg| api::configure(cfg, state, 4 << 20, Option::<String>::None)),
    )
    .await;
    let held = futures_util::future::join(
        async { send!(&app, "POST", "/api/v1/backtest", Some(json!({}))) },
        async {
            send!(
                &app,
                "POST",
                "/api/v1/dry-run",
                Some(json!({"event": deposit(1, 5000)}))
            )
        },
    );
    let opener = OpenOnDrop(door.clone());
    let meanwhile = async {
        // Both are in their CPU-bound part, on blocking threads, each holding a permit.
        entered.recv().await.unwrap();
        entered.recv().await.unwrap();
        let (status, retry_after, body) = send!(&app, "POST", "/api/v1/workflows/validate", Some(big_deposits()));
        assert_eq!(status, 429, "{body}");
        assert_eq!(retry_after.as_deref(), Some("30"), "the time budget, in seconds");
        assert_eq!(body["error"]["code"], "busy", "{body}");
        let (status, _, body) = send!(&app, "POST", "/api/v1/backtest", Some(json!({})));
        assert_eq!((status, &body["error"]["code"]), (429, &json!("busy")), "{body}");
        // The workers are free: health and the database-backed API answer.
        let (status, _, body) = send!(&app, "GET", "/healthz", None);
        assert_eq!((status, body), (200, json!({"status": "ok"})));
        let (status, _, body) = send!(&app, "GET", "/api/v1/workflows", None);
        assert_eq!(status, 200, "{body}");
        drop(opener);
    };
    let ((backtest, dry_run), ()) = futures_util::future::join(held, meanwhile).await;
    assert_eq!(backtest.0, 200, "{}", backtest.2);
    assert_eq!(dry_run.0, 200, "{}", dry_run.2);
    // The permits came back.
    let (status, _, body) = send!(&app, "POST", "/api/v1/workflows/validate", Some(big_deposits()));
    assert_eq!(status, 200, "{body}");
    test.finish().await;
}

#[actix_rt::test]
async fn a_backtest_of_a_thousand_regex_rules_is_refused_before_it_runs() {
    let test = common::fresh().await;
    let (status, body) = call(
        state(&test.db, pool(Api::default())),
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [regex_workflow(1000)]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "work_budget_exceeded", "{body}");
    // 128 distinct regexes of 512 KiB each fill the 64 MiB; the 129th crosses it.
    assert_eq!(
        body["error"]["path"], "/workflows/0/conditions/rules/128/value",
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("work budget exceeded"),
        "{body}"
    );
    test.finish().await;
}

#[actix_rt::test]
async fn dry_run_and_validation_count_rules_and_regexes_against_the_budget() {
    let test = common::fresh().await;
    let small = || {
        pool(Api {
            heavy_max_rules: 10,
            ..Api::default()
        })
    };
    let many_rules: Vec<Value> = (0..11)
        .map(|i| json!({"field": "event.amount", "operator": "gte", "value": i}))
        .collect();
    let mut workflow = big_deposits();
    workflow["conditions"] = json!({"match": "all", "rules": many_rules});
    let (status, body) = call(
        state(&test.db, small()),
        "POST",
        "/api/v1/dry-run",
        Some(json!({"event": deposit(1, 5000), "workflows": [big_deposits(), workflow.clone()]})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "work_budget_exceeded", "{body}");
    // One rule in the first, then the tenth of the second is the eleventh.
    assert_eq!(body["error"]["path"], "/workflows/1/conditions/rules/9", "{body}");
    let (status, body) = call(
        state(&test.db, small()),
        "POST",
        "/api/v1/workflows/validate",
        Some(workflow),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["path"], "/conditions/rules/10", "{body}");
    let (status, body) = call(
        state(&test.db, pool(Api::default())),
        "POST",
        "/api/v1/workflows/validate",
        Some(regex_workflow(200)),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["path"], "/conditions/rules/128/value", "{body}");
    test.finish().await;
}

#[actix_rt::test]
async fn a_backtest_asking_for_more_events_than_the_budget_is_refused_at_limit() {
    let test = common::fresh().await;
    archive_deposits(&test.db, 3).await;
    let budget = || {
        pool(Api {
            heavy_max_events: 100,
            ..Api::default()
        })
    };
    let (status, body) = call(
        state(&test.db, budget()),
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [big_deposits()], "limit": 101})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "work_budget_exceeded", "{body}");
    assert_eq!(body["error"]["path"], "/limit", "{body}");
    // Within it, and without a limit (the budget, below the default 10,000), it runs.
    for body in [
        json!({"workflows": [big_deposits()], "limit": 100}),
        json!({"workflows": [big_deposits()]}),
    ] {
        let (status, body) = call(state(&test.db, budget()), "POST", "/api/v1/backtest", Some(body)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["events"], 3, "{body}");
        assert_eq!(body["workflows"][0]["matched"], 1, "{body}");
    }
    test.finish().await;
}

#[actix_rt::test]
async fn a_backtest_past_its_time_budget_answers_503() {
    let test = common::fresh().await;
    archive_deposits(&test.db, 5).await;
    // Time moves only when the test says: each CPU-bound part of the request finds the
    // clock 300 ms later. Validating the drafts, the saved ones and compiling fit in the
    // 1 s budget; judging the first page of events does not.
    let manual = ManualClock::new(common::t0());
    let ticking = manual.clone();
    let parts = Arc::new(AtomicUsize::new(0));
    let counted = parts.clone();
    let heavy = Heavy::new(
        &Api {
            heavy_timeout_ms: 1_000,
            ..Api::default()
        },
        Arc::new(manual),
    )
    .with_probe(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        ticking.advance(Duration::from_millis(300));
    });
    let (status, body) = call(
        state(&test.db, heavy),
        "POST",
        "/api/v1/backtest",
        Some(json!({"workflows": [big_deposits()]})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "time_budget_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("time budget exceeded: the work ran past its 1000 ms"),
        "{body}"
    );
    assert_eq!(parts.load(Ordering::SeqCst), 4, "stopped at the first page, not before");
    test.finish().await;
}

#[actix_rt::test]
async fn the_engine_keeps_consuming_while_the_pool_is_full() {
    // No archiving of the live event: the backtests read exactly the three archived here.
    let mut engine = engine::Engine::new(|s| s.archive.enabled = false).await;
    engine.add_customers([7]).await;
    engine
        .add_workflow(json!({"name": "notes deposits", "trigger_event": "customer.deposited",
            "actions": [{"type": "add_note", "params": {"body": "deposit"}}]}))
        .await;
    engine.start().await;
    let db = engine.db().clone();
    archive_deposits(&db, 3).await;
    let door = Door::default();
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let waiting = door.clone();
    let heavy = pool(Api::default()).with_probe(move || {
        let _ = entered_tx.send(());
        waiting.wait();
    });
    let state = state(&db, heavy);
    let app = atest::init_service(
        App::new().configure(move |cfg| api::configure(cfg, state, 4 << 20, Option::<String>::None)),
    )
    .await;
    let held = futures_util::future::join(
        async {
            send!(
                &app,
                "POST",
                "/api/v1/backtest",
                Some(json!({"workflows": [big_deposits()]}))
            )
        },
        async { send!(&app, "POST", "/api/v1/backtest", Some(json!({}))) },
    );
    let opener = OpenOnDrop(door.clone());
    let meanwhile = async {
        entered.recv().await.unwrap();
        entered.recv().await.unwrap();
        // Both backtests are in their CPU-bound part and hold no connection: the engine
        // reads, plans and records an event, and writes its note, meanwhile.
        engine
            .publish(
                &json!({"id": "live-dep", "type": "customer.deposited", "customer_id": 7,
                             "data": {"amount": 2500}}),
            )
            .await;
        let notes = eventually!("the engine's note for the live event", engine::PATIENCE, {
            let notes = engine::note_bodies(&db, 7).await;
            (!notes.is_empty()).then_some(notes)
        });
        assert_eq!(notes, ["deposit"]);
        let (status, _, _) = send!(&app, "GET", "/healthz", None);
        assert_eq!(status, 200);
        drop(opener);
    };
    let ((first, second), ()) = futures_util::future::join(held, meanwhile).await;
    assert_eq!(first.0, 200, "{}", first.2);
    assert_eq!(first.2["events"], 3, "{}", first.2);
    assert_eq!(second.0, 200, "{}", second.2);
    engine.finish().await;
}
