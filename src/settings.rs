//! Configuration: config/default.toml, then config/local.toml, then WFE__SECTION__KEY
//! environment variables. config/default.toml documents every key.

use crate::conditions::Limits;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid configuration: {0}")]
    Config(#[from] config::ConfigError),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: Http,
    pub database: Database,
    pub kafka: Kafka,
    pub engine: Engine,
    pub limits: Limits,
    pub scheduler: Scheduler,
    pub delivery: Delivery,
    #[serde(default)]
    pub auth: Auth,
    pub log: Log,
    pub demo: Demo,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Http {
    pub bind: String,
    pub body_limit: usize,
    pub auth_token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Kafka {
    pub brokers: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub embedded_partitions: i32,
    pub in_flight_per_partition: usize,
}

impl Kafka {
    pub fn is_embedded(&self) -> bool {
        self.brokers.trim() == "embedded"
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Engine {
    pub node_id: String,
    pub arbiters: usize,
    pub executor_idle_secs: u64,
    pub matcher_mailbox: usize,
    pub executor_mailbox: usize,
    pub workflow_poll_ms: u64,
    pub max_step_attempts: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Scheduler {
    pub poll_interval_secs: u64,
    pub claim_batch: u64,
    pub lease_secs: u64,
    pub delay_override_secs: u64,
    pub emit_task_overdue: bool,
    pub inactive_days: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub concurrency: usize,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub email_url: String,
    pub webhook_secret: String,
    pub webhook_allowlist: Vec<String>,
}

/// Scoped API tokens (docs/security.md). `http.auth_token` is one more token, with every
/// scope.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Auth {
    /// `{name, token | token_sha256, scopes}`; the name is recorded as the author of
    /// workflow versions.
    #[serde(default)]
    pub tokens: Vec<crate::api::TokenConfig>,
    /// GET /metrics needs a token with the `read` scope too.
    #[serde(default)]
    pub protect_metrics: bool,
}

impl Settings {
    /// The API's auth from `http.auth_token` and `auth`.
    pub fn api_auth(&self) -> Result<crate::api::Auth, crate::api::AuthConfigError> {
        crate::api::Auth::new(&self.http.auth_token, &self.auth.tokens, self.auth.protect_metrics)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Log {
    pub format: String,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Demo {
    pub delay_seconds: u64,
}

/// The defaults, compiled in so the binary runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

impl Settings {
    /// Loads the layers. `dir` holds the optional local.toml (usually `config/`).
    pub fn load(dir: &Path) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .add_source(config::File::from(dir.join("local.toml")).required(false));
        if let Ok(extra) = std::env::var("WFE_CONFIG") {
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
                    .try_parsing(true),
            )
            .build()?;
        Ok(built.try_deserialize()?)
    }

    /// The defaults alone, for tests and tools.
    pub fn defaults() -> Result<Self, SettingsError> {
        let built = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml))
            .build()?;
        Ok(built.try_deserialize()?)
    }

    /// This process's name in claims and logs.
    pub fn node_id(&self) -> String {
        if !self.engine.node_id.is_empty() {
            return self.engine.node_id.clone();
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        format!("{host}-{}", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_match_the_documented_values() {
        let s = Settings::defaults().unwrap();
        assert!(s.kafka.is_embedded());
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.scheduler.poll_interval_secs, 30);
        assert_eq!(s.scheduler.inactive_days, [7, 14, 30]);
        assert_eq!(s.limits, Limits::default());
    }
}
