//! Validation: from untrusted JSON to a [`Workflow`], with every problem reported at once
//! and each located by a JSON pointer.
//!
//! Decoding walks the JSON by hand rather than through serde derive, because serde stops at
//! the first error and reports line and column, where a user needs every error and the path
//! of each (`/conditions/rules/1/value`).

use crate::catalogue::{Action, ActionKind, BranchPath, SplitPath};
use crate::conditions::compile::{Bound, Limits, Test};
use crate::conditions::{field_value, Namespace};
use crate::conditions::{ConditionNode, FieldPath, Group, Match, Not, Operator, Rule};
use crate::duration::Duration;
use crate::experiment::goal::{Goal, Holdout, MAX_WITHIN_SECS};
use crate::flow::Flow;
use crate::guards::exit::{ExitRule, MAX_EXIT_RULES};
use crate::guards::limits::EntryLimit;
use crate::guards::window::SendWindow;
use crate::problem::{json_type_name, Pointer, Problem, Problems};
use crate::schema::{FieldSchema, FieldSpec, FieldType, Lookup};
use crate::workflow::{OnError, Step, Workflow, DEFAULT_PRIORITY, SAVE_PREFIX};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const MAX_NAME_LEN: usize = 200;
const MAX_DESCRIPTION_LEN: usize = 4_000;
const MAX_ID_LEN: usize = 64;

/// Most steps a workflow holds, the nested ones of its branches and waits included.
pub const MAX_TREE_STEPS: usize = 200;
/// Deepest nesting of action lists (the workflow's own `actions` is level 1).
pub const MAX_TREE_DEPTH: usize = 8;
/// Most paths of one branch or split: empty paths cost no step, so the tree's step count
/// alone would not bound them.
pub const MAX_PATHS: usize = 20;
/// Longest step name.
const MAX_STEP_NAME_LEN: usize = 64;
/// Longest wait: a run waiting longer than a year is a forgotten one.
const MAX_WAIT_SECS: u64 = 366 * 24 * 3600;

/// What the whole action tree shares while it is decoded: the steps counted so far and
/// the names taken.
#[derive(Default)]
struct Tree {
    steps: usize,
    names: std::collections::HashSet<String>,
}

/// What a condition tree may read: `event.*` typed by `trigger`, and in a journey's
/// conditions (`journey`: the names of the steps before) `steps.*` and `trigger.*` too.
#[derive(Clone, Copy)]
struct Reads<'r> {
    trigger: &'r str,
    journey: Option<&'r [String]>,
}

impl<'r> Reads<'r> {
    /// A workflow's or an exit rule's own conditions, judged on entry.
    fn entry(trigger: &'r str) -> Self {
        Self { trigger, journey: None }
    }
}

/// Where a list of actions sits: its nesting level, and the names of the steps that run
/// before it on every path to it (the only ones `steps.<name>` may read there).
#[derive(Clone)]
struct Scope<'t> {
    trigger: &'t str,
    depth: usize,
    before: Vec<String>,
}

/// A valid workflow, and what deserves a second look.
#[derive(Debug, Clone)]
pub struct Validated {
    pub workflow: Workflow,
    pub warnings: Vec<Problem>,
}

/// Everything wrong with a definition: errors first, then warnings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid workflow: {}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
pub struct Invalid {
    pub problems: Vec<Problem>,
}

/// Validates workflow definitions against a field schema and limits.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'s> {
    pub schema: &'s FieldSchema,
    pub limits: Limits,
    /// Reading again a definition accepted when it was saved ([`Validator::stored`]).
    stored: bool,
}

/// Parses JSON text, turning the parser's errors (including its nesting limit, which
/// stops a hostile 100,000-deep document before anything recurses into it) into a problem.
pub fn parse_json(text: &str) -> Result<Value, Invalid> {
    serde_json::from_str(text).map_err(|e| {
        let message = if e.to_string().contains("recursion limit") {
            format!(
                "the document is nested too deeply (the JSON parser stops at 128 levels, line {} column {})",
                e.line(),
                e.column()
            )
        } else {
            format!("invalid JSON: {e}")
        };
        Invalid {
            problems: vec![Problem {
                path: String::new(),
                message,
                severity: crate::problem::Severity::Error,
            }],
        }
    })
}

impl<'s> Validator<'s> {
    pub fn new(schema: &'s FieldSchema, limits: Limits) -> Self {
        Self {
            schema,
            limits,
            stored: false,
        }
    }

    /// For a definition accepted when it was saved (the version a run started with): the
    /// limits of [`Limits::saved`], and nothing checked again that depends on the
    /// database's catalogue of that moment (the custom fields a `save` writes), so a run
    /// finishes as it began without reading the catalogue on every resume.
    pub fn stored(schema: &'s FieldSchema) -> Self {
        Self {
            schema,
            limits: Limits::saved(),
            stored: true,
        }
    }

    /// Validates one definition.
    pub fn workflow(&self, value: &Value) -> Result<Validated, Invalid> {
        self.at(value, &Pointer::root())
    }

    /// Validates a definition found at `root` (an element of an array file, say), so paths
    /// point into the whole document.
    pub fn at(&self, value: &Value, root: &Pointer) -> Result<Validated, Invalid> {
        let mut problems = Problems::default();
        let workflow = self.decode(value, root, &mut problems);
        match workflow {
            Some(workflow) if !problems.has_errors() => Ok(Validated {
                workflow,
                warnings: problems.into_vec(),
            }),
            _ => {
                let mut all = problems.into_vec();
                all.sort_by_key(|p| p.severity != crate::problem::Severity::Error);
                Err(Invalid { problems: all })
            }
        }
    }

    fn decode(&self, value: &Value, root: &Pointer, problems: &mut Problems) -> Option<Workflow> {
        let Some(object) = value.as_object() else {
            problems.error(
                root,
                format!("expected a workflow object, got {}", json_type_name(value)),
            );
            return None;
        };
        const KEYS: [&str; 15] = [
            "id",
            "name",
            "description",
            "trigger_event",
            "conditions",
            "actions",
            "priority",
            "stop_after",
            "active",
            "version",
            "limits",
            "send_window",
            "exit_when",
            "holdout",
            "goal",
        ];
        unknown_keys(object, &KEYS, root, problems);

        let id = optional(object, "id", root, problems, |v, at, p| {
            let id = text(v, at, p, MAX_ID_LEN)?;
            if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                p.error(at, "may hold only letters, digits, '-', '_' and '.'");
                return None;
            }
            Some(id)
        });
        let name = required(object, "name", root, problems, |v, at, p| text(v, at, p, MAX_NAME_LEN));
        let description = optional(object, "description", root, problems, |v, at, p| {
            v.as_str().map(str::to_owned).or_else(|| {
                p.error(at, format!("expected a string, got {}", json_type_name(v)));
                None
            })
        });
        if description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION_LEN) {
            problems.error(
                &root.key("description"),
                format!("is longer than {MAX_DESCRIPTION_LEN} characters"),
            );
        }
        let trigger = required(object, "trigger_event", root, problems, event_type);
        let conditions = match object.get("conditions") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) if o.is_empty() => None,
            Some(node) => {
                let trigger_name = trigger.as_deref().unwrap_or_default();
                self.conditions(node, &root.key("conditions"), Reads::entry(trigger_name), problems)
            }
        };
        let mut tree = Tree::default();
        let scope = Scope {
            trigger: trigger.as_deref().unwrap_or_default(),
            depth: 1,
            before: Vec::new(),
        };
        let actions = required(object, "actions", root, problems, |v, at, p| {
            self.steps(v, at, &scope, &mut tree, p)
        });
        let priority = optional(object, "priority", root, problems, |v, at, p| {
            match v.as_i64().map(i32::try_from) {
                Some(Ok(n)) => Some(n),
                _ => {
                    p.error(
                        at,
                        format!("expected a whole number (lower runs first), got {}", json_type_name(v)),
                    );
                    None
                }
            }
        });
        let stop_after = optional(object, "stop_after", root, problems, boolean);
        let active = optional(object, "active", root, problems, boolean);
        let version = optional(object, "version", root, problems, |v, at, p| {
            v.as_i64().filter(|n| *n > 0).or_else(|| {
                p.error(at, "expected a positive whole number");
                None
            })
        });
        let limits = optional(object, "limits", root, problems, EntryLimit::from_value);
        let send_window = optional(object, "send_window", root, problems, SendWindow::from_value);
        let exit_when = optional(object, "exit_when", root, problems, |v, at, p| {
            self.exit_rules(v, at, p)
        });
        let holdout = optional(object, "holdout", root, problems, Holdout::from_value);
        let goal = optional(object, "goal", root, problems, |v, at, p| self.goal(v, at, p));
        Some(Workflow {
            id,
            name: name?,
            description,
            trigger_event: trigger?,
            conditions,
            actions: actions?,
            priority: priority.unwrap_or(DEFAULT_PRIORITY),
            stop_after: stop_after.unwrap_or(false),
            active: active.unwrap_or(true),
            limits,
            send_window,
            exit_when: exit_when.unwrap_or_default(),
            holdout,
            goal,
            version,
            flow: Flow::default(),
        })
        .map(|mut workflow| {
            workflow.flow = Flow::lay_out(&workflow.actions);
            workflow
        })
    }

    /// Decodes `goal`: its conditions read the goal event (`event.*`, typed by its type) and
    /// the run's trigger (`trigger.*`), like a wait's.
    fn goal(&self, value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Goal> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!(
                    "expected {{\"event\", \"within\", \"conditions\"?, \"exit\"?}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        unknown_keys(object, &["event", "conditions", "within", "exit"], at, problems);
        let event = required(object, "event", at, problems, event_type);
        let conditions = match object.get("conditions") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(o)) if o.is_empty() => Some(None),
            Some(v) => {
                let goal_event = event.as_deref().unwrap_or_default();
                self.journey_conditions(v, &at.key("conditions"), goal_event, &[], problems)
                    .map(Some)
            }
        };
        let within = required(object, "within", at, problems, |v, at, p| {
            let within = Duration::from_value(v, at, p)?;
            if within.as_secs() == 0 || within.as_secs() > MAX_WITHIN_SECS {
                p.error(at, "a goal's window must be longer than zero and at most 366 days");
                return None;
            }
            Some(within)
        });
        let exit = optional(object, "exit", at, problems, boolean);
        Some(Goal {
            event: event?,
            conditions: conditions?,
            within: within?,
            exit: exit.unwrap_or(false),
        })
    }

    /// Decodes `exit_when`: each rule's conditions are checked against its own trigger's
    /// fields, as a workflow's are against its trigger's.
    fn exit_rules(&self, value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Vec<ExitRule>> {
        let Some(items) = value.as_array() else {
            problems.error(
                at,
                format!("expected a list of exit rules, got {}", json_type_name(value)),
            );
            return None;
        };
        if items.len() > MAX_EXIT_RULES {
            problems.error(
                at,
                format!(
                    "has {} exit rules, more than the maximum of {MAX_EXIT_RULES}",
                    items.len()
                ),
            );
            return None;
        }
        let rules: Vec<Option<ExitRule>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = at.index(i);
                let Some(object) = item.as_object() else {
                    problems.error(
                        &at,
                        format!(
                            "expected {{\"trigger_event\", \"conditions\"?}}, got {}",
                            json_type_name(item)
                        ),
                    );
                    return None;
                };
                unknown_keys(object, &["trigger_event", "conditions"], &at, problems);
                let trigger = required(object, "trigger_event", &at, problems, event_type)?;
                let conditions = match object.get("conditions") {
                    None | Some(Value::Null) => None,
                    Some(Value::Object(o)) if o.is_empty() => None,
                    Some(node) => {
                        Some(self.conditions(node, &at.key("conditions"), Reads::entry(&trigger), problems)?)
                    }
                };
                Some(ExitRule {
                    trigger_event: trigger,
                    conditions,
                })
            })
            .collect();
        rules.into_iter().collect()
    }

    /// Decodes a list of actions in `scope`; nested lists (a branch's paths, a wait's
    /// outcomes) may be empty, the workflow's own may not.
    fn steps(
        &self,
        value: &Value,
        at: &Pointer,
        scope: &Scope<'_>,
        tree: &mut Tree,
        problems: &mut Problems,
    ) -> Option<Vec<Step>> {
        let Some(items) = value.as_array() else {
            problems.error(at, format!("expected a list of actions, got {}", json_type_name(value)));
            return None;
        };
        if items.is_empty() && scope.depth == 1 {
            problems.error(at, "a workflow needs at least one action");
            return None;
        }
        if items.len() > self.limits.max_actions {
            problems.error(
                at,
                format!(
                    "has {} actions, more than the maximum of {}",
                    items.len(),
                    self.limits.max_actions
                ),
            );
            return None;
        }
        if scope.depth > MAX_TREE_DEPTH {
            problems.error(
                at,
                format!("actions nest deeper than the maximum of {MAX_TREE_DEPTH} levels"),
            );
            return None;
        }
        tree.steps += items.len();
        if tree.steps > MAX_TREE_STEPS {
            // Said once, where the count first ran over; the rest is not decoded.
            if tree.steps - items.len() <= MAX_TREE_STEPS {
                problems.error(
                    at,
                    format!("the workflow holds more than the maximum of {MAX_TREE_STEPS} steps, nested ones included"),
                );
            }
            return None;
        }
        let mut scope = scope.clone();
        let mut steps = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let step = self.step(v, &at.index(i), &scope, tree, problems);
            if let Some(name) = step.as_ref().and_then(|s| s.name.clone()) {
                scope.before.push(name);
            }
            steps.push(step);
        }
        if let Some(Some(last)) = steps.last() {
            if last.kind() == ActionKind::Delay {
                problems.warning(
                    &at.index(items.len() - 1),
                    "a delay as the last action waits for nothing",
                );
            }
        }
        steps.into_iter().collect()
    }

    fn step(
        &self,
        value: &Value,
        at: &Pointer,
        scope: &Scope<'_>,
        tree: &mut Tree,
        problems: &mut Problems,
    ) -> Option<Step> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!(
                    "expected an action {{\"type\", \"params\"}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        unknown_keys(
            object,
            &["type", "name", "params", "on_error", "transactional", "save"],
            at,
            problems,
        );
        let on_error = match object.get("on_error") {
            None | Some(Value::Null) => Some(OnError::default()),
            Some(v) => named(
                v,
                &at.key("on_error"),
                problems,
                "on_error",
                OnError::from_name,
                OnError::ALL.map(OnError::name),
            ),
        };
        let kind = required(object, "type", at, problems, |v, at, p| {
            named(
                v,
                at,
                p,
                "action type",
                ActionKind::from_name,
                ActionKind::ALL.map(ActionKind::name),
            )
        });
        let name = match object.get("name") {
            None | Some(Value::Null) => Some(None),
            Some(v) => step_name(v, &at.key("name"), tree, problems).map(Some),
        };
        let params_at = at.key("params");
        let params = match object.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(other) => {
                problems.error(
                    &params_at,
                    format!("expected an object of params, got {}", json_type_name(other)),
                );
                return None;
            }
        };
        let transactional = match object.get("transactional") {
            None | Some(Value::Null) => Some(false),
            Some(v) => boolean(v, &at.key("transactional"), problems),
        };
        let kind = kind?;
        if transactional == Some(true) && !matches!(kind, ActionKind::SendEmail | ActionKind::SendSms) {
            problems.error(
                &at.key("transactional"),
                "only send_email and send_sms steps can be transactional",
            );
        }
        let save = match object.get("save") {
            None | Some(Value::Null) => Some(BTreeMap::new()),
            Some(_) if kind != ActionKind::Webhook => {
                problems.error(&at.key("save"), "only a webhook step can save fields of its answer");
                None
            }
            Some(v) => self.save(v, &at.key("save"), problems),
        };
        let name = name?;
        if kind == ActionKind::WaitForEvent && name.is_none() {
            problems.error(
                &at.key("name"),
                "a wait_for_event needs a name: later steps read its outcome as steps.<name>",
            );
        }
        let action = match kind {
            ActionKind::Branch => self.branch(&params, &params_at, scope, tree, problems),
            ActionKind::Split => self.split(&params, &params_at, scope, tree, problems),
            ActionKind::WaitForEvent => self.wait(&params, &params_at, scope, name.as_deref(), tree, problems),
            _ => Action::decode(kind, &params, &params_at, problems),
        }?;
        Some(Step {
            name,
            action,
            params,
            on_error: on_error?,
            transactional: transactional?,
            save: save?,
        })
    }

    /// Decodes a webhook's `save`: `{"customer.custom.<field>": "<JSON pointer>"}`, each
    /// field one of this database's custom fields.
    fn save(&self, value: &Value, at: &Pointer, problems: &mut Problems) -> Option<BTreeMap<String, String>> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!(
                    "expected {{\"customer.custom.<field>\": \"<JSON pointer>\"}}, got {}",
                    json_type_name(value)
                ),
            );
            return None;
        };
        let builtin = FieldSchema::default();
        let mut save = BTreeMap::new();
        for (target, pointer) in object {
            let at = at.key(target);
            let field = target
                .strip_prefix(SAVE_PREFIX)
                .filter(|f| !f.is_empty() && !f.contains('.'));
            let Some(field) = field else {
                problems.error(&at, format!("a save target is {SAVE_PREFIX}<field>, got {target:?}"));
                continue;
            };
            let path = format!("customer.{field}");
            let custom = FieldPath::parse(&path).ok().is_some_and(|p| {
                (self.stored || matches!(self.schema.lookup("", &p, &path), Lookup::Known(_)))
                    && !matches!(builtin.lookup("", &p, &path), Lookup::Known(_))
            });
            if !custom {
                problems.error(&at, format!("{field:?} is not a custom field of this database"));
                continue;
            }
            match pointer.as_str() {
                Some(p) if p.is_empty() || p.starts_with('/') => {
                    save.insert(field.to_owned(), p.to_owned());
                }
                _ => problems.error(&at, "expected a JSON pointer into the answer, e.g. \"/account/id\""),
            }
        }
        Some(save)
    }

    /// Decodes a branch's params: each path's `when` over the trigger, the customer and
    /// the steps before it, and its actions one level deeper.
    fn branch(
        &self,
        params: &Map<String, Value>,
        at: &Pointer,
        scope: &Scope<'_>,
        tree: &mut Tree,
        problems: &mut Problems,
    ) -> Option<Action> {
        unknown_keys(params, &["paths", "otherwise"], at, problems);
        let inner = Scope {
            depth: scope.depth + 1,
            ..scope.clone()
        };
        let paths = required(params, "paths", at, problems, |v, at, p| {
            paths_of(v, at, "when", p, |object, at, p| {
                let when = required(object, "when", at, p, |v, at, p| {
                    self.journey_conditions(v, at, scope.trigger, &scope.before, p)
                });
                let actions = required(object, "actions", at, p, |v, at, p| self.steps(v, at, &inner, tree, p));
                Some(BranchPath {
                    when: when?,
                    actions: actions?,
                })
            })
        });
        let otherwise = match params.get("otherwise") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(v) => self.steps(v, &at.key("otherwise"), &inner, tree, problems),
        };
        Some(Action::Branch {
            paths: paths?,
            otherwise: otherwise?,
        })
    }

    /// Decodes a split's params: each path's whole-number percent, summing to 100 over
    /// the paths, and its actions one level deeper.
    fn split(
        &self,
        params: &Map<String, Value>,
        at: &Pointer,
        scope: &Scope<'_>,
        tree: &mut Tree,
        problems: &mut Problems,
    ) -> Option<Action> {
        unknown_keys(params, &["paths"], at, problems);
        let inner = Scope {
            depth: scope.depth + 1,
            ..scope.clone()
        };
        let paths = required(params, "paths", at, problems, |v, at, p| {
            let paths = paths_of(v, at, "percent", p, |object, at, p| {
                let percent = required(object, "percent", at, p, |v, at, p| match v.as_u64() {
                    Some(n) if n <= 100 => Some(n as u8),
                    _ => {
                        p.error(at, format!("expected a whole number from 0 to 100, got {v}"));
                        None
                    }
                });
                let actions = required(object, "actions", at, p, |v, at, p| self.steps(v, at, &inner, tree, p));
                Some(SplitPath {
                    percent: percent?,
                    actions: actions?,
                })
            })?;
            let sum: u32 = paths.iter().map(|path| u32::from(path.percent)).sum();
            if sum != 100 {
                p.error(at, format!("the paths' percents sum to {sum}, not 100"));
                return None;
            }
            Some(paths)
        });
        Some(Action::Split { paths: paths? })
    }

    /// Decodes a wait's params: its conditions judge the awaited event (`event.*`, typed
    /// by the awaited type) beside `trigger.*`; its outcomes may read the wait's own name.
    fn wait(
        &self,
        params: &Map<String, Value>,
        at: &Pointer,
        scope: &Scope<'_>,
        name: Option<&str>,
        tree: &mut Tree,
        problems: &mut Problems,
    ) -> Option<Action> {
        unknown_keys(
            params,
            &["event", "conditions", "timeout", "on_event", "on_timeout"],
            at,
            problems,
        );
        let event = required(params, "event", at, problems, event_type);
        let conditions = match params.get("conditions") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Object(o)) if o.is_empty() => Some(None),
            Some(v) => {
                let awaited = event.as_deref().unwrap_or_default();
                self.journey_conditions(v, &at.key("conditions"), awaited, &scope.before, problems)
                    .map(Some)
            }
        };
        let timeout = required(params, "timeout", at, problems, |v, at, p| {
            let timeout = Duration::from_value(v, at, p)?;
            if timeout.as_secs() == 0 || timeout.as_secs() > MAX_WAIT_SECS {
                p.error(at, "a wait's timeout must be longer than zero and at most 366 days");
                return None;
            }
            Some(timeout)
        });
        let mut inner = Scope {
            depth: scope.depth + 1,
            ..scope.clone()
        };
        inner.before.extend(name.map(str::to_owned));
        let block = |key: &str, tree: &mut Tree, problems: &mut Problems| match params.get(key) {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(v) => self.steps(v, &at.key(key), &inner, tree, problems),
        };
        let on_event = block("on_event", tree, problems);
        let on_timeout = block("on_timeout", tree, problems);
        Some(Action::WaitForEvent {
            event: event?,
            conditions: conditions?,
            timeout: timeout?,
            on_event: on_event?,
            on_timeout: on_timeout?,
        })
    }

    /// A journey's conditions (a branch's `when`, a wait's `conditions`): `event.*` is
    /// typed by `trigger`, and `steps.*` may read only the names in `before`.
    fn journey_conditions(
        &self,
        value: &Value,
        at: &Pointer,
        trigger: &str,
        before: &[String],
        problems: &mut Problems,
    ) -> Option<ConditionNode> {
        let reads = Reads {
            trigger,
            journey: Some(before),
        };
        self.conditions(value, at, reads, problems)
    }

    /// Decodes a condition tree (a workflow's, an exit rule's, a journey's) and checks its
    /// rule count against the limit.
    fn conditions(
        &self,
        value: &Value,
        at: &Pointer,
        reads: Reads<'_>,
        problems: &mut Problems,
    ) -> Option<ConditionNode> {
        let mut rules = 0;
        let node = self.node(value, at, 1, reads, &mut rules, problems);
        if rules > self.limits.max_rules {
            problems.error(
                at,
                format!("has {rules} rules, more than the maximum of {}", self.limits.max_rules),
            );
        }
        node
    }

    /// Decodes a condition node at `depth` (a lone rule is 1). Recursion stops at the
    /// configured maximum, so a hostile tree costs at most that many frames.
    fn node(
        &self,
        value: &Value,
        at: &Pointer,
        depth: usize,
        reads: Reads<'_>,
        rules: &mut usize,
        problems: &mut Problems,
    ) -> Option<ConditionNode> {
        if depth > self.limits.max_depth() {
            problems.error(
                at,
                format!(
                    "conditions nest deeper than the maximum of {} levels",
                    self.limits.max_depth()
                ),
            );
            return None;
        }
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!("expected a rule, a group or a not, got {}", json_type_name(value)),
            );
            return None;
        };
        if let Some(inner) = object.get("not") {
            unknown_keys(object, &["not"], at, problems);
            let inner = self.node(inner, &at.key("not"), depth + 1, reads, rules, problems)?;
            return Some(ConditionNode::Not(Not { not: Box::new(inner) }));
        }
        if object.contains_key("match") || object.contains_key("rules") {
            unknown_keys(object, &["match", "rules"], at, problems);
            let match_ = match object.get("match").map(|m| (m, m.as_str())) {
                Some((_, Some("all"))) => Some(Match::All),
                Some((_, Some("any"))) => Some(Match::Any),
                Some((m, _)) => {
                    problems.error(&at.key("match"), format!("expected \"all\" or \"any\", got {m}"));
                    None
                }
                None => {
                    problems.error(&at.key("match"), "a group needs \"match\": \"all\" or \"any\"");
                    None
                }
            };
            let children = match object.get("rules") {
                Some(Value::Array(items)) => {
                    if items.is_empty() && depth > 1 {
                        problems.warning(at, "an empty group is always true");
                    }
                    let nodes: Vec<Option<ConditionNode>> = items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| self.node(n, &at.key("rules").index(i), depth + 1, reads, rules, problems))
                        .collect();
                    nodes.into_iter().collect::<Option<Vec<_>>>()
                }
                Some(other) => {
                    problems.error(
                        &at.key("rules"),
                        format!("expected a list of rules, got {}", json_type_name(other)),
                    );
                    None
                }
                None => {
                    problems.error(&at.key("rules"), "a group needs \"rules\"");
                    None
                }
            };
            return Some(ConditionNode::Group(Group {
                match_: match_?,
                rules: children?,
            }));
        }
        if object.contains_key("field") || object.contains_key("operator") {
            *rules += 1;
            return self.rule(object, at, reads, problems).map(ConditionNode::Rule);
        }
        problems.error(
            at,
            "expected a rule {\"field\", \"operator\", \"value\"}, a group {\"match\", \"rules\"} or {\"not\": ...}",
        );
        None
    }

    fn rule(
        &self,
        object: &Map<String, Value>,
        at: &Pointer,
        reads: Reads<'_>,
        problems: &mut Problems,
    ) -> Option<Rule> {
        let Reads { trigger, journey } = reads;
        unknown_keys(object, &["field", "operator", "value"], at, problems);
        let field = required(object, "field", at, problems, |v, at, p| text(v, at, p, MAX_NAME_LEN));
        let operator = required(object, "operator", at, problems, |v, at, p| {
            named(
                v,
                at,
                p,
                "operator",
                Operator::from_name,
                Operator::ALL.map(Operator::name),
            )
        });
        let (field, operator) = (field?, operator?);
        let field_at = at.key("field");
        let path = match FieldPath::parse(&field) {
            Ok(path) => path,
            Err(e) => {
                problems.error(&field_at, e.to_string());
                return None;
            }
        };
        if !journey_field(&path, &field, journey, &field_at, problems) {
            return None;
        }
        let value = object.get("value");
        let value_at = at.key("value");
        if let Some(other) = value.and_then(field_value) {
            // A field-to-field rule: its value is read when the rule is judged.
            let other_at = value_at.key("field");
            let other_path = FieldPath::parse(other)
                .map_err(|e| problems.error(&other_at, e.to_string()))
                .ok()?;
            if journey.is_none() {
                problems.error(
                    &value_at,
                    "a {\"field\": ...} value compares two fields only in a branch's or a wait's conditions",
                );
                return None;
            }
            if !journey_field(&other_path, other, journey, &other_at, problems) {
                return None;
            }
            if !FIELD_OPERATORS.contains(&operator) {
                let fitting: Vec<&str> = FIELD_OPERATORS.iter().map(|o| o.name()).collect();
                problems.error(
                    &at.key("operator"),
                    format!(
                        "{operator} cannot compare two fields; use one of: {}",
                        fitting.join(", ")
                    ),
                );
                return None;
            }
            return Some(Rule {
                field,
                operator,
                value: value.cloned(),
            });
        }
        let spec = match self.schema.lookup(trigger, &path, &field) {
            _ if path.namespace.is_journey() => None,
            Lookup::Known(spec) => Some(spec),
            Lookup::Open { warn } => {
                if warn {
                    problems.warning(
                        &field_at,
                        format!("{field} is not a known field of {trigger}; its values are not type-checked"),
                    );
                }
                None
            }
        };
        let field_type = spec.map_or(FieldType::Any, |s| s.field_type);
        if !field_type.operators().contains(&operator) {
            let fitting: Vec<&str> = field_type.operators().iter().map(|o| o.name()).collect();
            problems.error(
                &at.key("operator"),
                format!(
                    "{operator} does not apply to the {} field {field}; use one of: {}",
                    field_type.name(),
                    fitting.join(", ")
                ),
            );
            return None;
        }
        match Test::compile(operator, value, &self.limits) {
            Err(e) => problems.error(&value_at, e.0),
            Ok(test) => {
                if let (Some(value), Some(spec)) = (value, spec) {
                    check_value_type(spec, &test, value, &value_at, problems);
                }
            }
        }
        Some(Rule {
            field,
            operator,
            value: value.filter(|v| !v.is_null()).cloned(),
        })
    }
}

/// Operators a field-to-field rule may use: those that compare with one value.
const FIELD_OPERATORS: [Operator; 10] = [
    Operator::Eq,
    Operator::Neq,
    Operator::Gt,
    Operator::Gte,
    Operator::Lt,
    Operator::Lte,
    Operator::Contains,
    Operator::NotContains,
    Operator::StartsWith,
    Operator::EndsWith,
];

/// Checks a field's journey namespaces: `steps.*` and `trigger.*` only in a journey's
/// conditions (`journey` holds the names readable there), `steps.<name>` only of a step
/// before this one on its path. False (with the problem recorded) when the field is refused.
fn journey_field(
    path: &FieldPath,
    text: &str,
    journey: Option<&[String]>,
    at: &Pointer,
    problems: &mut Problems,
) -> bool {
    if !path.namespace.is_journey() {
        return true;
    }
    let Some(before) = journey else {
        problems.error(
            at,
            format!(
                "{text}: {}.* is readable only in a branch's or a wait's conditions",
                path.namespace.name()
            ),
        );
        return false;
    };
    if path.namespace == Namespace::Steps {
        let name = path.keys.first().map(|k| &**k).unwrap_or_default();
        if !before.iter().any(|b| b == name) {
            problems.error(
                at,
                format!("{text}: no step named {name:?} runs before this one on its path"),
            );
            return false;
        }
    }
    true
}

/// A step's name: snake_case and unique in the workflow.
fn step_name(value: &Value, at: &Pointer, tree: &mut Tree, problems: &mut Problems) -> Option<String> {
    let name = text(value, at, problems, MAX_STEP_NAME_LEN)?;
    let snake = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !snake {
        problems.error(
            at,
            "a step name is snake_case: lowercase letters, digits and '_', starting with a letter",
        );
        return None;
    }
    if !tree.names.insert(name.clone()) {
        problems.error(at, format!("another step is already named {name:?}"));
        return None;
    }
    Some(name)
}

/// What a value that should have been a non-empty list is, for a message.
fn describe_list(value: &Value) -> String {
    match value.as_array() {
        Some(_) => "an empty list".to_owned(),
        None => json_type_name(value).to_owned(),
    }
}

/// Checks a compiled rule's constants against the field's declared type, and status names
/// and ids against the known options (a warning: statuses may be created later).
fn check_value_type(spec: &FieldSpec, test: &Test, value: &Value, at: &Pointer, problems: &mut Problems) {
    let field_type = spec.field_type;
    let expect_scalar = |v: &Value, at: &Pointer, problems: &mut Problems| {
        let ok = match field_type {
            FieldType::Number => v.is_number(),
            FieldType::String => v.is_string(),
            FieldType::Boolean => v.is_boolean(),
            FieldType::List => v.is_string() || v.is_number(),
            FieldType::Datetime | FieldType::Any => true,
        };
        if !ok {
            problems.error(
                at,
                format!(
                    "expected a {} for {}, got {}",
                    field_type.name(),
                    spec.path,
                    json_type_name(v)
                ),
            );
        } else if !spec.options.is_empty() && !spec.options.iter().any(|o| &o.value == v) {
            problems.warning(at, format!("{v} is not a known value of {} (yet)", spec.path));
        }
    };
    let expect_bound = |b: &Bound, at: &Pointer, problems: &mut Problems| {
        let ok = matches!(
            (field_type, b),
            (FieldType::Number, Bound::Num(_)) | (FieldType::Datetime, Bound::Time(_)) | (FieldType::Any, _)
        );
        if !ok {
            let want = if field_type == FieldType::Datetime {
                "an RFC 3339 timestamp"
            } else {
                "a number"
            };
            problems.error(at, format!("expected {want} for {}", spec.path));
        }
    };
    match test {
        Test::Eq(_)
        | Test::Neq(_)
        | Test::Contains(_)
        | Test::NotContains(_)
        | Test::StartsWith(_)
        | Test::EndsWith(_) => {
            if !matches!(test, Test::Contains(_) | Test::NotContains(_)) || field_type == FieldType::List {
                expect_scalar(value, at, problems)
            } else if !value.is_string() {
                problems.error(at, format!("expected a string for {}", spec.path));
            }
        }
        Test::In(_) | Test::NotIn(_) => {
            for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                expect_scalar(v, &at.index(i), problems);
            }
        }
        Test::Gt(b) | Test::Gte(b) | Test::Lt(b) | Test::Lte(b) => expect_bound(b, at, problems),
        Test::Between(lo, hi) => {
            expect_bound(lo, &at.index(0), problems);
            expect_bound(hi, &at.index(1), problems);
        }
        Test::Regex(_) | Test::IsEmpty | Test::IsNotEmpty => {}
    }
}

/// Reads one of a closed set of names (an operator, an action type), or says which exist.
fn named<T>(
    value: &Value,
    at: &Pointer,
    problems: &mut Problems,
    what: &str,
    from_name: impl Fn(&str) -> Option<T>,
    known: impl IntoIterator<Item = &'static str>,
) -> Option<T> {
    let name = value.as_str();
    name.and_then(from_name).or_else(|| {
        let known: Vec<&str> = known.into_iter().collect();
        let got = name.map_or_else(|| json_type_name(value).to_owned(), |n| format!("{n:?}"));
        problems.error(
            at,
            format!("unknown {what} {got}: expected one of {}", known.join(", ")),
        );
        None
    })
}

/// Decodes a branch's or a split's `paths`: a non-empty list of `{<key>, "actions"}`
/// objects, each handed to `decode` at its pointer. Every path is decoded, so every
/// problem is reported; `None` if any failed.
fn paths_of<T>(
    value: &Value,
    at: &Pointer,
    key: &str,
    problems: &mut Problems,
    mut decode: impl FnMut(&Map<String, Value>, &Pointer, &mut Problems) -> Option<T>,
) -> Option<Vec<T>> {
    let Some(items) = value.as_array().filter(|items| !items.is_empty()) else {
        problems.error(
            at,
            format!(
                "expected a non-empty list of paths {{\"{key}\", \"actions\"}}, got {}",
                describe_list(value)
            ),
        );
        return None;
    };
    if items.len() > MAX_PATHS {
        problems.error(
            at,
            format!("has {} paths, more than the maximum of {MAX_PATHS}", items.len()),
        );
        return None;
    }
    let paths: Vec<Option<T>> = items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let at = at.index(k);
            let Some(object) = item.as_object() else {
                problems.error(
                    &at,
                    format!(
                        "expected a path {{\"{key}\", \"actions\"}}, got {}",
                        json_type_name(item)
                    ),
                );
                return None;
            };
            unknown_keys(object, &[key, "actions"], &at, problems);
            decode(object, &at, problems)
        })
        .collect();
    paths.into_iter().collect()
}

fn unknown_keys(object: &Map<String, Value>, known: &[&str], at: &Pointer, problems: &mut Problems) {
    for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.error(
            &at.key(key),
            format!("unknown key {key:?}: expected one of {}", known.join(", ")),
        );
    }
}

fn required<T>(
    object: &Map<String, Value>,
    key: &str,
    at: &Pointer,
    problems: &mut Problems,
    decode: impl FnOnce(&Value, &Pointer, &mut Problems) -> Option<T>,
) -> Option<T> {
    let at = at.key(key);
    match object.get(key) {
        None | Some(Value::Null) => {
            problems.error(&at, "is required");
            None
        }
        Some(v) => decode(v, &at, problems),
    }
}

fn optional<T>(
    object: &Map<String, Value>,
    key: &str,
    at: &Pointer,
    problems: &mut Problems,
    decode: impl FnOnce(&Value, &Pointer, &mut Problems) -> Option<T>,
) -> Option<T> {
    match object.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => decode(v, &at.key(key), problems),
    }
}

fn text(value: &Value, at: &Pointer, problems: &mut Problems, max: usize) -> Option<String> {
    match value.as_str() {
        Some(s) if s.trim().is_empty() => problems.error(at, "must not be empty"),
        Some(s) if s.len() > max => problems.error(at, format!("is longer than {max} characters")),
        Some(s) => return Some(s.to_owned()),
        None => problems.error(at, format!("expected a string, got {}", json_type_name(value))),
    }
    None
}

fn event_type(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<String> {
    let t = text(value, at, problems, MAX_NAME_LEN)?;
    if !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        problems.error(
            at,
            "an event type holds only letters, digits, '-', '_' and '.', e.g. customer.deposited",
        );
        return None;
    }
    Some(t)
}

fn boolean(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<bool> {
    value.as_bool().or_else(|| {
        problems.error(at, format!("expected true or false, got {}", json_type_name(value)));
        None
    })
}
