//! A named counter of a manager, incremented atomically.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "manager_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub manager_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub counter: String,
    pub value: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
