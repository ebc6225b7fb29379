//! Which side of an experiment a customer is on: a stable hash of (customer id, workflow
//! id, step path), so every node, a restart, a replay, the dry run and the backtest all
//! put one customer on the same side, with nothing stored to agree on.
//!
//! The hash is SHA-256 of the three parts joined by a unit separator, its first eight
//! bytes read big-endian, modulo 100: a bucket 0..100 that percents cut up. SHA-256 is
//! fixed by its specification, unlike `std`'s hashers, whose output may change between
//! Rust releases; the tests pin buckets so a change here cannot slip through.

use sha2::{Digest, Sha256};

/// The step path the holdout is drawn under: no step has it, so a workflow's holdout and
/// its splits are drawn independently.
pub const HOLDOUT: &str = "holdout";

/// The customer's bucket, 0..100, for one experiment (a workflow's step or its holdout).
pub fn bucket(customer_id: i64, workflow_id: &str, path: &str) -> u8 {
    let mut hash = Sha256::new();
    hash.update(customer_id.to_string().as_bytes());
    hash.update([0x1f]);
    hash.update(workflow_id.as_bytes());
    hash.update([0x1f]);
    hash.update(path.as_bytes());
    let digest = hash.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // The remainder is below 100, so it fits.
    (u64::from_be_bytes(head) % 100) as u8
}

/// The path of a split whose paths take `percents` (summing to 100) that the bucket
/// falls in: path k takes the buckets from the sum of the percents before it.
pub fn split_path(percents: &[u8], bucket: u8) -> usize {
    let mut upto = 0u32;
    for (k, percent) in percents.iter().enumerate() {
        upto += u32::from(*percent);
        if u32::from(bucket) < upto {
            return k;
        }
    }
    // Only when the percents fall short of 100, which validation refuses.
    percents.len().saturating_sub(1)
}

/// Whether the customer is held out of a workflow with a holdout of `percent`.
pub fn held_out(customer_id: i64, workflow_id: &str, percent: u8) -> bool {
    bucket(customer_id, workflow_id, HOLDOUT) < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned: a release that moves any of these puts customers on other sides of running
    /// experiments. Change them only with the hash, and say so in the release notes.
    #[test]
    fn buckets_never_change_between_releases() {
        let pinned: Vec<u8> = [
            (1, "welcome", "holdout"),
            (2, "welcome", "holdout"),
            (1, "welcome", "1"),
            (42, "win-back-sms", "0.on_timeout.0"),
            (-7, "w", ""),
            (9_007_199_254_740_993, "vip", "3.paths.1.0"),
        ]
        .into_iter()
        .map(|(c, w, p)| bucket(c, w, p))
        .collect();
        assert_eq!(pinned, PINNED);
    }

    // Checked against an independent implementation (Python hashlib).
    const PINNED: [u8; 6] = [28, 40, 28, 14, 92, 23];

    #[test]
    fn paths_take_their_percent_of_buckets_in_order() {
        assert_eq!(split_path(&[50, 50], 0), 0);
        assert_eq!(split_path(&[50, 50], 49), 0);
        assert_eq!(split_path(&[50, 50], 50), 1);
        assert_eq!(split_path(&[50, 50], 99), 1);
        assert_eq!(split_path(&[0, 100], 0), 1, "an empty path takes no bucket");
        assert_eq!(split_path(&[10, 0, 90], 10), 2);
    }

    #[test]
    fn buckets_spread_evenly_and_parts_are_independent() {
        let mut counts = [0u32; 100];
        for c in 0..100_000 {
            counts[usize::from(bucket(c, "w", "1"))] += 1;
        }
        // 1,000 expected in each; a fair hash stays well within ±20%.
        assert!(counts.iter().all(|&n| (800..1200).contains(&n)), "{counts:?}");
        let held = (0..10_000).filter(|&c| held_out(c, "w", 10)).count();
        assert!((800..1200).contains(&held), "{held} of 10,000 held out at 10%");
        // The holdout and a split are not the same draw: held-out customers fall on both
        // paths of a 50/50 split.
        let on_first = (0..10_000)
            .filter(|&c| held_out(c, "w", 10) && bucket(c, "w", "1") < 50)
            .count();
        assert!((held / 4..held * 3 / 4).contains(&on_first), "{on_first} of {held}");
    }
}
