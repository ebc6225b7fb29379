//! Action targets checked at save: the teams, agents, statuses, webhook endpoints and SMS
//! provider a workflow's actions name, looked up in the database. An unknown one is a
//! warning with the JSON pointer of the param, not an error: it may be created later (a
//! workflow is often written before the CRM data it needs), and a run that still finds
//! none fails its step with the reason.

use super::entities::{agents, statuses, teams};
use super::StorageError;
use crate::catalogue::{Action, StatusRef, WebhookTarget};
use crate::problem::{Problem, Severity};
use crate::workflow::Workflow;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

fn warning(path: String, message: String) -> Problem {
    Problem {
        path,
        message,
        severity: Severity::Warning,
    }
}

/// The warnings for every action target of `workflow` that the database does not have,
/// in every step of its tree (a journey's branches and waits included).
pub async fn check<C: ConnectionTrait>(conn: &C, workflow: &Workflow) -> Result<Vec<Problem>, StorageError> {
    let mut warnings = Vec::new();
    for slot in workflow.flow().slots() {
        let param = |key: &str| format!("{}/params/{key}", slot.pointer);
        match &slot.step.action {
            Action::AssignToTeam { team_id } | Action::HandoverToRetention { team_id: Some(team_id) } => {
                let found = teams::Entity::find_by_id(*team_id).one(conn).await?;
                found.is_none().then(|| {
                    warnings.push(warning(
                        param("team_id"),
                        format!("unknown team {team_id} (it may be created later)"),
                    ))
                });
            }
            Action::AssignToAgent { agent_id } => match agents::Entity::find_by_id(*agent_id).one(conn).await? {
                None => warnings.push(warning(
                    param("agent_id"),
                    format!("unknown agent {agent_id} (it may be created later)"),
                )),
                Some(agent) if !agent.active => {
                    warnings.push(warning(param("agent_id"), format!("agent {agent_id} is not active")))
                }
                Some(_) => {}
            },
            Action::SetStatus { status_type, status } => {
                let Some(found) = super::statuses::type_by_name(conn, status_type).await? else {
                    warnings.push(warning(
                        param("type"),
                        format!("unknown status type {status_type:?} (it may be created later)"),
                    ));
                    continue;
                };
                let query = statuses::Entity::find().filter(statuses::Column::StatusTypeId.eq(found.id));
                let (key, exists, shown) = match status {
                    StatusRef::Id(id) => (
                        "status_id",
                        query.filter(statuses::Column::Id.eq(*id)).one(conn).await?.is_some(),
                        id.to_string(),
                    ),
                    StatusRef::Name(name) => (
                        "status",
                        query
                            .filter(statuses::Column::Name.eq(name.as_str()))
                            .one(conn)
                            .await?
                            .is_some(),
                        format!("{name:?}"),
                    ),
                };
                if !exists {
                    warnings.push(warning(
                        param(key),
                        format!("unknown status {shown} of type {status_type:?} (it may be created later)"),
                    ));
                }
            }
            Action::Webhook {
                target: WebhookTarget::Endpoint(name),
                ..
            } => {
                let found = super::endpoints::by_name(conn, name).await?;
                if found.is_none() {
                    warnings.push(warning(
                        param("endpoint"),
                        format!("unknown webhook endpoint {name:?} (it may be created later)"),
                    ));
                }
            }
            Action::SendSms { .. } => {
                let active = super::sms_providers::active(conn).await?;
                if active.is_none() {
                    warnings.push(warning(
                        format!("{}/type", slot.pointer),
                        "no SMS provider is active: send_sms fails until one is".to_owned(),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(warnings)
}
