//! The HTTP API (actix-web): health, metrics, info, schema, workflows, validation, dry
//! run, backtest, events, runs and scheduled continuations, CRM data, and the operator's
//! view (tasks, a customer's activity). Handlers parse and answer; what they do lives in
//! the storage and language modules.
//!
//! Handlers answer with structs deriving `utoipa::ToSchema`, so the OpenAPI document
//! (openapi.rs) describes what they send. Their fields are in alphabetical order: they
//! replaced `json!` objects, whose keys `serde_json` (without `preserve_order`) writes
//! sorted, and the bodies stayed byte for byte the same. For the same reason a value of
//! another type inside one (a `Problem`, the action catalogue) is held as the `Value`
//! `json!` makes of it, its keys sorted too, and typed for the document with
//! `#[schema(value_type = ...)]`.

mod activity;
mod audit;
pub mod auth;
mod backtest;
mod changes;
mod contact;
mod customers;
mod error;
mod events;
mod health;
mod heavy;
mod input;
mod inspect;
mod integrations;
mod openapi;
mod runs;
mod schema;
mod stats;
mod statuses;
mod tasks;
mod teams;
mod ui;
mod workflows;

pub use auth::{Auth, AuthConfigError, Caller};
pub use error::{ApiError, ErrorBody};
pub use heavy::Heavy;

use crate::actors::protocol::Reload;
use crate::conditions::Limits;
use crate::runner::Ownership;
use crate::storage::Database;
use actix::Recipient;
use actix_web::body::BoxBody;
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use rdkafka::producer::FutureProducer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Most items a list endpoint returns, whatever `limit` asks for.
pub const MAX_LIST_LIMIT: u64 = 1000;
/// Longest query string accepted, in bytes (the filters are short).
pub const MAX_QUERY_LEN: usize = 2048;
/// Most request headers, and their total size in bytes. actix-http's own limits are
/// larger (96 headers, a 128 KiB head); these are the API's.
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// `?limit=` of a list endpoint: absent = `default`, otherwise 1..=[`MAX_LIST_LIMIT`].
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many (at most 1000).
    pub limit: Option<u64>,
}

impl ListQuery {
    pub fn limit(&self, default: u64) -> usize {
        self.limit.unwrap_or(default).clamp(1, MAX_LIST_LIMIT) as usize
    }
}

/// How long one /api/v1 request may take, body included, unless the app says otherwise
/// with a [`RequestTimeout`]. actix-http's own timeout covers the request head only: a
/// body sent a byte at a time held a worker's request open for as long as the sender liked.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The app's own request timeout (tests set a short one).
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout(pub std::time::Duration);

/// Refuses oversized queries (414) and header sets (431) before a handler sees them, and
/// answers 408 to a request (its body included) not done within the request timeout.
async fn bound_input(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::StatusCode;
    if req.query_string().len() > MAX_QUERY_LEN {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "query_too_long",
            format!("the query string is longer than {MAX_QUERY_LEN} bytes"),
        )
        .into());
    }
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all"),
        )
        .into());
    }
    let limit = req
        .app_data::<web::Data<RequestTimeout>>()
        .map_or(REQUEST_TIMEOUT, |t| t.0);
    match actix_rt::time::timeout(limit, next.call(req)).await {
        Ok(answer) => answer,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request was not done within {} s", limit.as_secs_f64()),
        )
        .into()),
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub limits: Limits,
    pub producer: FutureProducer,
    pub topic: String,
    pub brokers: String,
    pub embedded: bool,
    pub node_id: String,
    /// The running engine; `None` when only the API runs (tests of the API alone).
    pub matcher: Option<Recipient<Reload>>,
    pub readiness: Readiness,
    /// `delivery.webhook_allowlist`: webhook endpoint and SMS provider URLs are checked
    /// against the outbound guard's rules when they are written.
    pub webhook_allowlist: Vec<String>,
    /// The bounded pool backtests, dry runs, validations and saves run in, shared by the
    /// workers (`api.heavy_*`).
    pub heavy: Heavy,
    /// `[changes]`: whether publishing needs another token's approval.
    pub changes: crate::settings::Changes,
}

/// What /readyz reports besides its live checks: whether migrations ran, and the
/// partitions the consumer owns.
#[derive(Clone, Default)]
pub struct Readiness {
    pub migrated: Arc<AtomicBool>,
    /// The partitions the consumer owns; `None` when no consumer runs.
    pub owned: Option<Ownership>,
}

impl Readiness {
    pub fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// The partitions this process consumes now, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        self.owned.as_ref().map(Ownership::partitions).unwrap_or_default()
    }
}

/// The whole API under one scope; `body_limit` bounds JSON bodies; `auth` is the tokens
/// (an `Option<String>` is the single all-scope token, as before).
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState, body_limit: usize, auth: impl Into<Auth>) {
    let auth: Auth = auth.into();
    let json = web::JsonConfig::default().limit(body_limit).error_handler(|err, _req| {
        use actix_web::error::JsonPayloadError;
        let message = err.to_string();
        match err {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                message,
            )
            .into(),
            _ => ApiError::bad_request(message).into(),
        }
    });
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(auth))
        .app_data(json)
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()))
        .app_data(web::PathConfig::default().error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()))
        .configure(ui::routes) // the builder page: GET / and GET /ui/{file}
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::resource("/metrics")
                .wrap(actix_web::middleware::from_fn(auth::require_metrics_token))
                .route(web::get().to(health::metrics)),
        )
        .service(
            api_routes()
                .add(Method::GET, "/info", health::info)
                .add(Method::GET, "/audit", audit::list)
                .add(Method::GET, "/openapi.json", openapi::openapi)
                .add(Method::GET, "/schema", schema::schema)
                .add(Method::GET, "/workflows", workflows::list)
                .add(Method::POST, "/workflows", workflows::create)
                .add(Method::POST, "/workflows/validate", workflows::validate)
                .add(Method::GET, "/workflows/{id}", workflows::get)
                .add(Method::PUT, "/workflows/{id}", workflows::update)
                .add(Method::DELETE, "/workflows/{id}", workflows::delete)
                .add(Method::GET, "/workflows/{id}/versions", workflows::versions)
                .add(
                    Method::POST,
                    "/workflows/{id}/versions/{version}/approve",
                    changes::approve,
                )
                .add(Method::POST, "/workflows/{id}/publish", changes::publish)
                .add(Method::GET, "/workflows/{id}/stats", stats::workflow_stats)
                .add(Method::POST, "/dry-run", workflows::dry_run)
                .add(Method::GET, "/contact-policy", contact::get_policy)
                .add(Method::PUT, "/contact-policy", contact::put_policy)
                .add(Method::GET, "/contact-policy/held", contact::held)
                .add(Method::POST, "/backtest", backtest::backtest)
                .add(Method::POST, "/events", events::publish)
                .add(Method::GET, "/events", inspect::list)
                .add(Method::GET, "/events/{id}", inspect::inspect)
                .add(Method::GET, "/runs", runs::list)
                .add(Method::POST, "/runs/retry", runs::retry_many)
                .add(Method::POST, "/runs/cancel", runs::cancel_many)
                .add(Method::GET, "/runs/{id}", runs::get)
                .add(Method::POST, "/runs/{id}/retry", runs::retry)
                .add(Method::POST, "/runs/{id}/cancel", runs::cancel)
                .add(Method::GET, "/scheduled", runs::scheduled)
                .add(Method::GET, "/customers", customers::list)
                .add(Method::POST, "/customers/import", customers::import)
                .add(Method::GET, "/customers/{id}", customers::get)
                .add(Method::PUT, "/customers/{id}", customers::put)
                .add(Method::DELETE, "/customers/{id}", customers::delete)
                .add(Method::GET, "/customers/{id}/activity", activity::customer_activity)
                .add(Method::GET, "/tasks", tasks::list_tasks)
                .add(Method::PATCH, "/tasks/{id}", tasks::patch_task)
                .add(Method::GET, "/teams", teams::list_teams)
                .add(Method::POST, "/teams", teams::create_team)
                .add(Method::GET, "/teams/{id}", teams::get_team)
                .add(Method::PUT, "/teams/{id}", teams::put_team)
                .add(Method::DELETE, "/teams/{id}", teams::delete_team)
                .add(Method::GET, "/agents", teams::list_agents)
                .add(Method::POST, "/agents", teams::create_agent)
                .add(Method::GET, "/agents/{id}", teams::get_agent)
                .add(Method::PUT, "/agents/{id}", teams::put_agent)
                .add(Method::DELETE, "/agents/{id}", teams::delete_agent)
                .add(Method::GET, "/webhook-endpoints", integrations::list_endpoints)
                .add(Method::POST, "/webhook-endpoints", integrations::create_endpoint)
                .add(Method::GET, "/webhook-endpoints/{id}", integrations::get_endpoint)
                .add(Method::PUT, "/webhook-endpoints/{id}", integrations::put_endpoint)
                .add(Method::DELETE, "/webhook-endpoints/{id}", integrations::delete_endpoint)
                .add(Method::GET, "/sms-providers", integrations::list_providers)
                .add(Method::POST, "/sms-providers", integrations::create_provider)
                .add(Method::GET, "/sms-providers/{id}", integrations::get_provider)
                .add(Method::PUT, "/sms-providers/{id}", integrations::put_provider)
                .add(Method::DELETE, "/sms-providers/{id}", integrations::delete_provider)
                .add(Method::GET, "/status-types", statuses::list_types)
                .add(Method::POST, "/status-types", statuses::create_type)
                .add(Method::GET, "/status-types/{name}/statuses", statuses::list_statuses)
                .add(Method::POST, "/status-types/{name}/statuses", statuses::create_status)
                .0
                .wrap(actix_web::middleware::from_fn(auth::authenticate))
                // Outermost: sizes are checked before anything else reads the request.
                .wrap(actix_web::middleware::from_fn(bound_input)),
        );
}

/// The routes of /api/v1 as they are added: each with the scope its pattern needs.
struct ApiRoutes(actix_web::Scope);

fn api_routes() -> ApiRoutes {
    ApiRoutes(web::scope("/api/v1"))
}

impl ApiRoutes {
    /// Adds `handler` at `method` and `pattern`, behind [`auth::require`] of the pattern's
    /// scope: the check runs after routing, on the route that matched.
    fn add<F, Args>(self, method: Method, pattern: &'static str, handler: F) -> Self
    where
        F: actix_web::Handler<Args>,
        Args: actix_web::FromRequest + 'static,
        F::Output: actix_web::Responder + 'static,
    {
        let route_label = format!("/api/v1{pattern}");
        let scope = auth::required_scope(&method, &route_label);
        let method_label = method.as_str().to_owned();
        let route =
            web::method(method)
                .to(handler)
                .wrap(actix_web::middleware::from_fn(move |req, next: Next<BoxBody>| {
                    let (route, method) = (route_label.clone(), method_label.clone());
                    async move {
                        let started = std::time::Instant::now();
                        let answered = auth::require(scope, req, next).await;
                        let status = match &answered {
                            Ok(response) => response.status(),
                            Err(e) => e.as_response_error().status_code(),
                        };
                        let metrics = crate::metrics::Metrics::global();
                        metrics
                            .http_requests
                            .with_label_values(&[route.as_str(), method.as_str(), status.as_str()])
                            .inc();
                        metrics
                            .http_seconds
                            .with_label_values(&[route.as_str()])
                            .observe(started.elapsed().as_secs_f64());
                        answered
                    }
                }));
        ApiRoutes(self.0.route(pattern, route))
    }
}
