//! The database: one connection pool over SQLite (the embedded default) or PostgreSQL
//! (production), the entities, and one repository per concept.
//!
//! Repository functions take any [`ConnectionTrait`], so the same call works on the pool
//! ([`Database`] implements the trait) and inside a transaction: an action composes them
//! into one transaction with its step's status.
//!
//! SQLite runs with a single pooled connection, whatever `max_connections` says, so it has a
//! single writer; PostgreSQL relies on row locks and atomic statements. Code holding a
//! transaction must use that transaction for every query, never the pool, or it waits on
//! itself under SQLite.

pub mod activity;
pub mod agents;
pub mod archive;
pub mod audit;
pub mod changes;
pub mod contact;
pub mod crm;
pub mod customers;
pub mod drafts;
pub mod emitters;
pub mod endpoints;
pub mod entities;
pub mod entries;
pub mod goals;
pub mod journal;
pub mod outbox;
pub mod ownership;
pub mod plans;
pub mod progress;
pub mod rates;
pub mod recovery;
pub mod retention;
pub mod runs;
pub mod scheduled;
pub mod secrets;
pub mod seed;
pub mod sms_providers;
pub mod sql;
pub mod stats;
pub mod statuses;
pub mod steps;
pub mod sync;
pub mod targets;
pub mod tasks;
pub mod teams;
pub mod waits;
pub mod workflows;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};
use std::path::PathBuf;
use std::time::Duration;

/// The PostgreSQL advisory lock key migrations run under: a constant no other tool is
/// likely to use (the ASCII bytes of "wfe-migr").
pub const MIGRATION_LOCK: i64 = 0x7766_652d_6d69_6772;

/// How long a SQLite connection waits for a lock held by another process before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workflow {0:?} not found")]
    WorkflowNotFound(String),
    #[error("workflow {0:?} already exists")]
    WorkflowExists(String),
    #[error("workflow {id:?} is at version {current}, not {expected}: reload it and apply your change again")]
    VersionConflict { id: String, current: i64, expected: i64 },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid seed workflow {index}: {message}")]
    InvalidSeed { index: usize, message: String },
    /// A sealed integration secret could not be sealed or opened ([`crate::sealing`]).
    #[error(transparent)]
    Sealing(#[from] crate::sealing::SealError),
    /// The work's partition changed hands: its epoch is not the current one.
    #[error("partition {partition} is fenced: epoch {epoch} is not the current {current:?}")]
    Fenced {
        partition: i32,
        epoch: i64,
        current: Option<i64>,
    },
}

impl StorageError {
    /// Whether this process lost the partition the work belongs to.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StorageError::Fenced { .. })
    }
}

impl StorageError {
    /// Whether the database refused the data itself (see [`refuses_data`]): the same
    /// statement with the same values fails the same way on every retry.
    pub fn is_refused_data(&self) -> bool {
        matches!(self, StorageError::Db(e) if refuses_data(e))
    }
}

impl crate::retry::Classify for StorageError {
    /// Database errors are transient (the database may come back, a lock may clear),
    /// except those that refuse the data itself; everything else would fail again, and a
    /// fenced partition must not be retried.
    fn verdict(&self) -> crate::retry::Verdict {
        match self {
            StorageError::Db(_) if self.is_refused_data() => crate::retry::Verdict::Permanent,
            StorageError::Db(_) => crate::retry::Verdict::Transient,
            _ => crate::retry::Verdict::Permanent,
        }
    }
}

/// Whether `e` is the database refusing the values of a statement, which no retry mends:
/// poison data that must be set aside (dead-lettered, dropped from a batch) instead of
/// holding up what comes after it.
///
/// On PostgreSQL: SQLSTATE class 22, data exception (a `\u0000` in `jsonb` or `text`, a
/// string or number out of range), and class 54, program limit exceeded (a value too
/// large for an index row). On SQLite: `SQLITE_TOOBIG` (18), `SQLITE_MISMATCH` (20) and
/// `SQLITE_RANGE` (25). Constraint violations are not in the list: the engine's own
/// statements race on unique keys on purpose and read the winner on the next attempt.
pub fn refuses_data(e: &DbErr) -> bool {
    use sea_orm::{sqlx, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(sqlx::Error::Database(db)))
    | DbErr::Query(RuntimeErr::SqlxError(sqlx::Error::Database(db)))) = e
    else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        Some(_) => code.starts_with("22") || code.starts_with("54"),
        // SQLite reports its (extended) result code; the primary code is its low byte.
        None => code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 18 | 20 | 25)),
    }
}

/// The engine's database: a sea-orm connection pool and the backend it speaks to.
#[derive(Debug, Clone)]
pub struct Database {
    conn: DatabaseConnection,
    /// Seals integration secrets on write and opens them on read ([`secrets`]); `None`
    /// when `security.secret_key` is not set (secrets are then kept as written). Held
    /// here so every reader and writer of those columns has it, and nothing else does.
    sealing: Option<std::sync::Arc<crate::sealing::SealingKey>>,
}

impl Database {
    /// Connects to `url` (`sqlite://path`, `sqlite::memory:` or `postgres://…`).
    ///
    /// For a SQLite file the parent directory is created and the file too (`mode=rwc`), so
    /// a fresh checkout runs with no setup; WAL lets readers in other processes (the CLI,
    /// a dashboard) read while the engine writes, and the busy timeout makes a second
    /// writer wait instead of failing at once.
    pub async fn connect(url: &str) -> Result<Database, StorageError> {
        Self::connect_with_pool(url, None).await
    }

    /// [`Database::connect`] with a pool of at most `max_connections` (the driver's
    /// default when `None`); SQLite always gets one connection.
    pub async fn connect_with_pool(url: &str, max_connections: Option<u32>) -> Result<Database, StorageError> {
        let url = if url.starts_with("sqlite:") {
            prepare_sqlite_url(url)?
        } else {
            url.to_owned()
        };
        let sqlite = url.starts_with("sqlite:");
        let mut options = ConnectOptions::new(url);
        if sqlite {
            // One writer at a time is all SQLite has: with more connections, a transaction
            // that read before it wrote fails at its first write whenever another
            // connection committed in between (SQLITE_BUSY_SNAPSHOT, which no busy timeout
            // waits out), and those failures reached API callers as 503s.
            options.max_connections(1);
        } else if let Some(max) = max_connections {
            options.max_connections(max.max(1));
        }
        options.sqlx_logging(false).map_sqlx_sqlite_opts(|o| {
            // WAL with synchronous=NORMAL: a commit survives the process dying (kill -9,
            // a panic), only an OS crash or power loss can lose the last ones; FULL
            // would fsync every step's transaction and cap the embedded default at a
            // few hundred steps a second. Production durability comes from PostgreSQL.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
        let conn = sea_orm::Database::connect(options).await?;
        Ok(Database { conn, sealing: None })
    }

    /// Wraps an existing connection (e.g. one with custom pool settings).
    pub fn from_connection(conn: DatabaseConnection) -> Database {
        Database { conn, sealing: None }
    }

    /// This database, sealing integration secrets with `key` (`security.secret_key`).
    pub fn with_sealing_key(mut self, key: crate::sealing::SealingKey) -> Database {
        self.sealing = Some(std::sync::Arc::new(key));
        self
    }

    /// The key integration secrets are sealed with, if one is set.
    pub fn sealing_key(&self) -> Option<&crate::sealing::SealingKey> {
        self.sealing.as_deref()
    }

    /// Applies every pending migration; a no-op on an up-to-date database.
    ///
    /// On PostgreSQL the migrations run inside one transaction that first takes an
    /// advisory lock ([`MIGRATION_LOCK`]): processes starting together on a fresh database
    /// take turns instead of racing to create the same tables, and each one after the
    /// first finds nothing left to do. The transaction holds a single connection, so this
    /// works with any pool size, and the lock goes with the transaction even if the
    /// process dies midway.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        use migrations::MigratorTrait;
        if self.conn.get_database_backend() != DbBackend::Postgres {
            migrations::Migrator::up(&self.conn, None).await?;
            return Ok(());
        }
        let txn = self.conn.begin().await?;
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK.into()],
        ))
        .await?;
        migrations::Migrator::up(&txn, None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The migrations this database has not had yet, by name, without changing anything
    /// (for `serve` when it does not migrate).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StorageError> {
        use migrations::MigratorTrait;
        // A database never migrated has no seaql_migrations table: the error says so.
        let applied: std::collections::HashSet<String> = self
            .conn
            .query_all(Statement::from_string(
                self.conn.get_database_backend(),
                "SELECT version FROM seaql_migrations",
            ))
            .await?
            .iter()
            .filter_map(|row| row.try_get::<String>("", "version").ok())
            .collect();
        Ok(migrations::Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .filter(|name| !applied.contains(name))
            .collect())
    }

    /// A short query, for readiness: whether the database answers now.
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.conn.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// "sqlite" or "postgres", for `/api/v1/info` and logs.
    pub fn backend(&self) -> &'static str {
        match self.conn.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
        }
    }

    /// The connection pool as it stands: `(open, idle, max)` connections. In use is open
    /// minus idle; a pool at its max with none idle makes every statement queue.
    pub fn pool(&self) -> (u32, u32, u32) {
        let idle = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self.conn.get_database_backend() {
            DbBackend::Sqlite => {
                let pool = self.conn.get_sqlite_connection_pool();
                (pool.size(), idle(pool.num_idle()), pool.options().get_max_connections())
            }
            DbBackend::Postgres => {
                let pool = self.conn.get_postgres_connection_pool();
                (pool.size(), idle(pool.num_idle()), pool.options().get_max_connections())
            }
            DbBackend::MySql => (0, 0, 0),
        }
    }

    /// The underlying sea-orm connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<DatabaseTransaction, StorageError> {
        Ok(self.conn.begin().await?)
    }

    /// Starts a transaction for work of `fence`'s partition: it fails with
    /// [`StorageError::Fenced`] when the partition changed hands (see [`ownership`]).
    pub async fn begin_fenced(&self, fence: ownership::Fence) -> Result<DatabaseTransaction, StorageError> {
        let txn = self.conn.begin().await?;
        ownership::check(&txn, fence).await?;
        Ok(txn)
    }

    /// Runs `work` in a transaction for `fence`'s partition and commits it: the one wrapper
    /// for fenced writes. An error from `work` (or a fence that moved) rolls everything
    /// back, since the transaction is dropped uncommitted.
    pub async fn fenced<T>(
        &self,
        fence: ownership::Fence,
        work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let txn = self.begin_fenced(fence).await?;
        let out = work(&txn).await?;
        txn.commit().await?;
        Ok(out)
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(self) -> Result<(), StorageError> {
        Ok(self.conn.close().await?)
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Database {
    fn get_database_backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.conn.execute(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.conn.execute_unprepared(sql).await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.conn.query_one(stmt).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.conn.query_all(stmt).await
    }
}

/// Creates the parent directory of a SQLite file and asks for the file to be created.
fn prepare_sqlite_url(url: &str) -> Result<String, StorageError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" || query.is_some_and(|q| q.contains("mode=memory")) {
        return Ok(url.to_owned());
    }
    if let Some(parent) = std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|source| StorageError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(match query {
        Some(q) if q.contains("mode=") => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_ask_for_creation() {
        let dir = std::env::temp_dir().join(format!("wfe-url-{}", std::process::id()));
        let url = format!("sqlite://{}/sub/engine.db", dir.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.join("sub").is_dir());
        assert_eq!(prepare_sqlite_url("sqlite::memory:").unwrap(), "sqlite::memory:");
        let _ = std::fs::remove_dir_all(dir);
    }
}
