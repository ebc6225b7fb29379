//! The migration command line (`up`, `down`, `status`, `fresh`); the database comes from
//! DATABASE_URL or `-u`.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migrations::Migrator).await;
}
