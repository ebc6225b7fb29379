//! How the engine runs: one actor per file, the messages that cross actors in
//! [`protocol`], wired together in [`topology`] (the only module that names concrete
//! actors). What the actors do lives in plain modules ([`crate::runner`],
//! [`crate::storage`], [`crate::retry`]) tested without actix.
//!
//! - [`kafka_source`]: the group member; splits a queue per assigned partition and hands
//!   partitions over on a rebalance.
//! - [`partition_consumer`]: reads one partition, dead-letters what cannot be decoded.
//! - [`matcher`]: the compiled workflow set; routes events to customers' executors.
//! - [`executor`]: one per active customer; its mailbox is the customer's queue.
//! - [`scheduler`]: resumes delayed chains when due; emits time-based events.
//! - [`delivery`]: the pool that sends email, SMS and webhook requests.
//! - [`outbox_relay`]: publishes the events the engine emits.
//! - [`archiver`]: writes consumed events to the backtest archive, in batches.
//! - [`activity`]: moves customers' `last_activity_at` for events no workflow can act on.
//!
//! [`detached`] is not an actor: it runs an actor's database access as a task of its own.

pub mod activity;
pub mod archiver;
pub mod delivery;
pub mod detached;
pub mod executor;
pub mod kafka_source;
pub mod matcher;
pub mod outbox_relay;
pub mod partition_consumer;
pub mod protocol;
pub mod scheduler;
pub mod topology;
