//! What identifies an event, kept with its recorded plan (`event_plans`): its customer, its
//! type and a digest of its content (security issue 22). A plan is keyed by event id
//! alone, and an id is the producer's word: another customer's event, or another type,
//! may come with an id already used. Only an event that is the same in all three is a
//! redelivery that may replay the plan; any other is refused.
//!
//! Nullable: plans recorded before keep NULL, and the engine compares what their runs
//! still say (customer and type) for them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [
            big_integer_null(EventPlans::CustomerId),
            text_null(EventPlans::EventType),
            text_null(EventPlans::Digest),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(EventPlans::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [EventPlans::CustomerId, EventPlans::EventType, EventPlans::Digest] {
            manager
                .alter_table(Table::alter().table(EventPlans::Table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum EventPlans {
    Table,
    CustomerId,
    EventType,
    Digest,
}
