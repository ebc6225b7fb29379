//! Security issue 22's acceptance check: every hostile input the review found, sent at
//! once by holders of each scope, against the built binary on its embedded defaults
//! (SQLite, the in-process broker) with its address space capped at 1 GiB. The engine
//! must refuse each one the way its own test says, answer /healthz throughout, stay up,
//! and still run an honest event afterwards.
//!
//! The findings' own tests (tests/templates.rs, tests/security.rs, tests/heavy.rs,
//! tests/guards.rs, tests/secrets.rs) prove each refusal in detail; this one proves they
//! hold together, under a memory cap, in one process.

#[path = "common/attacks.rs"]
mod attacks;
mod common;
#[path = "common/process.rs"]
mod process;

use attacks::{doubling_loops, filter_chain, regex_workflow};
use process::{eventually, Engine, Scratch};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The cap the issue names.
const ONE_GIB: u64 = 1 << 30;
/// Bounds waits for readiness and for the honest run; generous on a shared machine.
const SETTLE: Duration = Duration::from_secs(60);
/// How long one /healthz may take before it counts as not answered: far above any
/// healthy answer, far below the minutes a stalled worker used to take.
const HEALTH_PATIENCE: Duration = Duration::from_secs(10);

const TOKENS: &str = r#"
[[auth.tokens]]
name = "reader"
token = "t-read"
scopes = ["read"]
[[auth.tokens]]
name = "author"
token = "t-write"
scopes = ["read", "write"]
[[auth.tokens]]
name = "producer"
token = "t-events"
scopes = ["events"]
"#;

fn note_after_delay(body: &str) -> Value {
    json!({"name": "bomb", "trigger_event": "customer.deposited",
           "actions": [{"type": "delay", "params": {"minutes": 1}},
                       {"type": "add_note", "params": {"body": body}}]})
}

/// A workflow whose actions emit its own trigger three times (finding 4).
fn fan_out() -> Value {
    let freeze = json!({"type": "freeze_account", "params": {"reason": "review"}});
    json!({"name": "fan-out", "trigger_event": "compliance.freeze_requested", "actions": vec![freeze; 3]})
}

/// Polls /healthz until `stop`, counting answers and failures (no answer within
/// [`HEALTH_PATIENCE`], or not 200).
async fn watch_health(base: String, stop: Arc<AtomicBool>, answered: Arc<AtomicUsize>, failed: Arc<AtomicUsize>) {
    let client = awc::Client::builder().timeout(HEALTH_PATIENCE).finish();
    while !stop.load(Ordering::Relaxed) {
        let response = client.get(format!("{base}/healthz")).force_close().send().await;
        match response {
            Ok(r) if r.status().as_u16() == 200 => answered.fetch_add(1, Ordering::Relaxed),
            _ => failed.fetch_add(1, Ordering::Relaxed),
        };
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// POSTs a heavy request (dry run, backtest, save) until it is not turned away as busy:
/// beyond `api.heavy_concurrency` the pool answers 429, and what is wanted here is each
/// attack's own answer. Waits a second between tries, less than the `Retry-After`.
async fn heavy(api: &process::Api, path: &str, body: &Value) -> (u16, Value) {
    for _ in 0..120 {
        let (status, answer) = api.post(path, body).await;
        if status != 429 {
            return (status, answer);
        }
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{path} stayed busy for two minutes");
}

/// The error code of a refused request, for the assertion messages.
fn code(body: &Value) -> String {
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
}

#[actix_rt::test]
async fn every_finding_at_once_under_a_1_gib_cap_with_healthz_answering() {
    let scratch = Scratch::new("hostile");
    let config = scratch.path().join("tokens.toml");
    std::fs::write(&config, TOKENS).expect("writing the token config");
    let mut env = process::base_env(scratch.path(), "embedded");
    env.push(("WFE_CONFIG".into(), config.display().to_string()));
    let engine = Engine::start_capped(scratch.path(), "capped", &env, ONE_GIB).await;
    engine.ready(SETTLE).await;
    let open = engine.api();
    let (reader, author, producer) = (
        open.with_token(Some("t-read")),
        open.with_token(Some("t-write")),
        open.with_token(Some("t-events")),
    );

    // An honest workflow, for the check that the engine still works afterwards.
    let (status, honest) = author
        .post(
            "/api/v1/workflows",
            &json!({"name": "honest", "trigger_event": "customer.deposited",
                    "actions": [{"type": "add_note", "params": {"body": "deposit {{event.amount}}"}}]}),
        )
        .await;
    assert_eq!(status, 201, "{honest}");
    let honest = honest["id"].as_str().expect("an id").to_owned();
    let (status, answer) = author.put("/api/v1/customers/4", &json!({"first_name": "Ana"})).await;
    assert_eq!(status, 201, "{answer}");

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let watcher = actix_rt::spawn(watch_health(
        engine.api_base().to_owned(),
        Arc::clone(&stop),
        Arc::clone(&answered),
        Arc::clone(&failed),
    ));

    let event = json!({"id": "probe", "type": "customer.deposited", "customer_id": 1, "data": {"x": "ab"}});
    let templates = async {
        // Finding 1: from a read token (dry run) and a write token (saved behind a delay).
        for body in [doubling_loops(40), filter_chain(40)] {
            let dry_run = json!({"event": event, "workflows": [note_after_delay(&body)]});
            let (status, answer) = heavy(&reader, "/api/v1/dry-run", &dry_run).await;
            assert_eq!(status, 422, "dry run of a growing template: {answer}");
            let (status, answer) = heavy(&author, "/api/v1/workflows", &note_after_delay(&body)).await;
            assert_eq!(status, 422, "saving a growing template: {answer}");
        }
    };
    let routes = async {
        // Finding 2: a write token on admin and events routes, one letter percent-encoded.
        for path in ["/api/v1/runs/1/%72etry", "/api/v1/runs/%63ancel", "/api/v1/%65vents"] {
            let (status, answer) = author
                .post(path, &json!({"id": "x", "type": "t", "customer_id": 1}))
                .await;
            assert!(matches!(status, 403..=405), "{path}: {status} {answer}");
        }
    };
    let budgets = async {
        // Finding 3: three backtests and a dry run of a thousand regex rules at once.
        let backtest = json!({"workflows": [regex_workflow(1000)]});
        let dry_run = json!({"event": event, "workflows": [regex_workflow(1000)]});
        let (a, b, c, d) = futures_util::join!(
            heavy(&reader, "/api/v1/backtest", &backtest),
            heavy(&reader, "/api/v1/backtest", &backtest),
            heavy(&reader, "/api/v1/backtest", &backtest),
            heavy(&reader, "/api/v1/dry-run", &dry_run)
        );
        for (status, answer) in [a, b, c, d] {
            assert_eq!(
                (status, code(&answer)),
                (422, "work_budget_exceeded".to_owned()),
                "{answer}"
            );
        }
    };
    let cascade = async {
        // Finding 4.
        let (status, answer) = heavy(&author, "/api/v1/workflows", &fan_out()).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["path"], "/actions/1", "{answer}");
    };
    let field = async {
        // Finding 7: one 15 MiB field through the import.
        let line = json!({"id": 9, "first_name": "Big", "custom": {"notes": "y".repeat(15 << 20)}}).to_string();
        let mut response = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish()
            .post(format!("{}/api/v1/customers/import", engine.api_base()))
            .insert_header(("Authorization", "Bearer t-write"))
            .insert_header(("Content-Type", "application/x-ndjson"))
            .force_close()
            .send_body(line)
            .await
            .expect("the import answers");
        let body: Value = response.json().limit(1 << 20).await.expect("a JSON answer");
        assert_eq!(response.status().as_u16(), 200, "{body}");
        assert_eq!(body["upserted"], 0, "{body}");
    };
    let events = async {
        // Event types a producer makes up (label cardinality) and a forged cause.
        for n in 0..300 {
            let envelope = json!({"id": format!("made-up-{n}"), "type": format!("made.up.{n}"), "customer_id": 2});
            let (status, answer) = producer.post("/api/v1/events", &envelope).await;
            assert_eq!(status, 202, "{answer}");
        }
        let forged = json!({"id": "forged", "type": "customer.deposited", "customer_id": 3,
                            "cause": {"event_id": "x", "workflow_id": "honest", "depth": 1}});
        let (status, answer) = producer.post("/api/v1/events", &forged).await;
        assert_eq!(status, 202, "{answer}");
    };
    futures_util::join!(templates, routes, budgets, cascade, field, events);

    // The honest event runs.
    let (status, answer) = producer
        .post(
            "/api/v1/events",
            &json!({"id": "honest-1", "type": "customer.deposited", "customer_id": 4, "data": {"amount": 50}}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    eventually("the honest event's run", SETTLE, || async {
        let runs = reader.runs_of(&honest).await;
        runs.iter()
            .any(|r| r["event_id"] == "honest-1" && r["status"] == "done")
            .then_some(())
    })
    .await;
    let (status, metrics) = open.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(!metrics.contains("made.up."), "made-up event types are no label values");

    stop.store(true, Ordering::Relaxed);
    watcher.await.expect("the health watcher");
    let (answered, failed) = (answered.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(answered > 0, "/healthz was asked");
    assert_eq!(
        failed, 0,
        "/healthz went unanswered {failed} times ({answered} answered)"
    );
    let (status, _) = open.get("/healthz").await;
    assert_eq!(status, 200, "the capped engine is still up: {}", engine.log_tail(30));
}
