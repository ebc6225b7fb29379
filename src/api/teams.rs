//! Teams (a hierarchy with a desk) and their agents, by the CRM's ids.

use super::audit::{self, shown};
use super::input::{PageQuery, Reader, MAX_NAME_LEN, MAX_TEXT_LEN};
use super::{ApiError, AppState, ErrorBody};
use crate::problem::Pointer;
use crate::storage::entities::{agents as agent_rows, teams as team_rows};
use crate::storage::{agents, teams};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;

/// A team as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Team {
    /// The desk its agents work (sales, retention, ...).
    desk: String,
    id: i64,
    name: String,
    /// The team above it; null at the top.
    parent_id: Option<i64>,
}

/// An agent as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Agent {
    /// Inactive agents are not assigned customers.
    active: bool,
    email: String,
    id: i64,
    manager_id: Option<i64>,
    name: String,
    team_id: i64,
}

/// A page of teams, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamPage {
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
    teams: Vec<Team>,
}

/// A page of agents, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentPage {
    agents: Vec<Agent>,
    /// The `cursor` of the next page; null on the last.
    next_cursor: Option<String>,
}

fn team_json(t: &team_rows::Model) -> Team {
    Team {
        desk: t.desk.clone(),
        id: t.id,
        name: t.name.clone(),
        parent_id: t.parent_id,
    }
}

fn agent_json(a: &agent_rows::Model) -> Agent {
    Agent {
        active: a.active,
        email: a.email.clone(),
        id: a.id,
        manager_id: a.manager_id,
        name: a.name.clone(),
        team_id: a.team_id,
    }
}

/// The body's `id`, which must match the URL's when both are given.
fn body_id(r: &mut Reader<'_>, url_id: Option<i64>) -> Option<i64> {
    let id = r.id("id").flatten();
    if let (Some(given), Some(url)) = (id, url_id) {
        if given != url {
            let at = r.pointer("id");
            r.error(&at, format!("id {given} does not match the URL's {url}"));
        }
    }
    id
}

fn team_input(body: &Value, url_id: Option<i64>) -> Result<(Option<i64>, teams::TeamInput), ApiError> {
    let mut r = Reader::new(body, Pointer::root(), &["id", "name", "parent_id", "desk"]).map_err(ApiError::invalid)?;
    let id = body_id(&mut r, url_id);
    let name = r.string("name", true, MAX_NAME_LEN);
    let parent_id = r.id("parent_id").flatten();
    let desk = r
        .string("desk", false, MAX_NAME_LEN)
        .unwrap_or_else(|| "sales".to_owned());
    let problems = r.problems;
    match name {
        Some(name) if problems.is_empty() => Ok((id, teams::TeamInput { name, parent_id, desk })),
        _ => Err(ApiError::invalid(problems)),
    }
}

fn agent_input(body: &Value, url_id: Option<i64>) -> Result<(Option<i64>, agents::AgentInput), ApiError> {
    let mut r = Reader::new(
        body,
        Pointer::root(),
        &["id", "name", "email", "team_id", "manager_id", "active"],
    )
    .map_err(ApiError::invalid)?;
    let id = body_id(&mut r, url_id);
    let name = r.string("name", true, MAX_NAME_LEN);
    let email = r.string("email", false, MAX_TEXT_LEN).unwrap_or_default();
    let team_id = r.id("team_id").flatten();
    if team_id.is_none() && !r.problems.iter().any(|p| p.path == "/team_id") {
        let at = r.pointer("team_id");
        r.error(&at, "team_id is required");
    }
    let manager_id = r.id("manager_id").flatten();
    let active = r.boolean("active").unwrap_or(true);
    let problems = r.problems;
    match (name, team_id) {
        (Some(name), Some(team_id)) if problems.is_empty() => Ok((
            id,
            agents::AgentInput {
                name,
                email,
                team_id,
                manager_id,
                active,
            },
        )),
        _ => Err(ApiError::invalid(problems)),
    }
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "the teams by id", body = TeamPage)))]
pub async fn list_teams(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = teams::list(state.db.connection(), page).await?;
    Ok(HttpResponse::Ok().json(TeamPage {
        next_cursor: page.next_cursor(rows.iter().map(|t| t.id)),
        teams: rows.iter().map(team_json).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "crm", params(("id" = i64, Path, description = "team id")),
    responses((status = 200, description = "the team", body = Team), (status = 404, body = ErrorBody)))]
pub async fn get_team(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match teams::get(state.db.connection(), id).await? {
        Some(t) => Ok(HttpResponse::Ok().json(team_json(&t))),
        None => Err(ApiError::not_found(format!("team {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "crm",
    request_body(content = Object, description = "`{\"id\"?, \"name\", \"parent_id\"?, \"desk\"? = \"sales\"}`; without `id` the next free one"),
    responses((status = 201, description = "created", body = Team), (status = 409, description = "the id exists", body = ErrorBody),
        (status = 422, description = "a bad field, an unknown parent or a cycle", body = ErrorBody)))]
pub async fn create_team(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = team_input(&body, None)?;
    let team = teams::create(&state.db, id, input).await?;
    let after = Some(shown(&team_json(&team)));
    audit::config(&req, &state, "team.create", ("team", team.id.to_string()), None, after).await?;
    tracing::info!(team_id = team.id, "team created");
    Ok(HttpResponse::Created().json(team_json(&team)))
}

#[utoipa::path(put, path = "/api/v1/teams/{id}", tag = "crm", params(("id" = i64, Path, description = "team id")),
    request_body(content = Object, description = "`{\"name\", \"parent_id\"?, \"desk\"? = \"sales\"}`"),
    responses((status = 201, description = "created", body = Team), (status = 200, description = "replaced", body = Team),
        (status = 422, description = "a bad field, an unknown parent or a cycle", body = ErrorBody)))]
pub async fn put_team(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (_, input) = team_input(&body, Some(id))?;
    let before = teams::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&team_json(&b)));
    let (team, created) = teams::put(&state.db, id, input).await?;
    let after = Some(shown(&team_json(&team)));
    audit::config(&req, &state, "team.update", ("team", id.to_string()), before, after).await?;
    tracing::info!(team_id = id, created, "team written");
    Ok(if created {
        HttpResponse::Created().json(team_json(&team))
    } else {
        HttpResponse::Ok().json(team_json(&team))
    })
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "crm", params(("id" = i64, Path, description = "team id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "the team has agents or sub-teams", body = ErrorBody)))]
pub async fn delete_team(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let before = teams::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&team_json(&b)));
    teams::delete(&state.db, id).await?;
    audit::config(&req, &state, "team.delete", ("team", id.to_string()), before, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "crm", params(PageQuery), responses(
    (status = 200, description = "the agents by id", body = AgentPage)))]
pub async fn list_agents(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = agents::list(state.db.connection(), page).await?;
    Ok(HttpResponse::Ok().json(AgentPage {
        agents: rows.iter().map(agent_json).collect(),
        next_cursor: page.next_cursor(rows.iter().map(|a| a.id)),
    }))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "crm", params(("id" = i64, Path, description = "agent id")),
    responses((status = 200, description = "the agent", body = Agent), (status = 404, body = ErrorBody)))]
pub async fn get_agent(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    match agents::get(state.db.connection(), id).await? {
        Some(a) => Ok(HttpResponse::Ok().json(agent_json(&a))),
        None => Err(ApiError::not_found(format!("agent {id} not found"))),
    }
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "crm",
    request_body(content = Object, description = "`{\"id\"?, \"name\", \"email\"?, \"team_id\", \"manager_id\"?, \"active\"? = true}`"),
    responses((status = 201, description = "created", body = Agent), (status = 409, description = "the id exists", body = ErrorBody),
        (status = 422, description = "a bad field, an unknown team or manager", body = ErrorBody)))]
pub async fn create_agent(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = agent_input(&body, None)?;
    let agent = agents::create(&state.db, id, input).await?;
    let after = Some(shown(&agent_json(&agent)));
    audit::config(
        &req,
        &state,
        "agent.create",
        ("agent", agent.id.to_string()),
        None,
        after,
    )
    .await?;
    tracing::info!(agent_id = agent.id, "agent created");
    Ok(HttpResponse::Created().json(agent_json(&agent)))
}

#[utoipa::path(put, path = "/api/v1/agents/{id}", tag = "crm", params(("id" = i64, Path, description = "agent id")),
    request_body(content = Object, description = "`{\"name\", \"email\"?, \"team_id\", \"manager_id\"?, \"active\"? = true}`"),
    responses((status = 201, description = "created", body = Agent), (status = 200, description = "replaced", body = Agent),
        (status = 422, description = "a bad field, an unknown team or manager", body = ErrorBody)))]
pub async fn put_agent(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (_, input) = agent_input(&body, Some(id))?;
    let before = agents::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&agent_json(&b)));
    let (agent, created) = agents::put(&state.db, id, input).await?;
    let after = Some(shown(&agent_json(&agent)));
    audit::config(&req, &state, "agent.update", ("agent", id.to_string()), before, after).await?;
    tracing::info!(agent_id = id, created, "agent written");
    Ok(if created {
        HttpResponse::Created().json(agent_json(&agent))
    } else {
        HttpResponse::Ok().json(agent_json(&agent))
    })
}

#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "crm", params(("id" = i64, Path, description = "agent id")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody),
        (status = 409, description = "the agent manages other agents", body = ErrorBody)))]
pub async fn delete_agent(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let before = agents::get(state.db.connection(), id)
        .await?
        .map(|b| shown(&agent_json(&b)));
    agents::delete(&state.db, id).await?;
    audit::config(&req, &state, "agent.delete", ("agent", id.to_string()), before, None).await?;
    Ok(HttpResponse::NoContent().finish())
}
