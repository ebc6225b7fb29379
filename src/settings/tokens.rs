//! The API's tokens as configured: who may call it and with which scopes
//! (docs/security.md). The API turns them into its `Auth` (digests only) at start-up.

use serde::Deserialize;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Events,
    Admin,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Events => "events",
            Scope::Admin => "admin",
        }
    }
}

/// One configured token (`auth.tokens[]`). Unknown keys are refused: a misspelt
/// `token_sha256` would otherwise leave a token that matches nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    /// The token itself; prefer `token_sha256` in files others can read.
    #[serde(default)]
    pub token: Option<String>,
    /// Hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    pub scopes: Vec<Scope>,
}
