//! The stats rollup's compaction: a background task that folds the deltas the database's
//! triggers write on PostgreSQL (`stats_deltas`) into `stats_rollup`
//! ([`crate::storage::stats::compact`]). On SQLite the triggers write the rollup itself and
//! a round finds nothing to fold: one read of an empty table.
//!
//! The stats are exact without it (a read sums the rollup and the pending deltas); it
//! keeps the pending deltas few, so a read stays a read of a few thousand rows. Every
//! process runs it; on PostgreSQL they fold disjoint deltas side by side. A failure (the
//! database away) is logged and tried again at the next round: nothing is lost, the
//! deltas wait.

use crate::clock::SharedClock;
use crate::storage::{stats, Database};
use std::time::Duration;

/// Time between rounds: what a read may have to sum on top of the rollup is the deltas of
/// about this long (a few rows per run that started or changed).
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Deltas folded per transaction, so one holds its locks briefly.
pub const BATCH: u64 = 10_000;
/// Rounds between two sweeps of rollup rows that count nothing any more (hourly).
const SWEEP_EVERY: u64 = 360;

/// Starts the compaction loop on the current runtime, until the runtime stops.
pub fn spawn(db: Database) {
    let clock = crate::clock::system();
    actix_rt::spawn(run(db, clock));
}

async fn run(db: Database, clock: SharedClock) {
    let mut round: u64 = 0;
    loop {
        match stats::compact_all(&db, BATCH).await {
            Ok(folded) if folded > 0 => tracing::debug!(folded, "stats deltas folded"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "stats compaction failed; trying again next round"),
        }
        if round % SWEEP_EVERY == 0 {
            match stats::prune_empty(db.connection()).await {
                Ok(deleted) => tracing::debug!(deleted, "empty stats rows swept"),
                Err(error) => tracing::warn!(%error, "sweeping empty stats rows failed"),
            }
        }
        round = round.wrapping_add(1);
        clock.sleep(INTERVAL).await;
    }
}
