//! OTLP span export, end to end (built only with `--features otlp`): the binary with
//! `telemetry.otlp_endpoint` pointing at a stand-in collector in this test, which decodes
//! the protobuf requests it gets on `POST /v1/traces`, as an OpenTelemetry collector would.
//! Events go in through `POST /api/v1/events`, whose `traceparent` header becomes the Kafka
//! message's, on the same broker the other end-to-end tests use.

#[path = "common/process.rs"]
mod process;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use process::{eventually, finished_runs, Api, Broker, Engine, Listener, Scratch};
use prost::Message as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bounds waits for the engine, its runs and its spans; they only stop a hang.
const PATIENCE: Duration = Duration::from_secs(45);

/// The producer's trace context, as a traced CRM backend would send it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PRODUCER_SPAN}-01")
}

/// One exported span, as the collector decoded it (ids in lowercase hex).
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// A stand-in OpenTelemetry collector: accepts OTLP/HTTP protobuf on `POST /v1/traces`
/// and keeps every span it decodes; anything else is refused (and so never counted).
struct Collector {
    base: String,
    spans: Arc<Mutex<Vec<Span>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    request: actix_web::HttpRequest,
    spans: actix_web::web::Data<Arc<Mutex<Vec<Span>>>>,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/x-protobuf") {
        return actix_web::HttpResponse::UnsupportedMediaType().finish();
    }
    let Ok(export) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return actix_web::HttpResponse::BadRequest().finish();
    };
    let mut decoded = Vec::new();
    for resource_spans in export.resource_spans {
        let resource = resource_spans.resource.map(|r| text(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                decoded.push(Span {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: text(&span.attributes),
                });
            }
        }
    }
    spans.lock().expect("collector spans").extend(decoded);
    // An empty ExportTraceServiceResponse: everything accepted.
    actix_web::HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .finish()
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let data = actix_web::web::Data::new(spans.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(actix_web::web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/v1/traces", actix_web::web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind("127.0.0.1:0")
        .expect("binding the collector");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            spans,
            handle,
        }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("collector spans").clone()
    }

    /// Waits for the spans `pick` finds among those received.
    async fn wait_for<T>(&self, what: &str, pick: impl Fn(&[Span]) -> Option<T>) -> T {
        eventually(what, PATIENCE, || {
            let found = pick(&self.spans());
            async move { found }
        })
        .await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// An engine exporting to `collector`, with the test defaults plus `extra`.
async fn engine(scratch: &Scratch, broker: &Broker, collector: &Collector, extra: &[(&str, &str)]) -> Engine {
    let mut env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    env.push(("WFE__TELEMETRY__OTLP_ENDPOINT".into(), collector.base.clone()));
    env.push(("WFE__TELEMETRY__SERVICE_NAME".into(), "wfe-under-test".into()));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let engine = Engine::start(scratch.path(), "otlp", &env).await;
    engine.ready(PATIENCE).await;
    engine
}

/// `POST /api/v1/events`, with the producer's `traceparent` when given.
async fn publish(engine: &Engine, event: &Value, traceparent: Option<&str>) {
    let mut request = awc::Client::default()
        .post(format!("{}/api/v1/events", engine.api_base()))
        .force_close();
    if let Some(traceparent) = traceparent {
        request = request.insert_header(("traceparent", traceparent));
    }
    let mut response = request.send_json(event).await.expect("POST /api/v1/events");
    let body = response.body().await.expect("the response body");
    assert_eq!(response.status().as_u16(), 202, "{}", String::from_utf8_lossy(&body));
}

async fn setup(api: &Api, workflow: Value, customers: &[i64]) {
    for id in customers {
        let (status, body) = api
            .put(&format!("/api/v1/customers/{id}"), &json!({"first_name": "Ana"}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = api.post("/api/v1/workflows", &workflow).await;
    assert_eq!(status, 201, "{body}");
}

/// A traced event's span continues the producer's trace under the producer's span; the run
/// it starts is its child; the same run resumed after its delay, with no event around it,
/// continues the trace from what the run recorded. An untraced event starts a trace of its
/// own.
#[actix_rt::test]
async fn the_engine_s_spans_join_the_producer_s_trace() {
    let scratch = Scratch::new("otlp-join");
    let broker = Broker::start();
    let collector = Collector::start().await;
    let listener = Listener::start().await;
    let engine = engine(
        &scratch,
        &broker,
        &collector,
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("WFE__SCHEDULER__DELAY_OVERRIDE_SECS", "1"),
        ],
    )
    .await;
    let api = engine.api();
    setup(
        &api,
        json!({
            "id": "traced", "name": "Ping, wait, ping", "trigger_event": "test.traced",
            // Webhooks, not internal steps: a chain of internal steps only is applied in
            // its event's transaction and has no run of its own to trace.
            "actions": [
                {"type": "webhook", "params": {"url": format!("{}/before", listener.base)}},
                {"type": "delay", "params": {"minutes": 10}},
                {"type": "webhook", "params": {"url": format!("{}/after", listener.base)}}
            ]
        }),
        &[7101, 7102],
    )
    .await;

    let traceparent = traceparent();
    publish(
        &engine,
        &json!({"id": "traced-1", "type": "test.traced", "customer_id": 7101}),
        Some(&traceparent),
    )
    .await;
    publish(
        &engine,
        &json!({"id": "untraced-1", "type": "test.traced", "customer_id": 7102}),
        None,
    )
    .await;
    let runs = finished_runs(&api, "traced", 2, PATIENCE).await;
    let run_of = |customer: i64| -> String {
        let run = runs
            .iter()
            .find(|r| r["customer_id"] == customer)
            .unwrap_or_else(|| panic!("a run of customer {customer}: {runs:#?}"));
        run["id"].to_string()
    };
    let (traced_run, untraced_run) = (run_of(7101), run_of(7102));

    // The traced event: its span, its run's first part inside it, the resumed part.
    let (event, started, resumed) = collector
        .wait_for("the traced event's span and both parts of its run", |spans| {
            let event = spans
                .iter()
                .find(|s| s.name == "event" && s.attribute("event_id") == Some("traced-1"))?;
            let runs: Vec<&Span> = spans
                .iter()
                .filter(|s| s.name == "run" && s.attribute("run_id") == Some(traced_run.as_str()))
                .collect();
            let started = runs.iter().find(|s| s.parent_span_id == event.span_id)?;
            let resumed = runs.iter().find(|s| s.parent_span_id != event.span_id)?;
            Some((event.clone(), (*started).clone(), (*resumed).clone()))
        })
        .await;
    assert_eq!(event.trace_id, TRACE_ID, "{event:#?}");
    assert_eq!(event.parent_span_id, PRODUCER_SPAN, "{event:#?}");
    assert_eq!(event.service, "wfe-under-test", "{event:#?}");
    assert_eq!(event.attribute("trace_id"), Some(TRACE_ID), "{event:#?}");
    assert_eq!(started.trace_id, TRACE_ID, "{started:#?}");
    assert_eq!(started.attribute("workflow_id"), Some("traced"), "{started:#?}");
    assert_eq!(resumed.trace_id, TRACE_ID, "{resumed:#?}");
    assert_eq!(
        resumed.parent_span_id, PRODUCER_SPAN,
        "a resumed run continues the producer's trace: {resumed:#?}"
    );
    assert_ne!(resumed.span_id, started.span_id);

    // The untraced event: a trace of its own, which its run joins.
    let (event, run) = collector
        .wait_for("the untraced event's span and its run's", |spans| {
            let event = spans
                .iter()
                .find(|s| s.name == "event" && s.attribute("event_id") == Some("untraced-1"))?;
            let run = spans.iter().find(|s| {
                s.name == "run"
                    && s.attribute("run_id") == Some(untraced_run.as_str())
                    && s.parent_span_id == event.span_id
            })?;
            Some((event.clone(), run.clone()))
        })
        .await;
    assert_ne!(event.trace_id, TRACE_ID, "{event:#?}");
    assert_ne!(event.trace_id, "0".repeat(32), "{event:#?}");
    assert_eq!(
        event.parent_span_id, "",
        "a new trace starts with the event: {event:#?}"
    );
    assert_eq!(event.attribute("trace_id"), None, "{event:#?}");
    assert_eq!(run.trace_id, event.trace_id, "{run:#?}");
}

/// Spans still queued when the engine stops are sent before it exits: with a batch delay
/// of an hour, nothing leaves before SIGTERM, and the event's span arrives after it. (The
/// run's only step is internal: it is applied in the event's transaction, inside the
/// event's span.)
#[actix_rt::test]
async fn queued_spans_are_sent_when_the_engine_stops() {
    let scratch = Scratch::new("otlp-flush");
    let broker = Broker::start();
    let collector = Collector::start().await;
    let mut engine = engine(&scratch, &broker, &collector, &[("OTEL_BSP_SCHEDULE_DELAY", "3600000")]).await;
    let api = engine.api();
    setup(
        &api,
        json!({
            "id": "noted", "name": "Note", "trigger_event": "test.traced",
            "actions": [{"type": "add_note", "params": {"body": "noted"}}]
        }),
        &[7201],
    )
    .await;
    let traceparent = traceparent();
    publish(
        &engine,
        &json!({"id": "flushed-1", "type": "test.traced", "customer_id": 7201}),
        Some(&traceparent),
    )
    .await;
    finished_runs(&api, "noted", 1, PATIENCE).await;
    assert!(
        collector.spans().is_empty(),
        "nothing is sent before the batch delay or the stop: {:#?}",
        collector.spans()
    );

    let status = engine.terminate(PATIENCE).await;
    assert_eq!(status.code(), Some(0), "graceful stop: {status}");
    let spans = collector.spans();
    let event = spans
        .iter()
        .find(|s| s.name == "event" && s.attribute("event_id") == Some("flushed-1"))
        .unwrap_or_else(|| panic!("the event's span, sent at the stop: {spans:#?}"));
    assert_eq!(
        (event.trace_id.as_str(), event.parent_span_id.as_str()),
        (TRACE_ID, PRODUCER_SPAN)
    );
}

/// An endpoint that is no http(s) URL stops start-up naming the setting, rather than an
/// exporter failing on every batch.
#[test]
fn an_endpoint_that_is_no_url_fails_start_up_naming_it() {
    let scratch = Scratch::new("otlp-bad");
    let broker = Broker::start();
    let stderr_path = scratch.path().join("bad.stderr");
    let mut child = process::command(scratch.path())
        .arg("serve")
        .envs(process::base_env(scratch.path(), &broker.bootstrap_servers()))
        .env("WFE__TELEMETRY__OTLP_ENDPOINT", "collector:4318")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("starting workflow-engine");
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started: {}", process::tail(&stderr_path, 20));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(!status.success(), "serve started: {stderr}");
    assert!(
        stderr.contains("telemetry.otlp_endpoint") && stderr.contains("collector:4318"),
        "{stderr}"
    );
}
