//! A workflow definition: trigger, conditions, actions, priority, stop_after.
//!
//! A [`Workflow`] only exists validated (see [`crate::validate`]): its conditions passed the
//! type checks and its steps decoded into typed [`Action`]s. It serialises back to exactly
//! the JSON shape it was written in.

use crate::catalogue::{Action, ActionKind};
use crate::conditions::ConditionNode;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// The priority of a workflow that does not give one: after any the operator ranked.
pub const DEFAULT_PRIORITY: i32 = 100;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    /// Assigned by storage; drafts in a dry run have none (they get `draft-N`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub trigger_event: String,
    /// `None` = always true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<ConditionNode>,
    pub actions: Vec<Step>,
    /// Lower runs first.
    pub priority: i32,
    /// When this workflow matches, lower-priority workflows are skipped.
    pub stop_after: bool,
    pub active: bool,
    /// Assigned by storage on every save.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// One action step: the typed action and the params as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: Action,
    pub params: Map<String, Value>,
}

impl Step {
    pub fn kind(&self) -> ActionKind {
        self.action.kind()
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Step", 2)?;
        s.serialize_field("type", self.kind().name())?;
        s.serialize_field("params", &self.params)?;
        s.end()
    }
}
