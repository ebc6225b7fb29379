//! What the guard rails keep (docs/workflow-language.md, "Guard rails"):
//!
//! - `workflow_entries`: one row per workflow and customer with the time the customer last
//!   entered it. A limited workflow's run is recorded only if a conditional insert (or, for
//!   a cooldown, a conditional update) of this row succeeds in the same transaction, so
//!   concurrent events of one customer, in any number of processes, give one run.
//! - `runs.reason`: why a run is as it is beyond its status: the send window it waits for,
//!   the event deeper than the cascade limit it emitted.

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
                    .table(WorkflowEntries::Table)
                    .if_not_exists()
                    .col(text(WorkflowEntries::WorkflowId))
                    .col(big_integer(WorkflowEntries::CustomerId))
                    .col(timestamp_with_time_zone(WorkflowEntries::EnteredAt))
                    .primary_key(
                        Index::create()
                            .col(WorkflowEntries::WorkflowId)
                            .col(WorkflowEntries::CustomerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(text_null(Runs::Reason))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Runs::Table).drop_column(Runs::Reason).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WorkflowEntries::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WorkflowEntries {
    Table,
    WorkflowId,
    CustomerId,
    EnteredAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Reason,
}
