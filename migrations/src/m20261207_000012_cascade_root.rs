//! `runs.cascade_root`: the outside event whose cascade a run belongs to, so the runs of
//! one cascade can be counted in the transaction that would add to them
//! (`engine.max_cascade_runs`, issue 22). Indexed for that count. Runs recorded before
//! keep NULL: they count in no cascade, and the events they emit name their own event
//! as the root.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_runs_cascade_root";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(text_null(Runs::CascadeRoot))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(INDEX)
                    .table(Runs::Table)
                    .col(Runs::CascadeRoot)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(Runs::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .drop_column(Runs::CascadeRoot)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    CascadeRoot,
}
