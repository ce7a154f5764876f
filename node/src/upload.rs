//! The upload pipeline (docs/design.md §4): bytes from any [`ChunkSource`]
//! (a client's body, a peer's blob) stream into memory while they fit the
//! inline limit and into `tmp/` with O_DIRECT beyond it, hashed (SHA-256)
//! and checksummed per block on the way; the blob is then placed on its
//! shard and committed as the key's new version (or a pending upload's
//! bytes) on the key's shard. A client that goes away before the hand-over
//! leaves nothing; after it, the commit finishes regardless.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::meta::Batch;
use cairn_engine::record::HEADERS_LEN_MAX;
use cairn_engine::{BlobWriter, Digest, Integrity, KeyRecord, KeyState, Version, Written};

use crate::error::NodeError;
use crate::pending::{KeyOp, KeyOpDone, KeyOpRefused};
use crate::shard::{PutCommit, Shard};

/// A key: its domain and its name.
pub struct KeyRef {
    pub domain: String,
    pub key: String,
}

/// A new version of a key, as a client asks for it.
pub struct PutRequest {
    pub target: KeyRef,
    /// The class to store it in (the default class when `None`).
    pub class: Option<String>,
    pub content_type: String,
    /// Response headers the version keeps (`KeyRecord::headers`).
    pub headers: String,
    /// Keep the bytes' MD5 as the version's S3 ETag (S3 clients compare
    /// it with their own MD5 of what they sent); computed on the way in.
    pub md5_etag: bool,
    /// The SHA-256 the client says it sends, checked against the bytes.
    pub expected_sha256: Option<Digest>,
    /// The body's length when the client declared it.
    pub declared_bytes: Option<u64>,
}

/// How long a PUT waits, once its body is in, for the homes' version of
/// its key; past it (a partition, say) the node's clock alone orders it.
const VERSION_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts reading the newest version of the key its homes know, so that
/// a new version passes a write made elsewhere whatever this node's clock
/// says (read while the body arrives). A lone node skips it: every version
/// it knows came from its own clock, which passes them all.
fn read_known_version(
    shard: &Shard,
    target: &KeyRef,
) -> Option<glommio::task::JoinHandle<Option<Version>>> {
    if shard.node.control.is_alone() {
        return None;
    }
    let control = shard.node.control.clone();
    let (domain, key) = (target.domain.clone(), target.key.clone());
    Some(glommio::spawn_local(async move { control.newest_version(&domain, &key).await }).detach())
}

/// Stores a new version of a key from `source`; answers its record once
/// the bytes and the record are durable.
pub async fn put(
    shard: &Rc<Shard>,
    request: PutRequest,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, NodeError> {
    let PutRequest {
        target,
        class,
        content_type,
        mut headers,
        md5_etag,
        expected_sha256,
        declared_bytes,
    } = request;
    let class = class.unwrap_or_else(|| cairn_raft::DEFAULT_CLASS.to_string());
    let replicas = shard
        .cluster_state()
        .replicas(&target.domain, &class)
        .ok_or_else(|| NodeError::UnknownClass(class.clone()))?;
    let max_bytes = shard.node.config.max_object_size_bytes;
    if declared_bytes.is_some_and(|len| len > max_bytes) {
        return Err(NodeError::TooLarge { max_bytes });
    }
    let _space = shard.node.space.take(&shard.node, declared_bytes)?;
    let known = read_known_version(shard, &target);
    // A body small enough to arrive in one piece is never seen half done:
    // it needs no `uploading` record (one RocksDB write fewer per PUT).
    let visible = declared_bytes.is_none_or(|len| len > shard.node.config.inline_max_bytes);
    let mut upload = Upload::begin(shard, &target, visible, KeyState::Uploading)?;
    let mut md5 = md5_etag.then(md5::Md5::default);
    let mut source = Md5Source { source, md5: md5.as_mut() };
    let Received { written, inline } =
        upload.receive(&mut source, max_bytes, declared_bytes).await?;
    let floor = match known {
        None => None,
        Some(task) => glommio::timer::timeout(VERSION_READ_TIMEOUT, async { Ok(task.await) })
            .await
            .ok()
            .flatten()
            .flatten(),
    };
    if let Some(expected) = expected_sha256 {
        if expected != written.sha256 {
            return Err(NodeError::DigestMismatch(format!(
                "body has sha256 {}, X-Content-Sha256 said {expected}",
                written.sha256
            )));
        }
    }
    if let Some(md5) = md5 {
        use md5::Digest as _;
        headers.push_str(&format!("{S3_ETAG_HEADER}: \"{}\"\n", hex::encode(md5.finalize())));
    }
    if headers.len() > HEADERS_LEN_MAX {
        return Err(NodeError::HeadersTooLong { max_bytes: HEADERS_LEN_MAX });
    }
    let commit = PutCommit {
        domain: target.domain.clone(),
        key: target.key.clone(),
        upload_id: upload.recorded.then(|| upload.id.clone()),
        written,
        inline,
        class,
        replicas,
        content_type,
        headers,
        fid: None,
        closes_upload: None,
        version: None,
        floor,
    };
    let record = commit_upload(shard, &mut upload, commit).await?;
    shard.ensure_domain(&target.domain);
    Ok(record)
}

/// Fills the pending upload `fid` (opened by the MogileFS protocol's
/// `create_open`) with the bytes from `source`: stored exactly like a
/// key's; the key changes only when the upload is closed. Answers the
/// bytes' SHA-256 and size.
pub async fn put_pending(
    shard: &Rc<Shard>,
    fid: u64,
    declared_bytes: Option<u64>,
    source: &mut impl ChunkSource,
) -> Result<(Digest, u64), NodeError> {
    let pending = shard
        .node
        .meta
        .pending_upload(fid)?
        .ok_or(NodeError::Refused(KeyOpRefused::UploadNotOpen { fid }))?;
    let max_bytes = shard.node.config.max_object_size_bytes;
    if declared_bytes.is_some_and(|len| len > max_bytes) {
        return Err(NodeError::TooLarge { max_bytes });
    }
    let _space = shard.node.space.take(&shard.node, declared_bytes)?;
    let target = KeyRef { domain: pending.domain, key: pending.key };
    let visible = declared_bytes.is_none_or(|len| len > shard.node.config.inline_max_bytes);
    let mut upload = Upload::begin(shard, &target, visible, KeyState::Uploading)?;
    let Received { written, inline } = upload.receive(source, max_bytes, declared_bytes).await?;
    let (sha256, size_bytes) = (written.sha256, written.size_bytes);
    let upload_id = upload.recorded.then(|| upload.id.clone());
    let landed = Landed {
        sha256,
        domain: target.domain.clone(),
        key: target.key.clone(),
        upload_id: upload_id.clone(),
        tmp: upload.hand_over(),
    };
    let KeyRef { domain, key } = target;
    let finishing =
        glommio::spawn_local(finish_upload(shard.clone(), landed, move |shard| async move {
            let op =
                KeyOp::Attach { fid, domain: domain.clone(), key: key.clone(), written, inline };
            let done = shard.key_op(op).await?;
            if let Some(upload_id) = &upload_id {
                let mut batch = Batch::default();
                batch.delete_upload(&domain, &key, upload_id);
                shard.node.meta.write_unsynced(batch)?;
            }
            match done {
                KeyOpDone::Done => Ok(()),
                KeyOpDone::Refused(refusal) => Err(NodeError::Refused(refusal)),
            }
        }))
        .detach();
    finishing
        .await
        .ok_or_else(|| NodeError::Io(std::io::Error::other("upload task was cancelled")))??;
    Ok((sha256, size_bytes))
}

/// A received upload on its way to the shards: its blob, the key it is
/// for, its upload record and temp file (if it has them).
struct Landed {
    sha256: Digest,
    domain: String,
    key: String,
    upload_id: Option<String>,
    tmp: Option<std::path::PathBuf>,
}

/// Places a received upload's blob (pinned meanwhile) and runs `commit`,
/// which makes a key or a pending MogileFS upload refer to it. On failure
/// the blob is left to the collector and the upload's traces are removed.
async fn finish_upload<T, F, Fut>(
    shard: Rc<Shard>,
    landed: Landed,
    commit: F,
) -> Result<T, NodeError>
where
    F: FnOnce(Rc<Shard>) -> Fut,
    Fut: std::future::Future<Output = Result<T, NodeError>>,
{
    let Landed { sha256, domain, key, upload_id, tmp } = landed;
    if let Err(error) = shard.place(tmp.clone(), sha256).await {
        forget_upload(&shard, &domain, &key, upload_id.as_deref(), tmp.as_deref());
        // The rename may have happened before the failure: if so, the
        // collector removes the file unless a key refers to it.
        let mut batch = Batch::default();
        batch.add_gc_candidate(&sha256);
        if let Err(error) = shard.node.meta.write_unsynced(batch) {
            tracing::warn!(%error, "could not queue a failed placement for collection");
        }
        return Err(error);
    }
    let committed = commit(shard.clone()).await;
    if committed.is_err() {
        // The blob is placed but nothing refers to it: let the collector decide.
        let mut batch = Batch::default();
        batch.add_gc_candidate(&sha256);
        if let Some(upload_id) = &upload_id {
            batch.delete_upload(&domain, &key, upload_id);
        }
        if let Err(error) = shard.node.meta.write_unsynced(batch) {
            tracing::warn!(%error, "could not queue an uncommitted blob for collection");
        }
    }
    shard.unpin(sha256).await;
    committed
}

/// Drops what an upload left: its temp file (if it had one) and its record.
fn forget_upload(
    shard: &Shard,
    domain: &str,
    key: &str,
    upload_id: Option<&str>,
    tmp: Option<&std::path::Path>,
) {
    if let Some(upload_id) = upload_id {
        let mut batch = Batch::default();
        batch.delete_upload(domain, key, upload_id);
        if let Err(error) = shard.node.meta.write_unsynced(batch) {
            tracing::warn!(%error, "could not remove an upload record");
        }
    }
    let Some(tmp) = tmp.map(std::path::Path::to_path_buf) else {
        return;
    };
    glommio::spawn_local(async move {
        let removed = glommio::executor().spawn_blocking(move || std::fs::remove_file(&tmp)).await;
        if let Err(error) = removed {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(%error, "could not remove an upload's temp file");
            }
        }
    })
    .detach();
}

/// Where an upload's bytes come from: a client's HTTP body, or a blob
/// streamed from a peer by replication.
// Futures here run on one shard (glommio is thread-per-core): no `Send`
// bound is wanted.
#[allow(async_fn_in_trait)]
pub trait ChunkSource {
    /// The next bytes; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError>;
}

/// The kept header that holds a version's S3 ETag (`PutRequest::md5_etag`).
pub const S3_ETAG_HEADER: &str = "x-cairn-s3-etag";

/// A source whose bytes are hashed with MD5 on the way, when asked.
struct Md5Source<'s, S> {
    source: &'s mut S,
    md5: Option<&'s mut md5::Md5>,
}

impl<S: ChunkSource> ChunkSource for Md5Source<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        let chunk = self.source.next_chunk().await?;
        if let (Some(md5), Some(chunk)) = (self.md5.as_deref_mut(), &chunk) {
            md5::Digest::update(md5, chunk);
        }
        Ok(chunk)
    }
}

/// Bytes already in memory, as an upload's source.
#[derive(Default)]
pub struct InMemory(pub Option<Bytes>);

impl ChunkSource for InMemory {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        Ok(self.0.take())
    }
}

/// What a copy made by replication is: a version written elsewhere.
pub struct Copied {
    pub domain: String,
    pub key: String,
    pub version: cairn_engine::Version,
    pub sha256: Digest,
    pub size_bytes: u64,
    pub class: String,
    pub content_type: String,
    pub headers: String,
}

/// Stores a copy of a key version from `source`, through the same path
/// as a PUT (O_DIRECT, SHA-256 and CRCs on the way); keeps nothing unless
/// the bytes hash to the version's SHA-256. The copy keeps its version:
/// a newer version already here wins.
pub async fn store_copy(
    shard: &Rc<Shard>,
    copied: Copied,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, NodeError> {
    let replicas = shard
        .cluster_state()
        .replicas(&copied.domain, &copied.class)
        .unwrap_or(cairn_raft::DEFAULT_CLASS_REPLICAS);
    let target = KeyRef { domain: copied.domain.clone(), key: copied.key.clone() };
    let visible = copied.size_bytes > shard.node.config.inline_max_bytes;
    let _space = shard.node.space.take(&shard.node, Some(copied.size_bytes))?;
    let mut upload = Upload::begin(shard, &target, visible, KeyState::ReplicationIn)?;
    let Received { written, inline } =
        upload.receive(source, copied.size_bytes, Some(copied.size_bytes)).await?;
    if written.sha256 != copied.sha256 || written.size_bytes != copied.size_bytes {
        return Err(NodeError::DigestMismatch(format!(
            "the copy has sha256 {} and {} bytes, the version has {} and {}",
            written.sha256, written.size_bytes, copied.sha256, copied.size_bytes
        )));
    }
    let commit = PutCommit {
        domain: copied.domain.clone(),
        key: copied.key.clone(),
        upload_id: upload.recorded.then(|| upload.id.clone()),
        written,
        inline,
        class: copied.class,
        replicas,
        content_type: copied.content_type,
        headers: copied.headers,
        fid: None,
        closes_upload: None,
        version: Some(copied.version),
        floor: None,
    };
    commit_upload(shard, &mut upload, commit).await
}

/// Hands a received upload over to the shards and commits it as a new
/// version of its key. From here the upload is the shards' to finish: a
/// client that goes away now must not cancel a commit half done.
async fn commit_upload(
    shard: &Rc<Shard>,
    upload: &mut Upload<'_>,
    commit: PutCommit,
) -> Result<KeyRecord, NodeError> {
    let (landed_domain, landed_key) = (commit.domain.clone(), commit.key.clone());
    let landed = Landed {
        sha256: commit.written.sha256,
        domain: commit.domain.clone(),
        key: commit.key.clone(),
        upload_id: commit.upload_id.clone(),
        tmp: upload.hand_over(),
    };
    let finishing =
        glommio::spawn_local(finish_upload(shard.clone(), landed, |shard| async move {
            shard.commit_put(commit).await
        }))
        .detach();
    let record = finishing
        .await
        .ok_or_else(|| NodeError::from(std::io::Error::other("upload task was cancelled")))??;
    // Acknowledged once the key's homes have the version (a bounded wait:
    // without them, during a partition, the write is still taken), so that
    // a read anywhere after the answer finds it.
    let control = &shard.node.control;
    if !control.is_alone() {
        control.confirmed(&landed_domain, &landed_key, record.version).await;
    }
    Ok(record)
}

/// An upload in progress: its record says `uploading`; its bytes are held
/// in memory while they fit the inline limit, in `tmp/` beyond it. Dropped
/// before [`Upload::hand_over`], it removes what it made.
struct Upload<'a> {
    shard: &'a Rc<Shard>,
    /// Counted as `uploading`, or `replication-in` for a copy.
    state: KeyState,
    id: String,
    /// Whether an upload record (state `uploading`) was written.
    recorded: bool,
    domain: String,
    key: String,
    tmp: std::path::PathBuf,
    has_file: bool,
    received_bytes: u64,
    handed_over: bool,
}

/// Where an upload's bytes go.
enum Sink {
    Memory { bytes: Vec<u8>, integrity: Integrity },
    File(BlobWriter),
}

/// A complete upload: what it is, and its bytes when small enough to be
/// kept in the metadata instead of a file.
struct Received {
    written: Written,
    inline: Option<Vec<u8>>,
}

impl<'a> Upload<'a> {
    /// Starts an upload counted in `state`; `recorded` ones are visible
    /// as `uploading` in `?stat`. A proxy takes no bytes: every path that
    /// would store some here (a PUT, a MogileFS upload, a copy) ends here.
    fn begin(
        shard: &'a Rc<Shard>,
        target: &KeyRef,
        recorded: bool,
        state: KeyState,
    ) -> Result<Upload<'a>, NodeError> {
        if shard.node.config.no_store {
            return Err(NodeError::NotAStore);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        if recorded {
            let mut batch = Batch::default();
            batch.put_upload(&target.domain, &target.key, &id);
            shard.node.meta.write_unsynced(batch)?;
        }
        shard.node.stats.add(state, 1, 0);
        Ok(Upload {
            shard,
            state,
            tmp: shard.node.data.tmp_path(&id),
            id,
            recorded,
            domain: target.domain.clone(),
            key: target.key.clone(),
            has_file: false,
            received_bytes: 0,
            handed_over: false,
        })
    }

    async fn open_file(&mut self) -> Result<BlobWriter, NodeError> {
        self.has_file = true;
        Ok(BlobWriter::create(&self.tmp).await?)
    }

    async fn receive(
        &mut self,
        source: &mut impl ChunkSource,
        max: u64,
        declared: Option<u64>,
    ) -> Result<Received, NodeError> {
        let inline_max = self.shard.node.config.inline_max_bytes;
        let mut sink = match declared {
            Some(len) if len > inline_max => Sink::File(self.open_file().await?),
            _ => Sink::Memory {
                bytes: Vec::with_capacity(declared.unwrap_or(0) as usize),
                integrity: Integrity::default(),
            },
        };
        while let Some(data) = source.next_chunk().await? {
            let data = &data[..];
            if self.received_bytes + data.len() as u64 > max {
                return Err(NodeError::TooLarge { max_bytes: max });
            }
            let spill = matches!(&sink, Sink::Memory { bytes, .. }
                if (bytes.len() + data.len()) as u64 > inline_max);
            if spill {
                let mut writer = self.open_file().await?;
                if let Sink::Memory { bytes, .. } = &sink {
                    writer.write(bytes).await?;
                }
                sink = Sink::File(writer);
            }
            match &mut sink {
                Sink::Memory { bytes, integrity } => {
                    integrity.update(data);
                    bytes.extend_from_slice(data);
                }
                Sink::File(writer) => writer.write(data).await?,
            }
            self.received_bytes += data.len() as u64;
            self.shard.node.stats.add(self.state, 0, data.len() as i64);
            self.shard.node.shard_metrics[self.shard.id]
                .bytes_in
                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        match sink {
            Sink::Memory { bytes, integrity } => {
                Ok(Received { written: integrity.finish(), inline: Some(bytes) })
            }
            Sink::File(writer) => Ok(Received { written: writer.finish().await?, inline: None }),
        }
    }

    /// The upload is now the shards' to finish; answers its temp file, if any.
    fn hand_over(&mut self) -> Option<std::path::PathBuf> {
        self.handed_over = true;
        self.has_file.then(|| self.tmp.clone())
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        self.shard.node.stats.add(self.state, -1, -(self.received_bytes as i64));
        if !self.handed_over {
            let tmp = self.has_file.then_some(self.tmp.as_path());
            let upload_id = self.recorded.then_some(self.id.as_str());
            forget_upload(self.shard, &self.domain, &self.key, upload_id, tmp);
        }
    }
}
