//! A follow-up task; `overdue_emitted_at` makes task.overdue fire once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub customer_id: i64,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub task_type: Option<String>,
    pub due_at: DateTimeUtc,
    pub assignee_id: Option<i64>,
    pub done: bool,
    pub overdue_emitted_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub run_id: Option<i64>,
    pub step_index: Option<i32>,
    /// When the task was marked done (PATCH /api/v1/tasks/{id}); `None` while open, and on
    /// tasks done before it was kept. Places "task done" in the customer's activity feed.
    pub done_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
