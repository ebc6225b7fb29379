//! Cascades: events the engine emits carry their cause (`"cause": {"event_id",
//! "workflow_id", "depth"}` in the envelope), one deeper than the event of the run that
//! emitted them. An event deeper than `engine.max_cascade_depth` starts no runs, so two
//! workflows that set each other's statuses stop instead of running forever.

use serde::{Deserialize, Serialize};

/// The default of `engine.max_cascade_depth`.
pub const DEFAULT_MAX_DEPTH: u32 = 5;

/// The largest depth an envelope may carry: far beyond any configured maximum, and small
/// enough that adding one never overflows.
pub const MAX_DEPTH_VALUE: u32 = 1_000_000;

/// What made the engine emit an event: the run of `workflow_id` for `event_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub event_id: String,
    pub workflow_id: String,
    /// 1 for an event emitted by a run of an outside event; one more per generation.
    pub depth: u32,
}

/// The depth of an event: 0 for one from outside the engine.
pub fn depth(cause: Option<&Cause>) -> u32 {
    cause.map_or(0, |c| c.depth)
}

/// Whether an event at `depth` is past the maximum and must start no runs.
pub fn stopped(depth: u32, max_depth: u32) -> bool {
    depth > max_depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_past_the_maximum() {
        assert!(!stopped(0, 5));
        assert!(!stopped(5, 5));
        assert!(stopped(6, 5));
        assert!(stopped(1, 0));
    }
}
