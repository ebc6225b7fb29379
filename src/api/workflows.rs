//! Workflow CRUD with versions, validation and the dry run.
//!
//! Saves, validation and the dry run are heavy requests ([`super::heavy`]): admitted by the
//! pool or answered 429, their definitions counted against the work budget before they
//! compile, and validation, compilation, the save-time analysis and the dry run's plan run
//! on a blocking thread within the time budget.

use super::heavy::Admitted;
use super::{ApiError, AppState, ErrorBody};
use crate::actors::protocol::Reload;
use crate::budget::Tally;
use crate::conditions::Facts;
use crate::envelope::{EnvelopeError, EventEnvelope};
use crate::outbound::destinations;
use crate::plan::WorkflowSet;
use crate::problem::{Pointer, Problem, Severity};

use crate::guards::contact::Channel;
use crate::storage::{customers, drafts, entries, recovery, runs, statuses, workflows, StorageError};
use crate::validate::{Validated, Validator};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Keys the API adds to a stored workflow; accepted and ignored on the way back in, so a
/// client can PUT what it GOT.
const READ_ONLY: [&str; 5] = ["created_at", "updated_at", "live_version", "draft_version", "draft"];

/// Takes a save's `"status"` out of its body: `"draft"` saves a version that does not run
/// (docs/changes.md), `"live"` or none a version that runs at once.
fn take_status(body: &mut Value) -> Result<bool, ApiError> {
    let Some(status) = body.as_object_mut().and_then(|map| map.remove("status")) else {
        return Ok(false);
    };
    match status.as_str() {
        Some("draft") => Ok(true),
        Some("live") => Ok(false),
        _ => Err(ApiError::invalid(vec![Problem {
            path: "/status".into(),
            message: format!("expected \"draft\" or \"live\", got {status}"),
            severity: Severity::Error,
        }])),
    }
}

/// With `changes.require_approval`, only drafts are saved: a version goes live through an
/// approval by another token and a publish.
fn refuse_unapproved(state: &AppState, draft: bool) -> Result<(), ApiError> {
    if state.changes.require_approval && !draft {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "approval_required",
            "changes.require_approval is on: save with \"status\": \"draft\", have another token approve it, then publish it",
        ));
    }
    Ok(())
}

/// The author recorded on a version: the token's name when auth is on (a header cannot
/// claim another identity), else `X-Changed-By` (a label: without auth anyone may write
/// anything), else "api".
pub(super) fn who(req: &HttpRequest) -> String {
    use actix_web::HttpMessage;
    if let Some(caller) = req.extensions().get::<super::Caller>() {
        return caller.0.clone();
    }
    req.headers()
        .get("X-Changed-By")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| "api".to_owned(), |v| v.chars().take(100).collect())
}

/// A workflow definition: its trigger, its conditions (a tree of rules and groups), its
/// actions (a tree of steps) and the settings beside them, as docs/workflow-language.md
/// describes. GET /api/v1/schema lists the triggers, fields, operators and actions one may
/// use; a save or POST /api/v1/workflows/validate names every problem by its JSON pointer.
// An object, not a schema of the tree: GET /api/v1/schema and the validator are what say
// what a definition may hold, and a second, hand-written description would drift from
// them. Named all the same, so generated clients get a type for it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct WorkflowDefinition(pub Value);

/// A stored workflow as the API shows it: its definition with the keys storage keeps
/// beside it put in, so a client can PUT what it GOT (`created_at` and `updated_at` are
/// ignored on the way in, a `version` must be the current one). Saves add `warnings`.
#[derive(Debug, utoipa::ToSchema)]
pub struct StoredWorkflow {
    #[serde(flatten)]
    definition: WorkflowDefinition,
    id: String,
    version: i64,
    active: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// What validation and the save-time analysis found (saves only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<Problem>)]
    warnings: Option<Value>,
    /// The version that runs; null while the workflow has only drafts (the definition
    /// shown is then its first draft, which does not run).
    live_version: Option<i64>,
    /// The newest draft saved after the live version, if any: it does not run until
    /// published.
    draft_version: Option<i64>,
    /// That draft (GET of one workflow and draft saves): `version`, `changed_by`,
    /// `changed_at`, `definition`.
    #[serde(skip_serializing_if = "Option::is_none")]
    draft: Option<WorkflowVersion>,
}

impl StoredWorkflow {
    fn new(stored: &workflows::StoredWorkflow) -> Self {
        StoredWorkflow {
            definition: WorkflowDefinition(stored.definition.clone()),
            id: stored.id.clone(),
            version: stored.version,
            active: stored.active,
            created_at: crate::clock::rfc3339(stored.created_at),
            updated_at: crate::clock::rfc3339(stored.updated_at),
            warnings: None,
            live_version: stored.published.then_some(stored.version),
            draft_version: None,
            draft: None,
        }
    }

    /// The same with the workflow's newest draft, shown whole.
    fn with_draft(mut self, draft: Option<&workflows::WorkflowVersion>) -> Self {
        self.draft_version = draft.map(|d| d.version);
        self.draft = draft.map(WorkflowVersion::new);
        self
    }

    /// The same with the warnings of a save.
    fn saved(stored: &workflows::StoredWorkflow, warnings: &[Problem]) -> Self {
        StoredWorkflow {
            warnings: Some(json!(warnings)),
            ..Self::new(stored)
        }
    }
}

/// One object: the definition's keys with the stored ones put in (replacing any the
/// definition holds), sorted, as the `serde_json` map this body was built in wrote them.
impl Serialize for StoredWorkflow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(definition) = &self.definition.0 else {
            return self.definition.serialize(serializer);
        };
        let stored = [
            ("id", Value::from(self.id.as_str())),
            ("version", Value::from(self.version)),
            ("active", Value::from(self.active)),
            ("created_at", Value::from(self.created_at.as_str())),
            ("updated_at", Value::from(self.updated_at.as_str())),
        ];
        let versions = [
            ("live_version", Value::from(self.live_version)),
            ("draft_version", Value::from(self.draft_version)),
        ];
        let draft = self.draft.as_ref().map(|d| serde_json::to_value(d).unwrap_or_default());
        let mut keys: BTreeMap<&str, &Value> = definition.iter().map(|(k, v)| (k.as_str(), v)).collect();
        keys.extend(stored.iter().chain(&versions).map(|(k, v)| (*k, v)));
        if let Some(warnings) = &self.warnings {
            keys.insert("warnings", warnings);
        }
        if let Some(draft) = &draft {
            keys.insert("draft", draft);
        }
        keys.serialize(serializer)
    }
}

/// The live workflows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowList {
    workflows: Vec<StoredWorkflow>,
}

/// One version of a workflow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowVersion {
    /// created, updated, deleted, or draft (saved with `"status": "draft"`: it runs only
    /// once published).
    change: String,
    #[schema(format = DateTime)]
    changed_at: String,
    changed_by: String,
    definition: WorkflowDefinition,
    version: i64,
}

impl WorkflowVersion {
    fn new(v: &workflows::WorkflowVersion) -> Self {
        WorkflowVersion {
            change: v.change.clone(),
            changed_at: crate::clock::rfc3339(v.changed_at),
            changed_by: v.changed_by.clone(),
            definition: WorkflowDefinition(v.definition.clone()),
            version: v.version,
        }
    }
}

/// A workflow's newest versions, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowVersions {
    versions: Vec<WorkflowVersion>,
}

/// A valid definition as the engine reads it, with its warnings.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// Always true: an invalid definition is a 422.
    valid: bool,
    /// What validation and the save-time analysis found.
    #[schema(value_type = Vec<Problem>)]
    warnings: Value,
    /// The definition with its defaults filled in.
    workflow: WorkflowDefinition,
}

/// What a dry run found: the plan, how every workflow of the trigger was judged, what the
/// event would cancel, and the customer it was judged with.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunReport {
    /// The customer the conditions read: the request's, else the stored one.
    customer: Map<String, Value>,
    /// Every workflow of the trigger, in evaluation order.
    #[schema(value_type = Vec<crate::plan::Evaluation>)]
    evaluated: Value,
    /// The waiting runs the event would cancel through each workflow's `exit_when`.
    exits: Vec<DryRunExit>,
    /// What would run, in execution order; each step's preview beside it.
    #[schema(value_type = Vec<crate::plan::PlannedRun>)]
    plan: Value,
    /// Each planned step whose destination the outbound guard would refuse.
    warnings: Vec<DryRunWarning>,
}

/// The waiting runs of one workflow a dry run's event would cancel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunExit {
    cancels: Vec<i64>,
    workflow_id: String,
}

/// A planned step whose destination the outbound guard would refuse.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRunWarning {
    message: String,
    /// JSON pointer of the step in the workflow's definition.
    path: String,
    workflow_id: String,
}

pub(super) async fn validate_body(
    state: &AppState,
    admitted: &Admitted,
    mut body: Value,
) -> Result<Validated, ApiError> {
    if let Value::Object(map) = &mut body {
        for key in READ_ONLY {
            map.remove(key);
        }
    }
    // Counted before it compiles: one definition may hold `limits.max_rules` regexes.
    Tally::new(admitted.budget(), &state.limits).add(&body, &Pointer::root())?;
    let schema = statuses::field_schema(state.db.connection()).await?;
    let limits = state.limits;
    let mut validated = admitted
        .cpu(move |_| {
            Validator::new(&schema, limits)
                .workflow(&body)
                .map_err(|invalid| ApiError::invalid(invalid.problems))
        })
        .await?;
    // Here, not in the validator: stored workflows are validated again when they are
    // loaded, and one saved before this check must keep running (under the cascade budget).
    if let Some(problem) = crate::analysis::fanout::check(&validated.workflow) {
        return Err(ApiError::invalid(vec![problem]));
    }
    // Teams, agents, statuses, endpoints and the SMS provider the actions name.
    let targets = crate::storage::targets::check(state.db.connection(), &validated.workflow).await?;
    validated.warnings.extend(targets);
    // Where its requests would go, as the outbound guard will judge them.
    let conn = state.db.connection();
    let destinations = destinations::warnings(conn, &validated.workflow, &state.webhook_allowlist).await?;
    validated.warnings.extend(destinations);
    Ok(validated)
}

/// The save-time analysis (cycles, conflicts) of `workflow`, stored or to be stored as
/// `id`, against the active workflows: warnings only, so a failure to load them is
/// logged and costs the warnings, never the save. Its cost grows with the active
/// workflows, so they are validated again and compared on a blocking thread, within the
/// time budget; running out of it costs the warnings too, and says so in one.
async fn analysis_warnings(
    state: &AppState,
    admitted: &Admitted,
    workflow: &crate::workflow::Workflow,
    id: &str,
) -> Vec<Problem> {
    if !workflow.active {
        return Vec::new();
    }
    let loaded = async {
        let schema = statuses::field_schema(state.db.connection()).await?;
        let rows = workflows::list_active(state.db.connection()).await?;
        Ok::<_, StorageError>((schema, rows))
    }
    .await;
    let (schema, rows) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::warn!(workflow_id = %id, error = %e, "cycle and conflict analysis skipped");
            return Vec::new();
        }
    };
    let (candidate, candidate_id, limits) = (workflow.clone(), id.to_owned(), state.limits);
    let analysed = admitted
        .cpu(move |deadline| {
            let validator = Validator::new(&schema, limits);
            let mut others = Vec::with_capacity(rows.len());
            for row in &rows {
                deadline.check()?;
                others.extend(crate::live::revalidate(&validator, row));
            }
            deadline.check()?;
            Ok(crate::analysis::analyze(&candidate, &candidate_id, &others))
        })
        .await;
    match analysed {
        Ok(warnings) => warnings,
        Err(e) => {
            tracing::warn!(workflow_id = %id, error = %e, "cycle and conflict analysis skipped");
            vec![Problem {
                path: String::new(),
                message: format!("cycle and conflict analysis skipped: {}", e.message),
                severity: Severity::Warning,
            }]
        }
    }
}

/// The row of a workflow a draft was just saved for.
async fn drafts_row(state: &AppState, id: &str) -> Result<workflows::StoredWorkflow, ApiError> {
    workflows::get(state.db.connection(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("workflow {id:?} not found")))
}

/// Tells this process's matcher at once; other processes notice through their poll.
pub(super) async fn reload(state: &AppState) {
    if let Some(matcher) = &state.matcher {
        if let Ok(Err(e)) = matcher.send(Reload).await {
            tracing::warn!(error = %e, "workflow reload after a change failed");
        }
    }
}

#[utoipa::path(get, path = "/api/v1/workflows", operation_id = "list_workflows", tag = "workflows", params(super::ListQuery), responses((status = 200, description = "the stored workflows", body = WorkflowList)))]
pub async fn list(state: web::Data<AppState>, query: web::Query<super::ListQuery>) -> Result<HttpResponse, ApiError> {
    let rows = workflows::list(state.db.connection()).await?;
    let drafts = drafts::newest_drafts(state.db.connection()).await?;
    let workflows = rows
        .iter()
        .take(query.limit(super::MAX_LIST_LIMIT))
        .map(|row| {
            let mut shown = StoredWorkflow::new(row);
            shown.draft_version = drafts
                .get(&row.id)
                .copied()
                .filter(|v| !row.published || *v > row.version);
            shown
        })
        .collect();
    Ok(HttpResponse::Ok().json(WorkflowList { workflows }))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", operation_id = "get_workflow", tag = "workflows", params(("id" = String, Path, description = "workflow id")),
    responses((status = 200, description = "the workflow with id, version, created_at, updated_at", body = StoredWorkflow), (status = 404, body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    match workflows::get(state.db.connection(), &id).await? {
        Some(stored) => {
            let draft = drafts::newest_draft(state.db.connection(), &stored).await?;
            Ok(HttpResponse::Ok().json(StoredWorkflow::new(&stored).with_draft(draft.as_ref())))
        }
        None => Err(ApiError::not_found(format!("workflow {:?} not found", id.as_str()))),
    }
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/versions", tag = "workflows", params(("id" = String, Path, description = "workflow id")),
    responses((status = 200, description = "the newest versions, oldest first", body = WorkflowVersions), (status = 404, body = ErrorBody)))]
pub async fn versions(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<super::ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit(super::MAX_LIST_LIMIT) as u64;
    let rows = workflows::newest_versions(state.db.connection(), &id, limit).await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!("workflow {:?} not found", id.as_str())));
    }
    // The newest `limit` versions, in order.
    let versions = rows.iter().map(WorkflowVersion::new).collect();
    Ok(HttpResponse::Ok().json(WorkflowVersions { versions }))
}

#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows",
    request_body(content = WorkflowDefinition, description = "a workflow definition (docs/workflow-language.md)"),
    responses((status = 201, description = "stored, with id, version 1 and warnings", body = StoredWorkflow), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    let draft = take_status(&mut body)?;
    refuse_unapproved(&state, draft)?;
    // Admitted before anything is stored: a full pool refuses the save, not its warnings.
    let admitted = state.heavy.admit("save")?;
    let validated = validate_body(&state, &admitted, body).await?;
    let (author, actor) = (who(&req), super::audit::actor(&req));
    let by = workflows::By {
        author: &author,
        actor: &actor,
    };
    if draft {
        let saved = drafts::save(&state.db, &validated.workflow, false, None, by).await?;
        tracing::info!(workflow_id = %saved.workflow_id, version = saved.version, "workflow draft created");
        let stored = drafts_row(&state, &saved.workflow_id).await?;
        let mut warnings = validated.warnings;
        warnings.extend(analysis_warnings(&state, &admitted, &validated.workflow, &stored.id).await);
        let shown = StoredWorkflow::saved(&stored, &warnings).with_draft(Some(&saved));
        return Ok(HttpResponse::Created().json(shown));
    }
    let stored = workflows::create(&state.db, &validated.workflow, by).await?;
    tracing::info!(workflow_id = %stored.id, version = stored.version, "workflow created");
    reload(&state).await;
    let mut warnings = validated.warnings;
    warnings.extend(analysis_warnings(&state, &admitted, &validated.workflow, &stored.id).await);
    Ok(HttpResponse::Created().json(StoredWorkflow::saved(&stored, &warnings)))
}

#[utoipa::path(put, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "workflow id")),
    request_body(content = WorkflowDefinition, description = "the whole definition; a `version` must be the current one"),
    responses((status = 200, description = "stored as a new version, with warnings", body = StoredWorkflow), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body.into_inner();
    let draft = take_status(&mut body)?;
    refuse_unapproved(&state, draft)?;
    let admitted = state.heavy.admit("save")?;
    if workflows::get(state.db.connection(), &id).await?.is_none() {
        return Err(ApiError::not_found(format!("workflow {:?} not found", id.as_str())));
    }
    if let Some(given) = body.get("id").filter(|v| !v.is_null()) {
        if given.as_str() != Some(id.as_str()) {
            let mut e = ApiError::invalid(vec![Problem {
                path: "/id".into(),
                message: format!("id {given} does not match the URL's {:?}", id.as_str()),
                severity: Severity::Error,
            }]);
            e.code = "invalid";
            return Err(e);
        }
    }
    // Optimistic concurrency, checked in the saving transaction: a client that read
    // version N may only replace version N.
    let expected = body.get("version").and_then(Value::as_i64);
    let mut validated = validate_body(&state, &admitted, body).await?;
    validated.workflow.id = Some(id.to_string());
    let (author, actor) = (who(&req), super::audit::actor(&req));
    let by = workflows::By {
        author: &author,
        actor: &actor,
    };
    let concurrent = || ApiError::conflict(format!("workflow {:?} changed concurrently: retry", id.as_str()));
    if draft {
        let saved = match drafts::save(&state.db, &validated.workflow, true, expected, by).await {
            Err(StorageError::Db(e)) if e.to_string().to_lowercase().contains("unique") => return Err(concurrent()),
            other => other?,
        };
        tracing::info!(workflow_id = %saved.workflow_id, version = saved.version, "workflow draft saved");
        let stored = drafts_row(&state, &id).await?;
        let mut warnings = validated.warnings;
        warnings.extend(analysis_warnings(&state, &admitted, &validated.workflow, &stored.id).await);
        let shown = StoredWorkflow::saved(&stored, &warnings).with_draft(Some(&saved));
        return Ok(HttpResponse::Ok().json(shown));
    }
    let stored = match workflows::update(&state.db, &id, &validated.workflow, expected, by).await {
        Err(StorageError::Db(e)) if e.to_string().to_lowercase().contains("unique") => return Err(concurrent()),
        other => other?,
    };
    tracing::info!(workflow_id = %stored.id, version = stored.version, "workflow updated");
    reload(&state).await;
    let mut warnings = validated.warnings;
    warnings.extend(analysis_warnings(&state, &admitted, &validated.workflow, &stored.id).await);
    Ok(HttpResponse::Ok().json(StoredWorkflow::saved(&stored, &warnings)))
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", operation_id = "delete_workflow", tag = "workflows", params(("id" = String, Path, description = "workflow id")),
    responses((status = 204, description = "deleted; its history stays"), (status = 404, body = ErrorBody)))]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (author, actor) = (who(&req), super::audit::actor(&req));
    let by = workflows::By {
        author: &author,
        actor: &actor,
    };
    let stored = workflows::delete(&state.db, &id, by).await?;
    tracing::info!(workflow_id = %stored.id, version = stored.version, "workflow deleted");
    reload(&state).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/workflows/validate", tag = "workflows",
    request_body(content = WorkflowDefinition, description = "a workflow definition"),
    responses((status = 200, description = "valid, with its warnings", body = ValidationReport), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`busy`: the heavy-request pool is full; see `Retry-After`"),
        (status = 503, body = ErrorBody, description = "`time_budget_exceeded`")))]
pub async fn validate(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let admitted = state.heavy.admit("validate")?;
    let mut validated = validate_body(&state, &admitted, body.into_inner()).await?;
    // A definition without an id is judged as a new workflow: it conflicts with every
    // active one, including any it may be a copy of.
    let id = validated.workflow.id.clone().unwrap_or_else(|| "new".to_owned());
    let extra = analysis_warnings(&state, &admitted, &validated.workflow, &id).await;
    validated.warnings.extend(extra);
    Ok(HttpResponse::Ok().json(ValidationReport {
        valid: true,
        warnings: json!(validated.warnings),
        workflow: WorkflowDefinition(json!(validated.workflow)),
    }))
}

/// POST /api/v1/dry-run: `{"event", "customer"?, "workflows"?}` → the plan and the trace,
/// with no side effects. Without `customer` the stored customer is used; without
/// `workflows` the stored active ones. Supplied workflows are evaluated as if active, and
/// those without an id are named draft-0, draft-1, ... in the order given.
#[utoipa::path(post, path = "/api/v1/dry-run", tag = "workflows",
    request_body(content = Object, description = "`{\"event\": envelope, \"customer\"?: object, \"workflows\"?: [definitions]}`"),
    responses((status = 200, description = "the plan and the trace, with no side effects: `warnings` names each planned step whose destination the outbound guard would refuse", body = DryRunReport), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`busy`: the heavy-request pool is full; see `Retry-After`"),
        (status = 503, body = ErrorBody, description = "`time_budget_exceeded`")))]
pub async fn dry_run(state: web::Data<AppState>, body: web::Json<Value>) -> Result<HttpResponse, ApiError> {
    let admitted = state.heavy.admit("dry_run")?;
    let mut body = match body.into_inner() {
        Value::Object(map) => map,
        other => {
            return Err(ApiError::invalid(vec![Problem {
                path: String::new(),
                message: format!(
                    "expected {{\"event\", \"customer\"?, \"workflows\"?}}, got {}",
                    crate::problem::json_type_name(&other)
                ),
                severity: Severity::Error,
            }]))
        }
    };
    for key in body.keys() {
        if !["event", "customer", "workflows"].contains(&key.as_str()) {
            return Err(ApiError::invalid(vec![Problem {
                path: format!("/{key}"),
                message: format!("unknown key {key:?}: expected event, customer or workflows"),
                severity: Severity::Error,
            }]));
        }
    }
    let event = match EventEnvelope::from_value(body.remove("event").unwrap_or(Value::Null)) {
        Ok(event) => event,
        Err(EnvelopeError::Invalid(problems)) => return Err(ApiError::invalid(problems).under("/event")),
        Err(EnvelopeError::Json(e)) => {
            return Err(ApiError::invalid(vec![Problem {
                path: "/event".into(),
                message: format!("expected an event envelope: {e}"),
                severity: Severity::Error,
            }]))
        }
    };
    let customer: Map<String, Value> = match body.remove("customer") {
        Some(Value::Object(c)) => c,
        None | Some(Value::Null) => customers::snapshot(state.db.connection(), event.customer_id)
            .await?
            .unwrap_or_else(|| Map::from_iter([("id".to_owned(), json!(event.customer_id))])),
        Some(other) => {
            return Err(ApiError::invalid(vec![Problem {
                path: "/customer".into(),
                message: format!(
                    "expected a customer object, got {}",
                    crate::problem::json_type_name(&other)
                ),
                severity: Severity::Error,
            }]))
        }
    };
    // What to plan with: read here (short queries), validated and compiled off the worker.
    let source = match body.remove("workflows") {
        None | Some(Value::Null) => Source::Stored(workflows::list_active(state.db.connection()).await?),
        Some(Value::Array(drafts)) => {
            // Counted before any compiles.
            let mut tally = Tally::new(admitted.budget(), &state.limits);
            for (i, draft) in drafts.iter().enumerate() {
                tally.add(draft, &Pointer::root().key("workflows").index(i))?;
            }
            Source::Drafts(drafts)
        }
        Some(other) => {
            return Err(ApiError::invalid(vec![Problem {
                path: "/workflows".into(),
                message: format!(
                    "expected a list of workflows, got {}",
                    crate::problem::json_type_name(&other)
                ),
                severity: Severity::Error,
            }]))
        }
    };
    let schema = statuses::field_schema(state.db.connection()).await?;
    let limits = state.limits;
    let (set, mut explanation, event, customer) = admitted
        .cpu(move |deadline| {
            let validator = Validator::new(&schema, limits);
            let set = match source {
                Source::Stored(rows) => {
                    let mut valid = Vec::with_capacity(rows.len());
                    for row in &rows {
                        deadline.check()?;
                        valid.extend(crate::live::revalidate(&validator, row));
                    }
                    let (set, errors) = WorkflowSet::build(valid, &limits);
                    for e in errors {
                        tracing::error!(workflow_id = %e.workflow_id, error = %e, "stored workflow left out");
                    }
                    set
                }
                Source::Drafts(drafts) => {
                    let mut problems = Vec::new();
                    let mut valid = Vec::new();
                    for (i, draft) in drafts.iter().enumerate() {
                        deadline.check()?;
                        match validator.at(draft, &Pointer::root().key("workflows").index(i)) {
                            Ok(mut v) => {
                                v.workflow.active = true;
                                valid.push(v.workflow);
                            }
                            Err(invalid) => problems.extend(invalid.problems),
                        }
                    }
                    if problems.iter().any(|p| p.severity == Severity::Error) {
                        return Err(ApiError::invalid(problems));
                    }
                    WorkflowSet::build(valid, &limits).0
                }
            };
            deadline.check()?;
            let explanation = set.explain(Facts::new(&event, &customer));
            Ok((set, explanation, event, customer))
        })
        .await?;
    // The customer's entries into the limited workflows of the plan, read as a real run's
    // conditional insert would find them.
    let mut last_entered = std::collections::HashMap::new();
    for w in set.workflows_for(&event.event_type) {
        if w.workflow.limits.is_some() && explanation.plan.iter().any(|p| p.workflow_id == w.id) {
            if let Some(at) = entries::last_entered(state.db.connection(), &w.id, event.customer_id).await? {
                last_entered.insert(w.id.clone(), at);
            }
        }
    }
    // A real run decides when it handles the event, moments after it occurred; the dry run
    // decides at the event's `occurred_at`, or now without one.
    let at = event.occurred_at.unwrap_or_else(chrono::Utc::now);
    set.apply_guards(&mut explanation, &event, &customer, at, &last_entered);
    // The waiting runs this event would cancel through the workflows' exit_when rules.
    let mut exits = Vec::new();
    for workflow_id in set.exits(Facts::new(&event, &customer)) {
        let waiting = runs::ids_matching(
            state.db.connection(),
            &runs::RunFilter {
                customer_id: Some(event.customer_id),
                workflow_id: Some(workflow_id.to_owned()),
                ..Default::default()
            },
            &[runs::status::WAITING],
            recovery::MAX_BULK,
        )
        .await?;
        exits.push(DryRunExit {
            cancels: waiting,
            workflow_id: workflow_id.to_owned(),
        });
    }
    // Each planned workflow's actions as they would run: templates rendered, the agent a
    // round-robin step would pick (its cursor untouched), or why the step would fail, beside
    // what the guard rails decided for the step.
    let facts = Facts::new(&event, &customer);
    let context = crate::template::context(&facts);
    // The explanation already planned: look its workflows up rather than plan again.
    let candidates = set.workflows_for(&event.event_type);
    let mut warnings = Vec::new();
    // The contact policy's caps, counted as the plan's messages would take them: in
    // priority order, each one sent counting against the next.
    let policy = crate::storage::contact::policy(state.db.connection()).await?;
    let mut sent = std::collections::HashMap::new();
    for entry in &mut explanation.plan {
        let Some(compiled) = candidates.iter().find(|w| w.id == entry.workflow_id) else {
            continue;
        };
        let conn = state.db.connection();
        for problem in destinations::warnings(conn, &compiled.workflow, &state.webhook_allowlist).await? {
            warnings.push(DryRunWarning {
                message: problem.message,
                path: problem.path,
                workflow_id: compiled.id.clone(),
            });
        }
        if entry.held_out {
            continue;
        }
        for (i, (slot, step)) in entry.previews.iter_mut().zip(&compiled.workflow.actions).enumerate() {
            let place = (compiled.id.as_str(), i.to_string());
            if let Value::Object(preview) =
                crate::actions::preview::preview_tree(state.db.connection(), place, step, facts, &context).await?
            {
                slot.extend(preview);
            }
            let channel = Channel::of(step.kind()).filter(|_| !step.transactional && !slot.contains_key("skipped"));
            if let Some(channel) = channel {
                let already = sent.entry(channel).or_insert(0u32);
                let conn = state.db.connection();
                match crate::storage::contact::would_hold(conn, &policy, event.customer_id, channel, *already, at)
                    .await?
                {
                    Some(cap) => {
                        slot.insert("capped".into(), json!({"cap": cap.describe(), "on_cap": policy.on_cap}));
                    }
                    None => *already += 1,
                }
            }
        }
    }
    // Every field of the explanation, named: one added to it must be added here too.
    let crate::plan::Explanation { plan, evaluated } = explanation;
    let internal = |e: serde_json::Error| ApiError::internal(e.to_string());
    Ok(HttpResponse::Ok().json(DryRunReport {
        customer,
        evaluated: serde_json::to_value(&evaluated).map_err(internal)?,
        exits,
        plan: serde_json::to_value(&plan).map_err(internal)?,
        warnings,
    }))
}

/// The workflows a dry run plans with: the stored active ones or the request's drafts.
enum Source {
    Stored(Vec<workflows::StoredWorkflow>),
    Drafts(Vec<Value>),
}
