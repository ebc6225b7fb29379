//! One sea-orm entity per table, matching the `migrations` crate. Relations are left
//! out: repositories join by hand where they need to.

pub mod agents;
pub mod audit_log;
pub mod broker_journal;
pub mod change_counters;
pub mod custom_field_definitions;
pub mod customer_statuses;
pub mod customers;
pub mod event_archive;
pub mod manager_counters;
pub mod notes;
pub mod outbox;
pub mod run_steps;
pub mod runs;
pub mod scheduled;
pub mod sms_providers;
pub mod status_types;
pub mod statuses;
pub mod tasks;
pub mod teams;
pub mod webhook_endpoints;
pub mod workflow_approvals;
pub mod workflow_versions;
pub mod workflows;
