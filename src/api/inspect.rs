//! GET /api/v1/events/{id}: the event inspector (and GET /api/v1/events, a customer's
//! archived events, to find one). Why did (or didn't) a workflow run for
//! this event: the archived event, and for every workflow of its trigger the verdict
//! recorded with its plan (matched, no match with the rules that decided it and what they
//! saw, skipped by a `stop_after` workflow, held back by its limit, stopped by the
//! cascade's budget), with the runs it started. An event with no plan never reached the
//! database's planning: the answer says what can keep one out.

use super::runs::run_json;
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::storage::runs::{self, RunFilter};
use crate::storage::{archive, plans, workflows};
use crate::verdict::{kind, Verdict};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// What an event with no recorded plan may have met.
const NOT_PLANNED: &str = "not planned: when it arrived no active workflow listened to its type or could \
     match it (the matcher let it go before the database), it was past engine.max_cascade_depth, or it \
     has not been handled yet";

#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "inspect_event", tag = "events",
    params(("id" = String, Path, description = "the event's id")),
    responses(
        (status = 200, description = "`{\"event_id\", \"event\", \"archived_at\", \"planned\", \"planned_at\", \"partition\", \"explanation\", \"workflows\": [{\"workflow_id\", \"name\", \"version\", \"verdict\", \"failing\"?, \"skipped_by\"?, \"limits\"?, \"runs\"}], \"runs\"}`; `verdict` is matched, held_out, no_match, skipped, limited or stopped"),
        (status = 404, description = "the engine knows no event with this id (not archived, not planned)", body = ErrorBody)))]
pub async fn inspect(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let conn = state.db.connection();
    let archived = archive::get(conn, &id).await?;
    let plan = plans::inspect(conn, &id).await?;
    let filter = RunFilter {
        event_id: Some(id.clone()),
        limit: Some(super::MAX_LIST_LIMIT),
        ..Default::default()
    };
    let mut found = runs::list(conn, &filter).await?;
    found.reverse(); // in plan order, oldest first
    if archived.is_none() && plan.is_none() && found.is_empty() {
        return Err(ApiError::not_found(format!("no event {id:?} is archived or planned")));
    }
    let event = archived.as_ref().map(|a| {
        json!({"id": a.event_id, "type": a.event_type, "customer_id": a.customer_id,
               "occurred_at": rfc3339(a.occurred_at), "data": a.payload})
    });
    let Some(plan) = plan else {
        return Ok(HttpResponse::Ok().json(json!({
            "event_id": id, "event": event, "archived_at": archived.map(|a| rfc3339(a.archived_at)),
            "planned": false, "explanation": NOT_PLANNED, "workflows": [],
            "runs": found.iter().map(run_json).collect::<Vec<_>>(),
        })));
    };
    // Plans recorded before verdicts were: what they matched is all they say.
    let verdicts = plan.verdicts.unwrap_or_else(|| {
        let version = |w: &String| {
            found
                .iter()
                .find(|r| &r.run.workflow_id == w)
                .map_or(1, |r| r.run.workflow_version)
        };
        plan.workflows.iter().map(|w| Verdict::matched(w, version(w))).collect()
    });
    // The names in one query for the whole list, as the activity feed reads them.
    let ids: Vec<String> = verdicts.iter().map(|v| v.workflow_id.clone()).collect();
    let names = workflows::names(conn, &ids).await?;
    let mut shown = Vec::with_capacity(verdicts.len());
    for verdict in &verdicts {
        let its_runs: Vec<Value> = found
            .iter()
            .filter(|r| r.run.workflow_id == verdict.workflow_id)
            .map(|r| json!({"id": r.run.id, "status": r.run.status}))
            .collect();
        let mut entry = json!({
            "workflow_id": verdict.workflow_id,
            "name": names.get(&verdict.workflow_id),
            "version": verdict.version,
            "verdict": verdict.verdict,
            "runs": its_runs,
        });
        if !verdict.failing.is_empty() {
            entry["failing"] = Value::from(verdict.failing.clone());
        }
        if let Some(by) = &verdict.skipped_by {
            entry["skipped_by"] = Value::from(by.clone());
        }
        // A matched workflow without a run for the event: its limit held the customer back
        // in the transaction that recorded the plan.
        if (verdict.verdict == kind::MATCHED || verdict.verdict == kind::HELD_OUT) && its_runs.is_empty() {
            entry["verdict"] = Value::from("limited");
            let version = workflows::version(conn, &verdict.workflow_id, verdict.version).await?;
            entry["limits"] = version
                .and_then(|v| v.definition.get("limits").cloned())
                .unwrap_or(Value::Null);
        }
        shown.push(entry);
    }
    let ran = shown
        .iter()
        .filter(|w| !w["runs"].as_array().is_some_and(Vec::is_empty))
        .count();
    let explanation = match (verdicts.len(), ran) {
        (0, _) => "planned: no active workflow of its trigger was there to judge it".to_owned(),
        (n, ran) => format!("planned: {ran} of the {n} workflows of its trigger started a run"),
    };
    Ok(HttpResponse::Ok().json(json!({
        "event_id": id, "event": event, "archived_at": archived.map(|a| rfc3339(a.archived_at)),
        "planned": true, "planned_at": rfc3339(plan.created_at), "partition": plan.partition,
        "explanation": explanation, "workflows": shown,
        "runs": found.iter().map(run_json).collect::<Vec<_>>(),
    })))
}

/// Filters of GET /api/v1/events.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The customer whose archived events to list (required).
    customer_id: Option<i64>,
    /// At most this many, newest first (default 50, at most 1000).
    limit: Option<u64>,
    /// The `next_before` of the previous page.
    before: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/events", operation_id = "list_events", tag = "events", params(EventsQuery), responses(
    (status = 200, description = "`{\"events\": [{\"id\", \"type\", \"customer_id\", \"occurred_at\", \"archived_at\"}], \"next_before\"}`: the customer's archived events, newest first; each opens with GET /api/v1/events/{id}; `next_before` is null on the last page"),
    (status = 400, description = "no customer_id", body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<EventsQuery>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let customer_id = q.customer_id.ok_or_else(|| {
        super::input::bad_param(
            "customer_id",
            "the customer whose events to list is required".to_owned(),
        )
    })?;
    let limit = q.limit.unwrap_or(50).clamp(1, super::MAX_LIST_LIMIT);
    let found = archive::of_customer(state.db.connection(), customer_id, q.before, limit).await?;
    let next_before = (found.len() as u64 == limit)
        .then(|| found.last().map(|e| e.seq))
        .flatten();
    let events: Vec<Value> = found
        .iter()
        .map(|e| {
            json!({"id": e.event_id, "type": e.event_type, "customer_id": e.customer_id,
                   "occurred_at": rfc3339(e.occurred_at), "archived_at": rfc3339(e.archived_at)})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"events": events, "next_before": next_before})))
}
