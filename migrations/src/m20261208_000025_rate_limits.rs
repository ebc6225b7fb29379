//! Provider rate limits (issue 27): `rate_per_sec` on webhook endpoints and SMS providers,
//! and the shared state of every limited destination. `rate_limits` holds one row per
//! destination: the rate its slots were reserved at, how many it has reserved (`n`) and
//! the latest slot (`last_ms`); the row is also the lock that puts reservations from
//! every node in one order. `rate_slots` is a ring of the destination's last `per_sec`
//! slots (`i` = `n` mod `per_sec`), so a new slot is placed a window after the one
//! `per_sec` places back. Times are milliseconds since the epoch, compared as integers
//! on both databases.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [Alias::new("webhook_endpoints"), Alias::new("sms_providers")] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(integer_null(Alias::new("rate_per_sec")))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(RateLimits::Table)
                    .if_not_exists()
                    .col(text(RateLimits::Key).primary_key())
                    .col(integer(RateLimits::PerSec))
                    .col(big_integer(RateLimits::N))
                    .col(big_integer(RateLimits::LastMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RateSlots::Table)
                    .if_not_exists()
                    .col(text(RateSlots::Key))
                    .col(integer(RateSlots::I))
                    .col(big_integer(RateSlots::AtMs))
                    .primary_key(Index::create().col(RateSlots::Key).col(RateSlots::I))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateSlots::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RateLimits::Table).if_exists().to_owned())
            .await?;
        for table in [Alias::new("webhook_endpoints"), Alias::new("sms_providers")] {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new("rate_per_sec"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum RateLimits {
    Table,
    Key,
    PerSec,
    N,
    LastMs,
}

#[derive(DeriveIden)]
enum RateSlots {
    Table,
    Key,
    I,
    AtMs,
}
