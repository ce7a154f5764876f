//! Counters of one node's key records, by state, kept current by every
//! change of a key (and by uploads and copies while they run), and two
//! node-wide event counters. Shared by the shards and the raft thread;
//! lock-free.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::{KeyRecord, KeyState};

/// Keys and bytes per state, across all shards.
#[derive(Default)]
pub struct NodeStats {
    keys: [AtomicI64; 6],
    bytes: [AtomicI64; 6],
    pub corrupt_reads: AtomicU64,
    /// Copies made here by replication.
    pub copies_in: AtomicU64,
    /// Ranges of keys whose versions a home listed otherwise than this
    /// holder held them (anti-entropy).
    pub ranges_differing: AtomicU64,
    /// Tombstones this home dropped from its index.
    pub tombstones_collected: AtomicU64,
    /// Damaged blob files moved to `quarantine/`.
    pub quarantined: AtomicU64,
    /// Scrub passes finished, blobs and bytes checked, damaged copies found.
    pub scrub_passes: AtomicU64,
    pub scrub_blobs: AtomicU64,
    pub scrub_bytes: AtomicU64,
    pub scrub_damaged: AtomicU64,
}

impl NodeStats {
    pub fn replace(&self, old: Option<&KeyRecord>, new: Option<&KeyRecord>) {
        if let Some(old) = old {
            self.add(old.state, -1, -(old.size_bytes as i64));
        }
        if let Some(new) = new {
            self.add(new.state, 1, new.size_bytes as i64);
        }
    }

    pub fn add(&self, state: KeyState, keys: i64, bytes: i64) {
        self.keys[state.index()].fetch_add(keys, Ordering::Relaxed);
        self.bytes[state.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn get(&self, state: KeyState) -> (i64, i64) {
        (
            self.keys[state.index()].load(Ordering::Relaxed),
            self.bytes[state.index()].load(Ordering::Relaxed),
        )
    }
}
