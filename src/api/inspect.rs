//! GET /api/v1/events/{id}: the event inspector (and GET /api/v1/events, a customer's
//! archived events, to find one). Why did (or didn't) a workflow run for
//! this event: the archived event, and for every workflow of its trigger the verdict
//! recorded with its plan (matched, no match with the rules that decided it and what they
//! saw, skipped by a `stop_after` workflow, held back by its limit, stopped by the
//! cascade's budget), with the runs it started. An event with no plan never reached the
//! database's planning: the answer says what can keep one out.

use super::runs::{run_json, Run};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::storage::runs::{self, RunFilter};
use crate::storage::{archive, plans, workflows};
use crate::verdict::{kind, Verdict};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an event with no recorded plan may have met.
const NOT_PLANNED: &str = "not planned: when it arrived no active workflow listened to its type or could \
     match it (the matcher let it go before the database), it was past engine.max_cascade_depth, or it \
     has not been handled yet";

/// What the engine knows of an event and why each workflow of its trigger did or did not
/// run for it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Inspection {
    /// When it was archived; null when it is not archived.
    #[schema(format = DateTime)]
    archived_at: Option<String>,
    /// The archived event; null when it is not archived.
    event: Option<ArchivedEvent>,
    event_id: String,
    /// In words: what was planned, or what can keep an event from being planned.
    explanation: String,
    /// The partition that planned it (planned events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    planned: bool,
    /// When it was planned (planned events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    planned_at: Option<String>,
    /// The runs it started, in plan order.
    runs: Vec<Run>,
    /// The workflows of its trigger, in plan order, with their verdicts.
    workflows: Vec<WorkflowVerdict>,
}

/// An archived event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ArchivedEvent {
    customer_id: i64,
    /// The envelope's `data`.
    data: Value,
    id: String,
    #[schema(format = DateTime)]
    occurred_at: String,
    #[serde(rename = "type")]
    event_type: String,
}

/// How planning judged one workflow for the event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowVerdict {
    /// For `no_match`: the rules that decided it, with what each saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    failing: Option<Vec<Value>>,
    /// For `limited`: the `limits` of the version that matched (null when that version
    /// cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<Value>,
    /// Null when the workflow is gone.
    name: Option<String>,
    /// The runs it started for the event.
    runs: Vec<RunStatus>,
    /// For `skipped`: the `stop_after` workflow that kept it from running.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_by: Option<String>,
    /// matched, no_match, skipped, limited or stopped.
    verdict: String,
    version: i64,
    workflow_id: String,
}

/// A run by id and status (GET /api/v1/runs/{id} has the rest).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunStatus {
    id: i64,
    status: String,
}

#[utoipa::path(get, path = "/api/v1/events/{id}", operation_id = "inspect_event", tag = "events",
    params(("id" = String, Path, description = "the event's id")),
    responses(
        (status = 200, description = "the event, whether and when it was planned, each workflow of its trigger with its verdict (matched, held_out, no_match, skipped, limited or stopped), and the runs it started", body = Inspection),
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
    let event = archived.as_ref().map(|a| ArchivedEvent {
        customer_id: a.customer_id,
        data: a.payload.clone(),
        id: a.event_id.clone(),
        occurred_at: rfc3339(a.occurred_at),
        event_type: a.event_type.clone(),
    });
    let Some(plan) = plan else {
        return Ok(HttpResponse::Ok().json(Inspection {
            archived_at: archived.map(|a| rfc3339(a.archived_at)),
            event,
            event_id: id,
            explanation: NOT_PLANNED.to_owned(),
            partition: None,
            planned: false,
            planned_at: None,
            runs: found.iter().map(run_json).collect(),
            workflows: Vec::new(),
        }));
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
        let its_runs: Vec<RunStatus> = found
            .iter()
            .filter(|r| r.run.workflow_id == verdict.workflow_id)
            .map(|r| RunStatus {
                id: r.run.id,
                status: r.run.status.clone(),
            })
            .collect();
        let mut entry = WorkflowVerdict {
            failing: Some(verdict.failing.clone()).filter(|f| !f.is_empty()),
            limits: None,
            name: names.get(&verdict.workflow_id).cloned(),
            runs: its_runs,
            skipped_by: verdict.skipped_by.clone(),
            verdict: verdict.verdict.clone(),
            version: verdict.version,
            workflow_id: verdict.workflow_id.clone(),
        };
        // A matched workflow without a run for the event: its limit held the customer back
        // in the transaction that recorded the plan.
        if (verdict.verdict == kind::MATCHED || verdict.verdict == kind::HELD_OUT) && entry.runs.is_empty() {
            entry.verdict = "limited".to_owned();
            let version = workflows::version(conn, &verdict.workflow_id, verdict.version).await?;
            entry.limits = Some(
                version
                    .and_then(|v| v.definition.get("limits").cloned())
                    .unwrap_or(Value::Null),
            );
        }
        shown.push(entry);
    }
    let ran = shown.iter().filter(|w| !w.runs.is_empty()).count();
    let explanation = match (verdicts.len(), ran) {
        (0, _) => "planned: no active workflow of its trigger was there to judge it".to_owned(),
        (n, ran) => format!("planned: {ran} of the {n} workflows of its trigger started a run"),
    };
    Ok(HttpResponse::Ok().json(Inspection {
        archived_at: archived.map(|a| rfc3339(a.archived_at)),
        event,
        event_id: id,
        explanation,
        partition: Some(plan.partition),
        planned: true,
        planned_at: Some(rfc3339(plan.created_at)),
        runs: found.iter().map(run_json).collect(),
        workflows: shown,
    }))
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

/// A customer's archived event as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    #[schema(format = DateTime)]
    archived_at: String,
    customer_id: i64,
    id: String,
    #[schema(format = DateTime)]
    occurred_at: String,
    #[serde(rename = "type")]
    event_type: String,
}

/// A page of a customer's archived events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<EventSummary>,
    /// The `before` of the next page; null on the last.
    next_before: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/events", operation_id = "list_events", tag = "events", params(EventsQuery), responses(
    (status = 200, description = "the customer's archived events, newest first; each opens with GET /api/v1/events/{id}; `next_before` is null on the last page", body = EventPage),
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
    let events = found
        .iter()
        .map(|e| EventSummary {
            archived_at: rfc3339(e.archived_at),
            customer_id: e.customer_id,
            id: e.event_id.clone(),
            occurred_at: rfc3339(e.occurred_at),
            event_type: e.event_type.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventPage { events, next_before }))
}
