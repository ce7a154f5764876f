//! The raft thread's part of replication (docs/design.md §4–§6): the home role
//! (index records of the keys this node is home of), announcing this
//! node's copies to their homes, serving blob bytes to peers, and handing
//! copy commands to the shard that owns the key.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_engine::reader::FileIdentity;
use cairn_engine::record::HEADERS_LEN_MAX;
use cairn_engine::{Digest, IndexRecord, KeyState, Version};
use cairn_net::{FrameBytes, FrameHeader, IndexEntry, Message};
use cairn_raft::{MemberState, NodeId};
use futures_lite::AsyncWriteExt;

use crate::placement;
use crate::plane::Core;
use crate::work::ShardWork;

/// Keys whose location a node remembers.
pub const LOCATION_CACHE_ENTRIES: usize = 64 * 1024;
/// How long a remembered location is trusted without asking the homes.
const LOCATION_TTL: Duration = Duration::from_secs(5);

/// None of a key's homes (nor any other member) could be asked.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("none of the key's home nodes could be reached")]
pub struct HomesUnreachable;

/// Homes per key (docs/design.md §5).
pub const HOME_COUNT: usize = 3;
/// How long a home may take to answer an index request.
pub const INDEX_TIMEOUT: Duration = Duration::from_secs(2);
/// Index records a home looks at per `NeedsQuery`.
const NEEDS_SCAN_MAX: usize = 4096;
/// Bytes read from disk at a time when serving a blob (whole blocks), and
/// the most one blob-body frame carries.
const SERVE_CHUNK_BYTES: usize = 1 << 20;

impl Core {
    /// Whether this node is the first of the key's homes that is not down:
    /// the one that sends the notices all homes would otherwise send.
    fn first_live_home(&self, domain: &str, key: &str) -> bool {
        let first = self.homes(domain, key).into_iter().find(|(id, _)| !self.is_down(*id));
        first.is_some_and(|(id, _)| id == self.id())
    }

    /// The key's homes that are not dead, with their peer addresses.
    pub fn homes(&self, domain: &str, key: &str) -> Vec<(NodeId, String)> {
        let members: Vec<(NodeId, String)> = self.view.read(|state| {
            state
                .members()
                .iter()
                .filter(|(_, record)| record.state != MemberState::Dead)
                .map(|(id, record)| (*id, record.member.peer.clone()))
                .collect()
        });
        let ids: Vec<NodeId> = members.iter().map(|(id, _)| *id).collect();
        placement::homes(&ids, domain, key, HOME_COUNT)
            .into_iter()
            .filter_map(|id| members.iter().find(|(m, _)| *m == id).cloned())
            .collect()
    }

    /// Copies a key's class wants, from the cluster state.
    pub fn wanted(&self, domain: &str, class: &str) -> u32 {
        self.view.read(|s| s.replicas(domain, class)).unwrap_or(cairn_raft::DEFAULT_CLASS_REPLICAS)
    }

    /// A home's side of `IndexUpdate`: merges and answers what it knows.
    pub fn index_update(&self, entry: &IndexEntry) -> Option<IndexEntry> {
        let node = &self.storage;
        let incoming = record_of(entry);
        let known = node.meta.index(&entry.domain, &entry.key).ok()?;
        let holders_before = known.as_ref().map_or(0, |k| k.holders.len());
        let (mut merged, replaced) = match known {
            Some(mut known) => {
                let before = known.clone();
                if !known.merge(&incoming) {
                    let wanted = self.wanted(&entry.domain, &known.class);
                    return Some(entry_of(&entry.domain, &entry.key, &known, wanted));
                }
                let replaced = (before.version < known.version).then_some(before);
                (known, replaced)
            }
            None => (incoming, None),
        };
        // The holders of the replaced version drop their copies.
        let stale: Vec<NodeId> = replaced.as_ref().map_or_else(Vec::new, |replaced| {
            replaced.holders.iter().copied().filter(|h| !merged.holders.contains(h)).collect()
        });
        if merged.deleted {
            // A tombstone lists the holders of older versions until each
            // confirms its copy is gone: it is not collected before
            // (`tombstones.rs`), so no such copy can bring the key back.
            for holder in &stale {
                if let Err(at) = merged.holders.binary_search(holder) {
                    merged.holders.insert(at, *holder);
                }
            }
        }
        let mut batch = cairn_engine::meta::Batch::default();
        batch.put_index(&entry.domain, &entry.key, &merged);
        // The index can be rebuilt from the holders' announcements, so it
        // is written without waiting for a sync. Not written is not told:
        // no answer, so the sender does not count this home.
        if let Err(error) = node.meta.write_unsynced(batch) {
            tracing::warn!(%error, "cannot write an index record");
            return None;
        }
        let wanted = self.wanted(&entry.domain, &merged.class);
        if !stale.is_empty() {
            let newer = entry_of(&entry.domain, &entry.key, &merged, 0);
            self.tell_superseded(stale, newer);
        }
        if !merged.deleted
            && holders_before < wanted as usize
            && merged.holders.len() >= wanted as usize
            && self.first_live_home(&entry.domain, &entry.key)
        {
            // Complete now: the holders that did not just announce learn it
            // here, not at their next anti-entropy pass.
            let others: Vec<NodeId> =
                merged.holders.iter().copied().filter(|h| !entry.holders.contains(h)).collect();
            let complete = entry_of(&entry.domain, &entry.key, &merged, wanted);
            self.tell_holders(others, complete, Notice::Stored);
        }
        Some(entry_of(&entry.domain, &entry.key, &merged, wanted))
    }

    /// This node's index record of a key; an error when it cannot be read
    /// (which is not "unknown").
    pub fn index_lookup(
        &self,
        domain: &str,
        key: &str,
    ) -> Result<Option<IndexEntry>, cairn_engine::MetaError> {
        let Some(known) = self.storage.meta.index(domain, key)? else { return Ok(None) };
        let wanted = self.wanted(domain, &known.class);
        Ok(Some(entry_of(domain, key, &known, wanted)))
    }

    /// Keys this node is a home of whose copy count is not their class's,
    /// up to `max`, continuing after the last record the previous call
    /// looked at (so a full answer skips nothing).
    pub fn needs(&self, max: usize) -> Vec<IndexEntry> {
        let node = &self.storage;
        let mut cursor = self.needs_cursor.lock().expect("needs cursor lock");
        let after = cursor.as_ref().map(|(d, k)| (d.as_str(), k.as_str()));
        let records = match node.meta.index_after(after, NEEDS_SCAN_MAX) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "cannot scan the index");
                return Vec::new();
            }
        };
        let (picked, next) = pick_window(records, NEEDS_SCAN_MAX, max, |domain, key, record| {
            self.needs_copies(domain, key, record)
        });
        *cursor = next;
        picked
            .into_iter()
            .map(|(domain, key, record)| {
                let wanted = self.wanted(&domain, &record.class);
                entry_of(&domain, &key, &record, wanted)
            })
            .collect()
    }

    /// Whether a home reports this record to the tracker: a live key whose
    /// lasting copies are not its class's count, or with a copy on a
    /// draining node (replaced, then dropped).
    fn needs_copies(&self, domain: &str, key: &str, record: &IndexRecord) -> bool {
        if record.deleted {
            return false;
        }
        let wanted = self.wanted(domain, &record.class);
        let (lasting, draining) = self.view.read(|s| {
            let state = |h: &NodeId| s.member(*h).map(|m| m.state);
            let lasting = record
                .holders
                .iter()
                .filter(|h| {
                    matches!(
                        state(h),
                        Some(MemberState::Alive | MemberState::Readonly | MemberState::Down)
                    )
                })
                .count();
            let draining = record.holders.iter().any(|h| state(h) == Some(MemberState::Drain));
            (lasting, draining)
        });
        if lasting == wanted as usize && !draining {
            return false;
        }
        // Any home reports it (the tracker merges): the first home may be
        // new and not know the key yet.
        self.homes(domain, key).iter().any(|(id, _)| *id == self.id())
    }

    /// Tells the key's homes that this node holds its current version;
    /// marks the key `stored` here once a home counts enough copies.
    pub async fn announce(&self, domain: String, key: String) -> Announced {
        self.forget_location(&domain, &key);
        let node = &self.storage;
        let Ok(Some(record)) = node.meta.key(&domain, &key) else { return Announced::NotHere };
        let held = IndexRecord {
            version: record.version,
            sha256: record.sha256,
            size_bytes: record.size_bytes,
            class: record.class.clone(),
            content_type: record.content_type.clone(),
            headers: record.headers.clone(),
            deleted: false,
            holders: vec![self.id()],
        };
        let entry = entry_of(&domain, &key, &held, 0);
        let live = self.homes(&domain, &key).iter().filter(|(id, _)| !self.is_down(*id)).count();
        let (told, best) = self.send_to_homes(&entry, IndexChange::Update).await;
        let Some(best) = best else { return Announced::Missed };
        let newest = Version { hlc: best.hlc, node_id: best.writer };
        if newest > record.version {
            // A newer version or a deletion won: this copy is stale.
            self.superseded(&best);
            return Announced::NotHere;
        }
        let complete = !best.deleted
            && best.hlc == entry.hlc
            && best.writer == entry.writer
            && best.holders.len() >= self.wanted(&domain, &record.class) as usize;
        if complete && record.state == KeyState::NeedReplication {
            let version = record.version;
            self.to_shard(
                &domain,
                &key,
                ShardWork::MarkStored { domain: domain.clone(), key: key.clone(), version },
            );
        }
        if told < live {
            return Announced::Missed;
        }
        Announced::Confirmed(record.version)
    }

    /// Tells each of `holders` that `newer` replaces what they hold.
    fn tell_superseded(&self, holders: Vec<NodeId>, newer: IndexEntry) {
        self.tell_holders(holders, newer, Notice::Superseded);
    }

    /// Sends `notice` about `entry` to each of `holders`, in the background
    /// (this node handles its own at once).
    fn tell_holders(&self, holders: Vec<NodeId>, entry: IndexEntry, notice: Notice) {
        let Some(core) = self.me.get().and_then(std::sync::Weak::upgrade) else { return };
        for holder in holders {
            let (core, entry) = (core.clone(), entry.clone());
            tokio::spawn(async move {
                if holder == core.id() {
                    match notice {
                        Notice::Superseded => core.superseded(&entry),
                        Notice::Stored => core.stored(&entry),
                    }
                    return;
                }
                let Some(address) =
                    core.view.read(|s| s.member(holder).map(|r| r.member.peer.clone()))
                else {
                    return;
                };
                let request = match notice {
                    Notice::Superseded => Message::Superseded { entry: Box::new(entry) },
                    Notice::Stored => Message::Stored { entry: Box::new(entry) },
                };
                if let Err(error) = core.peers.call(&address, &request, INDEX_TIMEOUT).await {
                    tracing::debug!(%error, ?notice, "cannot tell a holder");
                }
            });
        }
    }

    /// A holder's side of `Stored`: its copy of that version is `stored`.
    pub fn stored(&self, entry: &IndexEntry) {
        let version = Version { hlc: entry.hlc, node_id: entry.writer };
        let (domain, key) = (entry.domain.clone(), entry.key.clone());
        self.to_shard(&entry.domain, &entry.key, ShardWork::MarkStored { domain, key, version });
    }

    fn raft_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// A home's side of `IndexForget`.
    pub fn index_forget(&self, entry: &IndexEntry) {
        let node = &self.storage;
        let Ok(Some(mut known)) = node.meta.index(&entry.domain, &entry.key) else { return };
        if known.version != (Version { hlc: entry.hlc, node_id: entry.writer }) {
            return;
        }
        known.holders.retain(|h| !entry.holders.contains(h));
        let mut batch = cairn_engine::meta::Batch::default();
        batch.put_index(&entry.domain, &entry.key, &known);
        if let Err(error) = node.meta.write_unsynced(batch) {
            tracing::warn!(%error, "cannot write an index record");
        }
    }

    /// A holder's side of `DropCopy`: refuses a deposed tracker, drops the
    /// copy if it is still that version, and tells the key's homes.
    pub async fn drop_copy(&self, term: u64, entry: IndexEntry) -> Message {
        let seen = self.term_seen.fetch_max(term, Ordering::AcqRel).max(self.raft_term());
        if term < seen {
            return Message::Error { code: 409, message: format!("stale term {term} < {seen}") };
        }
        let version = Version { hlc: entry.hlc, node_id: entry.writer };
        let (reply, done) = futures_channel::oneshot::channel();
        let work = ShardWork::DropVersion {
            domain: entry.domain.clone(),
            key: entry.key.clone(),
            version,
            reply,
        };
        if !self.to_shard(&entry.domain, &entry.key, work) {
            return Message::Error { code: 503, message: "shard queue full".into() };
        }
        // Dropped now, or not here at all: either way the homes must stop
        // counting this node as a holder of that version.
        let _ = done.await;
        self.forget_holder(entry).await;
        Message::Done
    }

    /// Tells the key's homes that this node no longer holds `entry`'s version.
    pub async fn forget_holder(&self, entry: IndexEntry) {
        let forget = IndexEntry { holders: vec![self.id()], ..entry };
        self.send_to_homes(&forget, IndexChange::Forget).await;
    }

    /// Sends an index change to each live home of the entry's key (this
    /// node's own index directly). Answers how many homes took it, and the
    /// newest version they answered with (holders they know merged).
    async fn send_to_homes(
        &self,
        entry: &IndexEntry,
        change: IndexChange,
    ) -> (usize, Option<IndexEntry>) {
        let (mut told, mut newest) = (0, None);
        let mut merge = |answer: Option<IndexEntry>| {
            told += 1;
            if let Some(answer) = answer {
                newest = Some(match newest.take() {
                    None => answer,
                    Some(known) => newer_of(known, answer),
                });
            }
        };
        let key = format!("{}/{}", entry.domain, entry.key);
        // Every remote home at once: a silent one (paused, not yet `down`)
        // must not hold the others' copy of the change back for its timeout,
        // or a read at another node right after the answer misses the write.
        let mut calls = tokio::task::JoinSet::new();
        let core = self.me.get().and_then(std::sync::Weak::upgrade);
        for (home, address) in self.homes(&entry.domain, &entry.key) {
            if self.is_down(home) || home == self.id() {
                continue;
            }
            let Some(core) = core.clone() else { continue };
            let boxed = Box::new(entry.clone());
            let request = match change {
                IndexChange::Update => Message::IndexUpdate { entry: boxed },
                IndexChange::Forget => Message::IndexForget { entry: boxed },
            };
            calls.spawn(async move { core.peers.call(&address, &request, INDEX_TIMEOUT).await });
        }
        if self.homes(&entry.domain, &entry.key).iter().any(|(home, _)| *home == self.id()) {
            match change {
                // `None`: this node's index could not be read or written.
                IndexChange::Update => {
                    if let Some(answer) = self.index_update(entry) {
                        merge(Some(answer));
                    }
                }
                IndexChange::Forget => {
                    self.index_forget(entry);
                    merge(None);
                }
            }
        }
        while let Some(answer) = calls.join_next().await {
            // Counted only when the home confirms: an update answers the
            // merged record, a forget answers `Done`.
            match (change, answer) {
                (IndexChange::Update, Ok(Ok(Message::IndexReply { entry: Some(entry) }))) => {
                    merge(Some(*entry));
                }
                (IndexChange::Forget, Ok(Ok(Message::Done))) => merge(None),
                (_, answer) => {
                    let answer = answer.map_err(|e| e.to_string());
                    tracing::info!(?answer, %key, "a home missed an index change");
                }
            }
        }
        (told, newest)
    }

    /// A holder's side of `Superseded`. A deletion is confirmed to the
    /// key's homes once no older copy is left here: they keep the
    /// tombstone until every holder has.
    pub fn superseded(&self, newer: &IndexEntry) {
        self.forget_location(&newer.domain, &newer.key);
        let version = Version { hlc: newer.hlc, node_id: newer.writer };
        let (reply, done) = futures_channel::oneshot::channel();
        let work = ShardWork::DropIfOlder {
            domain: newer.domain.clone(),
            key: newer.key.clone(),
            version,
            reply,
        };
        if !self.to_shard(&newer.domain, &newer.key, work) || !newer.deleted {
            return;
        }
        let Some(core) = self.me.get().and_then(std::sync::Weak::upgrade) else { return };
        let tombstone = newer.clone();
        tokio::spawn(async move {
            if done.await == Ok(true) {
                core.forget_holder(tombstone).await;
            }
        });
    }

    /// Records a deletion of a key at `version` with its homes (a
    /// tombstone); the homes tell the holders to drop their copies.
    pub async fn delete_everywhere(
        &self,
        domain: String,
        key: String,
        class: String,
        version: Version,
    ) -> usize {
        let entry = IndexEntry {
            domain: domain.clone(),
            key: key.clone(),
            hlc: version.hlc,
            writer: version.node_id,
            sha256: [0; 32],
            size_bytes: 0,
            class,
            content_type: String::new(),
            headers: String::new(),
            deleted: true,
            holders: Vec::new(),
            wanted: 0,
        };
        self.forget_location(&domain, &key);
        self.send_to_homes(&entry, IndexChange::Update).await.0
    }

    /// Hands work for a key to the shard that owns it.
    pub fn to_shard(&self, domain: &str, key: &str, work: ShardWork) -> bool {
        let queues = &self.shard_work;
        let shard = cairn_engine::key_shard(domain, key, queues.len());
        queues[shard].clone().try_send(work).is_ok()
    }

    /// A target's side of `Replicate`: refuses a deposed tracker, then has
    /// the key's shard pull the copy and waits for it.
    pub async fn replicate(&self, term: u64, entry: IndexEntry, source_peer: String) -> Message {
        let seen = self.term_seen.fetch_max(term, Ordering::AcqRel).max(self.raft_term());
        if term < seen {
            return Message::ReplicateReply {
                ok: false,
                message: format!("stale term {term}: a tracker of term {seen} has spoken"),
            };
        }
        let (reply, done) = futures_channel::oneshot::channel();
        let (domain, key) = (entry.domain.clone(), entry.key.clone());
        let version = Version { hlc: entry.hlc, node_id: entry.writer };
        let work = ShardWork::Pull {
            entry: Box::new(entry),
            source_peer,
            caller: self.identity.caller(),
            reply,
        };
        if !self.to_shard(&domain, &key, work) {
            return Message::ReplicateReply { ok: false, message: "shard queue full".into() };
        }
        match done.await {
            Ok(Ok(())) => {
                // Answered once the homes count this copy (or a bounded
                // wait passed), so the tracker's next round, which may
                // start at once, does not plan the key again.
                self.confirmed(&domain, &key, version).await;
                Message::ReplicateReply { ok: true, message: String::new() }
            }
            Ok(Err(error)) => Message::ReplicateReply { ok: false, message: error.to_string() },
            Err(_) => {
                Message::ReplicateReply { ok: false, message: "the shard dropped the copy".into() }
            }
        }
    }
}

/// Streams bytes `[start, end)` of blob `sha256` (all of it when `range`
/// is `None`) to a peer as blob-body frames, a frame per chunk, checking
/// the CRC of every block they touch on the way; a damaged block ends the
/// connection, and its file goes to quarantine.
pub async fn serve_blob<W>(
    core: &Core,
    stream: &mut W,
    sha256: Digest,
    range: Option<(u64, u64)>,
) -> Result<(), String>
where
    W: futures_lite::AsyncWrite + Unpin,
{
    let node = &core.storage;
    let record = node.meta.blob(&sha256).map_err(|e| e.to_string())?;
    let (start, end) = match (&record, range) {
        (Some(record), None) => (0, record.size_bytes),
        (Some(record), Some((start, end))) if start <= end && end <= record.size_bytes => {
            (start, end)
        }
        _ => {
            let mut frame = FrameBytes::new();
            let message = match record {
                None => format!("no blob {sha256}"),
                Some(_) => format!("range {range:?} is outside blob {sha256}"),
            };
            let refusal = Message::Error { code: 404, message };
            cairn_net::encode_message(&refusal, &mut frame).map_err(|e| e.to_string())?;
            return stream.write_all(&frame).await.map_err(|e| e.to_string());
        }
    };
    let record = record.expect("matched above");
    // Counted as `replication-out` while it streams (a proxied GET too).
    let _sending = Sending::start(node, record.size_bytes);
    if let Some(bytes) = &record.inline {
        cairn_engine::reader::verify_blocks(bytes, &record.block_crcs, 0, record.size_bytes)
            .map_err(|e| format!("inline blob {sha256} is damaged: {e}"))?;
        let part = &bytes[start as usize..end as usize];
        if !part.is_empty() {
            stream
                .write_all(&FrameHeader::blob_body(part.len() as u32).encode())
                .await
                .map_err(|e| e.to_string())?;
            stream.write_all(part).await.map_err(|e| e.to_string())?;
        }
        return stream.flush().await.map_err(|e| e.to_string());
    }
    let path = node.data.fid_path(&sha256);
    let opened = tokio::task::spawn_blocking(move || std::fs::File::open(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("blob {sha256}: {e}"))?;
    let blob = std::sync::Arc::new(BlobFile {
        identity: FileIdentity::of_metadata(
            &opened.metadata().map_err(|e| format!("blob {sha256}: {e}"))?,
        ),
        file: opened,
        crcs: record.block_crcs.clone(),
        sha256,
        storage: node.clone(),
    });
    // Whole blocks are read (their CRCs cover whole blocks); only the
    // asked part of them is sent.
    let mut offset = start - start % cairn_engine::BLOCK_SIZE_BYTES;
    while offset < end {
        let want = (record.size_bytes - offset).min(SERVE_CHUNK_BYTES as u64) as usize;
        // Off the raft thread: it must stay free for heartbeats and elections.
        let reading = blob.clone();
        let buf = tokio::task::spawn_blocking(move || reading.read_checked(offset, want))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("blob {sha256}: {e}"))?;
        let from = (start.max(offset) - offset) as usize;
        let to = (end.min(offset + want as u64) - offset) as usize;
        let part = &buf[from..to];
        stream
            .write_all(&FrameHeader::blob_body(part.len() as u32).encode())
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(part).await.map_err(|e| e.to_string())?;
        offset += want as u64;
    }
    stream.flush().await.map_err(|e| e.to_string())
}

/// A blob file being sent, read a checked chunk at a time.
struct BlobFile {
    file: std::fs::File,
    identity: FileIdentity,
    crcs: Vec<u32>,
    sha256: Digest,
    storage: crate::Storage,
}

impl BlobFile {
    /// `want` bytes at `at` (a block boundary), each block checked; a
    /// damaged copy goes to quarantine, so no later copy is sourced from it.
    fn read_checked(&self, at: u64, want: usize) -> Result<Vec<u8>, String> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; want];
        self.file.read_exact_at(&mut buf, at).map_err(|e| e.to_string())?;
        let Err(block) = check_blocks(&buf, at, &self.crcs) else { return Ok(buf) };
        let sha256 = self.sha256;
        tracing::error!(%sha256, block, "checksum mismatch while sending a copy: quarantined");
        self.storage.stats.corrupt_reads.fetch_add(1, Ordering::Relaxed);
        match self.storage.data.quarantine_blocking(&sha256, self.identity) {
            Ok(true) => drop(self.storage.stats.quarantined.fetch_add(1, Ordering::Relaxed)),
            Ok(false) => {}
            Err(error) => tracing::warn!(%sha256, %error, "could not quarantine a damaged copy"),
        }
        Err(format!("damaged at block {block}"))
    }
}

/// A blob being sent to a peer, counted in `/v1/status` until dropped.
struct Sending<'n> {
    node: &'n crate::Storage,
    size_bytes: u64,
}

impl<'n> Sending<'n> {
    fn start(node: &'n crate::Storage, size_bytes: u64) -> Sending<'n> {
        node.stats.add(KeyState::ReplicationOut, 1, size_bytes as i64);
        Sending { node, size_bytes }
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.node.stats.add(KeyState::ReplicationOut, -1, -(self.size_bytes as i64));
    }
}

/// Checks the CRC of each block of `bytes`, which start at `offset` (a
/// multiple of the block size); answers the first bad block.
fn check_blocks(bytes: &[u8], offset: u64, crcs: &[u32]) -> Result<(), u64> {
    let block_bytes = cairn_engine::BLOCK_SIZE_BYTES as usize;
    let first = offset / cairn_engine::BLOCK_SIZE_BYTES;
    for (i, block) in bytes.chunks(block_bytes).enumerate() {
        let index = first + i as u64;
        if crcs.get(index as usize) != Some(&crc32fast::hash(block)) {
            return Err(index);
        }
    }
    Ok(())
}

/// A record met by a scan, with its domain and key.
type Scanned<T> = (String, String, T);

/// Of one scan window of index `records` (at most `window` were asked
/// for), the first `max` that `keep` picks, and the key the next scan
/// starts after: the last record looked at, or `None` (from the start)
/// once the scan reached the end.
fn pick_window<T>(
    records: Vec<Scanned<T>>,
    window: usize,
    max: usize,
    mut keep: impl FnMut(&str, &str, &T) -> bool,
) -> (Vec<Scanned<T>>, Option<(String, String)>) {
    let reached_end = records.len() < window;
    let mut picked = Vec::new();
    let mut last = None;
    for (domain, key, record) in records {
        if picked.len() >= max {
            return (picked, last);
        }
        last = Some((domain.clone(), key.clone()));
        if keep(&domain, &key, &record) {
            picked.push((domain, key, record));
        }
    }
    (picked, if reached_end { None } else { last })
}

/// What became of an announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// Every live home has this version of the key.
    Confirmed(Version),
    /// The key is not here, or a newer version replaced it: nothing to tell.
    NotHere,
    /// A live home did not confirm.
    Missed,
}

/// What a holder asks of a key's homes.
#[derive(Clone, Copy)]
enum IndexChange {
    /// Merge the entry (a version held, or a tombstone).
    Update,
    /// Stop counting the entry's holders as holders of its version.
    Forget,
}

/// Of two homes' answers, the newer version; for the same version, the
/// holders both know.
pub fn newer_of(a: IndexEntry, b: IndexEntry) -> IndexEntry {
    match (a.hlc, a.writer).cmp(&(b.hlc, b.writer)) {
        std::cmp::Ordering::Less => b,
        std::cmp::Ordering::Greater => a,
        std::cmp::Ordering::Equal => {
            let mut merged = a;
            merged.deleted |= b.deleted;
            for holder in b.holders {
                if !merged.holders.contains(&holder) {
                    merged.holders.push(holder);
                }
            }
            merged.holders.sort_unstable();
            merged
        }
    }
}

pub fn record_of(entry: &IndexEntry) -> IndexRecord {
    let mut holders = entry.holders.clone();
    // Bounded like every short text of a record (a peer could send more).
    let short = |text: &str| {
        let mut text = text.to_owned();
        while text.len() > SHORT_TEXT_BYTES_MAX {
            text.pop();
        }
        text
    };
    holders.sort_unstable();
    holders.dedup();
    IndexRecord {
        version: Version { hlc: entry.hlc, node_id: entry.writer },
        sha256: Digest(entry.sha256),
        size_bytes: entry.size_bytes,
        class: short(&entry.class),
        content_type: short(&entry.content_type),
        // Longer ones were never written: a peer's entry does not make them.
        headers: if entry.headers.len() <= HEADERS_LEN_MAX {
            entry.headers.clone()
        } else {
            String::new()
        },
        deleted: entry.deleted,
        holders,
    }
}

/// Longest class or content type a record keeps.
const SHORT_TEXT_BYTES_MAX: usize = 255;

pub fn entry_of(domain: &str, key: &str, record: &IndexRecord, wanted: u32) -> IndexEntry {
    IndexEntry {
        domain: domain.to_owned(),
        key: key.to_owned(),
        hlc: record.version.hlc,
        writer: record.version.node_id,
        sha256: record.sha256.0,
        size_bytes: record.size_bytes,
        class: record.class.clone(),
        content_type: record.content_type.clone(),
        headers: record.headers.clone(),
        deleted: record.deleted,
        holders: record.holders.clone(),
        wanted,
    }
}

impl Core {
    /// Where the key is: from the location cache while fresh, else from
    /// the key's homes, asked in order until one knows the key. A miss is
    /// not remembered (a key stored a moment later must be found), nor is a
    /// key still short of copies.
    pub async fn lookup(
        &self,
        domain: &str,
        key: &str,
    ) -> Result<Option<IndexEntry>, HomesUnreachable> {
        let id = (domain.to_owned(), key.to_owned());
        {
            let mut cache = self.locations.lock().expect("location cache lock");
            match cache.get(&id) {
                Some((entry, found)) if found.elapsed() < LOCATION_TTL => {
                    return Ok(Some(entry.clone()))
                }
                Some(_) => {
                    cache.pop(&id);
                }
                None => {}
            }
        }
        let Some(found) = self.lookup_homes(domain, key).await? else { return Ok(None) };
        // Only settled keys (all their copies made) are remembered: the
        // holders of one still being copied change from moment to moment.
        if !found.deleted && found.holders.len() >= found.wanted as usize {
            let mut cache = self.locations.lock().expect("location cache lock");
            cache.put(id, (found.clone(), std::time::Instant::now()));
        }
        Ok(Some(found))
    }

    pub fn forget_location(&self, domain: &str, key: &str) {
        let id = (domain.to_owned(), key.to_owned());
        self.locations.lock().expect("location cache lock").pop(&id);
    }

    /// Asks every live home of the key; when none of them can answer (they
    /// are down), or none knows the key while index records may still be
    /// on their way to new homes (§5 handoff), asks every other member too.
    pub async fn lookup_homes(
        &self,
        domain: &str,
        key: &str,
    ) -> Result<Option<IndexEntry>, HomesUnreachable> {
        let all_homes = self.homes(domain, key);
        let homes: Vec<(NodeId, String)> =
            all_homes.iter().filter(|(id, _)| !self.is_down(*id)).cloned().collect();
        let mut answers = 0;
        let mut newest: Option<IndexEntry> = None;
        // Every live home, at once: they may disagree (one missed an
        // update), and the newest version, with every holder any of them
        // knows, wins.
        for answer in self.ask_all(&homes, domain, key).await {
            match answer {
                Some(Some(entry)) => {
                    answers += 1;
                    newest = Some(match newest {
                        None => entry,
                        Some(known) => newer_of(known, entry),
                    });
                }
                Some(None) => answers += 1,
                None => {}
            }
        }
        // "Unknown" is an answer only from a majority of the key's homes, or
        // from every home not known to be down: a node cut off from the
        // others hears only itself, and must not call a key written on the
        // other side missing.
        let answered = answers > 0 && (answers > all_homes.len() / 2 || answers == homes.len());
        if newest.is_some() || (answered && !self.handoff_recent()) {
            return Ok(newest);
        }
        let others: Vec<(NodeId, String)> = self.view.read(|s| {
            s.members()
                .iter()
                .filter(|(id, r)| {
                    matches!(
                        r.state,
                        MemberState::Alive | MemberState::Drain | MemberState::Readonly
                    ) && !homes.iter().any(|h| h.0 == **id)
                })
                .map(|(id, r)| (*id, r.member.peer.clone()))
                .collect()
        });
        // Others know a key only as former homes: "unknown" from them says
        // nothing when no home could answer.
        for answer in self.ask_all(&others, domain, key).await {
            if let Some(Some(entry)) = answer {
                newest = Some(match newest {
                    None => entry,
                    Some(known) => newer_of(known, entry),
                });
            }
        }
        if newest.is_some() || answered {
            return Ok(newest);
        }
        Err(HomesUnreachable)
    }

    /// Asks each of `nodes` for its index record of the key, all at once.
    async fn ask_all(
        &self,
        nodes: &[(NodeId, String)],
        domain: &str,
        key: &str,
    ) -> Vec<Option<Option<IndexEntry>>> {
        let Some(core) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return Vec::new();
        };
        let mut asks = tokio::task::JoinSet::new();
        for (id, address) in nodes.iter().cloned() {
            let (core, domain, key) = (core.clone(), domain.to_owned(), key.to_owned());
            asks.spawn(async move { core.ask_index(id, &address, &domain, &key).await });
        }
        let mut answers = Vec::with_capacity(nodes.len());
        while let Some(answer) = asks.join_next().await {
            answers.push(answer.ok().flatten());
        }
        answers
    }

    fn is_down(&self, id: NodeId) -> bool {
        self.view.read(|s| s.member(id).is_some_and(|m| m.state == MemberState::Down))
    }

    /// One node's index record of a key: `None` when the node did not
    /// answer, `Some(None)` when it answered that it knows nothing.
    async fn ask_index(
        &self,
        id: NodeId,
        address: &str,
        domain: &str,
        key: &str,
    ) -> Option<Option<IndexEntry>> {
        if id == self.id() {
            return self.index_lookup(domain, key).ok();
        }
        let request = Message::IndexLookup { domain: domain.to_owned(), key: key.to_owned() };
        match self.peers.call(address, &request, INDEX_TIMEOUT).await {
            Ok(Message::IndexReply { entry }) => Some(entry.map(|e| *e)),
            _ => None,
        }
    }
}

/// What a home tells a key's holders.
#[derive(Clone, Copy, Debug)]
enum Notice {
    /// A newer version or a deletion replaces what they hold.
    Superseded,
    /// The version they hold has its class's copies.
    Stored,
}

#[cfg(test)]
mod tests {
    use super::pick_window;

    fn index(count: usize) -> Vec<(String, String, usize)> {
        (0..count).map(|i| ("d".to_owned(), format!("k{i:05}"), i)).collect()
    }

    /// Scans `all` in windows as `needs` does; answers every pick, in order.
    fn scan_all(all: &[(String, String, usize)], window: usize, max: usize) -> Vec<usize> {
        let mut cursor: Option<(String, String)> = None;
        let mut seen = Vec::new();
        loop {
            let records: Vec<_> = all
                .iter()
                .filter(|(d, k, _)| cursor.as_ref().is_none_or(|c| (d, k) > (&c.0, &c.1)))
                .take(window)
                .cloned()
                .collect();
            let (picked, next) = pick_window(records, window, max, |_, _, i| i % 3 != 1);
            seen.extend(picked.into_iter().map(|(_, _, i)| i));
            cursor = next;
            if cursor.is_none() {
                return seen;
            }
        }
    }

    #[test]
    fn a_full_answer_resumes_after_the_last_record_it_looked_at() {
        let all = index(1000);
        let wanted: Vec<usize> = (0..1000).filter(|i| i % 3 != 1).collect();
        // A window holding more picks than one answer takes: nothing skipped.
        assert_eq!(scan_all(&all, 400, 25), wanted);
        assert_eq!(scan_all(&all, 64, 1000), wanted);
        assert_eq!(scan_all(&all, 7, 1), wanted);
    }

    #[test]
    fn the_scan_starts_over_once_it_reaches_the_end() {
        let (picked, next) = pick_window(index(10), 16, 100, |_, _, _| true);
        assert_eq!(picked.len(), 10);
        assert_eq!(next, None);
        let (picked, next) = pick_window(index(16), 16, 100, |_, _, _| true);
        assert_eq!(picked.len(), 16);
        assert_eq!(next, Some(("d".to_owned(), "k00015".to_owned())));
    }
}
