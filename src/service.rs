//! `serve` and `migrate`: the process around the runtime. The edge of the program, so it
//! speaks anyhow.

use crate::actors::topology::Topology;
use crate::api::{self, AppState, Readiness};
use crate::kafka::journal::Pruner;
use crate::kafka::EmbeddedBroker;
use crate::settings::Settings;
use crate::storage::Database;
use actix_web::{App, HttpServer};
use anyhow::Context as _;
use std::sync::atomic::Ordering;

/// Connects and migrates.
pub async fn database(settings: &Settings) -> anyhow::Result<Database> {
    connect(settings, true).await
}

/// Connects; then migrates when `migrate`, or else refuses a database that is behind, so
/// an engine never runs against a schema older than its code.
pub async fn connect(settings: &Settings, migrate: bool) -> anyhow::Result<Database> {
    let url = redact(&settings.database.url);
    let key = match settings.security.sealing_key().context("reading security.secret_key")? {
        Some(key) => Some(key),
        None => generated_key(&settings.database.url)?,
    };
    let mut db = Database::connect_with_pool(&settings.database.url, Some(settings.database.max_connections))
        .await
        .with_context(|| format!("connecting to the database {url}"))?;
    if let Some(key) = key {
        db = db.with_sealing_key(key);
    }
    if migrate {
        db.migrate()
            .await
            .with_context(|| format!("migrating the database {url}"))?;
    } else {
        let pending = db
            .pending_migrations()
            .await
            .with_context(|| format!("reading the migrations applied to {url}; run `workflow-engine migrate` first"))?;
        if !pending.is_empty() {
            anyhow::bail!(
                "the database {url} lacks {} migration(s) ({}): run `workflow-engine migrate`, or serve without --no-migrate",
                pending.len(),
                pending.join(", ")
            );
        }
    }
    // Before anything reads a secret: a sealed one that cannot be opened stops the
    // process here, with the reason, rather than failing every send later.
    let previous = settings
        .security
        .previous_key()
        .context("reading security.previous_secret_key")?;
    let prepared = crate::storage::secrets::prepare(&db, previous.as_ref())
        .await
        .context("checking the integration secrets in the database")?;
    if prepared.resealed > 0 {
        tracing::info!(
            resealed = prepared.resealed,
            "integration secrets sealed with security.previous_secret_key sealed again with security.secret_key"
        );
    }
    if prepared.sealed_now > 0 {
        tracing::info!(
            sealed = prepared.sealed_now,
            "integration secrets written before security.secret_key sealed"
        );
    }
    if prepared.unsealed > 0 {
        tracing::warn!(
            unsealed = prepared.unsealed,
            "integration secrets are stored unencrypted: set security.secret_key (docs/security.md)"
        );
    }
    Ok(db)
}

/// The key file kept beside an SQLite database file.
pub const GENERATED_KEY_FILE: &str = "secret.key";

/// On an SQLite file database with no `security.secret_key` (the embedded defaults), the
/// sealing key kept in `secret.key` beside the database file, made once (32 random bytes,
/// hex, mode 0600), so a fresh install seals integration secrets from its first save. A
/// PostgreSQL database never gets one: there the key is the operator's to set and to keep
/// apart from the database's backups (docs/security.md).
fn generated_key(database_url: &str) -> anyhow::Result<Option<crate::sealing::SealingKey>> {
    let Some(path) = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && !path.contains(":memory:"))
    else {
        return Ok(None);
    };
    let file = std::path::Path::new(path)
        .parent()
        .unwrap_or_else(|| std::path::Path::new(""))
        .join(GENERATED_KEY_FILE);
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            openssl::rand::rand_bytes(&mut bytes).context("generating a sealing key")?;
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&file).with_context(|| format!("creating {shown}"))?;
            std::io::Write::write_all(&mut out, format!("{text}\n").as_bytes())
                .with_context(|| format!("writing {shown}"))?;
            tracing::info!(file = %shown, "generated the key integration secrets are sealed with; keep it, and back it up apart from the database");
            text
        }
        Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
    };
    let key =
        crate::sealing::SealingKey::parse(&text).with_context(|| format!("reading the sealing key in {shown}"))?;
    Ok(Some(key))
}

/// The configuration of every Kafka client the engine makes, for checking
/// `kafka.properties` before anything connects.
fn kafka_clients(settings: &Settings, brokers: &str) -> Vec<rdkafka::ClientConfig> {
    let kafka = &settings.kafka;
    vec![
        crate::kafka::consumer_config(brokers, &kafka.group_id, kafka),
        crate::kafka::producer_config(brokers, &kafka.properties),
    ]
}

/// Fails unless the brokers answer with the engine's client properties within
/// `kafka.connect_timeout_ms` and both topics exist.
async fn probe_brokers(settings: &Settings, brokers: &str) -> anyhow::Result<()> {
    let kafka = settings.kafka.clone();
    let brokers = brokers.to_owned();
    let timeout = std::time::Duration::from_millis(kafka.connect_timeout_ms.max(1));
    tokio::task::spawn_blocking(move || {
        crate::kafka::probe(
            &brokers,
            &kafka.properties,
            &[&kafka.topic, &kafka.dead_letter_topic],
            timeout,
        )
    })
    .await
    .context("the kafka start-up check stopped")??;
    Ok(())
}

/// The database URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

pub fn migrate(settings: Settings) -> anyhow::Result<()> {
    actix_rt::System::new().block_on(async move {
        let db = database(&settings).await?;
        println!(
            "migrations applied to {} ({})",
            redact(&settings.database.url),
            db.backend()
        );
        Ok(())
    })
}

/// The embedded broker when configured, and the bootstrap servers to use.
pub fn broker(settings: &Settings) -> anyhow::Result<(Option<EmbeddedBroker>, String)> {
    if !settings.kafka.is_embedded() {
        return Ok((None, settings.kafka.brokers.clone()));
    }
    let broker = EmbeddedBroker::start(
        &[&settings.kafka.topic, &settings.kafka.dead_letter_topic],
        settings.kafka.embedded_partitions.max(1),
    )
    .context("starting the embedded kafka broker")?;
    let servers = broker.bootstrap_servers();
    tracing::info!(bootstrap_servers = %servers, "embedded kafka broker started");
    Ok((Some(broker), servers))
}

/// Runs the engine until SIGINT or SIGTERM. `migrate` applies pending migrations first
/// (`database.migrate`, turned off by `serve --no-migrate`).
pub fn serve(settings: Settings, migrate: bool) -> anyhow::Result<()> {
    let runner = actix_rt::System::new();
    let broker = runner.block_on(async move {
        // The librdkafka properties first: a typo there is the cheapest thing to report.
        crate::kafka::check_properties(
            &settings.kafka.properties,
            &kafka_clients(&settings, &settings.kafka.brokers),
        )?;
        let db = connect(&settings, migrate).await?;
        let (broker, brokers) = broker(&settings)?;
        probe_brokers(&settings, &brokers).await?;
        if broker.is_some() {
            replay_journal(&settings, &db, &brokers).await?;
        }
        crate::telemetry::register_process_metrics(&crate::metrics::Metrics::global().registry)
            .context("registering the process metrics")?;
        let topology = Topology::start(&settings, db.clone(), &brokers).context("starting the engine")?;
        let readiness = Readiness {
            migrated: Default::default(),
            owned: Some(topology.ownership.clone()),
        };
        readiness.migrated.store(true, Ordering::Release);
        let state = AppState {
            db: db.clone(),
            limits: settings.limits,
            producer: topology.producer.clone(),
            topic: settings.kafka.topic.clone(),
            brokers: brokers.clone(),
            embedded: broker.is_some(),
            node_id: settings.node_id(),
            matcher: Some(topology.reload()),
            readiness,
            webhook_allowlist: settings.delivery.webhook_allowlist.clone(),
            heavy: api::Heavy::new(&settings.api, crate::clock::system()),
            changes: settings.changes.clone(),
        };
        let (body_limit, auth) = (settings.http.body_limit, api::Auth::from_settings(&settings)?);
        let server = HttpServer::new(move || {
            let (state, auth) = (state.clone(), auth.clone());
            App::new().configure(move |cfg| api::configure(cfg, state, body_limit, auth))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(5)
        .bind(&settings.http.bind)
        .with_context(|| format!("binding {}", settings.http.bind))?;
        for addr in server.addrs() {
            // Printed, not only logged: tests and scripts starting on port 0 read it.
            println!("listening on http://{addr}");
            tracing::info!(%addr, database = db.backend(), kafka = %brokers, "workflow-engine serving");
        }
        let pruner = match broker {
            Some(_) => {
                let kafka = &settings.kafka;
                let partitions = kafka.embedded_partitions.max(1);
                let pruner = Pruner::new(db.clone(), &brokers, &kafka.group_id, &kafka.topic, partitions)?;
                actix_rt::spawn(pruner.clone().run());
                Some(pruner)
            }
            None => None,
        };
        let server = server.run();
        let handle = server.handle();
        let server_task = actix_rt::spawn(server);
        shutdown_signal().await;
        tracing::info!("shutting down: stop consuming, finish in-flight work, commit");
        handle.stop(true).await;
        topology.shutdown().await;
        if let Some(pruner) = pruner {
            // The group committed on the way out: what it consumed is not replayed.
            if let Err(e) = pruner.once().await {
                tracing::warn!(error = %e, "pruning the journal of the embedded broker failed");
            }
        }
        let _ = server_task.await;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(broker)
    })?;
    // The embedded broker goes last, once the runtime and its Kafka clients are gone.
    drop(runner);
    drop(broker);
    Ok(())
}

/// Publishes what the embedded broker's journal holds (what the last process accepted or
/// emitted and the group had not committed past), before the consumer joins.
async fn replay_journal(settings: &Settings, db: &Database, brokers: &str) -> anyhow::Result<()> {
    let producer = crate::kafka::producer_with(brokers, &settings.kafka.properties)?;
    let replayed = crate::kafka::journal::replay(db, &producer)
        .await
        .context("publishing the embedded broker's journal again")?;
    if replayed > 0 {
        tracing::info!(replayed, "events not consumed before the last stop published again");
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
