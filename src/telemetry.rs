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
