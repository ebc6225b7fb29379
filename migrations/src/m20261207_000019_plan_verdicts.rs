//! `event_plans.verdicts`: what planning decided for every workflow of the event's
//! trigger, recorded with the plan (issue 25's event inspector): matched, no match with
//! the rules that failed and what they saw, skipped by a `stop_after` workflow, or
//! stopped by the cascade's budget. NULL on plans recorded before.

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
                    .table(EventPlans::Table)
                    .add_column(json_binary_null(EventPlans::Verdicts))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EventPlans::Table)
                    .drop_column(EventPlans::Verdicts)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum EventPlans {
    Table,
    Verdicts,
}
