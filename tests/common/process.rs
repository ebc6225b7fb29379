//! The end-to-end harness: the built `workflow-engine` binary as a child process, a Kafka
//! broker held by the test process (so it outlives an engine that is stopped or killed),
//! an HTTP client for the API and a local HTTP listener standing in for webhook targets.
//!
//! Every child is killed when its guard drops, also when a test fails; a failing test
//! prints the tail of every engine's stderr (the logs) and stdout.
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::Value;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The events topic and the dead-letter topic, as the engine's defaults name them.
pub const TOPIC: &str = "crm.events";
pub const DLQ_TOPIC: &str = "crm.events.dlq";

/// Polls `check` every 100 ms until it returns `Some`, or panics naming `what` after
/// `timeout`. Waiting is never an assertion about timing: the deadline only bounds a hang.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `workflow_id` has `count` runs, every one done, and returns them; a failed
/// run fails the test at once, with its error.
pub async fn finished_runs(api: &Api, workflow_id: &str, count: usize, timeout: Duration) -> Vec<Value> {
    eventually(
        &format!("{count} finished run(s) of {workflow_id}"),
        timeout,
        || async {
            let runs = api.runs_of(workflow_id).await;
            if let Some(failed) = runs.iter().find(|r| r["status"] == "failed") {
                panic!("a run failed: {failed:#}");
            }
            (runs.len() == count && runs.iter().all(|r| r["status"] == "done")).then_some(runs)
        },
    )
    .await
}

/// librdkafka's mock cluster with the engine's topics (4 partitions each), owned by the
/// test so it survives the engine's restarts and crashes.
pub struct Broker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    producer: FutureProducer,
}

impl Broker {
    pub fn start() -> Self {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic(TOPIC, 4, 1).expect("events topic");
        cluster.create_topic(DLQ_TOPIC, 4, 1).expect("dead-letter topic");
        let producer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("test producer");
        Self { cluster, producer }
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Publishes an envelope keyed by its customer id, as a platform producer would, and
    /// waits for the broker's acknowledgement.
    pub async fn produce(&self, envelope: &Value) -> (i32, i64) {
        let key = envelope["customer_id"].to_string();
        let payload = envelope.to_string();
        self.producer
            .send(
                FutureRecord::to(TOPIC).key(&key).payload(&payload),
                Timeout::After(Duration::from_secs(30)),
            )
            .await
            .map(|d| (d.partition, d.offset))
            .unwrap_or_else(|(e, _)| panic!("producing {payload}: {e}"))
    }
}

/// A running (or ended) engine process. Killed on drop; prints its logs if the test fails.
pub struct Engine {
    pub name: String,
    child: Child,
    exit: Option<ExitStatus>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// `http://127.0.0.1:PORT`, read from the "listening on" line.
    pub base: String,
}

/// The path of the built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_workflow-engine")
}

/// A command for the binary with no WFE_* variable inherited from the caller's
/// environment and the working directory in `dir`, so no config/local.toml leaks in.
pub fn command(dir: &Path) -> Command {
    command_of(binary(), dir)
}

/// [`command`] running `program` (a wrapper that then runs the binary).
fn command_of(program: &str, dir: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WFE") {
            command.env_remove(key);
        }
    }
    command.current_dir(dir).env("NO_COLOR", "1");
    command
}

/// The environment every test engine gets: the database file in `dir`, a free port, the
/// test's broker, short polls, and webhooks to the test's own listener allowed.
pub fn base_env(dir: &Path, brokers: &str) -> Vec<(String, String)> {
    [
        ("WFE__DATABASE__URL", format!("sqlite://{}/e2e.db", dir.display())),
        ("WFE__HTTP__BIND", "127.0.0.1:0".to_owned()),
        ("WFE__KAFKA__BROKERS", brokers.to_owned()),
        // Tests publish before the consumer has joined: start at the beginning.
        ("WFE__KAFKA__AUTO_OFFSET_RESET", "earliest".to_owned()),
        ("WFE__SCHEDULER__POLL_INTERVAL_SECS", "1".to_owned()),
        ("WFE__ENGINE__WORKFLOW_POLL_MS", "200".to_owned()),
        ("WFE__DELIVERY__WEBHOOK_ALLOWLIST", "127.0.0.1".to_owned()),
        ("WFE__DELIVERY__BACKOFF_INITIAL_MS", "100".to_owned()),
        ("WFE__DELIVERY__BACKOFF_MAX_MS", "1000".to_owned()),
        ("WFE__LOG__LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl Engine {
    /// Starts `workflow-engine serve` with `env` and waits until it prints its address.
    /// `name` tells this process's log files apart (e.g. "first", "after-restart").
    pub async fn start(dir: &Path, name: &str, env: &[(String, String)]) -> Self {
        let mut command = command(dir);
        command.arg("serve");
        Self::spawn(command, dir, name, env).await
    }

    /// [`Engine::start`] with the process's address space capped at `bytes` (the shell's
    /// `ulimit -v`, then `exec`, so the engine is the capped process itself): past the
    /// cap an allocation fails and the process aborts, so surviving under it shows the
    /// memory stayed bounded. glibc reserves 64 MiB of address space per malloc arena
    /// (one per thread, up to eight per core) without using it; `MALLOC_ARENA_MAX=2`
    /// keeps those reservations from filling the cap with nothing, so the cap bounds
    /// memory actually used.
    pub async fn start_capped(dir: &Path, name: &str, env: &[(String, String)], bytes: u64) -> Self {
        let mut command = command_of("sh", dir);
        command.env("MALLOC_ARENA_MAX", "2").args([
            "-c",
            &format!("ulimit -v {} && exec \"$0\" serve", bytes / 1024),
            binary(),
        ]);
        Self::spawn(command, dir, name, env).await
    }

    async fn spawn(mut command: Command, dir: &Path, name: &str, env: &[(String, String)]) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        command
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WFE__ENGINE__NODE_ID", format!("e2e-{name}"))
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"));
        let child = command.spawn().expect("starting workflow-engine");
        let mut engine = Self {
            name: name.to_owned(),
            child,
            exit: None,
            stdout,
            stderr,
            base: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let out = std::fs::read_to_string(&engine.stdout).unwrap_or_default();
            if let Some(addr) = out.lines().find_map(|l| l.strip_prefix("listening on ")).map(str::trim) {
                engine.base = addr.to_owned();
                return engine;
            }
            if let Some(status) = engine.child.try_wait().expect("try_wait") {
                engine.exit = Some(status);
                panic!("engine {name} exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "engine {name} did not print its address");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The engine's base URL, for clients of its own.
    pub fn api_base(&self) -> &str {
        &self.base
    }

    pub fn api(&self) -> Api {
        Api::new(&self.base, None)
    }

    /// Waits for /readyz to answer 200 (migrated, database and broker reachable) with the
    /// consumer owning partitions.
    pub async fn ready(&self, timeout: Duration) {
        let api = self.api();
        eventually(&format!("engine {} ready", self.name), timeout, || async {
            let (status, body) = api.get("/readyz").await;
            (status == 200 && body["consumer"] == true).then_some(())
        })
        .await;
    }

    /// Waits up to `timeout` for the process to end.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "engine {} did not exit within {timeout:?}",
                self.name
            );
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (a graceful stop) and the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed: {status}");
        self.wait_exit(timeout).await
    }

    /// SIGKILL: a crash, nothing flushed, nothing committed.
    pub fn crash(&mut self) -> ExitStatus {
        self.child.kill().expect("kill -9");
        let status = self.child.wait().expect("wait");
        self.exit = Some(status);
        status
    }

    /// The last `lines` lines of the engine's logs.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.stderr, lines)
    }
}

/// The last `lines` lines of a file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- engine {} (exit: {:?}) stdout tail -----\n{}\n----- engine {} stderr tail -----\n{}\n-----",
                self.name,
                self.exit,
                tail(&self.stdout, 20),
                self.name,
                tail(&self.stderr, 80),
            );
        }
    }
}

/// The engine's HTTP API through awc. Every request closes its connection, so no idle
/// keep-alive connection holds up a graceful shutdown.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    client: awc::Client,
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(str::to_owned),
            client: awc::Client::builder().timeout(Duration::from_secs(30)).finish(),
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self::new(&self.base, token)
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .force_close();
        if let Some(token) = &self.token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        request
    }

    async fn finish(what: String, send: awc::SendClientRequest) -> (u16, String) {
        let mut response = send.await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn json(what: &str, status: u16, text: &str) -> (u16, Value) {
        if text.is_empty() {
            return (status, Value::Null);
        }
        let value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{what}: {status} with a body that is not JSON ({e}): {text}"));
        (status, value)
    }

    /// GET, the status and the body as text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let what = format!("GET {path}");
        Self::finish(what, self.request(awc::http::Method::GET, path).send()).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path).await;
        Self::json(&format!("GET {path}"), status, &text)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let what = format!("DELETE {path}");
        let (status, text) = Self::finish(what.clone(), self.request(awc::http::Method::DELETE, path).send()).await;
        Self::json(&what, status, &text)
    }

    /// A request with a raw JSON body (which may be malformed on purpose).
    pub async fn send_raw(&self, method: awc::http::Method, path: &str, body: impl Into<String>) -> (u16, Value) {
        let what = format!("{method} {path}");
        let response = self
            .request(method, path)
            .content_type("application/json")
            .send_body(body.into());
        let (status, text) = Self::finish(what.clone(), response).await;
        Self::json(&what, status, &text)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_raw(awc::http::Method::POST, path, body.to_string()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_raw(awc::http::Method::PUT, path, body.to_string()).await
    }

    /// The runs of a workflow (newest first).
    pub async fn runs_of(&self, workflow_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v1/runs?workflow_id={workflow_id}&limit=1000"))
            .await;
        assert_eq!(status, 200, "GET /api/v1/runs: {body}");
        body["runs"].as_array().cloned().unwrap_or_default()
    }
}

/// One request the listener received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

/// A local HTTP server standing in for a webhook target: answers 200 to every POST and
/// records what it got.
pub struct Listener {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: actix_web::HttpRequest,
    inbox: actix_web::web::Data<Arc<Mutex<Vec<Received>>>>,
    body: actix_web::web::Bytes,
) -> actix_web::HttpResponse {
    let received = Received {
        path: req.path().to_owned(),
        idempotency_key: req
            .headers()
            .get("Idempotency-Key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    inbox.lock().expect("listener inbox").push(received);
    actix_web::HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

impl Listener {
    pub async fn start() -> Self {
        Self::start_at("127.0.0.1:0").await
    }

    /// A listener on `addr` (e.g. the port a test kept closed until now).
    pub async fn start_at(addr: &str) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let inbox = received.clone();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(actix_web::web::Data::new(inbox.clone()))
                .default_service(actix_web::web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(addr)
        .expect("binding the listener");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            base: format!("http://{addr}"),
            received,
            handle,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("listener inbox").clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("listener inbox").len()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A temporary directory that is kept (and named) when the test fails, or always with
/// WFE_E2E_KEEP set, for a look at the engines' logs.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub fn new(test: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("wfe-e2e-{test}-"))
            .tempdir()
            .expect("tempdir");
        Self { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("scratch dir").path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("WFE_E2E_KEEP").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("kept the test's files in {}", dir.keep().display());
            }
        }
    }
}
