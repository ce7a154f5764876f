//! Free space (docs/design.md §4): a node keeps `--disk-reserve` of its
//! data directory's file system free for its metadata database (WAL
//! preallocation, memtable flushes, compactions), and refuses new bytes
//! with `DiskFull` below it. RocksDB that meets ENOSPC stops taking writes
//! until it is reopened; a node that refuses first keeps taking deletions,
//! and writes again as soon as space is freed, without a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::NodeError;
use crate::node::Node;

/// How often the free space is read from the file system.
const REFRESH: Duration = Duration::from_millis(250);

/// The free bytes last read, less what uploads under way may still write.
pub struct Space {
    free_bytes: AtomicU64,
    /// Bytes declared by uploads not finished yet: the file system does not
    /// count them yet, so every refresh takes them off again.
    in_flight_bytes: AtomicU64,
}

impl Default for Space {
    /// Unknown until first read: nothing is refused.
    fn default() -> Space {
        Space { free_bytes: AtomicU64::new(u64::MAX), in_flight_bytes: AtomicU64::new(0) }
    }
}

impl Space {
    /// Reserves `incoming` bytes (0 when not declared) until the answer is
    /// dropped, or refuses them when that would leave less than the reserve.
    pub fn take<'s>(&'s self, node: &Node, incoming: Option<u64>) -> Result<Taken<'s>, NodeError> {
        let incoming = incoming.unwrap_or(0);
        let floor = node.config.disk_reserve_bytes.saturating_add(incoming);
        self.free_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                (free >= floor).then(|| free - incoming)
            })
            .map_err(|_| NodeError::DiskFull)?;
        self.in_flight_bytes.fetch_add(incoming, Ordering::AcqRel);
        Ok(Taken { space: self, bytes: incoming })
    }

    fn refresh(&self, free_bytes: u64) {
        let in_flight = self.in_flight_bytes.load(Ordering::Acquire);
        self.free_bytes.store(free_bytes.saturating_sub(in_flight), Ordering::Release);
    }
}

/// Bytes an upload under way may still write; released when dropped (the
/// file system counts them by then).
pub struct Taken<'s> {
    space: &'s Space,
    bytes: u64,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.space.in_flight_bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reads the free space every [`REFRESH`], on one shard of the node.
pub async fn watch(node: std::sync::Arc<Node>) {
    loop {
        let data = node.data.clone();
        match glommio::executor().spawn_blocking(move || data.disk_usage_blocking()).await {
            Ok(usage) => node.space.refresh(usage.free_bytes),
            Err(error) => tracing::warn!(%error, "cannot read the free space"),
        }
        glommio::timer::sleep(REFRESH).await;
    }
}
