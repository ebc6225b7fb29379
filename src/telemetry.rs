//! Logging: tracing with structured fields (event_id, customer_id, workflow_id, run_id),
//! human-readable by default, JSON lines for log pipelines.

use crate::settings::Log;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout carries what commands print (check reports, the demo, the
    // listening address scripts read).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    let result = if log.format.eq_ignore_ascii_case("json") {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests, the demo inside serve) keeps the first subscriber.
    drop(result);
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
