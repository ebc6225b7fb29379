//! A fresh migrated database per test: a SQLite file in a temporary directory, or, when
//! WFE_TEST_DATABASE_URL points at a PostgreSQL server, a new database created there.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::ConnectionTrait;
use std::sync::atomic::{AtomicU32, Ordering};
use workflow_engine::storage::Database;

/// The environment variable naming a PostgreSQL server to test against.
pub const PG_ENV: &str = "WFE_TEST_DATABASE_URL";

pub struct TestDb {
    pub db: Database,
    /// The URL of this test's database, for more connections to it.
    pub url: String,
    /// Keeps the SQLite file alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// The server URL and database name to drop at the end (PostgreSQL).
    drop: Option<(String, String)>,
}

impl TestDb {
    pub fn is_postgres(&self) -> bool {
        self.drop.is_some()
    }

    /// A second, independent connection pool to the same database.
    pub async fn connect_again(&self) -> Database {
        Database::connect(&self.url).await.unwrap()
    }

    /// Closes the pool and drops the PostgreSQL database; skipped when a test fails, which
    /// leaves the database for a look.
    pub async fn finish(self) {
        let TestDb { db, drop, .. } = self;
        db.close().await.unwrap();
        if let Some((server, name)) = drop {
            let admin = Database::connect(&server).await.unwrap();
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = admin.close().await;
        }
    }
}

pub async fn fresh() -> TestDb {
    let test = match std::env::var(PG_ENV).ok().filter(|u| !u.is_empty()) {
        Some(server) => postgres(&server).await,
        None => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/data/engine.db", dir.path().display());
            TestDb {
                db: Database::connect(&url).await.unwrap(),
                url,
                _dir: Some(dir),
                drop: None,
            }
        }
    };
    test.db.migrate().await.unwrap();
    test
}

async fn postgres(server: &str) -> TestDb {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = Utc::now().timestamp_subsec_nanos();
    let name = format!(
        "wfe_test_{}_{}_{}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let admin = Database::connect(server).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    // A local test server: no TLS unless the URL asks for it. Handshakes for every pooled
    // connection are slow on a loaded machine and only add noise here.
    if !url.query_pairs().any(|(k, _)| k == "sslmode") {
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    let url = url.to_string();
    TestDb {
        db: Database::connect(&url).await.unwrap(),
        url,
        _dir: None,
        drop: Some((server.to_owned(), name)),
    }
}

/// A fixed instant, so tests control time.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap()
}

/// The current fence of `partition`, taking ownership for "test" when nobody owns it yet:
/// what a step's transaction is checked against.
pub async fn fence(db: &Database, partition: i32) -> workflow_engine::storage::ownership::Fence {
    use workflow_engine::storage::ownership::{self, Fence};
    let owners = ownership::owners(db).await.unwrap();
    match owners.into_iter().find(|(p, ..)| *p == partition) {
        Some((_, _, epoch)) => Fence { partition, epoch },
        None => ownership::acquire(db, partition, "test", t0()).await.unwrap(),
    }
}

/// Inserts plain customers (no agent, no statuses, no activity date).
pub async fn add_customers(db: &Database, ids: impl IntoIterator<Item = i64>) {
    use sea_orm::{EntityTrait, Set};
    use workflow_engine::storage::entities::customers;
    let now = Utc::now();
    let rows: Vec<customers::ActiveModel> = ids
        .into_iter()
        .map(|id| customers::ActiveModel {
            id: Set(id),
            first_name: Set(format!("First{id}")),
            last_name: Set(format!("Last{id}")),
            email: Set(format!("customer{id}@example.com")),
            phone: Set(format!("+1555{id:07}")),
            country: Set("GB".into()),
            language: Set("en".into()),
            balance: Set(0.0),
            registered_at: Set(None),
            last_activity_at: Set(None),
            agent_id: Set(None),
            team_id: Set(None),
            desk: Set("sales".into()),
            active: Set(true),
            frozen: Set(false),
            custom_fields: Set(serde_json::json!({})),
            updated_at: Set(now),
            // time zone UTC, no opt-outs: the columns' defaults
            ..Default::default()
        })
        .collect();
    customers::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .unwrap();
}

/// The API's state over `db` alone, for tests that call the API in process: default
/// limits and heavy-request pool, no running engine, and a producer that is never
/// connected (these tests publish nothing through it).
pub fn api_state(db: &Database) -> workflow_engine::api::AppState {
    workflow_engine::api::AppState {
        db: db.clone(),
        limits: Default::default(),
        producer: workflow_engine::kafka::producer_with("127.0.0.1:9", &Default::default())
            .expect("a producer needs no broker to be made"),
        topic: "crm.events".into(),
        brokers: "127.0.0.1:9".into(),
        embedded: false,
        node_id: "test".into(),
        matcher: None,
        readiness: Default::default(),
        webhook_allowlist: Vec::new(),
        heavy: workflow_engine::api::Heavy::new(&Default::default(), workflow_engine::clock::system()),
        changes: Default::default(),
    }
}
