//! The HTTP API (actix-web): health, metrics, info, schema, workflows, validation, dry
//! run, events, runs and scheduled continuations. Handlers parse and answer; what they do
//! lives in the storage and language modules.

mod auth;
mod error;
mod events;
mod health;
mod openapi;
mod runs;
mod schema;
mod ui;
mod workflows;

pub use error::{ApiError, ErrorBody};

use crate::actors::protocol::Reload;
use crate::conditions::Limits;
use crate::runner::Ownership;
use crate::storage::Database;
use actix::Recipient;
use actix_web::web;
use rdkafka::producer::FutureProducer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}

/// What /readyz reports: ready once migrations ran and the consumer joined the group.
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

/// The whole API under one scope; `body_limit` bounds JSON bodies.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState, body_limit: usize, auth_token: Option<String>) {
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
        .app_data(web::Data::new(auth::AuthToken(auth_token.filter(|t| !t.is_empty()))))
        .app_data(json)
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()))
        .app_data(web::PathConfig::default().error_handler(|err, _req| ApiError::bad_request(err.to_string()).into()))
        .configure(ui::routes) // the builder page: GET / and GET /ui/{file}
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(auth::require_token))
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
                .route("/events", web::post().to(events::publish))
                .route("/runs", web::get().to(runs::list))
                .route("/scheduled", web::get().to(runs::scheduled)),
        );
}
