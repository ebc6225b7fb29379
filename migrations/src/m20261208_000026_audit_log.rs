//! The audit log (issue 28): one row per change to workflows, CRM configuration, the
//! contact policy and runs (retry, cancel), with who made it. Rows are only ever
//! inserted (no route edits or deletes one); `retention.audit_days` may prune them by
//! age, hence the index on `at`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const AT_INDEX: &str = "ix_audit_log_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_integer(AuditLog::Id).auto_increment().primary_key())
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Actor))
                    .col(text(AuditLog::Action))
                    .col(text(AuditLog::SubjectKind))
                    .col(text(AuditLog::SubjectId))
                    .col(big_integer_null(AuditLog::BeforeVersion))
                    .col(big_integer_null(AuditLog::AfterVersion))
                    .col(json_binary_null(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name(AT_INDEX)
                    .table(AuditLog::Table)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLog::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    SubjectKind,
    SubjectId,
    BeforeVersion,
    AfterVersion,
    Detail,
}
