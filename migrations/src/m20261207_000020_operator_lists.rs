//! Indexes for the operator's lists (issue 25): customers found by a name or e-mail
//! prefix (`lower(...)`, read as a range so one btree serves it on SQLite and PostgreSQL
//! alike), and a customer's archived events newest first.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [(&str, &str); 4] = [
    ("ix_customers_first_name_lower", "customers (lower(first_name))"),
    ("ix_customers_last_name_lower", "customers (lower(last_name))"),
    ("ix_customers_email_lower", "customers (lower(email))"),
    ("ix_event_archive_customer_seq", "event_archive (customer_id, seq)"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, on) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX IF NOT EXISTS {name} ON {on}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}")).await?;
        }
        Ok(())
    }
}
