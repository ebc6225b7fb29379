//! GET /api/v1/runs and /api/v1/scheduled: what ran, what failed and why, what waits;
//! and run recovery: retry a failed run, cancel a waiting or failed one, one or in bulk.

use super::input::{bad_param, id_cursor, param_time};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::envelope::EventEnvelope;
use crate::storage::recovery::{self, RecoveryError};
use crate::storage::runs::{self, status, RunFilter};
use crate::storage::scheduled;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// pending, running, waiting, done, failed, cancelled or held_out.
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
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
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
    /// The filter as sent, for the audit row of a bulk change.
    fn shown(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

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

/// A run as the API shows it: its record and its steps.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Run {
    #[schema(format = DateTime)]
    created_at: String,
    customer_id: i64,
    error: Option<String>,
    /// The envelope the run started from: GET /api/v1/runs/{id} only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = EventEnvelope)]
    event: Option<Value>,
    event_id: String,
    /// When the customer reached the workflow's goal (docs/experiments.md); null until then.
    #[schema(format = DateTime)]
    goal_reached_at: Option<String>,
    id: i64,
    /// The index of the step to run next.
    next_step: i32,
    partition: i32,
    /// Why the run is as it is beyond its status (a send window it waits for, a cascade
    /// it started that was stopped).
    reason: Option<String>,
    /// pending, running, waiting, done, failed, cancelled or held_out.
    status: String,
    steps: Vec<RunStep>,
    /// The event type that started it.
    trigger: String,
    #[schema(format = DateTime)]
    updated_at: String,
    workflow_id: String,
    workflow_version: i64,
}

/// One step of a run, as far as it went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunStep {
    attempts: i32,
    error: Option<String>,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    index: i32,
    /// The step's place in the workflow's tree (`"2.paths.0.1"`).
    path: String,
    /// What the step produced (later steps read it as `steps.<name>.*`).
    result: Option<Value>,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    status: String,
    /// The action.
    #[serde(rename = "type")]
    action_type: String,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunPage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    runs: Vec<Run>,
}

/// What a bulk retry or cancel did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Affected {
    /// How many runs it retried or cancelled.
    affected: u64,
}

/// A delayed chain waiting for its time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledChain {
    /// The node whose claim it is under, if any.
    claimed_by: Option<String>,
    #[schema(format = DateTime)]
    claimed_until: Option<String>,
    customer_id: i64,
    #[schema(format = DateTime)]
    due_at: String,
    partition: i32,
    run_id: i64,
}

/// The delayed chains, soonest due first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledList {
    scheduled: Vec<ScheduledChain>,
}

/// A run as listed: its record and its steps (`GET /api/v1/runs/{id}` adds the event).
pub fn run_json(run: &runs::Run) -> Run {
    let r = &run.run;
    Run {
        created_at: rfc3339(r.created_at),
        customer_id: r.customer_id,
        error: r.error.clone(),
        event: None,
        event_id: r.event_id.clone(),
        goal_reached_at: r.goal_reached_at.map(rfc3339),
        id: r.id,
        next_step: r.next_step,
        partition: r.partition,
        reason: r.reason.clone(),
        status: r.status.clone(),
        steps: run
            .steps
            .iter()
            .map(|s| RunStep {
                attempts: s.attempts,
                error: s.error.clone(),
                finished_at: s.finished_at.map(rfc3339),
                index: s.step_index,
                path: s.path.clone().unwrap_or_else(|| s.step_index.to_string()),
                result: s.result.clone(),
                started_at: s.started_at.map(rfc3339),
                status: s.status.clone(),
                action_type: s.action_type.clone(),
            })
            .collect(),
        trigger: r.trigger.clone(),
        updated_at: rfc3339(r.updated_at),
        workflow_id: r.workflow_id.clone(),
        workflow_version: r.workflow_version,
    }
}

#[utoipa::path(get, path = "/api/v1/runs", operation_id = "list_runs", tag = "runs", params(RunsQuery), responses(
    (status = 200, description = "newest first, each with its steps, attempts and errors; `next_cursor` is null on the last page", body = RunPage),
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
    Ok(HttpResponse::Ok().json(RunPage {
        next_cursor,
        runs: found.iter().map(run_json).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", operation_id = "get_run", tag = "runs", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "the run with its `event` (the envelope it started from) and its `steps`", body = Run),
    (status = 404, description = "no such run", body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let run = runs::get(state.db.connection(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id} not found")))?;
    let mut body = run_json(&run);
    body.event = Some(run.run.event.clone());
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
    (status = 200, description = "the run, now `waiting` with `next_step` at its failed step: the partition's owner resumes it within `scheduler.poll_interval_secs`; steps already done are not repeated and a retried delivery keeps its idempotency key", body = Run),
    (status = 404, description = "no such run", body = ErrorBody),
    (status = 409, description = "the run is not failed", body = ErrorBody)))]
pub async fn retry(req: HttpRequest, state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    recovery::retry(&state.db, id, Utc::now()).await?;
    audited(&req, &state, "run.retry", ("run", id.to_string()), None).await?;
    current(&state, id).await
}

#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", params(("id" = i64, Path, description = "run id")), responses(
    (status = 200, description = "the run, now `cancelled`; a waiting run's delay is dropped and it never resumes", body = Run),
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
    audited(&req, &state, "run.cancel", ("run", id.to_string()), None).await?;
    current(&state, id).await
}

#[utoipa::path(post, path = "/api/v1/runs/retry", tag = "runs", request_body = BulkFilter, responses(
    (status = 200, description = "failed runs queued for retry, newest first, at most 1000 a call (call again for more)", body = Affected),
    (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn retry_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<BulkFilter>,
) -> Result<HttpResponse, ApiError> {
    let shown = body.shown();
    let filter = body.into_inner().filter()?;
    let affected = recovery::retry_matching(&state.db, &filter, recovery::MAX_BULK, Utc::now()).await?;
    let detail = serde_json::json!({"filter": shown, "affected": affected});
    audited(&req, &state, "runs.retry", ("runs", "matching".into()), Some(detail)).await?;
    Ok(HttpResponse::Ok().json(Affected { affected }))
}

#[utoipa::path(post, path = "/api/v1/runs/cancel", tag = "runs", request_body = BulkFilter, responses(
    (status = 200, description = "waiting and failed runs cancelled, newest first, at most 1000 a call (call again for more)", body = Affected),
    (status = 400, description = "a bad filter", body = ErrorBody)))]
pub async fn cancel_many(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<BulkFilter>,
) -> Result<HttpResponse, ApiError> {
    let shown = body.shown();
    let filter = body.into_inner().filter()?;
    let reason = format!("cancelled by {}", super::workflows::who(&req));
    let affected = recovery::cancel_matching(&state.db, &filter, &reason, recovery::MAX_BULK, Utc::now()).await?;
    let detail = serde_json::json!({"filter": shown, "affected": affected});
    audited(&req, &state, "runs.cancel", ("runs", "matching".into()), Some(detail)).await?;
    Ok(HttpResponse::Ok().json(Affected { affected }))
}

#[utoipa::path(get, path = "/api/v1/scheduled", tag = "runs", params(super::ListQuery), responses(
    (status = 200, description = "delayed chains with their due time and claim", body = ScheduledList)))]
pub async fn scheduled(
    state: web::Data<AppState>,
    query: web::Query<super::ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit(super::MAX_LIST_LIMIT) as u64;
    let rows = scheduled::list(state.db.connection(), limit).await?;
    let scheduled = rows
        .iter()
        .map(|s| ScheduledChain {
            claimed_by: s.claimed_by.clone(),
            claimed_until: s.claimed_until.map(rfc3339),
            customer_id: s.customer_id,
            due_at: rfc3339(s.due_at),
            partition: s.partition,
            run_id: s.run_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ScheduledList { scheduled }))
}

/// Records a run retry or cancel once it committed (the recovery functions own their
/// transactions): a refused one (404, 409) leaves no row.
async fn audited(
    req: &HttpRequest,
    state: &AppState,
    action: &str,
    subject: (&str, String),
    detail: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let actor = super::audit::actor(req);
    let change = crate::storage::audit::Change {
        actor: &actor,
        action,
        subject_kind: subject.0,
        subject_id: subject.1,
        before_version: None,
        after_version: None,
        detail,
    };
    crate::storage::audit::record(state.db.connection(), &change, Utc::now()).await?;
    Ok(())
}
