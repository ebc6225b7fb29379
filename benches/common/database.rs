//! The benches' scratch database: a new PostgreSQL database on the server
//! `WFE_BENCH_DATABASE_URL` names, else a temporary SQLite file; migrated, and removed
//! again afterwards.

use sea_orm::ConnectionTrait;
use workflow_engine::storage::Database;

/// A fresh database, migrated, with a pool of `max_connections` (pass the service's
/// `database.max_connections` to measure what it runs). Returns what [`drop_database`]
/// needs to remove it.
pub async fn fresh_database(tag: &str, max_connections: u32) -> (Database, Scratch) {
    match std::env::var("WFE_BENCH_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        Some(server) => {
            let name = format!("wfe_bench_{tag}_{}", std::process::id());
            let admin = Database::connect(&server)
                .await
                .expect("connect to the benchmark server");
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create database");
            let mut url = url::Url::parse(&server).expect("database url");
            url.set_path(&name);
            let db = Database::connect_with_pool(url.as_str(), Some(max_connections))
                .await
                .expect("connect");
            db.migrate().await.expect("migrate");
            (db, Scratch::Postgres { admin, name })
        }
        None => {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Database::connect_with_pool(
                &format!("sqlite://{}/bench.db", dir.path().display()),
                Some(max_connections),
            )
            .await
            .expect("sqlite");
            db.migrate().await.expect("migrate");
            (db, Scratch::Sqlite { _dir: dir })
        }
    }
}

/// What to remove after a scenario: a million parked runs should not stay on the server.
pub enum Scratch {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { admin: Database, name: String },
}

pub async fn drop_database(db: Database, scratch: Scratch) {
    let _ = db.close().await;
    if let Scratch::Postgres { admin, name } = scratch {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}
