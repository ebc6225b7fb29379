//! Health, readiness, metrics and info.

use super::AppState;
use crate::actors::metrics::Metrics;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready once migrations ran and the consumer owns partitions.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (database, consumer) = (state.readiness.is_migrated(), state.readiness.is_consuming());
    let body = json!({"ready": database && consumer, "database": database, "consumer": consumer});
    if database && consumer {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(Metrics::global().render())
}

pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "workflow-engine",
        "version": env!("CARGO_PKG_VERSION"),
        "node_id": state.node_id,
        "database": state.db.backend(),
        "kafka": {
            "bootstrap_servers": state.brokers,
            "embedded": state.embedded,
            "topic": state.topic,
        },
    }))
}
