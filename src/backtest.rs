//! The backtest: how workflows would have judged past events, with no side effects.
//!
//! Each workflow is judged alone against the archived events of its trigger (a
//! `stop_after` elsewhere does not hide it), each event with its customer as stored now,
//! exactly as the matcher decides: the same compiled set, the same plan. Pure: the caller
//! reads the archive page by page and loads the customers, and hands each event over.

use crate::budget::{BudgetError, Deadline};
use crate::catalogue::Action;
use crate::conditions::{holds, reads_steps, Facts, Journey, Limits};
use crate::envelope::EventEnvelope;
use crate::experiment::assign;
use crate::guards::contact::{Channel, ContactPolicy};
use crate::guards::limits::EntryLimit;
use crate::plan::{BuildError, WorkflowSet};
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Most workflows one backtest judges.
pub const MAX_WORKFLOWS: usize = 50;
/// Most events one backtest reads, whatever `limit` asks for.
pub const MAX_EVENTS: u64 = 100_000;
/// Events read when `limit` is not given.
pub const DEFAULT_EVENTS: u64 = 10_000;
/// Matched events listed per workflow, newest first.
pub const SAMPLE_SIZE: usize = 5;

/// Why a backtest could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// The workflows under test, each compiled into a set of its own.
pub struct Backtest {
    judged: Vec<Judged>,
    events: u64,
    /// A contact policy to replay over the matches' messages, with what each customer's
    /// runs would have sent: (time, priority, workflow id, channel).
    contact: Option<(ContactPolicy, HashMap<i64, Vec<Message>>)>,
}

/// A message a matched run would have sent, for the policy replay.
struct Message {
    at: DateTime<Utc>,
    priority: i32,
    workflow: usize,
    channel: Channel,
}

struct Judged {
    trigger: String,
    set: WorkflowSet,
    /// The workflow's entry limit, replayed over the matches in [`Backtest::finish`].
    limit: Option<EntryLimit>,
    /// When each customer's matches occurred, for the limit (only kept when there is one;
    /// bounded by [`MAX_EVENTS`]).
    matches: HashMap<i64, Vec<DateTime<Utc>>>,
    report: WorkflowReport,
}

/// What the backtest answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Archived events read (of the workflows' triggers).
    pub events: u64,
    pub workflows: Vec<WorkflowReport>,
    /// With a contact policy: per channel, the messages the matches' runs would have sent
    /// and how many of them the caps would have held (skipped or deferred).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub contact: BTreeMap<&'static str, ContactReplay>,
}

/// What a contact policy would have done to one channel's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContactReplay {
    pub messages: u64,
    pub held: u64,
}

/// What the backtest found for one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkflowReport {
    pub workflow_id: String,
    /// Events of its trigger read, the denominator of `matched`.
    #[serde(skip)]
    pub considered: u64,
    pub matched: u64,
    /// Matches a `limits` rule (once per customer, cooldown) would hold back, replayed
    /// in time order from the first match read: a customer who entered before the events
    /// read is not known to have entered. Included in `matched`.
    pub limited: u64,
    /// A journey's branches the backtest can decide (on the event and the customer; not
    /// those that read a step's result or come after a wait), by the branch's step path:
    /// how many matches each path would take (`"0"`, `"1"`, ..., `"otherwise"`); and its
    /// splits', by each customer's stable draw. Held-out matches take no path.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, BTreeMap<String, u64>>,
    /// Matches whose customer is in the workflow's holdout (a run that performs nothing);
    /// included in `matched`. Only for a workflow with a holdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out: Option<u64>,
    pub sample: Vec<Sample>,
}

/// A matched event and what would have run.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sample {
    pub event_id: String,
    pub customer_id: i64,
    /// The steps as written (`{"type", "params"}`).
    pub actions: Vec<Value>,
    /// The path each decidable branch would take, by the branch's step path.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, String>,
}

/// Where a run of a workflow would go for one event and customer, as far as it can be
/// decided without running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// The path each decidable branch and split would take, by the step's path.
    pub paths: BTreeMap<String, String>,
    /// The kinds of the steps the run would reach, in order (branches and splits are
    /// where it turns, not steps that act; a wait is the last step known).
    pub steps: Vec<&'static str>,
}

/// The paths a run of `workflow` would take through the branches it can decide for this
/// event and customer, and through its splits (the customer's stable draw), following the
/// run from its first step, with the steps it reaches: a branch that reads a step's
/// result, or a wait, stops the walk (what follows depends on what only a run knows).
pub fn walk(workflow_id: &str, workflow: &Workflow, facts: Facts<'_>) -> Walk {
    let flow = workflow.flow();
    let mut walk = Walk::default();
    let no_steps = Map::new();
    let judged = Facts {
        journey: Some(Journey {
            trigger: facts.event,
            steps: &no_steps,
        }),
        ..facts
    };
    let limits = Limits::saved();
    let mut at = 0;
    while let Some(slot) = flow.get(at) {
        at = match (&slot.step.action, &slot.fork) {
            (Action::Branch { paths, .. }, Some(fork)) => {
                if paths.iter().any(|p| reads_steps(&p.when)) {
                    break;
                }
                let chosen = paths
                    .iter()
                    .position(|p| holds(&p.when, judged, &limits).unwrap_or(false));
                let block = fork.block(chosen.unwrap_or(paths.len()));
                walk.paths.insert(
                    slot.path.clone(),
                    chosen.map_or("otherwise".to_owned(), |k| k.to_string()),
                );
                if block.is_empty() {
                    slot.next
                } else {
                    block.start
                }
            }
            (Action::Split { paths }, Some(fork)) => {
                let percents: Vec<u8> = paths.iter().map(|p| p.percent).collect();
                let bucket = assign::bucket(facts.event.customer_id, workflow_id, &slot.path);
                let k = assign::split_path(&percents, bucket);
                walk.paths.insert(slot.path.clone(), k.to_string());
                let block = fork.block(k);
                if block.is_empty() {
                    slot.next
                } else {
                    block.start
                }
            }
            (Action::WaitForEvent { .. }, _) => {
                walk.steps.push(slot.step.kind().name());
                break;
            }
            _ => {
                walk.steps.push(slot.step.kind().name());
                slot.next
            }
        };
    }
    walk
}

impl Backtest {
    /// Compiles `workflows` (each must have its id: a stored id or `draft-N`), judged as
    /// if active.
    pub fn new(workflows: Vec<Workflow>, limits: &Limits) -> Result<Self, BuildError> {
        Self::build(workflows, limits, || Ok(()))
    }

    /// [`Backtest::new`] within a request's time budget, checked between workflows:
    /// compiling is what a large request spends its time on before the first event.
    pub fn within(workflows: Vec<Workflow>, limits: &Limits, deadline: &Deadline) -> Result<Self, BacktestError> {
        Self::build(workflows, limits, || deadline.check().map_err(BacktestError::from))
    }

    fn build<E: From<BuildError>>(
        workflows: Vec<Workflow>,
        limits: &Limits,
        mut check: impl FnMut() -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut judged = Vec::with_capacity(workflows.len());
        for mut workflow in workflows {
            check()?;
            workflow.active = true;
            let workflow_id = workflow.id.clone().unwrap_or_else(|| "draft-0".to_owned());
            let trigger = workflow.trigger_event.clone();
            let limit = workflow.limits;
            let holdout = workflow.holdout.is_some();
            let (set, mut errors) = WorkflowSet::build([workflow], limits);
            if let Some(mut error) = errors.pop() {
                error.workflow_id = workflow_id;
                return Err(error.into());
            }
            judged.push(Judged {
                trigger,
                set,
                limit,
                matches: HashMap::new(),
                report: WorkflowReport {
                    workflow_id,
                    considered: 0,
                    matched: 0,
                    limited: 0,
                    paths: BTreeMap::new(),
                    held_out: holdout.then_some(0),
                    sample: Vec::new(),
                },
            });
        }
        Ok(Self {
            judged,
            events: 0,
            contact: None,
        })
    }

    /// Replays `policy` over the messages the matches' runs would send: each customer's
    /// messages across the workflows under test, in time order (priority, then workflow,
    /// within one event), counted against the caps as runs count them. Messages nested in
    /// branches, splits and waits are not replayed: only the workflows' own steps.
    pub fn with_contact_policy(mut self, policy: ContactPolicy) -> Self {
        self.contact = Some((policy, HashMap::new()));
        self
    }

    /// The triggers whose events the backtest needs, without repeats.
    pub fn triggers(&self) -> Vec<String> {
        let mut triggers: Vec<String> = self.judged.iter().map(|j| j.trigger.clone()).collect();
        triggers.sort();
        triggers.dedup();
        triggers
    }

    /// Judges one archived event against every workflow of its trigger. Events must come
    /// newest first for the sample to be the newest matches.
    pub fn observe(&mut self, event: &EventEnvelope, customer: &Map<String, Value>) {
        self.events += 1;
        let facts = Facts::new(event, customer);
        for (index, j) in self.judged.iter_mut().enumerate() {
            if j.trigger != event.event_type {
                continue;
            }
            j.report.considered += 1;
            let Some(run) = j.set.plan(facts).into_iter().next() else {
                continue;
            };
            j.report.matched += 1;
            let held_out = run.holds_out(event.customer_id);
            if let (Some((_, sends)), false) = (self.contact.as_mut(), held_out) {
                let at = event.occurred_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
                for step in run.workflow.actions.iter().filter(|s| !s.transactional) {
                    if let Some(channel) = Channel::of(step.kind()) {
                        sends.entry(event.customer_id).or_default().push(Message {
                            at,
                            priority: run.priority(),
                            workflow: index,
                            channel,
                        });
                    }
                }
            }
            if let Some(n) = j.report.held_out.as_mut() {
                *n += u64::from(held_out);
            }
            let taken = if held_out {
                BTreeMap::new()
            } else {
                walk(&run.id, &run.workflow, facts).paths
            };
            for (branch, path) in &taken {
                *j.report
                    .paths
                    .entry(branch.clone())
                    .or_default()
                    .entry(path.clone())
                    .or_default() += 1;
            }
            if j.limit.is_some() {
                let at = event.occurred_at.unwrap_or(DateTime::<Utc>::MIN_UTC);
                j.matches.entry(event.customer_id).or_default().push(at);
            }
            if j.report.sample.len() < SAMPLE_SIZE {
                j.report.sample.push(Sample {
                    event_id: event.id.clone(),
                    customer_id: event.customer_id,
                    actions: run
                        .workflow
                        .actions
                        .iter()
                        .map(|s| serde_json::to_value(s).unwrap_or_default())
                        .collect(),
                    paths: taken,
                });
            }
        }
    }

    pub fn finish(self) -> Report {
        let contact = self
            .contact
            .map(|(policy, sends)| replay(&policy, sends))
            .unwrap_or_default();
        let workflows = self
            .judged
            .into_iter()
            .map(|mut j| {
                if let Some(limit) = j.limit {
                    for times in j.matches.values_mut() {
                        times.sort_unstable();
                        let mut entered = None;
                        for &at in times.iter() {
                            if limit.held_back(entered, at) {
                                j.report.limited += 1;
                            } else {
                                entered = Some(at);
                            }
                        }
                    }
                }
                j.report
            })
            .collect();
        Report {
            events: self.events,
            workflows,
            contact,
        }
    }
}

/// Counts each customer's messages against the policy's caps in time order, as runs would
/// have taken them: a message past a cap is held and not counted.
fn replay(policy: &ContactPolicy, sends: HashMap<i64, Vec<Message>>) -> BTreeMap<&'static str, ContactReplay> {
    let mut out: BTreeMap<&'static str, ContactReplay> = BTreeMap::new();
    for mut messages in sends.into_values() {
        messages.sort_by_key(|m| (m.at, m.priority, m.workflow));
        let mut sent: HashMap<Channel, Vec<DateTime<Utc>>> = HashMap::new();
        for m in messages {
            let counted = sent.entry(m.channel).or_default();
            let room = policy.caps_of(m.channel).all(|cap| {
                let since =
                    m.at - chrono::Duration::seconds(i64::try_from(cap.per.as_secs()).unwrap_or(i64::MAX / 1000));
                // `counted` is in time order: those after `since` are the period's.
                counted.len() - counted.partition_point(|t| *t <= since) < cap.max as usize
            });
            let entry = out.entry(m.channel.name()).or_default();
            entry.messages += 1;
            if room {
                counted.push(m.at);
            } else {
                entry.held += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(value: Value) -> Workflow {
        crate::analysis::tests::workflow(value)
    }

    fn deposit(id: &str, customer: i64, amount: i64) -> EventEnvelope {
        EventEnvelope::from_value(json!({"id": id, "type": "customer.deposited", "customer_id": customer,
            "data": {"amount": amount}}))
        .unwrap()
    }

    #[test]
    fn each_workflow_is_judged_alone_on_its_own_trigger() {
        let big = workflow(
            json!({"id": "big", "name": "big", "trigger_event": "customer.deposited", "stop_after": true,
            "priority": 1, "conditions": {"field": "event.amount", "operator": "gte", "value": 1000},
            "actions": [{"type": "add_note", "params": {"body": "big"}}]}),
        );
        let br = workflow(
            json!({"id": "draft-0", "name": "br", "trigger_event": "customer.deposited",
            "conditions": {"field": "customer.country", "operator": "eq", "value": "BR"},
            "actions": [{"type": "add_note", "params": {"body": "br"}}]}),
        );
        let reg = workflow(
            json!({"id": "reg", "name": "reg", "trigger_event": "customer.registered",
            "actions": [{"type": "add_note", "params": {"body": "hi"}}]}),
        );
        let mut bt = Backtest::new(vec![big, br, reg], &Limits::default()).unwrap();
        assert_eq!(bt.triggers(), ["customer.deposited", "customer.registered"]);
        let brazil = json!({"id": 1, "country": "BR"}).as_object().cloned().unwrap();
        for i in 0..7 {
            bt.observe(&deposit(&format!("e{i}"), 1, i * 500), &brazil);
        }
        let report = bt.finish();
        assert_eq!(report.events, 7);
        let by_id = |id: &str| report.workflows.iter().find(|w| w.workflow_id == id).unwrap().clone();
        // 1000, 1500, 2000, 2500, 3000.
        assert_eq!(by_id("big").matched, 5);
        assert_eq!(by_id("big").sample.len(), SAMPLE_SIZE);
        assert_eq!(by_id("big").sample[0].event_id, "e2");
        assert_eq!(
            by_id("big").sample[0].actions,
            [json!({"type": "add_note", "params": {"body": "big"}})]
        );
        // Not hidden by big's stop_after: judged alone.
        assert_eq!(by_id("draft-0").matched, 7);
        assert_eq!((by_id("reg").matched, by_id("reg").considered), (0, 0));
    }

    /// The backtest sizes an experiment as runs would split it: each customer's stable
    /// draw for the holdout and for each split, held-out customers taking no path.
    #[test]
    fn the_holdout_and_each_split_path_are_sized_by_each_customers_draw() {
        let ab = workflow(json!({"id": "ab", "name": "ab", "trigger_event": "customer.deposited",
            "holdout": {"percent": 20},
            "actions": [{"type": "split", "params": {"paths": [
                {"percent": 30, "actions": []}, {"percent": 70, "actions": []}]}}]}));
        let mut bt = Backtest::new(vec![ab], &Limits::default()).unwrap();
        let (mut held, mut paths) = (0, [0u64; 2]);
        for c in 1..=500 {
            let customer = json!({ "id": c }).as_object().cloned().unwrap();
            bt.observe(&deposit(&format!("e{c}"), c, 10), &customer);
            if assign::held_out(c, "ab", 20) {
                held += 1;
            } else {
                paths[assign::split_path(&[30, 70], assign::bucket(c, "ab", "0"))] += 1;
            }
        }
        let report = bt.finish();
        let ab = &report.workflows[0];
        assert_eq!((ab.matched, ab.held_out), (500, Some(held)));
        assert!((60..140).contains(&held), "about a fifth: {held}");
        let sized = &ab.paths["0"];
        assert_eq!((sized["0"], sized["1"]), (paths[0], paths[1]));
        assert_eq!(paths[0] + paths[1] + held, 500);
    }

    /// A contact policy replayed over the matches: each customer's messages across the
    /// workflows, in time order and priority within one event, counted against the caps;
    /// transactional messages are neither capped nor counted.
    #[test]
    fn a_contact_policy_is_replayed_over_each_customers_messages_in_order() {
        let email = |s: &str| json!({"type": "send_email", "params": {"subject": s}});
        let first = workflow(
            json!({"id": "first", "name": "first", "trigger_event": "customer.deposited",
            "priority": 1, "actions": [email("a"), {"type": "send_email", "transactional": true, "params": {"subject": "receipt"}}]}),
        );
        let second = workflow(
            json!({"id": "second", "name": "second", "trigger_event": "customer.deposited",
            "priority": 2, "actions": [email("b"), {"type": "send_sms", "params": {"text": "c"}}]}),
        );
        let mut problems = crate::problem::Problems::default();
        let policy = ContactPolicy::from_value(
            &json!({"caps": [{"channel": "email", "max": 1, "per": {"days": 1}}]}),
            &mut problems,
        )
        .expect("a policy");
        let mut bt = Backtest::new(vec![second, first], &Limits::default())
            .unwrap()
            .with_contact_policy(policy);
        let customer = json!({"id": 1}).as_object().cloned().unwrap();
        // Newest first, as the archive is read: hours 30, 1 and 0.
        for (id, hour) in [("c", 30), ("b", 1), ("a", 0)] {
            let mut event = deposit(id, 1, 10);
            event.occurred_at = Some(DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(hour));
            bt.observe(&event, &customer);
        }
        let report = bt.finish();
        // Hour 0: first's email goes (priority 1), second's is held; hour 1: both held;
        // hour 30: first's goes, second's held. SMS has no cap.
        assert_eq!(report.contact["email"], ContactReplay { messages: 6, held: 4 });
        assert_eq!(report.contact["sms"], ContactReplay { messages: 3, held: 0 });
    }

    #[test]
    fn limits_hold_back_later_matches_of_a_customer_in_time_order() {
        let once = workflow(
            json!({"id": "once", "name": "once", "trigger_event": "customer.deposited",
            "limits": {"once_per_customer": true},
            "actions": [{"type": "add_note", "params": {"body": "hi"}}]}),
        );
        let cool = workflow(
            json!({"id": "cool", "name": "cool", "trigger_event": "customer.deposited",
            "limits": {"cooldown": {"days": 1}},
            "actions": [{"type": "add_note", "params": {"body": "hi"}}]}),
        );
        let mut bt = Backtest::new(vec![once, cool], &Limits::default()).unwrap();
        let customer = json!({"id": 1}).as_object().cloned().unwrap();
        // Newest first, as the archive is read: hours 50, 30, 10, 0 for customer 1, and one
        // deposit of customer 2.
        for (id, customer_id, hour) in [("d", 1, 50), ("c", 1, 30), ("b", 1, 10), ("a", 1, 0), ("x", 2, 5)] {
            let mut event = deposit(id, customer_id, 10);
            event.occurred_at = Some(DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::hours(hour));
            bt.observe(&event, &customer);
        }
        let report = bt.finish();
        let by_id = |id: &str| report.workflows.iter().find(|w| w.workflow_id == id).unwrap().clone();
        assert_eq!((by_id("once").matched, by_id("once").limited), (5, 3));
        // Enters at 0; 10 is within a day of it (held); 30 enters again; 50 is within a day
        // of 30 (held). Customer 2 enters once.
        assert_eq!((by_id("cool").matched, by_id("cool").limited), (5, 2));
    }

    #[test]
    fn a_journey_reports_the_paths_its_decidable_branches_would_take() {
        let journey = workflow(
            json!({"id": "size", "name": "size", "trigger_event": "customer.deposited", "actions": [
                {"type": "branch", "params": {"paths": [
                    {"when": {"field": "event.amount", "operator": "gte", "value": 1000},
                     "actions": [{"type": "add_note", "params": {"body": "big"}}]}],
                    "otherwise": [{"type": "branch", "params": {"paths": [
                        {"when": {"field": "customer.country", "operator": "eq", "value": "BR"},
                         "actions": [{"type": "add_note", "params": {"body": "br"}}]}]}}]}},
                {"type": "wait_for_event", "name": "next", "params": {"event": "customer.deposited", "timeout": {"days": 1},
                    "on_event": [{"type": "branch", "params": {"paths": [
                        {"when": {"field": "steps.next.event.amount", "operator": "gt", "value": 0}, "actions": []}]}}]}}
            ]}),
        );
        let mut bt = Backtest::new(vec![journey], &Limits::default()).unwrap();
        let brazil = json!({"id": 1, "country": "BR"}).as_object().cloned().unwrap();
        for (i, amount) in [2000, 50, 10, 5000].into_iter().enumerate() {
            bt.observe(&deposit(&format!("e{i}"), 1, amount), &brazil);
        }
        let report = bt.finish();
        let paths = &report.workflows[0].paths;
        assert_eq!(
            paths["0"],
            BTreeMap::from([("0".to_owned(), 2), ("otherwise".to_owned(), 2)])
        );
        // The nested branch is reached only by the small deposits.
        assert_eq!(paths["0.otherwise.0"], BTreeMap::from([("0".to_owned(), 2)]));
        // The branch after the wait reads its outcome: not decided.
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert_eq!(report.workflows[0].sample[1].paths["0"], "otherwise");
    }
}
