//! A customer as the CRM holds it; the snapshot conditions read is built from it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub first_name: String,
    #[sea_orm(column_type = "Text")]
    pub last_name: String,
    #[sea_orm(column_type = "Text")]
    pub email: String,
    #[sea_orm(column_type = "Text")]
    pub phone: String,
    #[sea_orm(column_type = "Text")]
    pub country: String,
    #[sea_orm(column_type = "Text")]
    pub language: String,
    pub balance: f64,
    pub registered_at: Option<DateTimeUtc>,
    pub last_activity_at: Option<DateTimeUtc>,
    pub agent_id: Option<i64>,
    pub team_id: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub desk: String,
    pub active: bool,
    pub frozen: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub custom_fields: Json,
    pub updated_at: DateTimeUtc,
    /// IANA time zone name; send windows are kept in it.
    #[sea_orm(column_type = "Text")]
    pub timezone: String,
    pub email_opt_out: bool,
    pub sms_opt_out: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
