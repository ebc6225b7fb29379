//! The CRM data the internal actions read and change: customers, statuses, teams, agents,
//! tasks, notes, manager counters, SMS providers, webhook endpoints, custom field
//! definitions.
//!
//! Customers, teams and agents keep the CRM's own ids (no sequence), so a sync from the CRM
//! can write them as they are; rows the engine creates (tasks, notes, statuses) get theirs
//! from the database.

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
                    .table(Customers::Table)
                    .if_not_exists()
                    .col(big_integer(Customers::Id).primary_key())
                    .col(text(Customers::FirstName).default(""))
                    .col(text(Customers::LastName).default(""))
                    .col(text(Customers::Email).default(""))
                    .col(text(Customers::Phone).default(""))
                    .col(text(Customers::Country).default(""))
                    .col(text(Customers::Language).default(""))
                    .col(double(Customers::Balance).default(0.0))
                    .col(timestamp_with_time_zone_null(Customers::RegisteredAt))
                    .col(timestamp_with_time_zone_null(Customers::LastActivityAt))
                    .col(big_integer_null(Customers::AgentId))
                    .col(big_integer_null(Customers::TeamId))
                    .col(text(Customers::Desk).default("sales"))
                    .col(boolean(Customers::Active).default(true))
                    .col(boolean(Customers::Frozen).default(false))
                    .col(json_binary(Customers::CustomFields).default("{}"))
                    .col(timestamp_with_time_zone(Customers::UpdatedAt).default(Expr::current_timestamp()))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StatusTypes::Table)
                    .if_not_exists()
                    .col(big_integer(StatusTypes::Id).auto_increment().primary_key())
                    .col(text_uniq(StatusTypes::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Statuses::Table)
                    .if_not_exists()
                    .col(big_integer(Statuses::Id).auto_increment().primary_key())
                    .col(big_integer(Statuses::StatusTypeId))
                    .col(text(Statuses::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ux_statuses_type_name")
                    .table(Statuses::Table)
                    .col(Statuses::StatusTypeId)
                    .col(Statuses::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CustomerStatuses::Table)
                    .if_not_exists()
                    .col(big_integer(CustomerStatuses::CustomerId))
                    .col(big_integer(CustomerStatuses::StatusTypeId))
                    .col(big_integer(CustomerStatuses::StatusId))
                    .col(timestamp_with_time_zone(CustomerStatuses::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(CustomerStatuses::CustomerId)
                            .col(CustomerStatuses::StatusTypeId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Teams::Table)
                    .if_not_exists()
                    .col(big_integer(Teams::Id).primary_key())
                    .col(text(Teams::Name))
                    .col(big_integer_null(Teams::ParentId))
                    .col(text(Teams::Desk).default("sales"))
                    .col(big_integer(Teams::RrCursor).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(big_integer(Agents::Id).primary_key())
                    .col(text(Agents::Name))
                    .col(text(Agents::Email).default(""))
                    .col(big_integer(Agents::TeamId))
                    .col(big_integer_null(Agents::ManagerId))
                    .col(boolean(Agents::Active).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_agents_team")
                    .table(Agents::Table)
                    .col(Agents::TeamId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .if_not_exists()
                    .col(big_integer(Tasks::Id).auto_increment().primary_key())
                    .col(big_integer(Tasks::CustomerId))
                    .col(text(Tasks::Title))
                    .col(text_null(Tasks::TaskType))
                    .col(timestamp_with_time_zone(Tasks::DueAt))
                    .col(big_integer_null(Tasks::AssigneeId))
                    .col(boolean(Tasks::Done).default(false))
                    .col(timestamp_with_time_zone_null(Tasks::OverdueEmittedAt))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(big_integer_null(Tasks::RunId))
                    .col(integer_null(Tasks::StepIndex))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_tasks_done_due")
                    .table(Tasks::Table)
                    .col(Tasks::Done)
                    .col(Tasks::DueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notes::Table)
                    .if_not_exists()
                    .col(big_integer(Notes::Id).auto_increment().primary_key())
                    .col(big_integer(Notes::CustomerId))
                    .col(text(Notes::Body))
                    .col(text(Notes::Author))
                    .col(timestamp_with_time_zone(Notes::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_notes_customer")
                    .table(Notes::Table)
                    .col(Notes::CustomerId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ManagerCounters::Table)
                    .if_not_exists()
                    .col(big_integer(ManagerCounters::ManagerId))
                    .col(text(ManagerCounters::Counter))
                    .col(big_integer(ManagerCounters::Value).default(0))
                    .primary_key(
                        Index::create()
                            .col(ManagerCounters::ManagerId)
                            .col(ManagerCounters::Counter),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SmsProviders::Table)
                    .if_not_exists()
                    .col(big_integer(SmsProviders::Id).auto_increment().primary_key())
                    .col(text_uniq(SmsProviders::Name))
                    .col(text(SmsProviders::Url))
                    .col(boolean(SmsProviders::Active).default(false))
                    .to_owned(),
            )
            .await?;
        // At most one active provider. sea-query has no partial index builder; this SQL is
        // the same on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_sms_providers_one_active ON sms_providers (active) WHERE active",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .if_not_exists()
                    .col(big_integer(WebhookEndpoints::Id).auto_increment().primary_key())
                    .col(text_uniq(WebhookEndpoints::Name))
                    .col(text(WebhookEndpoints::Url))
                    .col(text_null(WebhookEndpoints::Secret))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CustomFieldDefinitions::Table)
                    .if_not_exists()
                    .col(text(CustomFieldDefinitions::Name).primary_key())
                    .col(text(CustomFieldDefinitions::FieldType))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CustomFieldDefinitions::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            SmsProviders::Table.into_iden(),
            ManagerCounters::Table.into_iden(),
            Notes::Table.into_iden(),
            Tasks::Table.into_iden(),
            Agents::Table.into_iden(),
            Teams::Table.into_iden(),
            CustomerStatuses::Table.into_iden(),
            Statuses::Table.into_iden(),
            StatusTypes::Table.into_iden(),
            Customers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    FirstName,
    LastName,
    Email,
    Phone,
    Country,
    Language,
    Balance,
    RegisteredAt,
    LastActivityAt,
    AgentId,
    TeamId,
    Desk,
    Active,
    Frozen,
    CustomFields,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StatusTypes {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum Statuses {
    Table,
    Id,
    StatusTypeId,
    Name,
}

#[derive(DeriveIden)]
enum CustomerStatuses {
    Table,
    CustomerId,
    StatusTypeId,
    StatusId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
    Name,
    ParentId,
    Desk,
    RrCursor,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    Name,
    Email,
    TeamId,
    ManagerId,
    Active,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    CustomerId,
    Title,
    TaskType,
    DueAt,
    AssigneeId,
    Done,
    OverdueEmittedAt,
    CreatedAt,
    RunId,
    StepIndex,
}

#[derive(DeriveIden)]
enum Notes {
    Table,
    Id,
    CustomerId,
    Body,
    Author,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ManagerCounters {
    Table,
    ManagerId,
    Counter,
    Value,
}

#[derive(DeriveIden)]
enum SmsProviders {
    Table,
    Id,
    Name,
    Url,
    Active,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    Name,
    Url,
    Secret,
}

#[derive(DeriveIden)]
enum CustomFieldDefinitions {
    Table,
    Name,
    FieldType,
}
