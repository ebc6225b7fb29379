//! Issue 28, the audit log: every change to workflows, CRM configuration, the contact
//! policy and runs is read back from GET /api/v1/audit with the token that made it,
//! through the API in process with scoped tokens (a fresh SQLite file, or PostgreSQL with
//! WFE_TEST_DATABASE_URL). A refused change leaves no row; the retention job keeps rows
//! unless `retention.audit_days` says otherwise.

mod common;

use actix_web::dev::Service;
use actix_web::http::Method;
use actix_web::test as atest;
use chrono::Duration;
use common::t0;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::sync::Arc;
use workflow_engine::api::{self, Auth};
use workflow_engine::clock::{ManualClock, SharedClock};
use workflow_engine::retention::prune_once;
use workflow_engine::settings::{Retention, Scope, TokenConfig};
use workflow_engine::storage::audit::{self, Change};
use workflow_engine::storage::sql::statement;
use workflow_engine::storage::Database;

fn token(name: &str, scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        token: Some(format!("t-{name}")),
        token_sha256: None,
        scopes: scopes.to_vec(),
    }
}

fn tokens() -> Vec<TokenConfig> {
    vec![
        token("reader", &[Scope::Read]),
        token("alice", &[Scope::Read, Scope::Write]),
        token("bob", &[Scope::Read, Scope::Write]),
        token("ops", &[Scope::Admin]),
    ]
}

/// A failed run, for retry and cancel.
async fn failed_run(db: &Database, id: i64) {
    db.execute(statement(
        db,
        "INSERT INTO runs (id, event_id, workflow_id, workflow_version, customer_id, trigger, partition, event, \
         status, next_step, created_at, updated_at) VALUES ($1, $2, 'w', 1, 7, 'customer.deposited', 0, $3, 'failed', 0, $4, $4)",
        vec![id.into(), format!("ev-{id}").into(), json!({"id": id}).into(), t0().into()],
    ))
    .await
    .unwrap();
}

/// Every audit row, read page by page (`limit` a page) as `reader`.
macro_rules! read_all {
    ($call:expr, $limit:expr) => {{
        let mut entries: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/audit?limit={}&cursor={c}", $limit),
                None => format!("/api/v1/audit?limit={}", $limit),
            };
            let (status, page) = $call(Method::GET, path, "reader", None).await;
            assert_eq!(status, 200, "{page}");
            pages += 1;
            entries.extend(page["entries"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        (entries, pages)
    }};
}

/// Each kind of change, made by a named token, appears once with that token, its
/// subject and (for workflows) the versions before and after; configuration bodies are
/// recorded as the API shows them, without secrets. Read back in pages of 4, oldest
/// first; `since` leaves out what came before.
#[actix_rt::test]
async fn every_change_names_its_token_and_what_it_changed() {
    let test = common::fresh().await;
    let db = &test.db;
    common::add_customers(db, [7]).await;
    failed_run(db, 1).await;
    failed_run(db, 2).await;
    let auth = Auth::new("", &tokens(), false).unwrap();
    let state = common::api_state(db);
    let app =
        atest::init_service(actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth)))
            .await;
    let call = |method: Method, path: String, token: &'static str, body: Option<Value>| {
        let mut req = atest::TestRequest::default()
            .method(method)
            .uri(&path)
            .insert_header(("Authorization", format!("Bearer t-{token}")));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        let response = app.call(req.to_request());
        async move {
            let response = response.await.unwrap();
            let status = response.status().as_u16();
            let bytes = atest::read_body(response).await;
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };

    let workflow = json!({"id": "greet", "name": "Greet", "trigger_event": "customer.registered",
                          "actions": [{"type": "add_note", "params": {"body": "hi"}}]});
    let (status, body) = call(
        Method::POST,
        "/api/v1/workflows".into(),
        "alice",
        Some(workflow.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut changed = workflow.clone();
    changed["name"] = json!("Greet them");
    let (status, body) = call(Method::PUT, "/api/v1/workflows/greet".into(), "bob", Some(changed)).await;
    assert_eq!(status, 200, "{body}");
    let (status, team) = call(
        Method::POST,
        "/api/v1/teams".into(),
        "alice",
        Some(json!({"name": "Sales"})),
    )
    .await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_i64().unwrap();
    let (status, body) = call(
        Method::PUT,
        format!("/api/v1/teams/{team_id}"),
        "bob",
        Some(json!({"name": "Sales EU"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, agent) = call(
        Method::POST,
        "/api/v1/agents".into(),
        "alice",
        Some(json!({"name": "Ann", "team_id": team_id})),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["id"].as_i64().unwrap();
    let (status, body) = call(Method::DELETE, format!("/api/v1/agents/{agent_id}"), "bob", None).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = call(
        Method::POST,
        "/api/v1/status-types".into(),
        "alice",
        Some(json!({"name": "risk"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        Method::POST,
        "/api/v1/status-types/risk/statuses".into(),
        "alice",
        Some(json!({"name": "verified"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, endpoint) = call(
        Method::POST,
        "/api/v1/webhook-endpoints".into(),
        "alice",
        Some(
            json!({"name": "hook", "url": "https://u:pass@hooks.example/in?token=SECRET-1",
                    "auth": {"type": "bearer", "token": "tok-SECRET-2"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let (status, provider) = call(
        Method::POST,
        "/api/v1/sms-providers".into(),
        "bob",
        Some(
            json!({"name": "sms", "url": "https://sms.example/send?api_key=SECRET-3",
                    "auth": {"type": "header", "name": "X-Key", "value": "SECRET-4"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{provider}");
    let policy = json!({"caps": [{"channel": "email", "max": 2, "per": {"days": 1}}], "on_cap": "skip"});
    let (status, body) = call(Method::PUT, "/api/v1/contact-policy".into(), "alice", Some(policy)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::POST, "/api/v1/runs/1/retry".into(), "ops", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::POST, "/api/v1/runs/2/cancel".into(), "ops", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::DELETE, "/api/v1/workflows/greet".into(), "bob", None).await;
    assert_eq!(status, 204, "{body}");

    let (entries, pages) = read_all!(call, 4);
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["subject_kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("workflow.create", "alice", "workflow"),
            ("workflow.update", "bob", "workflow"),
            ("team.create", "alice", "team"),
            ("team.update", "bob", "team"),
            ("agent.create", "alice", "agent"),
            ("agent.delete", "bob", "agent"),
            ("status_type.create", "alice", "status_type"),
            ("status.create", "alice", "status"),
            ("webhook_endpoint.create", "alice", "webhook_endpoint"),
            ("sms_provider.create", "bob", "sms_provider"),
            ("contact_policy.update", "alice", "contact_policy"),
            ("run.retry", "ops", "run"),
            ("run.cancel", "ops", "run"),
            ("workflow.delete", "bob", "workflow"),
        ]
    );
    assert_eq!(pages, 4, "14 rows in pages of 4");
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first: {ids:?}");

    let versions = |i: usize| {
        (
            entries[i]["before_version"].clone(),
            entries[i]["after_version"].clone(),
        )
    };
    assert_eq!(versions(0), (Value::Null, json!(1)));
    assert_eq!(versions(1), (json!(1), json!(2)));
    assert_eq!(versions(13), (json!(2), json!(3)));
    assert_eq!(entries[0]["subject_id"], "greet");
    assert_eq!(entries[3]["detail"]["before"]["name"], "Sales");
    assert_eq!(entries[3]["detail"]["after"]["name"], "Sales EU");
    assert_eq!(entries[5]["detail"]["before"]["name"], "Ann");
    assert_eq!(entries[5]["detail"]["after"], Value::Null);
    assert_eq!(entries[10]["detail"]["before"]["caps"], json!([]));
    assert_eq!(entries[10]["detail"]["after"]["caps"][0]["max"], 2);
    assert_eq!(entries[11]["subject_id"], "1");
    let text = serde_json::to_string(&entries).unwrap();
    for secret in ["SECRET-1", "SECRET-2", "SECRET-3", "SECRET-4", "pass"] {
        assert!(!text.contains(secret), "{secret} in the audit log: {text}");
    }

    // `since` after the last change: nothing.
    let later = (chrono::Utc::now() + Duration::minutes(1)).to_rfc3339();
    let (status, page) = call(
        Method::GET,
        format!("/api/v1/audit?since={}", later.replace('+', "%2B")),
        "reader",
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"], json!([]));
    let (status, page) = call(Method::GET, "/api/v1/audit?cursor=x".into(), "reader", None).await;
    assert_eq!(status, 400, "{page}");
    test.finish().await;
}

/// Refused changes leave no row: an invalid workflow (422), a stale version (409, refused
/// inside the saving transaction), an invalid team (422), a retry of a run that is not
/// failed (409). With auth off the actor is "anonymous", whatever `X-Changed-By` claims
/// (the version's author keeps the label).
#[actix_rt::test]
async fn a_refused_change_leaves_no_row_and_auth_off_is_anonymous() {
    let test = common::fresh().await;
    let db = &test.db;
    common::add_customers(db, [7]).await;
    failed_run(db, 1).await;
    let state = common::api_state(db);
    let app = atest::init_service(
        actix_web::App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, Option::<String>::None)),
    )
    .await;
    let call = |method: Method, path: &str, body: Option<Value>| {
        let mut req = atest::TestRequest::default()
            .method(method)
            .uri(path)
            .insert_header(("X-Changed-By", "mallory"));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        let response = app.call(req.to_request());
        async move {
            let response = response.await.unwrap();
            let status = response.status().as_u16();
            let bytes = atest::read_body(response).await;
            (status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null))
        }
    };
    let workflow = json!({"id": "greet", "name": "Greet", "trigger_event": "customer.registered",
                          "actions": [{"type": "add_note", "params": {"body": "hi"}}]});
    let (status, body) = call(Method::POST, "/api/v1/workflows", Some(workflow.clone())).await;
    assert_eq!(status, 201, "{body}");
    let audit_rows = || async { audit::page(db, None, None, 1000).await.unwrap() };
    assert_eq!(audit_rows().await.len(), 1);
    assert_eq!(audit_rows().await[0].actor, "anonymous");

    let mut invalid = workflow.clone();
    invalid["actions"] = json!([{"type": "no_such_action"}]);
    let (status, body) = call(Method::PUT, "/api/v1/workflows/greet", Some(invalid)).await;
    assert_eq!(status, 422, "{body}");
    let mut stale = workflow.clone();
    stale["version"] = json!(7);
    let (status, body) = call(Method::PUT, "/api/v1/workflows/greet", Some(stale)).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(Method::POST, "/api/v1/teams", Some(json!({"nme": "x"}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = call(Method::POST, "/api/v1/runs/1/cancel", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::POST, "/api/v1/runs/1/retry", None).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(Method::PUT, "/api/v1/contact-policy", Some(json!({"caps": 3}))).await;
    assert_eq!(status, 422, "{body}");

    let rows = audit_rows().await;
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, vec!["workflow.create", "run.cancel"]);
    assert!(rows.iter().all(|r| r.actor == "anonymous"));
    let (_, versions) = call(Method::GET, "/api/v1/workflows/greet/versions", None).await;
    assert_eq!(versions["versions"][0]["changed_by"], "mallory");
    test.finish().await;
}

fn retention(runs_days: u32, audit_days: u32) -> Retention {
    Retention {
        runs_days,
        plans_days: runs_days,
        outbox_days: runs_days,
        versions_keep: 1,
        audit_days,
        batch_size: 2,
        pause_ms: 0,
        interval_secs: 3600,
    }
}

/// The retention job prunes everything else it is told to and keeps the audit log, even
/// rows far older than every other age; `retention.audit_days` alone prunes it, by age.
#[tokio::test]
async fn audit_rows_survive_retention_unless_their_own_age_says() {
    let test = common::fresh().await;
    let db = &test.db;
    let change = |n: i64| Change {
        actor: "alice",
        action: "team.create",
        subject_kind: "team",
        subject_id: n.to_string(),
        before_version: None,
        after_version: None,
        detail: None,
    };
    for n in 0..5 {
        audit::record(db, &change(n), t0()).await.unwrap();
    }
    for n in 5..8 {
        audit::record(db, &change(n), t0() + Duration::days(95)).await.unwrap();
    }
    let clock: SharedClock = Arc::new(ManualClock::new(t0() + Duration::days(100)));

    let pruned = prune_once(db, &clock, &retention(1, 0)).await.unwrap();
    assert_eq!(pruned.audit, 0);
    assert_eq!(audit::page(db, None, None, 100).await.unwrap().len(), 8);

    let pruned = prune_once(db, &clock, &retention(0, 30)).await.unwrap();
    assert_eq!(pruned.audit, 5, "five rows older than 30 days, in batches of 2");
    let left: Vec<String> = audit::page(db, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.subject_id)
        .collect();
    assert_eq!(left, vec!["5", "6", "7"]);
    test.finish().await;
}
