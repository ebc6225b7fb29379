//! Exit on event: `"exit_when": [{"trigger_event": T, "conditions": node?}]`. When an event
//! of type T of the customer arrives and its conditions hold, the workflow's waiting runs
//! of that customer are cancelled (a deposit ends a churn-rescue chain still waiting to
//! call). The conditions are compiled by the same compiler as a workflow's, and indexed by
//! trigger in the [`WorkflowSet`](crate::plan::WorkflowSet), so an event checks only the
//! exit rules of its own type.

use crate::conditions::ConditionNode;
use serde::Serialize;

/// The most exit rules a workflow may have: each is checked for every event of its type.
pub const MAX_EXIT_RULES: usize = 10;

/// One exit rule as written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitRule {
    pub trigger_event: String,
    /// `None` = every event of the type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionNode>,
}

/// The reason a cancelled run carries: it names the event.
pub fn reason(event_type: &str, event_id: &str) -> String {
    format!("exit_when: {event_type} event {event_id}")
}
