//! Which events an action makes the engine emit, and what is known of them in advance.
//!
//! Mirrors the actions (src/actions/) and the engine's own emitters
//! (src/storage/emitters.rs):
//! - `set_status` emits `customer.status_changed` (`customer.retention_changed` for the
//!   retention type) with `status_type` and the new status by name or id, as written;
//! - `freeze_account` emits `compliance.freeze_requested`;
//! - `create_task` leads to `task.overdue` once the task is past due (when the scheduler
//!   emits it), with the task's `type` when the step names one.
//!
//! Every other action emits nothing the engine consumes.

use super::overlap::Requirements;
use crate::catalogue::{Action, StatusRef};
use serde_json::Value;

/// An event an action emits: its trigger and the facts known of it.
#[derive(Debug, Clone)]
pub struct Emitted {
    pub trigger: &'static str,
    pub facts: Requirements,
    /// Emitted again only when something changed (set_status to the status the customer
    /// already has announces nothing), so the workflow cannot re-trigger itself forever.
    pub only_on_change: bool,
}

/// What `action` emits, if anything.
pub fn emitted(action: &Action) -> Option<Emitted> {
    match action {
        Action::SetStatus { status_type, status } => {
            let trigger = if status_type == "retention" {
                "customer.retention_changed"
            } else {
                "customer.status_changed"
            };
            let facts = Requirements::default().equal("event.status_type", Value::from(status_type.as_str()));
            let facts = match status {
                StatusRef::Name(name) => facts.equal("event.new_status", Value::from(name.as_str())),
                StatusRef::Id(id) => facts.equal("event.new_status_id", Value::from(*id)),
            };
            Some(Emitted {
                trigger,
                facts,
                only_on_change: true,
            })
        }
        Action::FreezeAccount { .. } => Some(Emitted {
            trigger: "compliance.freeze_requested",
            facts: Requirements::default(),
            only_on_change: false,
        }),
        Action::CreateTask { task_type, .. } => {
            let facts = Requirements::default();
            let facts = match task_type {
                Some(t) if !t.contains("{{") => facts.equal("task.type", Value::from(t.as_str())),
                _ => facts,
            };
            Some(Emitted {
                trigger: "task.overdue",
                facts,
                only_on_change: false,
            })
        }
        _ => None,
    }
}
