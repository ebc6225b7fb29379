//! Agents: who round-robin assigns customers to, and whose manager's counters grow. Ids
//! are the CRM's own.

use super::crm::{CrmError, Page};
use super::entities::{agents, teams};
use super::Database;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};

/// An agent as written through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentInput {
    pub name: String,
    pub email: String,
    pub team_id: i64,
    pub manager_id: Option<i64>,
    pub active: bool,
}

pub async fn list<C: ConnectionTrait>(conn: &C, page: Page) -> Result<Vec<agents::Model>, CrmError> {
    let mut query = agents::Entity::find()
        .order_by_asc(agents::Column::Id)
        .limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(agents::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<agents::Model>, CrmError> {
    Ok(agents::Entity::find_by_id(id).one(conn).await?)
}

/// The team must exist; the manager, when given, must be another existing agent (an agent
/// being created may manage itself only once it exists, so that is refused too).
async fn check_refs<C: ConnectionTrait>(conn: &C, id: i64, input: &AgentInput) -> Result<(), CrmError> {
    let mut problems = Vec::new();
    if teams::Entity::find_by_id(input.team_id).one(conn).await?.is_none() {
        problems.push(problem("/team_id", format!("unknown team {}", input.team_id)));
    }
    if let Some(manager) = input.manager_id {
        if manager != id && get(conn, manager).await?.is_none() {
            problems.push(problem("/manager_id", format!("unknown agent {manager}")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CrmError::Invalid(problems))
    }
}

fn problem(path: &str, message: String) -> crate::problem::Problem {
    crate::problem::Problem {
        path: path.to_owned(),
        message,
        severity: crate::problem::Severity::Error,
    }
}

fn row(id: i64, input: AgentInput) -> agents::ActiveModel {
    agents::ActiveModel {
        id: Set(id),
        name: Set(input.name),
        email: Set(input.email),
        team_id: Set(input.team_id),
        manager_id: Set(input.manager_id),
        active: Set(input.active),
    }
}

/// Creates agent `id` (the next free id when `None`); an existing id is a conflict.
pub async fn create(db: &Database, id: Option<i64>, input: AgentInput) -> Result<agents::Model, CrmError> {
    let txn = db.connection().begin().await?;
    let id = match id {
        Some(id) => {
            if get(&txn, id).await?.is_some() {
                return Err(CrmError::Conflict(format!(
                    "agent {id} already exists: PUT /api/v1/agents/{id} changes it"
                )));
            }
            id
        }
        None => agents::Entity::find()
            .order_by_desc(agents::Column::Id)
            .one(&txn)
            .await?
            .map_or(1, |a| a.id.saturating_add(1)),
    };
    check_refs(&txn, id, &input).await?;
    let agent = row(id, input).insert(&txn).await?;
    txn.commit().await?;
    Ok(agent)
}

/// Creates or replaces agent `id`; true when created.
pub async fn put(db: &Database, id: i64, input: AgentInput) -> Result<(agents::Model, bool), CrmError> {
    let txn = db.connection().begin().await?;
    check_refs(&txn, id, &input).await?;
    let existed = get(&txn, id).await?.is_some();
    let agent = if existed {
        row(id, input).update(&txn).await?
    } else {
        row(id, input).insert(&txn).await?
    };
    txn.commit().await?;
    Ok((agent, !existed))
}

/// Deletes agent `id`; an agent that manages others is a conflict.
pub async fn delete(db: &Database, id: i64) -> Result<(), CrmError> {
    let txn = db.connection().begin().await?;
    if get(&txn, id).await?.is_none() {
        return Err(CrmError::NotFound(format!("agent {id} not found")));
    }
    let reports = agents::Entity::find()
        .filter(agents::Column::ManagerId.eq(id))
        .filter(agents::Column::Id.ne(id))
        .count(&txn)
        .await?;
    if reports > 0 {
        return Err(CrmError::Conflict(format!(
            "agent {id} manages {reports} other agent(s): give them another manager first"
        )));
    }
    agents::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// The names of the agents `ids` names, in one query; an unknown id is absent.
pub async fn names<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, String>, super::StorageError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    Ok(agents::Entity::find()
        .filter(agents::Column::Id.is_in(ids.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.id, a.name))
        .collect())
}
