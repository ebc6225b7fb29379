//! Issue 25, the operator's view, over HTTP in process: GET /api/v1/tasks with its filters
//! and cursor, PATCH /api/v1/tasks/{id}, and GET /api/v1/customers/{id}/activity, on the
//! demo data with real actions run (SQLite, or PostgreSQL with WFE_TEST_DATABASE_URL).

mod common;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::{test as atest, App};
use chrono::{DateTime, Duration as Span, Utc};
use common::{fresh, t0, TestDb};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use workflow_engine::actions::{run_internal_step, StepContext, StepOutcome};
use workflow_engine::api::{self, Auth};
use workflow_engine::catalogue::{Action, StatusRef};
use workflow_engine::conditions::Facts;
use workflow_engine::duration::Duration;
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::settings::{Scope, TokenConfig};
use workflow_engine::storage::outbox::{self, Origin, OutboxKind};
use workflow_engine::storage::runs::{self, PlannedRun};
use workflow_engine::storage::{customers, seed, Database};
use workflow_engine::template;

const READER: &str = "t-reader";
const WRITER: &str = "t-writer";

async fn demo() -> TestDb {
    let test = fresh().await;
    seed::load_demo(&test.db, "http://127.0.0.1:9/hook").await.unwrap();
    test
}

/// The tokens of these tests: one that reads, one that reads and writes.
fn auth() -> Auth {
    let token = |name: &str, scopes: &[Scope]| TokenConfig {
        name: name.into(),
        token: Some(format!("t-{name}")),
        token_sha256: None,
        scopes: scopes.to_vec(),
    };
    let tokens = [
        token("reader", &[Scope::Read]),
        token("writer", &[Scope::Read, Scope::Write]),
    ];
    Auth::new("", &tokens, false).unwrap()
}

/// The API over `db`, in process. (Macros, not functions: the service's request type,
/// `actix_http::Request`, cannot be named from here.)
macro_rules! app {
    ($db:expr) => {{
        let state = common::api_state($db);
        let auth = auth();
        atest::init_service(App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))).await
    }};
}

/// `(status, body as JSON)` of a request with `token` and an optional JSON body.
macro_rules! call {
    ($app:expr, $method:expr, $uri:expr, $token:expr, $body:expr) => {{
        let mut req = atest::TestRequest::default()
            .method($method)
            .uri(&$uri)
            .insert_header(("Authorization", format!("Bearer {}", $token)));
        let body: Option<Value> = $body;
        if let Some(body) = body {
            req = req.set_json(body);
        }
        // The auth middleware answers with an error, not a response: render it as sent.
        let response = $app
            .call(req.to_request())
            .await
            .unwrap_or_else(|e| ServiceResponse::from_err(e, atest::TestRequest::default().to_http_request()));
        answer(response).await
    }};
}

/// A GET with the read token.
macro_rules! get {
    ($app:expr, $uri:expr) => {
        call!($app, Method::GET, $uri, READER, None)
    };
}

async fn answer(response: ServiceResponse) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = atest::read_body(response).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Records a run of `actions` for `customer_id` created at `at`, and runs step i at
/// `at + step_times[i]` seconds, through the actions' public entry point. Returns the run id.
async fn run(db: &Database, customer_id: i64, at: DateTime<Utc>, actions: &[(Action, i64)]) -> i64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let event = EventEnvelope::from_value(json!({
        "id": format!("evt-{}", SEQ.fetch_add(1, Ordering::Relaxed)),
        "type": "customer.deposited",
        "customer_id": customer_id,
        "data": {"amount": 1500},
    }))
    .unwrap();
    let planned = [PlannedRun {
        workflow_id: "wf-test".into(),
        workflow_version: 1,
        steps: actions.iter().map(|(a, _)| a.kind()).collect(),
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    let fence = common::fence(db, 0).await;
    let recorded = runs::record_runs(db, fence, &event, &planned, at).await.unwrap();
    let run_id = recorded.runs[0].run.id;
    for (index, (action, after)) in actions.iter().enumerate() {
        let customer = customers::snapshot(db, customer_id).await.unwrap().unwrap_or_default();
        let context = template::context(&Facts::new(&event, &customer));
        let ctx = StepContext {
            fence,
            run_id,
            step_index: index as i32,
            next_step: index as i32 + 1,
            customer_id,
            workflow_id: "wf-test",
            facts_context: &context,
            now: at + Span::seconds(*after),
        };
        let outcome = run_internal_step(db, &ctx, action).await.unwrap();
        assert!(matches!(outcome, StepOutcome::Done { .. }), "{outcome:?}");
    }
    run_id
}

fn task(title: &str, due_in_hours: u64) -> Action {
    Action::CreateTask {
        title: title.into(),
        task_type: Some("call".into()),
        due_in: Duration::Hours(due_in_hours),
    }
}

fn ids(page: &Value, key: &str) -> Vec<i64> {
    page[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {page}"))
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect()
}

/// The ids of a list walked page by page with `limit`, following `next_cursor`.
macro_rules! walk {
    ($app:expr, $base:expr, $limit:expr) => {{
        let (base, limit): (&str, u64) = ($base, $limit);
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let uri = match &cursor {
                Some(c) => format!("{base}{sep}limit={limit}&cursor={c}"),
                None => format!("{base}{sep}limit={limit}"),
            };
            let (status, page) = get!($app, uri);
            assert_eq!(status, 200, "{uri}: {page}");
            let found = ids(&page, "tasks");
            assert!(found.len() as u64 <= limit && all.len() < 1000, "{uri}: {page}");
            all.extend(found);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break all,
            }
        }
    }};
}

#[actix_rt::test]
async fn tasks_are_listed_filtered_and_paged() {
    let t = demo().await;
    let db = &t.db;
    // Customers 1, 2 and 3 belong to agents 1, 2 and 3: each task is for the customer's agent.
    for (i, customer) in [1, 2, 3, 1, 2, 1].into_iter().enumerate() {
        let at = t0() + Span::minutes(i as i64);
        run(db, customer, at, &[(task(&format!("call {i}"), i as u64 + 1), 0)]).await;
    }
    let app = app!(db);

    let (status, all) = get!(app, "/api/v1/tasks");
    assert_eq!(status, 200, "{all}");
    let all_ids = ids(&all, "tasks");
    assert_eq!(all_ids.len(), 6);
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "newest first: {all_ids:?}");
    assert_eq!(all["next_cursor"], Value::Null);
    let newest = &all["tasks"][0];
    assert_eq!(newest["title"], "call 5");
    assert_eq!(newest["type"], "call");
    assert_eq!(newest["customer_id"], 1);
    assert_eq!(newest["assignee_id"], 1);
    assert_eq!(newest["status"], "open");
    assert_eq!(newest["done_at"], Value::Null);
    assert_eq!(newest["step"], 0);
    let run_id = newest["run_id"].as_i64().unwrap();
    let (status, run) = get!(app, &format!("/api/v1/runs/{run_id}"));
    assert_eq!(
        (status, &run["customer_id"]),
        (200, &json!(1)),
        "the task leads to its run"
    );
    assert_eq!(
        newest["due_at"],
        workflow_engine::clock::rfc3339(t0() + Span::minutes(5) + Span::hours(6))
    );

    // Filters, alone and combined.
    let (_, page) = get!(app, "/api/v1/tasks?customer_id=1");
    assert_eq!(ids(&page, "tasks").len(), 3);
    assert!(page["tasks"].as_array().unwrap().iter().all(|t| t["customer_id"] == 1));
    let (_, page) = get!(app, "/api/v1/tasks?agent_id=2");
    assert!(page["tasks"].as_array().unwrap().iter().all(|t| t["assignee_id"] == 2));
    assert_eq!(ids(&page, "tasks").len(), 2);
    let (_, page) = get!(app, "/api/v1/tasks?customer_id=1&agent_id=2");
    assert_eq!(ids(&page, "tasks"), Vec::<i64>::new());
    // Task i is due at t0 + i min + (i + 1) h: before t0 + 3h are tasks 0 and 1.
    let before = "2026-11-25T13:00:00Z";
    let (_, page) = get!(app, &format!("/api/v1/tasks?due_before={before}"));
    let titles: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["call 1", "call 0"]);
    let (_, page) = get!(app, &format!("/api/v1/tasks?due_after={before}&customer_id=1"));
    let titles: Vec<&str> = page["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["call 5", "call 3"]);

    // Paging: every task once, in order, whatever the page size.
    for limit in [1, 2, 4, 6, 7] {
        assert_eq!(walk!(app, "/api/v1/tasks", limit), all_ids, "limit {limit}");
    }
    let (_, of_one) = get!(app, "/api/v1/tasks?customer_id=1");
    assert_eq!(walk!(app, "/api/v1/tasks?customer_id=1", 2), ids(&of_one, "tasks"));

    // Bad filters: 400 naming the parameter.
    for (query, path) in [
        ("status=closed", Some("status")),
        ("due_before=yesterday", Some("due_before")),
        ("due_after=2026-13-01", Some("due_after")),
        ("cursor=abc", Some("cursor")),
        ("customer_id=abc", None),
        ("assignee_id=1", None),
    ] {
        let (status, body) = get!(app, &format!("/api/v1/tasks?{query}"));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{query}: {body}"
        );
        if let Some(path) = path {
            assert_eq!(body["error"]["path"], path, "{query}: {body}");
        }
    }
    t.finish().await;
}

#[actix_rt::test]
async fn a_task_is_marked_done_and_reopened() {
    let t = demo().await;
    let db = &t.db;
    run(db, 2, t0(), &[(task("call back", 1), 0), (task("send papers", 2), 1)]).await;
    let app = app!(db);
    let (_, all) = get!(app, "/api/v1/tasks?customer_id=2");
    let [second, first] = ids(&all, "tasks")[..] else {
        panic!("{all}")
    };
    let uri = format!("/api/v1/tasks/{first}");

    // A read token cannot change a task.
    let (status, body) = call!(app, Method::PATCH, &uri, READER, Some(json!({"status": "done"})));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    let (status, done) = call!(app, Method::PATCH, &uri, WRITER, Some(json!({"status": "done"})));
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["id"].as_i64(), &done["status"]), (Some(first), &json!("done")));
    let done_at = done["done_at"].as_str().expect("done_at").to_owned();

    let (_, page) = get!(app, "/api/v1/tasks?status=done");
    assert_eq!(ids(&page, "tasks"), [first]);
    assert_eq!(page["tasks"][0]["done_at"], done_at.as_str());
    let (_, page) = get!(app, "/api/v1/tasks?status=open&customer_id=2");
    assert_eq!(ids(&page, "tasks"), [second]);

    // Done again: still done, at the first time.
    let (status, again) = call!(app, Method::PATCH, &uri, WRITER, Some(json!({"status": "done"})));
    assert_eq!((status, &again["done_at"]), (200, &json!(done_at)), "{again}");

    // Reopened.
    let (status, open) = call!(app, Method::PATCH, &uri, WRITER, Some(json!({"status": "open"})));
    assert_eq!(
        (status, &open["status"], &open["done_at"]),
        (200, &json!("open"), &Value::Null),
        "{open}"
    );
    let (_, page) = get!(app, "/api/v1/tasks?status=done");
    assert_eq!(ids(&page, "tasks"), Vec::<i64>::new());

    // Unknown task: 404; anything but a status in the body: 422 with the pointer.
    let (status, body) = call!(
        app,
        Method::PATCH,
        "/api/v1/tasks/999999",
        WRITER,
        Some(json!({"status": "done"}))
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    for (bad, path) in [
        (json!({"status": "closed"}), "/status"),
        (json!({"status": true}), "/status"),
        (json!({}), "/status"),
        (json!({"status": "done", "title": "renamed"}), "/title"),
        (json!("done"), ""),
    ] {
        let (status, body) = call!(app, Method::PATCH, &uri, WRITER, Some(bad.clone()));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("invalid")),
            "{bad}: {body}"
        );
        assert_eq!(body["error"]["path"], path, "{bad}: {body}");
    }
    let (_, page) = get!(app, "/api/v1/tasks?customer_id=2&status=open");
    assert_eq!(ids(&page, "tasks").len(), 2, "a refused body changed nothing");
    t.finish().await;
}

/// The entries of a feed page.
fn entries(page: &Value) -> Vec<Value> {
    page["activity"]
        .as_array()
        .unwrap_or_else(|| panic!("no activity in {page}"))
        .clone()
}

/// A customer's feed walked page by page with `limit`, following `next_before`.
macro_rules! walk_feed {
    ($app:expr, $customer_id:expr, $limit:expr) => {{
        let (customer_id, limit): (i64, u64) = ($customer_id, $limit);
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let mut uri = format!("/api/v1/customers/{customer_id}/activity?limit={limit}");
            if let Some(b) = &before {
                uri.push_str(&format!("&before={}", urlencode(b)));
            }
            let (status, page) = get!($app, uri);
            assert_eq!(status, 200, "{uri}: {page}");
            let found = entries(&page);
            assert!(found.len() as u64 <= limit && all.len() < 1000, "{uri}: {page}");
            all.extend(found);
            match page["next_before"].as_str() {
                Some(b) => before = Some(b.to_owned()),
                None => break all,
            }
        }
    }};
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[actix_rt::test]
async fn the_activity_feed_merges_every_source_newest_first_and_pages_without_gaps() {
    let t = demo().await;
    let db = &t.db;
    // Customer 2 (agent 2, sales: new): a run that sets a status, assigns, creates a task
    // and adds a note, a second run whose three notes share one instant with its start,
    // and messages sent. Customer 1's activity must not show.
    let first = run(
        db,
        2,
        t0(),
        &[
            (
                Action::SetStatus {
                    status_type: "sales".into(),
                    status: StatusRef::Name("vip".into()),
                },
                1,
            ),
            (Action::AssignToAgent { agent_id: 3 }, 2),
            (task("welcome call", 1), 3),
            (
                Action::AddNote {
                    body: "first contact".into(),
                },
                4,
            ),
            (
                Action::SetStatus {
                    status_type: "sales".into(),
                    status: StatusRef::Name("vip".into()),
                },
                5,
            ),
        ],
    )
    .await;
    let later = t0() + Span::minutes(10);
    let note = |body: &str| (Action::AddNote { body: body.into() }, 0);
    let second = run(db, 2, later, &[note("a"), note("b"), note("c")]).await;
    run(db, 1, later, &[note("not customer 2's")]).await;
    let origin = Origin {
        run_id: Some(first),
        step_index: Some(9),
        customer_id: 2,
        partition: Some(0),
    };
    // Requests as the outbox keeps them (`OutboundRequest`), with a credential in the
    // headers and in the webhook's URL, and whole bodies: none of it may show.
    let email = json!({
        "kind": "email", "url": "http://mail.local/send",
        "headers": {"authorization": "Bearer s3cret"},
        "body": json!({"template": "welcome", "subject": "Welcome, Pedro", "body": "the whole letter"}).to_string(),
    });
    let sent_at = t0() + Span::minutes(5);
    outbox::enqueue(db, OutboxKind::Email, origin, email, "k-email", sent_at)
        .await
        .unwrap();
    let hook = json!({
        "kind": "webhook", "url": "https://user:pw@hooks.example.com/crm/in?token=s3cret",
        "headers": {}, "body": "{\"secret\": \"s3cret\"}",
    });
    let origin = Origin {
        step_index: Some(10),
        ..origin
    };
    outbox::enqueue(db, OutboxKind::Webhook, origin, hook, "k-hook", sent_at)
        .await
        .unwrap();

    let app = app!(db);
    let (_, tasks) = get!(app, "/api/v1/tasks?customer_id=2");
    let task_id = tasks["tasks"][0]["id"].as_i64().unwrap();
    let (status, _) = call!(
        app,
        Method::PATCH,
        &format!("/api/v1/tasks/{task_id}"),
        WRITER,
        Some(json!({"status": "done"}))
    );
    assert_eq!(status, 200);

    let (status, page) = get!(app, "/api/v1/customers/2/activity?limit=200");
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next_before"], Value::Null);
    let all = entries(&page);
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "task_done", // now
            "note",      // t0 + 10 min: the second run's three notes, then the run
            "note",
            "note",
            "run",
            "message", // t0 + 5 min: the webhook, then the email
            "message",
            "status_change", // t0 + 5 s: set again, unchanged
            "note",          // t0 + 4 s down to t0 + 1 s: the first run's steps
            "task_created",
            "assignment",
            "status_change",
            "run", // t0
        ],
        "{page:#}"
    );
    let times: Vec<DateTime<Utc>> = all
        .iter()
        .map(|e| {
            DateTime::parse_from_rfc3339(e["at"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    // Entries say what happened and lead to the rows behind them.
    assert_eq!(all[0]["task_id"], task_id);
    assert_eq!(all[0]["summary"], "task \"welcome call\" done");
    assert_eq!(
        (all[4]["run_id"].as_i64(), &all[4]["workflow_id"]),
        (Some(second), &json!("wf-test"))
    );
    assert_eq!(all[12]["run_id"], first);
    assert_eq!(all[11]["summary"], "sales: new -> vip");
    assert_eq!(all[7]["summary"], "sales: already vip, unchanged");
    assert_eq!((&all[10]["agent_id"], &all[10]["step"]), (&json!(3), &json!(1)));
    // Summaries name the agent; a workflow that is not stored keeps its id.
    let assigned = all[10]["summary"].as_str().unwrap();
    assert!(assigned.starts_with("assigned to Lucia LatAm"), "{assigned}");
    let ran = all[4]["summary"].as_str().unwrap();
    assert!(ran.starts_with("workflow \"wf-test\" v1"), "{ran}");
    assert_eq!(
        all[9]["summary"],
        "task \"welcome call\" created, due 2026-11-25T11:00:03Z"
    );
    assert_eq!(all[8]["summary"], "note by workflow:wf-test: first contact");
    let notes: Vec<&str> = all[1..4].iter().map(|e| e["summary"].as_str().unwrap()).collect();
    assert_eq!(
        notes,
        [
            "note by workflow:wf-test: c",
            "note by workflow:wf-test: b",
            "note by workflow:wf-test: a"
        ]
    );
    assert_eq!(
        all[5]["summary"],
        "webhook to hooks.example.com/crm/in (pending, 0 attempt(s))"
    );
    assert_eq!(
        all[6]["summary"],
        "email \"welcome\": Welcome, Pedro (pending, 0 attempt(s))"
    );
    assert_eq!((&all[6]["status"], &all[6]["step"]), (&json!("pending"), &json!(9)));
    let text = page.to_string();
    for secret in ["s3cret", "whole letter", "pw@", "customer 2's"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }

    // Every page size gives the same feed: nothing twice, nothing missing, across sources
    // and across entries that share an instant.
    for limit in [1, 2, 3, 5, 12, 13] {
        assert_eq!(walk_feed!(app, 2, limit), all, "limit {limit}");
    }

    // A bare time as `before`: only what is strictly older.
    let (status, older) = get!(
        app,
        &format!(
            "/api/v1/customers/2/activity?before={}",
            urlencode("2026-11-25T10:10:00Z")
        )
    );
    assert_eq!(status, 200, "{older}");
    assert_eq!(entries(&older), all[5..].to_vec());

    // An unknown customer, a bad cursor, a bad limit.
    let (status, body) = get!(app, "/api/v1/customers/999/activity");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    for query in [
        "before=yesterday",
        "before=2026-11-25T10:00:00Z~note~x~0",
        "limit=-1",
        "since=2026-11-25T10:00:00Z",
    ] {
        let (status, body) = get!(app, &format!("/api/v1/customers/2/activity?{query}"));
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{query}: {body}"
        );
    }
    // Reading the feed needs a token with the read scope, like every GET.
    let (status, _) = call!(app, Method::GET, "/api/v1/customers/2/activity", "t-nobody", None);
    assert_eq!(status, 401);
    t.finish().await;
}

/// The Customers page's list: by id, or a first name, last name or e-mail prefix in any
/// case, newest first, paged; a search too long is a 400 naming `q`.
#[actix_rt::test]
async fn customers_are_found_by_id_name_or_email_prefix() {
    let t = demo().await;
    let app = app!(&t.db);
    let found = |body: &Value| ids(body, "customers");
    // Bruno Lima, and Dieter Braun by his last name.
    let (status, b) = get!(app, "/api/v1/customers?q=b");
    assert_eq!(status, 200, "{b}");
    assert_eq!(found(&b), [4, 2]);
    assert_eq!(b["customers"][0]["first_name"], "Dieter");
    let (_, sou) = get!(app, "/api/v1/customers?q=SOU");
    assert_eq!(found(&sou), [1], "any case: {sou}");
    let (_, mail) = get!(app, "/api/v1/customers?q=emma.c");
    assert_eq!(found(&mail), [5], "{mail}");
    let (_, by_id) = get!(app, "/api/v1/customers?q=3");
    assert_eq!(found(&by_id), [3], "{by_id}");
    let (_, none) = get!(app, "/api/v1/customers?q=zz");
    assert!(found(&none).is_empty());

    let (_, first) = get!(app, "/api/v1/customers?limit=2");
    assert_eq!(found(&first), [5, 4]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = get!(app, &format!("/api/v1/customers?limit=2&cursor={cursor}"));
    assert_eq!(found(&second), [3, 2]);

    let long = "x".repeat(101);
    let (status, refused) = get!(app, &format!("/api/v1/customers?q={long}"));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["path"], "q");
    t.finish().await;
}

/// HTTP requests are counted by route pattern, never by the path a caller sends, so any
/// number of ids makes one series; the database pool is reported at each scrape.
#[actix_rt::test]
async fn http_requests_are_counted_by_route_and_the_pool_is_reported() {
    let t = demo().await;
    let app = app!(&t.db);
    for id in [1, 2, 999_999] {
        let _ = get!(app, &format!("/api/v1/customers/{id}"));
    }
    let response = atest::call_service(&app, atest::TestRequest::get().uri("/metrics").to_request()).await;
    let text = String::from_utf8(atest::read_body(response).await.to_vec()).unwrap();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wfe_http_requests_total{") && l.contains("/api/v1/customers/"))
        .collect();
    assert!(
        series.iter().all(|l| l.contains(r#"route="/api/v1/customers/{id}""#)),
        "{series:?}"
    );
    assert!(series.iter().any(|l| l.contains(r#"status="200""#)), "{series:?}");
    assert!(series.iter().any(|l| l.contains(r#"status="404""#)), "{series:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(r#"wfe_db_pool_connections{state="max"}"#)),
        "{text}"
    );
    t.finish().await;
}
