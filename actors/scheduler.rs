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
//!
//! Claims are bounded by what is in flight: the scheduler hands out at most `batch`
//! resumes not yet finished (each carries a [`Ticket`]), so under a backlog claims do not
//! pile up in executors' queues until their lease runs out. A resume whose claim is gone
//! anyway (re-claimed after the lease, or rescheduled) finds that out in its transaction
//! and does nothing (`storage::steps::resumed`).

use super::protocol::{Halt, Poll, Resume, Wake};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::runner::{Ownership, Ticket};
use crate::storage::{emitters, scheduled, Database};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How soon the scheduler looks again when it claimed less than was due because too
/// much was in flight.
const IN_FLIGHT_RECHECK: Duration = Duration::from_millis(50);

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
    /// Every time the scheduler reads or waits for: due times, claims, leases, its timer.
    clock: SharedClock,
    resumes: Recipient<Resume>,
    ownership: Ownership,
    config: SchedulerConfig,
    /// Resumes handed out and not finished.
    in_flight: Arc<AtomicUsize>,
    /// The pending timer and the time it fires at.
    timer: Option<(SpawnHandle, DateTime<Utc>)>,
    ticking: bool,
    /// A wake-up that arrived during a tick: tick again right after.
    again: bool,
    last_emit: Option<DateTime<Utc>>,
}

impl Scheduler {
    pub fn new(
        db: Database,
        clock: SharedClock,
        resumes: Recipient<Resume>,
        ownership: Ownership,
        config: SchedulerConfig,
    ) -> Self {
        Self {
            db,
            clock,
            resumes,
            ownership,
            config,
            in_flight: Arc::default(),
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
        let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
        let handle = ctx.spawn(self.clock.sleep(wait).into_actor(self).map(|(), act, ctx| {
            act.timer = None;
            act.tick(ctx);
        }));
        self.timer = Some((handle, at));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ticking {
            self.again = true;
            return;
        }
        self.ticking = true;
        let ownership = self.ownership.clone();
        let partitions = ownership.partitions();
        let db = self.db.clone();
        let resumes = self.resumes.clone();
        let config = self.config.clone();
        let in_flight = Arc::clone(&self.in_flight);
        let clock = Arc::clone(&self.clock);
        let emit = self
            .last_emit
            .is_none_or(|t| clock.now() - t >= chrono::Duration::from_std(config.poll).unwrap_or_default());
        ctx.spawn(
            async move {
                let resumed = resume_due(&db, clock.now(), &resumes, &ownership, &in_flight, &config).await;
                if emit {
                    emit_time_events(&db, clock.now(), &config).await;
                }
                let next = scheduled::next_due(db.connection(), &partitions, clock.now())
                    .await
                    .ok()
                    .flatten();
                (resumed, next, emit)
            }
            .into_actor(self)
            .map(|(resumed, next, emitted), act, ctx| {
                act.ticking = false;
                if emitted {
                    act.last_emit = Some(act.clock.now());
                }
                let now = act.clock.now();
                let poll = now + chrono::Duration::from_std(act.config.poll).unwrap_or_default();
                let at = match resumed {
                    _ if act.again => now,
                    Claimed::Capped => now + chrono::Duration::from_std(IN_FLIGHT_RECHECK).unwrap_or_default(),
                    Claimed::Some(n) if n as u64 >= act.config.batch => now,
                    Claimed::Some(_) => next.map_or(poll, |n| n.min(poll)),
                };
                act.again = false;
                act.tick_at(ctx, at);
            }),
        );
    }
}

/// What a tick claimed.
enum Claimed {
    /// This many (all that was due, unless it is a full batch).
    Some(usize),
    /// Less than may be due: too many resumes are in flight.
    Capped,
}

/// Claims the due continuations of owned partitions, as many as may be in flight, and
/// hands them to their executors, each with the fence its partition is owned under.
async fn resume_due(
    db: &Database,
    now: DateTime<Utc>,
    resumes: &Recipient<Resume>,
    ownership: &Ownership,
    in_flight: &Arc<AtomicUsize>,
    config: &SchedulerConfig,
) -> Claimed {
    let room = config.batch.saturating_sub(in_flight.load(Ordering::Acquire) as u64);
    if room == 0 {
        return Claimed::Capped;
    }
    let fences = ownership.fences();
    let partitions: Vec<i32> = fences.iter().map(|f| f.partition).collect();
    let lease = chrono::Duration::from_std(config.lease).unwrap_or_default();
    let claimed = match scheduled::claim_due(db, &config.node_id, &partitions, now, lease, room).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "claiming due continuations failed");
            return Claimed::Some(0);
        }
    };
    Metrics::global().scheduler_claimed.inc_by(claimed.len() as u64);
    let count = claimed.len();
    for row in claimed {
        let Some(fence) = fences.iter().find(|f| f.partition == row.partition).copied() else {
            continue;
        };
        tracing::debug!(run_id = row.run_id, customer_id = row.customer_id, due_at = %row.due_at, "resuming delayed chain");
        let resume = Resume {
            customer_id: row.customer_id,
            run_id: row.run_id,
            fence,
            due_at: row.due_at,
            ticket: Ticket::issue(in_flight),
        };
        if resumes.send(resume).await.is_err() {
            break;
        }
    }
    if (count as u64) < room || room == config.batch {
        Claimed::Some(count)
    } else {
        Claimed::Capped
    }
}

/// Queues task.overdue and customer.inactive_days events (published by the outbox relay).
async fn emit_time_events(db: &Database, now: DateTime<Utc>, config: &SchedulerConfig) {
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
            self.again = msg.due_at <= self.clock.now() || self.again;
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

impl Handler<Poll> for Scheduler {
    type Result = ();

    fn handle(&mut self, _msg: Poll, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SteppedClock};
    use crate::storage::ownership;
    use chrono::TimeZone;
    use std::sync::Mutex;

    /// Each resumed run with the time the test's clock showed when it arrived.
    type Arrivals = Arc<Mutex<Vec<(i64, DateTime<Utc>)>>>;

    struct Collector {
        clock: SteppedClock,
        got: Arrivals,
    }

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<Resume> for Collector {
        type Result = ();

        fn handle(&mut self, msg: Resume, _ctx: &mut Context<Self>) {
            self.got.lock().unwrap().push((msg.run_id, self.clock.now()));
        }
    }

    /// The scheduler waits on the injected clock, not on real time: a continuation due in
    /// five minutes is resumed once, when the test's clock reaches its due time, and the
    /// test never sleeps through those minutes.
    #[actix_rt::test]
    async fn a_continuation_is_resumed_once_when_the_clock_reaches_it() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap();
        let due = t0 + chrono::Duration::minutes(5);
        let clock = SteppedClock::new(t0);
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let fence = ownership::acquire(&db, 0, "node-a", t0).await.unwrap();
        let owned = Ownership::default();
        owned.grant(fence);
        scheduled::schedule(db.connection(), 1, 10, 0, due, t0).await.unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector {
            clock: clock.clone(),
            got: Arc::clone(&got),
        }
        .start();
        let config = SchedulerConfig {
            node_id: "node-a".into(),
            poll: Duration::from_secs(30),
            lease: Duration::from_secs(60),
            batch: 10,
            emit_task_overdue: false,
            inactive_days: vec![],
        };
        let _scheduler = Scheduler::new(
            db.clone(),
            Arc::new(clock.clone()),
            collector.recipient(),
            owned,
            config,
        )
        .start();

        // Up to ten seconds before the due time, polls come and go and resume nothing.
        while clock.now() < due - chrono::Duration::seconds(10) {
            clock.advance(Duration::from_secs(10));
            actix_rt::task::yield_now().await;
        }
        clock.advance(Duration::from_secs(10));
        let started = std::time::Instant::now();
        while got.lock().unwrap().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the due continuation was not resumed"
            );
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        // The clock stood at the due time from the last step on: had the scheduler resumed
        // the run any earlier, the collector would have seen an earlier time.
        assert_eq!(*got.lock().unwrap(), vec![(1, due)]);
    }
}
