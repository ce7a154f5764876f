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

/// The free bytes last read, less what was taken in since.
pub struct Space {
    free_bytes: AtomicU64,
}

impl Default for Space {
    /// Unknown until first read: nothing is refused.
    fn default() -> Space {
        Space { free_bytes: AtomicU64::new(u64::MAX) }
    }
}

impl Space {
    /// Takes `incoming` bytes (0 when not declared) out of the free space,
    /// or refuses them when that would leave less than the reserve.
    pub fn take(&self, node: &Node, incoming: Option<u64>) -> Result<(), NodeError> {
        let incoming = incoming.unwrap_or(0);
        let free = self.free_bytes.load(Ordering::Relaxed);
        if free < node.config.disk_reserve_bytes.saturating_add(incoming) {
            return Err(NodeError::DiskFull);
        }
        self.free_bytes.fetch_sub(incoming.min(free), Ordering::Relaxed);
        Ok(())
    }
}

/// Reads the free space every [`REFRESH`], on one shard of the node.
pub async fn watch(node: std::sync::Arc<Node>) {
    loop {
        let data = node.data.clone();
        match glommio::executor().spawn_blocking(move || data.disk_usage_blocking()).await {
            Ok(usage) => node.space.free_bytes.store(usage.free_bytes, Ordering::Relaxed),
            Err(error) => tracing::warn!(%error, "cannot read the free space"),
        }
        glommio::timer::sleep(REFRESH).await;
    }
}
