//! Named webhook endpoints: workflows say `"endpoint": "slack_notification"` and the URL
//! and signing secret live here, so fixing a URL fixes every workflow (and a retried run).

use super::crm::{is_unique_violation, CrmError, Page};
use super::entities::webhook_endpoints;
use super::{Database, StorageError};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

/// An endpoint as written through the API. `secret` and `auth` (the credentials' stored
/// form, JSON checked by the API): `None` keeps the stored one (PUT) or sets none (POST);
/// `Some(None)` removes it. Both are sealed here when the database has a key
/// ([`super::secrets`]).
#[derive(Clone, PartialEq)]
pub struct EndpointInput {
    pub name: String,
    pub url: String,
    pub secret: Option<Option<String>>,
    pub auth: Option<Option<String>>,
    /// Requests per second across the cluster; `None` = unlimited.
    pub rate_per_sec: Option<i32>,
}

/// Leaves the secrets out.
impl std::fmt::Debug for EndpointInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointInput")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn sealed(db: &Database, column: &str, value: Option<String>) -> Result<Option<String>, CrmError> {
    Ok(value.map(|v| super::secrets::seal(db, column, &v)).transpose()?)
}

pub async fn list<C: ConnectionTrait>(conn: &C, page: Page) -> Result<Vec<webhook_endpoints::Model>, CrmError> {
    let mut query = webhook_endpoints::Entity::find()
        .order_by_asc(webhook_endpoints::Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(webhook_endpoints::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<webhook_endpoints::Model>, CrmError> {
    Ok(webhook_endpoints::Entity::find_by_id(id).one(conn).await?)
}

/// The endpoint called `name`, if any (what a workflow's `endpoint` param names).
pub async fn by_name<C: ConnectionTrait>(
    conn: &C,
    name: &str,
) -> Result<Option<webhook_endpoints::Model>, StorageError> {
    Ok(webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Name.eq(name))
        .one(conn)
        .await?)
}

fn taken(name: &str, e: sea_orm::DbErr) -> CrmError {
    if is_unique_violation(&e) {
        CrmError::Conflict(format!("a webhook endpoint named {name:?} already exists"))
    } else {
        e.into()
    }
}

pub async fn create(db: &Database, input: EndpointInput) -> Result<webhook_endpoints::Model, CrmError> {
    let name = input.name.clone();
    webhook_endpoints::ActiveModel {
        name: Set(input.name),
        url: Set(input.url),
        secret: Set(sealed(db, super::secrets::ENDPOINT_SECRET, input.secret.flatten())?),
        auth: Set(sealed(db, super::secrets::ENDPOINT_AUTH, input.auth.flatten())?),
        rate_per_sec: Set(input.rate_per_sec),
        ..Default::default()
    }
    .insert(db.connection())
    .await
    .map_err(|e| taken(&name, e))
}

pub async fn update(db: &Database, id: i64, input: EndpointInput) -> Result<webhook_endpoints::Model, CrmError> {
    let Some(existing) = get(db.connection(), id).await? else {
        return Err(CrmError::NotFound(format!("webhook endpoint {id} not found")));
    };
    let name = input.name.clone();
    let mut row: webhook_endpoints::ActiveModel = existing.into();
    row.name = Set(input.name);
    row.url = Set(input.url);
    row.rate_per_sec = Set(input.rate_per_sec);
    if let Some(secret) = input.secret {
        row.secret = Set(sealed(db, super::secrets::ENDPOINT_SECRET, secret)?);
    }
    if let Some(auth) = input.auth {
        row.auth = Set(sealed(db, super::secrets::ENDPOINT_AUTH, auth)?);
    }
    row.update(db.connection()).await.map_err(|e| taken(&name, e))
}

pub async fn delete(db: &Database, id: i64) -> Result<(), CrmError> {
    let done = webhook_endpoints::Entity::delete_by_id(id)
        .exec(db.connection())
        .await?;
    if done.rows_affected == 0 {
        return Err(CrmError::NotFound(format!("webhook endpoint {id} not found")));
    }
    Ok(())
}
