//! Health, readiness, metrics and info.

use super::AppState;
use crate::metrics::Metrics;
use actix_web::{web, HttpResponse};
use rdkafka::producer::Producer as _;
use serde::Serialize;
use std::time::Duration;

/// The process is up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always "ok".
    status: &'static str,
}

/// Whether this process can serve, and what each check found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// The brokers answer a metadata request.
    broker: bool,
    /// This process consumes at least one partition (shown, does not decide).
    consumer: bool,
    /// The database answers a short query.
    database: bool,
    /// Migrations ran.
    migrated: bool,
    /// The partitions this process consumes, ascending.
    partitions: Vec<i32>,
    /// Migrated, and database and broker answer.
    ready: bool,
}

/// What this engine is and what it runs on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Info {
    /// The database kind: sqlite or postgres.
    database: &'static str,
    kafka: KafkaInfo,
    name: &'static str,
    node_id: String,
    version: &'static str,
}

/// The Kafka the engine uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KafkaInfo {
    bootstrap_servers: String,
    /// The broker runs in this process.
    embedded: bool,
    /// The events topic.
    topic: String,
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "the process is up", body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
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
    (status = 200, description = "can serve", body = Readiness),
    (status = 503, description = "cannot serve: the same body, naming what is down", body = Readiness)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let partitions = state.readiness.partitions();
    let migrated = state.readiness.is_migrated();
    let database = matches!(tokio::time::timeout(PROBE_TIMEOUT, state.db.ping()).await, Ok(Ok(())));
    let broker = broker_answers(&state).await;
    let ready = migrated && database && broker;
    let body = Readiness {
        broker,
        consumer: !partitions.is_empty(),
        database,
        migrated,
        partitions,
        ready,
    };
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

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
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

#[utoipa::path(get, path = "/api/v1/info", tag = "operations", responses((status = 200, description = "version, node id, database kind, Kafka bootstrap servers and whether the broker is embedded", body = Info)))]
pub async fn info(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(Info {
        database: state.db.backend(),
        kafka: KafkaInfo {
            bootstrap_servers: state.brokers.clone(),
            embedded: state.embedded,
            topic: state.topic.clone(),
        },
        name: "workflow-engine",
        node_id: state.node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
