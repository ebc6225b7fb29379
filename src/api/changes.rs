//! Approving and publishing saved workflow versions (docs/changes.md): POST
//! /api/v1/workflows/{id}/versions/{version}/approve and POST /api/v1/workflows/{id}/publish.
//! What is live is decided in [`crate::storage::drafts`]; these handlers validate the
//! version again (the schema may have changed since it was saved) and tell the matcher.

use super::heavy::Admitted;
use super::workflows::{reload, validate_body, who};
use super::{ApiError, AppState, ErrorBody};
use crate::backtest::MAX_EVENTS;
use crate::impact::{Impact, ImpactReport};
use crate::problem::{Problem, Severity};
use crate::storage::drafts::{self, ChangeError};
use crate::storage::{archive, statuses, workflows};
use crate::validate::Validator;
use crate::workflow::Workflow;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let message = e.to_string();
        match e {
            ChangeError::NotFound(_) | ChangeError::NoVersion { .. } => ApiError::not_found(message),
            ChangeError::NoDraft(_) | ChangeError::Deleted { .. } => ApiError::conflict(message),
            ChangeError::SelfApproval { .. } => ApiError::new(StatusCode::FORBIDDEN, "self_approval", message),
            ChangeError::ApprovalRequired { .. } => ApiError::new(StatusCode::CONFLICT, "approval_required", message),
            ChangeError::Storage(e) => e.into(),
        }
    }
}

/// A version's approvals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Approval {
    /// The tokens that approved it (its author never among them).
    approved_by: Vec<String>,
    /// Who saved the version.
    author: String,
    version: i64,
    workflow_id: String,
}

/// What a publish made live.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Published {
    /// What the published version changes against the one live before, over the archived
    /// events of the last `changes.impact_days`; null when that is 0 or the comparison did
    /// not fit the request's budget (the publish is made all the same; the log says why).
    impact: Option<ImpactReport>,
    /// The version that was live before; null when there was none.
    previous_version: Option<i64>,
    /// The version now live.
    version: i64,
    workflow_id: String,
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/versions/{version}/approve", operation_id = "approve_workflow_version", tag = "changes",
    params(("id" = String, Path, description = "workflow id"), ("version" = i64, Path, description = "a saved version")),
    responses((status = 200, description = "approved by the calling token (approving twice is one approval)", body = Approval),
        (status = 403, description = "`self_approval`: the calling token saved that version", body = ErrorBody),
        (status = 404, description = "no such workflow or version", body = ErrorBody),
        (status = 409, description = "the version is a deletion", body = ErrorBody)))]
pub async fn approve(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (id, version) = path.into_inner();
    let (author, actor) = (who(&req), super::audit::actor(&req));
    let by = workflows::By {
        author: &author,
        actor: &actor,
    };
    let approved = drafts::approve(&state.db, &id, version, by).await?;
    let approvals = drafts::approvals(state.db.connection(), &id, &approved).await?;
    tracing::info!(workflow_id = %id, version, approved_by = %author, "workflow version approved");
    Ok(HttpResponse::Ok().json(Approval {
        approved_by: approvals.into_iter().map(|a| a.approved_by).collect(),
        author: approved.changed_by,
        version,
        workflow_id: id,
    }))
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/publish", operation_id = "publish_workflow", tag = "changes", params(("id" = String, Path, description = "workflow id")),
    request_body(content = Object, description = "`{\"version\"?}`: the saved version to make live; without it the newest draft. The answer's `impact` compares it with the version live before; `canary_percent` is refused (docs/changes.md)"),
    responses((status = 200, description = "the version is live; every node reloads", body = Published),
        (status = 404, description = "no such workflow or version", body = ErrorBody),
        (status = 409, description = "`approval_required` (changes.require_approval and no other token approved the version), no draft to publish, or the version is a deletion", body = ErrorBody),
        (status = 422, description = "the version no longer validates, or an unknown key", body = ErrorBody)))]
pub async fn publish(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.map(web::Json::into_inner).unwrap_or(Value::Null);
    let version = requested_version(&body)?;
    let admitted = state.heavy.admit("save")?;
    let chosen = drafts::to_publish(state.db.connection(), &id, version).await?;
    // Validated again: a version saved weeks ago meets today's statuses and fields.
    let validated = validate_body(&state, &admitted, chosen.definition.clone()).await?;
    let live = workflows::get(state.db.connection(), &id)
        .await?
        .filter(|row| row.published);
    let previous = live.as_ref().map(|row| row.version);
    let impact = impact(
        &state,
        &admitted,
        live.map(|row| row.definition),
        validated.workflow.clone(),
    )
    .await;
    let (author, actor) = (who(&req), super::audit::actor(&req));
    let by = workflows::By {
        author: &author,
        actor: &actor,
    };
    let require = state.changes.require_approval;
    let stored = drafts::publish(&state.db, &id, &chosen, &validated.workflow, require, by).await?;
    tracing::info!(workflow_id = %id, version = stored.version, published_by = %author, "workflow version published");
    reload(&state).await;
    Ok(HttpResponse::Ok().json(Published {
        impact,
        previous_version: previous,
        version: stored.version,
        workflow_id: id,
    }))
}

/// What `draft` changes against the `live` definition over the archive of the last
/// `changes.impact_days`, as the backtest reads it (at most its 100,000 events, within the
/// request's budget). `None` when the days are 0 or the comparison fails: the impact
/// informs a publish, it never stops one.
async fn impact(state: &AppState, admitted: &Admitted, live: Option<Value>, draft: Workflow) -> Option<ImpactReport> {
    let days = state.changes.impact_days;
    if days == 0 {
        return None;
    }
    let workflow_id = draft.id.clone().unwrap_or_default();
    match compare(state, admitted, live, draft, days).await {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!(workflow_id = %workflow_id, error = %e, "the impact of a publish was not computed");
            None
        }
    }
}

async fn compare(
    state: &AppState,
    admitted: &Admitted,
    live: Option<Value>,
    draft: Workflow,
    days: u32,
) -> Result<ImpactReport, ApiError> {
    let schema = statuses::field_schema(state.db.connection()).await?;
    let limits = state.limits;
    let impact = admitted
        .cpu(move |_| {
            // The live definition as the matcher has it: validated when loaded.
            let live = live.and_then(|definition| {
                Validator::new(&schema, limits)
                    .workflow(&definition)
                    .ok()
                    .map(|v| v.workflow)
            });
            Impact::new(live, draft, &limits, days).map_err(|e| ApiError::bad_request(e.to_string()))
        })
        .await?;
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let pages = archive::Replay::new(impact.triggers(), Some(since), MAX_EVENTS);
    let impact = admitted
        .judge_archive(state.db.connection(), pages, impact, Impact::observe)
        .await?;
    Ok(impact.finish())
}

/// The `version` of a publish body (`{}`, no body, or `{"version": n}`).
fn requested_version(body: &Value) -> Result<Option<i64>, ApiError> {
    let problem = |path: &str, message: String| {
        ApiError::invalid(vec![Problem {
            path: path.to_owned(),
            message,
            severity: Severity::Error,
        }])
    };
    let map = match body {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(problem(
                "",
                format!(
                    "expected {{\"version\"?}}, got {}",
                    crate::problem::json_type_name(other)
                ),
            ))
        }
    };
    for key in map.keys() {
        match key.as_str() {
            "version" => {}
            "canary_percent" => {
                return Err(problem(
                    "/canary_percent",
                    "canaries are not built yet: publish without canary_percent".to_owned(),
                ))
            }
            other => {
                return Err(problem(
                    &format!("/{other}"),
                    format!("unknown key {other:?}: expected version"),
                ))
            }
        }
    }
    match map.get("version") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|v| *v > 0)
            .map(Some)
            .ok_or_else(|| problem("/version", format!("expected a positive version number, got {v}"))),
    }
}
