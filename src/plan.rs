//! The compiled workflow set and the plan: which workflows run for an event, in order.
//!
//! The set is immutable once built and shared behind an `Arc`; a change to any workflow
//! builds a new set and swaps it whole, so evaluation never takes a lock. Workflows are
//! indexed by trigger, so an event only looks at the workflows listening to its type.

use crate::catalogue::Action;
use crate::conditions::{compile, explain, CompileError, Facts, FieldTable, Limits, Node, Program, Trace};
use crate::verdict::Verdict;
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// A workflow ready to evaluate.
#[derive(Debug)]
pub struct CompiledWorkflow {
    /// The stored id, or `draft-N` for the N-th id-less definition given to the build.
    pub id: String,
    pub workflow: Workflow,
    /// The condition tree, for traces and the event-only pre-filter.
    pub condition: Node,
    /// The same condition flattened, for plans.
    pub program: Program,
}

impl CompiledWorkflow {
    pub fn priority(&self) -> i32 {
        self.workflow.priority
    }

    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.workflow.actions.iter().map(|s| &s.action)
    }

    /// Whether the customer is in this workflow's holdout (stable, see
    /// [`crate::experiment::assign`]): their run is recorded `held_out` and performs nothing.
    pub fn holds_out(&self, customer_id: i64) -> bool {
        self.workflow
            .holdout
            .is_some_and(|h| crate::experiment::assign::held_out(customer_id, &self.id, h.percent))
    }
}

/// A workflow left out of a set because it did not compile (e.g. the limits were lowered
/// after it was saved). The rest of the set is unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workflow {workflow_id} left out: {source}")]
pub struct BuildError {
    pub workflow_id: String,
    pub source: CompileError,
}

/// The active workflows, compiled and indexed by trigger.
#[derive(Debug, Default)]
pub struct WorkflowSet {
    by_trigger: HashMap<String, Trigger>,
    /// The `exit_when` rules, indexed by their own trigger like the workflows, so an event
    /// checks only the exit rules of its type.
    exits_by_trigger: HashMap<String, Exits>,
    /// The event types a run may be waiting for, a journey's `wait_for_event` or a
    /// workflow's `goal`: such an event goes to its customer's executor even when no
    /// workflow starts on it, to end the waits and reach the goals it meets.
    awaited: std::collections::HashSet<String>,
    len: usize,
}

/// The exit rules of one trigger, with the fields they share.
#[derive(Debug, Default)]
struct Exits {
    rules: Vec<ExitCheck>,
    fields: FieldTable,
}

/// One compiled exit rule and the workflow whose waiting runs it cancels.
#[derive(Debug)]
struct ExitCheck {
    workflow_id: String,
    condition: Node,
    program: Program,
}

/// The workflows of one trigger, in execution order (priority, then id), with the fields
/// and rules they share. Each trigger interns its own, so an event's evaluation costs what
/// its own trigger's workflows need, however many listen to other triggers.
#[derive(Debug, Default)]
struct Trigger {
    workflows: Box<[Arc<CompiledWorkflow>]>,
    fields: FieldTable,
}

impl WorkflowSet {
    /// Compiles the active workflows among `workflows`. Inactive ones are left out; ones
    /// that fail to compile are left out and reported.
    pub fn build(workflows: impl IntoIterator<Item = Workflow>, limits: &Limits) -> (Self, Vec<BuildError>) {
        let mut by_trigger: HashMap<String, (Vec<Arc<CompiledWorkflow>>, FieldTable)> = HashMap::new();
        let mut exits_by_trigger: HashMap<String, Exits> = HashMap::new();
        let mut errors = Vec::new();
        let mut awaited = std::collections::HashSet::new();
        let mut len = 0;
        for (i, workflow) in workflows.into_iter().enumerate() {
            let id = workflow.id.clone().unwrap_or_else(|| format!("draft-{i}"));
            if !workflow.active {
                continue;
            }
            for slot in workflow.flow().slots() {
                if let Action::WaitForEvent { event, .. } = &slot.step.action {
                    awaited.insert(event.clone());
                }
            }
            if let Some(goal) = &workflow.goal {
                awaited.insert(goal.event.clone());
            }
            for rule in &workflow.exit_when {
                let exits = exits_by_trigger.entry(rule.trigger_event.clone()).or_default();
                match compile(rule.conditions.as_ref(), &mut exits.fields, limits) {
                    Ok(condition) => exits.rules.push(ExitCheck {
                        workflow_id: id.clone(),
                        program: Program::compile(&condition),
                        condition,
                    }),
                    Err(source) => errors.push(BuildError {
                        workflow_id: id.clone(),
                        source,
                    }),
                }
            }
            let (list, fields) = by_trigger.entry(workflow.trigger_event.clone()).or_default();
            match compile(workflow.conditions.as_ref(), fields, limits) {
                Ok(condition) => {
                    len += 1;
                    list.push(Arc::new(CompiledWorkflow {
                        id,
                        workflow,
                        program: Program::compile(&condition),
                        condition,
                    }));
                }
                Err(source) => errors.push(BuildError {
                    workflow_id: id,
                    source,
                }),
            }
        }
        let by_trigger = by_trigger
            .into_iter()
            .filter(|(_, (list, _))| !list.is_empty())
            .map(|(trigger, (mut list, fields))| {
                list.sort_by(|a, b| a.priority().cmp(&b.priority()).then_with(|| a.id.cmp(&b.id)));
                let workflows = list.into_boxed_slice();
                (trigger, Trigger { workflows, fields })
            })
            .collect();
        exits_by_trigger.retain(|_, exits| !exits.rules.is_empty());
        (
            Self {
                by_trigger,
                exits_by_trigger,
                awaited,
                len,
            },
            errors,
        )
    }

    /// Number of active workflows in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Distinct rules per trigger, summed over the set: what the evaluation of an event
    /// costs at most is its own trigger's share.
    pub fn distinct_rules(&self) -> usize {
        self.by_trigger.values().map(|t| t.fields.rules()).sum()
    }

    /// Whether any workflow listens to `trigger`: when none does, the event needs no
    /// customer snapshot and no database access at all.
    pub fn listens_to(&self, trigger: &str) -> bool {
        self.by_trigger.contains_key(trigger) || self.exits_by_trigger.contains_key(trigger) || self.awaits(trigger)
    }

    /// Whether an active workflow's `wait_for_event` or `goal` awaits events of
    /// `event_type`. A run of a version no longer active that awaits another type ends by
    /// its timeout; one whose goal is another type's is no longer watched.
    pub fn awaits(&self, event_type: &str) -> bool {
        self.awaited.contains(event_type)
    }

    /// Whether any workflow has an exit rule on `trigger`.
    pub fn has_exits(&self, trigger: &str) -> bool {
        self.exits_by_trigger.contains_key(trigger)
    }

    /// The workflows whose waiting runs of the event's customer this event cancels: those
    /// with an `exit_when` rule of the event's type whose conditions hold. Each id once.
    pub fn exits(&self, facts: Facts<'_>) -> Vec<&str> {
        let Some(exits) = self.exits_by_trigger.get(&facts.event.event_type) else {
            return Vec::new();
        };
        let mut fields = exits.fields.resolver(facts);
        let mut ids: Vec<&str> = Vec::new();
        for rule in &exits.rules {
            if !ids.contains(&rule.workflow_id.as_str()) && rule.program.run(&mut fields) {
                ids.push(&rule.workflow_id);
            }
        }
        ids
    }

    /// Whether any workflow of the event's trigger could match it, judging by the rules on
    /// the event alone (rules on the customer count as "maybe"). When none could, the event
    /// needs no customer snapshot: the matcher acknowledges it without the database.
    pub fn may_match(&self, event: &crate::envelope::EventEnvelope) -> bool {
        if self.awaits(&event.event_type) {
            return true;
        }
        let nobody = serde_json::Map::new();
        if let Some(exits) = self.exits_by_trigger.get(&event.event_type) {
            let mut fields = exits.fields.resolver(Facts::new(event, &nobody));
            if exits
                .rules
                .iter()
                .any(|r| crate::conditions::may_hold(&r.condition, &mut fields))
            {
                return true;
            }
        }
        let Some(trigger) = self.by_trigger.get(&event.event_type) else {
            return false;
        };
        let mut fields = trigger.fields.resolver(Facts::new(event, &nobody));
        trigger
            .workflows
            .iter()
            .any(|w| crate::conditions::may_hold(&w.condition, &mut fields))
    }

    /// The workflows of `trigger`, in execution order.
    pub fn workflows_for(&self, trigger: &str) -> &[Arc<CompiledWorkflow>] {
        self.by_trigger.get(trigger).map(|t| &*t.workflows).unwrap_or_default()
    }

    /// The workflows that run for this event, in execution order: every matching workflow
    /// of the event's trigger, by priority (lower first, ties by id), and none of lower
    /// priority than a matching `stop_after` workflow. Workflows of the stopping priority
    /// itself still run.
    pub fn plan(&self, facts: Facts<'_>) -> Vec<Arc<CompiledWorkflow>> {
        self.decide(facts, None)
    }

    /// [`plan`](Self::plan), with the verdict on every workflow of the trigger, as the
    /// event's plan records them: matched, no match (with the rules that decided it) or
    /// skipped by a `stop_after` workflow.
    pub fn judge(&self, facts: Facts<'_>) -> (Vec<Arc<CompiledWorkflow>>, Vec<Verdict>) {
        let mut verdicts = Vec::new();
        let plan = self.decide(facts, Some(&mut verdicts));
        (plan, verdicts)
    }

    fn decide(&self, facts: Facts<'_>, mut verdicts: Option<&mut Vec<Verdict>>) -> Vec<Arc<CompiledWorkflow>> {
        let Some(trigger) = self.by_trigger.get(&facts.event.event_type) else {
            return Vec::new();
        };
        let mut fields = trigger.fields.resolver(facts);
        let mut runs = Vec::new();
        let mut stopper: Option<&CompiledWorkflow> = None;
        for w in trigger.workflows.iter() {
            let version = w.workflow.version.unwrap_or(1);
            if let Some(stopper) = stopper.filter(|s| w.priority() > s.priority()) {
                match verdicts.as_deref_mut() {
                    Some(verdicts) => verdicts.push(Verdict::skipped(&w.id, version, &stopper.id)),
                    None => break,
                }
                continue;
            }
            if w.program.run(&mut fields) {
                if w.workflow.stop_after && stopper.is_none() {
                    stopper = Some(w);
                }
                runs.push(Arc::clone(w));
                if let Some(verdicts) = verdicts.as_deref_mut() {
                    verdicts.push(if w.holds_out(facts.event.customer_id) {
                        Verdict::held_out(&w.id, version)
                    } else {
                        Verdict::matched(&w.id, version)
                    });
                }
            } else if let Some(verdicts) = verdicts.as_deref_mut() {
                // The trace only for a workflow that did not match: why is what an operator asks.
                verdicts.push(Verdict::no_match(&w.id, version, &explain(&w.condition, &mut fields)));
            }
        }
        runs
    }

    /// The plan with its reasons: every workflow of the trigger, whether it matched, which
    /// workflow's stop_after skipped it, and the trace of every condition node. The plan is
    /// the one [`WorkflowSet::plan`] returns.
    pub fn explain(&self, facts: Facts<'_>) -> Explanation {
        let mut explanation = Explanation::default();
        let Some(trigger) = self.by_trigger.get(&facts.event.event_type) else {
            return explanation;
        };
        let mut fields = trigger.fields.resolver(facts);
        let mut stopper: Option<&CompiledWorkflow> = None;
        for w in trigger.workflows.iter() {
            let trace = explain(&w.condition, &mut fields);
            let skipped_by = stopper.filter(|s| w.priority() > s.priority()).map(|s| s.id.clone());
            let matched = trace.result();
            if matched && skipped_by.is_none() {
                if w.workflow.stop_after && stopper.is_none() {
                    stopper = Some(w);
                }
                explanation.plan.push(PlannedRun {
                    workflow_id: w.id.clone(),
                    name: w.workflow.name.clone(),
                    priority: w.priority(),
                    version: w.workflow.version,
                    actions: w
                        .workflow
                        .actions
                        .iter()
                        .map(|s| serde_json::to_value(s).unwrap_or_default())
                        .collect(),
                    previews: vec![serde_json::Map::new(); w.workflow.actions.len()],
                    held_out: false,
                });
            }
            explanation.evaluated.push(Evaluation {
                workflow_id: w.id.clone(),
                name: w.workflow.name.clone(),
                priority: w.priority(),
                matched,
                skipped_by,
                limited_by: None,
                held_out: false,
                trace,
            });
        }
        explanation
    }
}

impl WorkflowSet {
    /// Applies the guard rails to a dry run's explanation as a real run decides them at
    /// `now`: a planned workflow whose limit holds the customer back (judged by
    /// `last_entered`, the customer's last entry per workflow id) leaves the plan and is
    /// `limited_by` in `evaluated`; each remaining action gets its preview (consent skips
    /// and send-window waits, with delays moving the time on as a run would). A customer
    /// in a planned workflow's holdout is `held_out` there and in `evaluated`: the run
    /// would be recorded and perform nothing.
    pub fn apply_guards(
        &self,
        explanation: &mut Explanation,
        event: &crate::envelope::EventEnvelope,
        customer: &serde_json::Map<String, serde_json::Value>,
        now: DateTime<Utc>,
        last_entered: &HashMap<String, DateTime<Utc>>,
    ) {
        let workflows = self.workflows_for(&event.event_type);
        let find = |id: &str| workflows.iter().find(|w| w.id == id);
        explanation.plan.retain_mut(|planned| {
            let Some(w) = find(&planned.workflow_id) else {
                return true;
            };
            if let Some(limit) = w.workflow.limits {
                if limit.held_back(last_entered.get(&w.id).copied(), now) {
                    if let Some(e) = explanation.evaluated.iter_mut().find(|e| e.workflow_id == w.id) {
                        e.limited_by = Some(limit.name());
                    }
                    return false;
                }
            }
            if w.holds_out(event.customer_id) {
                planned.held_out = true;
                if let Some(e) = explanation.evaluated.iter_mut().find(|e| e.workflow_id == w.id) {
                    e.held_out = true;
                }
                return true;
            }
            let previews = step_previews(&w.workflow, customer, now);
            for (slot, preview) in planned.previews.iter_mut().zip(previews) {
                slot.extend(preview);
            }
            true
        });
    }
}

/// What a dry run returns.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// What would run, in execution order.
    pub plan: Vec<PlannedRun>,
    /// Every workflow of the trigger, in evaluation order.
    pub evaluated: Vec<Evaluation>,
}

/// A workflow a dry run would start, with its steps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PlannedRun {
    pub workflow_id: String,
    pub name: String,
    pub priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The steps as written (`{"type", "params"}`).
    pub actions: Vec<serde_json::Value>,
    /// What each action would do for this customer, one object per action: `"skipped":
    /// "<opt-out>"` for a message the customer opted out of, `"waits_until": "<rfc3339>"`
    /// for one that waits for its send window.
    pub previews: Vec<serde_json::Map<String, serde_json::Value>>,
    /// The customer is in the workflow's holdout: the run would be recorded `held_out`
    /// and perform none of `actions`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_out: bool,
}

/// How a dry run judged one workflow of the trigger.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    pub workflow_id: String,
    pub name: String,
    pub priority: i32,
    /// Whether the conditions held (also for a skipped workflow).
    pub matched: bool,
    /// The stop_after workflow that kept this one from running.
    pub skipped_by: Option<String>,
    /// The limit (`once_per_customer`, `cooldown`) that keeps this customer from entering:
    /// a real run would not be created.
    pub limited_by: Option<&'static str>,
    /// The customer is in the workflow's holdout (see [`PlannedRun::held_out`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held_out: bool,
    /// The condition tree as evaluated: each group and rule with its result, each rule
    /// with the value it saw (`saw`), as docs/http-api.md shows under the dry run.
    #[schema(value_type = Object)]
    pub trace: Trace,
}

/// What each step of `workflow` would do for `customer` when a run starts at `now`, as the
/// runner decides it: `{"skipped": "<opt-out>"}` for a message the customer opted out of,
/// `{"waits_until": "<rfc3339>"}` for one that waits for its send window, `{}` otherwise.
/// Delays move the time on (without the demo's override), so a message after a two-day
/// delay is judged two days later, as the resumed run would judge it.
fn step_previews(workflow: &Workflow, customer: &Map<String, Value>, now: DateTime<Utc>) -> Vec<Map<String, Value>> {
    let zone = crate::guards::window::customer_zone(customer);
    let mut at = now;
    workflow
        .actions
        .iter()
        .map(|step| {
            let mut preview = Map::new();
            match &step.action {
                Action::Delay { duration } => {
                    at += chrono::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(0));
                }
                Action::SendEmail { .. } | Action::SendSms { .. } => {
                    if let Some(reason) = crate::guards::consent::skip_reason(step.kind(), step.transactional, customer)
                    {
                        preview.insert("skipped".into(), Value::from(reason));
                    } else if let Some(w) = &workflow.send_window {
                        let opens = w.next_open(at, zone);
                        if opens > at {
                            preview.insert("waits_until".into(), Value::from(crate::clock::rfc3339(opens)));
                            at = opens;
                        }
                    }
                }
                _ => {}
            }
            preview
        })
        .collect()
}
