//! Issue 28, drafts, approvals and publishing: saves go through the API in process (scoped
//! tokens where the test is about who), events through a runner at runner level (a
//! database, a ManualClock, no Kafka) with the live set loaded from storage as the matcher
//! loads it. A fresh SQLite file, or PostgreSQL with WFE_TEST_DATABASE_URL.
//!
//! What must hold: a draft never runs; the live version keeps running, unchanged, while a
//! draft is saved; a run in flight keeps the version it started with; a published draft
//! runs; with `changes.require_approval` a version goes live only after another token
//! approved it (self-approval is 403), and every step names its token in the audit log.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;
#[path = "common/runner.rs"]
mod harness;

use actix_web::dev::Service;
use actix_web::http::Method;
use actix_web::test as atest;
use common::{fresh, t0};
use engine::{note_bodies, runs_of_customer};
use harness::{owning_runner, resume_due, send};
use serde_json::{json, Value};
use std::time::Duration;
use workflow_engine::api::{self, Auth};
use workflow_engine::clock::ManualClock;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::settings::{Scope, TokenConfig};
use workflow_engine::storage::audit;

fn event(id: &str, customer_id: i64) -> EventEnvelope {
    EventEnvelope::from_value(json!({
        "id": id, "type": "customer.registered", "customer_id": customer_id,
        "occurred_at": "2026-11-25T10:00:00Z", "data": {}
    }))
    .unwrap()
}

fn note(id: &str, body: &str) -> Value {
    json!({"id": id, "name": id, "trigger_event": "customer.registered",
           "actions": [{"type": "add_note", "params": {"body": body}}]})
}

fn token(name: &str) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: Some(format!("t-{name}")),
        token_sha256: None,
        scopes: vec![Scope::Read, Scope::Write],
    }
}

/// `$app.call` of one request as `$token` (or none), answered as (status, JSON body).
macro_rules! call {
    ($app:expr, $method:expr, $path:expr, $token:expr, $body:expr) => {{
        let mut req = atest::TestRequest::default().method($method).uri(&$path);
        let token: Option<&str> = $token;
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer t-{token}")));
        }
        let body: Option<Value> = $body;
        if let Some(body) = body {
            req = req.set_json(body);
        }
        let response = $app.call(req.to_request()).await.unwrap();
        let status = response.status().as_u16();
        let bytes = atest::read_body(response).await;
        (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
    }};
}

#[actix_rt::test]
async fn a_draft_never_runs_until_published_and_runs_in_flight_keep_their_version() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=6).await;
    let state = common::api_state(db);
    let app = atest::init_service(
        actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, Option::<String>::None)),
    )
    .await;

    // Live: v1 notes "v1"; a second workflow waits an hour, then notes "later v1".
    let (status, body) = call!(app, Method::POST, "/api/v1/workflows", None, Some(note("greet", "v1")));
    assert_eq!(status, 201, "{body}");
    let later = |body: &str| {
        json!({"id": "later", "name": "later", "trigger_event": "customer.registered",
               "actions": [{"type": "delay", "params": {"hours": 1}},
                           {"type": "add_note", "params": {"body": body}}]})
    };
    let (status, body) = call!(app, Method::POST, "/api/v1/workflows", None, Some(later("later v1")));
    assert_eq!(status, 201, "{body}");
    send(&runner, fence, db, event("e1", 1)).await;
    assert_eq!(note_bodies(db, 1).await, vec!["v1"]);

    // A draft of each: the live versions keep running, unchanged.
    let mut draft = note("greet", "v2");
    draft["status"] = json!("draft");
    let (status, saved) = call!(app, Method::PUT, "/api/v1/workflows/greet", None, Some(draft));
    assert_eq!(status, 200, "{saved}");
    assert_eq!(
        (saved["live_version"].clone(), saved["draft_version"].clone()),
        (json!(1), json!(2))
    );
    let mut draft = later("later v2");
    draft["status"] = json!("draft");
    let (status, body) = call!(app, Method::PUT, "/api/v1/workflows/later", None, Some(draft));
    assert_eq!(status, 200, "{body}");
    // A workflow that exists only as a draft.
    let mut fresh_draft = note("fresh", "fresh");
    fresh_draft["status"] = json!("draft");
    let (status, created) = call!(app, Method::POST, "/api/v1/workflows", None, Some(fresh_draft));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["live_version"], Value::Null);
    assert_eq!(created["draft_version"], 1);

    send(&runner, fence, db, event("e2", 2)).await;
    assert_eq!(note_bodies(db, 2).await, vec!["v1"], "the drafts did not run");
    let (_, shown) = call!(app, Method::GET, "/api/v1/workflows/greet", None, None);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["live_version"], 1);
    assert_eq!(shown["draft_version"], 2);
    assert_eq!(shown["actions"][0]["params"]["body"], "v1");
    assert_eq!(shown["draft"]["definition"]["actions"][0]["params"]["body"], "v2");
    assert_eq!(shown["draft"]["change"], "draft");
    let (_, list) = call!(app, Method::GET, "/api/v1/workflows", None, None);
    let fresh_listed = list["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "fresh")
        .unwrap();
    assert_eq!(
        (
            fresh_listed["live_version"].clone(),
            fresh_listed["draft_version"].clone(),
            fresh_listed["active"].clone()
        ),
        (Value::Null, json!(1), json!(false))
    );

    // Publish both drafts while customer 2's "later" run waits on version 1.
    let (status, published) = call!(app, Method::POST, "/api/v1/workflows/greet/publish", None, None);
    assert_eq!(status, 200, "{published}");
    assert_eq!(
        (
            published["previous_version"].clone(),
            published["version"].clone(),
            published["workflow_id"].clone()
        ),
        (json!(1), json!(2), json!("greet"))
    );
    // Nothing archived: the impact read no event.
    assert_eq!(published["impact"]["events"], 0, "{published}");
    let (status, body) = call!(
        app,
        Method::POST,
        "/api/v1/workflows/later/publish",
        None,
        Some(json!({"version": 2}))
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call!(
        app,
        Method::POST,
        "/api/v1/workflows/fresh/publish",
        None,
        Some(json!({}))
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call!(app, Method::POST, "/api/v1/workflows/greet/publish", None, None);
    assert_eq!(status, 409, "nothing left to publish: {body}");

    send(&runner, fence, db, event("e3", 3)).await;
    let mut notes = note_bodies(db, 3).await;
    notes.sort();
    assert_eq!(notes, vec!["fresh", "v2"], "the published versions run");
    let (_, shown) = call!(app, Method::GET, "/api/v1/workflows/greet", None, None);
    assert_eq!(
        (shown["live_version"].clone(), shown["draft_version"].clone()),
        (json!(2), Value::Null)
    );

    // The waiting runs of customers 1 and 2 resume with version 1, customer 3's with 2.
    clock.advance(Duration::from_secs(2 * 3600));
    resume_due(&runner, fence, db, &clock).await;
    assert!(note_bodies(db, 1).await.contains(&"later v1".to_owned()));
    assert!(note_bodies(db, 2).await.contains(&"later v1".to_owned()));
    assert!(note_bodies(db, 3).await.contains(&"later v2".to_owned()));
    let versions: Vec<(i64, i64)> = runs_of_customer(db, 2)
        .await
        .iter()
        .map(|r| (r.run.workflow_version, r.run.customer_id))
        .collect();
    assert_eq!(versions, vec![(1, 2), (1, 2)], "customer 2's runs are all version 1");
    t.finish().await;
}

#[actix_rt::test]
async fn with_require_approval_another_token_approves_before_a_version_goes_live() {
    let t = fresh().await;
    let db = &t.db;
    let clock = ManualClock::new(t0());
    let (runner, fence, _) = owning_runner(db, "node-a", &clock).await;
    common::add_customers(db, 1..=3).await;
    let mut state = common::api_state(db);
    state.changes.require_approval = true;
    let auth = Auth::new("", &[token("alice"), token("bob")], false).unwrap();
    let app =
        atest::init_service(actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth)))
            .await;

    let (status, body) = call!(
        app,
        Method::POST,
        "/api/v1/workflows",
        Some("alice"),
        Some(note("greet", "v1"))
    );
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("approval_required")),
        "{body}"
    );
    let mut draft = note("greet", "v1");
    draft["status"] = json!("draft");
    let (status, body) = call!(app, Method::POST, "/api/v1/workflows", Some("alice"), Some(draft));
    assert_eq!(status, 201, "{body}");

    let publish = "/api/v1/workflows/greet/publish".to_owned();
    let (status, body) = call!(app, Method::POST, publish, Some("alice"), None);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, json!("approval_required")),
        "{body}"
    );
    let approve = |v: i64| format!("/api/v1/workflows/greet/versions/{v}/approve");
    let (status, body) = call!(app, Method::POST, approve(1), Some("alice"), None);
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("self_approval")),
        "{body}"
    );
    send(&runner, fence, db, event("e1", 1)).await;
    assert!(note_bodies(db, 1).await.is_empty(), "nothing is live yet");

    let (status, body) = call!(app, Method::POST, approve(1), Some("bob"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"approved_by": ["bob"], "author": "alice", "version": 1, "workflow_id": "greet"})
    );
    let (status, body) = call!(app, Method::POST, publish, Some("alice"), None);
    assert_eq!(status, 200, "{body}");
    send(&runner, fence, db, event("e2", 2)).await;
    assert_eq!(note_bodies(db, 2).await, vec!["v1"]);

    // The next version: bob's draft, approved by alice, published by bob by number.
    let mut draft = note("greet", "v2");
    draft["status"] = json!("draft");
    draft["version"] = json!(1);
    let (status, body) = call!(app, Method::PUT, "/api/v1/workflows/greet", Some("bob"), Some(draft));
    assert_eq!(status, 200, "{body}");
    let (status, body) = call!(app, Method::POST, publish, Some("bob"), Some(json!({"version": 2})));
    assert_eq!(status, 409, "bob's own draft is not approved: {body}");
    let (status, body) = call!(app, Method::POST, approve(2), Some("bob"), None);
    assert_eq!(status, 403, "{body}");
    let (status, body) = call!(app, Method::POST, approve(2), Some("alice"), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = call!(app, Method::POST, publish, Some("bob"), Some(json!({"version": 2})));
    assert_eq!(status, 200, "{body}");
    send(&runner, fence, db, event("e3", 3)).await;
    assert_eq!(note_bodies(db, 3).await, vec!["v2"]);

    let rows = audit::page(db, None, None, 100).await.unwrap();
    let seen: Vec<(&str, &str, Option<i64>, Option<i64>)> = rows
        .iter()
        .map(|r| (r.action.as_str(), r.actor.as_str(), r.before_version, r.after_version))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("workflow.draft", "alice", None, Some(1)),
            ("workflow.approve", "bob", None, Some(1)),
            ("workflow.publish", "alice", None, Some(1)),
            ("workflow.draft", "bob", Some(1), Some(2)),
            ("workflow.approve", "alice", None, Some(2)),
            ("workflow.publish", "bob", Some(1), Some(2)),
        ],
        "refused steps leave no row"
    );
    t.finish().await;
}

/// Publishing answers with the impact: the version against the live one over the archived
/// events of the last `changes.impact_days`, as the backtest judges them. 10 deposits of
/// 0..4500 are archived (and one older than the days asked, not read): the live version
/// notes deposits of 3000 or more (4 of them), the draft those of 1000 or more (8) and adds
/// a webhook, so 8 events change, 4 of them start a run, and each changed event's run
/// gains a webhook.
#[actix_rt::test]
async fn publishing_answers_what_the_version_changes_over_the_archive() {
    let t = fresh().await;
    let db = &t.db;
    let state = common::api_state(db);
    let app = atest::init_service(
        actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, Option::<String>::None)),
    )
    .await;
    let deposit = |i: i64, at: chrono::DateTime<chrono::Utc>| {
        EventEnvelope::from_value(
            json!({"id": format!("d{i}"), "type": "customer.deposited", "customer_id": i + 1,
            "occurred_at": workflow_engine::clock::rfc3339(at), "data": {"amount": 500 * i}}),
        )
        .unwrap()
    };
    let now = chrono::Utc::now();
    let recent: Vec<EventEnvelope> = (0..10).map(|i| deposit(i, now)).collect();
    workflow_engine::storage::archive::insert(db.connection(), &recent, now)
        .await
        .unwrap();
    let old = now - chrono::Duration::days(8);
    workflow_engine::storage::archive::insert(db.connection(), &[deposit(99, old)], old)
        .await
        .unwrap();
    let big = |min: i64, actions: Value| {
        json!({"id": "big", "name": "big", "trigger_event": "customer.deposited",
               "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": min}]},
               "actions": actions})
    };
    let note = json!({"type": "add_note", "params": {"body": "big"}});
    let hook = json!({"type": "webhook", "params": {"url": "https://crm.example/hook"}});
    let (status, body) = call!(
        app,
        Method::POST,
        "/api/v1/workflows",
        None,
        Some(big(3000, json!([note])))
    );
    assert_eq!(status, 201, "{body}");
    let mut draft = big(1000, json!([note, hook]));
    draft["status"] = json!("draft");
    let (status, body) = call!(app, Method::PUT, "/api/v1/workflows/big", None, Some(draft));
    assert_eq!(status, 200, "{body}");

    let (status, published) = call!(
        app,
        Method::POST,
        "/api/v1/workflows/big/publish",
        None,
        Some(json!({}))
    );
    assert_eq!(status, 200, "{published}");
    let impact = &published["impact"];
    assert_eq!(impact["days"], 7, "{published}");
    assert_eq!(impact["events"], 10, "the event of 8 days ago is not read: {impact}");
    assert_eq!(impact["changed"], 8, "{impact}");
    assert_eq!(
        (impact["started"].clone(), impact["stopped"].clone()),
        (json!(4), json!(0))
    );
    assert_eq!(impact["steps"], json!({"add_note": 4, "webhook": 8}), "{impact}");
    let sample = impact["sample"].as_array().unwrap();
    assert_eq!(sample.len(), 5);
    assert!(sample
        .iter()
        .all(|e| e["draft"].as_array().unwrap().contains(&json!("webhook"))));
    // Published again unchanged: nothing changes.
    let (status, again) = call!(
        app,
        Method::POST,
        "/api/v1/workflows/big/publish",
        None,
        Some(json!({"version": 2}))
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["impact"]["changed"], 0, "{again}");
    t.finish().await;
}
