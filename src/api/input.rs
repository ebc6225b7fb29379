//! Reading CRM data bodies: typed fields of a JSON object, every problem collected with
//! its JSON pointer, unknown keys refused (a misspelt key would otherwise be dropped
//! silently); the `?limit=&cursor=` of every CRM list; and query values (times, id
//! cursors) read the same way by every list, a bad one a 400 naming the parameter.

use super::ApiError;
use crate::problem::{json_type_name, Pointer, Problem, Severity};
use crate::storage::crm::{CrmError, Page};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Longest name (teams, agents, endpoints, providers, statuses).
pub const MAX_NAME_LEN: usize = 200;
/// Longest other text field (emails, URLs, desks).
pub const MAX_TEXT_LEN: usize = 2000;

impl From<CrmError> for ApiError {
    fn from(e: CrmError) -> Self {
        match e {
            CrmError::NotFound(m) => ApiError::not_found(m),
            CrmError::Conflict(m) => ApiError::conflict(m),
            CrmError::Invalid(problems) => ApiError::invalid(problems),
            CrmError::Storage(e) => e.into(),
        }
    }
}

/// `?limit=&cursor=` of a CRM list: at most `limit` (default 100, at most 1000) rows after
/// the `next_cursor` of the previous page.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A bad query parameter (or filter field): 400 naming it in `path`.
pub fn bad_param(path: &str, message: String) -> ApiError {
    let mut e = ApiError::bad_request(message);
    e.path = Some(path.to_owned());
    e
}

/// An optional RFC 3339 time given as `path`.
pub fn param_time(value: Option<&str>, path: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| bad_param(path, format!("expected an RFC 3339 time, got {v:?}: {e}")))
        })
        .transpose()
}

/// An optional id cursor (`?cursor=`): the last id of the previous page.
pub fn id_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| bad_param("cursor", format!("not a cursor of this list: {c:?}")))
        })
        .transpose()
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let after = id_cursor(self.cursor.as_deref())?;
        Ok(Page {
            limit: self.limit.unwrap_or(100).clamp(1, super::MAX_LIST_LIMIT),
            after,
        })
    }
}

/// Typed reads from one JSON object, collecting problems.
pub struct Reader<'a> {
    object: &'a Map<String, Value>,
    at: Pointer,
    pub problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    /// `value` must be an object whose keys are all in `known`.
    pub fn new(value: &'a Value, at: Pointer, known: &[&str]) -> Result<Self, Vec<Problem>> {
        let Some(object) = value.as_object() else {
            return Err(vec![problem(
                &at,
                format!("expected an object, got {}", json_type_name(value)),
            )]);
        };
        let mut reader = Reader {
            object,
            at,
            problems: Vec::new(),
        };
        for key in object.keys() {
            if !known.contains(&key.as_str()) {
                let at = reader.at.key(key);
                reader.error(
                    &at,
                    format!("unknown key {key:?}: expected one of {}", known.join(", ")),
                );
            }
        }
        Ok(reader)
    }

    pub fn error(&mut self, at: &Pointer, message: impl Into<String>) {
        self.problems.push(problem(at, message.into()));
    }

    pub fn pointer(&self, key: &str) -> Pointer {
        self.at.key(key)
    }

    /// The raw value of `key`, if present.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    /// A string of at most `max` characters; `required` makes absence (or null) a problem.
    pub fn string(&mut self, key: &str, required: bool, max: usize) -> Option<String> {
        match self.present(key) {
            None | Some(Value::Null) => {
                if required {
                    let at = self.pointer(key);
                    self.error(&at, format!("{key} is required"));
                }
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                let at = self.pointer(key);
                self.error(&at, format!("{key} is longer than {max} characters"));
                None
            }
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                let at = self.pointer(key);
                self.error(&at, format!("{key} must not be empty"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                let at = self.pointer(key);
                self.error(&at, format!("expected a string, got {}", json_type_name(other)));
                None
            }
        }
    }

    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.present(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                let at = self.pointer(key);
                self.error(&at, format!("expected true or false, got {}", json_type_name(other)));
                None
            }
        }
    }

    /// An integer id: absent = `None`, null = `Some(None)`.
    pub fn id(&mut self, key: &str) -> Option<Option<i64>> {
        match self.present(key) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => match v.as_i64() {
                Some(id) => Some(Some(id)),
                None => {
                    let at = self.pointer(key);
                    self.error(&at, format!("expected an integer id, got {v}"));
                    None
                }
            },
        }
    }

    pub fn number(&mut self, key: &str) -> Option<f64> {
        match self.present(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64().filter(|n| n.is_finite()) {
                Some(n) => Some(n),
                None => {
                    let at = self.pointer(key);
                    self.error(&at, format!("expected a number, got {v}"));
                    None
                }
            },
        }
    }

    /// An RFC 3339 time: absent = `None`, null = `Some(None)`.
    pub fn time(&mut self, key: &str) -> Option<Option<DateTime<Utc>>> {
        match self.present(key) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(Some(t.with_timezone(&Utc))),
                Err(e) => {
                    let at = self.pointer(key);
                    self.error(&at, format!("expected an RFC 3339 time, got {s:?}: {e}"));
                    None
                }
            },
            Some(other) => {
                let at = self.pointer(key);
                self.error(&at, format!("expected an RFC 3339 time, got {}", json_type_name(other)));
                None
            }
        }
    }

    /// Ok with the problems left to the caller, or Err when there are any.
    pub fn finish(self) -> Result<(), Vec<Problem>> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(self.problems)
        }
    }
}

fn problem(at: &Pointer, message: String) -> Problem {
    Problem {
        path: at.as_str().to_owned(),
        message,
        severity: Severity::Error,
    }
}

/// An outbound URL (webhook endpoint, SMS provider): http(s), and not an internal address
/// unless allowlisted (the outbound guard's rules; names are checked again when resolved).
pub fn check_url(reader: &mut Reader<'_>, key: &str, url: &str, allowlist: &[String]) {
    if let Err(e) = crate::outbound::guard::check_target(url, allowlist) {
        let at = reader.pointer(key);
        reader.error(&at, e.to_string());
    }
}
