//! PUT, GET, HEAD, DELETE and `?stat` of one key.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::meta::Batch;
use cairn_engine::reader::{read_inline, verify_blocks, FileIdentity};
use cairn_engine::record::CONTENT_TYPE_LEN_MAX;
use cairn_engine::{
    BlobReader, BlobRecord, BlobWriter, Digest, Integrity, KeyRecord, KeyState, ReadError, Written,
};
use http::{header, HeaderMap, Response, StatusCode};
use serde_json::json;

use super::body::{ChunkStream, ResBody};
use super::error::ApiError;
use super::range::{parse_range, RangeAnswer};
use super::RequestBody;
use crate::cache::{CachedBlob, CACHE_ENTRY_MAX_BYTES};
use crate::mogile::keys::{KeyOp, KeyOpDone};
use crate::shard::{PutCommit, Shard};

const DIGEST_HEADER: &str = "x-content-sha256";

pub struct KeyRef {
    pub domain: String,
    pub key: String,
}

pub async fn put(
    shard: &Rc<Shard>,
    target: KeyRef,
    class: Option<String>,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let class = class.unwrap_or_else(|| cairn_raft::DEFAULT_CLASS.to_string());
    let replicas = shard.cluster_state().replicas(&target.domain, &class).ok_or_else(|| {
        ApiError::bad_request("unknown_class", format!("unknown class {class:?}"))
    })?;
    let expected = match headers.get(DIGEST_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(Digest::from_hex).ok_or_else(|| {
            ApiError::bad_request("bad_digest", "X-Content-Sha256 must be 64 hex digits")
        })?),
    };
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => String::new(),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|v| v.len() <= CONTENT_TYPE_LEN_MAX)
            .ok_or_else(|| {
                ApiError::bad_request("bad_content_type", "Content-Type is not a short ASCII value")
            })?
            .to_string(),
    };
    let max = shard.node.config.max_object_size_bytes;
    let declared = content_length(headers)?;
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }

    // A body small enough to arrive in one piece is never seen half done:
    // it needs no `uploading` record (one RocksDB write fewer per PUT).
    let visible = declared.is_none_or(|len| len > shard.node.config.inline_max_bytes);
    let mut upload = Upload::begin(shard, &target, visible)?;
    let Received { written, inline } = upload
        .receive(&mut HttpBody { body, timeout: shard.node.config.body_timeout }, max, declared)
        .await?;
    if let Some(expected) = expected {
        if expected != written.sha256 {
            return Err(ApiError::bad_request(
                "digest_mismatch",
                format!("body has sha256 {}, X-Content-Sha256 said {expected}", written.sha256),
            ));
        }
    }
    let (domain, key) = (target.domain, target.key);
    let commit = PutCommit {
        domain: domain.clone(),
        key: key.clone(),
        upload_id: upload.recorded.then(|| upload.id.clone()),
        written,
        inline,
        class,
        replicas,
        content_type,
        fid: None,
        closes_upload: None,
        version: None,
    };
    let record = commit_upload(shard, &mut upload, commit).await?;
    shard.ensure_domain(&domain);
    let body = record_json(&domain, &key, &record);
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, etag(&record.sha256))
        .body(ResBody::json(&body))
        .expect("valid headers"))
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
) -> Result<T, ApiError>
where
    F: FnOnce(Rc<Shard>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
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
        return Err(error.into());
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

/// `PUT` to the path `create_open` answered: the bytes stream, are hashed
/// and stored exactly like a key's, then become the pending upload's; the
/// key changes only at `create_close`.
pub async fn put_pending(
    shard: &Rc<Shard>,
    fid: u64,
    headers: &HeaderMap,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let pending = shard
        .node
        .meta
        .pending_upload(fid)?
        .ok_or_else(|| ApiError::not_found(format!("fid {fid} is not an open upload")))?;
    let max = shard.node.config.max_object_size_bytes;
    let declared = content_length(headers)?;
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let target = KeyRef { domain: pending.domain, key: pending.key };
    let visible = declared.is_none_or(|len| len > shard.node.config.inline_max_bytes);
    let mut upload = Upload::begin(shard, &target, visible)?;
    let Received { written, inline } = upload
        .receive(&mut HttpBody { body, timeout: shard.node.config.body_timeout }, max, declared)
        .await?;
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
            let done = shard.mogile(op).await?;
            if let Some(upload_id) = &upload_id {
                let mut batch = Batch::default();
                batch.delete_upload(&domain, &key, upload_id);
                shard.node.meta.write_unsynced(batch)?;
            }
            match done {
                KeyOpDone::Done => Ok(()),
                KeyOpDone::Refused { message, .. } => Err(ApiError::not_found(message)),
            }
        }))
        .detach();
    finishing
        .await
        .ok_or_else(|| ApiError::from(std::io::Error::other("upload task was cancelled")))??;
    let body = json!({ "fid": fid, "sha256": sha256.to_hex(), "size": size_bytes });
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, etag(&sha256))
        .body(ResBody::json(&body))
        .expect("valid headers"))
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
pub(crate) trait ChunkSource {
    /// The next bytes; `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError>;
}

/// A request body that must keep sending: a pause longer than `timeout`
/// is a 408.
struct HttpBody<'b> {
    body: &'b mut RequestBody,
    timeout: Duration,
}

impl ChunkSource for HttpBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            let frame =
                glommio::timer::timeout(self.timeout, async { Ok(self.body.frame().await) })
                    .await
                    .map_err(|_| slow_client(self.timeout))?;
            let Some(frame) = frame else { return Ok(None) };
            let frame = frame.map_err(|error| {
                ApiError::bad_request("body_incomplete", format!("request body failed: {error}"))
            })?;
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
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
}

/// Stores a copy of a key version from `source`, through the same path
/// as a PUT (O_DIRECT, SHA-256 and CRCs on the way); keeps nothing unless
/// the bytes hash to the version's SHA-256. The copy keeps its version:
/// a newer version already here wins.
pub(crate) async fn store_copy(
    shard: &Rc<Shard>,
    copied: Copied,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, ApiError> {
    let replicas = shard
        .cluster_state()
        .replicas(&copied.domain, &copied.class)
        .unwrap_or(cairn_raft::DEFAULT_CLASS_REPLICAS);
    let target = KeyRef { domain: copied.domain.clone(), key: copied.key.clone() };
    let visible = copied.size_bytes > shard.node.config.inline_max_bytes;
    let mut upload = Upload::begin_as(shard, &target, visible, KeyState::ReplicationIn)?;
    let Received { written, inline } =
        upload.receive(source, copied.size_bytes, Some(copied.size_bytes)).await?;
    if written.sha256 != copied.sha256 || written.size_bytes != copied.size_bytes {
        return Err(ApiError::bad_request(
            "digest_mismatch",
            format!(
                "the copy has sha256 {} and {} bytes, the version has {} and {}",
                written.sha256, written.size_bytes, copied.sha256, copied.size_bytes
            ),
        ));
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
        fid: None,
        closes_upload: None,
        version: Some(copied.version),
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
) -> Result<KeyRecord, ApiError> {
    let landed = Landed {
        sha256: commit.written.sha256,
        domain: commit.domain.clone(),
        key: commit.key.clone(),
        upload_id: commit.upload_id.clone(),
        tmp: upload.hand_over(),
    };
    let finishing =
        glommio::spawn_local(finish_upload(shard.clone(), landed, |shard| async move {
            shard.commit_put(commit).await.map_err(ApiError::from)
        }))
        .detach();
    finishing
        .await
        .ok_or_else(|| ApiError::from(std::io::Error::other("upload task was cancelled")))?
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
    /// Starts an upload; `recorded` ones are visible as `uploading` in `?stat`.
    fn begin(
        shard: &'a Rc<Shard>,
        target: &KeyRef,
        recorded: bool,
    ) -> Result<Upload<'a>, ApiError> {
        Upload::begin_as(shard, target, recorded, KeyState::Uploading)
    }

    fn begin_as(
        shard: &'a Rc<Shard>,
        target: &KeyRef,
        recorded: bool,
        state: KeyState,
    ) -> Result<Upload<'a>, ApiError> {
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

    async fn open_file(&mut self) -> Result<BlobWriter, ApiError> {
        self.has_file = true;
        Ok(BlobWriter::create(&self.tmp).await?)
    }

    async fn receive(
        &mut self,
        source: &mut impl ChunkSource,
        max: u64,
        declared: Option<u64>,
    ) -> Result<Received, ApiError> {
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
                return Err(too_large(max));
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

#[derive(Clone, Copy)]
pub enum ReadKind {
    Get,
    Head,
}

pub async fn get(
    shard: &Rc<Shard>,
    target: &KeyRef,
    headers: &HeaderMap,
    kind: ReadKind,
) -> Result<Response<ResBody>, ApiError> {
    match read_key(shard, target, headers, kind).await {
        // An overwrite may have committed and its old blob been collected
        // between reading the key and opening the blob: read the key again.
        Err(error) if error.code == NO_INTACT_COPY => read_key(shard, target, headers, kind).await,
        other => other,
    }
}

/// Whether a read failed because this node holds no such key.
pub fn is_not_here(error: &ApiError) -> bool {
    error.code == NOT_HERE
}

async fn read_key(
    shard: &Rc<Shard>,
    target: &KeyRef,
    headers: &HeaderMap,
    kind: ReadKind,
) -> Result<Response<ResBody>, ApiError> {
    let meta = &shard.node.meta;
    let record = meta.key(&target.domain, &target.key)?.ok_or_else(|| {
        let message = format!("no key {:?} in domain {:?}", target.key, target.domain);
        ApiError::new(StatusCode::NOT_FOUND, NOT_HERE, message)
    })?;
    let tag = etag(&record.sha256);
    let mut response = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-cairn-version", record.version.hlc.to_string());
    if !record.content_type.is_empty() {
        response = response.header(header::CONTENT_TYPE, &record.content_type);
    }
    if if_none_match(headers, &tag) {
        return Ok(response
            .status(StatusCode::NOT_MODIFIED)
            .body(ResBody::empty())
            .expect("valid"));
    }
    let size = record.size_bytes;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match parse_range(range, size) {
        RangeAnswer::Whole => (StatusCode::OK, 0, size),
        RangeAnswer::Part { start, end } => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        RangeAnswer::NotSatisfiable => {
            let error = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the blob has {size} bytes"),
            );
            let mut answer = error.into_response();
            answer.headers_mut().insert(
                header::CONTENT_RANGE,
                format!("bytes */{size}").parse().expect("valid header value"),
            );
            return Ok(answer);
        }
    };
    let response = response.status(status).header(header::CONTENT_LENGTH, end - start);
    if matches!(kind, ReadKind::Head) || start == end {
        return Ok(response.body(ResBody::empty()).expect("valid headers"));
    }
    let sha256 = record.sha256;
    let blob = match small_blob(shard, &sha256).await? {
        Source::Small(cached) => {
            if end > cached.bytes.len() as u64 {
                // The key and blob records disagree on the size.
                return Err(corrupt_in_memory(shard, &sha256, ReadError::Corrupt { block: 0 }));
            }
            verify_blocks(&cached.bytes, &cached.block_crcs, start, end).map_err(|error| {
                shard.cache.borrow_mut().remove(&sha256);
                corrupt_in_memory(shard, &sha256, error)
            })?;
            let bytes = cached.bytes.slice(start as usize..end as usize);
            shard.node.shard_metrics[shard.id]
                .bytes_out
                .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return Ok(response.body(ResBody::bytes(bytes)).expect("valid headers"));
        }
        Source::Large(blob) => blob,
    };
    let reader = open_blob(shard, &sha256, blob).await?;
    // The first chunk is read before the status line goes out, so damage
    // there is a clean error instead of a cut response.
    let first = reader
        .read_chunk(start, end)
        .await
        .map_err(|error| read_failed(shard, &record.sha256, error, Some(reader.identity())))?;
    let chunks = verified_chunks(shard.clone(), reader, record.sha256, first, start, end);
    Ok(response
        .body(ResBody::Stream { chunks, remaining_bytes: end - start })
        .expect("valid headers"))
}

/// Where a GET's bytes come from: memory for a small blob (cached, or
/// loaded whole and cached now), the blob file for a large one.
enum Source {
    Small(CachedBlob),
    Large(BlobRecord),
}

async fn small_blob(shard: &Rc<Shard>, sha256: &Digest) -> Result<Source, ApiError> {
    if let Some(cached) = shard.cache.borrow_mut().get(sha256) {
        return Ok(Source::Small(cached));
    }
    let blob = shard.node.meta.blob(sha256)?.ok_or_else(|| no_intact_copy(sha256))?;
    let size = blob.size_bytes;
    let block_crcs: std::rc::Rc<[u32]> = blob.block_crcs.clone().into();
    let bytes = if blob.inline.is_some() {
        read_inline(blob, 0, size).map_err(|error| corrupt_in_memory(shard, sha256, error))?
    } else if size <= CACHE_ENTRY_MAX_BYTES {
        let reader = open_blob(shard, sha256, blob).await?;
        // Within one chunk: a single verified read.
        let identity = Some(reader.identity());
        reader
            .read_chunk(0, size)
            .await
            .map_err(|error| read_failed(shard, sha256, error, identity))?
    } else {
        return Ok(Source::Large(blob));
    };
    let cached = CachedBlob { bytes, block_crcs };
    let cache_bytes = {
        let mut cache = shard.cache.borrow_mut();
        cache.insert(*sha256, cached.clone());
        cache.used_bytes()
    };
    shard.node.shard_metrics[shard.id]
        .cache_bytes
        .store(cache_bytes as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(Source::Small(cached))
}

async fn open_blob(
    shard: &Rc<Shard>,
    sha256: &Digest,
    blob: BlobRecord,
) -> Result<BlobReader, ApiError> {
    match BlobReader::open(&shard.node.data.fid_path(sha256), blob).await {
        Ok(reader) => Ok(reader),
        Err(ReadError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(no_intact_copy(sha256))
        }
        // Records that disagree with themselves: no file to blame.
        Err(error) => Err(read_failed(shard, sha256, error, None)),
    }
}

/// Bytes held in memory (an inline record, a cache entry) failed their
/// checksum: nothing on disk to quarantine, but never served.
fn corrupt_in_memory(shard: &Shard, sha256: &Digest, error: ReadError) -> ApiError {
    tracing::error!(%sha256, %error, "blob bytes in memory failed their checksum");
    shard.node.stats.corrupt_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ApiError::new(StatusCode::BAD_GATEWAY, "corrupt_copy", error.to_string())
}

/// The rest of a body after its first chunk; a checksum failure ends the
/// stream with an error, which makes hyper abort the connection.
fn verified_chunks(
    shard: Rc<Shard>,
    reader: BlobReader,
    sha256: Digest,
    first: Bytes,
    start: u64,
    end: u64,
) -> ChunkStream {
    let metrics = shard.node.shard_metrics[shard.id].clone();
    let state = (Some(first), start, Rc::new(reader), shard);
    Box::pin(futures_lite::stream::unfold(state, move |(first, position, reader, shard)| {
        let metrics = metrics.clone();
        async move {
            let chunk = match first {
                Some(chunk) => chunk,
                None if position >= end => return None,
                None => match reader.read_chunk(position, end).await {
                    Ok(chunk) if chunk.is_empty() => return None,
                    Ok(chunk) => chunk,
                    Err(error) => {
                        let identity = Some(reader.identity());
                        let error = read_failed(&shard, &sha256, error, identity);
                        let failure = std::io::Error::other(error.message);
                        return Some((Err(failure), (None, end, reader, shard)));
                    }
                },
            };
            metrics.bytes_out.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let next = position + chunk.len() as u64;
            Some((Ok(chunk), (None, next, reader, shard)))
        }
    }))
}

/// Maps a read failure to an answer; detected corruption also moves the
/// copy to quarantine so it is never read again.
fn read_failed(
    shard: &Rc<Shard>,
    sha256: &Digest,
    error: ReadError,
    damaged: Option<FileIdentity>,
) -> ApiError {
    match error {
        ReadError::Io(error) => error.into(),
        ReadError::Corrupt { block } => {
            tracing::error!(%sha256, block, "checksum mismatch: copy quarantined");
            shard.cache.borrow_mut().remove(sha256);
            shard.node.stats.corrupt_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(damaged) = damaged {
                let data = shard.node.data.clone();
                let sha256 = *sha256;
                glommio::spawn_local(async move {
                    let moved = glommio::executor()
                        .spawn_blocking(move || data.quarantine_blocking(&sha256, damaged))
                        .await;
                    if let Err(error) = moved {
                        tracing::warn!(%sha256, %error, "could not quarantine a damaged copy");
                    }
                })
                .detach();
            }
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "corrupt_copy",
                format!("this node's copy of {sha256} failed its checksum and was quarantined"),
            )
        }
    }
}

const NO_INTACT_COPY: &str = "no_intact_copy";
/// The code of a 404 for a key this node does not hold (the same code as
/// every other 404, so clients see one).
const NOT_HERE: &str = "not_found";

fn no_intact_copy(sha256: &Digest) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        NO_INTACT_COPY,
        format!("this node has no intact copy of {sha256}"),
    )
}

pub async fn delete(shard: &Rc<Shard>, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    // Detached, like a PUT's commit: a client that goes away must not
    // cancel a delete between its commit and its bookkeeping.
    let (shard, domain, key) = (shard.clone(), target.domain, target.key);
    let node = shard.node.clone();
    if node.meta.key(&domain, &key)?.is_some() {
        glommio::spawn_local(async move { shard.delete_everywhere(domain, key, None).await })
            .detach()
            .await
            .ok_or_else(|| ApiError::from(std::io::Error::other("delete task was cancelled")))??;
    } else {
        // Held elsewhere only: a tombstone later than what the homes know.
        let known = node.control.lookup(&domain, &key).await;
        let Some(known) = known.filter(|k| !k.deleted) else {
            return Err(ApiError::not_found("no such key"));
        };
        node.clock.observe(cairn_engine::Version { hlc: known.hlc, node_id: known.writer });
        let told =
            node.control.delete_everywhere(&domain, &key, &known.class, node.clock.now()).await;
        if told == 0 {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_home",
                "none of the key's home nodes could record the deletion; retry",
            ));
        }
    }
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(ResBody::empty()).expect("valid"))
}

pub async fn stat(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let meta = &shard.node.meta;
    let index = shard.node.control.lookup(&target.domain, &target.key).await;
    let holders = |entry: &cairn_net::IndexEntry| -> Vec<String> {
        entry.holders.iter().map(|h| format!("{h:016x}")).collect()
    };
    let body = match meta.key(&target.domain, &target.key)? {
        Some(record) => {
            let mut body = record_json(&target.domain, &target.key, &record);
            body["block_size"] = json!(cairn_engine::BLOCK_SIZE_BYTES);
            body["content_type"] = json!(record.content_type);
            body["uploading"] = json!(meta.upload_in_progress(&target.domain, &target.key)?);
            // The holders of this version, as the key's homes know them.
            let same = index.as_ref().filter(|e| {
                !e.deleted && e.hlc == record.version.hlc && e.writer == record.version.node_id
            });
            body["holders"] = json!(same.map(holders).unwrap_or_default());
            body
        }
        None if meta.upload_in_progress(&target.domain, &target.key)? => json!({
            "domain": target.domain, "key": target.key, "state": KeyState::Uploading.as_str(),
        }),
        None => match index.filter(|e| !e.deleted) {
            // Held elsewhere: what the homes know.
            Some(entry) => json!({
                "domain": target.domain,
                "key": target.key,
                "sha256": Digest(entry.sha256).to_hex(),
                "size": entry.size_bytes,
                "class": entry.class,
                "content_type": entry.content_type,
                "version": entry.hlc,
                "state": "elsewhere",
                "holders": holders(&entry),
            }),
            None => return Err(ApiError::not_found(format!("no key {:?}", target.key))),
        },
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}

pub fn record_json(domain: &str, key: &str, record: &KeyRecord) -> serde_json::Value {
    json!({
        "domain": domain,
        "key": key,
        "sha256": record.sha256.to_hex(),
        "size": record.size_bytes,
        "class": record.class,
        "version": record.version.hlc,
        "state": record.state.as_str(),
    })
}

/// Whether a read failed because this node's copy is damaged.
pub fn is_damaged_copy(error: &ApiError) -> bool {
    error.code == NO_INTACT_COPY || error.code == "corrupt_copy"
}

fn etag(sha256: &Digest) -> String {
    format!("\"{sha256}\"")
}

fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate == tag || candidate.strip_prefix("W/") == Some(tag)
        })
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => {
            value.to_str().ok().and_then(|v| v.parse().ok()).map(Some).ok_or_else(|| {
                ApiError::bad_request("bad_content_length", "Content-Length is not a number")
            })
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("objects are limited to {max} bytes on this node"),
    )
}

fn slow_client(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "timeout",
        format!("no body bytes arrived for {} ms", timeout.as_millis()),
    )
}
