//! Health, readiness, metrics and info.

use super::AppState;
use crate::metrics::Metrics;
use actix_web::{web, HttpResponse};
use rdkafka::producer::Producer as _;
use serde_json::json;
use std::time::Duration;

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "the process is up")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// How long each readiness check (a database query, a broker metadata request) may take
/// before it counts as down: a probe must answer within the load balancer's timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Ready when this process can serve: migrations ran, the database answers a short
/// query and the brokers answer a metadata request. The partitions it consumes are
/// shown but do not decide: a process owning none (more processes than partitions, or
/// mid-rebalance) still serves the API, and a 503 would only drop it from the load
/// balancer.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses(
    (status = 200, description = "can serve: `{\"ready\", \"migrated\", \"database\", \"broker\", \"consumer\", \"partitions\"}`"),
    (status = 503, description = "cannot serve: the same body, naming what is down")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let partitions = state.readiness.partitions();
    let migrated = state.readiness.is_migrated();
    let database = matches!(tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await, Ok(Ok(())));
    let broker = broker_answers(&state).await;
    let ready = migrated && database && broker;
    let body = json!({"ready": ready, "migrated": migrated, "database": database, "broker": broker,
                      "consumer": !partitions.is_empty(), "partitions": partitions});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether the brokers answer a metadata request for the events topic, asked through
/// the API's producer (its connections are already open) on a blocking thread.
async fn broker_answers(state: &AppState) -> bool {
    let (producer, topic) = (state.producer.clone(), state.topic.clone());
    let answered = web::block(move || producer.client().fetch_metadata(Some(&topic), PROBE_TIMEOUT).is_ok()).await;
    answered.unwrap_or(false)
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let (open, idle, max) = state.db.pool();
    let pool = &Metrics::global().db_pool;
    for (label, value) in [("open", open), ("idle", idle), ("max", max)] {
        pool.with_label_values(&[label]).set(i64::from(value));
    }
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
