//! The embedded broker's journal: every event the engine accepts or emits while it runs on
//! the in-process broker (which dies with the process) is written here before it is
//! published, and what the consumer group has not committed is published again at start.
//!
//! `(topic, kafka_partition, kafka_offset)` is where the message sits on this process's
//! broker (null until published), which is what pruning by committed offset compares.

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
                    .table(BrokerJournal::Table)
                    .if_not_exists()
                    .col(big_integer(BrokerJournal::Id).auto_increment().primary_key())
                    .col(text(BrokerJournal::Topic))
                    .col(text(BrokerJournal::MessageKey))
                    .col(text(BrokerJournal::Payload))
                    .col(text_null(BrokerJournal::Traceparent))
                    .col(integer_null(BrokerJournal::KafkaPartition))
                    .col(big_integer_null(BrokerJournal::KafkaOffset))
                    .col(timestamp_with_time_zone(BrokerJournal::JournaledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_broker_journal_position")
                    .table(BrokerJournal::Table)
                    .col(BrokerJournal::Topic)
                    .col(BrokerJournal::KafkaPartition)
                    .col(BrokerJournal::KafkaOffset)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BrokerJournal::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum BrokerJournal {
    Table,
    Id,
    Topic,
    MessageKey,
    Payload,
    Traceparent,
    KafkaPartition,
    KafkaOffset,
    JournaledAt,
}
