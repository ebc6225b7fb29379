//! OTLP span export (the `otlp` cargo feature): the engine's `event` and `run` spans, sent
//! to an OpenTelemetry collector over OTLP/HTTP with protobuf bodies.
//!
//! Why spans of its own: with the `traceparent` only passed on, a trace shows the producer
//! and the receivers of webhooks with a gap where the engine worked. The exported spans
//! fill it: when the event was planned, how long each run took, what failed (error log
//! lines inside a span become its events and mark it failed).
//!
//! An event's span continues the producer's trace ([`continue_trace`]); the runs it starts
//! are its children; a run resumed on its own (after a delay, a restart, a retry) continues
//! the trace the run was started with. Without a `traceparent` the event's span starts a
//! trace of its own. The producer's sampling flag is kept: an unsampled trace exports
//! nothing.
//!
//! Export never holds up the engine: spans go to the SDK's batch processor, a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 spans by default; spans past it are dropped, not waited
//! for) that a thread of its own sends every `OTEL_BSP_SCHEDULE_DELAY` (5 s) or every 512
//! spans, with a blocking HTTP client outside the engine's runtimes. [`Exporter::shutdown`]
//! sends what is still queued when the process stops.

use crate::settings::Telemetry;
use crate::trace::TraceParent;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The OTLP/HTTP path of traces, after a collector's base URL.
pub const TRACES_PATH: &str = "/v1/traces";

/// How long a stopping process waits for its queued spans to be sent: a collector that
/// does not answer must not hold up a rolling deploy.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("telemetry.otlp_endpoint {endpoint:?} is not an http:// or https:// URL")]
    Endpoint { endpoint: String },
    #[error("building the OTLP span exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The running exporter: its batch processor's thread and queue.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Sends the queued spans, waiting at most [`SHUTDOWN_TIMEOUT`], and stops the thread.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "spans still queued for the OTLP collector were not all sent");
        }
    }
}

/// The layer that turns the engine's spans into OTLP spans, and the exporter behind it;
/// `None` when no endpoint is configured. Only the engine's own spans (and the log lines
/// inside them, as span events) are exported, at info and above whatever the log level:
/// the exporter's own log lines must not feed it.
pub fn layer<S>(settings: &Telemetry) -> Result<Option<(impl Layer<S>, Exporter)>, OtlpError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if settings.otlp_requested_by().is_none() {
        return Ok(None);
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    // Without a setting, the exporter reads OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
    // OTEL_EXPORTER_OTLP_ENDPOINT itself.
    if !settings.otlp_endpoint.trim().is_empty() {
        builder = builder.with_endpoint(traces_url(&settings.otlp_endpoint)?);
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(builder.build()?)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(env!("CARGO_PKG_NAME")))
        .with_filter(Targets::new().with_target("workflow_engine", tracing::Level::INFO));
    Ok(Some((layer, Exporter { provider })))
}

/// The traces URL of `endpoint`: a base URL as `OTEL_EXPORTER_OTLP_ENDPOINT` gives it, with
/// [`TRACES_PATH`] added, or a URL that already ends with it, as it is.
pub fn traces_url(endpoint: &str) -> Result<String, OtlpError> {
    let endpoint = endpoint.trim();
    let invalid = || OtlpError::Endpoint {
        endpoint: endpoint.to_owned(),
    };
    let url = url::Url::parse(endpoint).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid());
    }
    let base = endpoint.trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}{TRACES_PATH}"))
    }
}

/// Sets `span`'s parent to the producer's span named by `trace`. Does nothing when no OTLP
/// layer is installed (export off), and must come before the span is first entered.
pub fn continue_trace(span: &tracing::Span, trace: &TraceParent) {
    let producer = SpanContext::new(
        TraceId::from_bytes(trace.trace_id_bytes()),
        SpanId::from_bytes(trace.parent_id_bytes()),
        TraceFlags::new(trace.flags()),
        true,
        TraceState::default(),
    );
    // The only failures: no OTLP layer, or a span no layer records. Nothing to join then.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(producer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_a_base_url_or_the_traces_url() {
        for (given, expected) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                " https://otel.example.com/otlp ",
                "https://otel.example.com/otlp/v1/traces",
            ),
            ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ] {
            assert_eq!(traces_url(given).unwrap(), expected, "{given}");
        }
        for bad in ["collector:4318", "grpc://collector:4317", "http://", "not a url"] {
            let error = traces_url(bad).unwrap_err().to_string();
            assert!(error.contains("telemetry.otlp_endpoint"), "{bad}: {error}");
        }
    }
}
