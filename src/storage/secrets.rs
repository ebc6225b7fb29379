//! The columns that hold integration secrets, sealed with `security.secret_key` when it is
//! set ([`crate::sealing`]): a webhook endpoint's signing secret and the `auth` credentials
//! of endpoints and SMS providers. Writers seal through [`seal`], readers open through
//! [`open`]; [`prepare`] runs at start-up, before anything reads them.

use super::entities::{sms_providers, webhook_endpoints};
use super::{Database, StorageError};
use crate::sealing::{self, SealError, SealingKey};
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

/// `webhook_endpoints.secret`: the associated data a value is sealed with.
pub const ENDPOINT_SECRET: &str = "webhook_endpoints.secret";
/// `webhook_endpoints.auth`.
pub const ENDPOINT_AUTH: &str = "webhook_endpoints.auth";
/// `sms_providers.auth`.
pub const PROVIDER_AUTH: &str = "sms_providers.auth";

/// `value` as it is stored in `column`: sealed when the database has a key.
pub fn seal(db: &Database, column: &str, value: &str) -> Result<String, StorageError> {
    Ok(sealing::seal(db.sealing_key(), column, value)?)
}

/// A stored value of `column` opened.
pub fn open(db: &Database, column: &str, stored: &str) -> Result<String, StorageError> {
    Ok(sealing::open(db.sealing_key(), column, stored)?)
}

/// What [`prepare`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Values written before a key was set, sealed now.
    pub sealed_now: usize,
    /// Values kept unsealed, as there is no key.
    pub unsealed: usize,
    /// Values sealed with the previous key, sealed again with the current one.
    pub resealed: usize,
}

/// At start-up: with a key, checks that every sealed secret opens with it (a wrong key
/// fails here, not at the first send) and seals the ones written before the key was set;
/// without one, fails if any secret is sealed, since nothing could be sent with it.
///
/// Rotation: a value that does not open with the key but opens with `previous`
/// (`security.previous_secret_key`) is sealed again with the key, so an operator changes
/// the key by starting once with both.
pub async fn prepare(db: &Database, previous: Option<&SealingKey>) -> Result<Prepared, StorageError> {
    let key = db.sealing_key();
    let mut prepared = Prepared::default();
    // Whether `value` of `column` must be (re)written: checked, and counted.
    let mut visit = |column: &str, value: &Option<String>| -> Result<Option<String>, StorageError> {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        match (key, sealing::is_sealed(value)) {
            (None, true) => Err(SealError::NoKey.into()),
            (None, false) => {
                prepared.unsealed += 1;
                Ok(None)
            }
            (Some(key), true) => match (key.open(column, value), previous) {
                (Ok(_), _) => Ok(None),
                (Err(SealError::WrongKey), Some(previous)) => {
                    let opened = previous.open(column, value)?;
                    prepared.resealed += 1;
                    Ok(Some(key.seal(column, &opened)?))
                }
                (Err(e), _) => Err(e.into()),
            },
            (Some(key), false) => {
                prepared.sealed_now += 1;
                Ok(Some(key.seal(column, value)?))
            }
        }
    };
    for endpoint in webhook_endpoints::Entity::find().all(db.connection()).await? {
        let secret = visit(ENDPOINT_SECRET, &endpoint.secret)?;
        let auth = visit(ENDPOINT_AUTH, &endpoint.auth)?;
        if secret.is_some() || auth.is_some() {
            let mut row: webhook_endpoints::ActiveModel = endpoint.into();
            if let Some(secret) = secret {
                row.secret = Set(Some(secret));
            }
            if let Some(auth) = auth {
                row.auth = Set(Some(auth));
            }
            row.update(db.connection()).await?;
        }
    }
    for provider in sms_providers::Entity::find().all(db.connection()).await? {
        if let Some(auth) = visit(PROVIDER_AUTH, &provider.auth)? {
            let mut row: sms_providers::ActiveModel = provider.into();
            row.auth = Set(Some(auth));
            row.update(db.connection()).await?;
        }
    }
    Ok(prepared)
}
