//! A message to deliver outside the database, at least once, deduplicated by its idempotency key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    pub run_id: Option<i64>,
    pub step_index: Option<i32>,
    pub customer_id: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    #[sea_orm(column_type = "Text")]
    pub idempotency_key: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// The partition whose owner publishes it (an emitted event of a run); `None` for
    /// what any process may publish (the scheduler's time-based events).
    pub partition: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTimeUtc>,
    /// What a journey's webhook kept of its answer (`{"response": .., "save": {..}}`), left
    /// by a sender that lost the partition while its request was out ([`settle_unowned`]).
    ///
    /// [`settle_unowned`]: crate::storage::steps::settle_unowned
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub kept: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
