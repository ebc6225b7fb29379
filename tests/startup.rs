//! Start-up of the built binary against what production gets wrong: a misspelt setting,
//! a librdkafka property it refuses, an unreachable broker or database, a database that
//! is behind when the engine may not migrate it, and several processes migrating one
//! fresh PostgreSQL database at once. Each failure must stop the process with a message
//! naming the culprit, never fall back to the embedded defaults.

#[path = "common/process.rs"]
mod process;
#[path = "common/tls.rs"]
mod tls;

use process::{command, Broker, Engine, Scratch};
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Bounds a start-up that is expected to fail; it only stops a hang.
const EXIT: Duration = Duration::from_secs(60);

/// Runs `workflow-engine <args>` with `env` and returns its exit success and stderr;
/// fails the test if it is still running after [`EXIT`].
fn run(dir: &Path, name: &str, args: &[&str], env: &[(String, String)]) -> (bool, String) {
    let stderr = dir.join(format!("{name}.stderr"));
    let mut child = command(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("starting workflow-engine");
    let deadline = Instant::now() + EXIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "workflow-engine {name} still running after {EXIT:?}:\n{}",
                process::tail(&stderr, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), std::fs::read_to_string(&stderr).unwrap_or_default())
}

/// `serve` with the test defaults plus `extra`, expected to fail: its stderr.
fn serve_fails(scratch: &Scratch, brokers: &str, name: &str, extra: &[(&str, &str)]) -> String {
    let mut env = process::base_env(scratch.path(), brokers);
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let (ok, stderr) = run(scratch.path(), name, &["serve"], &env);
    assert!(!ok, "{name}: serve started although it should not:\n{stderr}");
    stderr
}

#[test]
fn a_misspelt_setting_fails_start_up_naming_it() {
    let scratch = Scratch::new("typo");
    let broker = Broker::start();
    let brokers = broker.bootstrap_servers();
    let stderr = serve_fails(&scratch, &brokers, "env", &[("WFE__KAFKA__BROKER", "kafka-1:9092")]);
    assert!(stderr.contains("WFE__KAFKA__BROKER"), "{stderr}");
    let stderr = serve_fails(
        &scratch,
        &brokers,
        "prefix",
        &[("WFE_DATABASE__URL", "postgres://db/wfe")],
    );
    assert!(stderr.contains("WFE_DATABASE__URL"), "{stderr}");

    std::fs::create_dir_all(scratch.path().join("config")).expect("config dir");
    std::fs::write(
        scratch.path().join("config/local.toml"),
        "[database]\nurll = \"postgres://db/wfe\"\n",
    )
    .expect("local.toml");
    let stderr = serve_fails(&scratch, &brokers, "file", &[]);
    assert!(stderr.contains("urll"), "{stderr}");
}

#[test]
fn a_property_librdkafka_refuses_fails_start_up_naming_it() {
    let scratch = Scratch::new("property");
    let broker = Broker::start();
    let stderr = serve_fails(
        &scratch,
        &broker.bootstrap_servers(),
        "property",
        &[("WFE__KAFKA__PROPERTIES__SOCKET.KEEPALIVE.ENABEL", "true")],
    );
    assert!(stderr.contains("socket.keepalive.enabel"), "{stderr}");
    let stderr = serve_fails(
        &scratch,
        &broker.bootstrap_servers(),
        "reserved",
        &[("WFE__KAFKA__PROPERTIES__GROUP__ID", "other")],
    );
    assert!(stderr.contains("kafka.properties.group.id"), "{stderr}");
}

/// An OTLP endpoint given to a build without the exporter (no `otlp` feature) stops
/// start-up: the spans the operator expects would never leave the process. The standard
/// OpenTelemetry variable counts as much as the setting.
#[cfg(not(feature = "otlp"))]
#[test]
fn an_otlp_endpoint_fails_start_up_without_the_exporter() {
    let scratch = Scratch::new("otlp-missing");
    let broker = Broker::start();
    let brokers = broker.bootstrap_servers();
    for (variable, named) in [
        ("WFE__TELEMETRY__OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ] {
        let stderr = serve_fails(&scratch, &brokers, named, &[(variable, "http://127.0.0.1:4318")]);
        assert!(stderr.contains(named) && stderr.contains("--features otlp"), "{stderr}");
    }
}

#[actix_rt::test]
async fn a_good_property_is_given_to_the_clients_and_the_engine_serves() {
    let scratch = Scratch::new("good-property");
    let broker = Broker::start();
    let mut env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    env.push((
        "WFE__KAFKA__PROPERTIES__SOCKET__KEEPALIVE__ENABLE".into(),
        "true".into(),
    ));
    let engine = Engine::start(scratch.path(), "good-property", &env).await;
    engine.ready(Duration::from_secs(45)).await;
}

#[test]
fn an_unreachable_broker_fails_start_up_naming_it() {
    let scratch = Scratch::new("no-broker");
    // Nothing listens on port 1.
    let stderr = serve_fails(
        &scratch,
        "127.0.0.1:1",
        "no-broker",
        &[("WFE__KAFKA__CONNECT_TIMEOUT_MS", "2000")],
    );
    assert!(
        stderr.contains("127.0.0.1:1") && stderr.contains("unreachable"),
        "{stderr}"
    );
}

/// The `error:` line the binary prints last, without the logs before it.
fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

/// A broker whose TLS certificate the engine's `ssl.ca.location` does not vouch for
/// fails start-up, and the message names the broker and says the certificate failed
/// verification: an operator sees a CA problem, not just "unreachable". The endpoint is
/// a real TLS server (tests/common/tls.rs) that speaks no Kafka; with its own CA trusted
/// the handshake passes and only the missing Kafka answer is reported, which shows the
/// message comes from the handshake.
#[test]
fn a_broker_with_an_untrusted_tls_certificate_fails_start_up_saying_so() {
    let scratch = Scratch::new("tls");
    let server_ca = tls::Ca::new("wfe test broker ca");
    let other_ca = tls::Ca::new("wfe test other ca");
    server_ca.write_pem(&scratch.path().join("server-ca.pem"));
    other_ca.write_pem(&scratch.path().join("other-ca.pem"));
    let endpoint = tls::Listener::start(&server_ca);
    let brokers = endpoint.address();
    let over_tls = |ca: &str| {
        [
            ("WFE__KAFKA__CONNECT_TIMEOUT_MS", "3000".to_owned()),
            ("WFE__KAFKA__PROPERTIES__SECURITY__PROTOCOL", "ssl".to_owned()),
            (
                "WFE__KAFKA__PROPERTIES__SSL__CA__LOCATION",
                scratch.path().join(ca).display().to_string(),
            ),
        ]
    };

    let untrusted = over_tls("other-ca.pem");
    let untrusted: Vec<(&str, &str)> = untrusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stderr = serve_fails(&scratch, &brokers, "tls-untrusted", &untrusted);
    let error = error_line(&stderr);
    assert!(error.contains(&brokers) && error.contains("unreachable"), "{error}");
    assert!(error.contains("certificate verify failed"), "{error}");
    assert!(
        endpoint.connections() > 0,
        "the engine never connected to the TLS endpoint"
    );

    let trusted = over_tls("server-ca.pem");
    let trusted: Vec<(&str, &str)> = trusted.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stderr = serve_fails(&scratch, &brokers, "tls-trusted", &trusted);
    let error = error_line(&stderr);
    assert!(error.contains(&brokers) && error.contains("unreachable"), "{error}");
    assert!(!error.contains("certificate verify failed"), "{error}");
}

#[test]
fn a_missing_topic_fails_start_up_naming_it() {
    let scratch = Scratch::new("no-topic");
    let broker = Broker::start();
    let stderr = serve_fails(
        &scratch,
        &broker.bootstrap_servers(),
        "no-topic",
        &[("WFE__KAFKA__TOPIC", "crm.evnets")],
    );
    assert!(stderr.contains("crm.evnets"), "{stderr}");
}

#[test]
fn an_unreachable_database_fails_start_up_naming_it() {
    let scratch = Scratch::new("no-db");
    let broker = Broker::start();
    let stderr = serve_fails(
        &scratch,
        &broker.bootstrap_servers(),
        "no-db",
        &[("WFE__DATABASE__URL", "postgres://wfe:pw@127.0.0.1:1/wfe")],
    );
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains(":pw@"), "the password is redacted: {stderr}");
}

#[actix_rt::test]
async fn serve_without_migrations_refuses_a_database_that_is_behind() {
    let scratch = Scratch::new("no-migrate");
    let broker = Broker::start();
    let env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    let (ok, stderr) = run(scratch.path(), "behind", &["serve", "--no-migrate"], &env);
    assert!(!ok, "served an unmigrated database:\n{stderr}");
    assert!(stderr.contains("workflow-engine migrate"), "{stderr}");

    let (ok, stderr) = run(scratch.path(), "migrate", &["migrate"], &env);
    assert!(ok, "migrate failed:\n{stderr}");
    let mut env = env;
    env.push(("WFE__DATABASE__MIGRATE".into(), "false".into()));
    let engine = Engine::start(scratch.path(), "migrated", &env).await;
    engine.ready(Duration::from_secs(45)).await;
}

/// Three processes start at once on one fresh PostgreSQL database: the advisory lock makes
/// them migrate in turn, so all three come up.
#[cfg_attr(not(wfe_postgres), ignore = "needs WFE_TEST_DATABASE_URL (PostgreSQL)")]
#[actix_rt::test]
async fn three_processes_migrate_one_fresh_postgres_database_at_once() {
    use sea_orm::ConnectionTrait;
    let server = std::env::var("WFE_TEST_DATABASE_URL").expect("WFE_TEST_DATABASE_URL");
    let name = format!("wfe_test_startup_{}", std::process::id());
    let admin = workflow_engine::storage::Database::connect(&server)
        .await
        .expect("server");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create");
    let mut url = url::Url::parse(&server).expect("url");
    url.set_path(&format!("/{name}"));
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }

    let scratch = Scratch::new("three");
    let broker = Broker::start();
    let mut env = process::base_env(scratch.path(), &broker.bootstrap_servers());
    env.push(("WFE__DATABASE__URL".into(), url.to_string()));
    let (a, b, c) = futures_util::join!(
        Engine::start(scratch.path(), "first", &env),
        Engine::start(scratch.path(), "second", &env),
        Engine::start(scratch.path(), "third", &env),
    );
    for engine in [&a, &b, &c] {
        let (status, body) = engine.api().get("/api/v1/info").await;
        assert_eq!(status, 200, "{}: {body}", engine.name);
    }
    drop((a, b, c));
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// A process that owns no partition (here the second of two on a one-partition topic) is
/// still ready: its API serves, and a 503 would only drop it from the load balancer. The
/// body shows that it consumes nothing.
#[actix_rt::test]
async fn a_process_owning_no_partition_is_ready_and_says_so() {
    use rdkafka::mocking::MockCluster;
    let cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext> =
        MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("one", 1, 1).expect("topic");
    cluster.create_topic("one.dlq", 1, 1).expect("dead-letter topic");
    let scratch = Scratch::new("idle");
    let mut env = process::base_env(scratch.path(), &cluster.bootstrap_servers());
    env.push(("WFE__KAFKA__TOPIC".into(), "one".into()));
    env.push(("WFE__KAFKA__DEAD_LETTER_TOPIC".into(), "one.dlq".into()));
    let first = Engine::start(scratch.path(), "owner", &env).await;
    first.ready(Duration::from_secs(45)).await;
    let second = Engine::start(scratch.path(), "idle", &env).await;
    let (first_api, second_api) = (first.api(), second.api());
    let idle = process::eventually(
        "one process owning the partition, the other none",
        Duration::from_secs(60),
        || async {
            let (a, a_body) = first_api.get("/readyz").await;
            let (b, b_body) = second_api.get("/readyz").await;
            let owners = [&a_body, &b_body]
                .iter()
                .filter(|body| body["consumer"] == true)
                .count();
            (a == 200 && b == 200 && owners == 1).then(|| if a_body["consumer"] == true { b_body } else { a_body })
        },
    )
    .await;
    assert_eq!(idle["ready"], true, "{idle}");
    assert_eq!(idle["partitions"], serde_json::json!([]), "{idle}");
}

/// On an SQLite file with no `security.secret_key` (the embedded defaults), the engine
/// makes a sealing key once, beside the database, readable by its owner alone, and uses
/// the same key on every start. With a key given (here as a file, `…_FILE`), it makes none.
#[test]
fn an_sqlite_install_without_a_key_makes_one_beside_its_database() {
    let scratch = Scratch::new("generated-key");
    let env = process::base_env(scratch.path(), "127.0.0.1:9");
    let (ok, stderr) = run(scratch.path(), "migrate-1", &["migrate"], &env);
    assert!(ok, "{stderr}");
    let file = scratch.path().join("secret.key");
    let key = std::fs::read_to_string(&file).expect("a generated key");
    assert_eq!(key.trim().len(), 64, "{key}");
    assert!(key.trim().chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (ok, stderr) = run(scratch.path(), "migrate-2", &["migrate"], &env);
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), key, "made once");

    let other = Scratch::new("given-key");
    let given = other.path().join("given");
    std::fs::write(&given, "cd".repeat(32)).unwrap();
    let mut env = process::base_env(other.path(), "127.0.0.1:9");
    env.push(("WFE__SECURITY__SECRET_KEY_FILE".to_owned(), given.display().to_string()));
    let (ok, stderr) = run(other.path(), "migrate-given", &["migrate"], &env);
    assert!(ok, "{stderr}");
    assert!(
        !other.path().join("secret.key").exists(),
        "a given key is used as it is"
    );
}
