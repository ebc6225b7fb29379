//! Raw statements for what the query builder does not say portably: atomic
//! `UPDATE … RETURNING`, upserts that add, `FOR UPDATE SKIP LOCKED`.
//!
//! Statements are written once with PostgreSQL's `$n` placeholders; for SQLite they become
//! `?n`, which SQLite reads as the same numbered parameter.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};

/// Builds a statement for `conn`'s backend from SQL with `$n` placeholders.
pub fn statement<C: ConnectionTrait>(conn: &C, sql: &str, values: Vec<Value>) -> Statement {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => sql.replace('$', "?"),
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}
