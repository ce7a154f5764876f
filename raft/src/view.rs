//! [`ClusterView`]: read access to the state machine's [`ClusterState`]
//! from outside raft (the tracker, the HTTP and MogileFS front ends).
//!
//! Raft owns the state machine; the view shares its state behind a
//! reader-writer lock that the state machine holds only while it applies a
//! batch of entries or swaps in a snapshot, never across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::state::ClusterState;

/// A cheap-to-clone handle on the applied cluster state.
#[derive(Clone)]
pub struct ClusterView {
    state: Arc<RwLock<ClusterState>>,
    /// Bumped after every change, so that readers on hot paths can keep a
    /// copy and take the lock only when it is stale.
    generation: Arc<AtomicU64>,
}

impl ClusterView {
    pub(crate) fn new(state: ClusterState) -> ClusterView {
        ClusterView { state: Arc::new(RwLock::new(state)), generation: Arc::default() }
    }

    /// Runs `f` on the current state. Keep `f` short: applying waits for it.
    pub fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        // A poisoned lock means an apply panicked half-way: a bug, and the
        // state can no longer be trusted.
        let state = self.state.read().expect("cluster state lock poisoned by a panic in apply");
        f(&state)
    }

    /// Changes so far; a copy taken at generation `g` is current while this
    /// still returns `g`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A copy of the current state.
    pub fn to_state(&self) -> ClusterState {
        self.read(ClusterState::clone)
    }

    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut ClusterState) -> T) -> T {
        let mut state =
            self.state.write().expect("cluster state lock poisoned by a panic in apply");
        let result = f(&mut state);
        self.generation.fetch_add(1, Ordering::AcqRel);
        result
    }
}
