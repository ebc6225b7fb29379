//! Who owns the customer: assign to a team (round-robin), to an agent, the next agent of
//! the current team, or a hand-over to the retention desk.
//!
//! Round-robin turns come from `teams.rr_cursor`, advanced by one atomic
//! `UPDATE … RETURNING`: on PostgreSQL the row lock serialises concurrent assigners, so
//! several engine processes never take or skip the same turn.

use super::{author, customer, ActionError, StepContext};
use crate::storage::entities::{agents, customers, notes, teams};
use crate::storage::sql::statement;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Desk names, as stored.
const RETENTION: &str = "retention";

pub(super) async fn to_team(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    team_id: i64,
) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let teams = all_teams(txn).await?;
    if !teams.contains_key(&team_id) {
        return Err(ActionError::NoTeam(team_id));
    }
    let agent = next_agent(txn, &teams, team_id, None).await?;
    assign(txn, ctx, &agent, &teams).await
}

pub(super) async fn to_agent(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    agent_id: i64,
) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let agent = agents::Entity::find_by_id(agent_id)
        .one(txn)
        .await?
        .ok_or(ActionError::NoAgent(agent_id))?;
    if !agent.active {
        return Err(ActionError::AgentInactive(agent_id));
    }
    let teams = all_teams(txn).await?;
    assign(txn, ctx, &agent, &teams).await
}

pub(super) async fn round_robin(txn: &DatabaseTransaction, ctx: &StepContext<'_>) -> Result<Value, ActionError> {
    let current = customer(txn, ctx).await?;
    let team_id = current.team_id.ok_or(ActionError::NoCurrentTeam(ctx.customer_id))?;
    let teams = all_teams(txn).await?;
    if !teams.contains_key(&team_id) {
        return Err(ActionError::NoTeam(team_id));
    }
    let agent = next_agent(txn, &teams, team_id, current.agent_id).await?;
    assign(txn, ctx, &agent, &teams).await
}

pub(super) async fn handover_to_retention(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    team_id: Option<i64>,
) -> Result<Value, ActionError> {
    customer(txn, ctx).await?;
    let teams = all_teams(txn).await?;
    let team_id = match team_id {
        Some(id) => {
            let team = teams.get(&id).ok_or(ActionError::NoTeam(id))?;
            if team.desk != RETENTION {
                return Err(ActionError::NotRetentionTeam(id));
            }
            id
        }
        None => teams
            .values()
            .filter(|t| t.parent_id.is_none() && t.desk == RETENTION)
            .map(|t| t.id)
            .min()
            .ok_or(ActionError::NoRetentionTeam)?,
    };
    let agent = next_agent(txn, &teams, team_id, None).await?;
    let mut result = assign(txn, ctx, &agent, &teams).await?;
    // The agent's team is under a retention team, but a sub-team may be labelled
    // otherwise: the hand-over itself decides the desk.
    customers::Entity::update_many()
        .col_expr(customers::Column::Desk, Expr::value(RETENTION))
        .filter(customers::Column::Id.eq(ctx.customer_id))
        .exec(txn)
        .await?;
    let note = notes::ActiveModel {
        customer_id: Set(ctx.customer_id),
        body: Set(format!("Handed over to retention: {}", agent.name)),
        author: Set(author(ctx)),
        created_at: Set(ctx.now),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    if let Value::Object(map) = &mut result {
        map.insert("desk".to_owned(), Value::from(RETENTION));
        map.insert("note_id".to_owned(), Value::from(note.id));
    }
    Ok(result)
}

async fn all_teams<C: ConnectionTrait>(conn: &C) -> Result<HashMap<i64, teams::Model>, ActionError> {
    Ok(teams::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect())
}

/// `team_id` and every team below it. Teams form a tree; a cycle in bad data is cut.
fn subtree(teams: &HashMap<i64, teams::Model>, team_id: i64) -> Vec<i64> {
    let mut seen = HashSet::from([team_id]);
    let mut queue = vec![team_id];
    let mut i = 0;
    while let Some(&id) = queue.get(i) {
        i += 1;
        for child in teams.values().filter(|t| t.parent_id == Some(id)) {
            if seen.insert(child.id) {
                queue.push(child.id);
            }
        }
    }
    queue
}

/// The agent whose turn it is in `team_id` (sub-teams included), skipping `not` when
/// another active agent exists.
async fn next_agent(
    txn: &DatabaseTransaction,
    teams: &HashMap<i64, teams::Model>,
    team_id: i64,
    not: Option<i64>,
) -> Result<agents::Model, ActionError> {
    let pool = agents::Entity::find()
        .filter(agents::Column::TeamId.is_in(subtree(teams, team_id)))
        .filter(agents::Column::Active.eq(true))
        .order_by_asc(agents::Column::Id)
        .all(txn)
        .await?;
    if pool.is_empty() {
        return Err(ActionError::NoActiveAgent(team_id));
    }
    let n = pool.len() as i64;
    let mut agent = &pool[pick(turn(txn, team_id).await?, n)];
    if pool.len() > 1 && Some(agent.id) == not {
        agent = &pool[pick(turn(txn, team_id).await?, n)];
    }
    Ok(agent.clone())
}

/// The agent the next round-robin turn of `team_id` would pick (the retention desk's
/// first team when `retention` and no team is given), read without taking the turn: for
/// the dry run. `Err` says why the action would fail.
pub(super) async fn peek<C: ConnectionTrait>(
    conn: &C,
    team_id: Option<i64>,
    not: Option<i64>,
    retention: bool,
) -> Result<Result<Option<agents::Model>, String>, crate::storage::StorageError> {
    let teams: HashMap<i64, teams::Model> = teams::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let team_id = match team_id {
        Some(id) => match teams.get(&id) {
            None => return Ok(Err(format!("no team {id}"))),
            Some(team) if retention && team.desk != RETENTION => {
                return Ok(Err(format!("team {id} is not on the retention desk")))
            }
            Some(_) => id,
        },
        None => match teams
            .values()
            .filter(|t| t.parent_id.is_none() && t.desk == RETENTION)
            .map(|t| t.id)
            .min()
        {
            Some(id) => id,
            None => return Ok(Err("no retention team".to_owned())),
        },
    };
    let pool = agents::Entity::find()
        .filter(agents::Column::TeamId.is_in(subtree(&teams, team_id)))
        .filter(agents::Column::Active.eq(true))
        .order_by_asc(agents::Column::Id)
        .all(conn)
        .await?;
    if pool.is_empty() {
        return Ok(Err(format!("no active agent in team {team_id} or below")));
    }
    let n = pool.len() as i64;
    let cursor = teams.get(&team_id).map_or(0, |t| t.rr_cursor);
    let mut agent = &pool[pick(cursor + 1, n)];
    if pool.len() > 1 && Some(agent.id) == not {
        agent = &pool[pick(cursor + 2, n)];
    }
    Ok(Ok(Some(agent.clone())))
}

/// The index of turn `cursor` (1-based, as the cursor reads after its increment).
fn pick(cursor: i64, n: i64) -> usize {
    (cursor - 1).rem_euclid(n) as usize
}

/// Takes the next turn of `team_id` atomically.
async fn turn(txn: &DatabaseTransaction, team_id: i64) -> Result<i64, ActionError> {
    let row = txn
        .query_one(statement(
            txn,
            "UPDATE teams SET rr_cursor = rr_cursor + 1 WHERE id = $1 RETURNING rr_cursor",
            vec![team_id.into()],
        ))
        .await?
        .ok_or(ActionError::NoTeam(team_id))?;
    Ok(row.try_get::<i64>("", "rr_cursor")?)
}

/// Gives the customer to `agent`: their agent, the agent's team and that team's desk.
async fn assign(
    txn: &DatabaseTransaction,
    ctx: &StepContext<'_>,
    agent: &agents::Model,
    teams: &HashMap<i64, teams::Model>,
) -> Result<Value, ActionError> {
    let mut update = customers::Entity::update_many()
        .col_expr(customers::Column::AgentId, Expr::value(agent.id))
        .col_expr(customers::Column::TeamId, Expr::value(agent.team_id))
        .col_expr(customers::Column::UpdatedAt, Expr::value(ctx.now));
    let desk = teams.get(&agent.team_id).map(|t| t.desk.clone());
    if let Some(desk) = &desk {
        update = update.col_expr(customers::Column::Desk, Expr::value(desk.as_str()));
    }
    update
        .filter(customers::Column::Id.eq(ctx.customer_id))
        .exec(txn)
        .await?;
    Ok(json!({"agent_id": agent.id, "team_id": agent.team_id, "desk": desk}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_cycle_from_the_first_agent() {
        let picks: Vec<usize> = (1..=6).map(|c| pick(c, 4)).collect();
        assert_eq!(picks, [0, 1, 2, 3, 0, 1]);
        assert_eq!(pick(0, 3), 2);
    }

    #[test]
    fn subtree_includes_descendants_and_survives_cycles() {
        let team = |id, parent_id| teams::Model {
            id,
            name: format!("t{id}"),
            parent_id,
            desk: "sales".into(),
            rr_cursor: 0,
        };
        let teams: HashMap<i64, teams::Model> = [team(1, Some(3)), team(2, Some(1)), team(3, Some(2)), team(4, None)]
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let mut ids = subtree(&teams, 1);
        ids.sort();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(subtree(&teams, 4), [4]);
    }
}
