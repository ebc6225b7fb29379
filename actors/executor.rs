//! The executor: one actor per active customer, so one customer's events and resumed
//! chains run strictly one after another while different customers run in parallel.
//!
//! The actor's mailbox is the customer's queue: each message is handled to its end (an
//! atomic response) before the next is taken, so the mailbox's capacity bounds the
//! queue, a full mailbox holds up the matcher (and through it the partitions), and the
//! depth meter counts work not done. What a piece of work does is the
//! [`Runner`](crate::runner::Runner)'s. Executors are created on demand by the matcher and
//! stopped when idle, so memory follows active customers, not all customers.

use super::protocol::{Execute, Idle, Stop};
use crate::metrics::{Mailbox, Metrics};
use crate::runner::Runner;
use actix::prelude::*;
use std::sync::Arc;
use std::time::Duration;

pub struct Executor {
    customer_id: i64,
    runner: Arc<Runner>,
    router: Recipient<Idle>,
    mailbox: Mailbox,
    idle: Duration,
    processed: u64,
    idle_timer: Option<SpawnHandle>,
}

impl Executor {
    pub fn new(
        customer_id: i64,
        runner: Arc<Runner>,
        router: Recipient<Idle>,
        mailbox: Mailbox,
        idle: Duration,
    ) -> Self {
        Self {
            customer_id,
            runner,
            router,
            mailbox,
            idle,
            processed: 0,
            idle_timer: None,
        }
    }

    /// Tells the matcher after `idle` with nothing done in between.
    fn arm_idle(&mut self, ctx: &mut Context<Self>) {
        let processed = self.processed;
        self.idle_timer = Some(ctx.run_later(self.idle, move |act, _ctx| {
            if act.processed == processed {
                act.router.do_send(Idle {
                    customer_id: act.customer_id,
                    processed,
                });
            }
        }));
    }
}

impl Actor for Executor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["executor"]).inc();
        self.arm_idle(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["executor"]).dec();
    }
}

impl Handler<Execute> for Executor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, Execute(work): Execute, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(timer) = self.idle_timer.take() {
            ctx.cancel_future(timer);
        }
        let (runner, customer_id) = (Arc::clone(&self.runner), self.customer_id);
        AtomicResponse::new(Box::pin(
            async move { runner.process(customer_id, work).await }
                .into_actor(self)
                .map(|_, act, ctx| {
                    act.processed += 1;
                    act.mailbox.handled();
                    act.arm_idle(ctx);
                }),
        ))
    }
}

impl Handler<Stop> for Executor {
    type Result = ();

    fn handle(&mut self, _msg: Stop, ctx: &mut Context<Self>) {
        // The matcher sends Stop only when everything it routed here was processed.
        ctx.stop();
    }
}
