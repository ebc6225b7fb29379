//! Security issue 22, finding 1: templates whose cost grows without bound. A loop variable
//! re-bound through nested `for` loops doubles a string per level, and a `list`/`string`
//! filter chain does the same with no loop; printing only the `length` kept the output
//! under the cap while the engine allocated gigabytes. The template language now has no
//! construct that makes a value grow, so these are refused when saved (a 422 naming the
//! param), fail fast when rendered, keep a stored workflow out of the live set and fail
//! its step permanently.

#[path = "common/attacks.rs"]
mod attacks;
mod common;

use actix_web::{test as atest, App};
use attacks::{doubling_loops, filter_chain};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use workflow_engine::actions::{run_internal_step, ActionError, StepContext};
use workflow_engine::api;
use workflow_engine::catalogue::Action;
use workflow_engine::conditions::{Facts, Limits};
use workflow_engine::envelope::EventEnvelope;
use workflow_engine::retry::{Classify, Verdict};
use workflow_engine::schema::FieldSchema;
use workflow_engine::storage::runs::{self, PlannedRun};
use workflow_engine::storage::{seed, workflows, Database};
use workflow_engine::template;
use workflow_engine::validate::Validator;

fn note_workflow(body: &str) -> Value {
    json!({"name": "bomb", "trigger_event": "customer.deposited",
           "actions": [{"type": "add_note", "params": {"body": body}}]})
}

/// One request to the API (no auth), answering the status and the JSON body.
async fn call(db: &Database, path: &str, body: Value) -> (u16, Value) {
    let state = common::api_state(db);
    let app = atest::init_service(
        App::new().configure(move |cfg| api::configure(cfg, state, 4 << 20, Option::<String>::None)),
    )
    .await;
    let req = atest::TestRequest::post().uri(path).set_json(body);
    let resp = atest::call_service(&app, req.to_request()).await;
    let status = resp.status().as_u16();
    let bytes = atest::read_body(resp).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `(path, message)` of each detail of a 422.
fn details(body: &Value) -> Vec<(String, String)> {
    body["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_owned(),
                d["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn the_growing_templates_are_a_422_naming_the_param_when_saved() {
    let test = common::fresh().await;
    let db = &test.db;
    for (source, construct) in [(doubling_loops(22), "for"), (filter_chain(12), "list")] {
        for path in ["/api/v1/workflows/validate", "/api/v1/workflows"] {
            let (status, body) = call(db, path, note_workflow(&source)).await;
            assert_eq!(status, 422, "{path} {source}: {body}");
            let details = details(&body);
            assert_eq!(details.len(), 1, "{body}");
            assert_eq!(details[0].0, "/actions/0/params/body", "{body}");
            assert!(details[0].1.contains(construct), "{construct}: {body}");
        }
        // The read-token route: a dry run of a draft validates it first.
        let dry_run = json!({"event": {"id": "e-1", "type": "customer.deposited", "customer_id": 1,
                                        "data": {"x": "0123456789abcdef"}},
                             "customer": {"id": 1}, "workflows": [note_workflow(&source)]});
        let (status, body) = call(db, "/api/v1/dry-run", dry_run).await;
        assert_eq!(status, 422, "dry run {source}: {body}");
        let details = details(&body);
        assert_eq!(details[0].0, "/workflows/0/actions/0/params/body", "{body}");
        assert!(details[0].1.contains(construct), "{construct}: {body}");
    }
    test.finish().await;
}

#[test]
fn the_growing_templates_fail_fast_when_rendered() {
    // 16 bytes doubled 20 times would be 16 MiB; the filter chain about 20 MiB of values.
    let context = json!({"event": {"x": "0123456789abcdef"}});
    for source in [doubling_loops(20), filter_chain(8)] {
        let started = Instant::now();
        let rendered = template::render(&source, &context);
        assert!(rendered.is_err(), "{source}: {rendered:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "{source}");
    }
}

/// A workflow saved before the language changed (stored as it was, not through the API)
/// no longer validates: the live set leaves it out and keeps the others.
#[actix_rt::test]
async fn a_stored_workflow_in_the_old_language_is_left_out_of_the_live_set() {
    let test = common::fresh().await;
    let db = &test.db;
    let schema = FieldSchema::default();
    let validator = Validator::new(&schema, Limits::default());
    let good = validator
        .workflow(&note_workflow("hello {{ customer.first_name }}"))
        .unwrap()
        .workflow;
    let mut old = good.clone();
    old.name = "old".into();
    let body = "{% for t in customer.tags %}{{ t }}{% endfor %}".to_owned();
    old.actions[0].action = Action::AddNote { body: body.clone() };
    old.actions[0].params.insert("body".into(), Value::from(body));
    let good_id = workflows::create(db, &good, "test").await.unwrap().id;
    workflows::create(db, &old, "test").await.unwrap();

    let live = workflow_engine::live::active(db, Limits::default()).await.unwrap();
    let ids: Vec<_> = live.iter().filter_map(|w| w.id.clone()).collect();
    assert_eq!(ids, [good_id]);
    test.finish().await;
}

/// A run recorded before the change reaches a step whose template the language no longer
/// has: the step fails with a clear, permanent error (not retried, no panic).
#[actix_rt::test]
async fn a_step_rendering_an_old_template_fails_permanently() {
    let test = common::fresh().await;
    let db = &test.db;
    seed::load_demo(db, "http://127.0.0.1:9/hook").await.unwrap();
    let action = Action::AddNote {
        body: doubling_loops(30),
    };
    let event = EventEnvelope::from_value(json!({"id": "old-1", "type": "customer.deposited", "customer_id": 5,
                                                 "data": {"x": "0123456789abcdef"}}))
    .unwrap();
    let planned = [PlannedRun {
        workflow_id: "wf-old".into(),
        workflow_version: 1,
        steps: vec![action.kind()],
        paths: Vec::new(),
        limit: None,
        held_out: false,
        goal: None,
    }];
    let fence = common::fence(db, 0).await;
    let recorded = runs::record_runs(db, fence, &event, &planned, common::t0())
        .await
        .unwrap();
    let customer = serde_json::Map::new();
    let context = template::context(&Facts::new(&event, &customer));
    let ctx = StepContext {
        fence,
        run_id: recorded.runs[0].run.id,
        step_index: 0,
        next_step: 1,
        customer_id: 5,
        workflow_id: "wf-old",
        facts_context: &context,
        now: common::t0(),
    };
    let outcome = run_internal_step(db, &ctx, &action).await;
    match outcome {
        Err(e @ ActionError::Template(_)) => {
            assert_eq!(e.verdict(), Verdict::Permanent);
            assert!(e.to_string().contains("for"), "{e}");
        }
        other => panic!("expected a template error, got {other:?}"),
    }
    test.finish().await;
}
