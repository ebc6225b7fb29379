//! The wiring: which actor starts where, with which mailbox capacity, and how the whole
//! stops. The only module that names concrete actors: the others hold `Recipient`s of the
//! messages in [`protocol`](super::protocol).
//!
//! ```text
//! KafkaSource ─ PartitionConsumer (per partition) ─Route→ Matcher ─Execute→ Executor (per customer,
//!                    │ dead letters → DLQ topic          │ Resume ↑          on N arbiters)
//!                    └ RecoverPartition ───────────────→ │        Scheduler ←Wake─┘ │ Deliver
//!                                                                           DeliveryPool (awc)
//! OutboxRelay: emitted events of owned partitions, from the outbox → the events topic
//! Archiver: every routed event, offered by the Matcher (try_send) → the event archive
//! ActivityWriter: events no workflow can act on, from the Matcher → last_activity_at
//! ```

use super::activity::ActivityWriter;
use super::archiver::Archiver;
use super::delivery::DeliveryPool;
use super::executor::Executor;
use super::kafka_source::{KafkaSource, SourceConfig};
use super::matcher::{ExecutorHandle, Matcher, SpawnExecutor};
use super::outbox_relay::OutboxRelay;
use super::partition_consumer::PartitionConsumer;
use super::protocol::{Halt, Reload, Shutdown, Wake};
use super::scheduler::{Scheduler, SchedulerConfig};
use crate::kafka::DeadLetters;
use crate::metrics::Metrics;
use crate::outbound::pace::Pace;
use crate::outbound::send::{Deliver, DeliveryPolicy, DeliveryReport};
use crate::runner::{Outbound, Ownership, Runner, Wakeup};
use crate::settings::Settings;
use crate::storage::Database;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
}

/// The running engine.
pub struct Topology {
    pub matcher: Addr<Matcher>,
    pub source: Addr<KafkaSource>,
    pub scheduler: Addr<Scheduler>,
    pub relay: Addr<OutboxRelay>,
    /// The backtest archive's writer, unless `archive.enabled` is off.
    pub archiver: Option<Addr<Archiver>>,
    /// Writes the activity of events no workflow can act on (`engine.activity_flush_ms`).
    pub activity: Option<Addr<ActivityWriter>>,
    pub delivery: DeliveryPool,
    pub ownership: Ownership,
    pub producer: FutureProducer,
    arbiters: Vec<Arbiter>,
}

/// How long shutdown waits, after the hand-over, for executors to finish what they hold.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Outbound for DeliveryPool {
    fn deliver(&self, request: Deliver) -> LocalBoxFuture<'static, DeliveryReport> {
        let pool = self.clone();
        Box::pin(async move { pool.deliver(request).await })
    }
}

impl Wakeup for Recipient<Wake> {
    fn wake(&self, due_at: DateTime<Utc>) {
        self.do_send(Wake { due_at });
    }
}

impl Topology {
    /// Starts every actor. Call inside a running actix system.
    pub fn start(settings: &Settings, db: Database, brokers: &str) -> Result<Self, TopologyError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let shards = if settings.engine.arbiters == 0 {
            cores
        } else {
            settings.engine.arbiters
        };
        let arbiters: Vec<Arbiter> = (0..shards.max(1)).map(|_| Arbiter::new()).collect();
        let handles: Arc<[ArbiterHandle]> = arbiters.iter().map(Arbiter::handle).collect();
        let producer = crate::kafka::producer_with(brokers, &settings.kafka.properties)?;
        let d = &settings.delivery;
        let keyring = Arc::new(crate::outbound::signing::Keyring::default());
        let policy = DeliveryPolicy {
            timeout: Duration::from_millis(d.timeout_ms),
            max_attempts: d.max_attempts.max(1),
            backoff_initial: Duration::from_millis(d.backoff_initial_ms),
            backoff_max: Duration::from_millis(d.backoff_max_ms),
            allowlist: d.webhook_allowlist.clone(),
            trusted: vec![d.email_url.clone()],
            keyring: Arc::clone(&keyring),
        };
        let delivery_lease = policy.lease();
        let clock = crate::clock::system();
        let pace = Pace::new(d.concurrency, Some(db.clone()), Arc::clone(&clock));
        let delivery = DeliveryPool::start(shards.min(4), pace, policy);
        let ownership = Ownership::default();
        let node_id = settings.node_id();

        // The scheduler and the executors know each other: create the scheduler's context
        // first so its address exists before the matcher and executors start.
        let scheduler_ctx = Context::<Scheduler>::new();
        let runner = Arc::new(Runner {
            db: db.clone(),
            clock: Arc::clone(&clock),
            outbound: Arc::new(delivery.clone()),
            wakeup: Arc::new(scheduler_ctx.address().recipient::<Wake>()),
            ownership: ownership.clone(),
            integrations: crate::outbound::Integrations {
                email_url: d.email_url.clone(),
                email_rate_per_sec: Some(d.email_rate_per_sec).filter(|n| *n > 0),
                webhook_secret: d.webhook_secret.clone(),
                keyring,
            },
            node_id: node_id.clone(),
            max_step_attempts: settings.engine.max_step_attempts.max(1),
            max_cascade_depth: settings.engine.max_cascade_depth,
            max_cascade_runs: settings.engine.max_cascade_runs,
            max_waits_per_customer: settings.engine.max_waits_per_customer,
            delivery_lease,
            delay_override: match settings.scheduler.delay_override_secs {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            batches: crate::runner::batch::Batches::new(settings.engine.batch_max),
            sync_customers: settings.engine.sync_customers,
        });
        let executor_capacity = settings.engine.executor_mailbox.max(1);
        let executor_mailbox = Metrics::global().mailbox("executor");
        executor_mailbox.set_capacity(executor_capacity);
        let idle = Duration::from_secs(settings.engine.executor_idle_secs.max(1));
        let spawn: SpawnExecutor = Arc::new(move |customer_id, router| {
            // A customer always lands on the same arbiter.
            let shard = customer_id.unsigned_abs() as usize % handles.len().max(1);
            let (runner, mailbox) = (Arc::clone(&runner), executor_mailbox.clone());
            let addr = Executor::start_in_arbiter(&handles[shard], move |ctx| {
                ctx.set_mailbox_capacity(executor_capacity);
                Executor::new(customer_id, runner, router, mailbox, idle)
            });
            ExecutorHandle {
                execute: addr.clone().recipient(),
                stop: addr.recipient(),
            }
        });
        let matcher_arbiter = Arbiter::new();
        let (limits, poll) = (
            settings.limits,
            Duration::from_millis(settings.engine.workflow_poll_ms.max(100)),
        );
        let matcher_capacity = settings.engine.matcher_mailbox;
        let matcher_db = db.clone();
        let sync_customers = settings.engine.sync_customers;
        Metrics::global().mailbox("matcher").set_capacity(matcher_capacity);
        let a = &settings.archive;
        let archiver = a.enabled.then(|| {
            let (archive_db, batch, flush) = (db.clone(), a.batch_size(), Duration::from_millis(a.flush_ms.max(1)));
            let capacity = a.mailbox.max(1);
            Metrics::global().mailbox("archiver").set_capacity(capacity);
            Archiver::create(move |ctx| {
                ctx.set_mailbox_capacity(capacity);
                Archiver::new(archive_db, batch, flush)
            })
        });
        let archive_to = archiver.as_ref().map(|a| a.clone().recipient());
        let activity = (sync_customers && settings.engine.activity_flush_ms > 0).then(|| {
            let (activity_db, flush) = (db.clone(), Duration::from_millis(settings.engine.activity_flush_ms));
            let capacity = matcher_capacity.max(1);
            Metrics::global().mailbox("activity").set_capacity(capacity);
            ActivityWriter::create(move |ctx| {
                ctx.set_mailbox_capacity(capacity);
                ActivityWriter::new(activity_db, crate::storage::sync::MAX_TOUCH_ROWS, flush)
            })
        });
        let activity_to = activity.as_ref().map(|a| a.clone().recipient());
        let matcher = Matcher::start_in_arbiter(&matcher_arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(matcher_capacity);
            let mut matcher = Matcher::new(matcher_db, limits, poll, spawn).with_customer_sync(sync_customers);
            if let Some(writer) = activity_to {
                matcher = matcher.with_activity(writer);
            }
            match archive_to {
                Some(archiver) => matcher.with_archive(archiver),
                None => matcher,
            }
        });
        let s = &settings.scheduler;
        let scheduler = scheduler_ctx.run(Scheduler::new(
            db.clone(),
            Arc::clone(&clock),
            matcher.clone().recipient(),
            ownership.clone(),
            SchedulerConfig {
                node_id: node_id.clone(),
                poll: Duration::from_secs(s.poll_interval_secs.max(1)),
                lease: Duration::from_secs(s.lease_secs.max(1)),
                batch: s.claim_batch.max(1),
                emit_task_overdue: s.emit_task_overdue,
                inactive_days: s.inactive_days.clone(),
            },
        ));
        let relay = OutboxRelay::new(
            db.clone(),
            producer.clone(),
            settings.kafka.topic.clone(),
            Duration::from_millis(500),
            node_id.clone(),
            ownership.clone(),
        )
        .journaled(settings.kafka.is_embedded())
        .start();
        crate::retention::spawn(db.clone(), settings.retention.clone(), settings.archive.clone());
        crate::rollup::spawn(db.clone());
        let source = KafkaSource::new(SourceConfig {
            brokers: brokers.to_owned(),
            group_id: settings.kafka.group_id.clone(),
            kafka: settings.kafka.clone(),
            topic: settings.kafka.topic.clone(),
            node_id,
            db,
            in_flight_per_partition: settings.kafka.in_flight_per_partition,
            dead_letters: DeadLetters {
                producer: producer.clone(),
                topic: settings.kafka.dead_letter_topic.clone(),
            },
            sink: matcher.clone().recipient(),
            recovery: matcher.clone().recipient(),
            ownership: ownership.clone(),
            assigned: scheduler.clone().recipient(),
            spawn_reader: Arc::new(|spec| PartitionConsumer::new(spec).start().recipient()),
        })?
        .start();
        let mut arbiters = arbiters;
        arbiters.push(matcher_arbiter);
        Ok(Self {
            matcher,
            source,
            scheduler,
            relay,
            archiver,
            activity,
            delivery,
            ownership,
            producer,
            arbiters,
        })
    }

    /// Whether the consumer has joined the group and owns partitions.
    pub fn consuming(&self) -> bool {
        !self.ownership.partitions().is_empty()
    }

    /// Where the API asks for the workflow set to be rebuilt after a change.
    pub fn reload(&self) -> Recipient<Reload> {
        self.matcher.clone().recipient()
    }

    /// Graceful stop: hand every partition over (stop reading, drop queued work, wait for
    /// running steps, commit), stop the scheduler and the relay, give executors a moment
    /// to empty their mailboxes, then stop the threads. What was not finished is recorded
    /// and resumed by the next owner of its partition.
    pub async fn shutdown(self) {
        let _ = self.source.send(Shutdown).await;
        let _ = self.scheduler.send(Halt).await;
        let _ = self.relay.send(Halt).await;
        if let Some(archiver) = &self.archiver {
            let _ = archiver.send(Halt).await;
        }
        // After the hand-over, whose drain waits for the writer's answers.
        if let Some(activity) = &self.activity {
            let _ = activity.send(Halt).await;
        }
        let metrics = Metrics::global();
        let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
        while std::time::Instant::now() < deadline && metrics.mailbox("executor").depth() > 0 {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        for arbiter in self.arbiters {
            arbiter.stop();
        }
    }
}
