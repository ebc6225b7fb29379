//! Webhook endpoints (named targets; the secret is write-only) and SMS providers (exactly
//! one active at a time).

use super::input::{check_url, PageQuery, Reader, MAX_NAME_LEN, MAX_TEXT_LEN};
use super::{ApiError, AppState, ErrorBody};
use crate::problem::Pointer;
use crate::storage::endpoints::{self, EndpointInput};
use crate::storage::entities::{sms_providers as provider_rows, webhook_endpoints as endpoint_rows};
use crate::storage::sms_providers::{self, ProviderInput};
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

/// The secret itself is never shown, only whether there is one.
fn endpoint_json(e: &endpoint_rows::Model) -> Value {
    json!({"id": e.id, "name": e.name, "url": e.url, "has_secret": e.secret.as_deref().is_some_and(|s| !s.is_empty())})
}

fn provider_json(p: &provider_rows::Model) -> Value {
    json!({"id": p.id, "name": p.name, "url": p.url, "active": p.active})
}

fn endpoint_input(state: &AppState, body: &Value) -> Result<EndpointInput, ApiError> {
    let mut r = Reader::new(body, Pointer::root(), &["id", "name", "url", "secret", "has_secret"])
        .map_err(ApiError::invalid)?;
    let name = r.string("name", true, MAX_NAME_LEN);
    let url = r.string("url", true, MAX_TEXT_LEN);
    if let Some(url) = &url {
        check_url(&mut r, "url", url, &state.webhook_allowlist);
    }
    let secret = match r.raw("secret") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => r
            .string("secret", false, MAX_TEXT_LEN)
            .map(|s| Some(s).filter(|s| !s.is_empty())),
    };
    let problems = r.problems;
    match (name, url) {
        (Some(name), Some(url)) if problems.is_empty() => Ok(EndpointInput { name, url, secret }),
        _ => Err(ApiError::invalid(problems)),
    }
}

fn provider_input(state: &AppState, body: &Value) -> Result<ProviderInput, ApiError> {
    let mut r = Reader::new(body, Pointer::root(), &["id", "name", "url", "active"]).map_err(ApiError::invalid)?;
    let name = r.string("name", true, MAX_NAME_LEN);
    let url = r.string("url", true, MAX_TEXT_LEN);
    if let Some(url) = &url {
        check_url(&mut r, "url", url, &state.webhook_allowlist);
    }
    let active = r.boolean("active").unwrap_or(false);
    let problems = r.problems;
    match (name, url) {
        (Some(name), Some(url)) if problems.is_empty() => Ok(ProviderInput { name, url, active }),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "`{\"webhook_endpoints\": [{\"id\", \"name\", \"url\", \"has_secret\"}], \"next_cursor\"}` by id")))]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = endpoints::list(state.db.connection(), page).await?;
    let next = page.next_cursor(rows.iter().map(|e| e.id).collect::<Vec<_>>().into_iter());
    Ok(HttpResponse::Ok()
        .json(json!({"webhook_endpoints": rows.iter().map(endpoint_json).collect::<Vec<_>>(), "next_cursor": next})))
}

#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    responses((status = 200, description = "the endpoint, with `has_secret` instead of its secret"), (status = 404, body = ErrorBody)))]
pub async fn get_endpoint(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match endpoints::get(state.db.connection(), id).await? {
        Some(e) => Ok(HttpResponse::Ok().json(endpoint_json(&e))),
        None => Err(ApiError::not_found(format!("webhook endpoint {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "crm",
    request_body(content = Object, description = "`{\"name\", \"url\", \"secret\"?}`: the URL follows the outbound guard (http(s), no internal address unless allowlisted)"),
    responses((status = 201, description = "created"), (status = 409, description = "the name is taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_endpoint(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let input = endpoint_input(&state, &body)?;
    let endpoint = endpoints::create(&state.db, input).await?;
    tracing::info!(endpoint_id = endpoint.id, name = %endpoint.name, "webhook endpoint created");
    Ok(HttpResponse::Created().json(endpoint_json(&endpoint)))
}

#[utoipa::path(put, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    request_body(content = Object, description = "`{\"name\", \"url\", \"secret\"?}`: without `secret` the stored one is kept, `null` removes it"),
    responses((status = 200, description = "updated"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_endpoint(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = endpoint_input(&state, &body)?;
    let endpoint = endpoints::update(&state.db, id.into_inner(), input).await?;
    tracing::info!(endpoint_id = endpoint.id, name = %endpoint.name, "webhook endpoint updated");
    Ok(HttpResponse::Ok().json(endpoint_json(&endpoint)))
}

#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    endpoints::delete(&state.db, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/sms-providers", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "`{\"sms_providers\": [{\"id\", \"name\", \"url\", \"active\"}], \"next_cursor\"}` by id")))]
pub async fn list_providers(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = sms_providers::list(state.db.connection(), page).await?;
    let next = page.next_cursor(rows.iter().map(|p| p.id).collect::<Vec<_>>().into_iter());
    Ok(HttpResponse::Ok()
        .json(json!({"sms_providers": rows.iter().map(provider_json).collect::<Vec<_>>(), "next_cursor": next})))
}

#[utoipa::path(get, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "the provider"), (status = 404, body = ErrorBody)))]
pub async fn get_provider(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match sms_providers::get(state.db.connection(), id).await? {
        Some(p) => Ok(HttpResponse::Ok().json(provider_json(&p))),
        None => Err(ApiError::not_found(format!("SMS provider {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/sms-providers", tag = "crm",
    request_body(content = Object, description = "`{\"name\", \"url\", \"active\"? = false}`: an active one deactivates the others in the same transaction"),
    responses((status = 201, description = "created"), (status = 409, description = "the name is taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_provider(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let input = provider_input(&state, &body)?;
    let provider = sms_providers::create(&state.db, input).await?;
    tracing::info!(
        provider_id = provider.id,
        active = provider.active,
        "SMS provider created"
    );
    Ok(HttpResponse::Created().json(provider_json(&provider)))
}

#[utoipa::path(put, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    request_body(content = Object, description = "`{\"name\", \"url\", \"active\"? = false}`"),
    responses((status = 200, description = "updated"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_provider(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = provider_input(&state, &body)?;
    let provider = sms_providers::update(&state.db, id.into_inner(), input).await?;
    tracing::info!(
        provider_id = provider.id,
        active = provider.active,
        "SMS provider updated"
    );
    Ok(HttpResponse::Ok().json(provider_json(&provider)))
}

#[utoipa::path(delete, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_provider(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    sms_providers::delete(&state.db, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
