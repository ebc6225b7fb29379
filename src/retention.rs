//! Retention: a background task that prunes old ended runs, event plans, outbox
//! messages, archived events and (only with `retention.audit_days`) audit rows in small batches ([`crate::storage::retention`] says what may go).
//!
//! It never competes with the hot path for long: each statement deletes at most
//! `retention.batch_size` rows, the task pauses `retention.pause_ms` between statements,
//! and a failure (the database away) is logged and tried again at the next round. Every
//! process runs it; on PostgreSQL they skip each other's locked rows.

use crate::clock::SharedClock;
use crate::settings::{Archive, Retention};
use crate::storage::{audit, contact, goals, retention, Database, StorageError};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::time::Duration;

/// What one round deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub plans: u64,
    pub outbox: u64,
    pub versions: u64,
    /// Goal watches whose window closed.
    pub goals: u64,
    /// Counted and held sends older than any contact cap looks back.
    pub contact: u64,
    /// Audit log rows older than `retention.audit_days` (none unless it is set).
    pub audit: u64,
}

/// The cutoff for an age of `days` (0 = keep forever: no cutoff).
fn cutoff(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    (days > 0).then(|| now - chrono::Duration::days(i64::from(days)))
}

/// Deletes in batches until a batch comes back short, pausing between statements.
async fn drain<F, Fut>(clock: &SharedClock, policy: &Retention, mut batch: F) -> Result<u64, StorageError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<u64, StorageError>>,
{
    let size = policy.batch_size.max(1);
    let mut total = 0;
    loop {
        let deleted = batch(size).await?;
        total += deleted;
        if deleted < size {
            return Ok(total);
        }
        clock.sleep(Duration::from_millis(policy.pause_ms)).await;
    }
}

/// One round: runs (with their steps) first, so the plans and versions they kept become
/// prunable in the same round, then plans, then the outbox, then workflow versions. Ages are measured from `clock`'s now.
pub async fn prune_once(db: &Database, clock: &SharedClock, policy: &Retention) -> Result<Pruned, StorageError> {
    let now = clock.now();
    let mut pruned = Pruned::default();
    if let Some(before) = cutoff(now, policy.runs_days) {
        pruned.runs = drain(clock, policy, |n| retention::prune_runs(db, before, n)).await?;
    }
    if let Some(before) = cutoff(now, policy.plans_days) {
        pruned.plans = drain(clock, policy, |n| retention::prune_plans(db, before, n)).await?;
    }
    if let Some(before) = cutoff(now, policy.outbox_days) {
        pruned.outbox = drain(clock, policy, |n| retention::prune_outbox(db, before, n)).await?;
    }
    if policy.versions_keep > 0 {
        let keep = policy.versions_keep;
        pruned.versions = drain(clock, policy, |n| retention::prune_versions(db.connection(), keep, n)).await?;
    }
    // A closed window can no longer be reached, whatever the retention of runs.
    pruned.goals = drain(clock, policy, |n| goals::prune_closed(db.connection(), now, n)).await?;
    pruned.contact = drain(clock, policy, |n| contact::prune(db.connection(), now, n)).await?;
    // Only by its own age: the audit log outlives run history unless told otherwise.
    if let Some(before) = cutoff(now, policy.audit_days) {
        pruned.audit = drain(clock, policy, |n| audit::prune(db.connection(), before, n)).await?;
    }
    Ok(pruned)
}

/// Bounds the event archive: events archived more than `archive.days` ago go, then the
/// oldest beyond `archive.max_events`, in batches like the rest. Returns how many went.
pub async fn prune_archive(
    db: &Database,
    clock: &SharedClock,
    policy: &Retention,
    archive: &Archive,
) -> Result<u64, StorageError> {
    if !archive.enabled {
        return Ok(0);
    }
    let before = clock.now() - chrono::Duration::days(i64::from(archive.days()));
    let old = drain(clock, policy, |n| {
        retention::prune_archive_older(db.connection(), before, n)
    })
    .await?;
    let keep = archive.max_events();
    let beyond = drain(clock, policy, |n| {
        retention::prune_archive_beyond(db.connection(), keep, n)
    })
    .await?;
    Ok(old + beyond)
}

/// Starts the pruning loop on the current runtime, unless every age is 0 (keep forever)
/// and there is no archive to bound. It runs a round at once and then every
/// `retention.interval_secs`, until the runtime stops.
pub fn spawn(db: Database, policy: Retention, archive: Archive) {
    if policy.runs_days == 0
        && policy.plans_days == 0
        && policy.outbox_days == 0
        && policy.audit_days == 0
        && !archive.enabled
    {
        return;
    }
    let clock = crate::clock::system();
    let interval = Duration::from_secs(policy.interval_secs.max(1));
    actix_rt::spawn(async move {
        loop {
            match prune_once(&db, &clock, &policy).await {
                Ok(p) => tracing::info!(
                    runs = p.runs,
                    plans = p.plans,
                    outbox = p.outbox,
                    "retention round done"
                ),
                Err(error) => tracing::warn!(%error, "retention round failed; trying again next round"),
            }
            match prune_archive(&db, &clock, &policy, &archive).await {
                Ok(events) => tracing::info!(events, "archive pruned"),
                Err(error) => tracing::warn!(%error, "archive pruning failed; trying again next round"),
            }
            clock.sleep(interval).await;
        }
    });
}
