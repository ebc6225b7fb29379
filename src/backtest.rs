//! The backtest: how workflows would have judged past events, with no side effects.
//!
//! Each workflow is judged alone against the archived events of its trigger (a
//! `stop_after` elsewhere does not hide it), each event with its customer as stored now,
//! exactly as the matcher decides: the same compiled set, the same plan. Pure: the caller
//! reads the archive page by page and loads the customers, and hands each event over.

use crate::conditions::{Facts, Limits};
use crate::envelope::EventEnvelope;
use crate::plan::{BuildError, WorkflowSet};
use crate::workflow::Workflow;
use serde::Serialize;
use serde_json::{Map, Value};

/// Most workflows one backtest judges.
pub const MAX_WORKFLOWS: usize = 50;
/// Most events one backtest reads, whatever `limit` asks for.
pub const MAX_EVENTS: u64 = 100_000;
/// Events read when `limit` is not given.
pub const DEFAULT_EVENTS: u64 = 10_000;
/// Matched events listed per workflow, newest first.
pub const SAMPLE_SIZE: usize = 5;

/// The workflows under test, each compiled into a set of its own.
pub struct Backtest {
    judged: Vec<Judged>,
    events: u64,
}

struct Judged {
    trigger: String,
    set: WorkflowSet,
    report: WorkflowReport,
}

/// What the backtest answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Archived events read (of the workflows' triggers).
    pub events: u64,
    pub workflows: Vec<WorkflowReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowReport {
    pub workflow_id: String,
    /// Events of its trigger read, the denominator of `matched`.
    #[serde(skip)]
    pub considered: u64,
    pub matched: u64,
    /// Matches a `limits` rule (once per customer, cooldown) would hold back. This
    /// version of the engine has no limits, so it is 0.
    pub limited: u64,
    pub sample: Vec<Sample>,
}

/// A matched event and what would have run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub event_id: String,
    pub customer_id: i64,
    /// The steps as written (`{"type", "params"}`).
    pub actions: Vec<Value>,
}

impl Backtest {
    /// Compiles `workflows` (each must have its id: a stored id or `draft-N`), judged as
    /// if active.
    pub fn new(workflows: Vec<Workflow>, limits: &Limits) -> Result<Self, BuildError> {
        let mut judged = Vec::with_capacity(workflows.len());
        for mut workflow in workflows {
            workflow.active = true;
            let workflow_id = workflow.id.clone().unwrap_or_else(|| "draft-0".to_owned());
            let trigger = workflow.trigger_event.clone();
            let (set, mut errors) = WorkflowSet::build([workflow], limits);
            if let Some(mut error) = errors.pop() {
                error.workflow_id = workflow_id;
                return Err(error);
            }
            judged.push(Judged {
                trigger,
                set,
                report: WorkflowReport {
                    workflow_id,
                    considered: 0,
                    matched: 0,
                    limited: 0,
                    sample: Vec::new(),
                },
            });
        }
        Ok(Self { judged, events: 0 })
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
        let facts = Facts { event, customer };
        for j in &mut self.judged {
            if j.trigger != event.event_type {
                continue;
            }
            j.report.considered += 1;
            let Some(run) = j.set.plan(facts).into_iter().next() else {
                continue;
            };
            j.report.matched += 1;
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
                });
            }
        }
    }

    pub fn finish(self) -> Report {
        Report {
            events: self.events,
            workflows: self.judged.into_iter().map(|j| j.report).collect(),
        }
    }
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
}
