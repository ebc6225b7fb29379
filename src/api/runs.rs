//! GET /api/v1/runs and /api/v1/scheduled: what ran, what failed and why, what waits.

use super::{ApiError, AppState, ErrorBody};
use crate::storage::customers::rfc3339;
use crate::storage::runs::{self, Run, RunFilter};
use crate::storage::scheduled;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

/// Filters of GET /api/v1/runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this customer's runs.
    customer_id: Option<i64>,
    /// Only this workflow's runs.
    workflow_id: Option<String>,
    /// pending, running, waiting, done or failed.
    status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u64>,
}

const STATUSES: [&str; 5] = ["pending", "running", "waiting", "done", "failed"];

pub fn run_json(run: &Run) -> Value {
    let r = &run.run;
    json!({
        "id": r.id, "event_id": r.event_id, "workflow_id": r.workflow_id, "workflow_version": r.workflow_version,
        "customer_id": r.customer_id, "trigger": r.trigger, "partition": r.partition, "status": r.status,
        "next_step": r.next_step, "error": r.error, "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at),
        "steps": run.steps.iter().map(|s| json!({
            "index": s.step_index, "type": s.action_type, "status": s.status, "attempts": s.attempts,
            "error": s.error, "result": s.result, "started_at": s.started_at.map(rfc3339), "finished_at": s.finished_at.map(rfc3339),
        })).collect::<Vec<_>>(),
    })
}

#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery), responses(
    (status = 200, description = "`{\"runs\": [...]}`, each with its steps, attempts and errors"),
    (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<RunsQuery>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(status) = &q.status {
        if !STATUSES.contains(&status.as_str()) {
            let mut e = ApiError::bad_request(format!(
                "unknown status {status:?}: expected one of {}",
                STATUSES.join(", ")
            ));
            e.path = Some("status".into());
            return Err(e);
        }
    }
    let filter = RunFilter {
        customer_id: q.customer_id,
        workflow_id: q.workflow_id,
        status: q.status,
        limit: Some(q.limit.unwrap_or(100).clamp(1, super::MAX_LIST_LIMIT)),
    };
    let found = runs::list(state.db.connection(), &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "runs": found.iter().map(run_json).collect::<Vec<_>>() })))
}

#[utoipa::path(get, path = "/api/v1/scheduled", tag = "runs", params(super::ListQuery), responses(
    (status = 200, description = "`{\"scheduled\": [...]}`: delayed chains with their due time and claim")))]
pub async fn scheduled(
    state: web::Data<AppState>,
    query: web::Query<super::ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit(super::MAX_LIST_LIMIT) as u64;
    let rows = scheduled::list(state.db.connection(), limit).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|s| {
            json!({"run_id": s.run_id, "customer_id": s.customer_id, "partition": s.partition,
                   "due_at": rfc3339(s.due_at), "claimed_by": s.claimed_by, "claimed_until": s.claimed_until.map(rfc3339)})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "scheduled": items })))
}
