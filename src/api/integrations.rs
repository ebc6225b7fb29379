//! Webhook endpoints (named targets) and SMS providers (exactly one active at a time).
//!
//! Their secrets are write-only (issue 22, finding 5): an endpoint's signing `secret` and
//! the `auth` credentials of both are accepted on POST and PUT and never shown; a read shows
//! whether they are set, and the URL redacted ([`crate::redact`]), since URLs
//! written before `auth` existed carry credentials in their userinfo or query.

use super::audit::{self, shown};
use super::input::{check_url, PageQuery, Reader, MAX_NAME_LEN, MAX_TEXT_LEN};
use super::{ApiError, AppState, ErrorBody};
use crate::outbound::auth::Credentials;
use crate::problem::Pointer;
use crate::redact;
use crate::storage::endpoints::{self, EndpointInput};
use crate::storage::entities::{sms_providers as provider_rows, webhook_endpoints as endpoint_rows};
use crate::storage::sms_providers::{self, ProviderInput};
use crate::storage::{rates, secrets, Database};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

/// A webhook endpoint as the API shows it: its secret never, only whether there is one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEndpoint {
    /// The credentials' kind and what is not secret (`{"type": "basic", "username",
    /// "password_set": true}`, `{"type": "bearer", "token_set": true}`, `{"type": "header",
    /// "name", "value_set": true}`); null for none.
    #[schema(value_type = Option<Object>)]
    auth: Value,
    has_secret: bool,
    id: i64,
    name: String,
    /// Requests per second across the cluster; null = unlimited.
    rate_per_sec: Option<i32>,
    /// Redacted: no credentials in its userinfo or query.
    url: String,
}

/// An SMS provider as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SmsProvider {
    /// Exactly one provider is active at a time.
    active: bool,
    /// As a webhook endpoint's: what is not secret; null for none.
    #[schema(value_type = Option<Object>)]
    auth: Value,
    id: i64,
    name: String,
    /// Requests per second across the cluster; null = unlimited.
    rate_per_sec: Option<i32>,
    /// Redacted: no credentials in its userinfo or query.
    url: String,
}

/// A page of webhook endpoints, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEndpointPage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    webhook_endpoints: Vec<WebhookEndpoint>,
}

/// A page of SMS providers, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SmsProviderPage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    sms_providers: Vec<SmsProvider>,
}

/// The secret itself is never shown, only whether there is one.
fn endpoint_json(db: &Database, e: &endpoint_rows::Model) -> WebhookEndpoint {
    WebhookEndpoint {
        auth: auth_json(db, secrets::ENDPOINT_AUTH, e.auth.as_deref()),
        has_secret: e.secret.as_deref().is_some_and(|s| !s.is_empty()),
        id: e.id,
        name: e.name.clone(),
        rate_per_sec: e.rate_per_sec,
        url: redact::url(&e.url),
    }
}

fn provider_json(db: &Database, p: &provider_rows::Model) -> SmsProvider {
    SmsProvider {
        active: p.active,
        auth: auth_json(db, secrets::PROVIDER_AUTH, p.auth.as_deref()),
        id: p.id,
        name: p.name.clone(),
        rate_per_sec: p.rate_per_sec,
        url: redact::url(&p.url),
    }
}

/// `auth` as shown: its kind and what is not secret ([`Credentials::shown`]); `null` for
/// none. A value that cannot be read (the start-up check makes that a row changed by hand)
/// is shown as set, without failing the whole list.
fn auth_json(db: &Database, column: &str, stored: Option<&str>) -> Value {
    let Some(stored) = stored.filter(|s| !s.is_empty()) else {
        return Value::Null;
    };
    match secrets::open(db, column, stored)
        .ok()
        .and_then(|text| Credentials::from_stored(&text))
    {
        Some(credentials) => credentials.shown(),
        None => json!({"set": true}),
    }
}

/// The `auth` of a body: `None` = keep the stored one (absent, or what a GET showed, sent
/// back: it has `*_set` instead of the secret), `Some(None)` = remove it, `Some(Some(_))`
/// = the stored form of new credentials.
fn auth_input(r: &mut Reader<'_>) -> Option<Option<String>> {
    let value = r.raw("auth")?;
    let at = r.pointer("auth");
    if value.is_null() {
        return Some(None);
    }
    let shown = ["password_set", "token_set", "value_set", "set"];
    if value
        .as_object()
        .is_some_and(|o| shown.iter().any(|k| o.contains_key(*k)))
    {
        return None;
    }
    match Credentials::parse(value) {
        Ok(credentials) if credentials.to_stored().len() <= MAX_TEXT_LEN => Some(Some(credentials.to_stored())),
        Ok(_) => {
            r.error(&at, format!("auth is longer than {MAX_TEXT_LEN} characters"));
            None
        }
        Err(e) => {
            r.error(&at, e.to_string());
            None
        }
    }
}

/// `rate_per_sec`: absent or null = unlimited, else a whole number of requests per second.
fn rate_input(r: &mut Reader<'_>) -> Option<i32> {
    let value = r.raw("rate_per_sec").filter(|v| !v.is_null())?;
    match value
        .as_i64()
        .filter(|n| (1..=i64::from(rates::MAX_PER_SEC)).contains(n))
    {
        Some(n) => i32::try_from(n).ok(),
        None => {
            let at = r.pointer("rate_per_sec");
            r.error(
                &at,
                format!(
                    "rate_per_sec must be a whole number from 1 to {}, got {value}",
                    rates::MAX_PER_SEC
                ),
            );
            None
        }
    }
}

/// The URL to store: a URL sent back as a read showed it (redacted) keeps the stored one,
/// so a client that reads, edits another field and writes back does not replace working
/// credentials with `redacted`.
fn kept_url(given: String, stored: Option<&str>) -> String {
    match stored {
        Some(stored) if given != stored && given == redact::url(stored) => stored.to_owned(),
        _ => given,
    }
}

fn endpoint_input(state: &AppState, body: &Value) -> Result<EndpointInput, ApiError> {
    let mut r = Reader::new(
        body,
        Pointer::root(),
        &["id", "name", "url", "secret", "has_secret", "auth", "rate_per_sec"],
    )
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
    let auth = auth_input(&mut r);
    let rate_per_sec = rate_input(&mut r);
    let problems = r.problems;
    match (name, url) {
        (Some(name), Some(url)) if problems.is_empty() => Ok(EndpointInput {
            name,
            url,
            secret,
            auth,
            rate_per_sec,
        }),
        _ => Err(ApiError::invalid(problems)),
    }
}

fn provider_input(state: &AppState, body: &Value) -> Result<ProviderInput, ApiError> {
    let mut r = Reader::new(
        body,
        Pointer::root(),
        &["id", "name", "url", "active", "auth", "rate_per_sec"],
    )
    .map_err(ApiError::invalid)?;
    let name = r.string("name", true, MAX_NAME_LEN);
    let url = r.string("url", true, MAX_TEXT_LEN);
    if let Some(url) = &url {
        check_url(&mut r, "url", url, &state.webhook_allowlist);
    }
    let active = r.boolean("active").unwrap_or(false);
    let auth = auth_input(&mut r);
    let rate_per_sec = rate_input(&mut r);
    let problems = r.problems;
    match (name, url) {
        (Some(name), Some(url)) if problems.is_empty() => Ok(ProviderInput {
            name,
            url,
            active,
            auth,
            rate_per_sec,
        }),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[utoipa::path(get, path = "/api/v1/webhook-endpoints", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "the endpoints by id, their URLs redacted and their `auth` without its secret", body = WebhookEndpointPage)))]
pub async fn list_endpoints(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = endpoints::list(state.db.connection(), page).await?;
    Ok(HttpResponse::Ok().json(WebhookEndpointPage {
        next_cursor: page.next_cursor(rows.iter().map(|e| e.id)),
        webhook_endpoints: rows.iter().map(|e| endpoint_json(&state.db, e)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    responses((status = 200, description = "the endpoint, with `has_secret` instead of its secret", body = WebhookEndpoint), (status = 404, body = ErrorBody)))]
pub async fn get_endpoint(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match endpoints::get(state.db.connection(), id).await? {
        Some(e) => Ok(HttpResponse::Ok().json(endpoint_json(&state.db, &e))),
        None => Err(ApiError::not_found(format!("webhook endpoint {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/webhook-endpoints", tag = "crm",
    request_body(content = Object, description = "`{\"name\", \"url\", \"secret\"?, \"auth\"?}` (`auth`: `{\"type\": \"basic\", \"username\", \"password\"}`, `{\"type\": \"bearer\", \"token\"}` or `{\"type\": \"header\", \"name\", \"value\"}`, write-only): the URL follows the outbound guard (http(s), no internal address unless allowlisted)"),
    responses((status = 201, description = "created", body = WebhookEndpoint), (status = 409, description = "the name is taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = endpoint_input(&state, &body)?;
    let endpoint = endpoints::create(&state.db, input).await?;
    let after = Some(shown(&endpoint_json(&state.db, &endpoint)));
    audit::config(
        &req,
        &state,
        "webhook_endpoint.create",
        ("webhook_endpoint", endpoint.id.to_string()),
        None,
        after,
    )
    .await?;
    tracing::info!(endpoint_id = endpoint.id, name = %endpoint.name, "webhook endpoint created");
    Ok(HttpResponse::Created().json(endpoint_json(&state.db, &endpoint)))
}

#[utoipa::path(put, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    request_body(content = Object, description = "`{\"name\", \"url\", \"secret\"?, \"auth\"?}`: without `secret` or `auth` the stored one is kept, `null` removes it; the redacted URL a read showed keeps the stored one"),
    responses((status = 200, description = "updated", body = WebhookEndpoint), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut input = endpoint_input(&state, &body)?;
    let stored = endpoints::get(state.db.connection(), id).await?;
    input.url = kept_url(input.url, stored.as_ref().map(|e| e.url.as_str()));
    let endpoint = endpoints::update(&state.db, id, input).await?;
    let (before, after) = (
        stored.map(|b| shown(&endpoint_json(&state.db, &b))),
        shown(&endpoint_json(&state.db, &endpoint)),
    );
    audit::config(
        &req,
        &state,
        "webhook_endpoint.update",
        ("webhook_endpoint", id.to_string()),
        before,
        Some(after),
    )
    .await?;
    tracing::info!(endpoint_id = endpoint.id, name = %endpoint.name, "webhook endpoint updated");
    Ok(HttpResponse::Ok().json(endpoint_json(&state.db, &endpoint)))
}

#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}", tag = "crm", params(("id" = i64, Path, description = "endpoint id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let before = endpoints::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&endpoint_json(&state.db, &b)));
    endpoints::delete(&state.db, id).await?;
    audit::config(
        &req,
        &state,
        "webhook_endpoint.delete",
        ("webhook_endpoint", id.to_string()),
        before,
        None,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/sms-providers", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "the providers by id, their URLs redacted and their `auth` without its secret", body = SmsProviderPage)))]
pub async fn list_providers(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = sms_providers::list(state.db.connection(), page).await?;
    Ok(HttpResponse::Ok().json(SmsProviderPage {
        next_cursor: page.next_cursor(rows.iter().map(|p| p.id)),
        sms_providers: rows.iter().map(|p| provider_json(&state.db, p)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    responses((status = 200, description = "the provider", body = SmsProvider), (status = 404, body = ErrorBody)))]
pub async fn get_provider(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match sms_providers::get(state.db.connection(), id).await? {
        Some(p) => Ok(HttpResponse::Ok().json(provider_json(&state.db, &p))),
        None => Err(ApiError::not_found(format!("SMS provider {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/sms-providers", tag = "crm",
    request_body(content = Object, description = "`{\"name\", \"url\", \"active\"? = false, \"auth\"?}` (`auth` as for webhook endpoints, write-only): an active one deactivates the others in the same transaction"),
    responses((status = 201, description = "created", body = SmsProvider), (status = 409, description = "the name is taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let input = provider_input(&state, &body)?;
    let provider = sms_providers::create(&state.db, input).await?;
    let after = Some(shown(&provider_json(&state.db, &provider)));
    audit::config(
        &req,
        &state,
        "sms_provider.create",
        ("sms_provider", provider.id.to_string()),
        None,
        after,
    )
    .await?;
    tracing::info!(
        provider_id = provider.id,
        active = provider.active,
        "SMS provider created"
    );
    Ok(HttpResponse::Created().json(provider_json(&state.db, &provider)))
}

#[utoipa::path(put, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    request_body(content = Object, description = "`{\"name\", \"url\", \"active\"? = false, \"auth\"?}`: without `auth` the stored one is kept, `null` removes it; the redacted URL a read showed keeps the stored one"),
    responses((status = 200, description = "updated", body = SmsProvider), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut input = provider_input(&state, &body)?;
    let stored = sms_providers::get(state.db.connection(), id).await?;
    input.url = kept_url(input.url, stored.as_ref().map(|p| p.url.as_str()));
    let provider = sms_providers::update(&state.db, id, input).await?;
    let (before, after) = (
        stored.map(|b| shown(&provider_json(&state.db, &b))),
        shown(&provider_json(&state.db, &provider)),
    );
    audit::config(
        &req,
        &state,
        "sms_provider.update",
        ("sms_provider", id.to_string()),
        before,
        Some(after),
    )
    .await?;
    tracing::info!(
        provider_id = provider.id,
        active = provider.active,
        "SMS provider updated"
    );
    Ok(HttpResponse::Ok().json(provider_json(&state.db, &provider)))
}

#[utoipa::path(delete, path = "/api/v1/sms-providers/{id}", tag = "crm", params(("id" = i64, Path, description = "provider id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_provider(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let before = sms_providers::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&provider_json(&state.db, &b)));
    sms_providers::delete(&state.db, id).await?;
    audit::config(
        &req,
        &state,
        "sms_provider.delete",
        ("sms_provider", id.to_string()),
        before,
        None,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
