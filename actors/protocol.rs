//! Every message that crosses actors. Actors hold `Recipient<M>` of these, never each
//! other's types; only the topology names concrete actors (and the delivery pool its
//! own members). The payloads are library types ([`Deliver`], [`Work`], [`Rebalancing`]):
//! this module only says which of them travel between actors and what each answers.

use crate::envelope::EventEnvelope;
use crate::kafka::{DeadLetters, EngineConsumer, EngineContext, Rebalancing};
use crate::outbound::send::{Deliver, DeliveryReport};
use crate::plan::WorkflowSet;
use crate::runner::{Handled, Work};
use crate::storage::ownership::Fence;
use actix::{Message, Recipient};
use chrono::{DateTime, Utc};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use std::sync::Arc;
use tokio::sync::oneshot;

/// An event handed to the engine by its partition's consumer. `recorded` is answered once
/// the event's plan and runs are durably recorded (or it needs none), or once it is
/// refused (the reader then dead-letters it); dropping it unanswered means "not recorded"
/// and stops the partition before its offset is stored.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Route {
    pub event: EventEnvelope,
    /// The partition's epoch the event was read under.
    pub fence: Fence,
    pub offset: i64,
    pub recorded: oneshot::Sender<Handled>,
}

/// An event no workflow can act on, kept only for its customer's `last_activity_at`
/// (the activity writer, `engine.activity_flush_ms`). `recorded` is answered once that
/// time is written, so the event's offset is stored only after it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TouchActivity {
    pub customer_id: i64,
    /// The event's time; `None` is now.
    pub occurred_at: Option<DateTime<Utc>>,
    pub recorded: oneshot::Sender<Handled>,
    /// The event's `wfe_events_total` series, counted once the time is written, so the
    /// counter says what is done (as for events through executors).
    pub counted: prometheus::IntCounter,
}

/// Sent by a new owner before it reads a partition: resume the runs of this partition
/// that a previous owner recorded but did not finish, so they keep their place before
/// newer events. Answers how many were queued.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct RecoverPartition {
    pub fence: Fence,
}

/// Continue a delayed run whose continuation the scheduler claimed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume {
    pub customer_id: i64,
    pub run_id: i64,
    pub fence: Fence,
    pub due_at: DateTime<Utc>,
    /// Counts the resume in flight until it is done or dropped.
    pub ticket: crate::runner::Ticket,
}

/// Rebuild the set from the database now (after a change made through this process).
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Reload;

/// The live set, for the dry run and admin views.
#[derive(Debug, Message)]
#[rtype(result = "Arc<WorkflowSet>")]
pub struct CurrentSet;

/// One piece of a customer's work, for the customer's executor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Execute(pub Work);

/// Sent by the matcher once it has forgotten an executor: no more work will come.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Told to the matcher after an executor was idle for a while, with how many pieces of
/// work it finished, so the matcher can tell whether anything is still on its way.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Idle {
    pub customer_id: i64,
    pub processed: u64,
}

/// A continuation was scheduled for `due_at`: wake then if that is earlier than planned.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake {
    pub due_at: DateTime<Utc>,
}

/// Partitions changed hands: look for due work now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Poll;

/// A rebalance step from the consumer's callback thread, for the Kafka source; answered
/// through the step's own channel once handled.
impl Message for Rebalancing {
    type Result = ();
}

/// A chain's external step, for the delivery pool: the library's request type, made a
/// message here so that [`crate::outbound::send`] stays free of actix.
impl Message for Deliver {
    type Result = DeliveryReport;
}

/// Stop an actor that has nothing to drain (the scheduler, the outbox relay).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Halt;

/// Stop consuming: hand every partition over (drain, stop its work, commit), leave the
/// group.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Stop reading a partition, wait for what was handed over, store and commit the last
/// offset.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// A partition's reader ended by itself (not drained): its source restarts it if the
/// partition is still owned under the same fence.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReaderEnded {
    pub fence: Fence,
    /// The offset to read from again: after the last one stored.
    pub resume_at: i64,
}

/// A consumed event for the archive (the backtest reads it). Offered with
/// [`ArchiveEvent::offer`], never awaited: the archive must not slow consumption.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ArchiveEvent(pub EventEnvelope);

impl ArchiveEvent {
    /// Hands `event` to the archiver if its mailbox has room; otherwise drops it and
    /// counts the drop (deliberate load shedding: the archive is best effort, the hot
    /// path is not). Returns whether it was taken.
    pub fn offer(archiver: &actix::Recipient<ArchiveEvent>, event: &EventEnvelope) -> bool {
        let metrics = crate::metrics::Metrics::global();
        match archiver.try_send(ArchiveEvent(event.clone())) {
            Ok(()) => {
                metrics.mailbox("archiver").sent();
                true
            }
            Err(_) => {
                metrics.archive_events.with_label_values(&["dropped"]).inc();
                false
            }
        }
    }
}

/// What a partition's reader needs: handed by the Kafka source to the topology's
/// spawner, which starts the reader with it.
pub struct ReaderSpec {
    pub fence: Fence,
    pub topic: String,
    pub queue: StreamPartitionQueue<EngineContext>,
    pub consumer: Arc<EngineConsumer>,
    pub sink: Recipient<Route>,
    pub recovery: Recipient<RecoverPartition>,
    pub ended: Recipient<ReaderEnded>,
    pub dead_letters: DeadLetters,
    /// Events handed over and not yet recorded, at most.
    pub window: usize,
}
