//! Tasks for the operator: GET /api/v1/tasks (filtered, newest first, paged by cursor) and
//! PATCH /api/v1/tasks/{id} to mark one done or reopen it. Tasks are created by workflows
//! (`create_task`); each shows the run and step that created it.

use super::input::{bad_param, id_cursor, param_time, Reader};
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::problem::Pointer;
use crate::storage::entities::tasks as task_rows;
use crate::storage::tasks::{self, status, TaskFilter};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Filters of GET /api/v1/tasks, combined with AND.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TasksQuery {
    /// Only this customer's tasks.
    customer_id: Option<i64>,
    /// Only tasks assigned to this agent.
    agent_id: Option<i64>,
    /// open or done.
    status: Option<String>,
    /// Only tasks due before this time (RFC 3339).
    due_before: Option<String>,
    /// Only tasks due at or after this time (RFC 3339).
    due_after: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A task as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub id: i64,
    pub customer_id: i64,
    pub title: String,
    /// The task's type as the workflow named it (`create_task`'s `task_type`).
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub due_at: String,
    /// The agent the task is for: the customer's agent when it was created.
    pub assignee_id: Option<i64>,
    /// open or done.
    pub status: &'static str,
    pub created_at: String,
    /// When it was marked done; null while open.
    pub done_at: Option<String>,
    /// The run that created it (GET /api/v1/runs/{id}) and the index of its step there.
    pub run_id: Option<i64>,
    pub step: Option<i32>,
}

impl From<task_rows::Model> for Task {
    fn from(t: task_rows::Model) -> Self {
        Task {
            id: t.id,
            customer_id: t.customer_id,
            title: t.title,
            task_type: t.task_type,
            due_at: rfc3339(t.due_at),
            assignee_id: t.assignee_id,
            status: if t.done { status::DONE } else { status::OPEN },
            created_at: rfc3339(t.created_at),
            done_at: t.done_at.map(rfc3339),
            run_id: t.run_id,
            step: t.step_index,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// "open" or "done" as the stored flag; `None` for anything else.
fn is_done(name: &str) -> Option<bool> {
    match name {
        status::OPEN => Some(false),
        status::DONE => Some(true),
        _ => None,
    }
}

impl TasksQuery {
    fn filter(&self) -> Result<TaskFilter, ApiError> {
        let done = self
            .status
            .as_deref()
            .map(|s| {
                is_done(s).ok_or_else(|| {
                    bad_param(
                        "status",
                        format!("unknown status {s:?}: expected one of {}", status::ALL.join(", ")),
                    )
                })
            })
            .transpose()?;
        let before_id = id_cursor(self.cursor.as_deref())?;
        Ok(TaskFilter {
            customer_id: self.customer_id,
            assignee_id: self.agent_id,
            done,
            due_before: param_time(self.due_before.as_deref(), "due_before")?,
            due_after: param_time(self.due_after.as_deref(), "due_after")?,
            before_id,
        })
    }
}

#[utoipa::path(get, path = "/api/v1/tasks", tag = "crm", params(TasksQuery), responses(
    (status = 200, description = "tasks matching every filter, newest first (by id, the order they were created in); `next_cursor` is null on the last page", body = TaskPage),
    (status = 400, description = "a bad filter or cursor, named by `path`", body = ErrorBody)))]
pub async fn list_tasks(state: web::Data<AppState>, query: web::Query<TasksQuery>) -> Result<HttpResponse, ApiError> {
    let filter = query.filter()?;
    let limit = query.limit.unwrap_or(100).clamp(1, super::MAX_LIST_LIMIT);
    let rows = tasks::list(state.db.connection(), &filter, limit).await?;
    // A full page may have a next one; the cursor is its last id.
    let next_cursor = (rows.len() as u64 == limit)
        .then(|| rows.last().map(|t| t.id.to_string()))
        .flatten();
    Ok(HttpResponse::Ok().json(TaskPage {
        tasks: rows.into_iter().map(Task::from).collect(),
        next_cursor,
    }))
}

/// Reads the PATCH body: `{"status": "open" | "done"}` and nothing else.
fn patch_input(body: &Value) -> Result<bool, ApiError> {
    let mut r = Reader::new(body, Pointer::root(), &["status"]).map_err(ApiError::invalid)?;
    let name = r.string("status", true, 16);
    let done = name.as_deref().and_then(|name| {
        let done = is_done(name);
        if done.is_none() {
            let at = r.pointer("status");
            r.error(
                &at,
                format!("unknown status {name:?}: expected one of {}", status::ALL.join(", ")),
            );
        }
        done
    });
    match done {
        Some(done) if r.problems.is_empty() => Ok(done),
        _ => Err(ApiError::invalid(r.problems)),
    }
}

#[utoipa::path(patch, path = "/api/v1/tasks/{id}", tag = "crm", params(("id" = i64, Path, description = "task id")),
    request_body(content = Object, description = "`{\"status\": \"done\"}` marks the task done (a task already done keeps its `done_at`); `{\"status\": \"open\"}` reopens it"),
    responses((status = 200, description = "the task as it now is", body = Task),
        (status = 404, description = "no such task", body = ErrorBody),
        (status = 422, description = "a body other than `{\"status\": \"open\" | \"done\"}`, with the pointer of the bad value", body = ErrorBody)))]
pub async fn patch_task(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let done = patch_input(&body)?;
    let task = tasks::set_done(state.db.connection(), id, done, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
    tracing::info!(task_id = id, customer_id = task.customer_id, done, "task status set");
    Ok(HttpResponse::Ok().json(Task::from(task)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patch_body_is_a_status_and_nothing_else() {
        assert!(patch_input(&json!({"status": "done"})).unwrap());
        assert!(!patch_input(&json!({"status": "open"})).unwrap());
        for (body, path) in [
            (json!({"status": "closed"}), "/status"),
            (json!({"status": 1}), "/status"),
            (json!({}), "/status"),
            (json!({"status": "done", "title": "x"}), "/title"),
            (json!(["done"]), ""),
        ] {
            let e = patch_input(&body).unwrap_err();
            assert_eq!((e.status.as_u16(), e.path.as_deref()), (422, Some(path)), "{body}");
        }
    }
}
