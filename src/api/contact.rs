//! GET|PUT /api/v1/contact-policy: caps on how many messages one customer gets per
//! channel across all workflows (crate::guards::contact), and GET
//! /api/v1/contact-policy/held: what the caps held back, by hour, for the policy page.

use super::input::bad_param;
use super::workflows::who;
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::guards::contact::ContactPolicy;
use crate::problem::Problems;
use crate::storage::contact;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest look back at held sends: a week by hour.
const MAX_HOURS: i64 = 24 * 7;

/// The policy as served and accepted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Policy {
    /// `[{"channel": "email"|"sms", "max": n (at least 1), "per": duration (at most 366 days)}]`.
    #[schema(value_type = Vec<Object>)]
    caps: Value,
    /// `skip` or `defer`.
    on_cap: String,
}

#[utoipa::path(get, path = "/api/v1/contact-policy", operation_id = "get_contact_policy", tag = "workflows",
    responses((status = 200, description = "the contact policy; no caps when never set", body = Policy)))]
pub async fn get_policy(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let policy = contact::policy(state.db.connection()).await?;
    Ok(HttpResponse::Ok().json(policy))
}

#[utoipa::path(put, path = "/api/v1/contact-policy", operation_id = "put_contact_policy", tag = "workflows",
    request_body(content = Policy, description = "the whole policy; it replaces the one before"),
    responses((status = 200, description = "stored", body = Policy), (status = 422, description = "a bad channel, max, period or on_cap, with its pointer", body = ErrorBody)))]
pub async fn put_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut problems = Problems::default();
    let Some(policy) = ContactPolicy::from_value(&body, &mut problems).filter(|_| !problems.has_errors()) else {
        return Err(ApiError::invalid(problems.into_vec()));
    };
    let (by, actor, now) = (who(&req), super::audit::actor(&req), Utc::now());
    // The audit row in the change's transaction: no policy change without its record.
    let txn = state.db.begin().await?;
    let before = contact::policy(&txn).await?;
    contact::put_policy(&txn, &policy, Some(&by), now).await?;
    let change = crate::storage::audit::Change {
        actor: &actor,
        action: "contact_policy.update",
        subject_kind: "contact_policy",
        subject_id: "contact_policy".to_owned(),
        before_version: None,
        after_version: None,
        detail: Some(serde_json::json!({"before": before, "after": policy})),
    };
    crate::storage::audit::record(&txn, &change, now).await?;
    txn.commit().await.map_err(crate::storage::StorageError::from)?;
    tracing::info!(caps = policy.caps.len(), on_cap = ?policy.on_cap, changed_by = %by, "contact policy replaced");
    Ok(HttpResponse::Ok().json(policy))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeldQuery {
    /// How many hours back (default 24, at most 168).
    hours: Option<i64>,
}

/// Sends held in one hour, of one channel, one way.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeldHour {
    /// The hour's start (RFC 3339, UTC).
    at: String,
    /// `email` or `sms`.
    channel: String,
    /// `skipped` or `deferred`.
    outcome: String,
    count: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Held {
    held: Vec<HeldHour>,
}

#[utoipa::path(get, path = "/api/v1/contact-policy/held", operation_id = "contact_policy_held", tag = "workflows",
    params(HeldQuery),
    responses((status = 200, description = "sends the caps held back, by hour, channel and outcome, oldest first", body = Held),
        (status = 400, description = "hours out of range", body = ErrorBody)))]
pub async fn held(state: web::Data<AppState>, query: web::Query<HeldQuery>) -> Result<HttpResponse, ApiError> {
    let hours = query.hours.unwrap_or(24);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(bad_param("hours", format!("expected 1 to {MAX_HOURS}, got {hours}")));
    }
    let rows = contact::held_since(state.db.connection(), Utc::now() - Duration::hours(hours)).await?;
    let held = rows
        .into_iter()
        .map(|(at, channel, outcome, count)| HeldHour {
            at: rfc3339(at),
            channel,
            outcome,
            count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Held { held }))
}
