//! A workflow definition: trigger, conditions, actions, priority, stop_after.
//!
//! A [`Workflow`] only exists validated (see [`crate::validate`]): its conditions passed the
//! type checks and its steps decoded into typed [`Action`]s. It serialises back to exactly
//! the JSON shape it was written in.

use crate::catalogue::{Action, ActionKind};
use crate::conditions::ConditionNode;
use crate::experiment::goal::{Goal, Holdout};
use crate::flow::Flow;
use crate::guards::exit::ExitRule;
use crate::guards::limits::EntryLimit;
use crate::guards::window::SendWindow;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How a webhook's `save` names a custom field: `customer.custom.<name>`.
pub const SAVE_PREFIX: &str = "customer.custom.";

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
    /// How often a customer may enter: once ever or once per period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<EntryLimit>,
    /// When email and SMS steps may go out, in the customer's local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_window: Option<SendWindow>,
    /// Events that cancel this workflow's waiting runs of their customer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_when: Vec<ExitRule>,
    /// The share of entering customers who get a `held_out` run that performs nothing:
    /// the experiment's control group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    /// The event that counts as the workflow's success for a run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// Assigned by storage on every save.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `actions` laid out flat, as runs walk them (derived from `actions` by validation).
    #[serde(skip)]
    pub(crate) flow: Flow,
}

impl Workflow {
    /// The actions as runs walk them: see [`crate::flow`].
    pub fn flow(&self) -> &Flow {
        &self.flow
    }
}

/// One action step: the typed action, the params as written, and what a failure does.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// `"name"` beside `type`: later steps read what this one produced as
    /// `steps.<name>.*`. Unique in the workflow, snake_case.
    pub name: Option<String>,
    pub action: Action,
    pub params: Map<String, Value>,
    pub on_error: OnError,
    /// Sent whatever the customer's opt-out (`"transactional": true`, email and SMS only):
    /// statements and security notices, not marketing.
    pub transactional: bool,
    /// A webhook's `"save"`: custom field name to the JSON pointer of the value in the
    /// 2xx answer's body, written in the transaction that records the step done.
    pub save: BTreeMap<String, String>,
}

/// What a step's failure does to its run (`"on_error"` beside `type` and `params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The run fails at this step (the default): what comes after depends on it.
    #[default]
    Fail,
    /// The step is recorded as failed and the chain goes on: for a step the rest does not
    /// depend on, e.g. a Slack notice that must not hold up a hand-over.
    Continue,
}

impl OnError {
    pub const ALL: [OnError; 2] = [OnError::Fail, OnError::Continue];

    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Continue => "continue",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }
}

impl Step {
    pub fn kind(&self) -> ActionKind {
        self.action.kind()
    }
}

impl Serialize for Step {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let continues = self.on_error == OnError::Continue;
        let fields = 2
            + usize::from(continues)
            + usize::from(self.transactional)
            + usize::from(self.name.is_some())
            + usize::from(!self.save.is_empty());
        let mut s = serializer.serialize_struct("Step", fields)?;
        s.serialize_field("type", self.kind().name())?;
        if let Some(name) = &self.name {
            s.serialize_field("name", name)?;
        }
        s.serialize_field("params", &self.params)?;
        // Written only when not the default, so stored definitions keep their shape.
        if continues {
            s.serialize_field("on_error", self.on_error.name())?;
        }
        if self.transactional {
            s.serialize_field("transactional", &true)?;
        }
        if !self.save.is_empty() {
            let save: BTreeMap<String, &String> = self
                .save
                .iter()
                .map(|(field, pointer)| (format!("{SAVE_PREFIX}{field}"), pointer))
                .collect();
            s.serialize_field("save", &save)?;
        }
        s.end()
    }
}
