//! API errors: `{"error": {"code", "message", "path", "details"?}}` with a fitting status.

use crate::problem::Problem;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::fmt;

/// The body of every error response: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDoc,
}

/// The error object, as documented (the same fields [`ApiError`] serialises).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorDoc {
    /// bad_request, unauthorized, not_found, conflict, invalid, unavailable, internal; for
    /// heavy requests busy (429), work_budget_exceeded (422), time_budget_exceeded (503)
    pub code: String,
    pub message: String,
    /// JSON pointer of the bad value in the request body.
    pub path: Option<String>,
    /// Every problem, for validation errors.
    pub details: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// JSON pointer of the bad value in the request body, `""` for the body itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every problem, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Problem>,
    /// Seconds for the `Retry-After` header of a 429 or 503: when trying again can help.
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            path: None,
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// The same error with a `Retry-After` of `seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 422 with every problem; the first one's path and message lead.
    pub fn invalid(problems: Vec<Problem>) -> Self {
        let first = problems.first();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: first.map_or_else(|| "invalid request".to_owned(), |p| p.message.clone()),
            path: first.map(|p| p.path.clone()),
            details: problems,
            retry_after: None,
        }
    }

    /// Put `prefix` in front of every path (the body held the document under a key).
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = self.path.map(|p| format!("{prefix}{p}"));
        for d in &mut self.details {
            d.path = format!("{prefix}{}", d.path);
        }
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        response.json(serde_json::json!({ "error": self }))
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        use crate::storage::StorageError;
        match e {
            StorageError::WorkflowNotFound(id) => ApiError::not_found(format!("workflow {id:?} not found")),
            StorageError::WorkflowExists(id) => ApiError::conflict(format!("workflow {id:?} already exists")),
            e @ StorageError::VersionConflict { .. } => ApiError::conflict(e.to_string()),
            // Not an outage: the same values would be refused on every retry.
            e if e.is_refused_data() => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "refused_data",
                format!("the database refuses this data: {e}"),
            ),
            other => {
                tracing::error!(error = %other, "storage failure in a request");
                ApiError::unavailable(format!("storage unavailable: {other}"))
            }
        }
    }
}
