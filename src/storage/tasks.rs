//! Tasks as the operator sees them: listed with filters, marked done or reopened.
//!
//! Tasks are created by the `create_task` action (actions/task.rs); this module only reads
//! them and flips their status. Lists go newest first by id (ids grow with creation), with
//! the last id of a page as the cursor of the next: a page costs one range scan however
//! deep it is, and tasks created meanwhile are neither skipped nor shown twice.

use super::entities::tasks;
use super::StorageError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// A task's status as the API names it: `done` is the stored flag.
pub mod status {
    pub const OPEN: &str = "open";
    pub const DONE: &str = "done";
    pub const ALL: [&str; 2] = [OPEN, DONE];
}

/// Which tasks to list, every filter combined with AND; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    pub customer_id: Option<i64>,
    /// The agent the task is assigned to (`tasks.assignee_id`).
    pub assignee_id: Option<i64>,
    /// `Some(true)` only done tasks, `Some(false)` only open ones.
    pub done: Option<bool>,
    /// Only tasks due strictly before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// Only tasks due at or after this time.
    pub due_after: Option<DateTime<Utc>>,
    /// Only tasks with an id below this one: the cursor of the next page.
    pub before_id: Option<i64>,
}

/// At most `limit` tasks matching `filter`, newest first.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    filter: &TaskFilter,
    limit: u64,
) -> Result<Vec<tasks::Model>, StorageError> {
    let mut query = tasks::Entity::find();
    if let Some(customer_id) = filter.customer_id {
        query = query.filter(tasks::Column::CustomerId.eq(customer_id));
    }
    if let Some(assignee_id) = filter.assignee_id {
        query = query.filter(tasks::Column::AssigneeId.eq(assignee_id));
    }
    if let Some(done) = filter.done {
        query = query.filter(tasks::Column::Done.eq(done));
    }
    if let Some(before) = filter.due_before {
        query = query.filter(tasks::Column::DueAt.lt(before));
    }
    if let Some(after) = filter.due_after {
        query = query.filter(tasks::Column::DueAt.gte(after));
    }
    if let Some(before_id) = filter.before_id {
        query = query.filter(tasks::Column::Id.lt(before_id));
    }
    Ok(query.order_by_desc(tasks::Column::Id).limit(limit).all(conn).await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<tasks::Model>, StorageError> {
    Ok(tasks::Entity::find_by_id(id).one(conn).await?)
}

/// Marks task `id` done (`done_at` = `now`) or open again (`done_at` cleared), and
/// returns it as it now is; `None` when there is no such task. Marking a done task done
/// keeps its first `done_at`, so a client that repeats the request does not move the task
/// in the activity feed. One statement each way, so two requests racing leave the task as
/// the later one says, never half of each.
pub async fn set_done<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    done: bool,
    now: DateTime<Utc>,
) -> Result<Option<tasks::Model>, StorageError> {
    let mut update = tasks::Entity::update_many()
        .col_expr(tasks::Column::Done, Expr::value(done))
        .filter(tasks::Column::Id.eq(id));
    update = if done {
        update
            .col_expr(tasks::Column::DoneAt, Expr::value(now))
            .filter(tasks::Column::Done.eq(false))
    } else {
        update.col_expr(tasks::Column::DoneAt, Expr::value(Option::<DateTime<Utc>>::None))
    };
    update.exec(conn).await?;
    get(conn, id).await
}
