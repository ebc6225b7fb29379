//! What the CRM data repositories (teams, agents, webhook endpoints, SMS providers, status
//! types, customers) share: their error, and keyset paging by id.
//!
//! Lists page by id ascending: `?cursor=` is the last id of the previous page, so a page
//! costs one indexed range scan however deep it is, and rows added meanwhile are never
//! skipped or shown twice.

use super::StorageError;
use crate::problem::Problem;

/// Why a CRM data change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("{0}")]
    NotFound(String),
    /// The change would break a reference or a uniqueness rule (409).
    #[error("{0}")]
    Conflict(String),
    /// Bad values, each with the JSON pointer of the field (422).
    #[error("{}", .0.first().map_or("invalid input", |p| p.message.as_str()))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sea_orm::DbErr> for CrmError {
    fn from(e: sea_orm::DbErr) -> Self {
        CrmError::Storage(e.into())
    }
}

impl CrmError {
    /// One bad field.
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        CrmError::Invalid(vec![Problem {
            path: path.to_owned(),
            message: message.into(),
            severity: crate::problem::Severity::Error,
        }])
    }
}

/// One page of a list: at most `limit` rows with ids above `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u64,
    pub after: Option<i64>,
}

impl Page {
    /// The cursor of the next page: the last id, when the page is full (there may be more).
    pub fn next_cursor(&self, ids: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator) -> Option<String> {
        let full = ids.len() as u64 >= self.limit;
        let mut ids = ids;
        ids.next_back().filter(|_| full).map(|id| id.to_string())
    }
}

/// Whether a database error is a uniqueness violation (the same words on SQLite and
/// PostgreSQL).
pub fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("unique") || text.contains("duplicate key")
}
