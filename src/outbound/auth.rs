//! Credentials an SMS provider or a webhook endpoint is called with: written through the
//! API, never shown back, applied when a request is sent (issue 22, finding 5). Before
//! these, credentials could only go in the URL, which every read token sees.
//!
//! Like signing secrets, they stay out of the outbox row: the request keeps a reference
//! ([`super::signing::Keyring::register_auth`]'s key id) and the sender looks the
//! credentials up when it sends, so a stored request holds nothing a reader could use.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How a target wants to be authenticated; stored as this JSON (`{"type": ...}`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credentials {
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// An API key in a header of the provider's choosing (`X-Api-Key: <value>`).
    Header { name: String, value: String },
}

/// Shows the kind only: a `{:?}` in a log line never prints a credential.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.kind())
    }
}

/// Why credentials given through the API were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("expected {{\"type\": \"basic\", \"username\", \"password\"}}, {{\"type\": \"bearer\", \"token\"}} or {{\"type\": \"header\", \"name\", \"value\"}}: {0}")]
    Shape(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0}")]
    Header(String),
}

impl Credentials {
    /// Reads what the API was given, checking that it makes a valid header the engine does
    /// not set itself. Checked on write, so a send never fails on it.
    pub fn parse(value: &Value) -> Result<Credentials, AuthError> {
        let credentials: Credentials =
            serde_json::from_value(value.clone()).map_err(|e| AuthError::Shape(e.to_string()))?;
        match &credentials {
            Credentials::Basic { username, .. } if username.is_empty() => return Err(AuthError::Empty("username")),
            Credentials::Basic { username, .. } if username.contains(':') => {
                return Err(AuthError::Header("username must not contain ':'".to_owned()))
            }
            Credentials::Bearer { token } if token.is_empty() => return Err(AuthError::Empty("token")),
            Credentials::Header { name, value } => {
                if value.is_empty() {
                    return Err(AuthError::Empty("value"));
                }
                super::check_header(name, value).map_err(AuthError::Header)?;
            }
            _ => {}
        }
        let (name, value) = credentials.header();
        super::check_header_value(&name, &value)
            .map_err(|_| AuthError::Header("credentials must be ascii without control characters".to_owned()))?;
        Ok(credentials)
    }

    /// The stored form's text (the column's).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("a plain enum of strings serializes"))
    }

    /// The stored form back; `None` for text that is not (a row written by hand).
    pub fn from_stored(text: &str) -> Option<Credentials> {
        serde_json::from_str(text).ok()
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Basic { .. } => "basic",
            Credentials::Bearer { .. } => "bearer",
            Credentials::Header { .. } => "header",
        }
    }

    /// The header sent.
    pub fn header(&self) -> (String, String) {
        match self {
            Credentials::Basic { username, password } => (
                "Authorization".to_owned(),
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
                ),
            ),
            Credentials::Bearer { token } => ("Authorization".to_owned(), format!("Bearer {token}")),
            Credentials::Header { name, value } => (name.clone(), value.clone()),
        }
    }

    /// What the API shows: the kind and the parts that are not secret (a user name, a
    /// header's name), and that the secret is set.
    pub fn shown(&self) -> Value {
        match self {
            Credentials::Basic { username, .. } => {
                json!({"type": "basic", "username": username, "password_set": true})
            }
            Credentials::Bearer { .. } => json!({"type": "bearer", "token_set": true}),
            Credentials::Header { name, .. } => json!({"type": "header", "name": name, "value_set": true}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_headers_and_never_show() {
        let basic = Credentials::parse(&json!({"type": "basic", "username": "acme", "password": "hunter2"})).unwrap();
        assert_eq!(basic.header().1, "Basic YWNtZTpodW50ZXIy");
        assert!(!basic.shown().to_string().contains("hunter2"));
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert_eq!(Credentials::from_stored(&basic.to_stored()), Some(basic));
        let bearer = Credentials::parse(&json!({"type": "bearer", "token": "t0k"})).unwrap();
        assert_eq!(bearer.header(), ("Authorization".to_owned(), "Bearer t0k".to_owned()));
        let key = Credentials::parse(&json!({"type": "header", "name": "X-Api-Key", "value": "k"})).unwrap();
        assert_eq!(
            key.shown(),
            json!({"type": "header", "name": "X-Api-Key", "value_set": true})
        );
    }

    #[test]
    fn bad_credentials_are_refused_on_write() {
        for bad in [
            json!({"type": "basic", "username": "a"}),
            json!({"type": "digest"}),
            json!({"type": "bearer", "token": ""}),
            json!({"type": "bearer", "token": "a\r\nx: y"}),
            json!({"type": "header", "name": "Idempotency-Key", "value": "x"}),
            json!({"type": "header", "name": "bad name", "value": "x"}),
            json!({"type": "basic", "username": "a:b", "password": "c"}),
            json!({"type": "bearer", "token": "t", "extra": 1}),
            json!("bearer"),
        ] {
            assert!(Credentials::parse(&bad).is_err(), "{bad}");
        }
    }
}
