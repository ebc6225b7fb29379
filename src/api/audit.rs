//! GET /api/v1/audit, and the audit rows of changes whose storage function the API only
//! calls (CRM configuration, run retry and cancel): recorded right after the change
//! commits, so a failed change (a 4xx, a database error) leaves no row. Workflow and
//! contact-policy changes write theirs in their own transaction instead
//! ([`crate::storage::audit`]).

use super::input::{id_cursor, param_time};
use super::{ApiError, AppState};
use crate::storage::audit::{self, AuditEntry as Row, Change, ANONYMOUS};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Who made a request, for the audit log: the token's name, or "anonymous" with auth off
/// (a header such as `X-Changed-By` is a label anyone may write, never an identity).
pub(super) fn actor(req: &HttpRequest) -> String {
    req.extensions()
        .get::<super::Caller>()
        .map_or_else(|| ANONYMOUS.to_owned(), |caller| caller.0.clone())
}

/// A body as the API shows it, for an audit row's `detail`. Only bodies the API already
/// answers with go through here, and those carry no secret (URLs redacted, credentials
/// write-only).
pub(super) fn shown<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// Records a configuration change that has committed: `{"before", "after"}` bodies in
/// `detail` (null for a create's before and a delete's after).
pub(super) async fn config(
    req: &HttpRequest,
    state: &AppState,
    action: &str,
    subject: (&str, String),
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    let actor = actor(req);
    let change = Change {
        actor: &actor,
        action,
        subject_kind: subject.0,
        subject_id: subject.1,
        before_version: None,
        after_version: None,
        detail: Some(json!({"before": before, "after": after})),
    };
    audit::record(state.db.connection(), &change, chrono::Utc::now()).await?;
    Ok(())
}

/// `?since=&cursor=&limit=` of the audit log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes made at or after this time (RFC 3339).
    since: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<u64>,
}

/// One audited change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// `<kind>.<verb>`: workflow.create, workflow.update, workflow.draft, workflow.delete,
    /// workflow.approve, workflow.publish, team.create, agent.update, status.create,
    /// webhook_endpoint.delete, sms_provider.update, contact_policy.update, run.retry,
    /// run.cancel, runs.retry, runs.cancel, ...
    action: String,
    /// The token's name, or "anonymous" when auth is off.
    actor: String,
    /// A workflow's version after the change.
    after_version: Option<i64>,
    #[schema(format = DateTime)]
    at: String,
    /// A workflow's version before the change.
    before_version: Option<i64>,
    /// For configuration and the contact policy `{"before", "after"}` as the API shows
    /// them (secrets redacted); for bulk run changes the filter and how many runs.
    #[schema(value_type = Object)]
    detail: Option<Value>,
    id: i64,
    subject_id: String,
    /// workflow, team, agent, status_type, status, webhook_endpoint, sms_provider,
    /// contact_policy, run, runs.
    subject_kind: String,
}

/// A page of the audit log, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

fn entry(row: Row) -> AuditEntry {
    AuditEntry {
        action: row.action,
        actor: row.actor,
        after_version: row.after_version,
        at: crate::clock::rfc3339(row.at),
        before_version: row.before_version,
        detail: row.detail,
        id: row.id,
        subject_id: row.subject_id,
        subject_kind: row.subject_kind,
    }
}

#[utoipa::path(get, path = "/api/v1/audit", operation_id = "list_audit", tag = "changes", params(AuditQuery), responses(
    (status = 200, description = "changes, oldest first; follow `next_cursor` for newer ones", body = AuditPage),
    (status = 400, description = "a bad `since` or `cursor`", body = super::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<AuditQuery>) -> Result<HttpResponse, ApiError> {
    let since = param_time(query.since.as_deref(), "since")?;
    let after = id_cursor(query.cursor.as_deref())?;
    let limit = query.limit.unwrap_or(100).clamp(1, super::MAX_LIST_LIMIT);
    let rows = audit::page(state.db.connection(), since, after, limit).await?;
    let full = rows.len() as u64 >= limit;
    let next_cursor = rows.last().filter(|_| full).map(|r| r.id.to_string());
    Ok(HttpResponse::Ok().json(AuditPage {
        entries: rows.into_iter().map(entry).collect(),
        next_cursor,
    }))
}
