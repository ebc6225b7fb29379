//! The HTTP API (actix-web): health, metrics, info, schema, workflows, validation, dry
//! run, backtest, events, runs and scheduled continuations. Handlers parse and answer; what they do
//! lives in the storage and language modules.

pub mod auth;
mod backtest;
mod customers;
mod error;
mod events;
mod health;
mod heavy;
mod input;
mod integrations;
mod openapi;
mod runs;
mod schema;
mod statuses;
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

/// Refuses oversized queries (414) and header sets (431) before a handler sees them.
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
    next.call(req).await
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
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(auth::require_scope))
                // Outermost: sizes are checked before anything else reads the request.
                .wrap(actix_web::middleware::from_fn(bound_input))
                .route("/info", web::get().to(health::info))
                .route("/openapi.json", web::get().to(openapi::openapi))
                .route("/schema", web::get().to(schema::schema))
                .route("/workflows", web::get().to(workflows::list))
                .route("/workflows", web::post().to(workflows::create))
                .route("/workflows/validate", web::post().to(workflows::validate))
                .route("/workflows/{id}", web::get().to(workflows::get))
                .route("/workflows/{id}", web::put().to(workflows::update))
                .route("/workflows/{id}", web::delete().to(workflows::delete))
                .route("/workflows/{id}/versions", web::get().to(workflows::versions))
                .route("/dry-run", web::post().to(workflows::dry_run))
                .route("/backtest", web::post().to(backtest::backtest))
                .route("/events", web::post().to(events::publish))
                .route("/runs", web::get().to(runs::list))
                .route("/runs/retry", web::post().to(runs::retry_many))
                .route("/runs/cancel", web::post().to(runs::cancel_many))
                .route("/runs/{id}", web::get().to(runs::get))
                .route("/runs/{id}/retry", web::post().to(runs::retry))
                .route("/runs/{id}/cancel", web::post().to(runs::cancel))
                .route("/scheduled", web::get().to(runs::scheduled))
                .route("/customers/import", web::post().to(customers::import))
                .route("/customers/{id}", web::get().to(customers::get))
                .route("/customers/{id}", web::put().to(customers::put))
                .route("/customers/{id}", web::delete().to(customers::delete))
                .route("/teams", web::get().to(teams::list_teams))
                .route("/teams", web::post().to(teams::create_team))
                .route("/teams/{id}", web::get().to(teams::get_team))
                .route("/teams/{id}", web::put().to(teams::put_team))
                .route("/teams/{id}", web::delete().to(teams::delete_team))
                .route("/agents", web::get().to(teams::list_agents))
                .route("/agents", web::post().to(teams::create_agent))
                .route("/agents/{id}", web::get().to(teams::get_agent))
                .route("/agents/{id}", web::put().to(teams::put_agent))
                .route("/agents/{id}", web::delete().to(teams::delete_agent))
                .route("/webhook-endpoints", web::get().to(integrations::list_endpoints))
                .route("/webhook-endpoints", web::post().to(integrations::create_endpoint))
                .route("/webhook-endpoints/{id}", web::get().to(integrations::get_endpoint))
                .route("/webhook-endpoints/{id}", web::put().to(integrations::put_endpoint))
                .route(
                    "/webhook-endpoints/{id}",
                    web::delete().to(integrations::delete_endpoint),
                )
                .route("/sms-providers", web::get().to(integrations::list_providers))
                .route("/sms-providers", web::post().to(integrations::create_provider))
                .route("/sms-providers/{id}", web::get().to(integrations::get_provider))
                .route("/sms-providers/{id}", web::put().to(integrations::put_provider))
                .route("/sms-providers/{id}", web::delete().to(integrations::delete_provider))
                .route("/status-types", web::get().to(statuses::list_types))
                .route("/status-types", web::post().to(statuses::create_type))
                .route("/status-types/{name}/statuses", web::get().to(statuses::list_statuses))
                .route("/status-types/{name}/statuses", web::post().to(statuses::create_status)),
        );
}
