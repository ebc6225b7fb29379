//! Scoped bearer tokens on /api/* (and optionally /metrics).
//!
//! `auth.tokens` lists `{name, token | token_sha256, scopes}`; `http.auth_token` is one
//! more token, named "admin", with every scope. Only SHA-256 digests are kept in memory and
//! a presented token is hashed and compared against each in constant time, so neither a
//! configuration dump nor response timing gives a token away. With no token configured,
//! auth is off (the default for a local checkout; docs/security.md says when that is
//! acceptable).
//!
//! Every route maps to a scope ([`required_scope`]): reads (GET, and POSTs that change
//! nothing: validate, dry run, backtest) need `read`; changes to workflows and CRM data
//! `write`; POST /api/v1/events `events`; runs retry/cancel `admin`. `admin` implies every
//! scope. A missing or unknown token gets 401, a known one without the scope 403, both in
//! the API's error shape. The token's name is the caller ([`Caller`]), recorded as the
//! author of workflow versions and the actor of the audit log.
//!
//! The scope is decided on the route that matched, from its registered pattern, never from
//! the path as sent: the router decodes percent-escapes before it matches, so a scope read
//! off the raw path (`/api/v1/r%75ns/1/retry`) named a different route than the one that
//! then ran. [`authenticate`] (on the whole /api/v1 scope) identifies the token;
//! [`require`] (wrapped around each route, so it runs after routing) checks its scope.

use super::ApiError;
use crate::settings::{Scope, Settings, TokenConfig};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use sha2::{Digest, Sha256};

/// A token as kept: its digest, name and scopes.
#[derive(Clone)]
struct Token {
    digest: [u8; 32],
    name: String,
    scopes: Vec<Scope>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth token {0:?} needs exactly one of token and token_sha256")]
    OneOf(String),
    #[error("auth token {0:?}: token_sha256 must be 64 hex digits")]
    BadDigest(String),
    #[error("auth token {0:?} has no scopes")]
    NoScopes(String),
}

/// The API's auth configuration.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
    /// /metrics needs a token with `read` too.
    pub protect_metrics: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>())
            .field("protect_metrics", &self.protect_metrics)
            .finish()
    }
}

/// The single legacy token: every scope.
impl From<Option<String>> for Auth {
    fn from(token: Option<String>) -> Self {
        let mut auth = Auth::default();
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            auth.tokens.push(Token {
                digest: digest(&token),
                name: "admin".to_owned(),
                scopes: vec![Scope::Admin],
            });
        }
        auth
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Auth {
    /// The API's auth from the settings' `http.auth_token` and `auth`.
    pub fn from_settings(settings: &Settings) -> Result<Self, AuthConfigError> {
        Self::new(
            &settings.http.auth_token,
            &settings.auth.tokens,
            settings.auth.protect_metrics,
        )
    }

    /// From `http.auth_token`, `auth.tokens` and `auth.protect_metrics`.
    pub fn new(auth_token: &str, tokens: &[TokenConfig], protect_metrics: bool) -> Result<Self, AuthConfigError> {
        let mut auth = Auth::from(Some(auth_token.to_owned()));
        auth.protect_metrics = protect_metrics;
        for t in tokens {
            let digest = match (&t.token, &t.token_sha256) {
                (Some(token), None) if !token.is_empty() => digest(token),
                (None, Some(hex)) => parse_hex(hex).ok_or_else(|| AuthConfigError::BadDigest(t.name.clone()))?,
                _ => return Err(AuthConfigError::OneOf(t.name.clone())),
            };
            if t.scopes.is_empty() {
                return Err(AuthConfigError::NoScopes(t.name.clone()));
            }
            auth.tokens.push(Token {
                digest,
                name: t.name.clone(),
                scopes: t.scopes.clone(),
            });
        }
        Ok(auth)
    }

    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token presented as `Authorization: Bearer <token>`, if it is known. Every
    /// configured digest is compared, in constant time, whatever matches.
    fn identify(&self, presented: &str) -> Option<&Token> {
        let given = digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if constant_time_eq(&token.digest, &given) && found.is_none() {
                found = Some(token);
            }
        }
        found
    }
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Who made a request: the token's name, or `None` with auth off. Handlers read it from
/// the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The scope a route needs, from its method and its registered pattern (`{id}` and all).
pub fn required_scope(method: &Method, pattern: &str) -> Scope {
    let pattern = pattern.trim_end_matches('/');
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Scope::Read;
    }
    let under = |prefix: &str| pattern == prefix || pattern.starts_with(&format!("{prefix}/"));
    if method == Method::POST && pattern == "/api/v1/events" {
        Scope::Events
    } else if under("/api/v1/runs") {
        Scope::Admin
    } else if method == Method::POST
        && ["/api/v1/workflows/validate", "/api/v1/dry-run", "/api/v1/backtest"].contains(&pattern)
    {
        Scope::Read
    } else {
        Scope::Write
    }
}

/// The scopes of the token a request presented, for [`require`] after routing.
#[derive(Debug, Clone)]
struct Granted(Vec<Scope>);

/// The presented token, if auth is on: 401 without a known one.
fn identify<'a>(auth: &'a Auth, req: &ServiceRequest) -> Result<Option<&'a Token>, ApiError> {
    if !auth.is_enabled() {
        return Ok(None);
    }
    let presented = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented.and_then(|p| auth.identify(p)) {
        Some(token) => Ok(Some(token)),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token",
        )),
    }
}

/// 403 unless `granted` includes `scope` (or `admin`).
fn allow(name: &str, granted: &[Scope], scope: Scope, req: &ServiceRequest) -> Result<(), ApiError> {
    if granted.iter().any(|s| *s == scope || *s == Scope::Admin) {
        return Ok(());
    }
    tracing::warn!(token = %name, scope = scope.name(), path = req.path(), "request refused: missing scope");
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("token {name:?} lacks the {} scope", scope.name()),
    ))
}

/// Middleware of /api/v1, before routing: a known token (401 otherwise), whose name is the
/// request's [`Caller`] and whose scopes [`require`] checks once the route is known.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(auth) = req.app_data::<web::Data<Auth>>() {
        if let Some(token) = identify(auth, &req)? {
            let (caller, granted) = (Caller(token.name.clone()), Granted(token.scopes.clone()));
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(granted);
        }
    }
    next.call(req).await
}

/// Middleware of one route, after routing: the caller's token has `scope`, the scope of the
/// route's pattern ([`required_scope`]).
pub async fn require(
    scope: Scope,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.app_data::<web::Data<Auth>>().is_some_and(|auth| auth.is_enabled()) {
        let known = req
            .extensions()
            .get::<Caller>()
            .cloned()
            .zip(req.extensions().get::<Granted>().cloned());
        let Some((Caller(name), Granted(granted))) = known else {
            // Only a route outside /api/v1 (where `authenticate` does not run) lands here.
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or unknown bearer token",
            )
            .into());
        };
        allow(&name, &granted, scope, &req)?;
    }
    next.call(req).await
}

/// Middleware of /metrics: a `read` token when `auth.protect_metrics` is on.
pub async fn require_metrics_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if let Some(auth) = req.app_data::<web::Data<Auth>>() {
        if auth.protect_metrics {
            if let Some(token) = identify(auth, &req)? {
                allow(&token.name, &token.scopes, Scope::Read, &req)?;
            }
        }
    }
    next.call(req).await
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_scope() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(required_scope(&get, "/api/v1/workflows"), Scope::Read);
        assert_eq!(required_scope(&get, "/api/v1/runs"), Scope::Read);
        assert_eq!(required_scope(&post, "/api/v1/workflows"), Scope::Write);
        assert_eq!(required_scope(&Method::PUT, "/api/v1/workflows/{id}"), Scope::Write);
        assert_eq!(required_scope(&Method::DELETE, "/api/v1/customers/{id}"), Scope::Write);
        assert_eq!(required_scope(&post, "/api/v1/customers/import"), Scope::Write);
        assert_eq!(required_scope(&Method::PUT, "/api/v1/teams/{id}"), Scope::Write);
        assert_eq!(required_scope(&Method::PATCH, "/api/v1/tasks/{id}"), Scope::Write);
        assert_eq!(required_scope(&get, "/api/v1/tasks"), Scope::Read);
        assert_eq!(required_scope(&get, "/api/v1/customers/{id}/activity"), Scope::Read);
        assert_eq!(required_scope(&get, "/api/v1/sms-providers"), Scope::Read);
        assert_eq!(
            required_scope(&post, "/api/v1/status-types/{name}/statuses"),
            Scope::Write
        );
        assert_eq!(
            required_scope(&Method::DELETE, "/api/v1/webhook-endpoints/{id}"),
            Scope::Write
        );
        assert_eq!(required_scope(&post, "/api/v1/workflows/validate"), Scope::Read);
        assert_eq!(required_scope(&post, "/api/v1/dry-run"), Scope::Read);
        assert_eq!(required_scope(&post, "/api/v1/events"), Scope::Events);
        assert_eq!(required_scope(&post, "/api/v1/runs/{id}/retry"), Scope::Admin);
        assert_eq!(required_scope(&post, "/api/v1/runs/cancel"), Scope::Admin);
    }

    #[test]
    fn tokens_are_kept_hashed_and_checked() {
        let hex: String = digest("s3cret").iter().map(|b| format!("{b:02x}")).collect();
        let auth = Auth::new(
            "legacy",
            &[
                TokenConfig {
                    name: "ci".into(),
                    token: None,
                    token_sha256: Some(hex),
                    scopes: vec![Scope::Write],
                },
                TokenConfig {
                    name: "bad".into(),
                    token: Some("x".into()),
                    token_sha256: None,
                    scopes: vec![Scope::Read],
                },
            ],
            false,
        )
        .unwrap();
        assert_eq!(auth.identify("s3cret").map(|t| t.name.as_str()), Some("ci"));
        assert_eq!(auth.identify("legacy").map(|t| t.name.as_str()), Some("admin"));
        assert!(auth.identify("nope").is_none());
        assert!(!format!("{auth:?}").contains("legacy"));
        let both = TokenConfig {
            name: "b".into(),
            token: Some("x".into()),
            token_sha256: Some("00".into()),
            scopes: vec![Scope::Read],
        };
        assert!(matches!(Auth::new("", &[both], false), Err(AuthConfigError::OneOf(_))));
        let short = TokenConfig {
            name: "s".into(),
            token: None,
            token_sha256: Some("abc".into()),
            scopes: vec![Scope::Read],
        };
        assert!(matches!(
            Auth::new("", &[short], false),
            Err(AuthConfigError::BadDigest(_))
        ));
    }
}
