//! Issue 25's event inspector, through the engine (embedded broker, the archiver, the
//! runner) and the HTTP API in process: GET /api/v1/events/{id} says, for every workflow
//! of the event's trigger, what planning decided and why, as recorded with the plan.

mod common;
#[path = "common/engine.rs"]
#[macro_use]
mod engine;

use actix_web::{test as atest, App};
use serde_json::{json, Value};
use workflow_engine::api::{self, Auth};

/// `GET path` against the API over `db` with no tokens configured: `(status, body)`.
async fn get(db: &workflow_engine::storage::Database, path: &str) -> (u16, Value) {
    let state = common::api_state(db);
    let auth = Auth::new("", &[], false).unwrap();
    let app = atest::init_service(App::new().configure(move |cfg| api::configure(cfg, state, 1 << 20, auth))).await;
    let response = atest::call_service(&app, atest::TestRequest::get().uri(path).to_request()).await;
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&atest::read_body(response).await).unwrap_or(Value::Null),
    )
}

fn verdicts(body: &Value) -> Vec<(String, String)> {
    body["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().to_owned(),
                w["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn the_inspector_says_why_each_workflow_did_or_did_not_run() {
    let mut e = engine::Engine::new(|_| {}).await;
    e.add_customers(1..=1).await;
    let note = |body: &str| json!([{"type": "add_note", "params": {"body": body}}]);
    e.add_workflow(
        json!({"name": "once", "trigger_event": "customer.deposited", "priority": 5,
        "limits": {"once_per_customer": true}, "actions": note("once")}),
    )
    .await;
    e.add_workflow(
        json!({"name": "big", "trigger_event": "customer.deposited", "priority": 10,
        "conditions": {"match": "all", "rules": [
            {"field": "event.currency", "operator": "eq", "value": "USD"},
            {"field": "event.amount", "operator": "gte", "value": 1000}]},
        "actions": note("big")}),
    )
    .await;
    e.add_workflow(
        json!({"name": "stopper", "trigger_event": "customer.deposited", "priority": 20,
        "stop_after": true, "conditions": {"field": "event.amount", "operator": "gte", "value": 500},
        "actions": note("stopper")}),
    )
    .await;
    e.add_workflow(
        json!({"name": "later", "trigger_event": "customer.deposited", "priority": 30,
        "actions": note("later")}),
    )
    .await;
    e.start().await;
    let deposit = |id: &str| {
        json!({"id": id, "type": "customer.deposited", "customer_id": 1,
        "data": {"amount": 700, "currency": "USD"}})
    };
    e.publish(&deposit("d1")).await;
    e.publish(&deposit("d2")).await;
    e.publish(&json!({"id": "x1", "type": "customer.somersaulted", "customer_id": 1, "data": {}}))
        .await;
    let db = e.db().clone();
    eventually!(
        "both deposits' runs to end and every event archived",
        engine::PATIENCE,
        {
            let runs = engine::runs_where(&db, Default::default()).await;
            let ended = runs.len() == 3 && engine::all_ended(&runs);
            let (status, body) = get(&db, "/api/v1/events/x1").await;
            (ended && status == 200 && !body["event"].is_null()).then_some(())
        }
    );

    let (status, first) = get(&db, "/api/v1/events/d1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["planned"], json!(true));
    assert_eq!(first["event"]["data"], json!({"amount": 700, "currency": "USD"}));
    assert_eq!(
        verdicts(&first),
        [
            ("once", "matched"),
            ("big", "no_match"),
            ("stopper", "matched"),
            ("later", "skipped")
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
    let big = &first["workflows"][1];
    // The rule that failed and what it saw; the currency rule held and is not blamed.
    assert_eq!(big["failing"].as_array().unwrap().len(), 1, "{big}");
    assert_eq!(big["failing"][0]["field"], json!("event.amount"));
    assert_eq!(big["failing"][0]["saw"], json!(700));
    let stopper_id = first["workflows"][2]["workflow_id"].clone();
    assert_eq!(first["workflows"][3]["skipped_by"], stopper_id);
    assert_eq!(first["workflows"][0]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(first["runs"].as_array().unwrap().len(), 2);

    // The second deposit: "once" matched again, but its limit held the customer back.
    let (_, second) = get(&db, "/api/v1/events/d2").await;
    assert_eq!(second["workflows"][0]["verdict"], json!("limited"), "{second}");
    assert_eq!(second["workflows"][0]["limits"], json!({"once_per_customer": true}));
    assert_eq!(second["workflows"][0]["runs"], json!([]));
    // "Jump to the runs": the runs API filters by event.
    let (_, runs) = get(&db, "/api/v1/runs?event_id=d2").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");

    // No workflow listens to this type: archived, never planned, and the answer says why.
    let (_, unplanned) = get(&db, "/api/v1/events/x1").await;
    assert_eq!(unplanned["planned"], json!(false));
    assert!(unplanned["explanation"]
        .as_str()
        .unwrap()
        .contains("no active workflow listened"));
    let (status, _) = get(&db, "/api/v1/events/never-sent").await;
    assert_eq!(status, 404);

    // The customer's archived events, newest first, paged, each a way into the inspector.
    let (status, page) = get(&db, "/api/v1/events?customer_id=1&limit=2").await;
    assert_eq!(status, 200, "{page}");
    let ids = |body: &Value| -> Vec<String> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&page), ["x1", "d2"]);
    let before = page["next_before"].as_i64().unwrap();
    let (_, rest) = get(&db, &format!("/api/v1/events?customer_id=1&limit=2&before={before}")).await;
    assert_eq!(ids(&rest), ["d1"]);
    assert_eq!(rest["next_before"], Value::Null);
    let (status, _) = get(&db, "/api/v1/events").await;
    assert_eq!(status, 400, "a customer is required");
    e.finish().await;
}
