//! Logging and span export: tracing with structured fields (event_id, customer_id,
//! workflow_id, run_id), human-readable by default, JSON lines for log pipelines; and,
//! built with the `otlp` feature, the engine's spans sent to an OpenTelemetry collector
//! ([`otlp`]).

pub mod fields;
#[cfg(feature = "otlp")]
pub mod otlp;

use crate::settings::{Log, Telemetry};
use crate::trace::TraceParent;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Why telemetry could not start. Without the `otlp` feature nothing can fail.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] otlp::OtlpError),
}

/// What [`init`] started that must be stopped on purpose: the span exporter, whose queue
/// is sent on [`Guard::shutdown`].
#[must_use = "spans still queued are lost unless the guard is shut down"]
pub struct Guard {
    #[cfg(feature = "otlp")]
    exporter: Option<otlp::Exporter>,
}

impl Guard {
    /// Sends the spans still queued (bounded in time) and stops the exporter.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = self.exporter {
            exporter.shutdown();
        }
    }
}

/// Installs the global subscriber: the log lines, and the OTLP layer when export is asked
/// for (`telemetry`). `RUST_LOG`, when set, overrides the configured level of the logs;
/// what is exported does not depend on it.
pub fn init(log: &Log, telemetry: &Telemetry) -> Result<Guard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries what commands print (check reports, the demo, the
    // listening address scripts read).
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    // The filter is the log lines' own, so a quiet log level does not stop span export.
    let fmt = if log.format.eq_ignore_ascii_case("json") {
        fmt.json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.fmt_fields(fields::escaped()).with_filter(filter).boxed()
    };
    let subscriber = tracing_subscriber::registry().with(fmt);
    #[cfg(feature = "otlp")]
    {
        let (layer, exporter) = match otlp::layer(telemetry)? {
            Some((layer, exporter)) => (Some(layer), Some(exporter)),
            None => (None, None),
        };
        if subscriber.with(layer).try_init().is_ok() {
            return Ok(Guard { exporter });
        }
        // A second init (tests, the demo inside serve) keeps the first subscriber.
        if let Some(exporter) = exporter {
            exporter.shutdown();
        }
        Ok(Guard { exporter: None })
    }
    #[cfg(not(feature = "otlp"))]
    {
        // Settings refuse an endpoint in this build: nothing to export.
        let _ = telemetry;
        // A second init (tests, the demo inside serve) keeps the first subscriber.
        drop(subscriber.try_init());
        Ok(Guard {})
    }
}

/// Makes `span`, before it is first entered, continue the producer's trace when it is
/// exported: same trace id, the producer's span as its parent, the producer's sampling
/// decision. Without the `otlp` feature, or with export off, there is nothing to continue:
/// the span's `trace_id` field is what ties the logs to the trace.
pub fn continue_trace(span: &tracing::Span, trace: &TraceParent) {
    #[cfg(feature = "otlp")]
    otlp::continue_trace(span, trace);
    #[cfg(not(feature = "otlp"))]
    let _ = (span, trace);
}

/// Registers, once per process, the metrics that describe the process rather than the
/// engine's work: `wfe_build_info{version}` (always 1: a dashboard shows which version
/// runs where, and a rolling deploy shows both), and on Linux the standard `process_*`
/// collectors (CPU seconds, resident and virtual memory, open and maximum file
/// descriptors, threads, start time).
pub fn register_process_metrics(registry: &prometheus::Registry) -> Result<(), prometheus::Error> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let build = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("build_info", "The running build: always 1, labelled by version").namespace("wfe"),
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(build))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    let _ = DONE.set(());
    Ok(())
}
