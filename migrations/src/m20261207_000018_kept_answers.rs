//! `outbox.kept`: what a journey's webhook keeps of its answer (the body, and the custom
//! fields its `save` takes from it), left on the outbox row by a sender whose partition
//! moved while its request was out. The new owner records the step from the row; without
//! this it recorded the delivery but lost the answer and the save.

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
                    .table(Outbox::Table)
                    .add_column(json_binary_null(Outbox::Kept))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Outbox::Table).drop_column(Outbox::Kept).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Kept,
}
