//! Which partitions this process works for, under which epoch, and how much of each
//! partition's work is in progress here.
//!
//! The database fences a stale owner's commits (`storage::ownership`); this registry is
//! the process's own, cheap view of the same thing, so work of a partition that moved away
//! stops at the next step instead of failing at it, queued work of a revoked partition is
//! dropped when its turn comes, and a hand-over can wait until nothing of the partition is
//! still running here before it lets the partition go.

use crate::storage::ownership::Fence;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The partitions this process owns, shared by the consumer, the executors, the scheduler
/// and the outbox relay.
#[derive(Clone, Default)]
pub struct Ownership {
    partitions: Arc<RwLock<BTreeMap<i32, Owned>>>,
    /// In-progress counters by fence; they outlive a revoke until their work is done.
    active: Arc<RwLock<HashMap<Fence, Arc<Active>>>>,
}

#[derive(Clone)]
struct Owned {
    epoch: i64,
}

/// Work in progress under one fence.
#[derive(Default)]
struct Active {
    count: AtomicUsize,
    idle: Notify,
}

/// Held while a piece of a partition's work runs; dropping it ends the work.
pub struct WorkGuard {
    active: Arc<Active>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        if self.active.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.active.idle.notify_waiters();
        }
    }
}

impl Ownership {
    /// This process now works for `fence.partition` under `fence.epoch`.
    pub fn grant(&self, fence: Fence) {
        if let Ok(mut p) = self.partitions.write() {
            p.insert(fence.partition, Owned { epoch: fence.epoch });
        }
    }

    /// This process no longer works for `partition`: its queued work is dropped and its
    /// running work stops at the next step. Returns the fence it had.
    pub fn revoke(&self, partition: i32) -> Option<Fence> {
        let owned = self.partitions.write().ok()?.remove(&partition)?;
        Some(Fence {
            partition,
            epoch: owned.epoch,
        })
    }

    /// Whether work started under `fence` may go on.
    pub fn holds(&self, fence: Fence) -> bool {
        self.partitions
            .read()
            .is_ok_and(|p| p.get(&fence.partition).is_some_and(|o| o.epoch == fence.epoch))
    }

    /// The owned partitions with their fences, ascending.
    pub fn fences(&self) -> Vec<Fence> {
        self.partitions
            .read()
            .map(|p| {
                p.iter()
                    .map(|(&partition, o)| Fence {
                        partition,
                        epoch: o.epoch,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The owned partitions, ascending.
    pub fn partitions(&self) -> Vec<i32> {
        self.fences().into_iter().map(|f| f.partition).collect()
    }

    /// Starts a piece of work under `fence`; `None` when the fence is no longer held (the
    /// work must be dropped).
    pub fn enter(&self, fence: Fence) -> Option<WorkGuard> {
        if !self.holds(fence) {
            return None;
        }
        let active = {
            let mut all = self.active.write().ok()?;
            Arc::clone(all.entry(fence).or_default())
        };
        active.count.fetch_add(1, Ordering::AcqRel);
        // A revoke between the check and the count would not wait for this work: look again.
        if !self.holds(fence) {
            drop(WorkGuard { active });
            return None;
        }
        Some(WorkGuard { active })
    }

    /// Pieces of work under `fence` in progress now.
    pub fn in_progress(&self, fence: Fence) -> usize {
        self.active
            .read()
            .ok()
            .and_then(|a| a.get(&fence).map(|a| a.count.load(Ordering::Acquire)))
            .unwrap_or(0)
    }

    /// Waits until no work of `fence` is in progress, or `limit` passed; returns whether it
    /// finished. Call it after [`Ownership::revoke`], so no new work starts.
    pub async fn finished(&self, fence: Fence, limit: Duration) -> bool {
        let active = self.active.read().ok().and_then(|a| a.get(&fence).cloned());
        let done = match active {
            None => true,
            Some(active) => tokio::time::timeout(limit, async {
                loop {
                    let idle = active.idle.notified();
                    if active.count.load(Ordering::Acquire) == 0 {
                        return;
                    }
                    idle.await;
                }
            })
            .await
            .is_ok(),
        };
        if done {
            if let Ok(mut all) = self.active.write() {
                all.remove(&fence);
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Fence = Fence { partition: 3, epoch: 7 };

    #[actix_rt::test]
    async fn work_enters_only_under_the_current_fence_and_a_revoke_waits_for_it() {
        let o = Ownership::default();
        assert!(o.enter(F).is_none());
        o.grant(F);
        assert_eq!(o.partitions(), [3]);
        let guard = o.enter(F).expect("owned");
        assert!(o.enter(Fence { partition: 3, epoch: 6 }).is_none());
        assert_eq!(o.in_progress(F), 1);
        assert_eq!(o.revoke(3), Some(F));
        assert!(!o.holds(F));
        assert!(o.enter(F).is_none());
        assert!(!o.finished(F, Duration::from_millis(10)).await);
        let waiting = {
            let o = o.clone();
            actix_rt::spawn(async move { o.finished(F, Duration::from_secs(30)).await })
        };
        drop(guard);
        assert!(waiting.await.unwrap());
        assert_eq!(o.in_progress(F), 0);
    }
}
