//! The guard rails of a workflow: who may enter it and how often ([`limits`]), when its
//! messages may go out ([`window`]), who must not get them ([`consent`]), what ends its
//! waiting runs early ([`exit`]), how deep events the engine emits may cascade
//! ([`cascade`]), and whether an event with a used id is that event again ([`identity`]).
//!
//! Pure decisions, no I/O: the runner and the dry run call the same functions with the
//! same facts, so a dry run reports what a real run decides. What must hold across
//! processes (a customer enters a limited workflow once) is enforced by the database in
//! [`crate::storage::entries`], with the rule of [`limits::EntryLimit::held_back`].

pub mod cascade;
pub mod consent;
pub mod exit;
pub mod identity;
pub mod limits;
pub mod window;

use crate::catalogue::Action;
use crate::workflow::Workflow;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// What each step of `workflow` would do for `customer` when a run starts at `now`, as the
/// runner decides it: `{"skipped": "<opt-out>"}` for a message the customer opted out of,
/// `{"waits_until": "<rfc3339>"}` for one that waits for its send window, `{}` otherwise.
/// Delays move the time on (without the demo's override), so a message after a two-day
/// delay is judged two days later, as the resumed run would judge it.
pub fn preview(workflow: &Workflow, customer: &Map<String, Value>, now: DateTime<Utc>) -> Vec<Map<String, Value>> {
    let zone = window::customer_zone(customer);
    let mut at = now;
    workflow
        .actions
        .iter()
        .map(|step| {
            let mut preview = Map::new();
            match &step.action {
                Action::Delay { duration } => {
                    at += chrono::Duration::seconds(i64::try_from(duration.as_secs()).unwrap_or(0));
                }
                Action::SendEmail { .. } | Action::SendSms { .. } => {
                    if let Some(reason) = consent::skip_reason(step.kind(), step.transactional, customer) {
                        preview.insert("skipped".into(), Value::from(reason));
                    } else if let Some(w) = &workflow.send_window {
                        let opens = w.next_open(at, zone);
                        if opens > at {
                            preview.insert("waits_until".into(), Value::from(crate::clock::rfc3339(opens)));
                            at = opens;
                        }
                    }
                }
                _ => {}
            }
            preview
        })
        .collect()
}
