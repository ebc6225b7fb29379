//! What a cluster needs to keep its promises (docs/guarantees.md, "Ownership is fenced"
//! and "The plan is recorded"):
//!
//! - `partition_owners`: one row a partition, with the node that owns it now and an epoch
//!   that grows by one at every hand-over. Every step's transaction checks the epoch it
//!   was started under, so a process that lost a partition commits nothing more for it.
//! - `event_plans`: the workflows an event matched the first time it was handled (even
//!   none), recorded with its runs, so a redelivered event replays that record instead of
//!   being planned again against a customer that changed since.
//! - `outbox.partition`, `claimed_by`, `claimed_until`: the relay of each process claims
//!   the emitted events of the partitions it owns, so N processes publish each once.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OUTBOX_CLAIM: &str = "ix_outbox_relay";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PartitionOwners::Table)
                    .if_not_exists()
                    .col(integer(PartitionOwners::Partition).primary_key())
                    .col(text(PartitionOwners::Owner))
                    .col(big_integer(PartitionOwners::Epoch))
                    .col(timestamp_with_time_zone(PartitionOwners::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventPlans::Table)
                    .if_not_exists()
                    .col(text(EventPlans::EventId).primary_key())
                    .col(integer(EventPlans::Partition))
                    .col(json_binary(EventPlans::Workflows))
                    .col(timestamp_with_time_zone(EventPlans::CreatedAt))
                    .to_owned(),
            )
            .await?;
        for column in [
            integer_null(Outbox::Partition),
            text_null(Outbox::ClaimedBy),
            timestamp_with_time_zone_null(Outbox::ClaimedUntil),
        ] {
            manager
                .alter_table(Table::alter().table(Outbox::Table).add_column(column).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(OUTBOX_CLAIM)
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::Kind)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name(OUTBOX_CLAIM)
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Outbox::ClaimedUntil, Outbox::ClaimedBy, Outbox::Partition] {
            manager
                .alter_table(Table::alter().table(Outbox::Table).drop_column(column).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(EventPlans::Table).if_exists().to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PartitionOwners::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PartitionOwners {
    Table,
    Partition,
    Owner,
    Epoch,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EventPlans {
    Table,
    EventId,
    Partition,
    Workflows,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Kind,
    Status,
    Partition,
    ClaimedBy,
    ClaimedUntil,
}
