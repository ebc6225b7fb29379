//! Journeys (issue 24): `run_steps.path`, each step's place in the workflow's tree
//! (`"2.paths.0.1"`; NULL on rows written before, whose path is their index), and
//! `waits`, one row per run waiting for an event.
//!
//! A wait row names what resolves it (the customer and the awaited type, the index the
//! awaited events look it up by) and carries what resolving needs without the workflow:
//! the step's index, where its two outcome blocks lie (`split` starts `on_timeout`, `end`
//! is past both) and where each outcome goes on (`event_next`, `timeout_next`), its
//! conditions as written, and the named steps' results the conditions may read. Exactly
//! one outcome wins by deleting the row: the awaited event's transaction or the timeout's
//! resume, whichever commits first; the other finds no row and does nothing.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_waits_customer_event";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RunSteps::Table)
                    .add_column(text_null(RunSteps::Path))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Waits::Table)
                    .if_not_exists()
                    .col(big_integer(Waits::RunId).primary_key())
                    .col(big_integer(Waits::CustomerId))
                    .col(text(Waits::EventType))
                    .col(integer(Waits::Partition))
                    .col(integer(Waits::StepIndex))
                    .col(integer(Waits::Split))
                    .col(integer(Waits::EndIndex))
                    .col(integer(Waits::EventNext))
                    .col(integer(Waits::TimeoutNext))
                    .col(json_binary_null(Waits::Conditions))
                    .col(json_binary(Waits::Steps))
                    .col(timestamp_with_time_zone(Waits::StartedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(Waits::Table)
                    .col(Waits::CustomerId)
                    .col(Waits::EventType)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Waits::Table).if_exists().to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RunSteps::Table)
                    .drop_column(RunSteps::Path)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RunSteps {
    Table,
    Path,
}

#[derive(DeriveIden)]
enum Waits {
    Table,
    RunId,
    CustomerId,
    EventType,
    Partition,
    StepIndex,
    Split,
    EndIndex,
    EventNext,
    TimeoutNext,
    Conditions,
    Steps,
    StartedAt,
}
