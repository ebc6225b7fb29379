//! What planning decided for each workflow of an event's trigger, recorded with the
//! event's plan (storage::plans) so the event inspector can say why a workflow did or did
//! not run for it. Plain data: the planner makes them, storage keeps them, the API shows
//! them.

use crate::conditions::Trace;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What planning decided for one workflow of an event's trigger, recorded with the plan so
/// the event inspector can say why a workflow did or did not run for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub workflow_id: String,
    pub version: i64,
    /// One of [`kind`]'s.
    pub verdict: String,
    /// For `no_match`: the rules that decided it, with what each saw (at most
    /// [`MAX_FAILING`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<Value>,
    /// For `skipped`: the `stop_after` workflow that kept this one from running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped_by: Option<String>,
}

impl Verdict {
    /// A matched workflow whose event went past its cascade's budget of runs.
    pub fn stopped_by_budget(mut self) -> Self {
        if self.verdict == kind::MATCHED || self.verdict == kind::HELD_OUT {
            self.verdict = kind::STOPPED.to_owned();
        }
        self
    }
}

/// The verdicts planning records. Whether a matched workflow's run was held back by its
/// limit is read from the runs: a matched workflow without a run for the event was.
pub mod kind {
    pub const MATCHED: &str = "matched";
    pub const NO_MATCH: &str = "no_match";
    pub const SKIPPED: &str = "skipped";
    /// Matched, but the event would have taken its cascade past `engine.max_cascade_runs`.
    pub const STOPPED: &str = "stopped";
    /// Matched, and the customer is in the workflow's holdout: the run is recorded
    /// `held_out` and performs nothing.
    pub const HELD_OUT: &str = "held_out";
}

/// Most failing rules kept per workflow: enough to say why, bounded whatever the tree.
pub const MAX_FAILING: usize = 10;

impl Verdict {
    pub fn matched(workflow_id: &str, version: i64) -> Self {
        Self::new(workflow_id, version, kind::MATCHED)
    }

    /// Conditions that did not hold; `trace` says which rules decided it.
    pub fn no_match(workflow_id: &str, version: i64, trace: &Trace) -> Self {
        let mut failing = Vec::new();
        deciding(trace, false, &mut failing);
        Self {
            failing,
            ..Self::new(workflow_id, version, kind::NO_MATCH)
        }
    }

    pub fn held_out(workflow_id: &str, version: i64) -> Self {
        Self::new(workflow_id, version, kind::HELD_OUT)
    }

    pub fn skipped(workflow_id: &str, version: i64, by: &str) -> Self {
        Self {
            skipped_by: Some(by.to_owned()),
            ..Self::new(workflow_id, version, kind::SKIPPED)
        }
    }

    fn new(workflow_id: &str, version: i64, verdict: &str) -> Self {
        Self {
            workflow_id: workflow_id.to_owned(),
            version,
            verdict: verdict.to_owned(),
            failing: Vec::new(),
            skipped_by: None,
        }
    }
}

/// The rules that made `trace` come out `want`: every child with that result decides it
/// (all the false ones of a failed `all`, every one of a failed `any`), and a `not` turns
/// what its child must have been around. At most [`MAX_FAILING`].
fn deciding(trace: &Trace, want: bool, out: &mut Vec<Value>) {
    if out.len() >= MAX_FAILING {
        return;
    }
    match trace {
        Trace::Rule { result, .. } if *result == want => {
            out.push(serde_json::to_value(trace).unwrap_or_default());
        }
        Trace::Rule { .. } | Trace::Always { .. } => {}
        Trace::Group { rules, .. } => {
            for rule in rules.iter().filter(|r| r.result() == want) {
                deciding(rule, want, out);
            }
        }
        Trace::Not { not, .. } => deciding(not, !want, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditions::Operator;
    use serde_json::json;

    fn rule(field: &str, result: bool) -> Trace {
        Trace::Rule {
            field: field.into(),
            operator: Operator::Eq,
            value: Some(json!(1)),
            saw: json!(0),
            missing: false,
            result,
        }
    }

    fn group(match_: crate::conditions::Match, rules: Vec<Trace>) -> Trace {
        let result = match match_ {
            crate::conditions::Match::All => rules.iter().all(Trace::result),
            crate::conditions::Match::Any => rules.iter().any(Trace::result),
        };
        Trace::Group { match_, result, rules }
    }

    fn blamed(trace: &Trace) -> Vec<String> {
        Verdict::no_match("w", 1, trace)
            .failing
            .iter()
            .map(|r| r["field"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn the_rules_that_decided_a_no_match_are_blamed() {
        use crate::conditions::Match::{All, Any};
        // A failed all: its false rules, not the true one.
        assert_eq!(blamed(&group(All, vec![rule("a", true), rule("b", false)])), ["b"]);
        // A failed any: every rule.
        assert_eq!(
            blamed(&group(Any, vec![rule("a", false), rule("b", false)])),
            ["a", "b"]
        );
        // A not that failed: the inner rules that held.
        let not = Trace::Not {
            result: false,
            not: Box::new(group(All, vec![rule("c", true), rule("d", true)])),
        };
        assert_eq!(blamed(&group(All, vec![rule("a", true), not])), ["c", "d"]);
        // Bounded, whatever the tree.
        let many = group(Any, (0..50).map(|i| rule(&format!("r{i}"), false)).collect());
        assert_eq!(blamed(&many).len(), MAX_FAILING);
    }
}
