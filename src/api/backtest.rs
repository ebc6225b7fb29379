//! POST /api/v1/backtest: drafts or saved workflows judged against the event archive,
//! with no side effects ([`crate::backtest`]).

use super::{ApiError, AppState, ErrorBody};
use crate::backtest::{Backtest, DEFAULT_EVENTS, MAX_EVENTS, MAX_WORKFLOWS};
use crate::problem::{json_type_name, Pointer, Problem, Problems, Severity};
use crate::storage::archive;
use crate::storage::{statuses, workflows};
use crate::validate::Validator;
use crate::workflow::Workflow;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// What the request asks for, validated.
struct Request {
    workflows: Vec<Workflow>,
    since: Option<DateTime<Utc>>,
    limit: u64,
}

async fn parse(state: &AppState, body: Value) -> Result<Request, ApiError> {
    let root = Pointer::root();
    let mut problems = Problems::default();
    let Value::Object(body) = body else {
        problems.error(
            &root,
            format!(
                "expected {{\"workflows\"?, \"workflow_ids\"?, \"since\"?, \"limit\"?}}, got {}",
                json_type_name(&body)
            ),
        );
        return Err(ApiError::invalid(problems.into_vec()));
    };
    for key in body.keys() {
        if !["workflows", "workflow_ids", "since", "limit"].contains(&key.as_str()) {
            problems.error(
                &root.key(key),
                format!("unknown key {key:?}: expected workflows, workflow_ids, since or limit"),
            );
        }
    }
    let mut chosen = Vec::new();
    let mut draft_errors: Vec<Problem> = Vec::new();
    match body.get("workflows") {
        None | Some(Value::Null) => {}
        // Counted before anything is validated: validation costs time per draft.
        Some(Value::Array(drafts)) if drafts.len() > MAX_WORKFLOWS => problems.error(
            &root.key("workflows"),
            format!(
                "has {} workflows; one backtest judges at most {MAX_WORKFLOWS}",
                drafts.len()
            ),
        ),
        Some(Value::Array(drafts)) => {
            let schema = statuses::field_schema(state.db.connection()).await?;
            let validator = Validator::new(&schema, state.limits);
            for (i, draft) in drafts.iter().enumerate() {
                match validator.at(draft, &root.key("workflows").index(i)) {
                    Ok(v) => {
                        let mut w = v.workflow;
                        w.id = Some(w.id.unwrap_or_else(|| format!("draft-{i}")));
                        chosen.push(w);
                    }
                    // The validator's own problems, with paths into this body.
                    Err(invalid) => {
                        draft_errors.extend(invalid.problems.into_iter().filter(|p| p.severity == Severity::Error))
                    }
                }
            }
        }
        Some(other) => problems.error(
            &root.key("workflows"),
            format!("expected a list of workflow definitions, got {}", json_type_name(other)),
        ),
    }
    let mut ids = Vec::new();
    match body.get("workflow_ids") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() > MAX_WORKFLOWS => problems.error(
            &root.key("workflow_ids"),
            format!("has {} ids; one backtest judges at most {MAX_WORKFLOWS}", items.len()),
        ),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(id) => ids.push((i, id.to_owned())),
                    None => problems.error(
                        &root.key("workflow_ids").index(i),
                        format!("expected a workflow id, got {}", json_type_name(item)),
                    ),
                }
            }
        }
        Some(other) => problems.error(
            &root.key("workflow_ids"),
            format!("expected a list of workflow ids, got {}", json_type_name(other)),
        ),
    }
    let since = match body.get("since") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                problems.error(&root.key("since"), format!("expected an RFC 3339 timestamp, got {s:?}"));
                None
            }
        },
        Some(other) => {
            problems.error(
                &root.key("since"),
                format!("expected an RFC 3339 timestamp, got {}", json_type_name(other)),
            );
            None
        }
    };
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_EVENTS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_EVENTS).contains(&n) => n,
            _ => {
                problems.error(
                    &root.key("limit"),
                    format!("expected a whole number of events from 1 to {MAX_EVENTS}, got {v}"),
                );
                DEFAULT_EVENTS
            }
        },
    };
    if problems.has_errors() || !draft_errors.is_empty() {
        draft_errors.extend(problems.into_vec());
        return Err(ApiError::invalid(draft_errors));
    }
    // Saved workflows by id, as stored (their current version); without drafts or ids,
    // the active ones.
    let by_id = !ids.is_empty() || body.get("workflows").is_some_and(|w| !w.is_null());
    let stored = crate::live::active(&state.db, state.limits).await?;
    if by_id {
        let mut missing = Problems::default();
        for (i, id) in ids {
            match stored.iter().find(|w| w.id.as_deref() == Some(id.as_str())) {
                Some(w) => chosen.push(w.clone()),
                None => match workflows::get(state.db.connection(), &id).await? {
                    // An inactive workflow can be backtested too: before it is switched on.
                    Some(row) => {
                        match Validator::new(&statuses::field_schema(state.db.connection()).await?, state.limits)
                            .workflow(&row.definition)
                        {
                            Ok(v) => chosen.push(v.workflow),
                            Err(_) => missing.error(
                                &root.key("workflow_ids").index(i),
                                format!("workflow {id:?} no longer validates; fix it first"),
                            ),
                        }
                    }
                    None => missing.error(&root.key("workflow_ids").index(i), format!("workflow {id:?} not found")),
                },
            }
        }
        if missing.has_errors() {
            return Err(ApiError::invalid(missing.into_vec()));
        }
    } else {
        chosen = stored;
    }
    if chosen.len() > MAX_WORKFLOWS {
        let what = if by_id {
            "asked for"
        } else {
            "active: name some with workflow_ids"
        };
        return Err(ApiError::invalid(vec![Problem {
            path: String::new(),
            message: format!(
                "{} workflows {what}; one backtest judges at most {MAX_WORKFLOWS}",
                chosen.len()
            ),
            severity: Severity::Error,
        }]));
    }
    Ok(Request {
        workflows: chosen,
        since,
        limit,
    })
}

/// POST /api/v1/backtest
#[utoipa::path(post, path = "/api/v1/backtest", tag = "workflows",
    request_body(content = Object, description = "`{\"workflows\"?: [definitions], \"workflow_ids\"?: [ids], \"since\"?: RFC 3339, \"limit\"?: 1..100000 (default 10000)}`; neither workflows nor ids = the active workflows"),
    responses((status = 200, description = "`{\"events\": n, \"workflows\": [{\"workflow_id\", \"matched\", \"limited\", \"sample\": [{\"event_id\", \"customer_id\", \"actions\"}]}]}`"),
        (status = 422, body = ErrorBody)))]
pub async fn backtest(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let request = parse(&state, body.into_inner()).await?;
    let report = run(&state, request).await?;
    Ok(HttpResponse::Ok().json(json!(report)))
}

async fn run(state: &AppState, request: Request) -> Result<crate::backtest::Report, ApiError> {
    let mut backtest = Backtest::new(request.workflows, &state.limits).map_err(|e| {
        ApiError::invalid(vec![Problem {
            path: String::new(),
            message: e.to_string(),
            severity: Severity::Error,
        }])
    })?;
    let triggers = backtest.triggers();
    archive::replay(
        state.db.connection(),
        &triggers,
        request.since,
        request.limit,
        |event, customer| backtest.observe(event, customer),
    )
    .await?;
    Ok(backtest.finish())
}
