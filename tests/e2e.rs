//! End to end: the built `workflow-engine` binary as a black box (testing tier 4).
//!
//! Each test starts the binary as a child process on a free port with a temporary SQLite
//! file, pointed at a Kafka broker (librdkafka's mock cluster) held by the test process, so
//! the broker outlives an engine that is stopped or killed. The engine is driven only
//! through its HTTP API and a Kafka producer, and the results are read through the API.
//! Webhook targets are a local HTTP listener in the test. Waits poll with deadlines; no
//! assertion is about timing.

#[path = "common/process.rs"]
mod process;

use awc::http::Method;
use process::{command, eventually, Api, Broker, Engine, Listener, Scratch};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};
use workflow_engine::outbound::signing::verify;

/// Bounds waits for the engine to be ready and for runs to finish. Generous: the machine
/// is shared, and a consumer that replaces a killed one waits out the old session (10 s).
const READY: Duration = Duration::from_secs(45);
const SETTLE: Duration = Duration::from_secs(45);

/// Starts an engine on `broker` with the test defaults plus `extra`.
async fn engine(scratch: &Scratch, broker: &Broker, name: &str, extra: &[(&str, &str)]) -> Engine {
    let mut env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Engine::start(scratch.path(), name, &env).await
}

/// The `details[*].path` of a 422.
fn detail_paths(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .map(|d| d.iter().filter_map(|p| p["path"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Waits until `workflow_id` has `count` runs, all done (a failed run fails the test).
async fn finished_runs(api: &Api, workflow_id: &str, count: usize) -> Vec<Value> {
    process::finished_runs(api, workflow_id, count, SETTLE).await
}

// 1. ------------------------------------------------------------------------------------

/// The README's tour through the API: create, read, change (versions, optimistic
/// concurrency), send an event through POST /api/v1/events, see the run done and the
/// webhook received with its idempotency key, delete.
#[actix_rt::test]
async fn five_minute_tour() {
    let scratch = Scratch::new("tour");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let engine = engine(&scratch, &broker, "tour", &[]).await;
    let api = engine.api();

    let draft = json!({
        "name": "Tell the desk about deposits",
        "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000}]},
        "actions": [{"type": "webhook", "params": {"url": format!("{}/desk", listener.base)}}],
        "priority": 10
    });
    let (status, created) = api.post("/api/v1/workflows", &draft).await;
    assert_eq!(status, 201, "create: {created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(!id.is_empty());
    assert_eq!(created["version"], 1, "{created}");
    assert_eq!(created["active"], true, "{created}");

    let (status, got) = api.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["name"], "Tell the desk about deposits");
    assert_eq!(got["version"], 1);

    // PUT what was read, changed: a new version.
    let mut change = got.clone();
    change["name"] = json!("Tell the desk about big deposits");
    change["priority"] = json!(5);
    let (status, updated) = api.put(&format!("/api/v1/workflows/{id}"), &change).await;
    assert_eq!(status, 200, "update: {updated}");
    assert_eq!(updated["version"], 2, "{updated}");
    assert_eq!(updated["priority"], 5);

    // The same stale copy again: someone saved in between.
    let (status, stale) = api.put(&format!("/api/v1/workflows/{id}"), &change).await;
    assert_eq!(status, 409, "stale update: {stale}");
    assert_eq!(stale["error"]["code"], "conflict", "{stale}");

    let (status, versions) = api.get(&format!("/api/v1/workflows/{id}/versions")).await;
    assert_eq!(status, 200, "{versions}");
    let listed: Vec<(i64, String)> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_i64().unwrap(), v["change"].as_str().unwrap().to_owned()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        [(1, "created".to_owned()), (2, "updated".to_owned())],
        "{versions}"
    );

    // Two events of a customer the database does not know (a webhook needs no CRM row):
    // the first does not meet the condition, the second does. One customer's events run in
    // order, so once the second's run is done the first was evaluated too.
    engine.ready(READY).await;
    let customer_id = 424_242;
    for (event_id, amount) in [("tour-small", 10), ("tour-big", 1500)] {
        let envelope = json!({"id": event_id, "type": "customer.deposited", "customer_id": customer_id,
                              "data": {"amount": amount, "currency": "USD"}});
        let (status, published) = api.post("/api/v1/events", &envelope).await;
        assert_eq!(status, 202, "publish: {published}");
        assert_eq!(published["id"], event_id);
        assert_eq!(published["topic"], process::TOPIC);
        assert!(published["offset"].as_i64().is_some(), "{published}");
    }
    let runs = finished_runs(&api, &id, 1).await;
    let run = &runs[0];
    assert_eq!(run["event_id"], "tour-big", "{run:#}");
    assert_eq!(run["customer_id"], customer_id);
    assert_eq!(run["workflow_version"], 2, "the event ran the current version: {run:#}");
    assert_eq!(run["steps"][0]["type"], "webhook");
    assert_eq!(run["steps"][0]["status"], "done");
    assert_eq!(run["steps"][0]["result"]["http_status"], 200, "{run:#}");

    let received = listener.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].path, "/desk");
    let key = received[0]
        .idempotency_key
        .as_deref()
        .expect("an Idempotency-Key header");
    assert_eq!(key, format!("run-{}-step-0", run["id"]), "the key is run id + step");
    assert_eq!(received[0].body["workflow_id"], id.as_str(), "{:#}", received[0].body);
    assert_eq!(received[0].body["event"]["id"], "tour-big");

    let (status, body) = api.delete(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(status, 204, "delete: {body}");
    let (status, gone) = api.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(status, 404, "{gone}");
    assert_eq!(gone["error"]["code"], "not_found");
    let (_, all) = api.get("/api/v1/workflows").await;
    assert!(
        !all["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == id.as_str()),
        "{all}"
    );
    // Its history stays.
    let (status, versions) = api.get(&format!("/api/v1/workflows/{id}/versions")).await;
    assert_eq!(status, 200);
    assert!(
        versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["change"] == "deleted"),
        "{versions}"
    );
    assert_eq!(api.runs_of(&id).await.len(), 1, "the run history stays");
}

// 2. ------------------------------------------------------------------------------------

/// Bad input gets a clear 4xx with JSON pointers: every problem of a workflow, the same
/// on /validate, the parser's message for malformed JSON, an envelope without its
/// customer, and a body over the configured limit.
#[actix_rt::test]
async fn validation_errors_name_the_bad_fields() {
    let scratch = Scratch::new("validation");
    let broker = Broker::start();
    let engine = engine(&scratch, &broker, "validation", &[("WFE__HTTP__BODY_LIMIT", "4096")]).await;
    let api = engine.api();

    let invalid = json!({
        "name": "Broken",
        "trigger_event": "customer.deposited",
        "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "bigger_than", "value": 1}]},
        "actions": [{"type": "assign_to_team", "params": {}}]
    });
    for path in ["/api/v1/workflows", "/api/v1/workflows/validate"] {
        let (status, body) = api.post(path, &invalid).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
        let paths = detail_paths(&body);
        for expected in ["/conditions/rules/0/operator", "/actions/0/params/team_id"] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{path}: no {expected} in {paths:?}: {body:#}"
            );
        }
        assert!(body["error"]["path"].is_string(), "{body}");
    }
    let (_, list) = api.get("/api/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]), "nothing invalid was stored");

    // A valid one on /validate: 200, nothing stored.
    let valid = json!({"name": "Fine", "trigger_event": "customer.deposited",
                       "actions": [{"type": "add_note", "params": {"body": "ok"}}]});
    let (status, body) = api.post("/api/v1/workflows/validate", &valid).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    let (_, list) = api.get("/api/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]), "validate stores nothing");

    // Malformed JSON: 400 with the parser's message (line and column).
    let (status, body) = api
        .send_raw(Method::POST, "/api/v1/workflows", r#"{"name": "x", "#)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 1 column"), "not the parser's message: {message}");

    // An envelope without customer_id.
    let (status, body) = api
        .post(
            "/api/v1/events",
            &json!({"id": "e-1", "type": "customer.deposited", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(detail_paths(&body).iter().any(|p| p == "/customer_id"), "{body:#}");

    // Over the body limit (4096 bytes here): refused before it is parsed, 413 naming the
    // limit.
    let big = json!({"name": "x".repeat(8000), "trigger_event": "customer.deposited", "actions": []});
    let (status, body) = api.post("/api/v1/workflows", &big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("4096"), "the message names the limit: {message}");
}

/// Hostile conditions through the API: a 10,000-deep tree, a tree past the depth limit, a
/// regex past the length and the compiled-size limits, and a backtracking classic run
/// against a long input. Each gets a clear error naming the bad field, or (the classic) a
/// plain answer, and the engine keeps serving.
#[actix_rt::test]
async fn malicious_conditions_get_clear_errors_and_the_engine_keeps_running() {
    let scratch = Scratch::new("malicious");
    let broker = Broker::start();
    let engine = engine(&scratch, &broker, "malicious", &[]).await;
    let api = engine.api();
    let note = json!([{"type": "add_note", "params": {"body": "x"}}]);
    let rule = json!({"field": "event.amount", "operator": "gt", "value": 1});
    let nested = |depth: usize| (0..depth).fold(rule.clone(), |inner, _| json!({"not": inner}));
    let workflow = |conditions: Value| json!({"name": "hostile", "trigger_event": "customer.deposited", "conditions": conditions, "actions": note});

    // 10,000 levels (20,000 of JSON): the parser refuses it before anything walks it.
    let deep = format!(
        r#"{{"name": "deep", "trigger_event": "customer.deposited", "actions": [], "conditions": {}{}{}}}"#,
        r#"{"not": "#.repeat(10_000),
        rule,
        "}".repeat(10_000)
    );
    let (status, body) = api.send_raw(Method::POST, "/api/v1/workflows", deep).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("recursion limit"), "{message}");

    // 40 levels: valid JSON, past the condition depth limit (32): 422 at the first node
    // too deep.
    let (status, body) = api.post("/api/v1/workflows", &workflow(nested(40))).await;
    assert_eq!(status, 422, "{body}");
    let too_deep = format!("/conditions{}", "/not".repeat(32));
    assert!(detail_paths(&body).contains(&too_deep), "no {too_deep} in {body:#}");

    let regex = |pattern: String| workflow(json!({"field": "customer.email", "operator": "regex", "value": pattern}));
    let (status, body) = api.post("/api/v1/workflows", &regex("a".repeat(2_000))).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        detail_paths(&body).contains(&"/conditions/value".to_owned()),
        "{body:#}"
    );
    assert!(body.to_string().contains("longer than 1000"), "{body:#}");
    let (status, body) = api
        .post("/api/v1/workflows", &regex(r"(\w{100}){100}".to_owned()))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        detail_paths(&body).contains(&"/conditions/value".to_owned()),
        "{body:#}"
    );

    // The classic catastrophic pattern is harmless here (the regex crate runs in linear
    // time): the dry run answers, without a match, over 100,000 characters.
    let request = json!({
        "event": {"id": "dry-regex", "type": "customer.deposited", "customer_id": 1, "data": {}},
        "customer": {"id": 1, "email": format!("{}!", "a".repeat(100_000))},
        "workflows": [regex("^(a+)+$".to_owned())]
    });
    let (status, body) = api.post("/api/v1/dry-run", &request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plan"], json!([]), "{body}");

    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, 200, "still serving");
    let (_, list) = api.get("/api/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]), "nothing hostile was stored");
}

// 3. ------------------------------------------------------------------------------------

/// The dry run answers what would run, in order, with the trace of what each rule saw,
/// for a supplied customer and supplied drafts, and records nothing.
#[actix_rt::test]
async fn dry_run_plans_and_traces_without_side_effects() {
    let scratch = Scratch::new("dry-run");
    let broker = Broker::start();
    let engine = engine(&scratch, &broker, "dry-run", &[]).await;
    let api = engine.api();

    let note = json!([{"type": "add_note", "params": {"body": "hi"}}]);
    let request = json!({
        "event": {"id": "dry-1", "type": "customer.deposited", "customer_id": 77,
                  "data": {"amount": 5000, "currency": "USD"}},
        "customer": {"id": 77, "country": "BR", "email": "ana@example.com"},
        "workflows": [
            // draft-0: matches, and stops everything after it.
            {"name": "Big deposits, exclusive", "trigger_event": "customer.deposited", "priority": 20,
             "stop_after": true,
             "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": 1000}]},
             "actions": note},
            // draft-1: runs first (lower number).
            {"name": "Brazil", "trigger_event": "customer.deposited", "priority": 5,
             "conditions": {"match": "any", "rules": [{"field": "customer.country", "operator": "in", "value": ["BR", "AR"]}]},
             "actions": note},
            // draft-2: matches, but comes after the stop_after workflow.
            {"name": "Everyone", "trigger_event": "customer.deposited", "priority": 30,
             "conditions": {"match": "all", "rules": [{"field": "customer.email", "operator": "ends_with", "value": "@example.com"}]},
             "actions": note}
        ]
    });
    let (status, body) = api.post("/api/v1/dry-run", &request).await;
    assert_eq!(status, 200, "{body}");

    let plan: Vec<&str> = body["plan"]
        .as_array()
        .expect("plan")
        .iter()
        .map(|p| p["workflow_id"].as_str().unwrap())
        .collect();
    assert_eq!(plan, ["draft-1", "draft-0"], "execution order: {body:#}");
    assert_eq!(body["plan"][0]["actions"][0]["type"], "add_note");

    let evaluated: BTreeMap<&str, &Value> = body["evaluated"]
        .as_array()
        .expect("evaluated")
        .iter()
        .map(|e| (e["workflow_id"].as_str().unwrap(), e))
        .collect();
    assert_eq!(evaluated.len(), 3, "{body:#}");
    for id in ["draft-0", "draft-1", "draft-2"] {
        assert_eq!(evaluated[id]["matched"], true, "{id}: {body:#}");
    }
    assert_eq!(evaluated["draft-0"]["skipped_by"], Value::Null);
    assert_eq!(evaluated["draft-1"]["skipped_by"], Value::Null);
    assert_eq!(evaluated["draft-2"]["skipped_by"], "draft-0", "{body:#}");

    let saw = |id: &str| evaluated[id]["trace"]["rules"][0]["saw"].clone();
    assert_eq!(saw("draft-0"), json!(5000), "{:#}", evaluated["draft-0"]);
    assert_eq!(saw("draft-1"), json!("BR"), "{:#}", evaluated["draft-1"]);
    assert_eq!(saw("draft-2"), json!("ana@example.com"), "{:#}", evaluated["draft-2"]);
    assert_eq!(evaluated["draft-0"]["trace"]["result"], true);
    assert_eq!(body["customer"]["country"], "BR", "the snapshot evaluated against");

    // A missing field is reported as such, and fails everything but is_empty.
    let mut missing = request.clone();
    missing["customer"] = json!({"id": 77});
    missing["workflows"] = json!([request["workflows"][1]]);
    let (status, body) = api.post("/api/v1/dry-run", &missing).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plan"], json!([]), "{body:#}");
    let rule = &body["evaluated"][0]["trace"]["rules"][0];
    assert_eq!(rule["missing"], true, "{rule}");
    assert_eq!(rule["result"], false, "{rule}");

    // No side effects: nothing recorded, no workflow stored.
    let (status, runs) = api.get("/api/v1/runs").await;
    assert_eq!(status, 200);
    assert_eq!(runs["runs"], json!([]), "{runs}");
    let (_, list) = api.get("/api/v1/workflows").await;
    assert_eq!(list["workflows"], json!([]));
}

// 4. ------------------------------------------------------------------------------------

/// Health, readiness, metrics, info and schema, as an operator or a builder UI sees them.
#[actix_rt::test]
async fn operational_endpoints() {
    let scratch = Scratch::new("ops");
    let broker = Broker::start();
    let engine = engine(&scratch, &broker, "ops", &[]).await;
    let api = engine.api();

    let (status, health) = api.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");

    engine.ready(READY).await;
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready,
        json!({"ready": true, "migrated": true, "database": true, "broker": true, "consumer": true,
               "partitions": [0, 1, 2, 3]}),
        "a lone process consumes every partition"
    );

    let (status, metrics) = api.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("wfe_mailbox_capacity"), "{metrics}");
    let version = format!("wfe_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(metrics.contains(&version), "{metrics}");
    for process_metric in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(metrics.contains(process_metric), "{process_metric} missing: {metrics}");
    }

    let (status, info) = api.get("/api/v1/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["kafka"]["bootstrap_servers"],
        broker.bootstrap_servers().as_str(),
        "{info}"
    );
    assert_eq!(info["kafka"]["embedded"], false, "{info}");
    assert_eq!(info["kafka"]["topic"], process::TOPIC);
    assert_eq!(info["database"], "sqlite", "{info}");
    assert_eq!(info["node_id"], "e2e-ops", "{info}");

    let (status, schema) = api.get("/api/v1/schema").await;
    assert_eq!(status, 200);
    let names = |key: &str| -> BTreeSet<String> {
        schema[key]
            .as_array()
            .unwrap_or_else(|| panic!("schema has no {key}"))
            .iter()
            .map(|v| v["name"].as_str().or(v["type"].as_str()).unwrap_or_default().to_owned())
            .collect()
    };
    let triggers = names("triggers");
    assert_eq!(triggers.len(), 11, "{triggers:?}");
    for t in [
        "customer.registered",
        "customer.inactive_days",
        "task.overdue",
        "call.no_answer",
    ] {
        assert!(triggers.contains(t), "{t} missing from {triggers:?}");
    }
    let operators = names("operators");
    assert_eq!(operators.len(), 16, "{operators:?}");
    for o in ["between", "regex", "is_not_empty", "not_contains"] {
        assert!(operators.contains(o), "{o} missing from {operators:?}");
    }
    let actions = schema["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 17, "{:#}", schema["actions"]);
}

// 5. ------------------------------------------------------------------------------------

/// With a token configured, /api/* needs it (a missing or wrong one gets a 401 JSON
/// error); health, readiness and metrics stay open.
#[actix_rt::test]
async fn bearer_token_guards_the_api() {
    let scratch = Scratch::new("auth");
    let broker = Broker::start();
    let token = "s3cret-e2e-token";
    let engine = engine(&scratch, &broker, "auth", &[("WFE__HTTP__AUTH_TOKEN", token)]).await;
    let open = engine.api();
    let authed = open.with_token(Some(token));
    let wrong = open.with_token(Some("not-the-token"));

    for api in [&open, &wrong] {
        let (status, body) = api.get("/api/v1/workflows").await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        let (status, _) = api
            .post("/api/v1/events", &json!({"id": "x", "type": "t", "customer_id": 1}))
            .await;
        assert_eq!(status, 401, "a write without the token");
    }
    let (status, body) = authed.get("/api/v1/workflows").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["workflows"], json!([]));

    let (status, _) = open.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, _) = open.get_text("/metrics").await;
    assert_eq!(status, 200);
    let (status, body) = open.get("/readyz").await;
    assert!(
        status == 200 || status == 503,
        "readiness is not behind the token: {status} {body}"
    );
}

/// Scoped tokens (docs/security.md): 401 without a known token, 403 without the route's
/// scope, the token's name as the author whatever X-Changed-By says, /metrics behind a
/// token when configured; health stays open. Also the API's input bounds.
#[actix_rt::test]
async fn scoped_tokens_and_input_bounds() {
    let scratch = Scratch::new("scopes");
    let broker = Broker::start();
    let digest = "a8e5edb5e1b94bb5d9f0bd1d76ea1fc0dbb9a22a2cbe5f2a0d10e2b3a5e5cbd7"; // not any token below
    let config = scratch.path().join("auth.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[auth]
protect_metrics = true
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
[[auth.tokens]]
name = "ops"
token = "t-admin"
scopes = ["admin"]
[[auth.tokens]]
name = "hashed"
token_sha256 = "{digest}"
scopes = ["read"]
"#
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let engine = engine(&scratch, &broker, "scopes", &[("WFE_CONFIG", config.as_str())]).await;
    let open = engine.api();
    let (reader, author, producer, ops) = (
        open.with_token(Some("t-read")),
        open.with_token(Some("t-write")),
        open.with_token(Some("t-events")),
        open.with_token(Some("t-admin")),
    );
    let draft = json!({"name": "scoped", "trigger_event": "customer.deposited",
                       "actions": [{"type": "add_note", "params": {"body": "hi"}}]});
    let envelope = json!({"id": "scoped-1", "type": "customer.deposited", "customer_id": 1});

    for api in [&open, &open.with_token(Some("unknown")), &open.with_token(Some(digest))] {
        let (status, body) = api.get("/api/v1/workflows").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{body}"
        );
    }
    let (status, _) = open.get_text("/metrics").await;
    assert_eq!(status, 401, "metrics are protected");
    let (status, _) = open.get("/healthz").await;
    assert_eq!(status, 200, "health stays open");

    let (status, body) = reader.get("/api/v1/workflows").await;
    assert_eq!(status, 200, "{body}");
    for (path, body) in [
        ("/api/v1/workflows", &draft),
        ("/api/v1/events", &envelope),
        ("/api/v1/runs/1/retry", &json!({})),
    ] {
        let (status, answer) = reader.post(path, body).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}: {answer}"
        );
    }
    let (status, body) = reader.post("/api/v1/workflows/validate", &draft).await;
    assert_eq!(status, 200, "validation is a read: {body}");
    let (status, body) = producer.get("/api/v1/workflows").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = producer.post("/api/v1/events", &envelope).await;
    assert_eq!(status, 202, "{body}");
    let (status, _) = reader.get_text("/metrics").await;
    assert_eq!(status, 200);

    // The author is the token's name; X-Changed-By cannot claim another.
    let response = awc::Client::default()
        .post(format!("{}/api/v1/workflows", engine.base))
        .insert_header(("Authorization", "Bearer t-write"))
        .insert_header(("X-Changed-By", "mallory"))
        .send_json(&draft)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let (_, list) = author.get("/api/v1/workflows").await;
    let id = list["workflows"][0]["id"].as_str().unwrap().to_owned();
    let (status, versions) = ops.get(&format!("/api/v1/workflows/{id}/versions")).await;
    assert_eq!(status, 200, "admin implies read: {versions}");
    assert_eq!(versions["versions"][0]["changed_by"], "author", "{versions}");

    // A statically too big template is a 422 naming the param.
    let mut bomb = draft.clone();
    bomb["actions"][0]["params"]["body"] = json!(r#"{% for i in range(1000) %}{{ "x" * 100000000 }}{% endfor %}"#);
    let (status, body) = author.post("/api/v1/workflows", &bomb).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(detail_paths(&body), ["/actions/0/params/body"], "{body}");

    // Input bounds: a capped limit, a long query, too many headers.
    let (status, body) = reader.get("/api/v1/runs?limit=1000000").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = reader
        .get(&format!("/api/v1/runs?workflow_id={}", "w".repeat(5000)))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (414, Some("query_too_long")),
        "{body}"
    );
    let mut request = awc::Client::default()
        .get(format!("{}/api/v1/workflows", engine.base))
        .insert_header(("Authorization", "Bearer t-read"));
    for i in 0..80 {
        request = request.insert_header((format!("x-filler-{i}"), "x"));
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 431);
}

/// A template that passes validation but renders past the output cap at run time fails
/// its step with the reason; the engine keeps running other workflows.
#[actix_rt::test]
async fn a_template_too_big_at_run_time_fails_its_step_and_the_engine_goes_on() {
    let scratch = Scratch::new("bomb");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let engine = engine(&scratch, &broker, "bomb", &[]).await;
    let api = engine.api();
    let hook = |name: &str, trigger: &str, path: &str, text: &str| {
        json!({"name": name, "trigger_event": trigger,
               "actions": [{"type": "webhook", "params": {"url": format!("{}{path}", listener.base),
                                                           "body": {"text": text}}}]})
    };
    // Five values within the value cap, together past the output cap (no loops since
    // issue 22: a template renders each of its substitutions once).
    let big = hook("big", "customer.deposited", "/big", &"{{ event.text }}".repeat(5));
    let (status, created) = api.post("/api/v1/workflows", &big).await;
    assert_eq!(status, 201, "{created}");
    let big_id = created["id"].as_str().unwrap().to_owned();
    engine.ready(READY).await;
    let envelope = json!({"id": "bomb-1", "type": "customer.deposited", "customer_id": 31337,
                          "data": {"text": "z".repeat(60_000)}});
    let (status, body) = api.post("/api/v1/events", &envelope).await;
    assert_eq!(status, 202, "{body}");
    let failed = eventually("the oversized run to fail", SETTLE, || async {
        let runs = api.runs_of(&big_id).await;
        runs.into_iter().find(|r| r["status"] == "failed")
    })
    .await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("longer than"), "{failed:#}");

    // The engine is still there and runs the next workflow.
    let small = hook("small", "customer.traded", "/small", "{{ event.text }}");
    let (status, created) = api.post("/api/v1/workflows", &small).await;
    assert_eq!(status, 201, "{created}");
    let small_id = created["id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .post(
            "/api/v1/events",
            &json!({"id": "bomb-2", "type": "customer.traded", "customer_id": 31338, "data": {"text": "ok"}}),
        )
        .await;
    assert_eq!(status, 202);
    finished_runs(&api, &small_id, 1).await;
    assert!(listener.received().iter().all(|r| r.path != "/big"));
}

/// Every header and the raw body of each request a local server got.
type Captured = std::sync::Arc<std::sync::Mutex<Vec<(BTreeMap<String, String>, String)>>>;

/// A webhook target that keeps all headers and the exact body bytes (signatures cover them).
fn capturing_listener() -> (String, Captured, actix_web::dev::ServerHandle) {
    let captured: Captured = Default::default();
    let inbox = captured.clone();
    let server = actix_web::HttpServer::new(move || {
        let inbox = inbox.clone();
        actix_web::App::new().default_service(actix_web::web::to(
            move |req: actix_web::HttpRequest, body: actix_web::web::Bytes| {
                let inbox = inbox.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    inbox
                        .lock()
                        .unwrap()
                        .push((headers, String::from_utf8_lossy(&body).into_owned()));
                    actix_web::HttpResponse::Ok().finish()
                }
            },
        ))
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
    (base, captured, handle)
}

/// Webhooks arrive signed per Standard Webhooks, by every configured secret (rotation),
/// with the engine's idempotency key as webhook-id; a workflow header cannot replace an
/// engine header (refused when the workflow is saved, with the header's pointer).
#[actix_rt::test]
async fn webhooks_are_signed_per_standard_webhooks_and_engine_headers_win() {
    let scratch = Scratch::new("signed");
    let broker = Broker::start();
    let (base, captured, server) = capturing_listener();
    let secrets = "whsec_bmV3LXNlY3JldC1rZXk= old-raw-secret";
    let engine = engine(
        &scratch,
        &broker,
        "signed",
        &[("WFE__DELIVERY__WEBHOOK_SECRET", secrets)],
    )
    .await;
    let api = engine.api();
    let hook = |trigger: &str, path: &str, headers: Value| {
        json!({"name": path, "trigger_event": trigger,
               "actions": [{"type": "webhook", "params": {"url": format!("{base}{path}"), "headers": headers,
                                                           "body": {"customer": "{{ event.who }}"}}}]})
    };
    let (status, good) = api
        .post(
            "/api/v1/workflows",
            &hook(
                "customer.deposited",
                "/good",
                json!({"X-Tenant": "acme-{{ event.who }}"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{good}");
    let (status, evil) = api
        .post(
            "/api/v1/workflows",
            &hook("customer.traded", "/evil", json!({"Idempotency-Key": "mine"})),
        )
        .await;
    assert_eq!(status, 422, "{evil}");
    assert_eq!(
        evil["error"]["details"][0]["path"], "/actions/0/params/headers/Idempotency-Key",
        "{evil}"
    );
    engine.ready(READY).await;
    for (id, kind) in [("signed-1", "customer.deposited"), ("signed-2", "customer.traded")] {
        let envelope = json!({"id": id, "type": kind, "customer_id": 777, "data": {"who": "ana"}});
        let (status, body) = api.post("/api/v1/events", &envelope).await;
        assert_eq!(status, 202, "{body}");
    }
    let runs = finished_runs(&api, good["id"].as_str().unwrap(), 1).await;

    let got = captured.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the good webhook was sent: {got:?}");
    let (headers, body) = &got[0];
    assert_eq!(body, r#"{"customer":"ana"}"#);
    assert_eq!(headers["x-tenant"], "acme-ana");
    assert_eq!(headers["content-type"], "application/json");
    let key = format!("run-{}-step-0", runs[0]["id"]);
    assert_eq!(headers["idempotency-key"], key);
    assert_eq!(headers["webhook-id"], key);
    let timestamp: i64 = headers["webhook-timestamp"].parse().expect("a unix timestamp");
    let signature = &headers["webhook-signature"];
    assert_eq!(signature.split(' ').count(), 2, "one signature per secret: {signature}");
    for secret in ["whsec_bmV3LXNlY3JldC1rZXk=", "old-raw-secret"] {
        assert!(
            verify(secret, &key, timestamp, body.as_bytes(), signature),
            "{secret} verifies {signature}"
        );
    }
    assert!(!verify(
        "whsec_bmV3LXNlY3JldC1rZXk=",
        &key,
        timestamp + 1,
        body.as_bytes(),
        signature
    ));
    assert!(!headers.contains_key("x-signature"));
    server.stop(false).await;
}

// 6. ------------------------------------------------------------------------------------

/// webhook → delay → webhook to the test's listener, for an event produced to the topic.
fn delayed_chain(listener: &Listener) -> Value {
    json!({
        "id": "delayed-chain",
        "name": "Ping, wait, ping again",
        "trigger_event": "customer.deposited",
        "actions": [
            {"type": "webhook", "params": {"url": format!("{}/before", listener.base)}},
            {"type": "delay", "params": {"minutes": 10}},
            {"type": "webhook", "params": {"url": format!("{}/after", listener.base)}}
        ]
    })
}

/// Every delay lasts this long in the restart and crash tests: long enough that the delay
/// is still pending when the engine stops (checked, not assumed), short enough for a test.
const DELAY_ENV: [(&str, &str); 2] = [
    ("WFE__SCHEDULER__DELAY_OVERRIDE_SECS", "6"),
    // A claim left by a killed process is taken over after this long.
    ("WFE__SCHEDULER__LEASE_SECS", "5"),
];

/// The first half of the restart and crash tests: the chain is recorded, its first webhook
/// delivered, and its delay parked in the database.
async fn park_a_delayed_chain(api: &Api, broker: &Broker, listener: &Listener, customer_id: i64) {
    let (status, body) = api.post("/api/v1/workflows", &delayed_chain(listener)).await;
    assert_eq!(status, 201, "{body}");
    broker
        .produce(
            &json!({"id": format!("delay-{customer_id}"), "type": "customer.deposited",
                         "customer_id": customer_id, "data": {"amount": 100}}),
        )
        .await;
    let scheduled = eventually("the delay to be scheduled", SETTLE, || async {
        let (status, body) = api.get("/api/v1/scheduled").await;
        assert_eq!(status, 200, "{body}");
        let items = body["scheduled"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(scheduled.len(), 1, "{scheduled:#?}");
    assert_eq!(scheduled[0]["customer_id"], customer_id);
    let runs = api.runs_of("delayed-chain").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "waiting", "{:#}", runs[0]);
    assert_eq!(runs[0]["steps"][0]["status"], "done", "{:#}", runs[0]);
}

/// The second half: the new process finishes the chain; the listener got exactly the two
/// webhooks, each with its own key.
async fn chain_completes_after_restart(api: &Api, listener: &Listener) {
    let runs = finished_runs(api, "delayed-chain", 1).await;
    let steps = runs[0]["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{:#}", runs[0]);
    assert!(steps.iter().all(|s| s["status"] == "done"), "{:#}", runs[0]);
    let received = listener.received();
    let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/before", "/after"], "{received:#?}");
    let keys: BTreeSet<_> = received
        .iter()
        .map(|r| r.idempotency_key.clone().expect("a key"))
        .collect();
    assert_eq!(keys.len(), 2, "distinct idempotency keys: {keys:?}");
    let run_id = &runs[0]["id"];
    assert!(keys.contains(&format!("run-{run_id}-step-0")), "{keys:?}");
    assert!(keys.contains(&format!("run-{run_id}-step-2")), "{keys:?}");
    let (_, scheduled) = api.get("/api/v1/scheduled").await;
    assert_eq!(scheduled["scheduled"], json!([]), "nothing left scheduled");
}

/// A graceful stop (SIGTERM) while a delay is pending: exit code 0, and a new process on
/// the same database and broker resumes the chain where it stopped.
#[actix_rt::test]
async fn restart_resumes_a_pending_delay() {
    let scratch = Scratch::new("restart");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let mut first = engine(&scratch, &broker, "before-restart", &DELAY_ENV).await;
    first.ready(READY).await;
    park_a_delayed_chain(&first.api(), &broker, &listener, 601).await;

    let status = first.terminate(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "graceful stop: {status}");
    assert_eq!(
        listener.count(),
        1,
        "the delay was still pending when the first process stopped"
    );

    let second = engine(&scratch, &broker, "after-restart", &DELAY_ENV).await;
    chain_completes_after_restart(&second.api(), &listener).await;
}

// 7. ------------------------------------------------------------------------------------

/// A crash (SIGKILL) while a delay is pending: the next process resumes it.
#[actix_rt::test]
async fn crash_with_a_pending_delay_resumes_it() {
    let scratch = Scratch::new("crash-delay");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let mut first = engine(&scratch, &broker, "before-crash", &DELAY_ENV).await;
    first.ready(READY).await;
    park_a_delayed_chain(&first.api(), &broker, &listener, 701).await;

    first.crash();
    assert_eq!(listener.count(), 1, "the delay was still pending at the crash");

    let second = engine(&scratch, &broker, "after-crash", &DELAY_ENV).await;
    chain_completes_after_restart(&second.api(), &listener).await;
}

/// Journeys across kill -9: two runs wait for their customer's next deposit when the
/// process is killed. After a restart on the same database and broker, one customer
/// deposits and the other never does: every wait ends exactly once, the receiver got one
/// request per customer, the one its wait step recorded, and the one that never deposited
/// timed out.
#[actix_rt::test]
async fn crash_while_runs_wait_for_an_event_ends_each_wait_once() {
    let scratch = Scratch::new("crash-wait");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let env = [
        ("WFE__SCHEDULER__DELAY_OVERRIDE_SECS", "20"),
        ("WFE__SCHEDULER__LEASE_SECS", "5"),
    ];
    let mut first = engine(&scratch, &broker, "wait-before-crash", &env).await;
    first.ready(READY).await;
    let api = first.api();
    let journey = json!({"id": "journey", "name": "first deposit", "trigger_event": "customer.registered",
        "actions": [{"type": "wait_for_event", "name": "deposit", "params": {
            "event": "customer.deposited", "timeout": {"days": 3},
            "on_event": [{"type": "webhook", "params": {"url": format!("{}/event", listener.base)}}],
            "on_timeout": [{"type": "webhook", "params": {"url": format!("{}/timeout", listener.base)}}]}}]});
    let (status, body) = api.post("/api/v1/workflows", &journey).await;
    assert_eq!(status, 201, "{body}");
    for customer in [801, 802] {
        broker
            .produce(&json!({"id": format!("reg-{customer}"), "type": "customer.registered",
                "customer_id": customer, "data": {}}))
            .await;
    }
    eventually("both runs to wait", SETTLE, || async {
        let runs = api.runs_of("journey").await;
        (runs.len() == 2 && runs.iter().all(|r| r["status"] == "waiting")).then_some(())
    })
    .await;
    first.crash();

    let second = engine(&scratch, &broker, "wait-after-crash", &env).await;
    let api = second.api();
    broker
        .produce(&json!({"id": "dep-801", "type": "customer.deposited", "customer_id": 801, "data": {"amount": 5}}))
        .await;
    let runs = finished_runs(&api, "journey", 2).await;
    let received = listener.received();
    for run in &runs {
        let customer = run["customer_id"].as_i64().unwrap();
        let wait = &run["steps"][0];
        let timed_out = wait["result"]["timed_out"].as_bool().expect("an outcome");
        let paths: Vec<&str> = received
            .iter()
            .filter(|r| r.body["event"]["customer_id"] == customer)
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [if timed_out { "/timeout" } else { "/event" }],
            "customer {customer}: {run:#}"
        );
        assert_eq!(
            run["steps"].as_array().unwrap().len(),
            2,
            "only the path taken: {run:#}"
        );
        if customer == 802 {
            assert!(timed_out, "802 never deposited: {run:#}");
        }
    }
}

/// A crash in the middle of a burst of 50 events: after a restart every event's run is
/// done and every idempotency key was delivered; a key is delivered again only across the
/// crash (its first delivery's outcome was not committed), never twice by one process.
#[actix_rt::test]
async fn crash_mid_burst_loses_nothing() {
    const EVENTS: usize = 50;
    let scratch = Scratch::new("crash-burst");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let mut first = engine(&scratch, &broker, "burst-before-crash", &[]).await;
    let api = first.api();
    first.ready(READY).await;
    let workflow = json!({
        "id": "burst-hook", "name": "Every deposit to the hook", "trigger_event": "customer.deposited",
        "actions": [{"type": "webhook", "params": {"url": format!("{}/burst", listener.base)}}]
    });
    let (status, body) = api.post("/api/v1/workflows", &workflow).await;
    assert_eq!(status, 201, "{body}");

    let sends = (0..EVENTS).map(|i| {
        let envelope = json!({"id": format!("burst-{i}"), "type": "customer.deposited",
                              "customer_id": 7000 + i as i64 % 20, "data": {"amount": i}});
        let broker = &broker;
        async move { broker.produce(&envelope).await }
    });
    futures_util::future::join_all(sends).await;

    // Crash while the engine is at work on the burst: some runs done, some recorded and
    // unfinished, some events not yet read or recorded.
    let deadline = Instant::now() + SETTLE;
    while listener.count() < EVENTS / 5 {
        assert!(Instant::now() < deadline, "no webhook arrived before the crash");
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    first.crash();
    // Requests already on the wire may still be handled by the listener: let it settle.
    let mut before_crash = listener.count();
    loop {
        actix_rt::time::sleep(Duration::from_millis(300)).await;
        let now = listener.count();
        if now == before_crash {
            break;
        }
        before_crash = now;
    }

    let second = engine(&scratch, &broker, "burst-after-crash", &[]).await;
    let api = second.api();
    let runs = finished_runs(&api, "burst-hook", EVENTS).await;
    let events: BTreeSet<&str> = runs.iter().map(|r| r["event_id"].as_str().unwrap()).collect();
    assert_eq!(events.len(), EVENTS, "one run per event");

    let received = listener.received();
    let mut per_key: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, r) in received.iter().enumerate() {
        let key = r.idempotency_key.clone().expect("a key");
        let entry = per_key.entry(key).or_default();
        if i < before_crash {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    for run in &runs {
        let key = format!("run-{}-step-0", run["id"]);
        assert!(per_key.contains_key(&key), "run {} never delivered", run["id"]);
    }
    assert_eq!(per_key.len(), EVENTS, "distinct keys: {:?}", per_key.keys());
    for (key, (before, after)) in &per_key {
        assert!(
            *before <= 1 && *after <= 1,
            "{key}: {before} before, {after} after the crash"
        );
    }
    let duplicates = received.len() - EVENTS;
    println!(
        "crash mid-burst: {before_crash} deliveries before the crash, {} after, {duplicates} duplicate(s) \
         (a delivery whose outcome the crash kept from committing)",
        received.len() - before_crash
    );
}

// 8. ------------------------------------------------------------------------------------

/// Runs the binary with `args` and no WFE_* from the caller, waits up to `timeout`, and
/// returns its exit status and stdout (stderr is kept in the scratch directory).
async fn run_cli(
    scratch: &Scratch,
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    timeout: Duration,
) -> (i32, String) {
    let stdout = scratch.path().join(format!("{name}.stdout"));
    let stderr = scratch.path().join(format!("{name}.stderr"));
    let mut child = command(scratch.path())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("starting workflow-engine");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "workflow-engine {args:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                process::tail(&stdout, 40),
                process::tail(&stderr, 40)
            );
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    };
    let out = std::fs::read_to_string(&stdout).unwrap_or_default();
    let code = status.code().unwrap_or(-1);
    if code != 0 {
        eprintln!(
            "workflow-engine {args:?} exited {status}\nstderr:\n{}",
            process::tail(&stderr, 40)
        );
    }
    (code, out)
}

/// The command line: --help everywhere, migrate on a fresh file, and the demo end to end.
#[actix_rt::test]
async fn command_line() {
    let scratch = Scratch::new("cli");
    for (name, args) in [
        ("help", &["--help"][..]),
        ("serve-help", &["serve", "--help"]),
        ("migrate-help", &["migrate", "--help"]),
        ("demo-help", &["demo", "--help"]),
        ("check-help", &["check", "--help"]),
    ] {
        let (code, out) = run_cli(&scratch, name, args, &[], Duration::from_secs(20)).await;
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }

    let url = format!("sqlite://{}/fresh.db", scratch.path().display());
    let (code, out) = run_cli(
        &scratch,
        "migrate",
        &["migrate"],
        &[("WFE__DATABASE__URL", url)],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 0, "migrate: {out}");
    assert!(out.contains("migrations applied"), "{out}");
    assert!(scratch.path().join("fresh.db").exists());

    let (code, out) = run_cli(&scratch, "demo", &["demo"], &[], Duration::from_secs(90)).await;
    assert_eq!(code, 0, "demo: {out}");
    assert!(out.contains("High-value deposit alert"), "{out}");
}

// 7. ------------------------------------------------------------------------------------

/// A webhook target that answers 500 until it is fixed, and records each request's path
/// and idempotency key with the status it answered.
type Switched = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>, u16)>>>;

fn switchable_listener() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Switched,
    actix_web::dev::ServerHandle,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let broken = std::sync::Arc::new(AtomicBool::new(true));
    let seen: Switched = Default::default();
    let (is_broken, inbox) = (broken.clone(), seen.clone());
    let server = actix_web::HttpServer::new(move || {
        let (is_broken, inbox) = (is_broken.clone(), inbox.clone());
        actix_web::App::new().default_service(actix_web::web::to(move |req: actix_web::HttpRequest| {
            let (is_broken, inbox) = (is_broken.clone(), inbox.clone());
            async move {
                let key = req
                    .headers()
                    .get("Idempotency-Key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let status = if is_broken.load(Ordering::SeqCst) { 500 } else { 200 };
                inbox.lock().unwrap().push((req.path().to_owned(), key, status));
                actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
            }
        }))
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
    (base, broken, seen, handle)
}

/// Issue 14, through the API alone: a run that failed on a webhook answering 500 is
/// retried after the receiver is fixed; it goes on from the failed step (the step before
/// it is not repeated), the delivery keeps its idempotency key, and the run is done. The
/// runs list pages by cursor; retrying a done run is a conflict; an unknown run is 404.
#[actix_rt::test]
async fn a_failed_run_is_retried_through_the_api_once_its_webhook_is_fixed() {
    let scratch = Scratch::new("retry");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let (flaky, broken, seen, server) = switchable_listener();
    let engine = engine(&scratch, &broker, "retry", &[("WFE__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let api = engine.api();
    let (status, body) = api.get("/api/v1/runs/999999").await;
    assert_eq!(status, 404, "{body}");
    let workflow = json!({
        "id": "flaky-desk", "name": "Ping, tell the flaky desk, ping", "trigger_event": "customer.deposited",
        "actions": [
            {"type": "webhook", "params": {"url": format!("{}/first", listener.base)}},
            {"type": "webhook", "params": {"url": format!("{flaky}/desk")}},
            {"type": "webhook", "params": {"url": format!("{}/last", listener.base)}}
        ]
    });
    let (status, body) = api.post("/api/v1/workflows", &workflow).await;
    assert_eq!(status, 201, "{body}");
    engine.ready(READY).await;
    for n in 0..3 {
        broker
            .produce(
                &json!({"id": format!("retry-{n}"), "type": "customer.deposited", "customer_id": 800 + n,
                             "data": {"amount": 5}}),
            )
            .await;
    }
    let failed = eventually("three failed runs", SETTLE, || async {
        let runs = api.runs_of("flaky-desk").await;
        (runs.len() == 3 && runs.iter().all(|r| r["status"] == "failed")).then_some(runs)
    })
    .await;
    let id = failed[0]["id"].as_i64().expect("a run id");
    let (status, one) = api.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["event"]["type"], "customer.deposited", "{one:#}");
    assert_eq!(one["next_step"], 1, "{one:#}");
    let steps: Vec<&str> = one["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["done", "failed", "pending"], "{one:#}");

    // Pages of one, by cursor: the three runs, newest first, then no cursor.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) = api
            .get(&format!("/api/v1/runs?workflow_id=flaky-desk&limit=1{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        paged.extend(
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(paged.len() <= 4, "paging does not end: {paged:?}");
    }
    let newest_first: Vec<i64> = failed.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(&paged[..3], newest_first.as_slice());

    // Fixed: retry one by id, then the rest in bulk by filter.
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, retried) = api.post(&format!("/api/v1/runs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["status"], "waiting", "{retried:#}");
    let (status, bulk) = api
        .post(
            "/api/v1/runs/retry",
            &json!({"workflow_id": "flaky-desk", "status": "failed"}),
        )
        .await;
    assert_eq!(status, 200, "{bulk}");
    assert_eq!(bulk["affected"], 2, "{bulk}");
    let done = finished_runs(&api, "flaky-desk", 3).await;
    for run in &done {
        let key = format!("run-{}-step-1", run["id"]);
        let desk: Vec<_> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k, _)| k.as_deref() == Some(key.as_str()))
            .cloned()
            .collect();
        let statuses: Vec<u16> = desk.iter().map(|(_, _, s)| *s).collect();
        assert_eq!(
            statuses,
            [500, 500, 200],
            "the same key before and after the retry: {desk:?}"
        );
        assert_eq!(run["steps"][1]["attempts"], 3, "{run:#}");
    }
    let paths: Vec<String> = listener.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| *p == "/first").count(),
        3,
        "no step before the failure repeated: {paths:?}"
    );
    assert_eq!(paths.iter().filter(|p| *p == "/last").count(), 3, "{paths:?}");
    let (status, again) = api.post(&format!("/api/v1/runs/{id}/retry"), &json!({})).await;
    assert_eq!(status, 409, "a done run is not retried: {again}");
    let (status, bad) = api.post("/api/v1/runs/retry", &json!({"status": "broken"})).await;
    assert_eq!(status, 400, "{bad}");
    drop(server.stop(false));
}

/// Issue 14: a waiting run cancelled through the API loses its delay and never resumes,
/// while a delay parked after it (same length) comes due and runs.
#[actix_rt::test]
async fn a_cancelled_waiting_run_never_resumes() {
    let scratch = Scratch::new("cancel");
    let broker = Broker::start();
    let listener = Listener::start().await;
    let engine = engine(
        &scratch,
        &broker,
        "cancel",
        &[("WFE__SCHEDULER__DELAY_OVERRIDE_SECS", "3")],
    )
    .await;
    let api = engine.api();
    for (id, trigger, path) in [
        ("to-cancel", "customer.deposited", "/cancelled"),
        ("marker", "customer.withdrew", "/marker"),
    ] {
        let workflow = json!({"id": id, "name": id, "trigger_event": trigger, "actions": [
            {"type": "delay", "params": {"minutes": 10}},
            {"type": "webhook", "params": {"url": format!("{}{path}", listener.base)}}]});
        let (status, body) = api.post("/api/v1/workflows", &workflow).await;
        assert_eq!(status, 201, "{body}");
    }
    engine.ready(READY).await;
    broker
        .produce(&json!({"id": "c-1", "type": "customer.deposited", "customer_id": 901, "data": {"amount": 5}}))
        .await;
    let waiting = eventually("the run to wait", SETTLE, || async {
        let runs = api.runs_of("to-cancel").await;
        (runs.len() == 1 && runs[0]["status"] == "waiting").then(|| runs[0].clone())
    })
    .await;
    let id = waiting["id"].as_i64().unwrap();
    let (status, cancelled) = api.post(&format!("/api/v1/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");
    let (_, scheduled) = api.get("/api/v1/scheduled").await;
    assert_eq!(scheduled["scheduled"], json!([]), "{scheduled}");

    // A delay parked after the cancel, of the same length, runs to its end: the scheduler
    // has been past the cancelled run's due time.
    broker
        .produce(&json!({"id": "m-1", "type": "customer.withdrew", "customer_id": 902, "data": {"amount": 5}}))
        .await;
    finished_runs(&api, "marker", 1).await;
    let (status, after) = api.get(&format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(after["status"], "cancelled", "{after:#}");
    assert!(
        listener.received().iter().all(|r| r.path != "/cancelled"),
        "the cancelled run resumed"
    );
    let (status, again) = api.post(&format!("/api/v1/runs/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (status, cancelled) = api.get("/api/v1/runs?status=cancelled").await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["runs"].as_array().unwrap().len(), 1, "{cancelled}");
    let (status, none) = api.post("/api/v1/runs/cancel", &json!({"workflow_id": "marker"})).await;
    assert_eq!(
        (status, &none["affected"]),
        (200, &json!(0)),
        "a done run is not cancelled: {none}"
    );
}

// 9. ------------------------------------------------------------------------------------

/// Security issue 22, finding 6: on the embedded broker (the default) an event answered
/// with 202 must outlive kill -9. The first engine takes one customer's events while that
/// customer's first webhook hangs (its target accepts connections and never answers), so
/// the rest wait in memory, consumed but not recorded; then the engine is killed. Before
/// the journal those 24 events were gone with the in-process broker; now the restarted
/// engine publishes them again and each gets its run, once.
#[actix_rt::test]
async fn events_accepted_on_the_embedded_broker_survive_kill_9() {
    let scratch = Scratch::new("embedded-kill");
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let target = hanging.local_addr().expect("its address").to_string();
    let mut env = process::base_env(scratch.path(), "embedded");
    // One attempt of 8 s: long enough to hold the customer while the test posts and kills,
    // short enough that the dead sender's delivery lease (one attempt) runs out soon after
    // the restart, when the new owner sends the request itself.
    env.push(("WFE__DELIVERY__TIMEOUT_MS".into(), "8000".into()));
    env.push(("WFE__DELIVERY__MAX_ATTEMPTS".into(), "1".into()));
    let mut first = Engine::start(scratch.path(), "first", &env).await;
    first.ready(READY).await;
    let api = first.api();
    let draft = json!({"name": "Deposits to the desk", "trigger_event": "customer.deposited",
                       "actions": [{"type": "webhook", "params": {"url": format!("http://{target}/desk")}}]});
    let (status, created) = api.post("/api/v1/workflows", &draft).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();

    let total = 25;
    let (status, body) = api
        .post(
            "/api/v1/events",
            &json!({"id": "dep-0", "type": "customer.deposited", "customer_id": 77}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // The first run is recorded and its webhook is on the way (and hangs): the customer's
    // executor is busy, so the next events wait behind it.
    eventually("the first run to be recorded", SETTLE, || async {
        (api.runs_of(&id).await.len() == 1).then_some(())
    })
    .await;
    for n in 1..total {
        let envelope = json!({"id": format!("dep-{n}"), "type": "customer.deposited", "customer_id": 77});
        let (status, body) = api.post("/api/v1/events", &envelope).await;
        assert_eq!(status, 202, "{body}");
    }
    first.crash();

    // The target answers from now on, at the same address.
    drop(hanging);
    let listener = Listener::start_at(&target).await;
    let second = Engine::start(scratch.path(), "second", &env).await;
    second.ready(READY).await;
    let runs = finished_runs(&second.api(), &id, total).await;
    let events: BTreeSet<String> = runs
        .iter()
        .filter_map(|r| r["event_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(events.len(), total, "one run per accepted event: {events:?}");
    let keys: BTreeSet<_> = listener
        .received()
        .into_iter()
        .filter_map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys.len(), total, "each event's webhook, once per run");
}
