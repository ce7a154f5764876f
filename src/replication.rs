//! Copies between nodes, on the shards (DESIGN §4 steps 5–7): pulling a
//! key version's blob from a holder over the peer port, and the work the
//! raft thread hands to a shard ([`ShardWork`]).
//!
//! The bytes of a copy go through the same path as a PUT's (O_DIRECT,
//! SHA-256 and per-block CRCs on the way) and nothing is kept unless the
//! SHA-256 is the version's.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::{Digest, KeyState, Version};
use cairn_net::{encode_message, read_frame, write_frame, FrameBuf, FrameBytes, FrameKind};
use cairn_net::{IndexEntry, Message};
use futures_channel::{mpsc, oneshot};
use futures_lite::{AsyncReadExt, StreamExt};
use glommio::net::TcpStream;

use crate::http::blob::{store_copy, ChunkSource, Copied};
use crate::http::ApiError;
use crate::shard::Shard;

/// Work queued per shard from the raft thread.
pub const SHARD_WORK_QUEUE_LEN: usize = 1024;
/// A peer that sends nothing for this long fails the copy.
const PEER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that does not accept a connection in this time is not reachable.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes handed on per chunk of a copy.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// What the raft thread asks of the shard that owns a key.
pub enum ShardWork {
    /// Copy `entry`'s version from the node at `source_peer`.
    Pull {
        entry: Box<IndexEntry>,
        source_peer: String,
        hello: Message,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The key's homes count enough copies of `version`: it is `stored`.
    MarkStored { domain: String, key: String, version: Version },
    /// A newer version or a deletion at `version` exists: drop the copy
    /// held here if it is older.
    DropIfOlder { domain: String, key: String, version: Version },
    /// The key has more copies than its class wants: drop this one, if it
    /// is still `version`.
    DropVersion { domain: String, key: String, version: Version, reply: oneshot::Sender<bool> },
}

pub type ShardWorkSender = mpsc::Sender<ShardWork>;

pub fn work_queue() -> (ShardWorkSender, mpsc::Receiver<ShardWork>) {
    mpsc::channel(SHARD_WORK_QUEUE_LEN)
}

/// Serves the raft thread's requests on this shard until the queue closes.
pub async fn serve_work(shard: Rc<Shard>, mut work: mpsc::Receiver<ShardWork>) {
    while let Some(item) = work.next().await {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            match item {
                ShardWork::Pull { entry, source_peer, hello, reply } => {
                    let _ = reply.send(pull(&shard, *entry, &source_peer, &hello).await);
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
                ShardWork::DropIfOlder { domain, key, version } => {
                    let local = shard.node.meta.key(&domain, &key).ok().flatten();
                    if let Some(local) = local.filter(|local| local.version < version) {
                        // Only that version: a newer one may have arrived meanwhile.
                        let dropped = shard.delete_if(domain.clone(), key.clone(), Some(local.version));
                        if let Ok(old) = dropped.await {
                            tracing::debug!(%domain, %key, version = old.version.hlc, "dropped a superseded copy");
                        }
                    }
                }
            }
        })
        .detach();
    }
}

/// Makes this node a holder of `entry`'s version, copying it from the node
/// at `source_peer` unless it is here already.
async fn pull(
    shard: &Rc<Shard>,
    entry: IndexEntry,
    source_peer: &str,
    hello: &Message,
) -> Result<(), String> {
    let version = Version { hlc: entry.hlc, node_id: entry.writer };
    let local = shard.node.meta.key(&entry.domain, &entry.key).map_err(|e| e.to_string())?;
    if local.as_ref().is_some_and(|record| record.version >= version) {
        // Held already, or superseded by a newer version: nothing to copy.
        shard.node.control.announce_local(&entry.domain, &entry.key);
        return Ok(());
    }
    // One pull per version at a time: a tracker that lost count of a copy
    // (a new leader, a timeout) may ask again while the first still runs.
    let pulling = (entry.domain.clone(), entry.key.clone(), version);
    if !shard.pulls.borrow_mut().insert(pulling.clone()) {
        return Err("a copy of this version is already under way here".into());
    }
    let result = pull_once(shard, &entry, version, source_peer, hello).await;
    shard.pulls.borrow_mut().remove(&pulling);
    result
}

async fn pull_once(
    shard: &Rc<Shard>,
    entry: &IndexEntry,
    version: Version,
    source_peer: &str,
    hello: &Message,
) -> Result<(), String> {
    let sha256 = Digest(entry.sha256);
    if let Some(stored) = reuse_local_blob(shard, entry, version).await? {
        tracing::debug!(domain = %entry.domain, key = %entry.key, version = stored.version.hlc, "copy made from a blob held here");
        return Ok(());
    }
    let source = fetch(source_peer, &sha256, entry.size_bytes, hello).await?;
    let mut source = Paced { blob: source, shard };
    let copied = Copied {
        domain: entry.domain.clone(),
        key: entry.key.clone(),
        version,
        sha256,
        size_bytes: entry.size_bytes,
        class: entry.class.clone(),
        content_type: entry.content_type.clone(),
    };
    let stored = store_copy(shard, copied, &mut source).await.map_err(|e| e.message)?;
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
) -> Result<Option<cairn_engine::KeyRecord>, String> {
    let sha256 = Digest(entry.sha256);
    let Some(blob) = shard.node.meta.blob(&sha256).map_err(|e| e.to_string())? else {
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
    shard.place(None, sha256).await.map_err(|e| e.to_string())?;
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
        fid: None,
        closes_upload: None,
        version: Some(version),
    };
    let committed = shard.commit_put(commit).await;
    shard.unpin(sha256).await;
    committed.map(Some).map_err(|e| e.to_string())
}

/// Asks the node at `peer` for the bytes of blob `sha256` (`size_bytes`
/// long) and answers them as a chunk source.
pub async fn fetch(
    peer: &str,
    sha256: &Digest,
    size_bytes: u64,
    hello: &Message,
) -> Result<PeerBlob, String> {
    let stream = TcpStream::connect_timeout(peer, PEER_CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("cannot reach {peer}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(PEER_READ_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut blob = PeerBlob {
        stream,
        receive: FrameBuf::new(),
        remaining_bytes: size_bytes,
        frame_remaining_bytes: 0,
        chunk: vec![0; COPY_CHUNK_BYTES],
    };
    match blob.call(hello).await? {
        Message::HelloAck { .. } => {}
        other => return Err(format!("{peer} did not accept us: {other:?}")),
    }
    let mut frame = FrameBytes::new();
    encode_message(&Message::FetchBlob { sha256: sha256.0 }, &mut frame)
        .map_err(|e| e.to_string())?;
    write_frame(&mut blob.stream, &frame).await.map_err(|e| e.to_string())?;
    Ok(blob)
}

/// A blob arriving from a peer as blob-body frames.
pub struct PeerBlob {
    stream: TcpStream,
    receive: FrameBuf,
    remaining_bytes: u64,
    frame_remaining_bytes: u64,
    chunk: Vec<u8>,
}

impl PeerBlob {
    async fn call(&mut self, request: &Message) -> Result<Message, String> {
        let mut frame = FrameBytes::new();
        encode_message(request, &mut frame).map_err(|e| e.to_string())?;
        write_frame(&mut self.stream, &frame).await.map_err(|e| e.to_string())?;
        read_frame(&mut self.stream, &mut self.receive).await.map_err(|e| e.to_string())?;
        self.receive.deserialize().map_err(|e| e.to_string())
    }

    /// The next bytes of the blob, `None` once all of it has arrived.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        if self.remaining_bytes == 0 {
            return Ok(None);
        }
        if self.frame_remaining_bytes == 0 {
            let header =
                read_frame(&mut self.stream, &mut self.receive).await.map_err(|e| e.to_string())?;
            if header.kind() == FrameKind::Message {
                let message = self.receive.deserialize().map_err(|e| e.to_string())?;
                return Err(format!("the source refused: {message:?}"));
            }
            self.frame_remaining_bytes = u64::from(header.payload_len_bytes());
            if self.frame_remaining_bytes == 0 || self.frame_remaining_bytes > self.remaining_bytes
            {
                return Err("the source sent a body of the wrong size".into());
            }
        }
        let want = (self.frame_remaining_bytes as usize).min(self.chunk.len());
        let read = self.stream.read(&mut self.chunk[..want]).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the source hung up inside the blob".into());
        }
        self.frame_remaining_bytes -= read as u64;
        self.remaining_bytes -= read as u64;
        Ok(Some(Bytes::copy_from_slice(&self.chunk[..read])))
    }
}

impl ChunkSource for PeerBlob {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        self.next()
            .await
            .map_err(|message| ApiError::new(http::StatusCode::BAD_GATEWAY, "copy_failed", message))
    }
}

/// A copy's bytes, taken in no faster than the node's `--copy-rate`.
struct Paced<'s> {
    blob: PeerBlob,
    shard: &'s Shard,
}

impl ChunkSource for Paced<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        let chunk = self.blob.next_chunk().await?;
        if let Some(chunk) = &chunk {
            self.shard.pace_copy(chunk.len()).await;
        }
        Ok(chunk)
    }
}

impl Shard {
    /// Drops this node's copy of a key whose bytes failed their checksum
    /// (they are quarantined already) and tells the key's homes, once
    /// another holder has been seen to serve it.
    pub fn drop_damaged_copy(self: &Rc<Self>, domain: String, key: String) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            let Ok(Some(local)) = shard.node.meta.key(&domain, &key) else { return };
            if shard.delete_if(domain.clone(), key.clone(), Some(local.version)).await.is_ok() {
                tracing::warn!(%domain, %key, "dropped a damaged copy; another holder has the bytes");
                shard.node.control.forget_holder(&domain, &key, local.version);
            }
        })
        .detach();
    }

    /// Records that `version` of a key has all its copies.
    pub async fn mark_stored(
        &self,
        domain: &str,
        key: &str,
        version: Version,
    ) -> Result<(), crate::shard::OpError> {
        self.set_state_if(domain, key, version, KeyState::Stored).await
    }
}
