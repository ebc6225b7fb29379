//! Teams: the hierarchy round-robin walks (a team and its sub-teams) and the desk a
//! hand-over moves a customer to. Ids are the CRM's own.

use super::crm::{CrmError, Page};
use super::entities::{agents, teams};
use super::Database;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    Set, TransactionTrait,
};

/// Deepest team hierarchy accepted: bounds the cycle check, and round-robin's walk.
pub const MAX_DEPTH: usize = 64;

/// A team as written through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamInput {
    pub name: String,
    pub parent_id: Option<i64>,
    pub desk: String,
}

pub async fn list<C: ConnectionTrait>(conn: &C, page: Page) -> Result<Vec<teams::Model>, CrmError> {
    let mut query = teams::Entity::find().order_by_asc(teams::Column::Id).limit(page.limit);
    if let Some(after) = page.after {
        query = query.filter(teams::Column::Id.gt(after));
    }
    Ok(query.all(conn).await?)
}

pub async fn get<C: ConnectionTrait>(conn: &C, id: i64) -> Result<Option<teams::Model>, CrmError> {
    Ok(teams::Entity::find_by_id(id).one(conn).await?)
}

/// Checks that `parent_id` exists and that making it `id`'s parent closes no cycle.
async fn check_parent<C: ConnectionTrait>(conn: &C, id: i64, parent_id: Option<i64>) -> Result<(), CrmError> {
    let Some(mut current) = parent_id else {
        return Ok(());
    };
    for _ in 0..MAX_DEPTH {
        if current == id {
            return Err(CrmError::invalid(
                "/parent_id",
                format!(
                    "team {id} cannot be under {}: that team is {id} itself or below it",
                    parent_id.unwrap_or(id)
                ),
            ));
        }
        match get(conn, current).await? {
            None if Some(current) == parent_id => {
                return Err(CrmError::invalid("/parent_id", format!("unknown team {current}")))
            }
            None => return Ok(()),
            Some(team) => match team.parent_id {
                None => return Ok(()),
                Some(up) => current = up,
            },
        }
    }
    Err(CrmError::invalid(
        "/parent_id",
        format!("the team hierarchy would be deeper than {MAX_DEPTH} levels"),
    ))
}

/// Creates team `id` (the next free id when `None`); an existing id is a conflict.
pub async fn create(db: &Database, id: Option<i64>, input: TeamInput) -> Result<teams::Model, CrmError> {
    let txn = db.connection().begin().await?;
    let id = match id {
        Some(id) => {
            if get(&txn, id).await?.is_some() {
                return Err(CrmError::Conflict(format!(
                    "team {id} already exists: PUT /api/v1/teams/{id} changes it"
                )));
            }
            id
        }
        None => next_id(&txn).await?,
    };
    check_parent(&txn, id, input.parent_id).await?;
    let team = teams::ActiveModel {
        id: Set(id),
        name: Set(input.name),
        parent_id: Set(input.parent_id),
        desk: Set(input.desk),
        rr_cursor: Set(0),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(team)
}

async fn next_id<C: ConnectionTrait>(conn: &C) -> Result<i64, CrmError> {
    let last = teams::Entity::find().order_by_desc(teams::Column::Id).one(conn).await?;
    Ok(last.map_or(1, |t| t.id.saturating_add(1)))
}

/// Creates or replaces team `id` (its round-robin turn is kept); true when created.
pub async fn put(db: &Database, id: i64, input: TeamInput) -> Result<(teams::Model, bool), CrmError> {
    let txn = db.connection().begin().await?;
    check_parent(&txn, id, input.parent_id).await?;
    let (team, created) = match get(&txn, id).await? {
        Some(existing) => {
            let mut team: teams::ActiveModel = existing.into();
            team.name = Set(input.name);
            team.parent_id = Set(input.parent_id);
            team.desk = Set(input.desk);
            (team.update(&txn).await?, false)
        }
        None => (
            teams::ActiveModel {
                id: Set(id),
                name: Set(input.name),
                parent_id: Set(input.parent_id),
                desk: Set(input.desk),
                rr_cursor: Set(0),
            }
            .insert(&txn)
            .await?,
            true,
        ),
    };
    txn.commit().await?;
    Ok((team, created))
}

/// Deletes team `id`; a team that still has agents or sub-teams is a conflict.
pub async fn delete(db: &Database, id: i64) -> Result<(), CrmError> {
    let txn = db.connection().begin().await?;
    if get(&txn, id).await?.is_none() {
        return Err(CrmError::NotFound(format!("team {id} not found")));
    }
    let members = agents::Entity::find()
        .filter(agents::Column::TeamId.eq(id))
        .count(&txn)
        .await?;
    let children = teams::Entity::find()
        .filter(teams::Column::ParentId.eq(id))
        .count(&txn)
        .await?;
    if members > 0 || children > 0 {
        return Err(CrmError::Conflict(format!(
            "team {id} has {members} agent(s) and {children} sub-team(s): move or delete them first"
        )));
    }
    teams::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}
