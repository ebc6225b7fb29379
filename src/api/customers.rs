//! Customers by the CRM's id: PUT (upsert), GET, DELETE, and the NDJSON bulk import.

use super::input::{Reader, MAX_NAME_LEN, MAX_TEXT_LEN};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::problem::{Pointer, Problem, Severity};
use crate::storage::crm::CrmError;
use crate::storage::customers::{self, CustomerInput};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most custom fields on one customer, and the longest custom field name.
pub const MAX_CUSTOM_FIELDS: usize = 100;
pub const MAX_CUSTOM_NAME_LEN: usize = 64;
/// Largest custom field value, in bytes of its JSON: a value is copied into every run's
/// facts and may be rendered into messages, so one field must not be megabytes.
pub const MAX_CUSTOM_VALUE_LEN: usize = MAX_TEXT_LEN;
/// Most statuses set by one customer write (one per type).
pub const MAX_STATUSES: usize = 50;
/// Most lines of one import, and its largest body in bytes: an import is one transaction.
pub const MAX_IMPORT_LINES: usize = 10_000;
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;
/// Imports one server reads at once: each may buffer [`MAX_IMPORT_BYTES`], so the
/// memory they take is bounded by this many times that, whoever sends them.
pub const MAX_CONCURRENT_IMPORTS: usize = 2;

const KEYS: [&str; 20] = [
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "language",
    "balance",
    "registered_at",
    "last_activity_at",
    "agent_id",
    "team_id",
    "desk",
    "active",
    "frozen",
    "timezone",
    "email_opt_out",
    "sms_opt_out",
    "custom",
    "statuses",
];

/// Reads a customer body; `at` is where it sits (the body, or an import line).
pub fn parse(value: &Value, at: Pointer) -> Result<CustomerInput, Vec<Problem>> {
    let mut r = Reader::new(value, at, &KEYS)?;
    let mut input = CustomerInput {
        first_name: r.string("first_name", false, MAX_NAME_LEN),
        last_name: r.string("last_name", false, MAX_NAME_LEN),
        email: r.string("email", false, MAX_TEXT_LEN),
        phone: r.string("phone", false, MAX_NAME_LEN),
        country: r.string("country", false, MAX_NAME_LEN),
        language: r.string("language", false, MAX_NAME_LEN),
        balance: r.number("balance"),
        registered_at: r.time("registered_at"),
        last_activity_at: r.time("last_activity_at"),
        agent_id: r.id("agent_id"),
        team_id: r.id("team_id"),
        desk: r.string("desk", false, MAX_NAME_LEN),
        active: r.boolean("active"),
        frozen: r.boolean("frozen"),
        timezone: r.string("timezone", false, MAX_NAME_LEN),
        email_opt_out: r.boolean("email_opt_out"),
        sms_opt_out: r.boolean("sms_opt_out"),
        ..Default::default()
    };
    if let Some(tz) = &input.timezone {
        if tz.parse::<chrono_tz::Tz>().is_err() {
            let at = r.pointer("timezone");
            r.error(
                &at,
                format!("unknown time zone {tz:?}: expected an IANA name such as \"Europe/Berlin\" or \"UTC\""),
            );
            input.timezone = None;
        }
    }
    match r.raw("custom") {
        None | Some(Value::Null) => {}
        Some(Value::Object(custom)) => {
            let at = r.pointer("custom");
            if custom.len() > MAX_CUSTOM_FIELDS {
                r.error(&at, format!("at most {MAX_CUSTOM_FIELDS} custom fields"));
            } else if let Some(bad) = custom.keys().find(|k| !is_field_name(k)) {
                r.error(
                    &at.key(bad),
                    format!(
                        "custom field names are 1 to {MAX_CUSTOM_NAME_LEN} lowercase letters, digits and _, starting with a letter"
                    ),
                );
            } else if let Some((name, _)) = custom
                .iter()
                .find(|(_, v)| serde_json::to_string(v).map_or(true, |j| j.len() > MAX_CUSTOM_VALUE_LEN))
            {
                r.error(
                    &at.key(name),
                    format!("a custom field value is at most {MAX_CUSTOM_VALUE_LEN} bytes of JSON"),
                );
            } else {
                input.custom = Some(custom.clone());
            }
        }
        Some(other) => {
            let at = r.pointer("custom");
            r.error(
                &at,
                format!(
                    "expected an object of custom fields, got {}",
                    crate::problem::json_type_name(other)
                ),
            );
        }
    }
    match r.raw("statuses") {
        None | Some(Value::Null) => {}
        Some(Value::Object(statuses)) if statuses.len() > MAX_STATUSES => {
            let at = r.pointer("statuses");
            r.error(&at, format!("at most {MAX_STATUSES} statuses"));
        }
        Some(Value::Object(statuses)) => {
            for (type_name, status) in statuses {
                match status.as_str() {
                    Some(name) => input.statuses.push((type_name.clone(), name.to_owned())),
                    None => {
                        let at = r.pointer("statuses").key(type_name);
                        r.error(&at, format!("expected a status name, got {status}"));
                    }
                }
            }
        }
        Some(other) => {
            let at = r.pointer("statuses");
            r.error(
                &at,
                format!(
                    "expected an object of status type name to status name, got {}",
                    crate::problem::json_type_name(other)
                ),
            );
        }
    }
    r.finish()?;
    Ok(input)
}

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=MAX_CUSTOM_NAME_LEN).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A customer as the API shows it: built-in fields, `custom`, `statuses` by type name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Customer {
    active: bool,
    agent_id: Option<i64>,
    balance: f64,
    country: String,
    /// Custom fields by name.
    #[schema(value_type = Object)]
    custom: Value,
    desk: String,
    email: String,
    email_opt_out: bool,
    first_name: String,
    frozen: bool,
    id: i64,
    language: String,
    #[schema(format = DateTime)]
    last_activity_at: Option<String>,
    last_name: String,
    phone: String,
    #[schema(format = DateTime)]
    registered_at: Option<String>,
    sms_opt_out: bool,
    /// Status type name to status name.
    statuses: BTreeMap<String, String>,
    team_id: Option<i64>,
    /// IANA time zone name.
    timezone: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// Customer `id` as the API shows it; `None` when there is none.
async fn customer_json(state: &AppState, id: i64) -> Result<Option<Customer>, ApiError> {
    let conn = state.db.connection();
    let Some(c) = customers::get(conn, id).await? else {
        return Ok(None);
    };
    let statuses = customers::statuses_of(conn, id).await?.into_iter().collect();
    Ok(Some(Customer {
        active: c.active,
        agent_id: c.agent_id,
        balance: c.balance,
        country: c.country,
        custom: c.custom_fields,
        desk: c.desk,
        email: c.email,
        email_opt_out: c.email_opt_out,
        first_name: c.first_name,
        frozen: c.frozen,
        id: c.id,
        language: c.language,
        last_activity_at: c.last_activity_at.map(rfc3339),
        last_name: c.last_name,
        phone: c.phone,
        registered_at: c.registered_at.map(rfc3339),
        sms_opt_out: c.sms_opt_out,
        statuses,
        team_id: c.team_id,
        timezone: c.timezone,
        updated_at: rfc3339(c.updated_at),
    }))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", operation_id = "get_customer", tag = "crm", params(("id" = i64, Path, description = "the CRM's customer id")), responses(
    (status = 200, description = "the customer: built-in fields, `custom`, `statuses` (type name to status name)", body = Customer),
    (status = 404, body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match customer_json(&state, id).await? {
        Some(c) => Ok(HttpResponse::Ok().json(c)),
        None => Err(ApiError::not_found(format!("customer {id} not found"))),
    }
}

#[utoipa::path(put, path = "/api/v1/customers/{id}", tag = "crm", params(("id" = i64, Path, description = "the CRM's customer id")),
    request_body(content = Object, description = "built-in fields (first_name, last_name, email, phone, country, language, balance, registered_at, last_activity_at, agent_id, team_id, desk, active, frozen, timezone (IANA), email_opt_out, sms_opt_out), `custom` (replaces the custom fields), `statuses` (type name to status name); keys left out keep their stored value"),
    responses((status = 201, description = "created", body = Customer), (status = 200, description = "updated", body = Customer), (status = 422, description = "a bad field, an unknown time zone, status type or status", body = ErrorBody)))]
pub async fn put(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    let input = parse(&body, Pointer::root()).map_err(ApiError::invalid)?;
    if let Some(given) = body.get("id").filter(|v| !v.is_null()) {
        if given.as_i64() != Some(id) {
            return Err(ApiError::invalid(vec![Problem {
                path: "/id".into(),
                message: format!("id {given} does not match the URL's {id}"),
                severity: Severity::Error,
            }]));
        }
    }
    let txn = state.db.begin().await?;
    let created = customers::upsert(&txn, id, input, Utc::now()).await?;
    txn.commit().await.map_err(crate::storage::StorageError::from)?;
    tracing::info!(customer_id = id, created, "customer written");
    let body = customer_json(&state, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("customer {id} not found")))?;
    Ok(if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

#[utoipa::path(delete, path = "/api/v1/customers/{id}", operation_id = "delete_customer", tag = "crm", params(("id" = i64, Path, description = "the CRM's customer id")),
    responses((status = 204, description = "deleted with its statuses; its runs, notes and tasks stay"), (status = 404, body = ErrorBody)))]
pub async fn delete(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let txn = state.db.begin().await?;
    let deleted = customers::delete(&txn, id).await?;
    txn.commit().await.map_err(crate::storage::StorageError::from)?;
    if !deleted {
        return Err(ApiError::not_found(format!("customer {id} not found")));
    }
    Ok(HttpResponse::NoContent().finish())
}

fn too_large(message: String) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        message,
    )
}

/// What an import loaded and which lines it refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    errors: Vec<ImportError>,
    /// Lines loaded.
    upserted: u64,
}

/// A line an import refused.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportError {
    /// Its number, from 1.
    line: usize,
    message: String,
}

#[utoipa::path(post, path = "/api/v1/customers/import", tag = "crm",
    request_body(content = String, content_type = "application/x-ndjson", description = "one customer object a line, each with its `id`; at most 10000 lines and 16 MiB"),
    responses((status = 200, description = "the good lines are loaded, each bad one is reported by its number (from 1)", body = ImportReport),
        (status = 413, description = "more than 10000 lines or 16 MiB; nothing was loaded", body = ErrorBody)))]
pub async fn import(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // An announced length over the cap is refused before a byte of the body is read.
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > MAX_IMPORT_BYTES) {
        return Err(too_large(format!(
            "an import is at most {MAX_IMPORT_BYTES} bytes: split it"
        )));
    }
    let Some(_permit) = state.heavy.import_permit() else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!("{MAX_CONCURRENT_IMPORTS} imports are being read: try again shortly"),
        )
        .retry_after(1));
    };
    // Grown as bytes arrive, never sized by what the sender announces.
    let mut body = web::BytesMut::with_capacity(announced.unwrap_or(0).min(64 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(too_large(format!(
                "an import is at most {MAX_IMPORT_BYTES} bytes: split it"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&body).map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    if lines.len() > MAX_IMPORT_LINES {
        return Err(too_large(format!(
            "an import is at most {MAX_IMPORT_LINES} lines: split it"
        )));
    }
    let now = Utc::now();
    let mut errors = Vec::new();
    let mut upserted = 0u64;
    let txn = state.db.begin().await?;
    for (number, line) in lines {
        let fail = |message: String| ImportError { line: number, message };
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                errors.push(fail(format!("invalid json: {e}")));
                continue;
            }
        };
        let Some(id) = value.get("id").and_then(Value::as_i64) else {
            errors.push(fail("/id: an integer id is required".to_owned()));
            continue;
        };
        let input = match parse(&value, Pointer::root()) {
            Ok(input) => input,
            Err(problems) => {
                errors.push(fail(describe(&problems)));
                continue;
            }
        };
        match customers::upsert(&txn, id, input, now).await {
            Ok(_) => upserted += 1,
            Err(CrmError::Invalid(problems)) => errors.push(fail(describe(&problems))),
            Err(e) => return Err(e.into()),
        }
    }
    txn.commit().await.map_err(crate::storage::StorageError::from)?;
    tracing::info!(upserted, errors = errors.len(), "customers imported");
    Ok(HttpResponse::Ok().json(ImportReport { errors, upserted }))
}

/// Problems of one import line as one message: `pointer: message; ...`.
fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_fields_are_named_by_pointer() {
        let problems = parse(
            &json!({"timezone": "Mars/Olympus", "balance": "lots", "custom": {"Bad Name": 1}, "statuses": {"kyc": 3}, "nope": 1}),
            Pointer::root(),
        )
        .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for expected in ["/nope", "/balance", "/timezone", "/custom/Bad Name", "/statuses/kyc"] {
            assert!(paths.contains(&expected), "{expected} missing in {paths:?}");
        }
        let ok = parse(
            &json!({"timezone": "America/Sao_Paulo", "custom": {"vip_tier": "gold"}, "statuses": {"kyc": "approved"}}),
            Pointer::root(),
        )
        .unwrap();
        assert_eq!(ok.timezone.as_deref(), Some("America/Sao_Paulo"));
        assert_eq!(ok.statuses, [("kyc".to_owned(), "approved".to_owned())]);
    }
}

/// Filters of GET /api/v1/customers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomersQuery {
    /// The customer's id, or the start of a first name, last name or e-mail (any case).
    q: Option<String>,
    /// At most this many, newest first by id (default 50, at most 1000).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A customer as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerSummary {
    agent_id: Option<i64>,
    country: String,
    desk: String,
    email: String,
    first_name: String,
    id: i64,
    #[schema(format = DateTime)]
    last_activity_at: Option<String>,
    last_name: String,
    team_id: Option<i64>,
}

/// A page of customers, newest first by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerPage {
    customers: Vec<CustomerSummary>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/customers", operation_id = "list_customers", tag = "crm", params(CustomersQuery), responses(
    (status = 200, description = "newest first by id; `next_cursor` is null on the last page", body = CustomerPage),
    (status = 400, description = "a bad cursor, or a search over 100 characters", body = ErrorBody)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<CustomersQuery>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if q.q.as_ref().is_some_and(|s| s.chars().count() > customers::MAX_SEARCH) {
        return Err(super::input::bad_param(
            "q",
            format!("a search is at most {} characters", customers::MAX_SEARCH),
        ));
    }
    let before_id = super::input::id_cursor(q.cursor.as_deref())?;
    let limit = q.limit.unwrap_or(50).clamp(1, super::MAX_LIST_LIMIT);
    let found = customers::list(state.db.connection(), q.q.as_deref(), before_id, limit).await?;
    let next_cursor = (found.len() as u64 == limit)
        .then(|| found.last().map(|c| c.id.to_string()))
        .flatten();
    let customers = found
        .into_iter()
        .map(|c| CustomerSummary {
            agent_id: c.agent_id,
            country: c.country,
            desk: c.desk,
            email: c.email,
            first_name: c.first_name,
            id: c.id,
            last_activity_at: c.last_activity_at.map(rfc3339),
            last_name: c.last_name,
            team_id: c.team_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(CustomerPage { customers, next_cursor }))
}
