//! What an experiment measures: a workflow's `holdout` (the share of entering customers
//! who get a `held_out` run that performs nothing) and its `goal` (the event that counts
//! as success within a window after a run starts).

use crate::conditions::ConditionNode;
use crate::duration::Duration;
use crate::problem::{json_type_name, Pointer, Problems};
use serde::Serialize;
use serde_json::Value;

/// The largest holdout: past half, the workflow is the experiment's minority.
pub const MAX_HOLDOUT_PERCENT: u8 = 50;

/// The longest goal window: a year and a day, like a wait's timeout.
pub const MAX_WITHIN_SECS: u64 = 366 * 24 * 3600;

/// `"holdout": {"percent": p}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Holdout {
    pub percent: u8,
}

impl Holdout {
    /// Reads `{"percent": p}`, p a whole number 0..=50.
    pub fn from_value(value: &Value, at: &Pointer, problems: &mut Problems) -> Option<Self> {
        let Some(object) = value.as_object() else {
            problems.error(
                at,
                format!("expected {{\"percent\": n}}, got {}", json_type_name(value)),
            );
            return None;
        };
        for key in object.keys().filter(|k| *k != "percent") {
            problems.error(&at.key(key), format!("unknown key {key:?}: expected percent"));
        }
        let at = at.key("percent");
        let Some(percent) = object.get("percent") else {
            problems.error(&at, "is required");
            return None;
        };
        match percent.as_u64() {
            Some(p) if p <= u64::from(MAX_HOLDOUT_PERCENT) => Some(Self { percent: p as u8 }),
            _ => {
                problems.error(
                    &at,
                    format!("expected a whole number from 0 to {MAX_HOLDOUT_PERCENT}, got {percent}"),
                );
                None
            }
        }
    }
}

/// `"goal": {"event": T, "conditions": node?, "within": duration, "exit": bool?}`: the
/// first event of type T of the customer, meeting the conditions, within `within` after
/// a run started marks the run `goal_reached_at`; with `exit`, a waiting run then ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    pub event: String,
    /// Over the goal event (`event.*`) and the run's trigger (`trigger.*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionNode>,
    pub within: Duration,
    /// Written only when true, so a definition reads back as typed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exit: bool,
}

/// The reason a run cancelled by its goal carries.
pub fn exit_reason(event_type: &str, event_id: &str) -> String {
    format!("goal reached: {event_type} event {event_id}")
}
