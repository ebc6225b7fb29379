//! The archiver: writes consumed events to the event archive the backtest reads, off the
//! hot path.
//!
//! The matcher offers every event it is routed with `try_send`
//! ([`ArchiveEvent::offer`]); a full mailbox drops the event from the archive and counts
//! it, so a slow archive never holds consumption back. Events gather in a batch written
//! as one multi-row insert when it is full or `archive.flush_ms` after the last write.
//! While a batch is written the actor handles nothing else (`ctx.wait`), so its mailbox
//! is the only queue and its capacity the only bound. A failed write is logged, counted
//! and dropped: the archive is a best-effort record, the runs are the durable one. An
//! event whose data the database refuses costs only its own row ([`archive::insert`]).

use super::protocol::{ArchiveEvent, Halt};
use crate::envelope::EventEnvelope;
use crate::metrics::{Mailbox, Metrics};
use crate::storage::{archive, Database};
use actix::prelude::*;
use chrono::Utc;
use std::time::Duration;

pub struct Archiver {
    db: Database,
    batch: Vec<EventEnvelope>,
    batch_size: usize,
    flush: Duration,
    mailbox: Mailbox,
}

impl Archiver {
    pub fn new(db: Database, batch_size: usize, flush: Duration) -> Self {
        Self {
            db,
            batch: Vec::with_capacity(batch_size),
            batch_size: batch_size.max(1),
            flush,
            mailbox: Metrics::global().mailbox("archiver"),
        }
    }

    /// Writes the batch; the actor waits for the write before its next message.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.batch.is_empty() {
            return;
        }
        let events = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        let db = self.db.clone();
        ctx.wait(
            async move {
                let offered = events.len() as u64;
                let counter = &Metrics::global().archive_events;
                match archive::insert(db.connection(), &events, Utc::now()).await {
                    Ok(archive::Archived { written, refused }) => {
                        counter.with_label_values(&["archived"]).inc_by(written);
                        counter.with_label_values(&["failed"]).inc_by(refused);
                        counter
                            .with_label_values(&["duplicate"])
                            .inc_by(offered.saturating_sub(written + refused));
                    }
                    Err(error) => {
                        counter.with_label_values(&["failed"]).inc_by(offered);
                        tracing::warn!(%error, events = offered, "archiving a batch of events failed; dropped from the archive");
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for Archiver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["archiver"]).inc();
        ctx.run_interval(self.flush, |act, ctx| act.write(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["archiver"]).dec();
    }
}

impl Handler<ArchiveEvent> for Archiver {
    type Result = ();

    fn handle(&mut self, msg: ArchiveEvent, ctx: &mut Context<Self>) {
        self.mailbox.handled();
        self.batch.push(msg.0);
        if self.batch.len() >= self.batch_size {
            self.write(ctx);
        }
    }
}

/// Writes what is gathered, then stops.
impl Handler<Halt> for Archiver {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: Halt, ctx: &mut Context<Self>) -> Self::Result {
        self.write(ctx);
        Box::pin(fut::ready(()).map(|_, _act, ctx: &mut Context<Self>| ctx.stop()))
    }
}
