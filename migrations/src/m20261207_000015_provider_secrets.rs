//! `sms_providers.auth` and `webhook_endpoints.auth`: the credentials an integration is
//! called with, write-only through the API (issue 22, finding 5). Until now they could only
//! go in the URL, which the read scope sees. NULL = none; rows before keep NULL, so a URL
//! with credentials in it goes on working until an operator moves them (docs/security.md).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(SmsProviders::Table)
                    .add_column(text_null(SmsProviders::Auth))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEndpoints::Table)
                    .add_column(text_null(WebhookEndpoints::Auth))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEndpoints::Table)
                    .drop_column(WebhookEndpoints::Auth)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SmsProviders::Table)
                    .drop_column(SmsProviders::Auth)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SmsProviders {
    Table,
    Auth,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Auth,
}
