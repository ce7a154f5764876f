//! Verified reads (docs/design.md §4, §10): a key's bytes from this node —
//! from the shard's cache, an inline record or the blob file, every block
//! checked against its CRC before it is handed on — and reading a key
//! wherever it is: here, else streamed from a holder, and from another
//! holder when this node's copy turns out damaged.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cairn_engine::reader::{read_inline, verify_blocks, FileIdentity};
use cairn_engine::{BlobReader, BlobRecord, Digest, KeyRecord, ReadError};
use cairn_net::IndexEntry;

use crate::cache::{CachedBlob, CACHE_ENTRY_MAX_BYTES};
use crate::error::NodeError;
use crate::shard::Shard;

/// Verified bytes, one chunk at a time; an error ends the stream.
pub type ChunkStream = std::pin::Pin<Box<dyn futures_lite::Stream<Item = std::io::Result<Bytes>>>>;

/// What a reader learns of a key's version before any byte.
#[derive(Clone, Debug)]
pub struct KeyFacts {
    pub sha256: Digest,
    pub size_bytes: u64,
    pub content_type: String,
    /// Response headers the version keeps (`KeyRecord::headers`).
    pub headers: String,
    /// The version's hybrid logical clock value.
    pub version_hlc: u64,
}

impl KeyFacts {
    pub fn of_record(record: &KeyRecord) -> KeyFacts {
        KeyFacts {
            sha256: record.sha256,
            size_bytes: record.size_bytes,
            content_type: record.content_type.clone(),
            headers: record.headers.clone(),
            version_hlc: record.version.hlc,
        }
    }

    pub fn of_entry(entry: &IndexEntry) -> KeyFacts {
        KeyFacts {
            sha256: Digest(entry.sha256),
            size_bytes: entry.size_bytes,
            content_type: entry.content_type.clone(),
            headers: entry.headers.clone(),
            version_hlc: entry.hlc,
        }
    }
}

/// Where a read's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// This node's copy.
    Here,
    /// Another holder's copy, streamed through this node.
    Elsewhere,
}

/// Which bytes a reader wants, decided once it knows the key's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// None (a HEAD, a `304`, a `416`).
    Nothing,
    /// Bytes `[start, end)`.
    Bytes { start: u64, end: u64 },
}

/// The bytes of a read.
pub enum ReadBody {
    Memory(Bytes),
    Stream { chunks: ChunkStream, length_bytes: u64 },
}

/// A key read wherever it is.
pub struct Reading {
    pub facts: KeyFacts,
    pub origin: Origin,
    /// What `want` asked for, as it asked.
    pub want: Want,
    /// `None` when nothing was wanted.
    pub body: Option<ReadBody>,
}

/// Reads a key here, or from a holder when this node does not hold it or
/// its copy is damaged. `want` decides, from the key's facts and where
/// they are from, which bytes to read.
pub async fn read_anywhere(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    want: impl Fn(&KeyFacts, Origin) -> Want,
) -> Result<Reading, NodeError> {
    if let Some(newer) = newer_at_homes(shard, domain, key).await? {
        if newer.deleted {
            return Err(NodeError::Unknown { domain: domain.to_owned(), key: key.to_owned() });
        }
        if newer.holders.is_empty() {
            return Err(NodeError::Lost { domain: domain.to_owned(), key: key.to_owned() });
        }
        return crate::remote::read_entry(shard, domain, key, newer, &want).await;
    }
    match read_here(shard, domain, key, &want).await {
        Err(NodeError::NotHere { .. }) => crate::remote::read(shard, domain, key, &want).await,
        Err(error) if error.is_damaged_copy() => {
            let Ok(served) = crate::remote::read(shard, domain, key, &want).await else {
                return Err(error);
            };
            // Another holder has the bytes: stop counting this node's
            // damaged copy, so the tracker makes a good one elsewhere.
            shard.drop_damaged_copy(domain.to_owned(), key.to_owned());
            Ok(served)
        }
        other => other,
    }
}

/// In a cluster, the key's version as its homes know it, asked at every
/// read, when it is newer than this node's copy or this node has none: a
/// read started after a write was acknowledged sees that write, also at a
/// holder that was paused or cut off when it was told (its stale copy is
/// dropped now). `None`: read here (the copy is current, this node is
/// alone, or the homes cannot be asked and a copy is here).
async fn newer_at_homes(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
) -> Result<Option<IndexEntry>, NodeError> {
    let control = &shard.node.control;
    if control.is_alone() {
        return Ok(None);
    }
    let here = shard.node.meta.key(domain, key)?.map(|record| record.version);
    let known = match control.lookup_now(domain, key).await {
        Ok(Some(entry)) => entry,
        Ok(None) if here.is_some() => return Ok(None),
        Ok(None) => {
            return Err(NodeError::Unknown { domain: domain.to_owned(), key: key.to_owned() })
        }
        Err(_) if here.is_some() => return Ok(None),
        Err(_) => return Err(NodeError::HomesUnreachable),
    };
    let version = cairn_engine::Version { hlc: known.hlc, node_id: known.writer };
    match here {
        Some(local) if local >= version => Ok(None),
        Some(_) => {
            control.superseded(&known);
            Ok(Some(known))
        }
        None => Ok(Some(known)),
    }
}

/// Reads a key from this node's copy.
pub async fn read_here(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    want: &impl Fn(&KeyFacts, Origin) -> Want,
) -> Result<Reading, NodeError> {
    match read_local_once(shard, domain, key, want).await {
        // An overwrite may have committed and its old blob been collected
        // between reading the key and opening the blob: read the key again.
        Err(NodeError::NoIntactCopy(_)) => read_local_once(shard, domain, key, want).await,
        other => other,
    }
}

async fn read_local_once(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    want: &impl Fn(&KeyFacts, Origin) -> Want,
) -> Result<Reading, NodeError> {
    let record = shard
        .node
        .meta
        .key(domain, key)?
        .ok_or_else(|| NodeError::NotHere { domain: domain.to_owned(), key: key.to_owned() })?;
    let facts = KeyFacts::of_record(&record);
    let wanted = want(&facts, Origin::Here);
    let body = match wanted {
        Want::Bytes { start, end } if start < end => {
            Some(read_blob(shard, &record.sha256, start, end).await?)
        }
        _ => None,
    };
    Ok(Reading { facts, origin: Origin::Here, want: wanted, body })
}

/// Bytes `[start, end)` of blob `sha256` as held here, verified.
pub async fn read_blob(
    shard: &Rc<Shard>,
    sha256: &Digest,
    start: u64,
    end: u64,
) -> Result<ReadBody, NodeError> {
    let blob = match small_blob(shard, sha256).await? {
        Source::Small(cached) => {
            if end > cached.bytes.len() as u64 {
                // The key and blob records disagree on the size.
                return Err(corrupt_in_memory(shard, sha256, ReadError::Corrupt { block: 0 }));
            }
            verify_blocks(&cached.bytes, &cached.block_crcs, start, end).map_err(|error| {
                shard.cache.borrow_mut().remove(sha256);
                corrupt_in_memory(shard, sha256, error)
            })?;
            let bytes = cached.bytes.slice(start as usize..end as usize);
            shard.node.shard_metrics[shard.id]
                .bytes_out
                .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return Ok(ReadBody::Memory(bytes));
        }
        Source::Large(blob) => blob,
    };
    let reader = open_blob(shard, sha256, blob).await?;
    // The first chunk is read before anything is answered, so damage
    // there is a clean error instead of a cut response.
    let first = reader
        .read_chunk(start, end)
        .await
        .map_err(|error| read_failed(shard, sha256, error, Some(reader.identity())))?;
    let chunks = verified_chunks(shard.clone(), reader, *sha256, first, start, end);
    Ok(ReadBody::Stream { chunks, length_bytes: end - start })
}

/// What a scrub's re-read of a blob found.
pub enum Checked {
    /// Every block's CRC and the whole SHA-256 matched; its size.
    Intact(u64),
    /// Damaged or missing, and out of the way: the file was moved to the
    /// quarantine (or was not there, or the bytes live in the metadata).
    Damaged,
    /// Damaged, but the file at its path was replaced meanwhile (a write
    /// of the same bytes): the keys have good bytes again.
    Replaced,
}

/// Re-reads blob `sha256` as held here, from disk or its inline record
/// (not the cache), checking every block's CRC and the whole SHA-256, as
/// scrub does. A damaged file, one cut short or one the disk cannot read
/// is quarantined before this answers.
pub async fn verify_blob(
    shard: &Rc<Shard>,
    sha256: &Digest,
    blob: BlobRecord,
) -> Result<Checked, NodeError> {
    use sha2::Digest as _;
    let size = blob.size_bytes;
    let mut hasher = sha2::Sha256::new();
    if blob.inline.is_some() {
        let Ok(bytes) = read_inline(blob, 0, size) else { return Ok(Checked::Damaged) };
        hasher.update(&bytes);
        return Ok(match Digest(hasher.finalize().into()) == *sha256 {
            true => Checked::Intact(size),
            false => Checked::Damaged,
        });
    }
    let reader = match BlobReader::open(&shard.node.data.fid_path(sha256), blob).await {
        Ok(reader) => reader,
        Err(ReadError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Checked::Damaged);
        }
        Err(ReadError::Io(error)) if error.raw_os_error() != Some(libc::EIO) => {
            return Err(error.into())
        }
        Err(_) => return Ok(Checked::Damaged),
    };
    let mut position = 0;
    while position < size {
        let chunk = match reader.read_chunk(position, size).await {
            Ok(chunk) if chunk.is_empty() => break,
            Ok(chunk) => chunk,
            Err(ReadError::Io(error)) if error.raw_os_error() != Some(libc::EIO) => {
                return Err(error.into())
            }
            // A CRC mismatch, a short file, or a sector the disk cannot read.
            Err(_) => return quarantine_now(shard, sha256, reader.identity()).await,
        };
        position += chunk.len() as u64;
        hasher.update(&chunk);
    }
    if position != size || Digest(hasher.finalize().into()) != *sha256 {
        return quarantine_now(shard, sha256, reader.identity()).await;
    }
    Ok(Checked::Intact(size))
}

/// Moves a damaged file to the quarantine and says whether it was still
/// the one at its path.
async fn quarantine_now(
    shard: &Rc<Shard>,
    sha256: &Digest,
    damaged: FileIdentity,
) -> Result<Checked, NodeError> {
    tracing::error!(%sha256, "scrub found a damaged copy: quarantined");
    shard.cache.borrow_mut().remove(sha256);
    shard.node.stats.corrupt_reads.fetch_add(1, Ordering::Relaxed);
    Ok(match quarantine(shard, sha256, damaged).await? {
        Quarantined::NotTheSame => Checked::Replaced,
        // A write of the same bytes placed a good file since.
        Quarantined::Moved { replaced: true } => Checked::Replaced,
        Quarantined::Moved { replaced: false } => Checked::Damaged,
    })
}

/// What [`quarantine`] did.
enum Quarantined {
    /// The file at the path was no longer the damaged one: left alone.
    NotTheSame,
    /// Moved; `replaced`: a file is at the path again already.
    Moved { replaced: bool },
}

/// Moves the damaged file `damaged` of blob `sha256` to `quarantine/`
/// (on the blocking pool) and counts it.
async fn quarantine(
    shard: &Shard,
    sha256: &Digest,
    damaged: FileIdentity,
) -> std::io::Result<Quarantined> {
    let (data, digest) = (shard.node.data.clone(), *sha256);
    let done = glommio::executor()
        .spawn_blocking(move || {
            let moved = data.quarantine_blocking(&digest, damaged)?;
            Ok::<_, std::io::Error>(match moved {
                false => Quarantined::NotTheSame,
                true => Quarantined::Moved { replaced: data.fid_path(&digest).exists() },
            })
        })
        .await?;
    if matches!(done, Quarantined::Moved { .. }) {
        shard.node.stats.quarantined.fetch_add(1, Ordering::Relaxed);
    }
    Ok(done)
}

/// Where a GET's bytes come from: memory for a small blob (cached, or
/// loaded whole and cached now), the blob file for a large one.
enum Source {
    Small(CachedBlob),
    Large(BlobRecord),
}

async fn small_blob(shard: &Rc<Shard>, sha256: &Digest) -> Result<Source, NodeError> {
    if let Some(cached) = shard.cache.borrow_mut().get(sha256) {
        return Ok(Source::Small(cached));
    }
    let blob = shard.node.meta.blob(sha256)?.ok_or(NodeError::NoIntactCopy(*sha256))?;
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
) -> Result<BlobReader, NodeError> {
    match BlobReader::open(&shard.node.data.fid_path(sha256), blob).await {
        Ok(reader) => Ok(reader),
        Err(ReadError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(NodeError::NoIntactCopy(*sha256))
        }
        // Records that disagree with themselves: no file to blame.
        Err(error) => Err(read_failed(shard, sha256, error, None)),
    }
}

/// Bytes held in memory (an inline record, a cache entry) failed their
/// checksum: nothing on disk to quarantine, but never served.
fn corrupt_in_memory(shard: &Shard, sha256: &Digest, error: ReadError) -> NodeError {
    tracing::error!(%sha256, %error, "blob bytes in memory failed their checksum");
    shard.node.stats.corrupt_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    NodeError::Corrupt(error.to_string())
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
                        let failure = std::io::Error::other(error.to_string());
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
) -> NodeError {
    match error {
        ReadError::Io(error) => error.into(),
        ReadError::Corrupt { block } => {
            tracing::error!(%sha256, block, "checksum mismatch: copy quarantined");
            shard.cache.borrow_mut().remove(sha256);
            shard.node.stats.corrupt_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(damaged) = damaged {
                let (shard, sha256) = (shard.clone(), *sha256);
                glommio::spawn_local(async move {
                    if let Err(error) = quarantine(&shard, &sha256, damaged).await {
                        tracing::warn!(%sha256, %error, "could not quarantine a damaged copy");
                    }
                })
                .detach();
            }
            NodeError::Corrupt(format!(
                "this node's copy of {sha256} failed its checksum and was quarantined"
            ))
        }
    }
}
