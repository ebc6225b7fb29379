//! Cascades: events the engine emits carry their cause (`"cause": {"event_id",
//! "workflow_id", "depth", "root"}` in the envelope), one deeper than the event of the run
//! that emitted them. Two limits bound what one outside event can set off:
//!
//! - depth: an event deeper than `engine.max_cascade_depth` starts no runs, so two
//!   workflows that set each other's statuses stop instead of running forever;
//! - breadth: the runs of one cascade (every run of the outside event it began with, the
//!   `root`, and of the events emitted from there) are counted in the database, and an
//!   emitted event that would take them past `engine.max_cascade_runs` starts none. The
//!   depth alone lets a workflow that re-triggers itself through `b` actions start
//!   `b`^depth runs (3,906 for five actions); the budget caps a cascade at a number of
//!   runs, and so its emitted events at that number times the actions of a workflow.
//!
//! A cause is a claim made by whoever produced the event, and the topic and
//! `POST /api/v1/events` are open to producers. So it is trusted ([`Lineage::emitted`])
//! only when the engine's outbox holds the event as the engine emitted it, with that
//! cause; only then may the engine note anything on the run it names or count the event
//! in that run's cascade. An untrusted cause still counts for the depth (what it claims is
//! never less than the truth of a forged copy, so forging one cannot reset the limit),
//! and the event otherwise starts a cascade of its own.

use serde::{Deserialize, Serialize};

/// The default of `engine.max_cascade_depth`.
pub const DEFAULT_MAX_DEPTH: u32 = 5;

/// The default of `engine.max_cascade_runs`: far above what a chain of status changes
/// needs (one run a generation), far below the thousands a fan-out reaches.
pub const DEFAULT_MAX_RUNS: u32 = 100;

/// The largest depth an envelope may carry: far beyond any configured maximum, and small
/// enough that adding one never overflows.
pub const MAX_DEPTH_VALUE: u32 = 1_000_000;

/// What made the engine emit an event: the run of `workflow_id` for `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cause {
    pub event_id: String,
    pub workflow_id: String,
    /// 1 for an event emitted by a run of an outside event; one more per generation.
    pub depth: u32,
    /// The outside event the cascade began with, whose budget of runs the event draws on.
    /// Absent on events emitted before the budget existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
}

/// Which limit stopped an event: the label of `wfe_cascades_stopped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `engine.max_cascade_depth`.
    Depth,
    /// `engine.max_cascade_runs`.
    Runs,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Limit::Depth => "depth",
            Limit::Runs => "runs",
        }
    }
}

/// An event's place in a cascade once its cause was checked against the outbox: what the
/// limits are judged by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The depth the event claims (0 without a cause), trusted or not.
    pub depth: u32,
    /// The outside event whose cascade this event's runs are counted in: the event itself
    /// unless its cause is trusted.
    pub root: String,
    /// The run that emitted the event, when the outbox vouches for its cause: the only run
    /// the engine may note a stopped cascade on.
    pub emitted_by: Option<i64>,
}

impl Lineage {
    /// An event the engine did not emit, or whose cause the outbox does not vouch for: a
    /// cascade of its own, as deep as it claims.
    pub fn outside(event_id: &str, claimed: Option<&Cause>) -> Self {
        Self {
            depth: depth(claimed),
            root: event_id.to_owned(),
            emitted_by: None,
        }
    }

    /// An event run `run_id` emitted with `cause`, as its outbox row says. An event emitted
    /// before causes named their root counts against its emitting run's event.
    pub fn emitted(cause: &Cause, run_id: i64) -> Self {
        Self {
            depth: cause.depth,
            root: cause.root.clone().unwrap_or_else(|| cause.event_id.clone()),
            emitted_by: Some(run_id),
        }
    }

    /// Whether the event draws on a cascade's budget (it was emitted by the engine); an
    /// outside event's own runs are counted but never stopped.
    pub fn is_emitted(&self) -> bool {
        self.emitted_by.is_some()
    }
}

/// How an event is recorded with respect to its cascade: where it stands, and how many
/// runs a cascade may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub lineage: Lineage,
    /// `engine.max_cascade_runs`.
    pub max_runs: u32,
}

impl Budget {
    /// An outside event's: a cascade of its own, never stopped.
    pub fn outside(event_id: &str) -> Self {
        Self {
            lineage: Lineage::outside(event_id, None),
            max_runs: u32::MAX,
        }
    }

    /// Whether `planned` more runs would take a cascade that has `counted` runs past the
    /// budget. All or nothing: an event starts every run it planned or none, so a
    /// cascade's runs never pass the budget, and an event that plans none is never stopped.
    pub fn exceeded(&self, counted: u64, planned: usize) -> bool {
        self.lineage.is_emitted() && planned > 0 && counted.saturating_add(planned as u64) > u64::from(self.max_runs)
    }
}

/// The depth of an event: 0 for one from outside the engine.
pub fn depth(cause: Option<&Cause>) -> u32 {
    cause.map_or(0, |c| c.depth)
}

/// Whether an event at `depth` is past the maximum and must start no runs.
pub fn stopped(depth: u32, max_depth: u32) -> bool {
    depth > max_depth
}

/// The `reason` noted on the run that emitted an event stopped by the depth limit.
pub fn depth_reason(event_type: &str, event_id: &str, depth: u32, max_depth: u32) -> String {
    format!(
        "cascade stopped: the {event_type} event {event_id} it emitted is at depth {depth}, past the maximum of {max_depth}, and started no runs"
    )
}

/// The `reason` noted on the run that emitted an event stopped by the budget.
pub fn budget_reason(event_type: &str, event_id: &str, root: &str, max_runs: u32) -> String {
    format!(
        "cascade stopped: the {event_type} event {event_id} it emitted would take the cascade of event {root} past the maximum of {max_runs} runs, and started no runs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_past_the_maximum() {
        assert!(!stopped(0, 5));
        assert!(!stopped(5, 5));
        assert!(stopped(6, 5));
        assert!(stopped(1, 0));
    }

    fn cause(root: Option<&str>) -> Cause {
        Cause {
            event_id: "e1".into(),
            workflow_id: "w".into(),
            depth: 3,
            root: root.map(str::to_owned),
        }
    }

    #[test]
    fn an_untrusted_cause_keeps_its_depth_and_starts_its_own_cascade() {
        let forged = cause(Some("someone-elses-root"));
        let lineage = Lineage::outside("mine", Some(&forged));
        assert_eq!(
            (lineage.depth, lineage.root.as_str(), lineage.emitted_by),
            (3, "mine", None)
        );
        let trusted = Lineage::emitted(&forged, 7);
        assert_eq!(
            (trusted.root.as_str(), trusted.emitted_by),
            ("someone-elses-root", Some(7))
        );
        assert_eq!(
            Lineage::emitted(&cause(None), 7).root,
            "e1",
            "before roots: the emitting run's event"
        );
    }

    #[test]
    fn the_budget_is_all_or_nothing_and_only_for_emitted_events() {
        let budget = Budget {
            lineage: Lineage::emitted(&cause(Some("r")), 1),
            max_runs: 100,
        };
        assert!(!budget.exceeded(99, 1));
        assert!(budget.exceeded(100, 1));
        assert!(budget.exceeded(98, 3), "all or nothing");
        assert!(!budget.exceeded(500, 0), "an event that plans nothing is not stopped");
        let outside = Budget {
            lineage: Lineage::outside("o", None),
            max_runs: 100,
        };
        assert!(!outside.exceeded(500, 5), "an outside event's runs are never stopped");
    }
}
