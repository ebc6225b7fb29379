//! One workflow run for one event, unique per (event_id, workflow_id).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub event_id: String,
    #[sea_orm(column_type = "Text")]
    pub workflow_id: String,
    pub workflow_version: i64,
    pub customer_id: i64,
    #[sea_orm(column_type = "Text")]
    pub trigger: String,
    pub partition: i32,
    #[sea_orm(column_type = "JsonBinary")]
    pub event: Json,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub next_step: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// Why the run is as it is beyond its status (a send window it waits for, a cascade it
    /// started that was stopped).
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The `traceparent` the event arrived with, passed on by the run's webhooks and
    /// emitted events.
    #[sea_orm(column_type = "Text", nullable)]
    pub traceparent: Option<String>,
    /// The outside event whose cascade the run belongs to (guards::cascade): the run's own
    /// event, unless the engine emitted that event. The runs of a cascade are counted by it
    /// against `engine.max_cascade_runs`. `None` on runs recorded before it was kept.
    #[sea_orm(column_type = "Text", nullable)]
    pub cascade_root: Option<String>,
    /// When the customer reached the workflow's `goal` within its window after the run
    /// started (storage::goals); held-out runs too.
    pub goal_reached_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
