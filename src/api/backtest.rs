//! POST /api/v1/backtest: drafts or saved workflows judged against the event archive,
//! with no side effects ([`crate::backtest`]).
//!
//! A heavy request ([`super::heavy`]): admitted by the pool or answered 429; the drafts are
//! counted against the work budget before any is validated, validation, compilation and
//! judging run on a blocking thread within the time budget, and the archive is read a
//! page at a time between them, so no connection is held across the run.

use super::heavy::Admitted;
use super::{ApiError, AppState, ErrorBody};
use crate::backtest::{Backtest, BacktestError, DEFAULT_EVENTS, MAX_EVENTS, MAX_WORKFLOWS};
use crate::budget::{BudgetError, Tally};
use crate::guards::contact::ContactPolicy;
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
    /// A contact policy to replay over the matches' messages.
    contact_policy: Option<ContactPolicy>,
}

async fn parse(state: &AppState, admitted: &Admitted, body: Value) -> Result<Request, ApiError> {
    let root = Pointer::root();
    let mut problems = Problems::default();
    let Value::Object(mut body) = body else {
        problems.error(
            &root,
            format!(
                "expected {{\"workflows\"?, \"workflow_ids\"?, \"since\"?, \"limit\"?, \"contact_policy\"?}}, got {}",
                json_type_name(&body)
            ),
        );
        return Err(ApiError::invalid(problems.into_vec()));
    };
    for key in body.keys() {
        if !["workflows", "workflow_ids", "since", "limit", "contact_policy"].contains(&key.as_str()) {
            problems.error(
                &root.key(key),
                format!("unknown key {key:?}: expected workflows, workflow_ids, since, limit or contact_policy"),
            );
        }
    }
    let contact_policy = match body.remove("contact_policy") {
        None | Some(Value::Null) => None,
        Some(policy) => ContactPolicy::at(&policy, &root.key("contact_policy"), &mut problems),
    };
    let budget = admitted.budget();
    let mut tally = Tally::new(budget, &state.limits);
    let by_drafts = body.get("workflows").is_some_and(|w| !w.is_null());
    let mut drafts = Vec::new();
    match body.remove("workflows") {
        None | Some(Value::Null) => {}
        // Counted before anything is validated: validation costs time per draft.
        Some(Value::Array(given)) if given.len() > MAX_WORKFLOWS => problems.error(
            &root.key("workflows"),
            format!(
                "has {} workflows; one backtest judges at most {MAX_WORKFLOWS}",
                given.len()
            ),
        ),
        // And their rules and regexes against the work budget, before any is compiled.
        Some(Value::Array(given)) => {
            for (i, draft) in given.iter().enumerate() {
                tally.add(draft, &root.key("workflows").index(i))?;
            }
            drafts = given;
        }
        Some(other) => problems.error(
            &root.key("workflows"),
            format!(
                "expected a list of workflow definitions, got {}",
                json_type_name(&other)
            ),
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
    // Without a limit, the default or the budget, whichever is less; a limit past the
    // budget is refused rather than cut, so a report never covers fewer events than asked.
    let limit = match body.get("limit") {
        None | Some(Value::Null) => DEFAULT_EVENTS.min(budget.max_events.max(1)),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_EVENTS).contains(&n) => {
                if n > budget.max_events {
                    return Err(BudgetError::Events {
                        asked: n,
                        max: budget.max_events,
                        path: root.key("limit").as_str().to_owned(),
                    }
                    .into());
                }
                n
            }
            _ => {
                problems.error(
                    &root.key("limit"),
                    format!("expected a whole number of events from 1 to {MAX_EVENTS}, got {v}"),
                );
                DEFAULT_EVENTS
            }
        },
    };
    let mut chosen = Vec::new();
    let mut draft_errors: Vec<Problem> = Vec::new();
    if !drafts.is_empty() {
        let schema = statuses::field_schema(state.db.connection()).await?;
        let limits = state.limits;
        (chosen, draft_errors) = admitted
            .cpu(move |deadline| {
                let validator = Validator::new(&schema, limits);
                let (mut chosen, mut errors) = (Vec::new(), Vec::new());
                for (i, draft) in drafts.iter().enumerate() {
                    deadline.check()?;
                    match validator.at(draft, &Pointer::root().key("workflows").index(i)) {
                        Ok(v) => {
                            let mut w = v.workflow;
                            w.id = Some(w.id.unwrap_or_else(|| format!("draft-{i}")));
                            chosen.push(w);
                        }
                        // The validator's own problems, with paths into this body.
                        Err(invalid) => {
                            errors.extend(invalid.problems.into_iter().filter(|p| p.severity == Severity::Error))
                        }
                    }
                }
                Ok((chosen, errors))
            })
            .await?;
    }
    if problems.has_errors() || !draft_errors.is_empty() {
        draft_errors.extend(problems.into_vec());
        return Err(ApiError::invalid(draft_errors));
    }
    // Saved workflows by id, as stored (their current version); without drafts or ids,
    // the active ones. Read on the worker (short queries), judged on a blocking thread.
    let by_id = !ids.is_empty() || by_drafts;
    let active = workflows::list_active(state.db.connection()).await?;
    let mut named = Vec::new();
    if by_id {
        let mut missing = Problems::default();
        for (i, id) in ids {
            let at = root.key("workflow_ids").index(i);
            match active.iter().find(|row| row.id == id) {
                Some(row) => named.push((at, row.clone())),
                // An inactive workflow can be backtested too: before it is switched on.
                None => match workflows::get(state.db.connection(), &id).await? {
                    Some(row) => named.push((at, row)),
                    None => missing.error(&at, format!("workflow {id:?} not found")),
                },
            }
        }
        if missing.has_errors() {
            return Err(ApiError::invalid(missing.into_vec()));
        }
    } else {
        if active.len() > MAX_WORKFLOWS {
            return Err(too_many(active.len(), false));
        }
        named = active.into_iter().map(|row| (root.clone(), row)).collect();
    }
    // The saved ones count against the same budget as the drafts: they are compiled alike.
    for (at, row) in &named {
        tally
            .add(&row.definition, &Pointer::root())
            .map_err(|e| e.at(at.as_str()))?;
    }
    let schema = statuses::field_schema(state.db.connection()).await?;
    let limits = state.limits;
    let stored = admitted
        .cpu(move |deadline| {
            let validator = Validator::new(&schema, limits);
            let mut stored = Vec::new();
            let mut stale = Problems::default();
            for (at, row) in named {
                deadline.check()?;
                match validator.workflow(&row.definition) {
                    Ok(v) => stored.push(v.workflow),
                    Err(_) if by_id => {
                        stale.error(&at, format!("workflow {:?} no longer validates; fix it first", row.id))
                    }
                    Err(e) => tracing::error!(workflow_id = %row.id, error = %e, "stored workflow left out"),
                }
            }
            if stale.has_errors() {
                return Err(ApiError::invalid(stale.into_vec()));
            }
            Ok(stored)
        })
        .await?;
    chosen.extend(stored);
    if chosen.len() > MAX_WORKFLOWS {
        return Err(too_many(chosen.len(), by_id));
    }
    Ok(Request {
        workflows: chosen,
        since,
        limit,
        contact_policy,
    })
}

fn too_many(count: usize, by_id: bool) -> ApiError {
    let what = if by_id {
        "asked for"
    } else {
        "active: name some with workflow_ids"
    };
    ApiError::invalid(vec![Problem {
        path: String::new(),
        message: format!("{count} workflows {what}; one backtest judges at most {MAX_WORKFLOWS}"),
        severity: Severity::Error,
    }])
}

/// POST /api/v1/backtest
#[utoipa::path(post, path = "/api/v1/backtest", tag = "workflows",
    request_body(content = Object, description = "`{\"workflows\"?: [definitions], \"workflow_ids\"?: [ids], \"since\"?: RFC 3339, \"limit\"?: 1..100000 (default 10000), \"contact_policy\"?: a policy to replay over the matches' messages}`; neither workflows nor ids = the active workflows"),
    responses((status = 200, description = "how many archived events were read, and per workflow how many it matched, how many its limits would hold back, and a sample", body = crate::backtest::Report),
        (status = 422, body = ErrorBody, description = "invalid, or `work_budget_exceeded`"),
        (status = 429, body = ErrorBody, description = "`busy`: the heavy-request pool is full; see `Retry-After`"),
        (status = 503, body = ErrorBody, description = "`time_budget_exceeded`")))]
pub async fn backtest(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let admitted = state.heavy.admit("backtest")?;
    let request = parse(&state, &admitted, body.into_inner()).await?;
    let report = run(&state, &admitted, request).await?;
    Ok(HttpResponse::Ok().json(json!(report)))
}

async fn run(state: &AppState, admitted: &Admitted, request: Request) -> Result<crate::backtest::Report, ApiError> {
    let Request {
        workflows,
        since,
        limit,
        contact_policy,
    } = request;
    let limits = state.limits;
    let backtest = admitted
        .cpu(move |deadline| {
            let backtest = Backtest::within(workflows, &limits, deadline);
            backtest
                .map(|b| match contact_policy {
                    Some(policy) => b.with_contact_policy(policy),
                    None => b,
                })
                .map_err(|e| match e {
                    BacktestError::Budget(e) => e.into(),
                    BacktestError::Build(e) => ApiError::invalid(vec![Problem {
                        path: String::new(),
                        message: e.to_string(),
                        severity: Severity::Error,
                    }]),
                })
        })
        .await?;
    let pages = archive::Replay::new(backtest.triggers(), since, limit);
    let backtest = admitted
        .judge_archive(state.db.connection(), pages, backtest, Backtest::observe)
        .await?;
    admitted.cpu(move |_| Ok(backtest.finish())).await
}
