//! One shard: a glommio executor pinned to a core, and the metadata
//! changes of the keys and blobs it owns.
//!
//! A key belongs to shard `hash(domain, key) % shards`, a blob file to
//! shard `sha256 % shards`. All changes of a key run on its shard, one at a
//! time per key, so records are read-modified-written without locks shared
//! between threads. Work for another shard crosses the glommio channel
//! mesh as a `ShardRequest`; the bytes of an upload never do.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cairn_engine::meta::Batch;
use cairn_engine::props::{PROPS_BYTES_MAX, PROPS_COUNT_MAX};
use cairn_engine::{
    BlobRecord, CollectionRecord, DeadProp, Digest, KeyRecord, KeyState, Meta, MetaError,
    PropsRecord, Version, Written,
};
use cairn_raft::{ClusterState, Command, MemberState};
use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::sync::Semaphore;

use crate::cache::BlobCache;
use crate::error::NodeError;
use crate::node::Node;
use crate::pending::{KeyOp, KeyOpDone};

/// Copy bytes a shard may take in ahead of its budget.
const COPY_BURST: Duration = Duration::from_millis(100);
/// How often the collector looks for blobs nobody refers to.
const GC_INTERVAL: Duration = Duration::from_millis(500);
/// Blobs examined per collector pass.
const GC_BATCH_MAX: usize = 256;
/// A shard that is never idle still collects this often.
const GC_BUSY_INTERVAL: Duration = Duration::from_secs(10);

/// The commit of a finished upload, sent to the key's shard.
pub struct PutCommit {
    pub domain: String,
    pub key: String,
    /// The upload's record, when it wrote one.
    pub upload_id: Option<String>,
    pub written: Written,
    /// The bytes, when the blob is small enough to live in its record.
    pub inline: Option<Vec<u8>>,
    pub class: String,
    pub replicas: u32,
    pub content_type: String,
    /// Response headers the version keeps (`KeyRecord::headers`).
    pub headers: String,
    /// The MogileFS fid of the new version; its clock value when `None`.
    pub fid: Option<u64>,
    /// A MogileFS upload this commit closes: its pending record and the
    /// reference it held on the blob go in the same batch.
    pub closes_upload: Option<u64>,
    /// A copy made by replication keeps the version it was written with;
    /// a new upload (`None`) gets a new one from this node's clock.
    pub version: Option<Version>,
    /// A version the new one must pass besides the one held here: the
    /// newest the key's homes know (a write elsewhere).
    pub floor: Option<Version>,
}

/// A COPY of a key that refers to the same blob (no bytes are copied).
pub struct CopyCommit {
    pub domain: String,
    pub key: String,
    /// The source's record, read before the copy; its blob is pinned.
    pub source: KeyRecord,
    /// The dead properties the target gets (replacing its own).
    pub props: PropsRecord,
}

/// A change of a WebDAV collection's record, made on the prefix's shard.
pub enum CollectionOp {
    /// MKCOL: made only if nothing exists at the prefix yet.
    Make,
    /// Makes (or keeps) the record and sets its dead properties.
    Copy(PropsRecord),
    /// Drops the record and its dead properties.
    Remove,
}

/// One step of a PROPPATCH, applied in order.
pub enum PropOp {
    Set(DeadProp),
    Remove { namespace: String, name: String },
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Work one shard asks of another.
pub enum ShardRequest {
    Place {
        tmp: Option<PathBuf>,
        sha256: Digest,
        reply: Reply<()>,
    },
    Unpin {
        sha256: Digest,
    },
    CommitPut {
        put: Box<PutCommit>,
        reply: Reply<KeyRecord>,
    },
    Delete {
        domain: String,
        key: String,
        expected: Option<Version>,
        reply: Reply<KeyRecord>,
    },
    CommitCopy {
        copy: Box<CopyCommit>,
        reply: Reply<Option<KeyRecord>>,
    },
    Collection {
        domain: String,
        prefix: String,
        op: CollectionOp,
        reply: Reply<bool>,
    },
    PatchProps {
        domain: String,
        path: String,
        ops: Vec<PropOp>,
        reply: Reply<PropsRecord>,
    },
    /// A change of a pending upload, or of a key's name or class.
    KeyOp {
        op: Box<KeyOp>,
        reply: Reply<KeyOpDone>,
    },
}

pub struct Shard {
    pub id: usize,
    pub node: Arc<Node>,
    senders: Senders<ShardRequest>,
    /// Blobs with an upload between placement and commit: the collector
    /// must not remove them even though no key refers to them yet.
    pins: RefCell<HashMap<Digest, u32>>,
    /// Blobs whose removal is under way, closed when it is done.
    removals: RefCell<HashMap<Digest, Rc<Semaphore>>>,
    key_locks: RefCell<HashMap<(String, String), Rc<Semaphore>>>,
    /// Requests being served; the collector runs only when this is zero.
    active_requests: Cell<usize>,
    pub cache: RefCell<BlobCache>,
    /// A copy of the applied cluster state and the generation it is of, so
    /// that PUTs read classes without taking a lock shared between cores.
    cluster: RefCell<(u64, Rc<ClusterState>)>,
    /// Domains whose creation this shard has proposed and not seen yet.
    domains_proposed: RefCell<HashSet<String>>,
    /// Copies being pulled into this shard: (domain, key, version).
    pub pulls: RefCell<HashSet<(String, String, Version)>>,
    /// When this shard's share of the copy budget is next free.
    pub copy_budget: Cell<std::time::Instant>,
}

impl Shard {
    pub fn new(id: usize, node: Arc<Node>, senders: Senders<ShardRequest>) -> Rc<Shard> {
        let cache_bytes = node.config.cache_size_bytes / node.config.shard_count;
        Rc::new(Shard {
            id,
            node,
            senders,
            pins: RefCell::default(),
            removals: RefCell::default(),
            key_locks: RefCell::default(),
            active_requests: Cell::new(0),
            cache: RefCell::new(BlobCache::new(cache_bytes)),
            cluster: RefCell::new((u64::MAX, Rc::default())),
            domains_proposed: RefCell::default(),
            copy_budget: Cell::new(std::time::Instant::now()),
            pulls: RefCell::default(),
        })
    }

    /// Waits so that background copies into this shard stay within its
    /// share of `--copy-rate`, having just taken in `bytes`.
    pub async fn pace_copy(&self, bytes: usize) {
        let rate = self.node.config.copy_rate_bytes_per_s / self.shard_count() as u64;
        if rate == 0 {
            return;
        }
        let now = std::time::Instant::now();
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let free_at = self.copy_budget.get().max(now) + cost;
        self.copy_budget.set(free_at);
        // A little credit is allowed, so that small copies are not slowed.
        let wait = free_at.saturating_duration_since(now);
        if wait > COPY_BURST {
            glommio::timer::sleep(wait - COPY_BURST).await;
        }
    }

    /// The applied cluster state, as of the last change this shard saw.
    /// Whether clients' new versions may be stored here: not on a proxy,
    /// nor on a member an operator set `readonly` or `drain`; the
    /// frontends hand those writes to a store instead.
    pub fn takes_new_data(&self) -> bool {
        let me = self.node.clock.node_id();
        let state = self.cluster_state().member(me).map(|record| record.state);
        !self.node.config.no_store
            && !matches!(state, Some(MemberState::Readonly | MemberState::Drain))
    }

    pub fn cluster_state(&self) -> Rc<ClusterState> {
        let view = self.node.control.view();
        let generation = view.generation();
        let mut cached = self.cluster.borrow_mut();
        if cached.0 != generation {
            *cached = (generation, Rc::new(view.to_state()));
        }
        cached.1.clone()
    }

    /// Registers `domain` in the cluster state after its first PUT, in the
    /// background: a PUT never waits for raft (docs/design.md §1, §7). Retried by
    /// the next PUT if it fails (no leader, say).
    pub fn ensure_domain(self: &Rc<Self>, domain: &str) {
        if self.cluster_state().has_domain(domain)
            || !self.domains_proposed.borrow_mut().insert(domain.to_owned())
        {
            return;
        }
        let (shard, domain) = (self.clone(), domain.to_owned());
        glommio::spawn_local(async move {
            let command = Command::CreateDomain { name: domain.clone() };
            match shard.node.control.submit(command).await {
                Ok(_) => {}
                Err(error) => tracing::debug!(%domain, %error, "cannot register the domain yet"),
            }
            shard.domains_proposed.borrow_mut().remove(&domain);
        })
        .detach();
    }

    /// Counts a request as active until the returned guard drops (also
    /// when a vanished client makes hyper drop the request's future).
    pub fn enter_request(&self) -> ActiveRequest<'_> {
        self.active_requests.set(self.active_requests.get() + 1);
        ActiveRequest(self)
    }

    fn shard_count(&self) -> usize {
        self.node.config.shard_count
    }

    pub fn key_shard(&self, domain: &str, key: &str) -> usize {
        cairn_engine::key_shard(domain, key, self.shard_count())
    }

    pub fn blob_shard(&self, sha256: &Digest) -> usize {
        (sha256.prefix_u64() % self.shard_count() as u64) as usize
    }

    /// Serves the requests other shards send to this one.
    pub fn serve_mesh(self: &Rc<Self>, mut receivers: Receivers<ShardRequest>) {
        for (_, receiver) in receivers.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(request) = receiver.recv().await {
                    let shard = shard.clone();
                    glommio::spawn_local(async move { shard.serve_request(request).await })
                        .detach();
                }
            })
            .detach();
        }
    }

    async fn serve_request(&self, request: ShardRequest) {
        match request {
            ShardRequest::Place { tmp, sha256, reply } => {
                let _ = reply.send(self.place_local(tmp, sha256).await);
            }
            ShardRequest::Unpin { sha256 } => self.unpin_local(&sha256),
            ShardRequest::CommitPut { put, reply } => {
                let _ = reply.send(self.commit_put_local(*put).await);
            }
            ShardRequest::Delete { domain, key, expected, reply } => {
                let _ = reply.send(self.delete_local(&domain, &key, expected).await);
            }
            ShardRequest::CommitCopy { copy, reply } => {
                let _ = reply.send(self.commit_copy_local(*copy).await);
            }
            ShardRequest::Collection { domain, prefix, op, reply } => {
                let _ = reply.send(self.collection_local(&domain, &prefix, op).await);
            }
            ShardRequest::PatchProps { domain, path, ops, reply } => {
                let _ = reply.send(self.patch_props_local(&domain, &path, ops).await);
            }
            ShardRequest::KeyOp { op, reply } => {
                let _ = reply.send(crate::pending::run(self, *op).await);
            }
        }
    }

    /// Runs the request `make` builds on shard `target`: at once when that
    /// is this shard, else through the mesh; answers its reply.
    async fn ask<T>(
        &self,
        target: usize,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        let request = make(reply);
        if target == self.id {
            self.serve_request(request).await;
        } else if self.senders.send_to(target, request).await.is_err() {
            return Err(NodeError::ShardGone(target));
        }
        cairn_cluster::from_other_thread(answer).await.map_err(|_| NodeError::ShardGone(target))?
    }

    /// Pins a blob on its shard until [`Shard::unpin`], and moves a finished
    /// upload's temp file (if it has one) to the blob file.
    pub async fn place(&self, tmp: Option<PathBuf>, sha256: Digest) -> Result<(), NodeError> {
        let target = self.blob_shard(&sha256);
        self.ask(target, |reply| ShardRequest::Place { tmp, sha256, reply }).await
    }

    pub async fn unpin(&self, sha256: Digest) {
        let target = self.blob_shard(&sha256);
        if target == self.id {
            return self.unpin_local(&sha256);
        }
        if self.senders.send_to(target, ShardRequest::Unpin { sha256 }).await.is_err() {
            tracing::warn!(%sha256, target, "could not unpin blob: shard gone");
        }
    }

    /// Commits a finished upload as the key's new version (on the key's shard).
    pub async fn commit_put(&self, put: PutCommit) -> Result<KeyRecord, NodeError> {
        let target = self.key_shard(&put.domain, &put.key);
        self.ask(target, |reply| ShardRequest::CommitPut { put: Box::new(put), reply }).await
    }

    /// Removes a key if its version is still `expected` (any when `None`).
    pub async fn delete_if(
        &self,
        domain: String,
        key: String,
        expected: Option<Version>,
    ) -> Result<KeyRecord, NodeError> {
        let target = self.key_shard(&domain, &key);
        self.ask(target, |reply| ShardRequest::Delete { domain, key, expected, reply }).await
    }

    /// Makes `copy.key` refer to the source's blob (on the target key's
    /// shard); answers the record it replaced. The caller keeps the blob
    /// pinned (see [`Shard::place`]) until this returns.
    pub async fn commit_copy(&self, copy: CopyCommit) -> Result<Option<KeyRecord>, NodeError> {
        let target = self.key_shard(&copy.domain, &copy.key);
        self.ask(target, |reply| ShardRequest::CommitCopy { copy: Box::new(copy), reply }).await
    }

    /// Changes a collection record on the prefix's shard; for `Make`,
    /// answers whether it was made (false: something exists there).
    pub async fn collection(
        &self,
        domain: String,
        prefix: String,
        op: CollectionOp,
    ) -> Result<bool, NodeError> {
        let target = self.key_shard(&domain, &prefix);
        self.ask(target, |reply| ShardRequest::Collection { domain, prefix, op, reply }).await
    }

    /// Applies a PROPPATCH to the dead properties of a key or (`path`
    /// ending in `/`) a collection, all or nothing, on the path's shard;
    /// answers the properties it leaves.
    pub async fn patch_props(
        &self,
        domain: String,
        path: String,
        ops: Vec<PropOp>,
    ) -> Result<PropsRecord, NodeError> {
        let target = self.key_shard(&domain, &path);
        self.ask(target, |reply| ShardRequest::PatchProps { domain, path, ops, reply }).await
    }

    /// Runs a change of a pending upload or of one key's name or class
    /// (the MogileFS protocol's) on the key's shard.
    pub async fn key_op(&self, op: KeyOp) -> Result<KeyOpDone, NodeError> {
        let (domain, key) = op.target();
        let target = self.key_shard(domain, key);
        self.ask(target, |reply| ShardRequest::KeyOp { op: Box::new(op), reply }).await
    }

    async fn place_local(&self, tmp: Option<PathBuf>, sha256: Digest) -> Result<(), NodeError> {
        // Pinned before the first await: from here the collector leaves
        // this blob alone. A removal it already decided on is finished
        // first, so the placement and the commit that follow come after it.
        *self.pins.borrow_mut().entry(sha256).or_insert(0) += 1;
        let removal = self.removals.borrow().get(&sha256).cloned();
        if let Some(removal) = removal {
            // Closed when the removal is done; the error is that signal.
            let _ = removal.acquire(1).await;
        }
        let Some(tmp) = tmp else {
            return Ok(());
        };
        let data = self.node.data.clone();
        let placed =
            glommio::executor().spawn_blocking(move || data.place_blocking(&tmp, &sha256)).await;
        if let Err(error) = placed {
            self.unpin_local(&sha256);
            return Err(error.into());
        }
        Ok(())
    }

    fn unpin_local(&self, sha256: &Digest) {
        let mut pins = self.pins.borrow_mut();
        if let Some(count) = pins.get_mut(sha256) {
            *count -= 1;
            if *count == 0 {
                pins.remove(sha256);
            }
        }
    }

    async fn commit_put_local(&self, put: PutCommit) -> Result<KeyRecord, NodeError> {
        let _turn = self.key_turn(&put.domain, &put.key).await;
        self.commit_put_in_turn(put).await
    }

    /// Commits a new version of a key; the caller holds the key's turn.
    pub async fn commit_put_in_turn(&self, put: PutCommit) -> Result<KeyRecord, NodeError> {
        let old = self.node.meta.key(&put.domain, &put.key)?;
        let version = match put.version {
            Some(copied) => {
                self.node.clock.observe(copied);
                if let Some(old) = old.as_ref().filter(|old| old.version >= copied) {
                    // Last writer wins: a newer version is here already.
                    let mut batch = Batch::default();
                    if old.sha256 != put.written.sha256 {
                        batch.add_gc_candidate(&put.written.sha256);
                    }
                    if let Some(upload_id) = &put.upload_id {
                        batch.delete_upload(&put.domain, &put.key, upload_id);
                    }
                    self.node.meta.write_unsynced(batch)?;
                    return Ok(old.clone());
                }
                copied
            }
            // After the version it replaces, whatever the wall clock says.
            None => self.node.clock.next_after(old.as_ref().map(|old| old.version).max(put.floor)),
        };
        let record = KeyRecord {
            state: state_for(put.replicas),
            version,
            sha256: put.written.sha256,
            size_bytes: put.written.size_bytes,
            class: put.class,
            content_type: put.content_type,
            headers: put.headers,
            // A copy's fid is this node's (the writer's clock value could
            // be another local key's fid).
            fid: put.fid.unwrap_or_else(|| {
                if put.version.is_some() {
                    self.node.clock.now().hlc
                } else {
                    version.hlc
                }
            }),
        };
        let mut batch = Batch::default();
        batch.put_domain(&put.domain);
        batch.put_key_to_announce(&put.domain, &put.key, &record);
        batch.put_blob(
            &record.sha256,
            &BlobRecord {
                size_bytes: record.size_bytes,
                block_crcs: put.written.block_crcs,
                inline: put.inline,
            },
        );
        batch.add_ref(&record.sha256, &put.domain, &put.key);
        batch.put_fid(record.fid, &put.domain, &put.key);
        if let Some(upload_id) = &put.upload_id {
            batch.delete_upload(&put.domain, &put.key, upload_id);
        }
        if let Some(fid) = put.closes_upload {
            batch.remove_upload_ref(&record.sha256, fid);
            batch.delete_pending_upload(fid);
        }
        if let Some(old) = &old {
            if old.sha256 != record.sha256 {
                batch.remove_ref(&old.sha256, &put.domain, &put.key);
                batch.add_gc_candidate(&old.sha256);
            }
            if old.fid != record.fid {
                self.forget_fid(&mut batch, old.fid, &put.domain, &put.key)?;
            }
        }
        self.node.meta.commit(batch).await?;
        self.node.stats.replace(old.as_ref(), Some(&record));
        // The key's homes learn that this node holds the new version.
        self.node.control.announce_local(&put.domain, &put.key);
        Ok(record)
    }

    /// Sets the state of `version` of a key, if that is still the key's
    /// version here. Runs on the key's shard.
    pub async fn set_state_if(
        &self,
        domain: &str,
        key: &str,
        version: Version,
        state: KeyState,
    ) -> Result<(), NodeError> {
        debug_assert_eq!(self.key_shard(domain, key), self.id, "runs on the key's shard");
        let _turn = self.key_turn(domain, key).await;
        let Some(old) = self.node.meta.key(domain, key)? else { return Ok(()) };
        if old.version != version || old.state == state {
            return Ok(());
        }
        let record = KeyRecord { state, ..old.clone() };
        let mut batch = Batch::default();
        batch.put_key(domain, key, &record);
        self.node.meta.commit(batch).await?;
        self.node.stats.replace(Some(&old), Some(&record));
        Ok(())
    }

    async fn delete_local(
        &self,
        domain: &str,
        key: &str,
        expected: Option<Version>,
    ) -> Result<KeyRecord, NodeError> {
        let _turn = self.key_turn(domain, key).await;
        let old = self.node.meta.key(domain, key)?.ok_or(NodeError::NotFound)?;
        if expected.is_some_and(|version| version != old.version) {
            return Err(NodeError::Changed);
        }
        let mut batch = Batch::default();
        batch.delete_key(domain, key);
        batch.delete_props(domain, key);
        batch.remove_ref(&old.sha256, domain, key);
        batch.add_gc_candidate(&old.sha256);
        self.forget_fid(&mut batch, old.fid, domain, key)?;
        self.node.meta.commit(batch).await?;
        self.node.stats.replace(Some(&old), None);
        Ok(old)
    }

    /// Drops the fid index entry of a version leaving `domain`/`key`, unless
    /// it already names another key (the version was renamed there).
    pub fn forget_fid(
        &self,
        batch: &mut Batch,
        fid: u64,
        domain: &str,
        key: &str,
    ) -> Result<(), NodeError> {
        let indexed = self.node.meta.fid_key(fid)?;
        if indexed.is_none_or(|(d, k)| d == domain && k == key) {
            batch.delete_fid(fid);
        }
        Ok(())
    }

    async fn commit_copy_local(&self, copy: CopyCommit) -> Result<Option<KeyRecord>, NodeError> {
        let _turn = self.key_turn(&copy.domain, &copy.key).await;
        let meta = &self.node.meta;
        // Pinned by the caller: if the record is here now, the collector
        // leaves the blob alone until the new reference is committed.
        if meta.blob(&copy.source.sha256)?.is_none() {
            return Err(NodeError::NotFound);
        }
        let old = meta.key(&copy.domain, &copy.key)?;
        // A copy is a new version of its own, with a fid of its own.
        let version = self.node.clock.next_after(old.as_ref().map(|old| old.version));
        // One copy so far, whatever the source had.
        let replicas = self
            .cluster_state()
            .replicas(&copy.domain, &copy.source.class)
            .unwrap_or(cairn_raft::DEFAULT_CLASS_REPLICAS);
        let state = state_for(replicas);
        let record = KeyRecord { version, fid: version.hlc, state, ..copy.source };
        let mut batch = Batch::default();
        batch.put_domain(&copy.domain);
        batch.put_key_to_announce(&copy.domain, &copy.key, &record);
        batch.put_fid(record.fid, &copy.domain, &copy.key);
        batch.add_ref(&record.sha256, &copy.domain, &copy.key);
        batch.put_props(&copy.domain, &copy.key, &copy.props);
        if let Some(old) = &old {
            if old.sha256 != record.sha256 {
                batch.remove_ref(&old.sha256, &copy.domain, &copy.key);
                batch.add_gc_candidate(&old.sha256);
            }
            self.forget_fid(&mut batch, old.fid, &copy.domain, &copy.key)?;
        }
        meta.commit(batch).await?;
        self.node.stats.replace(old.as_ref(), Some(&record));
        self.node.control.announce_local(&copy.domain, &copy.key);
        Ok(old)
    }

    async fn collection_local(
        &self,
        domain: &str,
        prefix: &str,
        op: CollectionOp,
    ) -> Result<bool, NodeError> {
        assert!(prefix.ends_with('/'), "collection prefixes end with a slash");
        let _turn = self.key_turn(domain, prefix).await;
        let meta = &self.node.meta;
        let mut batch = Batch::default();
        match op {
            CollectionOp::Make => {
                let file = prefix.strip_suffix('/').unwrap_or(prefix);
                if collection_exists(meta, domain, prefix)? || meta.key(domain, file)?.is_some() {
                    return Ok(false);
                }
                batch.put_domain(domain);
                batch.put_collection(domain, prefix, &self.made_now());
            }
            CollectionOp::Copy(props) => {
                batch.put_domain(domain);
                let made = meta.collection(domain, prefix)?.unwrap_or_else(|| self.made_now());
                batch.put_collection(domain, prefix, &made);
                batch.put_props(domain, prefix, &props);
            }
            CollectionOp::Remove => {
                batch.delete_collection(domain, prefix);
                batch.delete_props(domain, prefix);
            }
        }
        meta.commit(batch).await?;
        Ok(true)
    }

    async fn patch_props_local(
        &self,
        domain: &str,
        path: &str,
        ops: Vec<PropOp>,
    ) -> Result<PropsRecord, NodeError> {
        let _turn = self.key_turn(domain, path).await;
        let meta = &self.node.meta;
        let mut batch = Batch::default();
        if path.ends_with('/') {
            if !collection_exists(meta, domain, path)? {
                return Err(NodeError::NotFound);
            }
            // Props of a collection that exists only through its keys would
            // outlive it; a record makes it exist on its own.
            if meta.collection(domain, path)?.is_none() {
                batch.put_collection(domain, path, &self.made_now());
            }
        } else if meta.key(domain, path)?.is_none() {
            return Err(NodeError::NotFound);
        }
        let props = apply_prop_ops(meta.props(domain, path)?, ops)?;
        batch.put_props(domain, path, &props);
        meta.commit(batch).await?;
        Ok(props)
    }

    /// Replaces the dead properties kept beside a key held here (another
    /// node's PROPPATCH, or a new copy's source's); false when the key is
    /// not here.
    pub async fn put_props_local(&self, domain: &str, path: &str, props: &PropsRecord) -> bool {
        let _turn = self.key_turn(domain, path).await;
        let meta = &self.node.meta;
        if !matches!(meta.key(domain, path), Ok(Some(_))) {
            return false;
        }
        let mut batch = Batch::default();
        batch.put_props(domain, path, props);
        meta.commit(batch).await.is_ok()
    }

    fn made_now(&self) -> CollectionRecord {
        CollectionRecord { created: self.node.clock.now() }
    }

    /// Waits until no other change of this key runs on this shard.
    pub async fn key_turn(&self, domain: &str, key: &str) -> KeyTurn<'_> {
        let id = (domain.to_string(), key.to_string());
        let lock = self
            .key_locks
            .borrow_mut()
            .entry(id.clone())
            .or_insert_with(|| Rc::new(Semaphore::new(1)))
            .clone();
        let permit = lock.acquire_static_permit(1).await;
        KeyTurn { shard: self, id, _permit: permit.expect("key semaphores are never closed") }
    }

    /// Removes blob files no key refers to, a bounded batch at a time and
    /// only while this shard serves no request (the disk is idle).
    pub async fn collect_garbage(self: Rc<Self>) {
        let mut cursor: Option<Digest> = None;
        let mut last_pass = std::time::Instant::now();
        loop {
            glommio::timer::sleep(GC_INTERVAL).await;
            // Idle shards collect at once; a shard never idle (a long upload)
            // still collects, less often.
            if self.active_requests.get() > 0 && last_pass.elapsed() < GC_BUSY_INTERVAL {
                continue;
            }
            last_pass = std::time::Instant::now();
            match self.node.meta.gc_candidates_after(cursor.as_ref(), GC_BATCH_MAX) {
                Ok(batch) => {
                    // Start over from the front once the end of the list is reached.
                    cursor = if batch.len() < GC_BATCH_MAX { None } else { batch.last().copied() };
                    for sha256 in batch {
                        if let Err(error) = self.collect_one(&sha256).await {
                            tracing::warn!(%sha256, %error, "could not collect a blob");
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "could not list blobs to collect"),
            }
        }
    }

    /// Removes one blob if this shard owns it, nothing pins it and no key
    /// refers to it; drops its candidate mark once decided. The unlink runs
    /// on the blocking pool (a large file can take long to free); while it
    /// does, the blob is marked as being removed and a placement waits.
    async fn collect_one(&self, sha256: &Digest) -> Result<(), NodeError> {
        let owned = self.blob_shard(sha256) == self.id;
        if !owned || self.pins.borrow().contains_key(sha256) {
            return Ok(());
        }
        let meta = &self.node.meta;
        let mut batch = Batch::default();
        batch.remove_gc_candidate(sha256);
        // The decision is taken with no await between the checks and the
        // mark: a placement pins first, so it either is seen here or waits.
        if meta.has_refs(sha256)? {
            meta.write_unsynced(batch)?;
            return Ok(());
        }
        let removal = Rc::new(Semaphore::new(0));
        self.removals.borrow_mut().insert(*sha256, removal.clone());
        let (data, target) = (self.node.data.clone(), *sha256);
        let unlinked =
            glommio::executor().spawn_blocking(move || data.remove_blob_blocking(&target)).await;
        let recorded = unlinked.map_err(NodeError::from).and_then(|_| {
            batch.delete_blob(sha256);
            meta.write_unsynced(batch).map_err(NodeError::from)
        });
        self.removals.borrow_mut().remove(sha256);
        removal.close();
        recorded
    }
}

pub struct ActiveRequest<'a>(&'a Shard);

impl Drop for ActiveRequest<'_> {
    fn drop(&mut self) {
        self.0.active_requests.set(self.0.active_requests.get() - 1);
    }
}

/// The state of a freshly committed version: a class that wants one copy
/// is satisfied by this node's.
pub fn state_for(replicas: u32) -> KeyState {
    if replicas <= 1 {
        KeyState::Stored
    } else {
        KeyState::NeedReplication
    }
}

/// A turn to change one key; ends when dropped.
pub struct KeyTurn<'a> {
    shard: &'a Shard,
    id: (String, String),
    _permit: glommio::sync::StaticPermit,
}

impl Drop for KeyTurn<'_> {
    fn drop(&mut self) {
        let mut locks = self.shard.key_locks.borrow_mut();
        // Ours plus the map's: nobody else waits, so the entry can go.
        if locks.get(&self.id).is_some_and(|lock| Rc::strong_count(lock) <= 2) {
            locks.remove(&self.id);
        }
    }
}

/// Whether a WebDAV collection exists: the domain's root always does;
/// any other while a key or a collection record starts with its prefix.
pub fn collection_exists(meta: &Meta, domain: &str, prefix: &str) -> Result<bool, MetaError> {
    Ok(prefix.is_empty()
        || meta.any_key_under(domain, prefix)?
        || meta.any_collection_under(domain, prefix)?)
}

/// A PROPPATCH's steps applied in order to `props`, all or nothing.
pub fn apply_prop_ops(mut props: PropsRecord, ops: Vec<PropOp>) -> Result<PropsRecord, NodeError> {
    for op in ops {
        match op {
            PropOp::Set(prop) => props.set(prop),
            PropOp::Remove { namespace, name } => props.remove(&namespace, &name),
        }
    }
    if props.props.len() > PROPS_COUNT_MAX {
        return Err(NodeError::Full("too many dead properties on one resource"));
    }
    if props.encoded_len() > PROPS_BYTES_MAX {
        return Err(NodeError::Full("dead properties of one resource exceed 64 KiB"));
    }
    Ok(props)
}
