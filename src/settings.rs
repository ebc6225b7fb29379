//! Configuration: config/default.toml, then config/local.toml, then the file named by
//! `WFE_CONFIG`, then WFE__SECTION__KEY environment variables. config/default.toml
//! documents every key.
//!
//! Nothing is guessed: an unknown key in a file or an unknown `WFE__…` variable fails
//! start-up naming it, because a misspelt `WFE__KAFKA__BROKERS` or `WFE__DATABASE__URL`
//! would otherwise leave the embedded broker or SQLite in place without a word.

mod security;
mod tokens;

pub use security::Security;
pub use tokens::{Scope, TokenConfig};

use crate::conditions::Limits;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The prefix of environment overrides: `WFE__SECTION__KEY`.
pub const ENV_PREFIX: &str = "WFE__";

/// Environment overrides of `kafka.properties`: `WFE__KAFKA__PROPERTIES__<name>`, where
/// the name is a librdkafka property with `.` or `__` between its words.
const ENV_PROPERTIES: &str = "WFE__KAFKA__PROPERTIES__";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// A `WFE__…` variable that names no setting: most likely a typo, which would
    /// otherwise be ignored.
    #[error("unknown setting {variable} (the key {key}); the settings are listed in config/default.toml")]
    UnknownEnv { variable: String, key: String },
    /// Looks like an override but lacks the double underscore after `WFE`.
    #[error("{variable}: environment overrides are spelt WFE__SECTION__KEY, with two underscores after WFE")]
    MisspeltEnv { variable: String },
    #[error("{variable}: a librdkafka property needs a name after WFE__KAFKA__PROPERTIES__")]
    EmptyProperty { variable: String },
    /// An OTLP endpoint given to a build without the exporter: the operator expects spans
    /// that would never leave the process.
    #[error("{by} asks for OTLP span export, but this build has no OTLP exporter: build with `cargo build --release --features otlp`, or unset {by}")]
    OtlpNotBuilt { by: String },
    /// A `WFE__…_FILE` variable whose file cannot be read.
    #[error("{variable}: cannot read {path}: {source}")]
    SettingFile {
        variable: String,
        path: String,
        source: std::io::Error,
    },
    /// A setting given both as a value and as a file.
    #[error("{variable} and {variable}_FILE both give the setting; keep one")]
    TwoSources { variable: String },
    #[error("{key} is {value}; it may be at most {max}")]
    TooHigh { key: &'static str, value: u64, max: u64 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: Http,
    #[serde(default)]
    pub api: Api,
    pub database: Database,
    pub kafka: Kafka,
    pub engine: Engine,
    pub limits: Limits,
    pub scheduler: Scheduler,
    pub delivery: Delivery,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub security: Security,
    pub log: Log,
    pub telemetry: Telemetry,
    pub demo: Demo,
    pub retention: Retention,
    pub archive: Archive,
    #[serde(default)]
    pub changes: Changes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    pub bind: String,
    pub body_limit: usize,
    pub auth_token: String,
}

/// `[api]`: the bounds of the heavy requests (backtest, dry run, validation, saves), whose
/// cost grows with what the caller sends and with the archive; docs/security.md, "Heavy
/// requests", explains the numbers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    /// Heavy requests running at once in the process; one more gets 429 (0 is taken as 1).
    pub heavy_concurrency: usize,
    /// Time budget of one heavy request, in milliseconds; past it, 503.
    pub heavy_timeout_ms: u64,
    /// Most condition rules across the workflows of one request.
    pub heavy_max_rules: usize,
    /// Most memory the distinct regexes of one request may take, each charged its caps.
    pub heavy_max_regex_bytes: usize,
    /// Most archived events one backtest reads.
    pub heavy_max_events: u64,
}

impl Default for Api {
    /// Two at once: the process has two HTTP workers and usually two cores, and the
    /// engine's own work must keep a core. Ten seconds: well past a backtest of the default
    /// 10,000 events, well inside a load balancer's timeout. 5,000 rules: 50 workflows of
    /// 100. 64 MiB: 128 distinct regexes at the default `limits.regex_size_limit`.
    fn default() -> Self {
        Self {
            heavy_concurrency: 2,
            heavy_timeout_ms: 10_000,
            heavy_max_rules: 5_000,
            heavy_max_regex_bytes: 64 * 1024 * 1024,
            heavy_max_events: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
    /// Whether `serve` applies pending migrations at start-up. Teams that migrate in a
    /// separate step (`workflow-engine migrate`, with a more privileged role) turn it off;
    /// `serve` then refuses to start on a database that is behind.
    pub migrate: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub embedded_partitions: i32,
    pub in_flight_per_partition: usize,
    /// Where the consumer group starts on a partition it has no committed offset for.
    pub auto_offset_reset: OffsetReset,
    /// How long start-up waits for the brokers to answer a metadata request before
    /// calling them unreachable.
    pub connect_timeout_ms: u64,
    /// librdkafka properties given to every Kafka client of the engine, as written (TLS,
    /// SASL, timeouts…). The few the engine must set itself are refused (see
    /// [`crate::kafka::reserved_property`]).
    #[serde(default, deserialize_with = "flat_properties")]
    pub properties: BTreeMap<String, String>,
}

impl Kafka {
    pub fn is_embedded(&self) -> bool {
        self.brokers.trim() == "embedded"
    }

    /// The reset policy the consumer gets. The embedded broker is born empty with the
    /// process, so it has no history to replay: it always starts at the earliest offset,
    /// which also keeps events published before the group's first assignment.
    pub fn offset_reset(&self) -> OffsetReset {
        if self.is_embedded() {
            OffsetReset::Earliest
        } else {
            self.auto_offset_reset
        }
    }
}

/// librdkafka's `auto.offset.reset`, limited to the two values that make sense here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// Replay the partition from its oldest retained event.
    Earliest,
    /// Start at the end: only events published from now on.
    Latest,
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// A property value as a file or the environment gives it: text, a number or a flag, or
/// a table when a dotted name was split into sections (`sasl.username` written
/// unquoted in TOML).
#[derive(Deserialize)]
#[serde(untagged)]
enum PropertyValue {
    Text(String),
    Flag(bool),
    Integer(i64),
    Float(f64),
    Table(BTreeMap<String, PropertyValue>),
}

/// `kafka.properties` as librdkafka wants it: dotted names to text.
fn flat_properties<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    fn flatten(prefix: &str, table: BTreeMap<String, PropertyValue>, out: &mut BTreeMap<String, String>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                PropertyValue::Text(text) => {
                    out.insert(name, text);
                }
                PropertyValue::Flag(flag) => {
                    out.insert(name, flag.to_string());
                }
                PropertyValue::Integer(n) => {
                    out.insert(name, n.to_string());
                }
                PropertyValue::Float(x) => {
                    out.insert(name, x.to_string());
                }
                PropertyValue::Table(inner) => flatten(&name, inner, out),
            }
        }
    }
    let table = BTreeMap::<String, PropertyValue>::deserialize(deserializer)?;
    let mut out = BTreeMap::new();
    flatten("", table, &mut out);
    Ok(out)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub node_id: String,
    pub arbiters: usize,
    pub executor_idle_secs: u64,
    pub matcher_mailbox: usize,
    pub executor_mailbox: usize,
    pub workflow_poll_ms: u64,
    pub max_step_attempts: u32,
    /// Units (events, resumes) of a partition committed in one transaction, at most;
    /// clamped to 1..=1000 (`runner::batch::BATCH_CEILING`).
    pub batch_max: usize,
    /// Events create (`customer.registered`) and touch (`last_activity_at`) their
    /// customers; off when the CRM writes every customer itself.
    pub sync_customers: bool,
    /// With `sync_customers`, events no workflow can act on move `last_activity_at` through
    /// the activity writer, coalesced per customer and written this often (and at 1,000
    /// customers) instead of through their executors; 0 sends them through the executors.
    #[serde(default = "default_activity_flush_ms")]
    pub activity_flush_ms: u64,
    /// Emitted events deeper than this start no runs (guards::cascade).
    #[serde(default = "default_max_cascade_depth")]
    pub max_cascade_depth: u32,
    /// Runs one outside event's cascade may start; an emitted event that would go past
    /// it starts none (guards::cascade).
    #[serde(default = "default_max_cascade_runs")]
    pub max_cascade_runs: u32,
    /// Runs one customer may have waiting for an event at once; a wait past it fails its
    /// step (storage::waits). It bounds what one arriving event reads.
    #[serde(default = "default_max_waits_per_customer")]
    pub max_waits_per_customer: u32,
}

fn default_activity_flush_ms() -> u64 {
    50
}

fn default_max_cascade_depth() -> u32 {
    crate::guards::cascade::DEFAULT_MAX_DEPTH
}

fn default_max_cascade_runs() -> u32 {
    crate::guards::cascade::DEFAULT_MAX_RUNS
}

fn default_max_waits_per_customer() -> u32 {
    crate::storage::waits::DEFAULT_MAX_PER_CUSTOMER
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scheduler {
    pub poll_interval_secs: u64,
    pub claim_batch: u64,
    pub lease_secs: u64,
    pub delay_override_secs: u64,
    pub emit_task_overdue: bool,
    pub inactive_days: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub email_url: String,
    /// The email service's limit in requests per second across the cluster; 0 = none.
    pub email_rate_per_sec: u32,
    pub webhook_secret: String,
    pub webhook_allowlist: Vec<String>,
}

/// Scoped API tokens (docs/security.md). `http.auth_token` is one more token, with every
/// scope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `{name, token | token_sha256, scopes}`; the name is recorded as the author of
    /// workflow versions.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// GET /metrics needs a token with the `read` scope too.
    #[serde(default)]
    pub protect_metrics: bool,
}

/// How long finished history is kept ([`crate::retention`]); 0 days = forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Ended runs (done, failed, cancelled) and their steps, by last update.
    pub runs_days: u32,
    /// Event plans whose runs are gone, by when recorded. Keep them at least as long as
    /// the topic keeps events: a redelivered event without its plan is planned again.
    pub plans_days: u32,
    /// Delivered or failed outbox messages, by when queued.
    pub outbox_days: u32,
    /// Saved versions kept per workflow, newest first (0 = all). Older ones go, except the
    /// current version and any version a run that is not done or cancelled still uses.
    pub versions_keep: u32,
    /// Audit log rows (issue 28), by when written; 0 (the default) keeps them forever,
    /// whatever the other ages say: who changed what is kept apart from run history.
    #[serde(default)]
    pub audit_days: u32,
    /// Rows deleted per statement.
    pub batch_size: u64,
    /// Pause between two statements, so pruning leaves the database to the hot path.
    pub pause_ms: u64,
    /// Time between rounds.
    pub interval_secs: u64,
}

/// The event archive the backtest reads ([`crate::storage::archive`]): consumed events,
/// written off the hot path by the archiver actor, bounded by age and by count.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    /// Keep an archive at all.
    pub enabled: bool,
    /// Events archived longer ago than this go (at least 1).
    pub days: u32,
    /// At most this many events are kept, the oldest going first (at least 1).
    pub max_events: u64,
    /// The archiver's mailbox: events arriving while it is full are dropped and counted
    /// (`wfe_archive_events_total{outcome="dropped"}`), never waited for.
    pub mailbox: usize,
    /// Rows per insert (1 to 1000).
    pub batch_size: usize,
    /// Longest time a partial batch waits before it is written.
    pub flush_ms: u64,
}

impl Archive {
    pub fn days(&self) -> u32 {
        self.days.max(1)
    }

    pub fn max_events(&self) -> u64 {
        self.max_events.max(1)
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.clamp(1, crate::storage::archive::MAX_INSERT_ROWS)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: String,
    pub level: String,
}

/// The standard OpenTelemetry variables that name a collector for traces. The exporter
/// reads them itself; the settings note them so a build without the exporter can refuse
/// them and one with it knows export is asked for.
pub const OTEL_ENDPOINT_VARIABLES: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Span export over OTLP ([`crate::telemetry`]; the exporter needs the `otlp` feature).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); empty = no export
    /// unless an OpenTelemetry variable names a collector.
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans: what a tracing backend lists them under.
    pub service_name: String,
    /// The OpenTelemetry variable naming a collector ([`OTEL_ENDPOINT_VARIABLES`]), when
    /// one is set: export is on then even with `otlp_endpoint` empty.
    #[serde(skip)]
    pub otlp_variable: Option<String>,
}

impl Telemetry {
    /// What asks for OTLP export, by name (the setting or the variable), if anything does.
    pub fn otlp_requested_by(&self) -> Option<String> {
        if !self.otlp_endpoint.trim().is_empty() {
            Some("telemetry.otlp_endpoint".to_owned())
        } else {
            self.otlp_variable.clone()
        }
    }
}

/// How workflow changes go live (issue 28, docs/changes.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    /// Four eyes: a saved version is published only after a token other than its author
    /// approved it, and a save that would go live at once (not a draft) is refused.
    #[serde(default)]
    pub require_approval: bool,
    /// Days of archived events a publish compares the version with the live one over
    /// (its answer's `impact`); 0 = none.
    #[serde(default = "default_impact_days")]
    pub impact_days: u32,
}

fn default_impact_days() -> u32 {
    7
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            require_approval: false,
            impact_days: default_impact_days(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub delay_seconds: u64,
}

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Whether `name` starts with `prefix`, ignoring ASCII case as the config crate does;
/// the rest of the name when it does.
fn strip_prefix_ci<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &name[prefix.len()..])
}

/// Every key config/default.toml defines, dotted (`kafka.brokers`): what a `WFE__…`
/// variable may name. `kafka.properties` is open-ended and checked by librdkafka instead.
fn known_keys() -> Result<BTreeSet<String>, SettingsError> {
    fn walk(prefix: &str, table: config::Map<String, config::Value>, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value.clone().into_table() {
                Ok(inner) if path != "kafka.properties" => walk(&path, inner, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    use config::Source as _;
    let defaults = config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml).collect()?;
    let mut keys = BTreeSet::new();
    walk("", defaults, &mut keys);
    Ok(keys)
}

impl Settings {
    /// Loads the layers from the process's environment. `dir` holds the optional
    /// local.toml (usually `config/`).
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        Self::load_from(dir, std::env::vars())
    }

    /// Loads the layers with `env` as the environment: what [`Settings::load`] does, and
    /// what tests call without touching the process's variables.
    pub fn load_from(dir: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let known = known_keys()?;
        let mut overrides = config::Map::new();
        let mut properties = BTreeMap::new();
        let mut extra = None;
        let mut otlp_variable = None;
        for (variable, value) in env {
            if variable == "WFE_CONFIG" {
                extra = Some(value);
            } else if OTEL_ENDPOINT_VARIABLES.contains(&variable.as_str()) {
                if !value.trim().is_empty() {
                    otlp_variable = Some(variable);
                }
            } else if let Some(name) = strip_prefix_ci(&variable, ENV_PROPERTIES) {
                if name.is_empty() {
                    return Err(SettingsError::EmptyProperty { variable });
                }
                // Kept apart from the config crate, which would read "0012" as the
                // number 12 and split dotted names into sections.
                properties.insert(name.to_ascii_lowercase().replace("__", "."), value);
            } else if let Some(rest) = strip_prefix_ci(&variable, ENV_PREFIX) {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                // `WFE__SECTION__KEY_FILE=/run/secrets/x`: the setting is the file's text,
                // as Docker and Kubernetes hand out secrets, so none has to sit in the
                // environment.
                let from_file = key.strip_suffix("_file").filter(|k| known.contains(*k));
                if let Some(key) = from_file {
                    let plain = variable[..variable.len() - "_FILE".len()].to_owned();
                    let text = std::fs::read_to_string(&value).map_err(|source| SettingsError::SettingFile {
                        variable: variable.clone(),
                        path: value.clone(),
                        source,
                    })?;
                    let text = text.strip_suffix('\n').unwrap_or(&text);
                    let text = text.strip_suffix('\r').unwrap_or(text).to_owned();
                    tracing::debug!(setting = key, file = %value, "setting read from a file");
                    if overrides.insert(plain.clone(), text).is_some() {
                        return Err(SettingsError::TwoSources { variable: plain });
                    }
                    continue;
                }
                if !known.contains(&key) {
                    return Err(SettingsError::UnknownEnv { variable, key });
                }
                if overrides.insert(variable.clone(), value).is_some() {
                    return Err(SettingsError::TwoSources { variable });
                }
            } else if strip_prefix_ci(&variable, "WFE_").is_some() && variable.contains("__") {
                return Err(SettingsError::MisspeltEnv { variable });
            }
        }
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("local.toml")).required(false));
        if let Some(extra) = extra {
            builder = builder.add_source(config::File::with_name(&extra));
        }
        let built = builder
            .add_source(
                config::Environment::with_prefix("WFE")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("scheduler.inactive_days")
                    .with_list_parse_key("delivery.webhook_allowlist")
                    .try_parsing(true)
                    .source(Some(overrides)),
            )
            .build()?;
        let mut settings: Settings = built.try_deserialize()?;
        settings.kafka.properties.extend(properties);
        settings.telemetry.otlp_variable = otlp_variable;
        let max = crate::storage::rates::MAX_PER_SEC;
        if settings.delivery.email_rate_per_sec > max {
            return Err(SettingsError::TooHigh {
                key: "delivery.email_rate_per_sec",
                value: settings.delivery.email_rate_per_sec.into(),
                max: max.into(),
            });
        }
        #[cfg(not(feature = "otlp"))]
        if let Some(by) = settings.telemetry.otlp_requested_by() {
            return Err(SettingsError::OtlpNotBuilt { by });
        }
        Ok(settings)
    }

    /// The defaults alone, for tests and tools.
    pub fn defaults() -> Result<Self, SettingsError> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .build()?;
        Ok(built.try_deserialize()?)
    }

    /// This process's name in claims and logs: `engine.node_id`, or the host, the pid and
    /// a tag drawn once per process. The tag makes every start a new node even where the
    /// host and pid repeat (a container restarted in its pod is `<pod>`, pid 1, again), so
    /// a restarted process waits for its old self's delivery leases like anyone's
    /// (docs/guarantees.md) instead of taking them for its own.
    pub fn node_id(&self) -> String {
        static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        if !self.engine.node_id.is_empty() {
            return self.engine.node_id.clone();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        let tag = TAG.get_or_init(|| {
            let mut bytes = [0u8; 3];
            // Without randomness the time still tells two starts apart.
            if openssl::rand::rand_bytes(&mut bytes).is_err() {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                bytes.copy_from_slice(&nanos.to_le_bytes()[..3]);
            }
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        format!("{host}-{}-{tag}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        Settings::load_from(dir.path(), env(pairs))
    }

    #[test]
    fn defaults_parse_and_match_the_documented_values() {
        let s = Settings::defaults().unwrap();
        assert!(s.kafka.is_embedded());
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.scheduler.poll_interval_secs, 30);
        assert_eq!(s.scheduler.inactive_days, [7, 14, 30]);
        assert_eq!(s.limits, Limits::default());
        assert_eq!(s.kafka.auto_offset_reset, OffsetReset::Latest);
        assert!(s.kafka.properties.is_empty());
        assert!(s.database.migrate);
        assert!(s.archive.enabled);
        assert_eq!((s.archive.days(), s.archive.max_events()), (30, 1_000_000));
    }

    /// `WFE__…_FILE` gives any setting from a file (a mounted secret), its one trailing
    /// newline dropped; a file that cannot be read, or a setting given twice, stops the load.
    #[test]
    fn a_setting_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret_key");
        std::fs::write(&key, format!("{}\n", "ab".repeat(32))).unwrap();
        let key = key.to_str().unwrap();
        let s = load(&[("WFE__SECURITY__SECRET_KEY_FILE", key)]).unwrap();
        assert_eq!(s.security.secret_key, "ab".repeat(32));
        assert!(s.security.sealing_key().unwrap().is_some());

        let both = load(&[
            ("WFE__SECURITY__SECRET_KEY_FILE", key),
            ("WFE__SECURITY__SECRET_KEY", "cd"),
        ]);
        assert!(matches!(both, Err(SettingsError::TwoSources { .. })), "{both:?}");
        let missing = load(&[("WFE__DATABASE__URL_FILE", "/nonexistent/wfe-db-url")]);
        let error = missing.unwrap_err().to_string();
        assert!(
            error.contains("WFE__DATABASE__URL_FILE") && error.contains("/nonexistent/wfe-db-url"),
            "{error}"
        );
        // No such setting: still a typo.
        assert!(matches!(
            load(&[("WFE__SECURITY__NOPE_FILE", key)]),
            Err(SettingsError::UnknownEnv { .. })
        ));
    }

    #[test]
    fn environment_overrides_known_keys() {
        let s = load(&[
            ("WFE__KAFKA__BROKERS", "kafka-1:9092"),
            ("WFE__KAFKA__AUTO_OFFSET_RESET", "earliest"),
            ("WFE__SCHEDULER__INACTIVE_DAYS", "3,9"),
            ("WFE_TEST_DATABASE_URL", "postgres://elsewhere"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(s.kafka.brokers, "kafka-1:9092");
        assert_eq!(s.kafka.offset_reset(), OffsetReset::Earliest);
        assert_eq!(s.scheduler.inactive_days, [3, 9]);
    }

    #[test]
    fn a_misspelt_variable_fails_naming_it() {
        let err = load(&[("WFE__KAFKA__BROKER", "kafka-1:9092")]).unwrap_err().to_string();
        assert!(
            err.contains("WFE__KAFKA__BROKER") && err.contains("kafka.broker"),
            "{err}"
        );
        let err = load(&[("WFE__DATABSE__URL", "postgres://db/wfe")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WFE__DATABSE__URL"), "{err}");
        let err = load(&[("WFE_KAFKA__BROKERS", "kafka-1:9092")]).unwrap_err().to_string();
        assert!(
            err.contains("WFE_KAFKA__BROKERS") && err.contains("two underscores"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_file_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("local.toml"), "[kafka]\nbrokerz = \"kafka-1:9092\"\n").unwrap();
        let err = Settings::load_from(dir.path(), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        std::fs::write(dir.path().join("local.toml"), "[retension]\nruns_days = 3\n").unwrap();
        let err = Settings::load_from(dir.path(), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("retension"), "{err}");
    }

    #[test]
    fn an_unknown_offset_reset_is_refused() {
        let err = load(&[("WFE__KAFKA__AUTO_OFFSET_RESET", "smallest")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("smallest"), "{err}");
    }

    #[test]
    fn properties_come_from_files_and_the_environment_as_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("local.toml"),
            "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\nsasl.mechanisms = \"SCRAM-SHA-512\"\n\"socket.keepalive.enable\" = true\n\"message.max.bytes\" = 2000000\n",
        )
        .unwrap();
        let s = Settings::load_from(
            dir.path(),
            env(&[
                ("WFE__KAFKA__PROPERTIES__SASL.PASSWORD", "0012"),
                ("WFE__KAFKA__PROPERTIES__SASL__USERNAME", "Engine"),
                ("WFE__KAFKA__PROPERTIES__SECURITY.PROTOCOL", "SSL"),
            ]),
        )
        .unwrap();
        let expected: BTreeMap<String, String> = [
            ("message.max.bytes", "2000000"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.password", "0012"),
            ("sasl.username", "Engine"),
            ("security.protocol", "SSL"),
            ("socket.keepalive.enable", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(s.kafka.properties, expected);
    }

    #[test]
    fn otlp_export_is_asked_for_by_the_setting_or_an_opentelemetry_variable() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.telemetry.service_name, "workflow-engine");
        assert_eq!(s.telemetry.otlp_requested_by(), None);
        let s = load(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).unwrap();
        assert_eq!(
            s.telemetry.otlp_requested_by(),
            None,
            "a blank variable asks for nothing"
        );
        for (variable, value, by) in [
            (
                "WFE__TELEMETRY__OTLP_ENDPOINT",
                "http://collector:4318",
                "telemetry.otlp_endpoint",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
        ] {
            match load(&[(variable, value)]) {
                #[cfg(feature = "otlp")]
                Ok(s) => assert_eq!(s.telemetry.otlp_requested_by().as_deref(), Some(by)),
                #[cfg(not(feature = "otlp"))]
                Err(e @ SettingsError::OtlpNotBuilt { .. }) => {
                    let message = e.to_string();
                    assert!(message.contains(by) && message.contains("--features otlp"), "{message}");
                }
                other => panic!("{variable}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_embedded_broker_starts_at_the_earliest_offset() {
        let s = Settings::defaults().unwrap();
        assert_eq!(s.kafka.offset_reset(), OffsetReset::Earliest);
        let s = load(&[("WFE__KAFKA__BROKERS", "kafka-1:9092")]).unwrap();
        assert_eq!(s.kafka.offset_reset(), OffsetReset::Latest);
    }
}
