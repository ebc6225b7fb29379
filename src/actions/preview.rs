//! What the dry run shows of each action without doing it: every text param rendered with
//! the event and the customer, and the agent a round-robin action would pick, read from
//! the team's cursor without moving it. Nothing here writes.

use super::assign;
use crate::catalogue::{Action, WebhookTarget};
use crate::conditions::journey::explain;
use crate::conditions::{reads_steps, Facts, Journey, Limits};
use crate::experiment::assign as experiment;
use crate::storage::entities::agents;
use crate::storage::StorageError;
use crate::workflow::Step;
use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{json, Map, Value};

/// Renders the string leaves of a param value; the first failure is reported.
fn render_value(value: &Value, context: &Value) -> Result<Value, String> {
    match value {
        Value::String(source) => crate::template::render(source, context)
            .map(Value::String)
            .map_err(|e| e.to_string()),
        Value::Array(items) => items
            .iter()
            .map(|v| render_value(v, context))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| render_value(v, context).map(|v| (k.clone(), v)))
            .collect::<Result<Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// `{"type", "rendered", "agent"?, "error"?}` for one step, with `customer` as the dry
/// run sees it (`team_id` and `agent_id` decide round-robin).
pub async fn preview<C: ConnectionTrait>(
    conn: &C,
    step: &Step,
    customer: &Map<String, Value>,
    context: &Value,
) -> Result<Value, StorageError> {
    let mut rendered = Map::new();
    let mut error: Option<String> = None;
    for (name, value) in &step.params {
        if !matches!(value, Value::String(_) | Value::Object(_) | Value::Array(_)) {
            continue;
        }
        match render_value(value, context) {
            Ok(Value::String(text)) => {
                rendered.insert(name.clone(), Value::String(text));
            }
            Ok(other) => {
                rendered.insert(name.clone(), Value::String(other.to_string()));
            }
            Err(e) => {
                error.get_or_insert(format!("{name}: {e}"));
            }
        }
    }
    // A webhook's URL as written may carry credentials (userinfo, `?token=`): the dry run
    // shows it as the endpoints API does.
    if let Some(Value::String(url)) = rendered.get_mut("url") {
        *url = crate::redact::url(url);
    }
    let customer_team = customer.get("team_id").and_then(Value::as_i64);
    let customer_agent = customer.get("agent_id").and_then(Value::as_i64);
    let picked: Result<Option<agents::Model>, String> = match &step.action {
        Action::AssignToTeam { team_id } => assign::peek(conn, Some(*team_id), None, false).await?,
        Action::ReassignRoundRobin => match customer_team {
            Some(team) => assign::peek(conn, Some(team), customer_agent, false).await?,
            None => Err("the customer has no team to reassign within".to_owned()),
        },
        Action::HandoverToRetention { team_id } => assign::peek(conn, *team_id, None, true).await?,
        Action::AssignToAgent { agent_id } => match agents::Entity::find_by_id(*agent_id).one(conn).await? {
            Some(agent) if agent.active => Ok(Some(agent)),
            Some(_) => Err(format!("agent {agent_id} is not active")),
            None => Err(format!("no agent {agent_id}")),
        },
        Action::Webhook {
            target: WebhookTarget::Endpoint(name),
            ..
        } => {
            let found = crate::storage::endpoints::by_name(conn, name).await?;
            found
                .map(|_| None)
                .ok_or_else(|| format!("no webhook endpoint named {name:?}"))
        }
        Action::SendSms { .. } => {
            let active = crate::storage::sms_providers::active(conn).await?;
            active.map(|_| None).ok_or_else(|| "no active SMS provider".to_owned())
        }
        _ => Ok(None),
    };
    let mut out = json!({"type": step.action.kind().name(), "rendered": rendered});
    match picked {
        Ok(Some(agent)) => out["agent"] = json!({"id": agent.id, "name": agent.name}),
        Ok(None) => {}
        Err(e) => {
            error.get_or_insert(e);
        }
    }
    if let Some(e) = error {
        out["error"] = Value::String(e);
    }
    Ok(out)
}

/// [`preview`] of a step as the dry run shows it inside a journey: a branch it can decide
/// names the path a run would take (`"path"`), each path's trace (`"paths"`) and the
/// previews of the taken path's steps (`"actions"`); one whose conditions read a step's
/// result (which a dry run, running no step, cannot know) has `"path": null` and the
/// previews of every path. A wait shows both continuations (`"on_event"`,
/// `"on_timeout"`). A split names the path this customer's stable draw takes, as a run of
/// `workflow_id` would. `facts` are the event's and the customer's, as the plan judged
/// them; `path` is the step's place in the tree (`"1"`, `"1.paths.0.0"`).
pub fn preview_tree<'a, C: ConnectionTrait>(
    conn: &'a C,
    (workflow_id, path): (&'a str, String),
    step: &'a Step,
    facts: Facts<'a>,
    context: &'a Value,
) -> futures_util::future::LocalBoxFuture<'a, Result<Value, StorageError>> {
    Box::pin(async move {
        let customer = facts.customer;
        let block = async |steps: &'a [Step], block: &str| -> Result<Value, StorageError> {
            let mut out = Vec::with_capacity(steps.len());
            for (i, step) in steps.iter().enumerate() {
                let at = format!("{path}.{block}.{i}");
                out.push(preview_tree(conn, (workflow_id, at), step, facts, context).await?);
            }
            Ok(Value::Array(out))
        };
        match &step.action {
            Action::Branch { paths, otherwise } => {
                let mut out = json!({"type": step.kind().name()});
                let no_steps = Map::new();
                let judged = Facts {
                    journey: Some(Journey {
                        trigger: facts.event,
                        steps: &no_steps,
                    }),
                    ..facts
                };
                let limits = Limits::saved();
                let decidable = !paths.iter().any(|p| reads_steps(&p.when));
                let mut traces = Vec::with_capacity(paths.len());
                let mut taken = None;
                for (k, path) in paths.iter().enumerate() {
                    let trace = explain(&path.when, judged, &limits).map_err(|e| e.to_string());
                    if decidable && taken.is_none() && trace.as_ref().is_ok_and(|t| t.result()) {
                        taken = Some(k);
                    }
                    traces.push(match trace {
                        Ok(trace) => serde_json::to_value(trace).unwrap_or_default(),
                        Err(error) => json!({ "error": error }),
                    });
                }
                out["paths"] = Value::Array(traces);
                if decidable {
                    out["path"] = taken.map_or(json!("otherwise"), Value::from);
                    out["actions"] = match taken {
                        Some(k) => block(&paths[k].actions, &format!("paths.{k}")).await?,
                        None => block(otherwise, "otherwise").await?,
                    };
                } else {
                    out["path"] = Value::Null;
                    out["undecided"] = json!("a path reads steps.*, which only a run knows");
                    let mut every = Vec::with_capacity(paths.len() + 1);
                    for (k, p) in paths.iter().enumerate() {
                        every.push(block(&p.actions, &format!("paths.{k}")).await?);
                    }
                    every.push(block(otherwise, "otherwise").await?);
                    out["every_path"] = Value::Array(every);
                }
                Ok(out)
            }
            Action::Split { paths } => {
                let percents: Vec<u8> = paths.iter().map(|p| p.percent).collect();
                let bucket = experiment::bucket(facts.event.customer_id, workflow_id, &path);
                let k = experiment::split_path(&percents, bucket);
                Ok(json!({
                    "type": step.kind().name(),
                    "path": k,
                    "percents": percents,
                    "actions": block(&paths[k].actions, &format!("paths.{k}")).await?,
                }))
            }
            Action::WaitForEvent {
                event,
                timeout,
                on_event,
                on_timeout,
                ..
            } => Ok(json!({
                "type": step.kind().name(),
                "waits_for": event,
                "timeout_secs": timeout.as_secs(),
                "on_event": block(on_event, "on_event").await?,
                "on_timeout": block(on_timeout, "on_timeout").await?,
            })),
            _ => preview(conn, step, customer, context).await,
        }
    })
}
