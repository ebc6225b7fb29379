//! The scheduler: resumes delayed chains when they are due, and emits the engine's own
//! time-based events (task.overdue, customer.inactive_days).
//!
//! Like mini-redis's expiry task, it sleeps until the earliest due time it knows, looks
//! again whenever the consumer is assigned partitions (their delays may be due already),
//! and otherwise polls every `poll_interval` (30 s by default) for continuations recorded
//! by other processes. It claims due rows only of the partitions this process owns, for a
//! lease, so two processes never resume one chain and per-customer order holds across the
//! cluster; a claim not resumed within the lease (its process died) is claimed again.
//! Resumes go through the matcher to the customer's executor, behind that customer's
//! earlier work.

use super::consumer::OwnedPartitions;
use super::matcher::{Matcher, Resume};
use super::metrics::Metrics;
use super::Halt;
use crate::storage::{emitters, scheduled, Database};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A continuation was scheduled for `due_at`: wake then if that is earlier than planned.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake {
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub node_id: String,
    pub poll: Duration,
    pub lease: Duration,
    pub batch: u64,
    pub emit_task_overdue: bool,
    pub inactive_days: Vec<u32>,
}

pub struct Scheduler {
    db: Database,
    matcher: Addr<Matcher>,
    owned: OwnedPartitions,
    config: SchedulerConfig,
    /// The pending timer and the time it fires at.
    timer: Option<(SpawnHandle, DateTime<Utc>)>,
    ticking: bool,
    /// A wake-up that arrived during a tick: tick again right after.
    again: bool,
    last_emit: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub fn new(db: Database, matcher: Addr<Matcher>, owned: OwnedPartitions, config: SchedulerConfig) -> Self {
        Self {
            db,
            matcher,
            owned,
            config,
            timer: None,
            ticking: false,
            again: false,
            last_emit: None,
        }
    }

    /// Fires a tick at `at`, unless one is already planned no later.
    fn tick_at(&mut self, ctx: &mut Context<Self>, at: DateTime<Utc>) {
        if let Some((handle, planned)) = self.timer {
            if planned <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        let handle = ctx.run_later(wait, |act, ctx| {
            act.timer = None;
            act.tick(ctx);
        });
        self.timer = Some((handle, at));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            self.again = true;
            return;
        }
        self.ticking = true;
        let partitions: Vec<i32> = self
            .owned
            .read()
            .map(|o| o.iter().copied().collect())
            .unwrap_or_default();
        let db = self.db.clone();
        let matcher = self.matcher.clone();
        let config = self.config.clone();
        let emit = self
            .last_emit
            .is_none_or(|t| Utc::now() - t >= chrono::Duration::from_std(config.poll).unwrap_or_default());
        ctx.spawn(
            async move {
                let resumed = resume_due(&db, &matcher, &partitions, &config).await;
                if emit {
                    emit_time_events(&db, &config).await;
                }
                let next = scheduled::next_due(db.connection(), &partitions, Utc::now())
                    .await
                    .ok()
                    .flatten();
                (resumed, next, emit)
            }
            .into_actor(self)
            .map(|(resumed, next, emitted), act, ctx| {
                act.ticking = false;
                if emitted {
                    act.last_emit = Some(Utc::now());
                }
                let poll = Utc::now() + chrono::Duration::from_std(act.config.poll).unwrap_or_default();
                let at = if act.again || resumed == act.config.batch as usize {
                    Utc::now()
                } else {
                    next.map_or(poll, |n| n.min(poll))
                };
                act.again = false;
                act.tick_at(ctx, at);
            }),
        );
    }
}

/// Claims the due continuations of owned partitions and hands them to their executors.
async fn resume_due(db: &Database, matcher: &Addr<Matcher>, partitions: &[i32], config: &SchedulerConfig) -> usize {
    let lease = chrono::Duration::from_std(config.lease).unwrap_or_default();
    let claimed = match scheduled::claim_due(db, &config.node_id, partitions, Utc::now(), lease, config.batch).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "claiming due continuations failed");
            return 0;
        }
    };
    Metrics::global().scheduler_claimed.inc_by(claimed.len() as u64);
    let count = claimed.len();
    for row in claimed {
        tracing::debug!(run_id = row.run_id, customer_id = row.customer_id, due_at = %row.due_at, "resuming delayed chain");
        let resume = Resume {
            customer_id: row.customer_id,
            run_id: row.run_id,
            due_at: Some(row.due_at),
        };
        if matcher.send(resume).await.is_err() {
            break;
        }
    }
    count
}

/// Queues task.overdue and customer.inactive_days events (published by the outbox relay).
async fn emit_time_events(db: &Database, config: &SchedulerConfig) {
    let now = Utc::now();
    if config.emit_task_overdue {
        match emitters::overdue_tasks(db, now, config.batch).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "task.overdue queued"),
            Err(e) => tracing::warn!(error = %e, "overdue task scan failed"),
        }
    }
    if !config.inactive_days.is_empty() {
        match emitters::inactive_customers(db, now, &config.inactive_days, config.batch).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(customers = n, "customer.inactive_days queued"),
            Err(e) => tracing::warn!(error = %e, "inactivity scan failed"),
        }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["scheduler"]).inc();
        self.tick(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        Metrics::global().actors.with_label_values(&["scheduler"]).dec();
    }
}

impl Handler<Wake> for Scheduler {
    type Result = ();

    fn handle(&mut self, msg: Wake, ctx: &mut Context<Self>) {
        if self.ticking {
            // The running tick may already have read the next due time.
            self.again = msg.due_at <= Utc::now() || self.again;
        }
        self.tick_at(ctx, msg.due_at);
    }
}

impl Handler<Halt> for Scheduler {
    type Result = ();

    fn handle(&mut self, _msg: Halt, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Partitions changed hands: look for due work now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Poll;

impl Handler<Poll> for Scheduler {
    type Result = ();

    fn handle(&mut self, _msg: Poll, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}
