//! Kafka consumption: one consumer in the group, one [`PartitionConsumer`] actor per
//! assigned partition.
//!
//! As in vector's Kafka source: the main consumer is polled on its own thread so rebalance
//! callbacks fire; on assignment the [`KafkaSource`] splits a queue per partition
//! (`split_partition_queue`) and starts an actor for it; on revocation the partition's
//! actor drains (waits for what it handed over to be recorded, stores the offset, commits)
//! before the callback returns. Offsets are stored only once an event matched nothing or
//! its runs are durably recorded, strictly in offset order, so a crash replays, never
//! loses. An envelope that cannot be decoded goes to the dead-letter topic with the reason
//! and its original bytes; the partition keeps going.

use super::metrics::{Mailbox, Metrics};
use super::scheduler::Poll;
use crate::envelope::EventEnvelope;
use actix::prelude::*;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// An event handed to the engine. `recorded` is completed once the event's runs are
/// durably recorded (or it matched nothing); dropping it unanswered means "not recorded"
/// and stops the partition before its offset is stored.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Route {
    pub event: EventEnvelope,
    pub partition: i32,
    pub offset: i64,
    pub recorded: oneshot::Sender<()>,
}

/// Sent before a partition is consumed: resume the runs of this partition that a previous
/// owner recorded but did not finish, so they keep their place before newer events.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, String>")]
pub struct RecoverPartition {
    pub partition: i32,
}

/// The partitions this process owns, shared with the scheduler (which resumes only delays
/// of owned partitions).
pub type OwnedPartitions = Arc<RwLock<BTreeSet<i32>>>;

/// A rebalance step reported by the consumer's callback thread, answered once handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
enum Rebalancing {
    Assigned(Vec<i32>, std::sync::mpsc::SyncSender<()>),
    Revoked(Vec<i32>, std::sync::mpsc::SyncSender<()>),
}

/// The consumer's context: forwards rebalances to the [`KafkaSource`] and waits until it
/// has split (assign) or drained (revoke) the partitions, and exports lag from statistics.
pub struct EngineContext {
    topic: String,
    rebalances: mpsc::UnboundedSender<Rebalancing>,
}

/// How long a rebalance callback waits for partitions to be split or drained.
const REBALANCE_WAIT: Duration = Duration::from_secs(60);

impl EngineContext {
    fn partitions(&self, tpl: &TopicPartitionList) -> Vec<i32> {
        tpl.elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    fn forward(&self, make: impl FnOnce(std::sync::mpsc::SyncSender<()>) -> Rebalancing) {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.rebalances.send(make(tx)).is_ok() && rx.recv_timeout(REBALANCE_WAIT).is_err() {
            tracing::error!("rebalance step not handled within {REBALANCE_WAIT:?}");
        }
    }
}

impl ClientContext for EngineContext {
    fn stats(&self, statistics: Statistics) {
        let metrics = Metrics::global();
        if let Some(topic) = statistics.topics.get(&self.topic) {
            for (partition, p) in &topic.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics
                        .consumer_lag
                        .with_label_values(&[&partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let partitions = self.partitions(tpl);
            tracing::info!(?partitions, "partitions revoked");
            self.forward(|ack| Rebalancing::Revoked(partitions, ack));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = self.partitions(tpl);
                tracing::info!(?partitions, "partitions assigned");
                self.forward(|ack| Rebalancing::Assigned(partitions, ack));
            }
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

pub type EngineConsumer = StreamConsumer<EngineContext>;

/// Where undecodable events go, with the reason and their original bytes.
#[derive(Clone)]
pub struct DeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
}

impl DeadLetters {
    /// Publishes `message` to the dead-letter topic, retrying until it is acknowledged or
    /// `stop` is raised: the offset must not pass an event that is neither processed nor
    /// dead-lettered.
    async fn publish(&self, message: &OwnedMessage, reason: &str, stop: &watch::Receiver<bool>) -> bool {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "wfe-error",
                value: Some(reason),
            })
            .insert(Header {
                key: "wfe-source-topic",
                value: Some(message.topic()),
            })
            .insert(Header {
                key: "wfe-source-partition",
                value: Some(&message.partition().to_string()),
            })
            .insert(Header {
                key: "wfe-source-offset",
                value: Some(&message.offset().to_string()),
            });
        let key = message.key().map(String::from_utf8_lossy).unwrap_or_default();
        let payload = message.payload().unwrap_or_default();
        let mut wait = Duration::from_millis(100);
        loop {
            match crate::kafka::publish(&self.producer, &self.topic, &key, payload, Some(headers.clone())).await {
                Ok(_) => return true,
                Err(e) => {
                    tracing::error!(error = %e, partition = message.partition(), offset = message.offset(), "dead-letter publish failed, retrying");
                    if *stop.borrow() {
                        return false;
                    }
                    actix_rt::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// Client settings of the engine's consumer: offsets stored by hand after processing,
/// committed in the background and on drain.
pub fn consumer_config(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = crate::kafka::base_config(brokers);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("statistics.interval.ms", "5000");
    config
}

/// Coordinates partitions: splits queues and starts, drains and stops partition actors.
pub struct KafkaSource {
    consumer: Arc<EngineConsumer>,
    topic: String,
    sink: Recipient<Route>,
    recovery: Recipient<RecoverPartition>,
    dead_letters: DeadLetters,
    in_flight: usize,
    owned: OwnedPartitions,
    assigned: Recipient<Poll>,
    partitions: HashMap<i32, Addr<PartitionConsumer>>,
    rebalances: Option<mpsc::UnboundedReceiver<Rebalancing>>,
    driver: Option<Arbiter>,
}

/// What a [`KafkaSource`] needs.
pub struct SourceConfig {
    pub brokers: String,
    pub group_id: String,
    pub topic: String,
    pub in_flight_per_partition: usize,
    pub dead_letters: DeadLetters,
    pub sink: Recipient<Route>,
    pub recovery: Recipient<RecoverPartition>,
    pub owned: OwnedPartitions,
    /// Told when partitions are assigned, so their due delays are looked at now rather
    /// than at the next poll (the scheduler).
    pub assigned: Recipient<Poll>,
}

impl KafkaSource {
    pub fn new(config: SourceConfig) -> Result<Self, crate::kafka::KafkaError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let context = EngineContext {
            topic: config.topic.clone(),
            rebalances: tx,
        };
        let consumer: EngineConsumer =
            consumer_config(&config.brokers, &config.group_id).create_with_context(context)?;
        consumer.subscribe(&[&config.topic])?;
        Ok(Self {
            consumer: Arc::new(consumer),
            topic: config.topic,
            sink: config.sink,
            recovery: config.recovery,
            dead_letters: config.dead_letters,
            in_flight: config.in_flight_per_partition.max(1),
            owned: config.owned,
            assigned: config.assigned,
            partitions: HashMap::new(),
            rebalances: Some(rx),
            driver: None,
        })
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
        let topic = self.topic.clone();
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

    fn handle(&mut self, step: Rebalancing, _ctx: &mut Context<Self>) -> Self::Result {
        match step {
            Rebalancing::Assigned(partitions, ack) => {
                for partition in partitions {
                    let Some(queue) = self.consumer.split_partition_queue(&self.topic, partition) else {
                        tracing::error!(partition, "cannot split the partition queue");
                        continue;
                    };
                    if let Some(old) = self.partitions.remove(&partition) {
                        old.do_send(Drain);
                    }
                    let actor = PartitionConsumer {
                        partition,
                        topic: self.topic.clone(),
                        queue: Some(queue),
                        consumer: Arc::clone(&self.consumer),
                        sink: self.sink.clone(),
                        recovery: self.recovery.clone(),
                        dead_letters: self.dead_letters.clone(),
                        window: self.in_flight,
                        stop: watch::channel(false).0,
                        finished: watch::channel(false).0,
                        sink_mailbox: Metrics::global().mailbox("matcher"),
                    };
                    self.partitions.insert(partition, actor.start());
                    if let Ok(mut owned) = self.owned.write() {
                        owned.insert(partition);
                    }
                }
                self.assigned.do_send(Poll);
                let _ = ack.send(());
                Box::pin(fut::ready(()))
            }
            Rebalancing::Revoked(partitions, ack) => {
                let drains: Vec<_> = partitions
                    .iter()
                    .filter_map(|p| self.partitions.remove(p))
                    .map(|addr| addr.send(Drain))
                    .collect();
                if let Ok(mut owned) = self.owned.write() {
                    for p in &partitions {
                        owned.remove(p);
                    }
                }
                let consumer = Arc::clone(&self.consumer);
                Box::pin(
                    async move {
                        futures_util::future::join_all(drains).await;
                        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                            tracing::debug!(error = %e, "commit on revoke");
                        }
                        let _ = ack.send(());
                    }
                    .into_actor(self),
                )
            }
        }
    }
}

/// How long a shutdown waits for the consumer to give up its assignment.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

/// Stop consuming: drain every partition, commit, leave the group.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for KafkaSource {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        let drains: Vec<_> = self.partitions.drain().map(|(_, addr)| addr.send(Drain)).collect();
        if let Ok(mut owned) = self.owned.write() {
            owned.clear();
        }
        let consumer = Arc::clone(&self.consumer);
        Box::pin(
            async move {
                futures_util::future::join_all(drains).await;
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(error = %e, "final commit");
                }
                // Unsubscribing revokes the assignment through the driver's rebalance
                // callback, which hands the revoke to this actor and waits for its answer,
                // then leaves the group. Stay until the revoke is through (the partitions
                // are drained already, so it only commits): stopping at once dropped the
                // callback's answer, which logged a bogus "not handled" error on every
                // graceful stop.
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

/// Stop reading, wait for what was handed over, store and commit the last offset.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Consumes one partition.
pub struct PartitionConsumer {
    partition: i32,
    topic: String,
    queue: Option<StreamPartitionQueue<EngineContext>>,
    consumer: Arc<EngineConsumer>,
    sink: Recipient<Route>,
    recovery: Recipient<RecoverPartition>,
    dead_letters: DeadLetters,
    window: usize,
    stop: watch::Sender<bool>,
    finished: watch::Sender<bool>,
    sink_mailbox: Mailbox,
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global()
            .actors
            .with_label_values(&["partition_consumer"])
            .inc();
        let Some(queue) = self.queue.take() else { return };
        let run = Consume {
            partition: self.partition,
            topic: self.topic.clone(),
            consumer: Arc::clone(&self.consumer),
            sink: self.sink.clone(),
            recovery: self.recovery.clone(),
            dead_letters: self.dead_letters.clone(),
            window: self.window,
            stop: self.stop.subscribe(),
            sink_mailbox: self.sink_mailbox.clone(),
        };
        let finished = self.finished.clone();
        ctx.spawn(
            async move {
                run.run(queue).await;
                let _ = finished.send(true);
            }
            .into_actor(self)
            .map(|_, _, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global()
            .actors
            .with_label_values(&["partition_consumer"])
            .dec();
    }
}

impl Handler<Drain> for PartitionConsumer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: Drain, _ctx: &mut Context<Self>) -> Self::Result {
        let _ = self.stop.send(true);
        let mut finished = self.finished.subscribe();
        Box::pin(async move {
            let _ = finished.wait_for(|done| *done).await;
        })
    }
}

/// The partition's read loop, owning what it needs so it can run beside the actor.
struct Consume {
    partition: i32,
    topic: String,
    consumer: Arc<EngineConsumer>,
    sink: Recipient<Route>,
    recovery: Recipient<RecoverPartition>,
    dead_letters: DeadLetters,
    window: usize,
    stop: watch::Receiver<bool>,
    sink_mailbox: Mailbox,
}

/// How long a draining partition waits for handed-over events to be recorded.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

impl Consume {
    async fn run(mut self, queue: StreamPartitionQueue<EngineContext>) {
        let partition = self.partition;
        // Unfinished runs of this partition go first, so per-customer order holds across
        // restarts and handovers.
        loop {
            match self.recovery.send(RecoverPartition { partition }).await {
                Ok(Ok(resumed)) => {
                    if resumed > 0 {
                        tracing::info!(partition, resumed, "resumed unfinished runs");
                    }
                    break;
                }
                Ok(Err(e)) => tracing::error!(partition, error = %e, "recovery failed, retrying"),
                Err(e) => tracing::error!(partition, error = %e, "recovery unavailable, retrying"),
            }
            if *self.stop.borrow() {
                return;
            }
            actix_rt::time::sleep(Duration::from_secs(1)).await;
        }
        let metrics = Metrics::global();
        let label = partition.to_string();
        let mut pending = FuturesOrdered::new();
        let mut stopped_early = false;
        loop {
            let can_read = pending.len() < self.window;
            tokio::select! {
                biased;
                _ = self.stop.changed() => break,
                Some((offset, recorded)) = pending.next(), if !pending.is_empty() => {
                    let recorded: Result<(), oneshot::error::RecvError> = recorded;
                    if recorded.is_err() {
                        tracing::warn!(partition, offset, "event not recorded; stopping before its offset");
                        stopped_early = true;
                        break;
                    }
                    self.store(offset, &label);
                }
                message = queue.recv(), if can_read => {
                    let message = match message {
                        Ok(m) => m.detach(),
                        Err(e) => {
                            tracing::warn!(partition, error = %e, "partition read failed");
                            continue;
                        }
                    };
                    match self.hand_over(message).await {
                        Some(entry) => pending.push_back(entry),
                        None => { stopped_early = true; break; }
                    }
                }
            }
        }
        // Drain: wait for what was handed over, storing offsets in order.
        if !stopped_early {
            let deadline = Instant::now() + DRAIN_WAIT;
            while let Ok(Some((offset, recorded))) = tokio::time::timeout_at(deadline.into(), pending.next()).await {
                if recorded.is_err() {
                    break;
                }
                self.store(offset, &label);
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(partition, error = %e, "commit on drain");
        }
        metrics.consumer_lag.with_label_values(&[&label]).set(0);
        tracing::info!(partition, "partition drained");
    }

    fn store(&self, offset: i64, label: &str) {
        match self.consumer.store_offset(&self.topic, self.partition, offset) {
            Ok(()) => Metrics::global()
                .committed_offset
                .with_label_values(&[label])
                .set(offset + 1),
            Err(e) => tracing::warn!(partition = self.partition, offset, error = %e, "offset store failed"),
        }
    }

    /// Decodes one message and hands it to the engine, or dead-letters it. Returns the
    /// pending entry whose completion allows storing the offset; `None` when stopping.
    async fn hand_over(
        &mut self,
        message: OwnedMessage,
    ) -> Option<impl std::future::Future<Output = (i64, Result<(), oneshot::error::RecvError>)>> {
        let offset = message.offset();
        let decoded = match message.payload() {
            None => Err("empty message".to_owned()),
            Some(bytes) => EventEnvelope::decode(bytes).map_err(|e| e.to_string()),
        };
        let (tx, rx) = oneshot::channel();
        match decoded {
            Err(reason) => {
                tracing::warn!(partition = self.partition, offset, reason = %reason, "dead-lettering undecodable event");
                Metrics::global()
                    .events
                    .with_label_values(&["unknown", "dead_lettered"])
                    .inc();
                if !self.dead_letters.publish(&message, &reason, &self.stop).await {
                    return None;
                }
                let _ = tx.send(());
            }
            Ok(mut event) => {
                if event.occurred_at.is_none() {
                    event.occurred_at = message
                        .timestamp()
                        .to_millis()
                        .and_then(chrono::DateTime::from_timestamp_millis);
                }
                let route = Route {
                    event,
                    partition: self.partition,
                    offset,
                    recorded: tx,
                };
                self.sink_mailbox.sent();
                let waited = Instant::now();
                if self.sink.send(route).await.is_err() {
                    tracing::error!(partition = self.partition, offset, "engine unavailable");
                    return None;
                }
                self.sink_mailbox.waited(waited.elapsed());
            }
        }
        Some(async move { (offset, rx.await) })
    }
}
