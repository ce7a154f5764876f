//! Versions of a key: a hybrid logical clock plus the node that wrote it.
//! The later version wins (last writer wins), the same way on every node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the clock value left for the logical counter below milliseconds.
const LOGICAL_BITS: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// `unix_ms << 16 | logical`: ordered first.
    pub hlc: u64,
    /// Breaks ties between nodes that wrote in the same instant.
    pub node_id: u64,
}

impl Version {
    /// The wall-clock time of the writer when it made this version (ms
    /// since the Unix epoch), as far as its clock knew.
    pub fn unix_ms(&self) -> u64 {
        self.hlc >> LOGICAL_BITS
    }

    /// The clock value of the first version at `unix_ms`.
    pub fn hlc_at(unix_ms: u64) -> u64 {
        unix_ms << LOGICAL_BITS
    }
}

/// A node's hybrid logical clock: never goes backwards, even when the
/// wall clock does, and is shared by all shards without a lock.
pub struct Clock {
    last: AtomicU64,
    node_id: u64,
    /// How far ahead of this node's wall clock a version seen elsewhere may
    /// be and still move this clock.
    max_skew_ms: u64,
    /// Versions seen further ahead than that.
    ahead_seen: AtomicU64,
    /// The clock value of the last version made to pass one too far ahead
    /// to follow (see [`Clock::next_after`]).
    ahead_last: AtomicU64,
}

/// The default of `--max-clock-skew`.
pub const MAX_SKEW_DEFAULT_MS: u64 = 60_000;

impl Clock {
    pub fn new(node_id: u64) -> Clock {
        Clock::with_max_skew(node_id, MAX_SKEW_DEFAULT_MS)
    }

    pub fn with_max_skew(node_id: u64, max_skew_ms: u64) -> Clock {
        Clock {
            last: AtomicU64::new(0),
            node_id,
            max_skew_ms,
            ahead_seen: AtomicU64::new(0),
            ahead_last: AtomicU64::new(0),
        }
    }

    /// How many versions seen elsewhere were too far ahead to follow.
    pub fn ahead_seen(&self) -> u64 {
        self.ahead_seen.load(Ordering::Relaxed)
    }

    /// Starts past a version this node stored (on start: versions never go
    /// backwards across restarts, whatever the wall clock says now).
    pub fn resume_after(&self, stored: Version) {
        self.last.fetch_max(stored.hlc, Ordering::AcqRel);
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn now(&self) -> Version {
        let wall = physical_now_ms() << LOGICAL_BITS;
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| Some(wall.max(last + 1)))
            .expect("the update closure always returns Some");
        Version { hlc: wall.max(previous + 1), node_id: self.node_id }
    }

    /// Moves the clock past a version seen elsewhere, so our next version
    /// orders after it; unless it is more than the allowed skew ahead of
    /// this node's wall clock (a peer's clock is wrong): then it is counted
    /// and logged, and `false` says the clock did not follow.
    pub fn observe(&self, seen: Version) -> bool {
        let seen_ms = seen.hlc >> LOGICAL_BITS;
        let ahead_ms = seen_ms.saturating_sub(physical_now_ms());
        if ahead_ms > self.max_skew_ms {
            let count = self.ahead_seen.fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_power_of_two() {
                let writer = format!("{:016x}", seen.node_id);
                tracing::warn!(%writer, ahead_ms, times = count, "a version from a clock too far ahead: not following it");
            }
            return false;
        }
        self.last.fetch_max(seen.hlc, Ordering::AcqRel);
        true
    }

    /// A new version that orders after `replaced` (the version it replaces,
    /// if any) whatever the wall clock says. A `replaced` too far ahead is
    /// passed by this version alone: the node's clock does not jump there.
    /// Such versions are still never made twice: two writes of one key
    /// that pass the same version here at once (a PUT and a DELETE racing)
    /// got equal versions, which the homes merged into a deletion while
    /// the writer kept serving its bytes.
    pub fn next_after(&self, replaced: Option<Version>) -> Version {
        let now = self.now();
        match replaced {
            Some(replaced) if replaced >= now && !self.observe(replaced) => {
                let floor = replaced.hlc + 1;
                let previous = self
                    .ahead_last
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                        Some(floor.max(last + 1))
                    })
                    .expect("the update closure always returns Some");
                Version { hlc: floor.max(previous + 1), node_id: self.node_id }
            }
            Some(replaced) if replaced >= now => self.now(),
            _ => now,
        }
    }
}

fn physical_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_strictly_increasing_and_passes_observed_versions() {
        let clock = Clock::new(7);
        let mut last = clock.now();
        for _ in 0..10_000 {
            let next = clock.now();
            assert!(next > last);
            last = next;
        }
        let future = Version { hlc: last.hlc + (1 << 30), node_id: 9 };
        clock.observe(future);
        assert!(clock.now().hlc > future.hlc);
    }

    #[test]
    fn a_new_version_passes_the_one_it_replaces() {
        let clock = Clock::new(1);
        let ahead = Version { hlc: clock.now().hlc + (10_000 << LOGICAL_BITS), node_id: 2 };
        assert!(clock.next_after(Some(ahead)) > ahead);
        assert!(clock.next_after(None) > ahead, "a clock 10 s ahead is followed");
        assert_eq!(clock.ahead_seen(), 0);
    }

    #[test]
    fn a_clock_too_far_ahead_is_passed_by_its_key_but_not_followed() {
        let clock = Clock::with_max_skew(1, 60_000);
        let far = Version { hlc: clock.now().hlc + (120_000 << LOGICAL_BITS), node_id: 2 };
        assert!(clock.next_after(Some(far)) > far, "the key's new version still wins");
        assert!(clock.next_after(None) < far, "other keys' versions stay near the wall clock");
        assert!(!clock.observe(far));
        assert_eq!(clock.ahead_seen(), 2);
    }

    #[test]
    fn versions_passing_one_too_far_ahead_are_never_made_twice() {
        let clock = Clock::with_max_skew(1, 60_000);
        let far = Version { hlc: clock.now().hlc + (600_000 << LOGICAL_BITS), node_id: 2 };
        let (first, second) = (clock.next_after(Some(far)), clock.next_after(Some(far)));
        assert!(first > far && second > far);
        assert_ne!(first, second, "a PUT and a DELETE passing it at once differ");
        let further = Version { hlc: far.hlc + (1 << LOGICAL_BITS), node_id: 3 };
        assert!(clock.next_after(Some(further)) > further);
    }

    #[test]
    fn a_restart_resumes_after_what_was_stored_however_far_ahead() {
        let clock = Clock::with_max_skew(1, 60_000);
        let stored = Version { hlc: clock.now().hlc + (120_000 << LOGICAL_BITS), node_id: 1 };
        clock.resume_after(stored);
        assert!(clock.now() > stored);
    }
}
