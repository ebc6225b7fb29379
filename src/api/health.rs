//! Health, readiness, metrics and info.

use super::AppState;
use crate::actors::metrics::Metrics;
use actix_web::{web, HttpResponse};
use serde_json::json;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready once migrations ran and the consumer owns partitions. The body names the
/// partitions, so an operator sees how a cluster split them.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "migrated and consuming"),
    (status = 503, description = "not ready yet: `{\"ready\", \"database\", \"consumer\", \"partitions\"}`")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let partitions = state.readiness.partitions();
    let (database, consumer) = (state.readiness.is_migrated(), !partitions.is_empty());
    let body = json!({"ready": database && consumer, "database": database, "consumer": consumer,
                      "partitions": partitions});
    if database && consumer {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(Metrics::global().render())
}

#[utoipa::path(get, path = "/api/v1/info", tag = "operations", responses((status = 200, description = "version, node id, database kind, Kafka bootstrap servers and whether the broker is embedded")))]
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
