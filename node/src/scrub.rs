//! Scrub (docs/design.md §10): each shard re-reads the blobs it owns at a
//! bounded rate (`--scrub-rate`, split over the shards), checking every
//! block's CRC and the whole SHA-256, a pass at most every
//! `--scrub-period`. A damaged copy is quarantined and every key here that
//! refers to it is dropped and forgotten at its homes, so the tracker makes
//! the copy again from a good holder; a key whose every copy was bad is
//! left with no holder, reported `lost` and never served.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn_engine::Digest;

use crate::error::NodeError;
use crate::read::Checked;
use crate::shard::Shard;

/// Blob records read from the metadata per step of a pass.
const BATCH_LEN: usize = 64;
/// Keys referring to one damaged blob dropped at most (a blob shared by
/// more keys is found again by the next pass).
const REFS_MAX: usize = 4096;
/// Shortest pause between two passes, whatever the period.
const PAUSE_MIN: Duration = Duration::from_secs(1);

/// Runs scrub passes on this shard forever; returns at once when scrub is
/// off (`--scrub-rate 0`) or the node keeps no blobs.
pub async fn run(shard: Rc<Shard>) {
    let config = &shard.node.config;
    let rate = config.scrub_rate_bytes_per_s / config.shard_count.max(1) as u64;
    if rate == 0 || config.no_store {
        return;
    }
    loop {
        let started = Instant::now();
        if let Err(error) = pass(&shard, rate).await {
            tracing::warn!(%error, "scrub pass stopped");
        }
        shard.node.stats.scrub_passes.fetch_add(1, Ordering::Relaxed);
        let period = shard.node.config.scrub_period;
        glommio::timer::sleep(period.saturating_sub(started.elapsed()).max(PAUSE_MIN)).await;
    }
}

/// One pass over the blobs this shard owns, paced to `rate` bytes/s. A
/// blob that cannot be read for another reason than damage is skipped
/// (logged) and the pass goes on.
async fn pass(shard: &Rc<Shard>, rate: u64) -> Result<(), NodeError> {
    let started = Instant::now();
    let mut read_bytes = 0u64;
    let mut cursor: Option<Digest> = None;
    loop {
        let batch = shard.node.meta.blobs_after(cursor.as_ref(), BATCH_LEN)?;
        let Some((last, _)) = batch.last() else { return Ok(()) };
        cursor = Some(*last);
        for (sha256, blob) in batch {
            if shard.blob_shard(&sha256) != shard.id {
                continue;
            }
            let stats = &shard.node.stats;
            stats.scrub_blobs.fetch_add(1, Ordering::Relaxed);
            match crate::read::verify_blob(shard, &sha256, blob).await {
                Ok(Checked::Intact(bytes)) => {
                    read_bytes += bytes;
                    stats.scrub_bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Ok(Checked::Damaged) => {
                    stats.scrub_damaged.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = drop_keys_of(shard, &sha256).await {
                        tracing::warn!(%sha256, %error, "scrub could not drop a damaged copy");
                    }
                }
                Ok(Checked::Replaced) => {
                    stats.scrub_damaged.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => tracing::warn!(%sha256, %error, "scrub could not read a blob"),
            }
            // Paced: the bytes read so far may not run ahead of the rate.
            let due = Duration::from_secs_f64(read_bytes as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                glommio::timer::sleep(ahead).await;
            }
        }
    }
}

/// Drops this node's copy of every key that refers to the damaged blob
/// and tells the keys' homes, so the tracker copies them again from a
/// good holder.
async fn drop_keys_of(shard: &Rc<Shard>, sha256: &Digest) -> Result<(), NodeError> {
    for (domain, key) in shard.node.meta.refs_of(sha256, REFS_MAX)? {
        let Some(local) = shard.node.meta.key(&domain, &key)? else { continue };
        if local.sha256 != *sha256 {
            continue;
        }
        match shard.delete_if(domain.clone(), key.clone(), Some(local.version)).await {
            Ok(_) => shard.node.control.forget_holder(&domain, &key, local.version),
            Err(NodeError::NotFound | NodeError::Changed) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
