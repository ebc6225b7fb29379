//! The engine's member of the consumer group: one consumer, one reader per assigned
//! partition.
//!
//! As in vector's Kafka source: the main consumer is polled on its own thread so rebalance
//! callbacks fire; on assignment the source splits a queue per partition
//! (`split_partition_queue`), takes the partition's next ownership epoch in the database
//! and starts a reader under that fence. The cooperative-sticky assignor moves only the
//! partitions that change hands, so a process joining or leaving does not stop the
//! others' work.
//!
//! A revoke is a hand-over: the partition's work is fenced off in this process at once
//! (queued work is dropped when its turn comes, running chains stop at their next step),
//! its reader drains (stores the offsets of what was recorded) and the revoke waits, up to
//! [`HANDOVER_WAIT`], until no step of the partition is still running here, so the new
//! owner never works beside this process. Whatever a stale process still tries to commit
//! fails on the epoch in the database.

use super::protocol::{Drain, Poll, ReaderEnded, ReaderSpec, RecoverPartition, Route, Shutdown};
use crate::clock::SystemClock;
use crate::kafka::{consumer_config, DeadLetters, EngineConsumer, EngineContext, Rebalancing};
use crate::metrics::Metrics;
use crate::retry::{self, Backoff, Retried};
use crate::runner::Ownership;
use crate::storage::{ownership, Database};
use actix::prelude::*;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::Offset;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a hand-over waits for the partition's running work to stop.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(20);

/// How long a reader that stopped by itself waits before it is started again.
const READER_RESTART: Duration = Duration::from_secs(1);

/// Starts a partition's reader; answers to [`Drain`].
pub type SpawnReader = Arc<dyn Fn(ReaderSpec) -> Recipient<Drain> + Send + Sync>;

/// What a [`KafkaSource`] needs.
pub struct SourceConfig {
    pub brokers: String,
    pub group_id: String,
    /// The `kafka` settings: the operator's librdkafka properties and the reset policy.
    pub kafka: crate::settings::Kafka,
    pub topic: String,
    pub node_id: String,
    pub db: Database,
    pub in_flight_per_partition: usize,
    pub dead_letters: DeadLetters,
    pub sink: Recipient<Route>,
    pub recovery: Recipient<RecoverPartition>,
    pub ownership: Ownership,
    /// Told when partitions are assigned, so their due delays are looked at now rather
    /// than at the next poll (the scheduler).
    pub assigned: Recipient<Poll>,
    pub spawn_reader: SpawnReader,
}

/// Coordinates partitions: splits queues, takes ownership, starts, hands over and
/// restarts readers.
pub struct KafkaSource {
    consumer: Arc<EngineConsumer>,
    config: SourceConfig,
    readers: HashMap<i32, Recipient<Drain>>,
    /// Assignments in progress (taking ownership), by partition, numbered so a revoke that
    /// comes first cancels them.
    assigning: HashMap<i32, u64>,
    generation: u64,
    rebalances: Option<mpsc::UnboundedReceiver<Rebalancing>>,
    driver: Option<Arbiter>,
}

impl KafkaSource {
    pub fn new(config: SourceConfig) -> Result<Self, crate::kafka::KafkaError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let context = EngineContext::new(config.topic.clone(), tx);
        let consumer: EngineConsumer =
            consumer_config(&config.brokers, &config.group_id, &config.kafka).create_with_context(context)?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Self {
            consumer: Arc::new(consumer),
            config,
            readers: HashMap::new(),
            assigning: HashMap::new(),
            generation: 0,
            rebalances: Some(rx),
            driver: None,
        })
    }

    /// Splits the partition's queue and starts its reader under `fence`.
    fn start_reader(&mut self, fence: ownership::Fence, ctx: &mut Context<Self>) {
        let partition = fence.partition;
        let Some(queue) = self.consumer.split_partition_queue(&self.config.topic, partition) else {
            tracing::error!(partition, "cannot split the partition queue");
            return;
        };
        let c = &self.config;
        let reader = (c.spawn_reader)(ReaderSpec {
            fence,
            topic: c.topic.clone(),
            queue,
            consumer: Arc::clone(&self.consumer),
            sink: c.sink.clone(),
            recovery: c.recovery.clone(),
            ended: ctx.address().recipient(),
            dead_letters: c.dead_letters.clone(),
            window: c.in_flight_per_partition,
        });
        if let Some(old) = self.readers.insert(partition, reader) {
            old.do_send(Drain);
        }
    }

    /// Stops the partitions' work here and waits until it is stopped: see the module doc.
    fn hand_over(&mut self, partitions: &[i32]) -> impl std::future::Future<Output = ()> + 'static {
        let ownership = self.config.ownership.clone();
        let mut fences = Vec::new();
        let mut drains = Vec::new();
        for p in partitions {
            self.assigning.remove(p);
            fences.extend(ownership.revoke(*p));
            if let Some(reader) = self.readers.remove(p) {
                drains.push(reader.send(Drain));
            }
        }
        let consumer = Arc::clone(&self.consumer);
        async move {
            futures_util::future::join_all(drains).await;
            for fence in fences {
                if !ownership.finished(fence, HANDOVER_WAIT).await {
                    tracing::warn!(
                        partition = fence.partition,
                        "work of a revoked partition still running after {HANDOVER_WAIT:?}; its commits will be fenced"
                    );
                }
            }
            if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                tracing::debug!(error = %e, "commit on hand-over");
            }
        }
    }
}

impl Actor for KafkaSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Rebalance steps arrive from the driver thread; handle them here, in order.
        if let Some(mut rx) = self.rebalances.take() {
            let me = ctx.address();
            ctx.spawn(
                async move {
                    while let Some(step) = rx.recv().await {
                        if me.send(step).await.is_err() {
                            break;
                        }
                    }
                }
                .into_actor(self),
            );
        }
        // The main queue is polled on a thread of its own: its callbacks block until this
        // actor has handled the rebalance, so they must not share this actor's thread.
        let driver = Arbiter::new();
        let consumer = Arc::clone(&self.consumer);
        let topic = self.config.topic.clone();
        driver.spawn(async move {
            loop {
                match consumer.recv().await {
                    // Only reached by a message fetched before its partition was split:
                    // rewind so the partition's own queue reads it, in order.
                    Ok(message) => {
                        let (partition, offset) = (message.partition(), message.offset());
                        drop(message);
                        tracing::debug!(partition, offset, "message on the main queue, rewinding");
                        if let Err(e) = consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(5))
                        {
                            tracing::warn!(partition, offset, error = %e, "rewind failed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka consumer error");
                        actix_rt::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        self.driver = Some(driver);
        Metrics::global().actors.with_label_values(&["kafka_source"]).inc();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(driver) = self.driver.take() {
            driver.stop();
        }
        Metrics::global().actors.with_label_values(&["kafka_source"]).dec();
    }
}

impl Handler<Rebalancing> for KafkaSource {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, step: Rebalancing, ctx: &mut Context<Self>) -> Self::Result {
        match step {
            Rebalancing::Assigned(partitions, ack) => {
                // Taking ownership waits on the database (and, on PostgreSQL, on the last
                // steps of the previous owner): do it beside the rebalance, not in it.
                for partition in partitions {
                    self.generation += 1;
                    let generation = self.generation;
                    self.assigning.insert(partition, generation);
                    let (db, node) = (self.config.db.clone(), self.config.node_id.clone());
                    let acquire = async move {
                        let on_retry = |e: &crate::storage::StorageError, _: u32, _: Duration| {
                            tracing::warn!(partition, error = %e, "taking ownership failed, retrying");
                        };
                        retry::retry(
                            &SystemClock,
                            Backoff::STORAGE,
                            None,
                            || false,
                            on_retry,
                            || ownership::acquire(&db, partition, &node, chrono::Utc::now()),
                        )
                        .await
                    };
                    ctx.spawn(acquire.into_actor(self).map(move |acquired, act, ctx| {
                        if act.assigning.get(&partition) != Some(&generation) {
                            return; // revoked meanwhile
                        }
                        act.assigning.remove(&partition);
                        match acquired {
                            Retried::Ok(fence) => {
                                tracing::info!(partition, epoch = fence.epoch, "partition owned");
                                act.config.ownership.grant(fence);
                                act.start_reader(fence, ctx);
                                act.config.assigned.do_send(Poll);
                            }
                            Retried::Failed { error, .. } => {
                                tracing::error!(partition, error = %error, "cannot take ownership of the partition")
                            }
                        }
                    }));
                }
                let _ = ack.send(());
                Box::pin(fut::ready(()))
            }
            Rebalancing::Revoked(partitions, ack) => {
                let handed_over = self.hand_over(&partitions);
                Box::pin(
                    async move {
                        handed_over.await;
                        let _ = ack.send(());
                    }
                    .into_actor(self),
                )
            }
        }
    }
}

impl Handler<ReaderEnded> for KafkaSource {
    type Result = ();

    fn handle(&mut self, msg: ReaderEnded, ctx: &mut Context<Self>) {
        let fence = msg.fence;
        ctx.run_later(READER_RESTART, move |act, ctx| {
            if !act.config.ownership.holds(fence) {
                return;
            }
            tracing::warn!(
                partition = fence.partition,
                resume_at = msg.resume_at,
                "restarting a stopped partition reader"
            );
            Metrics::global().reader_restarts.inc();
            let offset = msg.resume_at;
            let seek = act.consumer.seek(
                &act.config.topic,
                fence.partition,
                Offset::Offset(offset),
                Duration::from_secs(5),
            );
            if let Err(e) = seek {
                tracing::warn!(partition = fence.partition, offset, error = %e, "seek before restart failed");
            }
            act.start_reader(fence, ctx);
        });
    }
}

/// How long a shutdown waits for the consumer to give up its assignment.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

impl Handler<Shutdown> for KafkaSource {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        let mut partitions: Vec<i32> = self.readers.keys().copied().collect();
        partitions.extend(self.config.ownership.partitions());
        partitions.extend(self.assigning.keys().copied());
        partitions.sort_unstable();
        partitions.dedup();
        let handed_over = self.hand_over(&partitions);
        let consumer = Arc::clone(&self.consumer);
        Box::pin(
            async move {
                handed_over.await;
                // Unsubscribing revokes the assignment through the driver's rebalance
                // callback, which hands the revoke to this actor and waits for its answer,
                // then leaves the group. Stay until the revoke is through (the partitions
                // are handed over already, so it only commits).
                consumer.unsubscribe();
                let deadline = Instant::now() + LEAVE_WAIT;
                while consumer.assignment().is_ok_and(|a| a.count() > 0) && Instant::now() < deadline {
                    actix_rt::time::sleep(Duration::from_millis(20)).await;
                }
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        )
    }
}
