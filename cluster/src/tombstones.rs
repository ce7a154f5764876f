//! Collecting tombstones (docs/design.md §5). A home keeps a deleted key's
//! record, listing the holders of older versions, until each has confirmed
//! its copy is gone (`Superseded` answered by `IndexForget`, or found by
//! anti-entropy); once none is left and `--tombstone-grace` has passed
//! since the deletion, the record goes. The grace covers copies no home
//! had heard of yet (a copy in flight, an announcement still in an outbox).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::meta::Batch;
use cairn_engine::IndexRecord;

use crate::plane::{unix_ms, Core};

/// Index records looked at per period, and the period.
const SCAN_MAX: usize = 4096;
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a home may drop this record now.
pub fn collectable(record: &IndexRecord, now_ms: u64, grace: Duration) -> bool {
    let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
    record.deleted
        && record.holders.is_empty()
        && record.version.unix_ms().saturating_add(grace_ms) <= now_ms
}

/// Walks this node's index records forever, dropping collectable tombstones.
pub async fn collect(core: Arc<Core>) {
    let mut ticker = tokio::time::interval(SCAN_INTERVAL);
    let mut cursor: Option<(String, String)> = None;
    loop {
        ticker.tick().await;
        let meta = &core.storage.meta;
        let after = cursor.as_ref().map(|(d, k)| (d.as_str(), k.as_str()));
        let records = match meta.index_after(after, SCAN_MAX) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "cannot scan the index for tombstones");
                continue;
            }
        };
        cursor = match records.last() {
            Some((domain, key, _)) if records.len() == SCAN_MAX => {
                Some((domain.clone(), key.clone()))
            }
            _ => None,
        };
        // Read and dropped with no await between: an index change for the
        // same key cannot come in between on this thread.
        let (now, mut batch, mut dropped) = (unix_ms(), Batch::default(), 0);
        for (domain, key, record) in &records {
            if collectable(record, now, core.timing.tombstone_grace) {
                batch.delete_index(domain, key);
                dropped += 1;
            }
        }
        if dropped == 0 {
            continue;
        }
        match meta.write_unsynced(batch) {
            Ok(()) => {
                core.storage.stats.tombstones_collected.fetch_add(dropped, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "cannot drop tombstones"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_engine::Version;

    fn tombstone(at_ms: u64, holders: Vec<u64>) -> IndexRecord {
        IndexRecord {
            version: Version { hlc: at_ms << 16, node_id: 1 },
            sha256: cairn_engine::Digest([0; 32]),
            size_bytes: 0,
            class: "default".into(),
            content_type: String::new(),
            headers: String::new(),
            deleted: true,
            holders,
        }
    }

    #[test]
    fn a_tombstone_goes_once_no_holder_is_left_and_the_grace_passed() {
        let grace = Duration::from_secs(60);
        assert!(collectable(&tombstone(1_000, vec![]), 61_000, grace));
        assert!(!collectable(&tombstone(1_000, vec![]), 60_999, grace), "within the grace");
        assert!(!collectable(&tombstone(1_000, vec![7]), 10_000_000, grace), "a holder is left");
        let mut live = tombstone(1_000, vec![]);
        live.deleted = false;
        assert!(!collectable(&live, 10_000_000, grace), "only deletions");
    }
}
