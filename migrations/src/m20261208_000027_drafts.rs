//! Drafts and approvals (issue 28). `workflows.published`: false while a workflow has
//! only drafts (its row then holds the first draft, inactive, so it lists and can be
//! read, and never runs); every workflow saved before drafts existed is published.
//! `workflow_approvals`: one row per (workflow, version, approving token), so publishing
//! under `changes.require_approval` can ask whether another token approved that version.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Workflows::Table)
                    .add_column(boolean(Workflows::Published).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkflowApprovals::Table)
                    .if_not_exists()
                    .col(text(WorkflowApprovals::WorkflowId))
                    .col(big_integer(WorkflowApprovals::Version))
                    .col(text(WorkflowApprovals::ApprovedBy))
                    .col(timestamp_with_time_zone(WorkflowApprovals::ApprovedAt))
                    .primary_key(
                        Index::create()
                            .col(WorkflowApprovals::WorkflowId)
                            .col(WorkflowApprovals::Version)
                            .col(WorkflowApprovals::ApprovedBy),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WorkflowApprovals::Table).if_exists().to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Workflows::Table)
                    .drop_column(Workflows::Published)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Workflows {
    Table,
    Published,
}

#[derive(DeriveIden)]
enum WorkflowApprovals {
    Table,
    WorkflowId,
    Version,
    ApprovedBy,
    ApprovedAt,
}
