//! `[security]`: the key integration secrets are sealed with at rest (docs/security.md,
//! "Integration credentials"). Its own file: it is the one setting whose value must never
//! be printed.

use serde::Deserialize;

/// Keys the engine keeps secrets with (docs/security.md, "Integration credentials").
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Seals integration secrets at rest ([`crate::sealing`]); empty = not sealed.
    #[serde(default)]
    pub secret_key: String,
    /// The key being rotated away from: secrets still sealed with it are sealed again with
    /// `secret_key` at start-up ([`crate::storage::secrets::prepare`]); empty = none.
    #[serde(default)]
    pub previous_secret_key: String,
}

/// Says whether the key is set, never the key: settings are printed when debugging.
impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("secret_key_set", &!self.secret_key.trim().is_empty())
            .field("previous_secret_key_set", &!self.previous_secret_key.trim().is_empty())
            .finish()
    }
}

impl Security {
    /// The sealing key, `None` when none is set.
    pub fn sealing_key(&self) -> Result<Option<crate::sealing::SealingKey>, crate::sealing::SealError> {
        parse(&self.secret_key)
    }

    /// The key being rotated away from, `None` when none is set.
    pub fn previous_key(&self) -> Result<Option<crate::sealing::SealingKey>, crate::sealing::SealError> {
        parse(&self.previous_secret_key)
    }
}

fn parse(text: &str) -> Result<Option<crate::sealing::SealingKey>, crate::sealing::SealError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    crate::sealing::SealingKey::parse(text).map(Some)
}
