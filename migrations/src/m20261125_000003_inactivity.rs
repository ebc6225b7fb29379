//! Which customer.inactive_days events were emitted: one row per customer and threshold,
//! remembering the period of inactivity (the last activity time) it was emitted for, so a
//! new period (new activity, written by the CRM) emits again without the engine being told.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InactivityMarks::Table)
                    .if_not_exists()
                    .col(big_integer(InactivityMarks::CustomerId))
                    .col(integer(InactivityMarks::Days))
                    .col(timestamp_with_time_zone(InactivityMarks::PeriodAt))
                    .col(timestamp_with_time_zone(InactivityMarks::EmittedAt))
                    .primary_key(
                        Index::create()
                            .col(InactivityMarks::CustomerId)
                            .col(InactivityMarks::Days),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InactivityMarks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum InactivityMarks {
    Table,
    CustomerId,
    Days,
    PeriodAt,
    EmittedAt,
}
