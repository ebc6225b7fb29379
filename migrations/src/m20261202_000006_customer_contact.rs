//! What the guard rails read of a customer: the time zone send windows are kept in and the
//! opt-outs consent is taken from. Also the status types every CRM of this kind has, so a
//! fresh database can take statuses without a migration of the operator's own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The status types a fresh database has (shared/design.md, "Contract additions").
const STATUS_TYPES: [&str; 3] = ["sales", "kyc", "retention"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        let columns = [
            text(Customers::Timezone).default("UTC").to_owned(),
            boolean(Customers::EmailOptOut).default(false).to_owned(),
            boolean(Customers::SmsOptOut).default(false).to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Customers::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for name in STATUS_TYPES {
            // Databases that already have one of them (made by the demo or by hand) keep it.
            let insert = Query::insert()
                .into_table(StatusTypes::Table)
                .columns([StatusTypes::Name])
                .select_from(
                    Query::select()
                        .expr(Expr::val(name))
                        .and_where(
                            Expr::exists(
                                Query::select()
                                    .expr(Expr::val(1))
                                    .from(StatusTypes::Table)
                                    .and_where(Expr::col(StatusTypes::Name).eq(name))
                                    .to_owned(),
                            )
                            .not(),
                        )
                        .to_owned(),
                )
                .map_err(|e| DbErr::Migration(e.to_string()))?
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Customers::Timezone, Customers::EmailOptOut, Customers::SmsOptOut] {
            manager
                .alter_table(Table::alter().table(Customers::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Timezone,
    EmailOptOut,
    SmsOptOut,
}

#[derive(DeriveIden)]
enum StatusTypes {
    Table,
    Name,
}
