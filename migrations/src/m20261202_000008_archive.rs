//! The event archive: consumed events kept for the backtest (`POST /api/v1/backtest`),
//! bounded by age and by count by the retention job.
//!
//! `seq` orders the archive in arrival order and is what the backtest pages by and the
//! count cap cuts at; `event_id` is unique so a redelivered event is archived once.
//! `(event_type, seq)` serves the backtest (the events of some triggers, newest first);
//! `archived_at` serves pruning by age.

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
                    .table(EventArchive::Table)
                    .if_not_exists()
                    .col(big_integer(EventArchive::Seq).auto_increment().primary_key())
                    .col(text_uniq(EventArchive::EventId))
                    .col(text(EventArchive::EventType))
                    .col(big_integer(EventArchive::CustomerId))
                    .col(timestamp_with_time_zone(EventArchive::OccurredAt))
                    .col(timestamp_with_time_zone(EventArchive::ArchivedAt))
                    .col(json_binary(EventArchive::Payload))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_event_archive_type_seq")
                    .table(EventArchive::Table)
                    .col(EventArchive::EventType)
                    .col(EventArchive::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_event_archive_archived_at")
                    .table(EventArchive::Table)
                    .col(EventArchive::ArchivedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventArchive::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EventArchive {
    Table,
    Seq,
    EventId,
    EventType,
    CustomerId,
    OccurredAt,
    ArchivedAt,
    Payload,
}
