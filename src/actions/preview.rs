//! What the dry run shows of each action without doing it: every text param rendered with
//! the event and the customer, and the agent a round-robin action would pick, read from
//! the team's cursor without moving it. Nothing here writes.

use super::assign;
use crate::catalogue::{Action, WebhookTarget};
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
