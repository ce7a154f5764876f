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

/// A node's hybrid logical clock: never goes backwards, even when the
/// wall clock does, and is shared by all shards without a lock.
pub struct Clock {
    last: AtomicU64,
    node_id: u64,
}

impl Clock {
    pub fn new(node_id: u64) -> Clock {
        Clock { last: AtomicU64::new(0), node_id }
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
    /// orders after it.
    pub fn observe(&self, seen: Version) {
        self.last.fetch_max(seen.hlc, Ordering::AcqRel);
    }

    /// A new version that orders after `replaced` (the version it replaces,
    /// if any) whatever the wall clock says.
    pub fn next_after(&self, replaced: Option<Version>) -> Version {
        if let Some(replaced) = replaced {
            self.observe(replaced);
        }
        self.now()
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
        let ahead = Version { hlc: clock.now().hlc + (120_000 << LOGICAL_BITS), node_id: 2 };
        assert!(clock.next_after(Some(ahead)) > ahead);
        assert!(clock.next_after(None) > ahead);
    }
}
