//! POST /api/v1/events: validates an envelope and publishes it to the events topic, keyed
//! by customer id, exactly as a platform producer would. A valid `traceparent` request
//! header becomes the message's `traceparent` header. On the embedded broker the event is
//! journaled in the database before the 202 ([`crate::kafka::journal`]).

use super::{ApiError, AppState, ErrorBody};
use crate::envelope::{EnvelopeError, EventEnvelope};
use crate::kafka::journal::{publish_durably, Message};
use crate::problem::{Problem, Severity};
use crate::trace::{self, TraceParent};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

/// Where an event was published.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Published {
    customer_id: i64,
    id: String,
    offset: i64,
    partition: i32,
    topic: String,
    #[serde(rename = "type")]
    event_type: String,
}

#[utoipa::path(post, path = "/api/v1/events", tag = "events",
    request_body(content = EventEnvelope, description = "an event envelope; keys the engine does not know are ignored"),
    responses(
        (status = 202, description = "published", body = Published),
        (status = 422, description = "invalid envelope, every problem with its path", body = ErrorBody),
        (status = 503, description = "the broker is unavailable", body = ErrorBody)))]
pub async fn publish(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // A traced caller's context goes on with the event, as a producer's header would.
    let traceparent =
        TraceParent::from_header(request.headers().get(trace::HEADER).map(|v| v.as_bytes())).map(|t| t.to_string());
    let event = match EventEnvelope::from_value(body.clone()) {
        Ok(event) => event,
        Err(EnvelopeError::Invalid(problems)) => return Err(ApiError::invalid(problems)),
        Err(EnvelopeError::Json(e)) => {
            return Err(ApiError::invalid(vec![Problem {
                path: String::new(),
                message: format!("expected an event envelope: {e}"),
                severity: Severity::Error,
            }]))
        }
    };
    let payload = body.to_string();
    let message = Message {
        topic: &state.topic,
        key: &event.key(),
        payload: &payload,
        traceparent: traceparent.as_deref(),
    };
    // On the embedded broker the 202 waits for the journal too: the event outlives a crash.
    let journal = state.embedded.then_some(&state.db);
    let (partition, offset) = publish_durably(journal, &state.producer, message)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    tracing::info!(event_id = %event.id, customer_id = event.customer_id, partition, offset, "event published");
    Ok(HttpResponse::Accepted().json(Published {
        customer_id: event.customer_id,
        id: event.id,
        offset,
        partition,
        topic: state.topic.clone(),
        event_type: event.event_type,
    }))
}
