//! SMS providers: send_sms goes through the one active provider. Activating one
//! deactivates the others in the same transaction, so there is never a moment with two
//! (the partial unique index would refuse it) and never a half-done switch.

use super::crm::{is_unique_violation, CrmError, Page};
use super::entities::sms_providers;
use super::sql::statement;
use super::{Database, StorageError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

/// A provider as written through the API. `auth`, the credentials' stored form (JSON,
/// checked by the API): `None` keeps the stored one (PUT) or sets none (POST); `Some(None)`
/// removes it. Sealed here when the database has a key ([`super::secrets`]).
#[derive(Clone, PartialEq)]
pub struct ProviderInput {
    pub name: String,
    pub url: String,
    pub active: bool,
    pub auth: Option<Option<String>>,
    /// Requests per second across the cluster; `None` = unlimited.
    pub rate_per_sec: Option<i32>,
}

/// Leaves the credentials out.
impl std::fmt::Debug for ProviderInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderInput")
            .field("name", &self.name)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// The stored form of `auth` (see [`ProviderInput`]), sealed.
fn sealed_auth(db: &Database, auth: Option<String>) -> Result<Option<String>, CrmError> {
    Ok(auth
        .map(|a| super::secrets::seal(db, super::secrets::PROVIDER_AUTH, &a))
        .transpose()?)
}

pub async fn list<C: ConnectionTrait>(conn: &C, page: Page) -> Result<Vec<sms_providers::Model>, CrmError> {
    let mut query = sms_providers::Entity::find()
        .order_by_asc(sms_providers::Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(sms_providers::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<sms_providers::Model>, CrmError> {
    Ok(sms_providers::Entity::find_by_id(id).one(conn).await?)
}

/// The active provider, if any: the one every `send_sms` goes through (a partial unique
/// index allows one).
pub async fn active<C: ConnectionTrait>(conn: &C) -> Result<Option<sms_providers::Model>, StorageError> {
    Ok(sms_providers::Entity::find()
        .filter(sms_providers::Column::Active.eq(true))
        .one(conn)
        .await?)
}

/// The provider called `name`, if any.
pub async fn by_name<C: ConnectionTrait>(conn: &C, name: &str) -> Result<Option<sms_providers::Model>, CrmError> {
    Ok(sms_providers::Entity::find()
        .filter(sms_providers::Column::Name.eq(name))
        .one(conn)
        .await?)
}

fn taken(name: &str, e: sea_orm::DbErr) -> CrmError {
    if is_unique_violation(&e) {
        CrmError::Conflict(format!("an SMS provider named {name:?} already exists"))
    } else {
        e.into()
    }
}

/// Deactivates every provider but `keep` (all of them when `None`).
async fn deactivate_others(txn: &DatabaseTransaction, keep: Option<i64>) -> Result<(), CrmError> {
    txn.execute(statement(
        txn,
        "UPDATE sms_providers SET active = $1 WHERE active AND id <> $2",
        vec![false.into(), keep.unwrap_or(-1).into()],
    ))
    .await?;
    Ok(())
}

pub async fn create(db: &Database, input: ProviderInput) -> Result<sms_providers::Model, CrmError> {
    let txn = db.connection().begin().await?;
    if input.active {
        deactivate_others(&txn, None).await?;
    }
    let name = input.name.clone();
    let provider = sms_providers::ActiveModel {
        name: Set(input.name),
        url: Set(input.url),
        active: Set(input.active),
        auth: Set(sealed_auth(db, input.auth.flatten())?),
        rate_per_sec: Set(input.rate_per_sec),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| taken(&name, e))?;
    txn.commit().await?;
    Ok(provider)
}

pub async fn update(db: &Database, id: i64, input: ProviderInput) -> Result<sms_providers::Model, CrmError> {
    let txn = db.connection().begin().await?;
    let Some(existing) = get(&txn, id).await? else {
        return Err(CrmError::NotFound(format!("SMS provider {id} not found")));
    };
    if input.active {
        deactivate_others(&txn, Some(id)).await?;
    }
    let name = input.name.clone();
    let mut row: sms_providers::ActiveModel = existing.into();
    row.name = Set(input.name);
    row.url = Set(input.url);
    row.active = Set(input.active);
    row.rate_per_sec = Set(input.rate_per_sec);
    if let Some(auth) = input.auth {
        row.auth = Set(sealed_auth(db, auth)?);
    }
    let provider = row.update(&txn).await.map_err(|e| taken(&name, e))?;
    txn.commit().await?;
    Ok(provider)
}

pub async fn delete(db: &Database, id: i64) -> Result<(), CrmError> {
    let done = sms_providers::Entity::delete_by_id(id).exec(db.connection()).await?;
    if done.rows_affected == 0 {
        return Err(CrmError::NotFound(format!("SMS provider {id} not found")));
    }
    Ok(())
}
