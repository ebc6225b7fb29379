//! A named webhook target, so workflows say `endpoint` rather than a URL.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub secret: Option<String>,
    /// The credentials requests carry (`outbound::auth::Credentials` as JSON, sealed when
    /// `security.secret_key` is set); write-only through the API.
    #[sea_orm(column_type = "Text", nullable)]
    pub auth: Option<String>,
    /// Requests per second across the cluster ([`crate::storage::rates`]); `None` = unlimited.
    pub rate_per_sec: Option<i32>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
