//! The outbox relay: publishes the events the engine emits (customer.status_changed from
//! set_status, compliance.freeze_requested, task.overdue, customer.inactive_days) from
//! the outbox to the topic, so they are emitted once their cause is committed and never
//! lost: a row is marked delivered only after the broker acknowledged it.
//!
//! Each process's relay claims (for a lease) the rows of the partitions it owns, and the
//! rows of no partition, so N processes publish each event once, and one partition's
//! events in order. On the embedded broker each event is journaled as it is published
//! ([`crate::kafka::journal`]), so one the process dies before consuming is published
//! again at the next start.

use super::protocol::Halt;
use crate::kafka::journal::{publish_durably, Message};
use crate::metrics::Metrics;
use crate::runner::Ownership;
use crate::storage::{outbox, Database};
use actix::prelude::*;
use chrono::Utc;
use rdkafka::producer::FutureProducer;
use std::time::Duration;

/// How long a relay's claim on emitted events lasts before another process may take them.
const CLAIM_LEASE: Duration = Duration::from_secs(30);

pub struct OutboxRelay {
    db: Database,
    producer: FutureProducer,
    topic: String,
    interval: Duration,
    node_id: String,
    ownership: Ownership,
    /// The embedded broker's journal is kept (`kafka.brokers = "embedded"`).
    journaled: bool,
    busy: bool,
}

impl OutboxRelay {
    pub fn new(
        db: Database,
        producer: FutureProducer,
        topic: String,
        interval: Duration,
        node_id: String,
        ownership: Ownership,
    ) -> Self {
        Self {
            db,
            producer,
            topic,
            interval,
            node_id,
            ownership,
            journaled: false,
            busy: false,
        }
    }

    /// Journals every event before publishing it: the broker is the in-process one.
    pub fn journaled(mut self, on: bool) -> Self {
        self.journaled = on;
        self
    }

    fn relay(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (db, producer, topic) = (self.db.clone(), self.producer.clone(), self.topic.clone());
        let journaled = self.journaled;
        let (node, partitions) = (self.node_id.clone(), self.ownership.partitions());
        ctx.spawn(
            async move {
                let lease = chrono::Duration::from_std(CLAIM_LEASE).unwrap_or_default();
                let claimed = outbox::claim_events(db.connection(), &node, &partitions, Utc::now(), lease, 500);
                let due = match claimed.await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::warn!(error = %e, "outbox scan failed");
                        return;
                    }
                };
                // Without its trace an event is still published: tracing is never a reason to wait.
                let traces = outbox::run_traces(db.connection(), &due).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "reading the trace contexts of emitted events failed");
                    Default::default()
                });
                for message in due {
                    let key = message.customer_id.to_string();
                    let payload = message.payload.to_string();
                    let traceparent = message
                        .run_id
                        .and_then(|run| traces.get(&run))
                        .map(|trace| trace.child(&message.idempotency_key).to_string());
                    let published = publish_durably(
                        journaled.then_some(&db),
                        &producer,
                        Message {
                            topic: &topic,
                            key: &key,
                            payload: &payload,
                            traceparent: traceparent.as_deref(),
                        },
                    );
                    match published.await {
                        Ok(_) => {
                            Metrics::global()
                                .delivery_attempts
                                .with_label_values(&["event", "ok"])
                                .inc();
                            if let Err(e) = outbox::mark_delivered(db.connection(), message.id, Utc::now()).await {
                                tracing::warn!(outbox_id = message.id, error = %e, "marking a published event failed");
                            }
                        }
                        Err(e) => {
                            Metrics::global()
                                .delivery_attempts
                                .with_label_values(&["event", "retry"])
                                .inc();
                            tracing::warn!(outbox_id = message.id, error = %e, "publishing an emitted event failed");
                            break;
                        }
                    }
                }
            }
            .into_actor(self)
            .map(|_, act, _| act.busy = false),
        );
    }
}

impl Handler<Halt> for OutboxRelay {
    type Result = ();

    fn handle(&mut self, _msg: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Actor for OutboxRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["outbox_relay"]).inc();
        ctx.run_interval(self.interval, |act, ctx| act.relay(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["outbox_relay"]).dec();
    }
}
