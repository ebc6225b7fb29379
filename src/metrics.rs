//! Metrics: every actor's mailbox (depth, capacity, processed, time senders waited on a
//! full mailbox), labelled by actor, and the engine's own counters. Exported in the
//! Prometheus text format at GET /metrics.
//!
//! The prometheus crate gives typed, label-checked collectors and the exposition format;
//! it is the well-kept choice, with its protobuf feature off.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The engine's collectors, registered once per process.
pub struct Metrics {
    pub registry: Registry,
    mailbox_depth: IntGaugeVec,
    mailbox_capacity: IntGaugeVec,
    mailbox_processed: IntCounterVec,
    backpressure_seconds: prometheus::CounterVec,
    /// Live actors by kind (executors come and go with customers).
    pub actors: IntGaugeVec,
    /// Events by trigger and outcome (no_workflow, no_match, matched, replayed,
    /// dead_lettered, refused).
    pub events: IntCounterVec,
    /// Events refused because their id is another event's (security issue 22), by what
    /// differs: `customer`, `type` or `content`. Each is also `events{outcome="refused"}`.
    pub events_refused: IntCounterVec,
    /// Action steps by action type and outcome (done, failed, retried, skipped).
    pub actions: IntCounterVec,
    pub action_seconds: HistogramVec,
    /// Runs by final status.
    pub runs: IntCounterVec,
    /// Consumer lag per partition, from librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
    /// Offsets stored for commit, per partition.
    pub committed_offset: IntGaugeVec,
    /// How late a delayed chain resumed (actual minus due), in seconds.
    pub scheduler_lateness: Histogram,
    pub scheduler_claimed: IntCounter,
    /// Delivery attempts by kind and outcome (ok, retry, failed, refused).
    pub delivery_attempts: IntCounterVec,
    /// Database operations retried after a transient failure.
    pub db_retries: IntCounterVec,
    /// Workflows in the live set, and set swaps.
    pub workflows_active: IntGauge,
    pub workflow_set_swaps: IntCounter,
    /// Queued work dropped because its partition moved to another owner.
    pub work_dropped: IntCounter,
    /// Resumes that found their continuation no longer as claimed, and did nothing.
    pub stale_resumes: IntCounter,
    /// Partition readers restarted after they stopped while the partition was owned.
    pub reader_restarts: IntCounter,
    /// Units (events, resumes) per group commit (`runner::batch`).
    pub batch_units: Histogram,
    /// Batches that failed and were split to isolate the failing unit.
    pub batch_splits: IntCounter,
    /// Emitted events that started no runs, by the limit that stopped them: `depth`
    /// (`engine.max_cascade_depth`) or `runs` (`engine.max_cascade_runs`).
    pub cascades_stopped: IntCounterVec,
    /// Events whose `cause` the outbox did not vouch for: counted for the depth only.
    pub causes_untrusted: IntCounter,
    /// Runs not created because the workflow's limit held the customer back, by limit.
    pub runs_held_back: IntCounterVec,
    /// Waiting runs cancelled by an `exit_when` event.
    pub runs_exited: IntCounter,
    /// Email and SMS steps skipped for an opt-out, by opt-out field.
    pub steps_skipped: IntCounterVec,
    /// Email and SMS steps parked until their send window opened.
    pub send_window_waits: IntCounter,
    /// Email and SMS steps a contact cap held, by action and outcome (skipped, deferred).
    pub contact_held: IntCounterVec,
    /// Events offered to the archive, by outcome (archived, duplicate, dropped, failed).
    pub archive_events: IntCounterVec,
    /// Heavy API requests (backtest, dry run, validation, saves) by endpoint and whether the
    /// pool admitted them or answered 429 (`admitted`, `busy`).
    pub api_heavy: IntCounterVec,
    /// HTTP requests by route pattern (`/api/v1/runs/{id}`: bounded, never the path
    /// itself), method and status.
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    /// The database pool, set at each scrape: `open`, `idle` and `max` connections.
    pub db_pool: IntGaugeVec,
    /// Runs that reached their workflow's goal, and runs held out, by workflow: series
    /// exist only for workflows with a goal or a holdout, at most [`MAX_WORKFLOW_LABELS`].
    goals_reached: IntCounterVec,
    runs_held_out: IntCounterVec,
    workflow_labels: BoundedLabels,
    /// Requests that waited for a slot under their destination's rate limit, and those
    /// waiting now on this process, by destination (`email`, `sms_provider:<id>`,
    /// `webhook_endpoint:<id>`), at most [`MAX_WORKFLOW_LABELS`] of them.
    rate_waited: IntCounterVec,
    rate_queued: IntGaugeVec,
    destination_labels: BoundedLabels,
}

/// The values of a label that get series of their own: the first [`MAX_WORKFLOW_LABELS`]
/// seen; later ones share `other`.
#[derive(Default)]
struct BoundedLabels(std::sync::Mutex<std::collections::HashSet<String>>);

impl BoundedLabels {
    fn label(&self, value: &str) -> String {
        let mut known = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(value) || known.len() < MAX_WORKFLOW_LABELS {
            known.insert(value.to_owned());
            return value.to_owned();
        }
        "other".to_owned()
    }
}

/// A request waiting for its slot under a rate limit, counted in the queue depth while it
/// lives ([`Metrics::rate_queued`]).
pub struct Queued(prometheus::IntGauge);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Most workflows that get series of their own in the per-workflow counters; the rest
/// share `other`, so no number of saved workflows grows the label set without bound.
pub const MAX_WORKFLOW_LABELS: usize = 200;

/// The `trigger` label of an event: its type when a workflow listens to it or it is one
/// of the product's triggers, else `other`, so a producer cannot grow the label set.
pub fn event_label(event_type: &str, listened: bool) -> &str {
    if listened || crate::schema::TRIGGERS.iter().any(|t| t.name == event_type) {
        event_type
    } else {
        "other"
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("wfe")
}

impl Metrics {
    /// Counts a run that reached its workflow's goal.
    pub fn goal_reached(&self, workflow_id: &str) {
        let label = self.workflow_label(workflow_id);
        self.goals_reached.with_label_values(&[&label]).inc();
    }

    /// Counts a run recorded `held_out`.
    pub fn held_out(&self, workflow_id: &str) {
        let label = self.workflow_label(workflow_id);
        self.runs_held_out.with_label_values(&[&label]).inc();
    }

    /// The `workflow` label of a per-workflow counter: the id while fewer than
    /// [`MAX_WORKFLOW_LABELS`] have one, then `other` for new ones.
    fn workflow_label(&self, workflow_id: &str) -> String {
        self.workflow_labels.label(workflow_id)
    }

    /// Counts a request that has to wait for its slot under `destination`'s rate limit;
    /// it is in the queue depth until the guard is dropped.
    pub fn rate_queued(&self, destination: &str) -> Queued {
        let label = self.destination_labels.label(destination);
        self.rate_waited.with_label_values(&[&label]).inc();
        let depth = self.rate_queued.with_label_values(&[&label]);
        depth.inc();
        Queued(depth)
    }

    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
            let g = IntGaugeVec::new(opts(name, help), labels)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
            let c = IntCounterVec::new(opts(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let backpressure_seconds = prometheus::CounterVec::new(
            opts(
                "mailbox_backpressure_seconds_total",
                "Time senders waited on a full mailbox",
            ),
            &["actor"],
        )?;
        registry.register(Box::new(backpressure_seconds.clone()))?;
        let action_seconds = HistogramVec::new(
            HistogramOpts::new("action_duration_seconds", "Time to run one action step")
                .namespace("wfe")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            &["action"],
        )?;
        registry.register(Box::new(action_seconds.clone()))?;
        let scheduler_lateness = Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_lateness_seconds",
                "Resume time minus due time of delayed chains",
            )
            .namespace("wfe")
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 30.0, 60.0, 300.0]),
        )?;
        registry.register(Box::new(scheduler_lateness.clone()))?;
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route",
            )
            .namespace("wfe")
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            &["route"],
        )?;
        registry.register(Box::new(http_seconds.clone()))?;
        let scheduler_claimed = IntCounter::with_opts(opts("scheduler_claimed_total", "Delayed chains claimed"))?;
        registry.register(Box::new(scheduler_claimed.clone()))?;
        let workflows_active = IntGauge::with_opts(opts("workflows_active", "Active workflows in the live set"))?;
        registry.register(Box::new(workflows_active.clone()))?;
        let workflow_set_swaps = IntCounter::with_opts(opts("workflow_set_swaps_total", "Workflow set rebuilds"))?;
        registry.register(Box::new(workflow_set_swaps.clone()))?;
        let simple = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::with_opts(opts(name, help))?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let work_dropped = simple("work_dropped_total", "Queued work dropped: its partition moved away")?;
        let stale_resumes = simple(
            "stale_resumes_total",
            "Resumes that found their claim gone and did nothing",
        )?;
        let reader_restarts = simple("partition_reader_restarts_total", "Partition readers restarted")?;
        let batch_splits = simple(
            "batch_splits_total",
            "Group commits that failed and were split to isolate the failing unit",
        )?;
        let batch_units = Histogram::with_opts(
            HistogramOpts::new("batch_units", "Units (events, resumes) committed per group commit")
                .namespace("wfe")
                .buckets(vec![1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
        )?;
        registry.register(Box::new(batch_units.clone()))?;
        let causes_untrusted = simple(
            "cascade_causes_untrusted_total",
            "Events whose cause names no event the engine emitted: trusted for the depth only",
        )?;
        let runs_exited = simple("runs_exited_total", "Waiting runs cancelled by an exit_when event")?;
        let send_window_waits = simple(
            "send_window_waits_total",
            "Email and SMS steps parked until their send window opened",
        )?;
        Ok(Self {
            cascades_stopped: counter(
                "cascades_stopped_total",
                "Emitted events that started no runs: past engine.max_cascade_depth (limit=depth) or engine.max_cascade_runs (limit=runs)",
                &["limit"],
            )?,
            causes_untrusted,
            runs_exited,
            send_window_waits,
            contact_held: counter(
                "contact_held_total",
                "Email and SMS steps a contact cap held, by action and outcome (skipped, deferred)",
                &["action", "outcome"],
            )?,
            events_refused: counter(
                "events_refused_total",
                "Events refused and dead-lettered: their id is another event's (differs=customer, type or content)",
                &["differs"],
            )?,
            runs_held_back: counter(
                "runs_held_back_total",
                "Runs not created: the workflow's limit held the customer back",
                &["limit"],
            )?,
            steps_skipped: counter(
                "steps_skipped_total",
                "Email and SMS steps skipped for the customer's opt-out",
                &["reason"],
            )?,
            work_dropped,
            stale_resumes,
            reader_restarts,
            batch_units,
            batch_splits,
            mailbox_depth: gauge("mailbox_depth", "Messages waiting in actor mailboxes", &["actor"])?,
            mailbox_capacity: gauge("mailbox_capacity", "Mailbox capacity of one actor", &["actor"])?,
            mailbox_processed: counter("mailbox_processed_total", "Messages handled", &["actor"])?,
            backpressure_seconds,
            actors: gauge("actors", "Live actors", &["actor"])?,
            events: counter("events_total", "Events by trigger and outcome", &["trigger", "outcome"])?,
            actions: counter(
                "actions_total",
                "Action steps by type and outcome",
                &["action", "outcome"],
            )?,
            action_seconds,
            runs: counter("runs_total", "Runs by final status", &["status"])?,
            consumer_lag: gauge("consumer_lag", "Messages behind the partition's end", &["partition"])?,
            committed_offset: gauge(
                "consumer_stored_offset",
                "Next offset stored for commit",
                &["partition"],
            )?,
            scheduler_lateness,
            scheduler_claimed,
            delivery_attempts: counter("delivery_attempts_total", "Outbound requests", &["kind", "outcome"])?,
            db_retries: counter("db_retries_total", "Database operations retried", &["operation"])?,
            workflows_active,
            workflow_set_swaps,
            archive_events: counter(
                "archive_events_total",
                "Events offered to the backtest archive, by outcome",
                &["outcome"],
            )?,
            api_heavy: counter(
                "api_heavy_requests_total",
                "Heavy API requests, by endpoint and admission",
                &["endpoint", "outcome"],
            )?,
            http_requests: counter(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
                &["route", "method", "status"],
            )?,
            http_seconds,
            db_pool: gauge(
                "db_pool_connections",
                "Database pool connections at the last scrape (state=open, idle, max)",
                &["state"],
            )?,
            goals_reached: counter(
                "goals_reached_total",
                "Runs that reached their workflow's goal, by workflow (only workflows with a goal)",
                &["workflow"],
            )?,
            runs_held_out: counter(
                "runs_held_out_total",
                "Runs recorded held_out by their workflow's holdout, by workflow",
                &["workflow"],
            )?,
            workflow_labels: BoundedLabels::default(),
            rate_waited: counter(
                "rate_waited_total",
                "Requests that waited for a slot under their destination's rate limit, by destination",
                &["destination"],
            )?,
            rate_queued: gauge(
                "rate_queue_depth",
                "Requests waiting now, on this process, for a slot under their destination's rate limit",
                &["destination"],
            )?,
            destination_labels: BoundedLabels::default(),
            registry,
        })
    }

    /// The process-wide collectors.
    pub fn global() -> &'static Arc<Metrics> {
        static METRICS: OnceLock<Arc<Metrics>> = OnceLock::new();
        METRICS
            .get_or_init(|| Arc::new(Metrics::new().unwrap_or_else(|e| panic!("metric definitions are static: {e}"))))
    }

    /// The mailbox meter of one actor kind, for the actor and its senders alike.
    pub fn mailbox(&self, actor: &'static str) -> Mailbox {
        Mailbox {
            capacity: self.mailbox_capacity.with_label_values(&[actor]),
            depth: self.mailbox_depth.with_label_values(&[actor]),
            processed: self.mailbox_processed.with_label_values(&[actor]),
            backpressure: self.backpressure_seconds.with_label_values(&[actor]),
        }
    }

    /// The Prometheus text exposition of every collector.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One actor kind's mailbox meter. Senders call [`Mailbox::sent`] and
/// [`Mailbox::waited`]; the actor calls [`Mailbox::handled`] when it has finished a
/// message, so the depth counts work not done yet: queued or in progress.
#[derive(Clone)]
pub struct Mailbox {
    capacity: IntGauge,
    depth: IntGauge,
    processed: IntCounter,
    backpressure: prometheus::Counter,
}

impl Mailbox {
    /// Records the capacity one actor of this kind was given.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.set(i64::try_from(capacity).unwrap_or(i64::MAX));
    }

    pub fn sent(&self) {
        self.depth.inc();
    }

    pub fn handled(&self) {
        self.depth.dec();
        self.processed.inc();
    }

    /// Records time a sender spent blocked on a full mailbox.
    pub fn waited(&self, time: Duration) {
        self.backpressure.inc_by(time.as_secs_f64());
    }

    pub fn depth(&self) -> i64 {
        self.depth.get()
    }

    pub fn processed(&self) -> u64 {
        self.processed.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many workflows reach goals or hold customers out, the per-workflow counters
    /// have at most MAX_WORKFLOW_LABELS series of their own, and the rest count as `other`.
    #[test]
    fn per_workflow_counters_have_bounded_labels() {
        let metrics = Metrics::new().expect("metrics");
        for i in 0..(MAX_WORKFLOW_LABELS + 50) {
            metrics.goal_reached(&format!("w{i}"));
            metrics.held_out(&format!("w{i}"));
        }
        metrics.goal_reached("w0");
        let families = metrics.registry.gather();
        let series = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .map(|f| f.get_metric().len())
                .unwrap_or_default()
        };
        assert_eq!(series("wfe_goals_reached_total"), MAX_WORKFLOW_LABELS + 1);
        assert_eq!(series("wfe_runs_held_out_total"), MAX_WORKFLOW_LABELS + 1);
        assert_eq!(
            metrics.goals_reached.with_label_values(&["w0"]).get(),
            2,
            "known ids keep theirs"
        );
        assert_eq!(metrics.goals_reached.with_label_values(&["other"]).get(), 50);
    }
}
