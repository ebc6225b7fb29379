//! A piece of one customer's work, as queued in the customer's executor.

use crate::envelope::EventEnvelope;
use crate::plan::WorkflowSet;
use crate::storage::ownership::Fence;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Work for one customer, taken in arrival order.
pub enum Work {
    /// A new event and the workflow set current when it was routed. `recorded` is
    /// answered once its plan and runs are durably recorded, or once it is refused;
    /// dropped unanswered, the partition stops before the event's offset.
    Event {
        event: EventEnvelope,
        set: Arc<WorkflowSet>,
        fence: Fence,
        recorded: oneshot::Sender<Handled>,
    },
    /// Continue a recorded run at its next step.
    Resume { run_id: i64, fence: Fence, why: Why },
}

/// What became of an event handed to the engine, as its partition's reader is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Recorded, or nothing to record: the offset may be stored.
    Recorded,
    /// Refused without running anything (its id is another event's): the reader
    /// dead-letters it with this reason, then stores the offset, so the partition goes on
    /// and the refusal is where an operator looks for events the engine did not take.
    Refused(String),
}

impl Work {
    pub fn fence(&self) -> Fence {
        match self {
            Work::Event { fence, .. } | Work::Resume { fence, .. } => *fence,
        }
    }
}

/// Why a run is resumed, which says what state it must still be in for the resume to act.
pub enum Why {
    /// The scheduler claimed its due continuation: act only if this node still holds the
    /// claim and the run still waits (see `storage::steps::resumed`).
    Due {
        due_at: DateTime<Utc>,
        /// Counts the resume as in flight for the scheduler until it is done or dropped.
        ticket: Ticket,
    },
    /// A new owner of the partition found the run pending or running: act only if it
    /// still is.
    Recover,
}

/// A resume handed out by the scheduler and not yet finished. The scheduler claims no
/// more than it has tickets for, so claims never queue past their lease behind a backlog.
pub struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// Counts one more in flight on `counter`.
    pub fn issue(counter: &Arc<AtomicUsize>) -> Ticket {
        counter.fetch_add(1, Ordering::AcqRel);
        Ticket(Arc::clone(counter))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
