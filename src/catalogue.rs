//! The action catalogue: the 16 built-in actions (two of them, `branch` and
//! `wait_for_event`, hold further actions), each with a parameter schema, and the
//! typed [`Action`] a validated step decodes into.
//!
//! The schema is data ([`ActionSchema`]), served by `/api/v1/schema` so a builder UI renders
//! a form per action, and used by validation so the rules a form shows are the rules the
//! engine enforces.

use crate::conditions::ConditionNode;
use crate::duration::Duration;
use crate::problem::{json_type_name, Pointer, Problems};
use crate::template;
use crate::workflow::Step;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The name of an action, as `type` in a workflow step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    AssignToTeam,
    AssignToAgent,
    ReassignRoundRobin,
    HandoverToRetention,
    SetStatus,
    SendEmail,
    SendSms,
    CreateTask,
    AddNote,
    IncrementManagerCounter,
    SetCustomerActive,
    FreezeAccount,
    Delay,
    Webhook,
    Branch,
    WaitForEvent,
    Split,
}

impl ActionKind {
    pub const ALL: [ActionKind; 17] = [
        ActionKind::AssignToTeam,
        ActionKind::AssignToAgent,
        ActionKind::ReassignRoundRobin,
        ActionKind::HandoverToRetention,
        ActionKind::SetStatus,
        ActionKind::SendEmail,
        ActionKind::SendSms,
        ActionKind::CreateTask,
        ActionKind::AddNote,
        ActionKind::IncrementManagerCounter,
        ActionKind::SetCustomerActive,
        ActionKind::FreezeAccount,
        ActionKind::Delay,
        ActionKind::Webhook,
        ActionKind::Branch,
        ActionKind::WaitForEvent,
        ActionKind::Split,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ActionKind::AssignToTeam => "assign_to_team",
            ActionKind::AssignToAgent => "assign_to_agent",
            ActionKind::ReassignRoundRobin => "reassign_round_robin",
            ActionKind::HandoverToRetention => "handover_to_retention",
            ActionKind::SetStatus => "set_status",
            ActionKind::SendEmail => "send_email",
            ActionKind::SendSms => "send_sms",
            ActionKind::CreateTask => "create_task",
            ActionKind::AddNote => "add_note",
            ActionKind::IncrementManagerCounter => "increment_manager_counter",
            ActionKind::SetCustomerActive => "set_customer_active",
            ActionKind::FreezeAccount => "freeze_account",
            ActionKind::Delay => "delay",
            ActionKind::Webhook => "webhook",
            ActionKind::Branch => "branch",
            ActionKind::WaitForEvent => "wait_for_event",
            ActionKind::Split => "split",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the action leaves the database (delivered through the outbox, at least once,
    /// with an idempotency key) rather than committing with its step.
    pub fn is_external(self) -> bool {
        matches!(self, ActionKind::SendEmail | ActionKind::SendSms | ActionKind::Webhook)
    }

    /// Whether the action holds further actions (a journey's `branch`, `wait_for_event`
    /// and `split`): the validator decodes those, not the param schema alone.
    pub fn is_flow(self) -> bool {
        matches!(self, ActionKind::Branch | ActionKind::WaitForEvent | ActionKind::Split)
    }

    pub fn schema(self) -> &'static ActionSchema {
        &catalogue()[self as usize]
    }
}

/// The kind of value a parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// A database id: a positive integer.
    Id,
    /// A whole number.
    Integer,
    Boolean,
    /// A short identifier-like string (a status type, a counter, a template name).
    Name,
    /// Text rendered as a template over the event and customer fields.
    Template,
    /// `{"minutes"|"hours"|"days": n}`
    Duration,
    /// An absolute http(s) URL.
    Url,
    /// An object of header name to template text.
    Headers,
    /// Any JSON; its strings are rendered as templates.
    Json,
    /// A condition tree, as a workflow's `conditions`.
    Conditions,
    /// A list of actions (nested steps of a journey).
    Actions,
    /// A branch's paths: `[{"when": conditions, "actions": [...]}, ...]`.
    Paths,
}

/// One parameter of an action.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ParamSchema {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub param_type: ParamType,
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    pub description: &'static str,
}

/// How a set of optional params must be filled.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "rule", content = "params")]
pub enum ParamRule {
    /// Exactly one of these params must be present.
    ExactlyOne(Vec<&'static str>),
    /// At least one of these params must be present.
    AtLeastOne(Vec<&'static str>),
}

/// An action as a builder renders its form: its params and the rules they follow.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionSchema {
    #[serde(rename = "type")]
    pub kind: ActionKind,
    pub label: &'static str,
    pub description: &'static str,
    /// Delivered outside the database (at least once, idempotency key attached).
    pub external: bool,
    pub params: Vec<ParamSchema>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ParamRule>,
}

fn p(name: &'static str, param_type: ParamType, required: bool, description: &'static str) -> ParamSchema {
    ParamSchema {
        name,
        param_type,
        required,
        default: None,
        description,
    }
}

/// The catalogue, in [`ActionKind::ALL`] order.
pub fn catalogue() -> &'static [ActionSchema] {
    static CATALOGUE: OnceLock<Vec<ActionSchema>> = OnceLock::new();
    CATALOGUE.get_or_init(|| ActionKind::ALL.iter().map(|k| build(*k)).collect())
}

fn build(kind: ActionKind) -> ActionSchema {
    use ParamType::*;
    let (label, description, params, rules): (&str, &str, Vec<ParamSchema>, Vec<ParamRule>) = match kind {
        ActionKind::AssignToTeam => (
            "Assign to team",
            "Round-robin over the active agents of the team and its sub-teams.",
            vec![p("team_id", Id, true, "team whose agents take turns")],
            vec![],
        ),
        ActionKind::AssignToAgent => (
            "Assign to agent",
            "Assign the customer to one agent.",
            vec![p("agent_id", Id, true, "the agent")],
            vec![],
        ),
        ActionKind::ReassignRoundRobin => (
            "Reassign round-robin",
            "Give the customer to the next agent of their current team, never the current one when another exists.",
            vec![],
            vec![],
        ),
        ActionKind::HandoverToRetention => (
            "Hand over to retention",
            "Move the customer to the retention desk, round-robin among its agents, noted in the activity feed.",
            vec![p(
                "team_id",
                Id,
                false,
                "retention team; the retention desk's root team when omitted",
            )],
            vec![],
        ),
        ActionKind::SetStatus => (
            "Set status",
            "Set the customer's status of one type (sales, kyc, retention or a custom type), by id or by name.",
            vec![
                p("type", Name, true, "status type"),
                p("status_id", Id, false, "status id"),
                p("status", Name, false, "status name"),
            ],
            vec![ParamRule::ExactlyOne(vec!["status_id", "status"])],
        ),
        ActionKind::SendEmail => (
            "Send email",
            "Send an email to the customer through the integration service.",
            vec![
                p(
                    "template",
                    Name,
                    false,
                    "template name known to the integration service",
                ),
                p("subject", Template, false, "subject line"),
                p("body", Template, false, "body text"),
            ],
            vec![ParamRule::AtLeastOne(vec!["template", "subject", "body"])],
        ),
        ActionKind::SendSms => (
            "Send SMS",
            "Send an SMS to the customer through the active SMS provider.",
            vec![
                p("template", Name, false, "template name known to the provider"),
                p("text", Template, false, "message text"),
            ],
            vec![ParamRule::AtLeastOne(vec!["template", "text"])],
        ),
        ActionKind::CreateTask => (
            "Create task",
            "Create a follow-up task for the customer's agent.",
            vec![
                p("title", Template, true, "task title"),
                p("type", Name, false, "task type, e.g. call or follow_up"),
                p("due_in", Duration, true, "time from now until the task is due"),
            ],
            vec![],
        ),
        ActionKind::AddNote => (
            "Add note",
            "Append a note to the customer's activity feed.",
            vec![p("body", Template, true, "note text")],
            vec![],
        ),
        ActionKind::IncrementManagerCounter => (
            "Increment manager counter",
            "Add to a counter of the customer's agent's manager.",
            vec![
                p("counter", Name, true, "counter name"),
                ParamSchema {
                    default: Some(Value::from(1)),
                    ..p("by", Integer, false, "amount to add (negative subtracts)")
                },
            ],
            vec![],
        ),
        ActionKind::SetCustomerActive => (
            "Set customer active",
            "Set or clear the customer's active flag.",
            vec![p("active", Boolean, true, "the new value")],
            vec![],
        ),
        ActionKind::FreezeAccount => (
            "Freeze account",
            "Mark the account frozen and request a compliance freeze (compliance.freeze_requested).",
            vec![p("reason", Template, true, "why, for compliance")],
            vec![],
        ),
        ActionKind::Delay => (
            "Delay",
            "Wait before the next action; persisted, so it survives restarts.",
            vec![
                p("minutes", Integer, false, "minutes to wait"),
                p("hours", Integer, false, "hours to wait"),
                p("days", Integer, false, "days to wait"),
            ],
            vec![ParamRule::ExactlyOne(vec!["minutes", "hours", "days"])],
        ),
        ActionKind::Webhook => (
            "Webhook",
            "HTTP POST to an external URL or a named endpoint.",
            vec![
                p("url", Url, false, "absolute http(s) URL"),
                p("endpoint", Name, false, "name of a configured webhook endpoint"),
                p(
                    "body",
                    Json,
                    false,
                    "JSON body (strings are templates); the event and customer when omitted",
                ),
                p("headers", Headers, false, "extra request headers"),
            ],
            vec![ParamRule::ExactlyOne(vec!["url", "endpoint"])],
        ),
        ActionKind::Branch => (
            "Branch",
            "Run the actions of the first path whose conditions hold (or the otherwise actions), then go on after the branch.",
            vec![
                p("paths", Paths, true, "paths in order: {\"when\": conditions, \"actions\": [...]}"),
                p("otherwise", Actions, false, "actions when no path's conditions hold"),
            ],
            vec![],
        ),
        ActionKind::WaitForEvent => (
            "Wait for event",
            "Wait for the customer's next event of a type (with conditions) until a timeout, then run on_event or on_timeout.",
            vec![
                p("event", Name, true, "the awaited event type"),
                p(
                    "conditions",
                    Conditions,
                    false,
                    "over the awaited event (event.*), the trigger (trigger.*), the customer and earlier steps",
                ),
                p("timeout", Duration, true, "how long to wait"),
                p("on_event", Actions, false, "actions when the event arrives"),
                p("on_timeout", Actions, false, "actions when the timeout passes first"),
            ],
            vec![],
        ),
        ActionKind::Split => (
            "Split",
            "Send each customer down one path by a stable draw: the path's percent of customers take it, the same ones every time.",
            vec![p(
                "paths",
                Paths,
                true,
                "paths: {\"percent\": whole number, \"actions\": [...]}, percents summing to 100",
            )],
            vec![],
        ),
    };
    ActionSchema {
        kind,
        label,
        description,
        external: kind.is_external(),
        params,
        rules,
    }
}

/// A status to set, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusRef {
    Id(i64),
    Name(String),
}

/// Where a webhook goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookTarget {
    Url(String),
    Endpoint(String),
}

/// A validated action step. Template params hold their source; they are rendered when the
/// step runs, against the facts of that moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    AssignToTeam {
        team_id: i64,
    },
    AssignToAgent {
        agent_id: i64,
    },
    ReassignRoundRobin,
    HandoverToRetention {
        team_id: Option<i64>,
    },
    SetStatus {
        status_type: String,
        status: StatusRef,
    },
    SendEmail {
        template: Option<String>,
        subject: Option<String>,
        body: Option<String>,
    },
    SendSms {
        template: Option<String>,
        text: Option<String>,
    },
    CreateTask {
        title: String,
        task_type: Option<String>,
        due_in: Duration,
    },
    AddNote {
        body: String,
    },
    IncrementManagerCounter {
        counter: String,
        by: i64,
    },
    SetCustomerActive {
        active: bool,
    },
    FreezeAccount {
        reason: String,
    },
    Delay {
        duration: Duration,
    },
    Webhook {
        target: WebhookTarget,
        body: Option<Value>,
        headers: BTreeMap<String, String>,
    },
    /// The first path whose `when` holds runs; `otherwise` when none does.
    Branch {
        paths: Vec<BranchPath>,
        otherwise: Vec<Step>,
    },
    /// Waits for the customer's next event of type `event` satisfying `conditions`, at
    /// most `timeout`.
    WaitForEvent {
        event: String,
        conditions: Option<ConditionNode>,
        timeout: Duration,
        on_event: Vec<Step>,
        on_timeout: Vec<Step>,
    },
    /// Sends each customer down one path, chosen by a stable hash of the customer, the
    /// workflow and the step's path ([`crate::experiment::assign`]); the percents sum to 100.
    Split {
        paths: Vec<SplitPath>,
    },
}

/// One path of a branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchPath {
    pub when: ConditionNode,
    pub actions: Vec<Step>,
}

/// One path of a split: the share of customers it takes, and its actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitPath {
    pub percent: u8,
    pub actions: Vec<Step>,
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::AssignToTeam { .. } => ActionKind::AssignToTeam,
            Action::AssignToAgent { .. } => ActionKind::AssignToAgent,
            Action::ReassignRoundRobin => ActionKind::ReassignRoundRobin,
            Action::HandoverToRetention { .. } => ActionKind::HandoverToRetention,
            Action::SetStatus { .. } => ActionKind::SetStatus,
            Action::SendEmail { .. } => ActionKind::SendEmail,
            Action::SendSms { .. } => ActionKind::SendSms,
            Action::CreateTask { .. } => ActionKind::CreateTask,
            Action::AddNote { .. } => ActionKind::AddNote,
            Action::IncrementManagerCounter { .. } => ActionKind::IncrementManagerCounter,
            Action::SetCustomerActive { .. } => ActionKind::SetCustomerActive,
            Action::FreezeAccount { .. } => ActionKind::FreezeAccount,
            Action::Delay { .. } => ActionKind::Delay,
            Action::Webhook { .. } => ActionKind::Webhook,
            Action::Branch { .. } => ActionKind::Branch,
            Action::WaitForEvent { .. } => ActionKind::WaitForEvent,
            Action::Split { .. } => ActionKind::Split,
        }
    }

    /// Validates `params` against `kind`'s schema, recording every problem under `path`,
    /// and decodes the typed action when there were none.
    pub fn decode(
        kind: ActionKind,
        params: &Map<String, Value>,
        path: &Pointer,
        problems: &mut Problems,
    ) -> Option<Self> {
        let before = problems.errors().count();
        let schema = kind.schema();
        for (name, value) in params {
            let at = path.key(name);
            match schema.params.iter().find(|s| s.name == name) {
                None => {
                    let known: Vec<&str> = schema.params.iter().map(|s| s.name).collect();
                    let hint = if known.is_empty() {
                        "it takes none".to_owned()
                    } else {
                        format!("expected one of: {}", known.join(", "))
                    };
                    problems.error(&at, format!("unknown param {name:?} for {}: {hint}", kind.name()));
                }
                Some(spec) => check_param(spec.param_type, value, &at, problems),
            }
        }
        for spec in schema
            .params
            .iter()
            .filter(|s| s.required && !params.contains_key(s.name))
        {
            problems.error(&path.key(spec.name), format!("{} needs {:?}", kind.name(), spec.name));
        }
        for rule in &schema.rules {
            let (names, exactly) = match rule {
                ParamRule::ExactlyOne(n) => (n, true),
                ParamRule::AtLeastOne(n) => (n, false),
            };
            let given = names.iter().filter(|n| params.contains_key(**n)).count();
            let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            if given == 0 {
                let what = if exactly { "one of" } else { "at least one of" };
                problems.error(path, format!("{} needs {what} {}", kind.name(), quoted.join(", ")));
            } else if exactly && given > 1 {
                problems.error(path, format!("{} takes only one of {}", kind.name(), quoted.join(", ")));
            }
        }
        if problems.errors().count() > before {
            return None;
        }
        Self::typed(kind, params, path, problems)
    }

    /// Builds the typed action from params already checked against the schema.
    fn typed(kind: ActionKind, params: &Map<String, Value>, path: &Pointer, problems: &mut Problems) -> Option<Self> {
        let id = |k: &str| params.get(k).and_then(Value::as_i64);
        let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(match kind {
            ActionKind::AssignToTeam => Action::AssignToTeam {
                team_id: id("team_id")?,
            },
            ActionKind::AssignToAgent => Action::AssignToAgent {
                agent_id: id("agent_id")?,
            },
            ActionKind::ReassignRoundRobin => Action::ReassignRoundRobin,
            ActionKind::HandoverToRetention => Action::HandoverToRetention { team_id: id("team_id") },
            ActionKind::SetStatus => Action::SetStatus {
                status_type: text("type")?,
                status: match id("status_id") {
                    Some(i) => StatusRef::Id(i),
                    None => StatusRef::Name(text("status")?),
                },
            },
            ActionKind::SendEmail => Action::SendEmail {
                template: text("template"),
                subject: text("subject"),
                body: text("body"),
            },
            ActionKind::SendSms => Action::SendSms {
                template: text("template"),
                text: text("text"),
            },
            ActionKind::CreateTask => Action::CreateTask {
                title: text("title")?,
                task_type: text("type"),
                due_in: Duration::from_value(params.get("due_in")?, &path.key("due_in"), problems)?,
            },
            ActionKind::AddNote => Action::AddNote { body: text("body")? },
            ActionKind::IncrementManagerCounter => Action::IncrementManagerCounter {
                counter: text("counter")?,
                by: id("by").unwrap_or(1),
            },
            ActionKind::SetCustomerActive => Action::SetCustomerActive {
                active: params.get("active").and_then(Value::as_bool)?,
            },
            ActionKind::FreezeAccount => Action::FreezeAccount {
                reason: text("reason")?,
            },
            ActionKind::Delay => {
                let duration = Duration::from_keys(params, path, problems)?;
                if duration.as_secs() == 0 {
                    problems.error(path, "delay must wait longer than zero");
                    return None;
                }
                Action::Delay { duration }
            }
            ActionKind::Webhook => Action::Webhook {
                target: match text("url") {
                    Some(url) => WebhookTarget::Url(url),
                    None => WebhookTarget::Endpoint(text("endpoint")?),
                },
                body: params.get("body").cloned(),
                headers: params
                    .get("headers")
                    .and_then(Value::as_object)
                    .map(|h| {
                        h.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            // Their nested actions are decoded by the validator, which knows the tree.
            ActionKind::Branch | ActionKind::WaitForEvent | ActionKind::Split => return None,
        })
    }
}

/// Longest accepted name param.
const MAX_NAME_LEN: usize = 100;

fn check_param(param_type: ParamType, value: &Value, at: &Pointer, problems: &mut Problems) {
    let got = json_type_name(value);
    match param_type {
        ParamType::Id => {
            if value.as_i64().is_none_or(|i| i <= 0) {
                problems.error(at, format!("expected a positive integer id, got {}", describe(value)));
            }
        }
        ParamType::Integer => {
            if value.as_i64().is_none() {
                problems.error(at, format!("expected a whole number, got {}", describe(value)));
            }
        }
        ParamType::Boolean => {
            if !value.is_boolean() {
                problems.error(at, format!("expected true or false, got {got}"));
            }
        }
        ParamType::Name => match value.as_str() {
            Some(s) if s.trim().is_empty() => problems.error(at, "must not be empty"),
            Some(s) if s.len() > MAX_NAME_LEN => {
                problems.error(at, format!("is longer than {MAX_NAME_LEN} characters"))
            }
            Some(_) => {}
            None => problems.error(at, format!("expected a string, got {got}")),
        },
        ParamType::Template => match value.as_str() {
            Some(s) if s.trim().is_empty() => problems.error(at, "must not be empty"),
            Some(s) => {
                if let Err(e) = template::check(s) {
                    problems.error(at, e.to_string());
                }
            }
            None => problems.error(at, format!("expected text, got {got}")),
        },
        ParamType::Duration => {
            Duration::from_value(value, at, problems);
        }
        ParamType::Url => match value.as_str().map(url::Url::parse) {
            Some(Ok(u)) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Some(Ok(u)) => problems.error(
                at,
                format!("expected an http or https URL, got scheme {:?}", u.scheme()),
            ),
            Some(Err(e)) => problems.error(at, format!("invalid URL: {e}")),
            None => problems.error(at, format!("expected a URL string, got {got}")),
        },
        ParamType::Headers => match value.as_object() {
            Some(headers) => {
                for (name, v) in headers {
                    let at = at.key(name);
                    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
                        problems.error(&at, "invalid header name: use letters, digits, '-' and '_'");
                    } else if is_reserved_header(name) {
                        // Refused at save time too, not only when the step runs: the engine
                        // sets these (idempotency, signature, framing) and never lets a
                        // workflow replace them.
                        problems.error(&at, format!("header {name:?} is set by the engine and cannot be given"));
                    } else if let Some(text) = v.as_str() {
                        if let Err(e) = template::check(text) {
                            problems.error(&at, e.to_string());
                        }
                    } else {
                        problems.error(
                            &at,
                            format!("expected a header value string, got {}", json_type_name(v)),
                        );
                    }
                }
            }
            None => problems.error(at, format!("expected an object of header names to values, got {got}")),
        },
        ParamType::Json => check_json_templates(value, at, problems),
        // A journey's nested conditions and actions: the validator decodes them.
        ParamType::Conditions | ParamType::Actions | ParamType::Paths => {}
    }
}

/// Checks every string leaf of a JSON body as a template. The body is bounded by the JSON
/// parser's nesting limit, so the recursion is too.
fn check_json_templates(value: &Value, at: &Pointer, problems: &mut Problems) {
    match value {
        Value::String(s) => {
            if let Err(e) = template::check(s) {
                problems.error(at, e.to_string());
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_json_templates(item, &at.index(i), problems);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_json_templates(v, &at.key(k), problems);
            }
        }
        _ => {}
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        other => json_type_name(other).to_owned(),
    }
}

/// Headers the engine sets on every request; a workflow's `headers` cannot set them (a
/// step that tries fails), so the idempotency key, the signature and the trace context are
/// always the engine's. Compared case-insensitively. Hop-by-hop and framing headers are
/// the HTTP client's.
pub const RESERVED_HEADERS: [&str; 13] = [
    "content-type",
    "traceparent",
    "tracestate",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-signature",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// True when a workflow may not set header `name`.
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(name.trim()))
}
