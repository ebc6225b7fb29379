//! Experiments (issue 26): `runs.goal_reached_at`, when the run's customer reached the
//! workflow's goal; `goals`, one row per run still watching for its goal event, looked up
//! by (customer, event type) as an event arrives, like `waits`; and an index the stats
//! read a workflow's runs by, holding every column they count, so a million runs are
//! counted from the index alone.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const GOALS_INDEX: &str = "ix_goals_customer_event";
const STATS_INDEX: &str = "ix_runs_workflow_stats";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(timestamp_with_time_zone_null(Runs::GoalReachedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Goals::Table)
                    .if_not_exists()
                    .col(big_integer(Goals::RunId).primary_key())
                    .col(big_integer(Goals::CustomerId))
                    .col(text(Goals::EventType))
                    .col(json_binary_null(Goals::Conditions))
                    .col(timestamp_with_time_zone(Goals::Until))
                    .col(boolean(Goals::ExitRun))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(GOALS_INDEX)
                    .table(Goals::Table)
                    .col(Goals::CustomerId)
                    .col(Goals::EventType)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(STATS_INDEX)
                    .table(Runs::Table)
                    .col(Runs::WorkflowId)
                    .col(Runs::CreatedAt)
                    .col(Runs::Status)
                    .col(Runs::GoalReachedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(STATS_INDEX).table(Runs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Goals::Table).if_exists().to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .drop_column(Runs::GoalReachedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    WorkflowId,
    CreatedAt,
    Status,
    GoalReachedAt,
}

#[derive(DeriveIden)]
enum Goals {
    Table,
    RunId,
    CustomerId,
    EventType,
    Conditions,
    Until,
    ExitRun,
}
