//! Reads one partition: decodes each message, hands the event to the engine (or the
//! dead-letter topic) and stores its offset once the engine recorded it, strictly in
//! offset order, so a crash replays, never loses. An envelope that cannot be decoded goes
//! to the dead-letter topic with the reason and its original bytes; so does an event the
//! engine refused after decoding it (an id already taken by another event, security issue
//! 22), once the engine says so. Either way the partition goes on.
//!
//! Before it reads, it asks the engine to resume the runs a previous owner left
//! unfinished, so they keep their place before newer events. If it stops by itself (an
//! event was not recorded) while its partition is still owned, it tells its source, which
//! starts a new reader from the first offset not stored.

use super::protocol::{Drain, ReaderEnded, ReaderSpec, RecoverPartition, Route};
use crate::clock::SystemClock;
use crate::envelope::EventEnvelope;
use crate::kafka::consumer::BROKER_BACKOFF;
use crate::kafka::{DeadLetters, EngineConsumer, EngineContext};
use crate::metrics::{Mailbox, Metrics};
use crate::retry::{self, Retried};
use crate::runner::Handled;
use crate::storage::ownership::Fence;
use crate::trace::TraceParent;
use actix::prelude::*;
use futures_util::stream::{FuturesOrdered, StreamExt};
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Consumes one partition.
pub struct PartitionConsumer {
    spec: Option<ReaderSpec>,
    stop: watch::Sender<bool>,
    finished: watch::Sender<bool>,
}

impl PartitionConsumer {
    pub fn new(spec: ReaderSpec) -> Self {
        Self {
            spec: Some(spec),
            stop: watch::channel(false).0,
            finished: watch::channel(false).0,
        }
    }
}

impl Actor for PartitionConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global()
            .actors
            .with_label_values(&["partition_consumer"])
            .inc();
        let Some(spec) = self.spec.take() else { return };
        let ended = spec.ended.clone();
        let run = Consume {
            fence: spec.fence,
            topic: spec.topic,
            consumer: spec.consumer,
            sink: spec.sink,
            recovery: spec.recovery,
            dead_letters: spec.dead_letters,
            window: spec.window.max(1),
            stop: self.stop.subscribe(),
            sink_mailbox: Metrics::global().mailbox("matcher"),
        };
        let finished = self.finished.clone();
        let fence = run.fence;
        let queue = spec.queue;
        ctx.spawn(
            async move {
                let outcome = run.run(queue).await;
                if let Ended::ByItself { resume_at } = outcome {
                    ended.do_send(ReaderEnded { fence, resume_at });
                }
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

/// How a partition's read loop ended.
enum Ended {
    /// Asked to stop (drain, revoke, shutdown).
    Drained,
    /// An event was not recorded (or the engine is gone): read again from `resume_at`.
    ByItself { resume_at: i64 },
}

/// The partition's read loop, owning what it needs so it can run beside the actor.
struct Consume {
    fence: Fence,
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
    async fn run(mut self, queue: StreamPartitionQueue<EngineContext>) -> Ended {
        let partition = self.fence.partition;
        // Unfinished runs of this partition go first, so per-customer order holds across
        // restarts and handovers.
        let stop = self.stop.clone();
        let recovered = retry::retry(
            &SystemClock,
            BROKER_BACKOFF,
            None,
            || *stop.borrow(),
            |e: &RecoveryError, _, _| tracing::error!(partition, error = %e.0, "recovery failed, retrying"),
            || async {
                match self.recovery.send(RecoverPartition { fence: self.fence }).await {
                    Ok(Ok(n)) => Ok(n),
                    Ok(Err(e)) => Err(RecoveryError(e)),
                    Err(e) => Err(RecoveryError(e.to_string())),
                }
            },
        );
        match recovered.await {
            Retried::Ok(0) => {}
            Retried::Ok(resumed) => tracing::info!(partition, resumed, "resumed unfinished runs"),
            Retried::Failed { .. } => return Ended::Drained,
        }
        let label = partition.to_string();
        let mut pending = FuturesOrdered::new();
        let mut ended = Ended::Drained;
        loop {
            let can_read = pending.len() < self.window;
            tokio::select! {
                biased;
                _ = self.stop.changed() => break,
                Some((offset, recorded)) = pending.next(), if !pending.is_empty() => {
                    let recorded: bool = recorded;
                    if !recorded {
                        tracing::warn!(partition, offset, "event not recorded; stopping before its offset");
                        ended = Ended::ByItself { resume_at: offset };
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
                    let offset = message.offset();
                    match self.hand_over(message).await {
                        Some(entry) => pending.push_back(entry),
                        None => {
                            if !*self.stop.borrow() {
                                ended = Ended::ByItself { resume_at: offset };
                            }
                            break;
                        }
                    }
                }
            }
        }
        // Drain: wait for what was handed over, storing offsets in order.
        if matches!(ended, Ended::Drained) {
            let deadline = Instant::now() + DRAIN_WAIT;
            while let Ok(Some((offset, recorded))) = tokio::time::timeout_at(deadline.into(), pending.next()).await {
                if !recorded {
                    break;
                }
                self.store(offset, &label);
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(partition, error = %e, "commit on drain");
        }
        Metrics::global().consumer_lag.with_label_values(&[&label]).set(0);
        tracing::info!(partition, "partition reader stopped");
        ended
    }

    fn store(&self, offset: i64, label: &str) {
        match self.consumer.store_offset(&self.topic, self.fence.partition, offset) {
            Ok(()) => Metrics::global()
                .committed_offset
                .with_label_values(&[label])
                .set(offset + 1),
            Err(e) => tracing::warn!(partition = self.fence.partition, offset, error = %e, "offset store failed"),
        }
    }

    /// Decodes one message and hands it to the engine, or dead-letters it. Returns the
    /// pending entry: it completes with the offset and whether it may be stored (the event
    /// was recorded, or dead-lettered: at once when undecodable, after the engine's answer
    /// when refused); `None` when stopping.
    async fn hand_over(&mut self, message: OwnedMessage) -> Option<impl std::future::Future<Output = (i64, bool)>> {
        let offset = message.offset();
        let decoded = match message.payload() {
            None => Err("empty message".to_owned()),
            Some(bytes) => EventEnvelope::decode(bytes).map_err(|e| e.to_string()),
        };
        let (tx, rx) = oneshot::channel();
        match decoded {
            Err(reason) => {
                tracing::warn!(partition = self.fence.partition, offset, reason = %reason, "dead-lettering undecodable event");
                Metrics::global()
                    .events
                    .with_label_values(&["unknown", "dead_lettered"])
                    .inc();
                if !self.dead_letters.publish(&message, &reason, &self.stop).await {
                    return None;
                }
                let _ = tx.send(Handled::Recorded);
            }
            Ok(mut event) => {
                event.trace = message.headers().and_then(|headers| {
                    headers
                        .iter()
                        .find(|h| h.key.eq_ignore_ascii_case(crate::trace::HEADER))
                        .and_then(|h| TraceParent::from_header(h.value))
                });
                if event.occurred_at.is_none() {
                    event.occurred_at = message
                        .timestamp()
                        .to_millis()
                        .and_then(chrono::DateTime::from_timestamp_millis);
                    event.occurred_at_stamped = event.occurred_at.is_some();
                }
                let route = Route {
                    event,
                    fence: self.fence,
                    offset,
                    recorded: tx,
                };
                self.sink_mailbox.sent();
                let waited = Instant::now();
                if self.sink.send(route).await.is_err() {
                    tracing::error!(partition = self.fence.partition, offset, "engine unavailable");
                    return None;
                }
                self.sink_mailbox.waited(waited.elapsed());
            }
        }
        // The message waits with its entry: a refused event goes to the dead-letter topic
        // with its original bytes, as an undecodable one does. The window bounds how many.
        let dead_letters = self.dead_letters.clone();
        let stop = self.stop.clone();
        Some(async move {
            let may_store = match rx.await {
                Ok(Handled::Recorded) => true,
                Ok(Handled::Refused(reason)) => {
                    tracing::warn!(partition = message.partition(), offset, reason = %reason, "dead-lettering refused event");
                    dead_letters.publish(&message, &reason, &stop).await
                }
                Err(_) => false,
            };
            (offset, may_store)
        })
    }
}

/// Why recovery could not be asked for.
#[derive(Debug)]
struct RecoveryError(String);

impl crate::retry::Classify for RecoveryError {
    fn verdict(&self) -> crate::retry::Verdict {
        crate::retry::Verdict::Transient
    }
}
