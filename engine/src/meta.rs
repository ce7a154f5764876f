//! The node's metadata in RocksDB, and the group commit that makes it durable.
//!
//! One RocksDB instance per node, one keyspace split by a one-byte tag
//! (documented in `engine/FORMAT.md`). Reads go straight to RocksDB from any
//! shard: it is thread-safe, and reads need no ordering. Writes that must be
//! durable go through [`Meta::commit`], which hands the batch to one commit
//! thread; that thread merges every batch waiting at that moment into one
//! and writes it with a single WAL sync (group commit), so a reactor never
//! blocks on fsync and concurrent uploads share one write and one sync.

use std::future::Future;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use futures_channel::oneshot;
use rocksdb::{
    BlockBasedOptions, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};
use thiserror::Error;

use crate::digest::Digest;
use crate::props::{CollectionRecord, PropsRecord};
use crate::record::{BlobRecord, IndexRecord, KeyRecord, PendingUpload, RecordError};
use crate::version::Version;

const TAG_KEY: u8 = b'k';
const TAG_BLOB: u8 = b'b';
const TAG_REF: u8 = b'r';
const TAG_GC: u8 = b'g';
const TAG_UPLOAD: u8 = b'u';
const TAG_DOMAIN: u8 = b'd';
const TAG_FID: u8 = b'f';
const TAG_INDEX: u8 = b'i';
const TAG_PENDING: u8 = b'm';
const TAG_OUTBOX: u8 = b'o';

/// The domain part of a reference held by a MogileFS upload that has its
/// bytes but is not closed yet; no real domain can start with `_`.
const UPLOAD_REF_DOMAIN: &str = "_mogile";
const TAG_COLLECTION: u8 = b'c';
const TAG_PROPS: u8 = b'p';

/// Commits waiting for the commit thread; past this a commit is refused
/// (the caller answers 503) rather than queued without bound.
const COMMIT_QUEUE_MAX: usize = 4096;
/// Batches written before one WAL sync.
const COMMIT_GROUP_MAX: usize = 256;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("corrupt record under {key:?}: {source}")]
    Corrupt { key: String, source: RecordError },
    #[error("commit queue is full")]
    Busy,
    #[error("commit thread is gone")]
    Closed,
}

/// A change of a key the key's homes have not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub domain: String,
    pub key: String,
    /// The version of the key here that the homes must learn of.
    pub version: Version,
    /// When the change was committed (wall clock).
    pub unix_ms: u64,
}

/// A set of changes committed atomically.
#[derive(Default)]
pub struct Batch {
    inner: WriteBatch,
}

impl Batch {
    pub fn put_key(&mut self, domain: &str, key: &str, record: &KeyRecord) {
        self.inner.put(key_id(domain, key), record.encode());
    }

    /// Writes a key record that the key's homes must learn of: with an
    /// outbox entry for its version, so the change is re-sent until they
    /// confirm it.
    pub fn put_key_to_announce(&mut self, domain: &str, key: &str, record: &KeyRecord) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        self.put_key(domain, key, record);
        self.put_outbox(domain, key, record.version, unix_ms);
    }

    /// Records that the key's homes must learn of `version` of the key
    /// here; removed once they confirm (see [`Meta::outbox_after`]).
    fn put_outbox(&mut self, domain: &str, key: &str, version: Version, unix_ms: u64) {
        self.inner.put(outbox_id(domain, key, version), unix_ms.to_be_bytes());
    }

    pub fn delete_outbox(&mut self, domain: &str, key: &str, version: Version) {
        self.inner.delete(outbox_id(domain, key, version));
    }

    pub fn put_index(&mut self, domain: &str, key: &str, record: &IndexRecord) {
        self.inner.put(named_id(TAG_INDEX, domain, key), record.encode());
    }

    pub fn delete_index(&mut self, domain: &str, key: &str) {
        self.inner.delete(named_id(TAG_INDEX, domain, key));
    }

    pub fn delete_key(&mut self, domain: &str, key: &str) {
        self.inner.delete(key_id(domain, key));
    }

    pub fn put_blob(&mut self, sha256: &Digest, record: &BlobRecord) {
        self.inner.put(tagged(TAG_BLOB, &sha256.0), record.encode());
    }

    pub fn delete_blob(&mut self, sha256: &Digest) {
        self.inner.delete(tagged(TAG_BLOB, &sha256.0));
    }

    pub fn add_ref(&mut self, sha256: &Digest, domain: &str, key: &str) {
        self.inner.put(ref_id(sha256, domain, key), []);
    }

    pub fn remove_ref(&mut self, sha256: &Digest, domain: &str, key: &str) {
        self.inner.delete(ref_id(sha256, domain, key));
    }

    /// Marks a blob to be checked by the collector: it is removed if no key
    /// refers to it any more.
    pub fn add_gc_candidate(&mut self, sha256: &Digest) {
        self.inner.put(tagged(TAG_GC, &sha256.0), []);
    }

    pub fn remove_gc_candidate(&mut self, sha256: &Digest) {
        self.inner.delete(tagged(TAG_GC, &sha256.0));
    }

    pub fn put_domain(&mut self, domain: &str) {
        self.inner.put(tagged(TAG_DOMAIN, domain.as_bytes()), []);
    }

    /// Records which key holds the version with this MogileFS fid.
    pub fn put_fid(&mut self, fid: u64, domain: &str, key: &str) {
        let mut value = domain.as_bytes().to_vec();
        value.push(0);
        value.extend_from_slice(key.as_bytes());
        self.inner.put(tagged(TAG_FID, &fid.to_be_bytes()), value);
    }

    pub fn delete_fid(&mut self, fid: u64) {
        self.inner.delete(tagged(TAG_FID, &fid.to_be_bytes()));
    }

    pub fn put_pending_upload(&mut self, fid: u64, pending: &PendingUpload) {
        self.inner.put(tagged(TAG_PENDING, &fid.to_be_bytes()), pending.encode());
    }

    pub fn delete_pending_upload(&mut self, fid: u64) {
        self.inner.delete(tagged(TAG_PENDING, &fid.to_be_bytes()));
    }

    /// A pending MogileFS upload's bytes are a reference to their blob, so
    /// the collector keeps the blob until the upload is closed or expires.
    pub fn add_upload_ref(&mut self, sha256: &Digest, fid: u64) {
        self.inner.put(upload_ref_id(sha256, fid), []);
    }

    pub fn remove_upload_ref(&mut self, sha256: &Digest, fid: u64) {
        self.inner.delete(upload_ref_id(sha256, fid));
    }

    pub fn put_upload(&mut self, domain: &str, key: &str, upload_id: &str) {
        self.inner.put(upload_id_key(domain, key, upload_id), []);
    }

    pub fn delete_upload(&mut self, domain: &str, key: &str, upload_id: &str) {
        self.inner.delete(upload_id_key(domain, key, upload_id));
    }

    /// Records an explicitly made collection; `prefix` ends with `/`.
    pub fn put_collection(&mut self, domain: &str, prefix: &str, record: &CollectionRecord) {
        self.inner.put(named_id(TAG_COLLECTION, domain, prefix), record.encode());
    }

    pub fn delete_collection(&mut self, domain: &str, prefix: &str) {
        self.inner.delete(named_id(TAG_COLLECTION, domain, prefix));
    }

    /// Stores the dead properties of a key or (with a trailing `/`) a
    /// collection; an empty set removes the record.
    pub fn put_props(&mut self, domain: &str, path: &str, record: &PropsRecord) {
        if record.props.is_empty() {
            self.delete_props(domain, path);
        } else {
            self.inner.put(named_id(TAG_PROPS, domain, path), record.encode());
        }
    }

    pub fn delete_props(&mut self, domain: &str, path: &str) {
        self.inner.delete(named_id(TAG_PROPS, domain, path));
    }
}

struct CommitRequest {
    batch: WriteBatch,
    done: oneshot::Sender<Result<(), MetaError>>,
}

/// Handle to the node's metadata; cheap to clone, shared by all shards.
#[derive(Clone)]
pub struct Meta {
    db: Arc<DB>,
    committer: Arc<Committer>,
}

/// The commit thread and its queue. When the last handle goes, the queue
/// closes and the thread is joined, so the database is closed by the time
/// the last `Meta` is dropped (and can be opened again at once).
struct Committer {
    queue: Option<SyncSender<CommitRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Meta {
    pub fn open(path: &Path) -> Result<Meta, MetaError> {
        Meta::open_with_column_families(path, &[])
    }

    /// Opens the metadata with more column families beside the default one
    /// (the raft log and state), created when missing. Their keys are not
    /// the engine's: [`Meta::db`] hands the database to their owner.
    pub fn open_with_column_families(path: &Path, extra: &[&str]) -> Result<Meta, MetaError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_keep_log_file_num(4);
        options.set_max_background_jobs(2);
        // Reusing old WAL files means a commit's fdatasync rewrites blocks
        // that are already allocated, so it needs no file-system journal
        // commit of its own.
        options.set_recycle_log_file_num(4);
        // Most lookups of a new key miss (every PUT reads the version it
        // replaces): bloom filters, in the memtable too, make a miss cheap.
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        options.set_memtable_whole_key_filtering(true);
        // Inline blob bytes are large values: kept in blob files at flush,
        // compaction never rewrites them (RocksDB's integrated BlobDB).
        options.set_enable_blob_files(true);
        options.set_min_blob_size(2048);
        options.set_enable_blob_gc(true);
        options.set_memtable_prefix_bloom_ratio(0.02);
        let names =
            std::iter::once(rocksdb::DEFAULT_COLUMN_FAMILY_NAME).chain(extra.iter().copied());
        let db = Arc::new(DB::open_cf(&options, path, names)?);
        let (commits, queue) = mpsc::sync_channel(COMMIT_QUEUE_MAX);
        let thread_db = db.clone();
        let thread = std::thread::Builder::new()
            .name("meta-commit".into())
            .spawn(move || run_commits(&thread_db, queue))
            .map_err(|_| MetaError::Closed)?;
        let committer = Committer { queue: Some(commits), thread: Some(thread) };
        Ok(Meta { db, committer: Arc::new(committer) })
    }

    /// The database itself, for the owners of the extra column families.
    pub fn db(&self) -> Arc<DB> {
        self.db.clone()
    }

    /// Makes `batch` durable (WAL synced) together with whatever else is
    /// being committed at the same moment. The batch is queued when this is
    /// called, not when the answer is first awaited.
    pub fn commit(&self, batch: Batch) -> impl Future<Output = Result<(), MetaError>> + use<> {
        let (done, result) = oneshot::channel();
        let queue = self.committer.queue.as_ref().expect("the queue lives until the last Meta");
        let queued = match queue.try_send(CommitRequest { batch: batch.inner, done }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(MetaError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(MetaError::Closed),
        };
        async move {
            queued?;
            result.await.map_err(|_| MetaError::Closed)?
        }
    }

    /// Writes without waiting for a sync: for records whose loss in a crash
    /// is repaired at the next start (uploads in progress, gc candidates).
    pub fn write_unsynced(&self, batch: Batch) -> Result<(), MetaError> {
        let mut options = WriteOptions::default();
        options.set_sync(false);
        Ok(self.db.write_opt(batch.inner, &options)?)
    }

    pub fn key(&self, domain: &str, key: &str) -> Result<Option<KeyRecord>, MetaError> {
        let id = key_id(domain, key);
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(bytes) => decode(&id, KeyRecord::decode(&bytes)).map(Some),
        }
    }

    pub fn blob(&self, sha256: &Digest) -> Result<Option<BlobRecord>, MetaError> {
        let id = tagged(TAG_BLOB, &sha256.0);
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(bytes) => decode(&id, BlobRecord::decode(&bytes)).map(Some),
        }
    }

    /// Up to `limit` blob records after `after` (from the start when
    /// `None`), in digest order: a scrub's walk.
    pub fn blobs_after(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, BlobRecord)>, MetaError> {
        let start = tagged(TAG_BLOB, &after.map_or([0; 32], |d| d.0));
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = entry?;
            if id.first() != Some(&TAG_BLOB) || out.len() >= limit {
                break;
            }
            let Ok(bytes) = <[u8; 32]>::try_from(&id[1..]) else { continue };
            if after != Some(&Digest(bytes)) {
                out.push((Digest(bytes), decode(&id, BlobRecord::decode(&value))?));
            }
        }
        Ok(out)
    }

    /// Up to `limit` keys (domain, key) that refer to blob `sha256`; the
    /// references of pending MogileFS uploads are left out.
    pub fn refs_of(
        &self,
        sha256: &Digest,
        limit: usize,
    ) -> Result<Vec<(String, String)>, MetaError> {
        let prefix = tagged(TAG_REF, &sha256.0);
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(prefix_successor(&prefix));
        let mut out = Vec::new();
        for entry in self.db.iterator_opt(IteratorMode::From(&prefix, Direction::Forward), options)
        {
            let (id, _) = entry?;
            if !id.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let name = &id[prefix.len()..];
            let Some(nul) = name.iter().position(|b| *b == 0) else { continue };
            let (domain, key) = (&name[..nul], &name[nul + 1..]);
            let (Ok(domain), Ok(key)) = (std::str::from_utf8(domain), std::str::from_utf8(key))
            else {
                continue;
            };
            if domain != UPLOAD_REF_DOMAIN {
                out.push((domain.to_string(), key.to_string()));
            }
        }
        Ok(out)
    }

    pub fn has_refs(&self, sha256: &Digest) -> Result<bool, MetaError> {
        self.any_with_prefix(&tagged(TAG_REF, &sha256.0))
    }

    pub fn domain_exists(&self, domain: &str) -> Result<bool, MetaError> {
        Ok(self.db.get_pinned(tagged(TAG_DOMAIN, domain.as_bytes()))?.is_some())
    }

    /// Up to `limit` key records after `(domain, key)` (from the start when
    /// `None`), across domains, in byte order of `domain NUL key`.
    pub fn keys_after(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, KeyRecord)>, MetaError> {
        self.named_after(TAG_KEY, after, limit, KeyRecord::decode)
    }

    /// This node's index record of a key it is home of.
    pub fn index(&self, domain: &str, key: &str) -> Result<Option<IndexRecord>, MetaError> {
        let id = named_id(TAG_INDEX, domain, key);
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(bytes) => decode(&id, IndexRecord::decode(&bytes)).map(Some),
        }
    }

    /// Up to `limit` index records after `(domain, key)` (from the start
    /// when `None`), in byte order of `domain NUL key`.
    pub fn index_after(
        &self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(String, String, IndexRecord)>, MetaError> {
        self.named_after(TAG_INDEX, after, limit, IndexRecord::decode)
    }

    /// Up to `limit` records of `tag domain NUL name` ids after `after`
    /// (from the tag's start when `None`), across domains, in byte order.
    fn named_after<T>(
        &self,
        tag: u8,
        after: Option<(&str, &str)>,
        limit: usize,
        decode_value: impl Fn(&[u8]) -> Result<T, RecordError>,
    ) -> Result<Vec<(String, String, T)>, MetaError> {
        let start = match after {
            None => vec![tag],
            Some((domain, name)) => {
                let mut id = named_id(tag, domain, name);
                id.push(0);
                id
            }
        };
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = entry?;
            if id.first() != Some(&tag) || out.len() >= limit {
                break;
            }
            let (domain, name) = decode(&id, split_domain_key(&id[1..]))?;
            out.push((domain, name, decode(&id, decode_value(&value))?));
        }
        Ok(out)
    }

    /// Up to `limit` outbox entries after `after` (from the start when
    /// `None`), in byte order of their ids.
    pub fn outbox_after(
        &self,
        after: Option<&OutboxEntry>,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, MetaError> {
        let start = match after {
            None => vec![TAG_OUTBOX],
            Some(entry) => {
                let mut id = outbox_id(&entry.domain, &entry.key, entry.version);
                id.push(0);
                id
            }
        };
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = item?;
            if id.first() != Some(&TAG_OUTBOX) || out.len() >= limit {
                break;
            }
            out.push(decode(&id, outbox_entry(&id, &value))?);
        }
        Ok(out)
    }

    /// The versions of a key waiting in the outbox.
    pub fn outbox_of(&self, domain: &str, key: &str) -> Result<Vec<Version>, MetaError> {
        let prefix = named_id(TAG_OUTBOX, domain, key);
        let mut out = Vec::new();
        for item in self.db.iterator(IteratorMode::From(&prefix, Direction::Forward)) {
            let (id, value) = item?;
            if !id.starts_with(&prefix) {
                break;
            }
            // Longer keys that start with this one sort here too.
            if id.len() == prefix.len() + VERSION_ID_BYTES {
                out.push(decode(&id, outbox_entry(&id, &value))?.version);
            }
        }
        Ok(out)
    }

    /// The domain and key whose current version has this fid.
    pub fn fid_key(&self, fid: u64) -> Result<Option<(String, String)>, MetaError> {
        let id = tagged(TAG_FID, &fid.to_be_bytes());
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(value) => decode(&id, split_domain_key(&value)).map(Some),
        }
    }

    /// Up to `limit` fids above `after`, in numeric order, with their keys.
    pub fn list_fids(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String, String)>, MetaError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let start = tagged(TAG_FID, &start.to_be_bytes());
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = entry?;
            if id.first() != Some(&TAG_FID) || out.len() >= limit {
                break;
            }
            let Ok(fid) = <[u8; 8]>::try_from(&id[1..]) else {
                continue;
            };
            let (domain, key) = decode(&id, split_domain_key(&value))?;
            out.push((u64::from_be_bytes(fid), domain, key));
        }
        Ok(out)
    }

    pub fn pending_upload(&self, fid: u64) -> Result<Option<PendingUpload>, MetaError> {
        let id = tagged(TAG_PENDING, &fid.to_be_bytes());
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(bytes) => decode(&id, PendingUpload::decode(&bytes)).map(Some),
        }
    }

    /// Up to `limit` pending MogileFS uploads with a fid above `after`.
    pub fn pending_uploads_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, PendingUpload)>, MetaError> {
        let start = match after.map(|fid| fid.checked_add(1)) {
            None => vec![TAG_PENDING],
            Some(Some(next)) => tagged(TAG_PENDING, &next.to_be_bytes()),
            Some(None) => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = entry?;
            if id.first() != Some(&TAG_PENDING) || out.len() >= limit {
                break;
            }
            let Ok(fid) = <[u8; 8]>::try_from(&id[1..]) else {
                continue;
            };
            out.push((u64::from_be_bytes(fid), decode(&id, PendingUpload::decode(&value))?));
        }
        Ok(out)
    }

    /// Domains strictly after `after`, in byte order, at most `limit`.
    pub fn list_domains(&self, after: &str, limit: usize) -> Result<Vec<String>, MetaError> {
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(vec![TAG_DOMAIN + 1]);
        let start = tagged(TAG_DOMAIN, after.as_bytes());
        let mut out = Vec::new();
        for entry in self.db.iterator_opt(IteratorMode::From(&start, Direction::Forward), options) {
            let (id, _) = entry?;
            if out.len() >= limit {
                break;
            }
            match std::str::from_utf8(&id[1..]) {
                Ok(domain) if domain != after => out.push(domain.to_string()),
                _ => {}
            }
        }
        Ok(out)
    }

    pub fn upload_in_progress(&self, domain: &str, key: &str) -> Result<bool, MetaError> {
        let mut prefix = tagged(TAG_UPLOAD, domain.as_bytes());
        prefix.push(0);
        prefix.extend_from_slice(key.as_bytes());
        prefix.push(0);
        self.any_with_prefix(&prefix)
    }

    /// Keys of `domain` starting with `prefix`, strictly after `after`,
    /// in byte order, at most `limit`.
    pub fn list_keys(
        &self,
        domain: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, KeyRecord)>, MetaError> {
        let scope = key_id(domain, prefix);
        let start = match after {
            Some(after) if key_id(domain, after) > scope => key_id(domain, after),
            _ => scope.clone(),
        };
        let domain_len = 1 + domain.len() + 1;
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, value) = entry?;
            if !id.starts_with(&scope) || out.len() >= limit {
                break;
            }
            let Ok(key) = std::str::from_utf8(&id[domain_len..]) else {
                continue;
            };
            if Some(key) == after {
                continue;
            }
            out.push((key.to_string(), decode(&id, KeyRecord::decode(&value))?));
        }
        Ok(out)
    }

    /// Keys of `domain` starting with `prefix` and not below `start`, in
    /// byte order, at most `limit`.
    pub fn list_keys_from(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<Vec<(String, KeyRecord)>, MetaError> {
        self.scan(TAG_KEY, domain, prefix, start, limit, KeyRecord::decode)
    }

    /// Index records (this node as a home) of `domain` with keys starting
    /// with `prefix` and not below `start`, in byte order, at most `limit`.
    pub fn list_index_from(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<Vec<(String, IndexRecord)>, MetaError> {
        self.scan(TAG_INDEX, domain, prefix, start, limit, IndexRecord::decode)
    }

    /// Collection markers of `domain` starting with `prefix` and not below
    /// `start`, in byte order, at most `limit`.
    pub fn list_collections_from(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<Vec<(String, CollectionRecord)>, MetaError> {
        self.scan(TAG_COLLECTION, domain, prefix, start, limit, CollectionRecord::decode)
    }

    pub fn collection(
        &self,
        domain: &str,
        prefix: &str,
    ) -> Result<Option<CollectionRecord>, MetaError> {
        let id = named_id(TAG_COLLECTION, domain, prefix);
        match self.db.get_pinned(&id)? {
            None => Ok(None),
            Some(bytes) => decode(&id, CollectionRecord::decode(&bytes)).map(Some),
        }
    }

    /// The dead properties of a key or collection (empty when it has none).
    pub fn props(&self, domain: &str, path: &str) -> Result<PropsRecord, MetaError> {
        let id = named_id(TAG_PROPS, domain, path);
        match self.db.get_pinned(&id)? {
            None => Ok(PropsRecord::default()),
            Some(bytes) => decode(&id, PropsRecord::decode(&bytes)),
        }
    }

    /// Whether any key of `domain` starts with `prefix`.
    pub fn any_key_under(&self, domain: &str, prefix: &str) -> Result<bool, MetaError> {
        self.any_with_prefix(&key_id(domain, prefix))
    }

    /// Whether any collection marker of `domain` starts with `prefix`.
    pub fn any_collection_under(&self, domain: &str, prefix: &str) -> Result<bool, MetaError> {
        self.any_with_prefix(&named_id(TAG_COLLECTION, domain, prefix))
    }

    fn scan<T>(
        &self,
        tag: u8,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
        decode_value: impl Fn(&[u8]) -> Result<T, RecordError>,
    ) -> Result<Vec<(String, T)>, MetaError> {
        let scope = named_id(tag, domain, prefix);
        let from = named_id(tag, domain, start).max(scope.clone());
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(prefix_successor(&scope));
        let domain_len = 1 + domain.len() + 1;
        let mut out = Vec::new();
        for entry in self.db.iterator_opt(IteratorMode::From(&from, Direction::Forward), options) {
            let (id, value) = entry?;
            if !id.starts_with(&scope) || out.len() >= limit {
                break;
            }
            let Ok(name) = std::str::from_utf8(&id[domain_len..]) else {
                continue;
            };
            out.push((name.to_string(), decode(&id, decode_value(&value))?));
        }
        Ok(out)
    }

    /// Every key record of the node, for counters at start.
    pub fn for_each_key(&self, visit: impl FnMut(&KeyRecord)) -> Result<(), MetaError> {
        self.for_each(TAG_KEY, KeyRecord::decode, visit)
    }

    /// Visits every index record this node keeps as a key's home.
    pub fn for_each_index(&self, visit: impl FnMut(&IndexRecord)) -> Result<(), MetaError> {
        self.for_each(TAG_INDEX, IndexRecord::decode, visit)
    }

    fn for_each<T>(
        &self,
        tag: u8,
        decode_value: impl Fn(&[u8]) -> Result<T, RecordError>,
        mut visit: impl FnMut(&T),
    ) -> Result<(), MetaError> {
        for entry in self.db.prefix_iterator([tag]) {
            let (id, value) = entry?;
            if id.first() != Some(&tag) {
                break;
            }
            visit(&decode(&id, decode_value(&value))?);
        }
        Ok(())
    }

    /// Up to `limit` blobs waiting for the collector.
    pub fn gc_candidates(&self, limit: usize) -> Result<Vec<Digest>, MetaError> {
        self.gc_candidates_after(None, limit)
    }

    /// Up to `limit` blobs waiting for the collector, in digest order,
    /// strictly after `after` (a collector's cursor through the list).
    pub fn gc_candidates_after(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>, MetaError> {
        let start = match after {
            Some(digest) => tagged(TAG_GC, &digest.0),
            None => vec![TAG_GC],
        };
        let mut out = Vec::new();
        for entry in self.db.iterator(IteratorMode::From(&start, Direction::Forward)) {
            let (id, _) = entry?;
            if id.first() != Some(&TAG_GC) || out.len() >= limit {
                break;
            }
            if let Ok(bytes) = <[u8; 32]>::try_from(&id[1..]) {
                if after != Some(&Digest(bytes)) {
                    out.push(Digest(bytes));
                }
            }
        }
        Ok(out)
    }

    /// Removes every upload record: run at start, when no upload can be live.
    pub async fn clear_uploads(&self) -> Result<usize, MetaError> {
        let mut batch = Batch::default();
        let mut count = 0;
        for entry in self.db.prefix_iterator([TAG_UPLOAD]) {
            let (id, _) = entry?;
            if id.first() != Some(&TAG_UPLOAD) {
                break;
            }
            batch.inner.delete(id);
            count += 1;
        }
        self.commit(batch).await?;
        Ok(count)
    }

    fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool, MetaError> {
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(prefix_successor(prefix));
        let mut iter =
            self.db.iterator_opt(IteratorMode::From(prefix, Direction::Forward), options);
        match iter.next() {
            None => Ok(false),
            Some(entry) => Ok(entry?.0.starts_with(prefix)),
        }
    }
}

fn run_commits(db: &DB, queue: Receiver<CommitRequest>) {
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < COMMIT_GROUP_MAX {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        // One WAL record, one write and one sync for the whole group.
        let merged = merge_batches(group.iter().map(|request| &request.batch));
        let result = db.write_opt(merged, &synced);
        for request in group {
            let _ = request.done.send(result.clone().map_err(MetaError::Db));
        }
    }
}

/// Bytes of a WriteBatch's header: an 8-byte sequence number and a 4-byte
/// record count, little-endian; the records follow (RocksDB's
/// `write_batch.cc` format, stable across releases).
const WRITE_BATCH_HEADER_BYTES: usize = 12;

/// Concatenates batches into one that applies all of them, in order, atomically.
fn merge_batches<'a>(batches: impl Iterator<Item = &'a WriteBatch>) -> WriteBatch {
    let mut count: u32 = 0;
    let mut data = vec![0u8; WRITE_BATCH_HEADER_BYTES];
    for batch in batches {
        let rep = batch.data();
        if rep.len() <= WRITE_BATCH_HEADER_BYTES {
            continue;
        }
        count += batch.len() as u32;
        data.extend_from_slice(&rep[WRITE_BATCH_HEADER_BYTES..]);
    }
    data[8..12].copy_from_slice(&count.to_le_bytes());
    WriteBatch::from_data(&data)
}

fn decode<T>(id: &[u8], result: Result<T, RecordError>) -> Result<T, MetaError> {
    result.map_err(|source| MetaError::Corrupt { key: String::from_utf8_lossy(id).into(), source })
}

fn tagged(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + rest.len());
    out.push(tag);
    out.extend_from_slice(rest);
    out
}

/// `k domain NUL key`: keys sort by domain, then by key bytes.
fn key_id(domain: &str, key: &str) -> Vec<u8> {
    named_id(TAG_KEY, domain, key)
}

/// `tag domain NUL name`, the shape of key, collection and props ids.
fn named_id(tag: u8, domain: &str, name: &str) -> Vec<u8> {
    let mut out = tagged(tag, domain.as_bytes());
    out.push(0);
    out.extend_from_slice(name.as_bytes());
    out
}

/// A version in an id: `hlc[8] node_id[8]`, big-endian, so ids sort by version.
const VERSION_ID_BYTES: usize = 16;

/// `o domain NUL key hlc[8] node_id[8]`.
fn outbox_id(domain: &str, key: &str, version: Version) -> Vec<u8> {
    let mut out = named_id(TAG_OUTBOX, domain, key);
    out.extend_from_slice(&version.hlc.to_be_bytes());
    out.extend_from_slice(&version.node_id.to_be_bytes());
    out
}

fn outbox_entry(id: &[u8], value: &[u8]) -> Result<OutboxEntry, RecordError> {
    let split = id.len().checked_sub(VERSION_ID_BYTES).filter(|at| *at > 1);
    let split = split.ok_or(RecordError::Truncated)?;
    let (domain, key) = split_domain_key(&id[1..split])?;
    let number = |bytes: &[u8]| {
        <[u8; 8]>::try_from(bytes).map(u64::from_be_bytes).map_err(|_| RecordError::Truncated)
    };
    Ok(OutboxEntry {
        domain,
        key,
        version: Version {
            hlc: number(&id[split..split + 8])?,
            node_id: number(&id[split + 8..])?,
        },
        unix_ms: number(value)?,
    })
}

fn ref_id(sha256: &Digest, domain: &str, key: &str) -> Vec<u8> {
    let mut out = tagged(TAG_REF, &sha256.0);
    out.extend_from_slice(domain.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

fn upload_ref_id(sha256: &Digest, fid: u64) -> Vec<u8> {
    ref_id(sha256, UPLOAD_REF_DOMAIN, &format!("{fid:016x}"))
}

fn split_domain_key(value: &[u8]) -> Result<(String, String), RecordError> {
    let nul = value.iter().position(|c| *c == 0).ok_or(RecordError::Truncated)?;
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::BadText);
    Ok((text(&value[..nul])?, text(&value[nul + 1..])?))
}

fn upload_id_key(domain: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut out = tagged(TAG_UPLOAD, domain.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(upload_id.as_bytes());
    out
}

/// The smallest byte string greater than every string starting with `prefix`.
fn prefix_successor(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return out;
        }
    }
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BlobRecord, KeyState};
    use crate::version::Version;

    fn record(sha: u8) -> KeyRecord {
        KeyRecord {
            state: KeyState::NeedReplication,
            version: Version { hlc: 1, node_id: 1 },
            sha256: Digest([sha; 32]),
            size_bytes: 3,
            class: "default".into(),
            content_type: String::new(),
            fid: u64::from(sha),
            headers: String::new(),
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures_lite::future::block_on(future)
    }

    #[test]
    fn commit_list_and_refs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let mut batch = Batch::default();
        for key in ["a/1", "a/2", "b/1", "a/3"] {
            batch.put_key("photos", key, &record(1));
            batch.add_ref(&Digest([1; 32]), "photos", key);
        }
        batch.put_key("photosx", "a/9", &record(2));
        for domain in ["photos", "photosx", "a"] {
            batch.put_domain(domain);
        }
        block_on(meta.commit(batch)).expect("commit");
        assert_eq!(meta.list_domains("", 10).unwrap(), ["a", "photos", "photosx"]);
        assert_eq!(meta.list_domains("a", 1).unwrap(), ["photos"]);
        assert_eq!(meta.list_domains("photosx", 10).unwrap(), Vec::<String>::new());

        let names = |items: Vec<(String, KeyRecord)>| -> Vec<String> {
            items.into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(
            names(meta.list_keys("photos", "", None, 10).unwrap()),
            ["a/1", "a/2", "a/3", "b/1"]
        );
        assert_eq!(names(meta.list_keys("photos", "a/", Some("a/1"), 1).unwrap()), ["a/2"]);
        assert_eq!(
            names(meta.list_keys("photos", "a/", Some("a/3"), 10).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(names(meta.list_keys("photos", "", Some("a/9"), 10).unwrap()), ["b/1"]);
        assert!(meta.has_refs(&Digest([1; 32])).unwrap());
        assert!(!meta.has_refs(&Digest([2; 32])).unwrap());
        assert_eq!(meta.key("photos", "a/2").unwrap(), Some(record(1)));
        assert_eq!(meta.key("photos", "zz").unwrap(), None);
    }

    #[test]
    fn outbox_entries_are_per_version_and_pages_skip_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let v = |hlc| Version { hlc, node_id: 7 };
        let mut batch = Batch::default();
        batch.put_outbox("d", "a", v(2), 100);
        batch.put_outbox("d", "a", v(1), 90);
        // A key that starts with another's name is not that key's entry.
        batch.put_outbox("d", "ab", v(1), 95);
        batch.put_outbox("e", "a", v(3), 80);
        block_on(meta.commit(batch)).expect("commit");
        assert_eq!(meta.outbox_of("d", "a").unwrap(), [v(1), v(2)]);
        assert_eq!(meta.outbox_of("d", "ab").unwrap(), [v(1)]);
        let first = meta.outbox_after(None, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!((first[0].key.as_str(), first[0].version, first[0].unix_ms), ("a", v(1), 90));
        let rest = meta.outbox_after(first.last(), 10).unwrap();
        let keys: Vec<_> = rest.iter().map(|e| (e.domain.as_str(), e.key.as_str())).collect();
        assert_eq!(keys, [("d", "ab"), ("e", "a")]);
        let mut batch = Batch::default();
        batch.delete_outbox("d", "a", v(1));
        block_on(meta.commit(batch)).expect("commit");
        assert_eq!(meta.outbox_of("d", "a").unwrap(), [v(2)]);
    }

    #[test]
    fn merged_batches_apply_every_change_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let mut first = Batch::default();
        first.put_key("d", "a", &record(1));
        first.put_key("d", "b", &record(1));
        let mut second = Batch::default();
        second.put_key("d", "b", &record(2));
        second.delete_key("d", "a");
        let empty = Batch::default();
        let merged = merge_batches([&first.inner, &empty.inner, &second.inner].into_iter());
        assert_eq!(merged.len(), 4);
        meta.db.write(merged).expect("write merged batch");
        assert_eq!(meta.key("d", "a").unwrap(), None);
        assert_eq!(meta.key("d", "b").unwrap(), Some(record(2)));
    }

    #[test]
    fn inline_blobs_survive_flush_to_blob_files_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blob = |i: u8| BlobRecord {
            size_bytes: 4096,
            block_crcs: vec![u32::from(i)],
            inline: Some(vec![i; 4096]),
        };
        {
            let meta = Meta::open(dir.path()).expect("open");
            let mut batch = Batch::default();
            for i in 0..50u8 {
                batch.put_blob(&Digest([i; 32]), &blob(i));
            }
            block_on(meta.commit(batch)).expect("commit");
            meta.db.flush().expect("flush memtable to table and blob files");
        }
        let meta = Meta::open(dir.path()).expect("reopen");
        for i in 0..50u8 {
            assert_eq!(meta.blob(&Digest([i; 32])).unwrap(), Some(blob(i)));
        }
    }

    #[test]
    fn gc_cursor_walks_every_candidate_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let mut batch = Batch::default();
        for i in 0..10u8 {
            batch.add_gc_candidate(&Digest([i; 32]));
        }
        meta.write_unsynced(batch).unwrap();
        let first = meta.gc_candidates_after(None, 4).unwrap();
        let second = meta.gc_candidates_after(first.last(), 4).unwrap();
        let third = meta.gc_candidates_after(second.last(), 4).unwrap();
        let seen: Vec<u8> = [first, second, third].concat().iter().map(|d| d.0[0]).collect();
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn fids_list_in_numeric_order_and_upload_refs_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let mut batch = Batch::default();
        for fid in [300u64, 2, 1 << 40, 7] {
            batch.put_fid(fid, "d", &format!("k{fid}"));
        }
        batch.add_upload_ref(&Digest([5; 32]), 9);
        block_on(meta.commit(batch)).expect("commit");
        let fids: Vec<u64> = meta.list_fids(2, 10).unwrap().iter().map(|f| f.0).collect();
        assert_eq!(fids, [7, 300, 1 << 40]);
        assert_eq!(meta.list_fids(0, 2).unwrap()[1], (7, "d".into(), "k7".into()));
        assert_eq!(meta.fid_key(300).unwrap(), Some(("d".into(), "k300".into())));
        assert!(meta.has_refs(&Digest([5; 32])).unwrap());
        let mut batch = Batch::default();
        batch.remove_upload_ref(&Digest([5; 32]), 9);
        batch.delete_fid(300);
        block_on(meta.commit(batch)).expect("commit");
        assert!(!meta.has_refs(&Digest([5; 32])).unwrap());
        assert_eq!(meta.fid_key(300).unwrap(), None);
    }

    #[test]
    fn collections_and_props_list_by_prefix() {
        use crate::props::DeadProp;
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = Meta::open(dir.path()).expect("open");
        let made = CollectionRecord { created: Version { hlc: 5, node_id: 1 } };
        let mut batch = Batch::default();
        for prefix in ["a/", "a/b/", "a/c/d/", "ab/"] {
            batch.put_collection("d", prefix, &made);
        }
        batch.put_collection("e", "a/x/", &made);
        batch.put_key("d", "a/k", &record(1));
        let mut props = PropsRecord::default();
        props.set(DeadProp { namespace: "urn:x".into(), name: "n".into(), value: "v".into() });
        batch.put_props("d", "a/k", &props);
        block_on(meta.commit(batch)).expect("commit");
        let names = |items: Vec<(String, CollectionRecord)>| -> Vec<String> {
            items.into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(
            names(meta.list_collections_from("d", "a/", "", 10).unwrap()),
            ["a/", "a/b/", "a/c/d/"]
        );
        assert_eq!(names(meta.list_collections_from("d", "a/", "a/b0", 10).unwrap()), ["a/c/d/"]);
        assert_eq!(names(meta.list_collections_from("d", "a/", "", 1).unwrap()), ["a/"]);
        assert!(meta.any_collection_under("d", "a/c/").unwrap());
        assert!(!meta.any_collection_under("d", "a/x/").unwrap());
        assert!(meta.any_key_under("d", "a/").unwrap());
        assert!(!meta.any_key_under("d", "a/b/").unwrap());
        assert_eq!(meta.collection("d", "a/b/").unwrap(), Some(made));
        assert_eq!(meta.collection("d", "a/c/").unwrap(), None);
        assert_eq!(meta.props("d", "a/k").unwrap(), props);
        assert_eq!(meta.list_keys_from("d", "a/", "a/k\0", 10).unwrap().len(), 0);
        let mut batch = Batch::default();
        batch.put_props("d", "a/k", &PropsRecord::default());
        block_on(meta.commit(batch)).expect("commit");
        assert_eq!(meta.props("d", "a/k").unwrap(), PropsRecord::default());
    }

    #[test]
    fn prefix_successor_skips_ff() {
        assert_eq!(prefix_successor(b"ab"), b"ac");
        assert_eq!(prefix_successor(&[1, 0xff]), [2]);
    }
}
