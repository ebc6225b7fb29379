//! GET /api/v1/customers/{id}/activity: one feed, newest first, of what happened to a
//! customer (runs, status changes, assignments, tasks, notes, messages sent), paged by a
//! `before` cursor. What is read and what is not is said in storage/activity.rs; this
//! module turns rows into short summaries.
//!
//! A summary never carries a message's headers or body (headers may hold credentials, bodies
//! are whole messages): an email shows its template and subject, an SMS its template and
//! provider, a webhook the host and path it went to, without query or credentials.

use super::input::bad_param;
use super::{ApiError, AppState, ErrorBody};
use crate::clock::rfc3339;
use crate::storage::activity::{self, Detail, Entry, Kind, MessageRow, Position, StepRow};
use crate::storage::outbox::OutboxKind;
use crate::storage::tasks::status;
use crate::storage::{agents, customers, workflows};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// Most entries of one page: each page reads up to this many rows (plus one) from each of
/// the feed's seven sources, message payloads among them, so it is kept below the other
/// lists' 1000.
pub const MAX_ACTIVITY_LIMIT: u64 = 200;
/// Longest text taken into a summary from a title, subject or note, in characters.
const SUMMARY_TEXT: usize = 120;

/// `?limit=&before=` of the feed.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// At most this many, newest first (default 50, at most 200).
    limit: Option<u64>,
    /// The `next_before` of the previous page, or an RFC 3339 time: only what happened
    /// before it.
    before: Option<String>,
}

/// One entry of the feed: when, what, a one-line summary, and the ids to look further.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityEntry {
    pub at: String,
    /// run, status_change, assignment, task_created, task_done, note or message.
    pub kind: &'static str,
    pub summary: String,
    /// The run's status, the message's delivery status (pending, delivered, failed) or the
    /// task's current status (open, done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// The index of the run's step that did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_id: Option<i64>,
    /// The outbox row of a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<i64>,
    /// The agent a customer was assigned to, or a task is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<i64>,
}

/// A page of the feed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActivityPage {
    pub activity: Vec<ActivityEntry>,
    /// The `before` of the next page; null on the last.
    pub next_before: Option<String>,
}

impl ActivityEntry {
    fn new(e: &Entry, summary: String) -> Self {
        ActivityEntry {
            at: rfc3339(e.position.at),
            kind: e.kind.name(),
            summary,
            status: None,
            run_id: None,
            step: None,
            workflow_id: None,
            event_id: None,
            task_id: None,
            note_id: None,
            message_id: None,
            agent_id: None,
            team_id: None,
        }
    }
}

/// At most `max` characters of `text`, with "…" when cut.
fn cut(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

fn text_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The names a page's summaries use, read in one query per kind for the whole page, so a
/// summary says "Ana Costa" and "Big deposit alert" rather than ids.
#[derive(Default)]
struct Names {
    workflows: HashMap<String, String>,
    agents: HashMap<i64, String>,
}

impl Names {
    async fn of(conn: &sea_orm::DatabaseConnection, entries: &[Entry]) -> Result<Names, ApiError> {
        let mut workflow_ids = Vec::new();
        let mut agent_ids = Vec::new();
        for e in entries {
            match &e.detail {
                Detail::Run(r) => workflow_ids.push(r.workflow_id.clone()),
                Detail::Step(s) => agent_ids.extend(
                    s.result
                        .as_ref()
                        .and_then(|r| r.get("agent_id"))
                        .and_then(Value::as_i64),
                ),
                _ => {}
            }
        }
        workflow_ids.sort();
        workflow_ids.dedup();
        agent_ids.sort_unstable();
        agent_ids.dedup();
        Ok(Names {
            workflows: workflows::names(conn, &workflow_ids).await?,
            agents: agents::names(conn, &agent_ids).await?,
        })
    }

    /// `"Big deposit alert"`, or the id quoted when the workflow is gone.
    fn workflow(&self, id: &str) -> String {
        format!("{:?}", self.workflows.get(id).map_or(id, String::as_str))
    }

    /// `Ana Costa`, or `agent 3` when the agent is gone.
    fn agent(&self, id: i64) -> String {
        self.agents.get(&id).cloned().unwrap_or_else(|| format!("agent {id}"))
    }
}

fn entry_json(e: &Entry, names: &Names) -> ActivityEntry {
    match &e.detail {
        Detail::Run(r) => ActivityEntry {
            status: Some(r.status.clone()),
            run_id: Some(r.id),
            workflow_id: Some(r.workflow_id.clone()),
            event_id: Some(r.event_id.clone()),
            ..ActivityEntry::new(
                e,
                format!(
                    "workflow {} v{} on {}: {}",
                    names.workflow(&r.workflow_id),
                    r.workflow_version,
                    r.trigger,
                    r.status
                ),
            )
        },
        Detail::Step(s) => step_json(e, s, names),
        Detail::Task(t) => {
            let title = cut(&t.title, SUMMARY_TEXT);
            let summary = if e.kind == Kind::TaskDone {
                format!("task {title:?} done")
            } else {
                format!("task {title:?} created, due {}", rfc3339(t.due_at))
            };
            ActivityEntry {
                status: Some(if t.done { status::DONE } else { status::OPEN }.to_owned()),
                task_id: Some(t.id),
                run_id: t.run_id,
                step: t.step_index,
                agent_id: t.assignee_id,
                ..ActivityEntry::new(e, summary)
            }
        }
        Detail::Note(n) => ActivityEntry {
            note_id: Some(n.id),
            ..ActivityEntry::new(e, format!("note by {}: {}", n.author, cut(&n.body, SUMMARY_TEXT)))
        },
        Detail::Message(m) => ActivityEntry {
            status: Some(m.status.clone()),
            message_id: Some(m.id),
            run_id: m.run_id,
            step: m.step_index,
            ..ActivityEntry::new(e, message_summary(m))
        },
    }
}

fn step_json(e: &Entry, s: &StepRow, names: &Names) -> ActivityEntry {
    let result = s.result.clone().unwrap_or(Value::Null);
    let id = |key: &str| result.get(key).and_then(Value::as_i64);
    let summary = if e.kind == Kind::StatusChange {
        let type_name = text_of(&result, "status_type").unwrap_or("status");
        let new = text_of(&result, "new_status").unwrap_or("?");
        match (
            result.get("changed").and_then(Value::as_bool),
            text_of(&result, "old_status"),
        ) {
            (Some(false), _) => format!("{type_name}: already {new}, unchanged"),
            (_, Some(old)) => format!("{type_name}: {old} -> {new}"),
            (_, None) => format!("{type_name}: set to {new}"),
        }
    } else {
        let whom = match (id("agent_id"), text_of(&result, "desk")) {
            (Some(agent), Some(desk)) => format!("{} ({desk} desk)", names.agent(agent)),
            (Some(agent), None) => names.agent(agent),
            (None, _) => "an agent".to_owned(),
        };
        if s.action_type == crate::catalogue::ActionKind::HandoverToRetention.name() {
            format!("handed over to retention: {whom}")
        } else {
            format!("assigned to {whom} by {}", s.action_type)
        }
    };
    ActivityEntry {
        run_id: Some(s.run_id),
        step: Some(s.step_index),
        workflow_id: Some(s.workflow_id.clone()),
        agent_id: (e.kind == Kind::Assignment).then(|| id("agent_id")).flatten(),
        team_id: (e.kind == Kind::Assignment).then(|| id("team_id")).flatten(),
        ..ActivityEntry::new(e, summary)
    }
}

/// What a message was, from its queued request, leaving out headers and body: the
/// template and subject of an email, the template and provider of an SMS, the host and path
/// of a webhook.
fn message_summary(m: &MessageRow) -> String {
    let sent: Value = text_of(&m.payload, "body")
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    let template = text_of(&sent, "template").unwrap_or("?");
    let what = match OutboxKind::from_name(&m.kind) {
        Some(OutboxKind::Email) => match text_of(&sent, "subject") {
            Some(subject) => format!("email {template:?}: {}", cut(subject, SUMMARY_TEXT)),
            None => format!("email {template:?}"),
        },
        Some(OutboxKind::Sms) => match text_of(&sent, "provider") {
            Some(provider) => format!("sms {template:?} via {provider}"),
            None => format!("sms {template:?}"),
        },
        _ => {
            let to = text_of(&m.payload, "url")
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| format!("{}{}", u.host_str().unwrap_or("?"), u.path()))
                .unwrap_or_else(|| "?".to_owned());
            format!("webhook to {}", cut(&to, SUMMARY_TEXT))
        }
    };
    format!("{what} ({}, {} attempt(s))", m.status, m.attempts)
}

#[utoipa::path(get, path = "/api/v1/customers/{id}/activity", tag = "crm",
    params(("id" = i64, Path, description = "the CRM's customer id"), ActivityQuery),
    responses(
        (status = 200, description = "the customer's activity, newest first: runs, status changes and assignments made by workflow steps, tasks created and done, notes, emails, SMS and webhooks sent; `next_before` is null on the last page", body = ActivityPage),
        (status = 400, description = "a bad `before` or `limit`", body = ErrorBody),
        (status = 404, description = "no such customer", body = ErrorBody)))]
pub async fn customer_activity(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let before = query
        .before
        .as_deref()
        .map(|b| b.parse::<Position>().map_err(|e| bad_param("before", e.to_string())))
        .transpose()?;
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_ACTIVITY_LIMIT);
    let conn = state.db.connection();
    if customers::get(conn, id).await?.is_none() {
        return Err(ApiError::not_found(format!("customer {id} not found")));
    }
    let page = activity::page(conn, id, before, limit).await?;
    let names = Names::of(conn, &page.entries).await?;
    Ok(HttpResponse::Ok().json(ActivityPage {
        activity: page.entries.iter().map(|e| entry_json(e, &names)).collect(),
        next_before: page.next.map(|p| p.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(kind: &str, payload: Value) -> MessageRow {
        MessageRow {
            id: 1,
            kind: kind.to_owned(),
            run_id: Some(2),
            step_index: Some(0),
            status: "delivered".to_owned(),
            attempts: 1,
            payload,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn message_summaries_leave_out_headers_bodies_and_credentials() {
        let email = message(
            "email",
            json!({"kind": "email", "url": "http://mail.local/send", "headers": {"authorization": "Bearer s3cret"},
                   "body": json!({"template": "welcome", "subject": "Hello Ana", "body": "the whole letter"}).to_string()}),
        );
        assert_eq!(
            message_summary(&email),
            "email \"welcome\": Hello Ana (delivered, 1 attempt(s))"
        );
        let hook = message(
            "webhook",
            json!({"kind": "webhook", "url": "https://user:pw@hooks.example.com/crm/in?token=s3cret", "headers": {}, "body": "{\"secret\": 1}"}),
        );
        let summary = message_summary(&hook);
        assert_eq!(summary, "webhook to hooks.example.com/crm/in (delivered, 1 attempt(s))");
        let sms = message(
            "sms",
            json!({"kind": "sms", "url": "https://sms.example.com", "headers": {},
                   "body": json!({"template": "otp", "provider": "twilio", "text": "code 1234"}).to_string()}),
        );
        assert_eq!(
            message_summary(&sms),
            "sms \"otp\" via twilio (delivered, 1 attempt(s))"
        );
        for m in [email, hook, sms] {
            let s = message_summary(&m);
            assert!(
                !s.contains("s3cret") && !s.contains("letter") && !s.contains("1234"),
                "{s}"
            );
        }
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(cut("ação!", 4), "ação…");
        assert_eq!(cut("ação", 4), "ação");
    }
}
