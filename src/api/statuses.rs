//! Status types and their statuses. A new one reaches the matcher's field schema and
//! GET /api/v1/schema at once: both read the database on every use, and the workflow
//! change counter moves so every node reloads its workflow set.

use super::input::{PageQuery, Reader, MAX_NAME_LEN};
use super::{ApiError, AppState, ErrorBody};
use crate::problem::Pointer;
use crate::storage::statuses::{self, MAX_TYPE_NAME_LEN};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;

/// A status type: its statuses are `customer.<name>_status`'s values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusType {
    id: i64,
    name: String,
}

/// A status of a type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    id: i64,
    name: String,
    /// Its status type's name.
    #[serde(rename = "type")]
    status_type: String,
}

/// A page of status types, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusTypePage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    status_types: Vec<StatusType>,
}

/// A page of one type's statuses, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusPage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    statuses: Vec<Status>,
}

/// Status type names become field names (`customer.<type>_status`).
fn is_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_TYPE_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn name_of(body: &Value, type_name: bool) -> Result<String, ApiError> {
    let mut r = Reader::new(body, Pointer::root(), &["name"]).map_err(ApiError::invalid)?;
    let max = if type_name { MAX_TYPE_NAME_LEN } else { MAX_NAME_LEN };
    let name = r.string("name", true, max);
    if let Some(n) = &name {
        if type_name && !is_type_name(n) {
            let at = r.pointer("name");
            r.error(
                &at,
                "a status type name is lowercase letters, digits and _, starting with a letter",
            );
        }
    }
    let problems = r.problems;
    match name {
        Some(name) if problems.is_empty() => Ok(name),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[utoipa::path(get, path = "/api/v1/status-types", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "the status types by id", body = StatusTypePage)))]
pub async fn list_types(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = statuses::list_types(state.db.connection(), page).await?;
    Ok(HttpResponse::Ok().json(StatusTypePage {
        next_cursor: page.next_cursor(rows.iter().map(|t| t.id)),
        status_types: rows
            .into_iter()
            .map(|t| StatusType { id: t.id, name: t.name })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/status-types", tag = "crm",
    request_body(content = Object, description = "`{\"name\"}`: lowercase letters, digits and _"),
    responses((status = 201, description = "created; `customer.<name>_status` is a field at once", body = StatusType), (status = 409, description = "it exists", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_type(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let name = name_of(&body, true)?;
    let row = statuses::create_type(&state.db, &name).await?;
    let after = Some(serde_json::json!({"id": row.id, "name": row.name}));
    super::audit::config(
        &req,
        &state,
        "status_type.create",
        ("status_type", row.name.clone()),
        None,
        after,
    )
    .await?;
    tracing::info!(status_type = %row.name, "status type created");
    reload(&state).await;
    Ok(HttpResponse::Created().json(StatusType {
        id: row.id,
        name: row.name,
    }))
}

#[utoipa::path(get, path = "/api/v1/status-types/{name}/statuses", tag = "crm", params(("name" = String, Path, description = "status type name"), PageQuery), responses(
    (status = 200, description = "the type's statuses by id", body = StatusPage), (status = 404, body = ErrorBody)))]
pub async fn list_statuses(
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let Some(status_type) = statuses::type_by_name(state.db.connection(), &name).await? else {
        return Err(ApiError::not_found(format!(
            "status type {:?} not found",
            name.as_str()
        )));
    };
    let rows = statuses::list_statuses(state.db.connection(), status_type.id, page).await?;
    Ok(HttpResponse::Ok().json(StatusPage {
        next_cursor: page.next_cursor(rows.iter().map(|s| s.id)),
        statuses: rows
            .into_iter()
            .map(|s| Status {
                id: s.id,
                name: s.name,
                status_type: status_type.name.clone(),
            })
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/status-types/{name}/statuses", tag = "crm", params(("name" = String, Path, description = "status type name")),
    request_body(content = Object, description = "`{\"name\"}`"),
    responses((status = 201, description = "created; offered by the schema and accepted by validation at once", body = Status), (status = 404, description = "no such type", body = ErrorBody),
        (status = 409, description = "it exists", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_status(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let status = name_of(&body, false)?;
    let row = statuses::create_status(&state.db, &name, &status).await?;
    let after = Some(serde_json::json!({"id": row.id, "name": row.name, "status_type": name.as_str()}));
    let subject = ("status", format!("{}/{}", name.as_str(), row.name));
    super::audit::config(&req, &state, "status.create", subject, None, after).await?;
    tracing::info!(status_type = %name.as_str(), status = %row.name, "status created");
    reload(&state).await;
    Ok(HttpResponse::Created().json(Status {
        id: row.id,
        name: row.name,
        status_type: name.into_inner(),
    }))
}

/// This process's matcher reloads at once; others follow the change counter.
async fn reload(state: &AppState) {
    if let Some(matcher) = &state.matcher {
        if let Ok(Err(e)) = matcher.send(crate::actors::protocol::Reload).await {
            tracing::warn!(error = %e, "workflow reload after a status change failed");
        }
    }
}
