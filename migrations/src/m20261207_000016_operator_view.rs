//! The operator's view (issue 25): `tasks.done_at`, when a task was marked done (NULL while
//! open), so the customer's activity feed can place "task done" in time; and indexes for
//! the reads that view makes. Tasks done before this migration keep NULL: the feed shows
//! their creation only.
//!
//! The indexes lead with the customer and then the time each activity source is ordered
//! by, so a page of one customer's feed is an index range read of at most `limit` rows per
//! source, however long the customer's history. `ix_tasks_assignee` serves the task list's
//! `agent_id` filter.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (index name, table, columns): every index this migration adds.
const INDEXES: [(&str, &str, &[&str]); 5] = [
    ("ix_tasks_customer_created", "tasks", &["customer_id", "created_at"]),
    ("ix_tasks_assignee", "tasks", &["assignee_id"]),
    ("ix_notes_customer_created", "notes", &["customer_id", "created_at"]),
    ("ix_outbox_customer_created", "outbox", &["customer_id", "created_at"]),
    ("ix_runs_customer_created", "runs", &["customer_id", "created_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(timestamp_with_time_zone_null(Tasks::DoneAt))
                    .to_owned(),
            )
            .await?;
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.if_not_exists().name(name).table(Alias::new(table));
            for column in columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(Index::drop().if_exists().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        manager
            .alter_table(Table::alter().table(Tasks::Table).drop_column(Tasks::DoneAt).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    DoneAt,
}
