//! Schema migrations of workflow-engine, one file a migration, run at start-up
//! (`Migrator::up`) and by `workflow-engine migrate`.
//!
//! Tables are named through `DeriveIden` enums, never through the engine's entities, so a
//! migration keeps describing the schema of its day when the entities move on.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_crm;
mod m20261125_000002_engine;
mod m20261125_000003_inactivity;
mod m20261125_000004_scheduler_indexes;
mod m20261201_000005_cluster;
mod m20261202_000006_customer_contact;
mod m20261202_000008_archive;
mod m20261202_000010_traceparent;
mod m20261202_000011_guard_rails;
mod m20261207_000012_cascade_root;
mod m20261207_000013_broker_journal;
mod m20261207_000014_event_identity;
mod m20261207_000015_provider_secrets;
mod m20261207_000016_operator_view;
mod m20261207_000017_journeys;
mod m20261207_000018_kept_answers;
mod m20261207_000019_plan_verdicts;
mod m20261207_000020_operator_lists;
mod m20261208_000021_experiments;
mod m20261208_000022_contact_policy;
mod m20261208_000023_stats_hours;
mod m20261208_000024_stats_rollup;
mod m20261208_000025_rate_limits;
mod m20261208_000026_audit_log;
mod m20261208_000027_drafts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_crm::Migration),
            Box::new(m20261125_000002_engine::Migration),
            Box::new(m20261125_000003_inactivity::Migration),
            Box::new(m20261125_000004_scheduler_indexes::Migration),
            Box::new(m20261201_000005_cluster::Migration),
            Box::new(m20261202_000006_customer_contact::Migration),
            Box::new(m20261202_000008_archive::Migration),
            Box::new(m20261202_000010_traceparent::Migration),
            Box::new(m20261202_000011_guard_rails::Migration),
            Box::new(m20261207_000012_cascade_root::Migration),
            Box::new(m20261207_000013_broker_journal::Migration),
            Box::new(m20261207_000014_event_identity::Migration),
            Box::new(m20261207_000015_provider_secrets::Migration),
            Box::new(m20261207_000016_operator_view::Migration),
            Box::new(m20261207_000017_journeys::Migration),
            Box::new(m20261207_000018_kept_answers::Migration),
            Box::new(m20261207_000019_plan_verdicts::Migration),
            Box::new(m20261207_000020_operator_lists::Migration),
            Box::new(m20261208_000021_experiments::Migration),
            Box::new(m20261208_000022_contact_policy::Migration),
            Box::new(m20261208_000023_stats_hours::Migration),
            Box::new(m20261208_000024_stats_rollup::Migration),
            Box::new(m20261208_000025_rate_limits::Migration),
            Box::new(m20261208_000026_audit_log::Migration),
            Box::new(m20261208_000027_drafts::Migration),
        ]
    }
}
