//! The engine's own state: workflows and every saved version, the change counter other
//! processes poll, runs and their steps, scheduled continuations and the delivery outbox.
//!
//! The unique keys carry the guarantees: a run is unique per (event id, workflow id) so a
//! redelivered event finds its runs instead of starting them again; a run has at most one
//! scheduled continuation; an outbox row is unique per idempotency key.

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
                    .table(Workflows::Table)
                    .if_not_exists()
                    .col(text(Workflows::Id).primary_key())
                    .col(text(Workflows::Name))
                    .col(text(Workflows::TriggerEvent))
                    .col(boolean(Workflows::Active))
                    .col(integer(Workflows::Priority))
                    .col(boolean(Workflows::StopAfter))
                    .col(json_binary(Workflows::Definition))
                    .col(big_integer(Workflows::Version))
                    .col(timestamp_with_time_zone(Workflows::CreatedAt))
                    .col(timestamp_with_time_zone(Workflows::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Workflows::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkflowVersions::Table)
                    .if_not_exists()
                    .col(text(WorkflowVersions::WorkflowId))
                    .col(big_integer(WorkflowVersions::Version))
                    .col(json_binary(WorkflowVersions::Definition))
                    .col(text(WorkflowVersions::Change))
                    .col(text(WorkflowVersions::ChangedBy))
                    .col(timestamp_with_time_zone(WorkflowVersions::ChangedAt))
                    .primary_key(
                        Index::create()
                            .col(WorkflowVersions::WorkflowId)
                            .col(WorkflowVersions::Version),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ChangeCounters::Table)
                    .if_not_exists()
                    .col(text(ChangeCounters::Name).primary_key())
                    .col(big_integer(ChangeCounters::Value).default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .if_not_exists()
                    .col(big_integer(Runs::Id).auto_increment().primary_key())
                    .col(text(Runs::EventId))
                    .col(text(Runs::WorkflowId))
                    .col(big_integer(Runs::WorkflowVersion))
                    .col(big_integer(Runs::CustomerId))
                    .col(text(Runs::Trigger))
                    .col(integer(Runs::Partition))
                    .col(json_binary(Runs::Event))
                    .col(text(Runs::Status))
                    .col(integer(Runs::NextStep).default(0))
                    .col(text_null(Runs::Error))
                    .col(timestamp_with_time_zone(Runs::CreatedAt))
                    .col(timestamp_with_time_zone(Runs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ux_runs_event_workflow",
            Runs::Table,
            &[Runs::EventId, Runs::WorkflowId],
            true,
        )
        .await?;
        index(manager, "ix_runs_customer", Runs::Table, &[Runs::CustomerId], false).await?;
        index(manager, "ix_runs_workflow", Runs::Table, &[Runs::WorkflowId], false).await?;
        index(manager, "ix_runs_status", Runs::Table, &[Runs::Status], false).await?;

        manager
            .create_table(
                Table::create()
                    .table(RunSteps::Table)
                    .if_not_exists()
                    .col(big_integer(RunSteps::RunId))
                    .col(integer(RunSteps::StepIndex))
                    .col(text(RunSteps::ActionType))
                    .col(text(RunSteps::Status))
                    .col(integer(RunSteps::Attempts).default(0))
                    .col(text_null(RunSteps::Error))
                    .col(json_binary_null(RunSteps::Result))
                    .col(timestamp_with_time_zone_null(RunSteps::StartedAt))
                    .col(timestamp_with_time_zone_null(RunSteps::FinishedAt))
                    .primary_key(Index::create().col(RunSteps::RunId).col(RunSteps::StepIndex))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Scheduled::Table)
                    .if_not_exists()
                    .col(big_integer(Scheduled::Id).auto_increment().primary_key())
                    .col(big_integer_uniq(Scheduled::RunId))
                    .col(big_integer(Scheduled::CustomerId))
                    .col(integer(Scheduled::Partition))
                    .col(timestamp_with_time_zone(Scheduled::DueAt))
                    .col(text_null(Scheduled::ClaimedBy))
                    .col(timestamp_with_time_zone_null(Scheduled::ClaimedUntil))
                    .col(timestamp_with_time_zone(Scheduled::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_scheduled_partition_due",
            Scheduled::Table,
            &[Scheduled::Partition, Scheduled::DueAt],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(big_integer(Outbox::Id).auto_increment().primary_key())
                    .col(text(Outbox::Kind))
                    .col(big_integer_null(Outbox::RunId))
                    .col(integer_null(Outbox::StepIndex))
                    .col(big_integer(Outbox::CustomerId))
                    .col(json_binary(Outbox::Payload))
                    .col(text_uniq(Outbox::IdempotencyKey))
                    .col(text(Outbox::Status))
                    .col(integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(text_null(Outbox::LastError))
                    .col(timestamp_with_time_zone_null(Outbox::DeliveredAt))
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "ix_outbox_status_next",
            Outbox::Table,
            &[Outbox::Status, Outbox::NextAttemptAt],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Outbox::Table.into_iden(),
            Scheduled::Table.into_iden(),
            RunSteps::Table.into_iden(),
            Runs::Table.into_iden(),
            ChangeCounters::Table.into_iden(),
            WorkflowVersions::Table.into_iden(),
            Workflows::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Creates an index unless it exists.
async fn index<T, C>(manager: &SchemaManager<'_>, name: &str, table: T, cols: &[C], unique: bool) -> Result<(), DbErr>
where
    T: IntoIden + 'static,
    C: IntoIden + Copy + 'static,
{
    let mut stmt = Index::create();
    stmt.if_not_exists().name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    if unique {
        stmt.unique();
    }
    manager.create_index(stmt).await
}

#[derive(DeriveIden)]
enum Workflows {
    Table,
    Id,
    Name,
    TriggerEvent,
    Active,
    Priority,
    StopAfter,
    Definition,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum WorkflowVersions {
    Table,
    WorkflowId,
    Version,
    Definition,
    Change,
    ChangedBy,
    ChangedAt,
}

#[derive(DeriveIden)]
enum ChangeCounters {
    Table,
    Name,
    Value,
}

#[derive(DeriveIden, Clone, Copy)]
enum Runs {
    Table,
    Id,
    EventId,
    WorkflowId,
    WorkflowVersion,
    CustomerId,
    Trigger,
    Partition,
    Event,
    Status,
    NextStep,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RunSteps {
    Table,
    RunId,
    StepIndex,
    ActionType,
    Status,
    Attempts,
    Error,
    Result,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Scheduled {
    Table,
    Id,
    RunId,
    CustomerId,
    Partition,
    DueAt,
    ClaimedBy,
    ClaimedUntil,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    Kind,
    RunId,
    StepIndex,
    CustomerId,
    Payload,
    IdempotencyKey,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    DeliveredAt,
    CreatedAt,
}
