//! What publishing a version would change: the version against the live one over the
//! archived events of the last `changes.impact_days`, judged as the backtest judges them
//! (the same compiled sets and walks, [`crate::backtest`]), event by event.
//!
//! An event's plan under one version is whether the workflow matches it (and holds the
//! customer out) and the steps its run would reach ([`walk`]). The report counts the
//! events whose plan differs, and how: runs started or no longer started, and the steps
//! added or removed by kind ("+312 webhook"). Pure: the caller reads the archive and
//! hands each event over, as for the backtest.

use crate::backtest::walk;
use crate::conditions::{Facts, Limits};
use crate::envelope::EventEnvelope;
use crate::plan::{BuildError, WorkflowSet};
use crate::workflow::Workflow;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Changed events listed in a report, newest first.
pub const SAMPLE_SIZE: usize = 5;

/// What publishing would change, over the events read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ImpactReport {
    /// The days of archive compared (`changes.impact_days`).
    pub days: u32,
    /// Archived events read: of the live version's trigger and the new one's.
    pub events: u64,
    /// Events whose plan differs between the two versions.
    pub changed: u64,
    /// Events the new version starts a run for and the live one does not.
    pub started: u64,
    /// Events the live version starts a run for and the new one does not.
    pub stopped: u64,
    /// Steps the changed events' runs would reach under the new version, less those
    /// under the live one, by kind; kinds that do not change are left out.
    pub steps: BTreeMap<String, i64>,
    /// Some changed events, newest first.
    pub sample: Vec<ChangedEvent>,
}

/// One event whose plan changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChangedEvent {
    pub event_id: String,
    pub customer_id: i64,
    /// The steps under the live version (null: no run), and under the new one.
    pub live: Option<Vec<String>>,
    pub draft: Option<Vec<String>>,
}

/// One version compiled into a set of its own.
struct Judge {
    trigger: String,
    set: WorkflowSet,
}

impl Judge {
    fn new(mut workflow: Workflow, limits: &Limits) -> Result<Self, BuildError> {
        workflow.active = true;
        let trigger = workflow.trigger_event.clone();
        let (set, mut errors) = WorkflowSet::build([workflow], limits);
        match errors.pop() {
            Some(error) => Err(error),
            None => Ok(Self { trigger, set }),
        }
    }

    /// The steps a run would reach, or `None` when the workflow starts no run (a held-out
    /// run reaches none).
    fn plan(&self, event: &EventEnvelope, customer: &Map<String, Value>) -> Option<Vec<&'static str>> {
        if self.trigger != event.event_type {
            return None;
        }
        let facts = Facts::new(event, customer);
        let run = self.set.plan(facts).into_iter().next()?;
        if run.holds_out(event.customer_id) {
            return Some(Vec::new());
        }
        Some(walk(&run.id, &run.workflow, facts).steps)
    }
}

/// The comparison under way.
pub struct Impact {
    live: Option<Judge>,
    draft: Judge,
    report: ImpactReport,
}

impl Impact {
    /// Compares `draft` with `live` (none: the workflow has never run). Both must carry the
    /// workflow's id, so splits and holdouts draw as its runs would.
    pub fn new(live: Option<Workflow>, draft: Workflow, limits: &Limits, days: u32) -> Result<Self, BuildError> {
        Ok(Self {
            live: live.map(|w| Judge::new(w, limits)).transpose()?,
            draft: Judge::new(draft, limits)?,
            report: ImpactReport {
                days,
                ..ImpactReport::default()
            },
        })
    }

    /// The triggers whose events the comparison reads, without repeats.
    pub fn triggers(&self) -> Vec<String> {
        let mut triggers: Vec<String> = self
            .live
            .iter()
            .chain([&self.draft])
            .map(|j| j.trigger.clone())
            .collect();
        triggers.sort();
        triggers.dedup();
        triggers
    }

    /// Compares the two plans of one archived event (newest first, for the sample).
    pub fn observe(&mut self, event: &EventEnvelope, customer: &Map<String, Value>) {
        self.report.events += 1;
        let live = self.live.as_ref().and_then(|j| j.plan(event, customer));
        let draft = self.draft.plan(event, customer);
        if live == draft {
            return;
        }
        let report = &mut self.report;
        report.changed += 1;
        match (&live, &draft) {
            (None, Some(_)) => report.started += 1,
            (Some(_), None) => report.stopped += 1,
            _ => {}
        }
        for kind in draft.iter().flatten() {
            *report.steps.entry((*kind).to_owned()).or_default() += 1;
        }
        for kind in live.iter().flatten() {
            *report.steps.entry((*kind).to_owned()).or_default() -= 1;
        }
        report.steps.retain(|_, n| *n != 0);
        if report.sample.len() < SAMPLE_SIZE {
            let named =
                |plan: Option<Vec<&'static str>>| plan.map(|steps| steps.into_iter().map(str::to_owned).collect());
            report.sample.push(ChangedEvent {
                event_id: event.id.clone(),
                customer_id: event.customer_id,
                live: named(live),
                draft: named(draft),
            });
        }
    }

    pub fn finish(self) -> ImpactReport {
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workflow(value: Value) -> Workflow {
        crate::analysis::tests::workflow(value)
    }

    fn deposit(id: &str, customer_id: i64, amount: i64) -> EventEnvelope {
        EventEnvelope::from_value(
            json!({"id": id, "type": "customer.deposited", "customer_id": customer_id,
            "occurred_at": "2026-12-01T10:00:00Z", "data": {"amount": amount}}),
        )
        .expect("an event")
    }

    fn big_deposits(min: i64, actions: Value) -> Workflow {
        workflow(
            json!({"id": "big", "name": "big", "trigger_event": "customer.deposited",
            "conditions": {"match": "all", "rules": [{"field": "event.amount", "operator": "gte", "value": min}]},
            "actions": actions}),
        )
    }

    #[test]
    fn only_the_events_whose_plan_changes_are_counted_with_their_steps() {
        let note = json!({"type": "add_note", "params": {"body": "big"}});
        let hook = json!({"type": "webhook", "params": {"url": "https://crm.example/hook"}});
        let live = big_deposits(1000, json!([note]));
        let draft = big_deposits(500, json!([note, hook]));
        let mut impact = Impact::new(Some(live), draft, &Limits::saved(), 7).expect("compiles");
        assert_eq!(impact.triggers(), ["customer.deposited"]);
        let customer = Map::new();
        // 2000: both match, the draft adds a webhook; 700: only the draft; 100: neither.
        for (id, amount) in [("e1", 2000), ("e2", 700), ("e3", 100)] {
            impact.observe(&deposit(id, 1, amount), &customer);
        }
        let report = impact.finish();
        assert_eq!(report.events, 3);
        assert_eq!(report.changed, 2);
        assert_eq!((report.started, report.stopped), (1, 0));
        assert_eq!(
            report.steps,
            BTreeMap::from([("add_note".to_owned(), 1), ("webhook".to_owned(), 2)])
        );
        assert_eq!(report.sample[0].event_id, "e1");
        assert_eq!(report.sample[0].live, Some(vec!["add_note".to_owned()]));
        assert_eq!(
            report.sample[0].draft,
            Some(vec!["add_note".to_owned(), "webhook".to_owned()])
        );
        assert_eq!(report.sample[1].live, None);
    }

    #[test]
    fn an_unchanged_version_changes_nothing_and_a_first_version_starts_every_match() {
        let note = json!([{"type": "add_note", "params": {"body": "big"}}]);
        let same = || big_deposits(1000, note.clone());
        let mut unchanged = Impact::new(Some(same()), same(), &Limits::saved(), 7).expect("compiles");
        let mut first = Impact::new(None, same(), &Limits::saved(), 7).expect("compiles");
        for (id, amount) in [("e1", 2000), ("e2", 10)] {
            unchanged.observe(&deposit(id, 1, amount), &Map::new());
            first.observe(&deposit(id, 1, amount), &Map::new());
        }
        assert_eq!(unchanged.finish().changed, 0);
        let first = first.finish();
        assert_eq!((first.changed, first.started), (1, 1));
        assert_eq!(first.steps, BTreeMap::from([("add_note".to_owned(), 1)]));
    }

    #[test]
    fn a_changed_trigger_reads_both_triggers_and_stops_the_old_ones_runs() {
        let note = json!([{"type": "add_note", "params": {"body": "x"}}]);
        let live = big_deposits(0, note.clone());
        let draft =
            workflow(json!({"id": "big", "name": "big", "trigger_event": "customer.withdrew", "actions": note}));
        let mut impact = Impact::new(Some(live), draft, &Limits::saved(), 7).expect("compiles");
        assert_eq!(impact.triggers(), ["customer.deposited", "customer.withdrew"]);
        impact.observe(&deposit("e1", 1, 5), &Map::new());
        let report = impact.finish();
        assert_eq!((report.changed, report.stopped), (1, 1));
        assert_eq!(report.steps, BTreeMap::from([("add_note".to_owned(), -1)]));
    }
}
