//! A shard's cache of the small blobs it served recently.
//!
//! Blobs are immutable and named by their SHA-256, so an entry is never
//! stale: no invalidation, only eviction. O_DIRECT reads bypass the page
//! cache, so without this every GET of a hot blob would go to the disk.
//! Each shard has its own cache (no lock shared between cores); a blob hot
//! on two shards is cached twice.

use std::rc::Rc;

use bytes::Bytes;
use cairn_engine::Digest;
use lru::LruCache;

/// Blobs larger than this are streamed from disk, never cached.
pub const CACHE_ENTRY_MAX_BYTES: u64 = 1 << 20;
// A cached blob is loaded with one verified read.
const _: () = assert!(CACHE_ENTRY_MAX_BYTES <= cairn_engine::reader::READ_CHUNK_BYTES);
/// Bookkeeping counted against the budget for every entry.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// A whole blob and its block CRCs (checked again at every hit).
#[derive(Clone)]
pub struct CachedBlob {
    pub bytes: Bytes,
    pub block_crcs: Rc<[u32]>,
}

impl CachedBlob {
    fn cost_bytes(&self) -> usize {
        self.bytes.len() + 4 * self.block_crcs.len() + ENTRY_OVERHEAD_BYTES
    }
}

pub struct BlobCache {
    entries: LruCache<Digest, CachedBlob>,
    used_bytes: usize,
    capacity_bytes: usize,
}

impl BlobCache {
    pub fn new(capacity_bytes: usize) -> BlobCache {
        BlobCache { entries: LruCache::unbounded(), used_bytes: 0, capacity_bytes }
    }

    pub fn get(&mut self, sha256: &Digest) -> Option<CachedBlob> {
        self.entries.get(sha256).cloned()
    }

    pub fn insert(&mut self, sha256: Digest, blob: CachedBlob) {
        let cost = blob.cost_bytes();
        if cost > self.capacity_bytes {
            return;
        }
        if let Some(old) = self.entries.put(sha256, blob) {
            self.used_bytes -= old.cost_bytes();
        }
        self.used_bytes += cost;
        while self.used_bytes > self.capacity_bytes {
            match self.entries.pop_lru() {
                Some((_, evicted)) => self.used_bytes -= evicted.cost_bytes(),
                None => break,
            }
        }
    }

    pub fn remove(&mut self, sha256: &Digest) {
        if let Some(old) = self.entries.pop(sha256) {
            self.used_bytes -= old.cost_bytes();
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize) -> CachedBlob {
        CachedBlob { bytes: Bytes::from(vec![1u8; len]), block_crcs: Rc::from(vec![0u32; 1]) }
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let entry = blob(1000).cost_bytes();
        let mut cache = BlobCache::new(3 * entry);
        for i in 0..3u8 {
            cache.insert(Digest([i; 32]), blob(1000));
        }
        assert!(cache.get(&Digest([0; 32])).is_some());
        cache.insert(Digest([9; 32]), blob(1000));
        assert!(cache.get(&Digest([1; 32])).is_none(), "least recently used went first");
        assert!(cache.get(&Digest([0; 32])).is_some());
        assert_eq!(cache.used_bytes(), 3 * entry);
        cache.insert(Digest([8; 32]), blob(10 * entry));
        assert!(cache.get(&Digest([8; 32])).is_none(), "larger than the whole budget");
        cache.remove(&Digest([0; 32]));
        assert_eq!(cache.used_bytes(), 2 * entry);
    }
}
