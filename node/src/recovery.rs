//! What a crash can leave, cleared at start: temp files, upload records,
//! and blob files no key refers to (a crash between placing a blob and
//! committing its key).

use std::sync::Arc;

use cairn_engine::meta::Batch;
use cairn_engine::{DataDir, Meta, NodeStats, Version};

use crate::error::NodeError;
use crate::node::Node;

/// Removes what a crash can leave: temp files and upload records. Runs
/// before any listener is bound, so no upload can be live.
pub fn recover(data: &DataDir, meta: &Meta) -> Result<(usize, usize), NodeError> {
    let tmp_removed = data.clear_tmp_blocking()?;
    let uploads_removed = futures_lite::future::block_on(meta.clear_uploads())?;
    Ok((tmp_removed, uploads_removed))
}

/// Counts the key records into `stats`, and answers the newest version
/// this node knows of, in its key records and in the index records it
/// keeps as a home: the clock starts past it, so that a restart with the
/// wall clock behind never writes an older version.
pub fn count_keys(meta: &Meta, stats: &NodeStats) -> Result<Option<Version>, NodeError> {
    let mut newest: Option<Version> = None;
    meta.for_each_key(|record| {
        stats.add(record.state, 1, record.size_bytes as i64);
        newest = newest.max(Some(record.version));
    })?;
    meta.for_each_index(|record| newest = newest.max(Some(record.version)))?;
    Ok(newest)
}

/// A crash between placing a blob and committing its key leaves a file no
/// key refers to: queue every such file for the collector.
pub fn spawn_orphan_sweep(node: Arc<Node>) {
    let spawned = std::thread::Builder::new().name("orphan-sweep".into()).spawn(move || {
        let mut queued = 0usize;
        let swept = node.data.walk_fids_blocking(|sha256| {
            if matches!(node.meta.has_refs(&sha256), Ok(false)) {
                let mut batch = Batch::default();
                batch.add_gc_candidate(&sha256);
                if node.meta.write_unsynced(batch).is_ok() {
                    queued += 1;
                }
            }
        });
        match swept {
            Ok(()) => tracing::info!(queued, "orphan sweep done"),
            Err(error) => tracing::warn!(%error, "orphan sweep failed"),
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the orphan sweep");
    }
}
