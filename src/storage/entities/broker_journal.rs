//! A message written for the embedded broker before it was published (storage/journal.rs).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "broker_journal")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub topic: String,
    #[sea_orm(column_type = "Text")]
    pub message_key: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub traceparent: Option<String>,
    /// Where this process's broker put it; `None` until it was published.
    pub kafka_partition: Option<i32>,
    pub kafka_offset: Option<i64>,
    pub journaled_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
