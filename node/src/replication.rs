//! Copies between nodes, on the shards (docs/design.md §4 steps 5–7):
//! pulling a key version's blob from a holder over the peer port, and the
//! rest of the work the raft thread hands to a shard ([`ShardWork`]).
//!
//! The bytes of a copy go through the same path as a PUT's (O_DIRECT,
//! SHA-256 and per-block CRCs on the way) and nothing is kept unless the
//! SHA-256 is the version's.

use std::rc::Rc;

use bytes::Bytes;
use cairn_cluster::work::{CopyError, ShardWork};
use cairn_engine::props::PropsRecord;
use cairn_engine::{Digest, KeyRecord, KeyState, Version};
use cairn_net::{Caller, IndexEntry};
use futures_channel::mpsc;
use futures_lite::StreamExt;

use crate::error::NodeError;
use crate::remote::{fetch, PeerBlob};
use crate::shard::Shard;
use crate::upload::{store_copy, ChunkSource, Copied};

/// Serves the raft thread's requests on this shard until the queue closes.
pub async fn serve_work(shard: Rc<Shard>, mut work: mpsc::Receiver<ShardWork>) {
    while let Some(item) = work.next().await {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            match item {
                ShardWork::Pull { entry, source_peer, caller, reply } => {
                    let _ = reply.send(pull(&shard, *entry, &source_peer, &caller).await);
                }
                ShardWork::MarkStored { domain, key, version } => {
                    if let Err(error) = shard.mark_stored(&domain, &key, version).await {
                        tracing::warn!(%domain, %key, %error, "cannot mark a key stored");
                    }
                }
                ShardWork::DropVersion { domain, key, version, reply } => {
                    let dropped = shard.delete_if(domain, key, Some(version)).await.is_ok();
                    let _ = reply.send(dropped);
                }
                ShardWork::PutProps { domain, path, record, reply } => {
                    let stored = match PropsRecord::decode(&record) {
                        Ok(props) => shard.put_props_local(&domain, &path, &props).await,
                        Err(_) => false,
                    };
                    let _ = reply.send(stored);
                }
                ShardWork::DropIfOlder { domain, key, version, reply } => {
                    let _ = reply.send(drop_if_older(&shard, domain, key, version).await);
                }
            }
        })
        .detach();
    }
}

/// Drops the copy of a key held here if it is older than `version`;
/// answers whether no older copy is left (false: it could not be dropped).
async fn drop_if_older(shard: &Shard, domain: String, key: String, version: Version) -> bool {
    let local = match shard.node.meta.key(&domain, &key) {
        Ok(local) => local,
        Err(_) => return false,
    };
    let Some(local) = local.filter(|local| local.version < version) else { return true };
    // Only that version: a newer one may have arrived meanwhile.
    match shard.delete_if(domain.clone(), key.clone(), Some(local.version)).await {
        Ok(old) => {
            tracing::debug!(%domain, %key, version = old.version.hlc, "dropped a superseded copy");
            true
        }
        Err(NodeError::NotFound | NodeError::Changed) => true,
        Err(_) => false,
    }
}

/// This node's record of a key, made a holder of the key's current
/// version first when it is not (copied from a holder the homes name): a
/// WebDAV COPY or MOVE of a key held elsewhere makes its new key here.
pub async fn hold_here(shard: &Rc<Shard>, domain: &str, key: &str) -> Result<KeyRecord, NodeError> {
    let local = shard.node.meta.key(domain, key)?;
    if shard.node.control.is_alone() {
        return local.ok_or(NodeError::NotFound);
    }
    let entry = crate::remote::find(shard, domain, key).await?;
    let version = Version { hlc: entry.hlc, node_id: entry.writer };
    if let Some(local) = local.filter(|local| local.version >= version) {
        return Ok(local);
    }
    let (caller, me) = (shard.node.control.caller(), shard.node.control.id());
    let mut reason = String::from("no readable holder");
    for holder in crate::remote::holders(shard, &entry).into_iter().filter(|h| h.id != me) {
        match pull(shard, entry.clone(), &holder.peer, &caller).await {
            Ok(()) => break,
            Err(error) => reason = error.to_string(),
        }
    }
    match shard.node.meta.key(domain, key)? {
        Some(local) if local.version >= version => Ok(local),
        _ => Err(NodeError::NoHolderReachable { sha256: Digest(entry.sha256), reason }),
    }
}

/// Makes this node a holder of `entry`'s version, copying it from the node
/// at `source_peer` unless it is here already.
async fn pull(
    shard: &Rc<Shard>,
    entry: IndexEntry,
    source_peer: &str,
    caller: &Caller,
) -> Result<(), CopyError> {
    let version = Version { hlc: entry.hlc, node_id: entry.writer };
    let local = shard.node.meta.key(&entry.domain, &entry.key).map_err(store_failed)?;
    if local.as_ref().is_some_and(|record| record.version >= version) {
        // Held already, or superseded by a newer version: nothing to copy.
        shard.node.control.announce_local(&entry.domain, &entry.key);
        return Ok(());
    }
    // One pull per version at a time: a tracker that lost count of a copy
    // (a new leader, a timeout) may ask again while the first still runs.
    let pulling = (entry.domain.clone(), entry.key.clone(), version);
    if !shard.pulls.borrow_mut().insert(pulling.clone()) {
        return Err(CopyError::AlreadyUnderWay);
    }
    let result = pull_once(shard, &entry, version, source_peer, caller).await;
    shard.pulls.borrow_mut().remove(&pulling);
    if result.is_ok() {
        copy_props(shard, &entry.domain, &entry.key, source_peer).await;
    }
    result
}

/// A new copy takes the WebDAV dead properties its source keeps beside it.
async fn copy_props(shard: &Shard, domain: &str, key: &str, source_peer: &str) {
    let Some(record) = shard.node.control.props_at(source_peer, domain, key).await else { return };
    if record.is_empty() {
        return;
    }
    match PropsRecord::decode(&record) {
        Ok(props) => {
            shard.put_props_local(domain, key, &props).await;
        }
        Err(error) => tracing::warn!(%domain, %key, %error, "a copy's source sent bad properties"),
    }
}

async fn pull_once(
    shard: &Rc<Shard>,
    entry: &IndexEntry,
    version: Version,
    source_peer: &str,
    caller: &Caller,
) -> Result<(), CopyError> {
    let sha256 = Digest(entry.sha256);
    if let Some(stored) = reuse_local_blob(shard, entry, version).await? {
        tracing::debug!(domain = %entry.domain, key = %entry.key, version = stored.version.hlc, "copy made from a blob held here");
        return Ok(());
    }
    let source = fetch(source_peer, &sha256, entry.size_bytes, None, caller)
        .await
        .map_err(CopyError::Source)?;
    let mut source = Paced { blob: source, shard };
    let copied = Copied {
        domain: entry.domain.clone(),
        key: entry.key.clone(),
        version,
        sha256,
        size_bytes: entry.size_bytes,
        class: entry.class.clone(),
        content_type: entry.content_type.clone(),
        headers: entry.headers.clone(),
    };
    let stored = store_copy(shard, copied, &mut source).await.map_err(|error| match error {
        NodeError::CopyFailed(reason) => CopyError::Source(reason),
        NodeError::DigestMismatch(reason) => CopyError::Source(reason),
        other => store_failed(other),
    })?;
    if stored.version == version {
        shard.node.stats.copies_in.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

/// A blob with these bytes is here already (under another key, say):
/// the copy refers to it instead of fetching the bytes again.
async fn reuse_local_blob(
    shard: &Rc<Shard>,
    entry: &IndexEntry,
    version: Version,
) -> Result<Option<cairn_engine::KeyRecord>, CopyError> {
    let sha256 = Digest(entry.sha256);
    let Some(blob) = shard.node.meta.blob(&sha256).map_err(store_failed)? else {
        return Ok(None);
    };
    if blob.size_bytes != entry.size_bytes {
        return Ok(None);
    }
    if blob.inline.is_none() {
        // A quarantined file leaves its record behind until collected.
        let path = shard.node.data.fid_path(&sha256);
        let exists = glommio::executor().spawn_blocking(move || path.exists()).await;
        if !exists {
            return Ok(None);
        }
    }
    // Pinned while the new reference is committed, so the collector keeps
    // it; read again once pinned, as a removal may have finished meanwhile.
    shard.place(None, sha256).await.map_err(store_failed)?;
    let blob = match shard.node.meta.blob(&sha256) {
        Ok(Some(blob)) if blob.size_bytes == entry.size_bytes => blob,
        _ => {
            shard.unpin(sha256).await;
            return Ok(None);
        }
    };
    let replicas = shard
        .cluster_state()
        .replicas(&entry.domain, &entry.class)
        .unwrap_or(cairn_raft::DEFAULT_CLASS_REPLICAS);
    let commit = crate::shard::PutCommit {
        domain: entry.domain.clone(),
        key: entry.key.clone(),
        upload_id: None,
        written: cairn_engine::Written {
            sha256,
            size_bytes: blob.size_bytes,
            block_crcs: blob.block_crcs,
        },
        inline: blob.inline,
        class: entry.class.clone(),
        replicas,
        content_type: entry.content_type.clone(),
        headers: entry.headers.clone(),
        fid: None,
        closes_upload: None,
        version: Some(version),
        floor: None,
    };
    let committed = shard.commit_put(commit).await;
    shard.unpin(sha256).await;
    committed.map(Some).map_err(store_failed)
}

/// A copy's bytes, taken in no faster than the node's `--copy-rate`.
struct Paced<'s> {
    blob: PeerBlob,
    shard: &'s Shard,
}

impl ChunkSource for Paced<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        let chunk = self.blob.next_chunk().await?;
        if let Some(chunk) = &chunk {
            self.shard.pace_copy(chunk.len()).await;
        }
        Ok(chunk)
    }
}

impl Shard {
    /// Records that `version` of a key has all its copies.
    pub async fn mark_stored(
        &self,
        domain: &str,
        key: &str,
        version: Version,
    ) -> Result<(), NodeError> {
        self.set_state_if(domain, key, version, KeyState::Stored).await
    }
}

fn store_failed(error: impl std::fmt::Display) -> CopyError {
    CopyError::Store(error.to_string())
}
