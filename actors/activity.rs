//! The activity writer: moves customers' `last_activity_at` forward for the events no
//! workflow can act on, off the executors' path.
//!
//! With `engine.sync_customers` on, every customer event is activity, and most events no
//! workflow listens to. Sent through an executor and a batch, each such event cost its
//! customer's turn and a transaction of its own, and made a topic of unwatched events
//! several times slower than one of matched events' bare consumer. Here they are
//! coalesced: per customer only the latest time is kept, and the batch is one multi-row
//! statement ([`sync::touch_many`]) when it holds `batch` events or `flush` after the
//! first one came.
//!
//! Nothing is lost: each event's `recorded` is answered only once the statement that
//! carries its time has committed, so its offset is stored after the write, as for any
//! other event. A failed write is retried with the storage backoff while the mailbox
//! fills up and, through it, holds the matcher back. Order does not matter: the statement
//! only ever moves a time forward, and registrations (which create the customer) still
//! go through their customer's executor.
//!
//! [`sync::touch_many`]: crate::storage::sync::touch_many

use super::protocol::{Halt, TouchActivity};
use crate::metrics::{Mailbox, Metrics};
use crate::retry::{self, Backoff, Retried};
use crate::runner::Handled;
use crate::storage::{sync, Database};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::oneshot;

pub struct ActivityWriter {
    db: Database,
    /// The latest activity per customer in this batch.
    latest: HashMap<i64, Option<DateTime<Utc>>>,
    /// The answers owed, and the counters to count, once the batch is written.
    waiting: Vec<(oneshot::Sender<Handled>, prometheus::IntCounter)>,
    batch: usize,
    flush: Duration,
    /// A flush is scheduled for the batch being gathered.
    flush_pending: bool,
    mailbox: Mailbox,
}

impl ActivityWriter {
    pub fn new(db: Database, batch: usize, flush: Duration) -> Self {
        Self {
            db,
            latest: HashMap::new(),
            waiting: Vec::new(),
            batch: batch.max(1),
            flush,
            flush_pending: false,
            mailbox: Metrics::global().mailbox("activity"),
        }
    }

    /// Writes the batch; the actor handles nothing else until it is written.
    fn write(&mut self, ctx: &mut Context<Self>) {
        self.flush_pending = false;
        if self.waiting.is_empty() {
            return;
        }
        let now = Utc::now();
        let touches: Vec<(i64, DateTime<Utc>)> = self
            .latest
            .drain()
            .map(|(customer_id, occurred)| (customer_id, occurred.unwrap_or(now).min(now)))
            .collect();
        let waiting = std::mem::take(&mut self.waiting);
        let db = self.db.clone();
        ctx.wait(
            async move {
                let clock = crate::clock::SystemClock;
                let on_retry = |e: &crate::storage::StorageError, _: u32, wait: Duration| {
                    tracing::warn!(error = %e, customers = touches.len(), retry_in_ms = wait.as_millis() as u64, "writing customer activity failed, retrying");
                };
                match retry::retry(&clock, Backoff::STORAGE, None, || false, on_retry, || {
                    sync::touch_many(db.connection(), &touches)
                })
                .await
                {
                    Retried::Ok(()) => {
                        for (recorded, counted) in waiting {
                            counted.inc();
                            let _ = recorded.send(Handled::Recorded);
                        }
                    }
                    // Unanswered: the readers stop before these offsets and read again.
                    Retried::Failed { error, .. } => {
                        tracing::error!(%error, customers = touches.len(), "customer activity not written")
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for ActivityWriter {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["activity"]).inc();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["activity"]).dec();
    }
}

impl Handler<TouchActivity> for ActivityWriter {
    type Result = ();

    fn handle(&mut self, msg: TouchActivity, ctx: &mut Context<Self>) {
        self.mailbox.handled();
        let latest = self.latest.entry(msg.customer_id).or_insert(msg.occurred_at);
        *latest = match (*latest, msg.occurred_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            // No time of its own: the event is now, the latest there is.
            _ => None,
        };
        self.waiting.push((msg.recorded, msg.counted));
        if self.waiting.len() >= self.batch {
            self.write(ctx);
        } else if !self.flush_pending {
            self.flush_pending = true;
            ctx.run_later(self.flush, |act, ctx| {
                if act.flush_pending {
                    act.write(ctx);
                }
            });
        }
    }
}

/// Writes what is gathered, then stops.
impl Handler<Halt> for ActivityWriter {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Halt, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx);
        Box::pin(fut::ready(()).map(|_, _act, ctx: &mut Context<Self>| ctx.stop()))
    }
}
