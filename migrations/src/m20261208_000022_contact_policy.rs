//! Contact policy (issue 27): `contact_policy`, the one policy row; `contact_log`, one row
//! per counted send (unique per run and step, so a replay counts nothing twice), read by
//! customer, channel and time for the caps' sliding periods; `contact_held`, one row per
//! send a cap skipped or deferred, read by time for the policy page's chart.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const LOG_INDEX: &str = "ix_contact_log_customer_channel_at";
const HELD_INDEX: &str = "ix_contact_held_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ContactPolicy::Table)
                    .if_not_exists()
                    .col(integer(ContactPolicy::Id).primary_key())
                    .col(json_binary(ContactPolicy::Policy))
                    .col(timestamp_with_time_zone(ContactPolicy::UpdatedAt))
                    .col(text_null(ContactPolicy::UpdatedBy))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ContactLog::Table)
                    .if_not_exists()
                    .col(big_integer(ContactLog::RunId))
                    .col(text(ContactLog::Step))
                    .col(big_integer(ContactLog::CustomerId))
                    .col(text(ContactLog::Channel))
                    .col(timestamp_with_time_zone(ContactLog::SentAt))
                    .primary_key(Index::create().col(ContactLog::RunId).col(ContactLog::Step))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(LOG_INDEX)
                    .table(ContactLog::Table)
                    .col(ContactLog::CustomerId)
                    .col(ContactLog::Channel)
                    .col(ContactLog::SentAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ContactHeld::Table)
                    .if_not_exists()
                    .col(big_integer(ContactHeld::RunId))
                    .col(text(ContactHeld::Step))
                    .col(big_integer(ContactHeld::CustomerId))
                    .col(text(ContactHeld::Channel))
                    .col(text(ContactHeld::Outcome))
                    .col(timestamp_with_time_zone(ContactHeld::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(HELD_INDEX)
                    .table(ContactHeld::Table)
                    .col(ContactHeld::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ContactHeld::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ContactLog::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(ContactPolicy::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ContactPolicy {
    Table,
    Id,
    Policy,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum ContactLog {
    Table,
    RunId,
    Step,
    CustomerId,
    Channel,
    SentAt,
}

#[derive(DeriveIden)]
enum ContactHeld {
    Table,
    RunId,
    Step,
    CustomerId,
    Channel,
    Outcome,
    At,
}
