//! Validation problems: what is wrong, and where.
//!
//! Every problem names the JSON pointer (RFC 6901) of the offending value, so an API client
//! or the builder page can put the message next to the field the user typed. Validators
//! collect problems instead of returning on the first one: a user fixing a workflow wants to
//! see every mistake at once.

use serde::Serialize;
use std::fmt;

/// How bad a problem is. Errors reject a definition; warnings are reported and saved anyway
/// (a status name unknown today may be created tomorrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with an input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// JSON pointer to the bad value, `""` for the document itself.
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "is_error")]
    pub severity: Severity,
}

fn is_error(severity: &Severity) -> bool {
    *severity == Severity::Error
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "/" } else { &self.path };
        match self.severity {
            Severity::Error => write!(f, "{path}: {}", self.message),
            Severity::Warning => write!(f, "{path}: warning: {}", self.message),
        }
    }
}

/// A JSON pointer under construction. Cheap to clone for the shallow documents workflows are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pointer(String);

impl Pointer {
    pub fn root() -> Self {
        Self(String::new())
    }

    /// The pointer to `key` inside this one, escaped as RFC 6901 requires.
    pub fn key(&self, key: &str) -> Self {
        let mut s = String::with_capacity(self.0.len() + key.len() + 1);
        s.push_str(&self.0);
        s.push('/');
        for c in key.chars() {
            match c {
                '~' => s.push_str("~0"),
                '/' => s.push_str("~1"),
                c => s.push(c),
            }
        }
        Self(s)
    }

    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}/{index}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Problems gathered while walking one document.
#[derive(Debug, Default, Clone)]
pub struct Problems(Vec<Problem>);

impl Problems {
    pub fn error(&mut self, path: &Pointer, message: impl Into<String>) {
        self.push(path, message.into(), Severity::Error);
    }

    pub fn warning(&mut self, path: &Pointer, message: impl Into<String>) {
        self.push(path, message.into(), Severity::Warning);
    }

    fn push(&mut self, path: &Pointer, message: String, severity: Severity) {
        self.0.push(Problem {
            path: path.as_str().to_owned(),
            message,
            severity,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    pub fn as_slice(&self) -> &[Problem] {
        &self.0
    }

    /// The errors only, dropping warnings.
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.0.iter().filter(|p| p.severity == Severity::Warning)
    }
}

/// A human name for a JSON value's type, for messages like "expected a number, got a string".
pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let p = Pointer::root().key("conditions").key("a/b~c").index(3);
        assert_eq!(p.as_str(), "/conditions/a~1b~0c/3");
    }
}
