//! Indexes for the scheduler's "when next" question (`storage::scheduled::next_due`), which
//! it asks after every tick.
//!
//! With only `(partition, due_at)`, both halves of that question read every scheduled row
//! once the table is large (measured by `cargo bench --bench scale` over 1,000,000 pending
//! delays):
//!
//! - the earliest free row (`partition IN (..) AND claim free ORDER BY due_at LIMIT 1`):
//!   SQLite walks `(partition, due_at)` per partition and stops early, but PostgreSQL
//!   cannot merge the per-partition orders and sorts the whole table. `ix_scheduled_due`
//!   on `due_at` alone lets it walk rows in due order and stop at the first free one.
//! - the earliest live lease (`partition IN (..) AND claimed_until > now ORDER BY
//!   claimed_until LIMIT 1`) had no index on `claimed_until` at all, on either database.
//!   `ix_scheduled_leased` holds only claimed rows (a partial index: claims are few, the
//!   rest of the table is NULL there), so it stays small, costs nothing to maintain for
//!   unclaimed rows, and cannot be mistaken by SQLite's planner for a way to answer the
//!   free-row query (whose `claimed_until IS NULL OR ...` does not imply `IS NOT NULL`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const DUE: &str = "ix_scheduled_due";
const LEASED: &str = "ix_scheduled_leased";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(DUE)
                    .table(Scheduled::Table)
                    .col(Scheduled::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(LEASED)
                    .table(Scheduled::Table)
                    .col(Scheduled::Partition)
                    .col(Scheduled::ClaimedUntil)
                    .and_where(Expr::col(Scheduled::ClaimedUntil).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [LEASED, DUE] {
            manager
                .drop_index(Index::drop().if_exists().name(name).table(Scheduled::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Scheduled {
    Table,
    Partition,
    DueAt,
    ClaimedUntil,
}
