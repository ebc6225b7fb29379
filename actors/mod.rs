//! How the engine runs: one actor per file, each with its messages beside it, wired
//! together in [`topology`].
//!
//! - [`consumer`]: the Kafka source and one partition consumer per assigned partition.
//! - [`matcher`]: the compiled workflow set; routes events to customers' executors.
//! - [`executor`]: one per active customer; plans, records runs, runs chains in order.
//! - [`scheduler`]: resumes delayed chains when due; emits time-based events.
//! - [`delivery`]: the pool that sends email, SMS and webhook requests.
//! - [`outbox_relay`]: publishes the events the engine emits.
//! - [`metrics`]: mailbox and engine metrics, exported for Prometheus.

/// Stop an actor that has nothing to drain (the scheduler, the outbox relay): sent by the
/// topology's shutdown.
#[derive(Debug, actix::Message)]
#[rtype(result = "()")]
pub struct Halt;

pub mod consumer;
pub mod delivery;
pub mod executor;
pub mod matcher;
pub mod metrics;
pub mod outbox_relay;
pub mod scheduler;
pub mod topology;
