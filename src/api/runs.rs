//! GET /api/v1/runs and /api/v1/scheduled: what ran, what failed and why, what waits;
//! and run recovery: retry a failed run, cancel a waiting or failed one, one or in bulk.

use super::input::{bad_param, id_cursor, param_time};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::storage::recovery::{self, RecoveryError};
use crate::storage::runs::{self, status, Run, RunFilter};
use crate::storage::scheduled;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

/// Filters of GET /api/v1/runs.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this customer's runs.
    customer_id: Option<i64>,
    /// Only the runs this event started.
    event_id: Option<String>,
    /// Only this workflow's runs.
    workflow_id: Option<String>,
    /// pending, running, waiting, done, failed or cancelled.
    status: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    since: Option<String>,
    /// Only runs created before this time (RFC 3339).
    until: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The filter body of POST /api/v1/runs/retry and /api/v1/runs/cancel; every key optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// Only this workflow's runs.
    workflow_id: Option<String>,
    /// Only runs in this status (retry acts on failed runs, cancel on waiting and failed).
    status: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    since: Option<String>,
    /// Only runs created before this time (RFC 3339).
    until: Option<String>,
}

fn check_status(status: Option<&str>, path: &str) -> Result<(), ApiError> {
    match status {
        Some(s) if !status::ALL.contains(&s) => Err(bad_param(
            path,
            format!("unknown status {s:?}: expected one of {}", status::ALL.join(", ")),
        )),
        _ => Ok(()),
    }
}

impl BulkFilter {
    fn filter(&self) -> Result<RunFilter, ApiError> {
        check_status(self.status.as_deref(), "/status")?;
        Ok(RunFilter {
            workflow_id: self.workflow_id.clone(),
            status: self.status.clone(),
            since: param_time(self.since.as_deref(), "/since")?,
            until: param_time(self.until.as_deref(), "/until")?,
            ..Default::default()
        })
    }
}

/// A run as listed: its record and its steps (`GET /api/v1/runs/{id}` adds the event).
pub fn run_json(run: &Run) -> Value {
    let r = &run.run;
    json!({
        "id": r.id, "event_id": r.event_id, "workflow_id": r.workflow_id, "workflow_version": r.workflow_version,
        "customer_id": r.customer_id, "trigger": r.trigger, "partition": r.partition, "status": r.status,
        "next_step": r.next_step, "error": r.error, "reason": r.reason, "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at),
        "goal_reached_at": r.goal_reached_at.map(rfc3339),
        "steps": run.steps.iter().map(|s| json!({
            "index": s.step_index, "path": s.path.clone().unwrap_or_else(|| s.step_index.to_string()),
            "type": s.action_type, "status": s.status, "attempts": s.attempts,
            "error": s.error, "result": s.result, "started_at": s.started_at.map(rfc3339), "finished_at": s.finished_at.map(rfc3339),
        })).collect::<Vec<_>>(),
    })
}

#[utoipa::path(get, path = "/api/v1/runs", operation_id = "list_runs", tag = "runs", params(RunsQuery), responses(
    (status = 200, description = "`{\"runs\": [...], \"next_cursor\"}`, newest first, each with its steps, attempts and errors; `next_cursor` is null on the last page"),
    (status = 400, description = "a bad filter or cursor", body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<RunsQuery>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    check_status(q.status.as_deref(), "status")?;
    let before_id = id_cursor(q.cursor.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, super::MAX_LIST_LIMIT);
    let filter = RunFilter {
        customer_id: q.customer_id,
        event_id: q.event_id,
        workflow_id: q.workflow_id,
        status: q.status,
        since: param_time(q.since.as_deref(), "since")?,
        until: param_time(q.until.as_deref(), "until")?,
        before_id,
        limit: Some(limit),
    };
    let found = runs::list(state.db.connection(), &filter).await?;
    // A full page may have a next one; the cursor is the last id (runs go newest first).
    let next_cursor = (found.len() as u64 == limit)
        .then(|| found.last().map(|r| r.run.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "runs": found.iter().map(run_json).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "get_run", tag = "runs", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "the run with its `event` (the envelope it started from) and its `steps`"),
    (status = 404, description = "no such run", body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = runs::get(state.db.connection(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let mut body = run_json(&run);
    body["event"] = run.run.event.clone();
    Ok(HttpResponse::Ok().json(body))
}

impl From<RecoveryError> for ApiError {
    fn from(e: RecoveryError) -> Self {
        match e {
            e @ RecoveryError::NotFound(_) => ApiError::not_found(e.to_string()),
            e @ RecoveryError::WrongStatus { .. } => ApiError::conflict(e.to_string()),
            RecoveryError::Storage(e) => e.into(),
        }
    }
}

/// The run as it stands after a retry or cancel.
async fn current(state: &AppState, id: i64) -> Result<HttpResponse, ApiError> {
    let run = runs::get(state.db.connection(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    Ok(HttpResponse::Ok().json(run_json(&run)))
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/retry", tag = "runs", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "the run, now `waiting` with `next_step` at its failed step: the partition's owner resumes it within `scheduler.poll_interval_secs`; steps already done are not repeated and a retried delivery keeps its idempotency key"),
    (status = 404, description = "no such run", body = ErrorBody),
    (status = 409, description = "the run is not failed", body = ErrorBody)))]
pub async fn retry(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    recovery::retry(&state.db, id, Utc::now()).await?;
    current(&state, id).await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "the run, now `cancelled`; a waiting run's delay is dropped and it never resumes"),
    (status = 404, description = "no such run", body = ErrorBody),
    (status = 409, description = "the run is neither waiting nor failed", body = ErrorBody)))]
pub async fn cancel(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let reason = format!("cancelled by {}", super::workflows::who(&req));
    recovery::cancel(&state.db, id, &reason, Utc::now()).await?;
    current(&state, id).await
}

#[utoipa::path(post, path = "/api/v1/runs/retry", tag = "runs", request_body = BulkFilter, responses(
    (status = 200, description = "`{\"affected\": n}`: failed runs queued for retry, newest first, at most 1000 a call (call again for more)"),
    (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn retry_many(state: web::Data<AppState>, body: web::Json<BulkFilter>) -> Result<HttpResponse, ApiError> {
    let filter = body.into_inner().filter()?;
    let affected = recovery::retry_matching(&state.db, &filter, recovery::MAX_BULK, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(json!({ "affected": affected })))
}

#[utoipa::path(post, path = "/api/v1/runs/cancel", tag = "runs", request_body = BulkFilter, responses(
    (status = 200, description = "`{\"affected\": n}`: waiting and failed runs cancelled, newest first, at most 1000 a call (call again for more)"),
    (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn cancel_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<BulkFilter>,
) -> Result<HttpResponse, ApiError> {
    let filter = body.into_inner().filter()?;
    let reason = format!("cancelled by {}", super::workflows::who(&req));
    let affected = recovery::cancel_matching(&state.db, &filter, &reason, recovery::MAX_BULK, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(json!({ "affected": affected })))
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
