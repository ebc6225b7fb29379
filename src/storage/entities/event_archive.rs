//! A consumed event kept for the backtest: the envelope's id, type, customer, time and
//! data, in arrival order (`seq`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "event_archive")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    #[sea_orm(column_type = "Text", unique)]
    pub event_id: String,
    #[sea_orm(column_type = "Text")]
    pub event_type: String,
    pub customer_id: i64,
    /// The event's own time (its `occurred_at`, else when it was archived).
    pub occurred_at: DateTimeUtc,
    pub archived_at: DateTimeUtc,
    /// The envelope's `data`.
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
