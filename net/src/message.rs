//! What one peer says to another: the `Message` enum carried, as an rkyv
//! archive, in the payload of every kind-1 frame (net/PROTOCOL.md).
//!
//! Owns the message shapes only. How they are framed and checked is
//! `frame`; moving them over a socket is `peer_io`; what a node does on
//! receiving one is for the cluster layer above.
//!
//! The archived layout is the wire format: variants are only ever appended
//! (never reordered or removed), and changing the fields of a variant that
//! has shipped needs a new frame version.

use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

/// One peer-RPC message. The receiver reads it in place as
/// [`ArchivedMessage`] after validation; deserialising into this owned
/// form is for code off the hot path.
///
/// `Debug` is written by hand so that opaque payloads print as their size
/// and handshake proofs not at all.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq)]
#[rkyv(compare(PartialEq))]
pub enum Message {
    /// The caller's first message, answering the callee's `Challenge`: who
    /// is calling, and proof that it holds the cluster secret
    /// (`handshake.rs`).
    Hello {
        node_id: u64,
        cluster_id: u64,
        /// The caller's fresh nonce, which the callee's `HelloAck` proves over.
        nonce: [u8; 32],
        /// HMAC-SHA-256 with the cluster key over the challenge, `nonce` and
        /// every other field.
        proof: [u8; 32],
        /// Where the caller serves HTTP, `host:port`.
        http: String,
        /// Where the caller serves peer RPC, `host:port`.
        peer: String,
        /// The caller's failure zone, for placing copies apart.
        zone: String,
    },
    /// The callee accepted a `Hello`; it names itself and its cluster, and
    /// proves the secret over both nonces.
    HelloAck { node_id: u64, cluster_id: u64, proof: [u8; 32] },
    /// Liveness from the raft leader; `sent_ms` is the leader's clock, so a
    /// follower can report the round trip but never compare clocks.
    Heartbeat { term: u64, leader_id: u64, sent_ms: u64 },
    /// A node's answer to a `Heartbeat`, with the numbers placement needs.
    HeartbeatReply {
        node_id: u64,
        term: u64,
        disk_total_bytes: u64,
        disk_free_bytes: u64,
        /// Key count per replication state name, e.g. `("under", 3)`.
        keys_by_state: Vec<(String, u64)>,
        /// The answering node's wall clock (unix ms), so the leader sees
        /// members whose clocks are off.
        clock_ms: u64,
    },
    /// An openraft request, serialised by the raft crate; opaque here.
    Raft { kind: RaftRpc, payload: Vec<u8> },
    /// The answer to a `Raft` request of the same `kind`; opaque here.
    RaftReply { kind: RaftRpc, payload: Vec<u8> },
    /// An admin write received by a follower, forwarded to the leader.
    Forward { path: String, body: Vec<u8> },
    /// The leader's answer to a `Forward`: an HTTP status and body.
    ForwardReply { status: u16, body: Vec<u8> },
    /// The request could not be served; `code` is defined by the RPC layer.
    Error { code: u16, message: String },
    /// A holder (or a deleter) tells one of the key's homes about a version.
    IndexUpdate { entry: Box<IndexEntry> },
    /// Asks one of the key's homes what it knows of the key.
    IndexLookup { domain: String, key: String },
    /// A home's answer to `IndexLookup` or `IndexUpdate`: the newest
    /// version it knows (`None`: never heard of the key).
    IndexReply { entry: Option<Box<IndexEntry>> },
    /// The tracker asks a node for keys it is home of whose copy count is
    /// not what their class wants, at most `max`.
    NeedsQuery { max: u32 },
    /// Those keys, each with its holders and the copies its class wants.
    NeedsReply { needs: Vec<IndexEntry> },
    /// The tracker (leader in `term`) asks a node to copy `entry`'s version
    /// from the node whose peer address is `source_peer`; answered when done.
    Replicate { term: u64, entry: Box<IndexEntry>, source_peer: String },
    /// How a `Replicate` ended.
    ReplicateReply { ok: bool, message: String },
    /// Asks for the bytes of a blob: answered by blob-body frames whose
    /// lengths add up to the blob's size (several when it exceeds one frame),
    /// or by `Error`.
    FetchBlob { sha256: [u8; 32] },
    /// The tracker (leader in `term`) asks a holder to drop its copy of
    /// `entry`'s version: the key has more copies than its class wants.
    DropCopy { term: u64, entry: Box<IndexEntry> },
    /// The answer to `DropCopy` and to anything that needs only a yes.
    Done,
    /// A home tells a holder that `entry` (a newer version, or a deletion)
    /// replaces the version it holds: it drops its copy if it is older.
    Superseded { entry: Box<IndexEntry> },
    /// A holder tells a home it no longer holds `entry`'s version (the
    /// holders listed in `entry` are removed from the home's record).
    IndexForget { entry: Box<IndexEntry> },
    /// Asks a node for its index records of `domain` whose keys start with
    /// `prefix` and are not below `start`, in key order, at most `limit`,
    /// tombstones included: one member's part of a cluster listing.
    ListIndex { domain: String, prefix: String, start: String, limit: u32 },
    /// Those records; `more`: the node has records past the last one.
    ListIndexReply { entries: Vec<IndexEntry>, more: bool },
    /// Asks for bytes `[start, end)` of a blob (a ranged read through a
    /// node that does not hold it): answered like `FetchBlob`, by
    /// blob-body frames adding up to `end - start` bytes, or by `Error`.
    FetchBlobRange { sha256: [u8; 32], start: u64, end: u64 },
    /// A home tells a holder that `entry`'s version, which it holds, now
    /// has its class's copies (it is `stored`).
    Stored { entry: Box<IndexEntry> },
    /// A holder compares the versions it holds of the keys in `range` whose
    /// home the receiver is (`count` of them, summed into `digest`) with
    /// what the receiver's index says `holder` holds there. Only versions
    /// older than `settled_before` (a clock value) count on either side:
    /// newer ones may still be on their way.
    RangeDigest { holder: u64, range: Box<KeyRange>, settled_before: u64, digest: u64, count: u32 },
    /// The answer: `same`, or the versions the index lists `holder` as
    /// holding in the range; `reached`: the last key looked at when the
    /// home stopped before the range's end (keys past it were not compared).
    RangeReply { same: bool, listed: Vec<KeyVersion>, reached: Option<KeyName> },
    /// Asks a holder of `path` (a key, or a folder's marker key) of
    /// `domain` for the WebDAV dead properties it keeps beside its copy.
    PropsGet { domain: String, path: String },
    /// Those properties as engine/FORMAT.md's props record (empty: none).
    PropsReply { record: Vec<u8> },
    /// Replaces the dead properties a holder keeps for `path`; answered
    /// `Done`, or `Error` 404 when it does not hold the key.
    PropsPut { domain: String, path: String, record: Vec<u8> },
    /// The callee's first message on every connection: a fresh nonce the
    /// caller's `Hello` must prove the secret over.
    Challenge { nonce: [u8; 32] },
}

/// A key of a domain.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub struct KeyName {
    pub domain: String,
    pub key: String,
}

/// Keys after `after` (from the first when `None`) up to and including
/// `through` (to the last when `None`), in byte order of `domain NUL key`.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub struct KeyRange {
    pub after: Option<KeyName>,
    pub through: Option<KeyName>,
}

impl KeyRange {
    pub fn contains(&self, domain: &str, key: &str) -> bool {
        let at = (domain, key);
        self.after.as_ref().is_none_or(|a| at > (a.domain.as_str(), a.key.as_str()))
            && self.through.as_ref().is_none_or(|t| at <= (t.domain.as_str(), t.key.as_str()))
    }
}

/// One version of a key.
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub struct KeyVersion {
    pub domain: String,
    pub key: String,
    pub hlc: u64,
    pub writer: u64,
}

/// One key version as the index sees it (docs/design.md §5). Boxed inside
/// messages, so that it does not grow the archived size of every message
/// (an archived enum is as large as its largest variant).
#[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[rkyv(compare(PartialEq), derive(Debug))]
pub struct IndexEntry {
    pub domain: String,
    pub key: String,
    /// The version: hybrid logical clock value and the node that wrote it.
    pub hlc: u64,
    pub writer: u64,
    pub sha256: [u8; 32],
    pub size_bytes: u64,
    pub class: String,
    pub content_type: String,
    /// A tombstone: the key was deleted at this version.
    pub deleted: bool,
    /// Nodes holding an intact copy of this version.
    pub holders: Vec<u64>,
    /// Copies the key's class wants (0 when the sender does not know).
    pub wanted: u32,
    /// The version's kept headers (`name: value` lines).
    pub headers: String,
}

/// Which openraft RPC a `Raft`/`RaftReply` payload holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
pub enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Stands in for a handshake proof in every `Debug` output.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for Message {
    /// Each group of variants has its own helper; the match stays exhaustive
    /// here so that a new variant cannot go without its `Debug`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello { .. }
            | Message::HelloAck { .. }
            | Message::Challenge { .. }
            | Message::Heartbeat { .. }
            | Message::HeartbeatReply { .. } => self.fmt_session(f),
            Message::Raft { .. }
            | Message::RaftReply { .. }
            | Message::Forward { .. }
            | Message::ForwardReply { .. }
            | Message::Error { .. }
            | Message::Done => self.fmt_envelope(f),
            Message::IndexUpdate { .. }
            | Message::IndexLookup { .. }
            | Message::IndexReply { .. }
            | Message::Superseded { .. }
            | Message::IndexForget { .. }
            | Message::Stored { .. }
            | Message::ListIndex { .. }
            | Message::ListIndexReply { .. }
            | Message::RangeDigest { .. }
            | Message::RangeReply { .. }
            | Message::PropsGet { .. }
            | Message::PropsReply { .. }
            | Message::PropsPut { .. } => self.fmt_index(f),
            Message::NeedsQuery { .. }
            | Message::NeedsReply { .. }
            | Message::Replicate { .. }
            | Message::ReplicateReply { .. }
            | Message::FetchBlob { .. }
            | Message::FetchBlobRange { .. }
            | Message::DropCopy { .. } => self.fmt_replication(f),
        }
    }
}

impl Message {
    /// Connection set-up and liveness; never shows a proof.
    fn fmt_session(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello { node_id, cluster_id, nonce: _, proof: _, http, peer, zone } => f
                .debug_struct("Hello")
                .field("node_id", node_id)
                .field("cluster_id", cluster_id)
                .field("proof", &format_args!("{REDACTED}"))
                .field("http", http)
                .field("peer", peer)
                .field("zone", zone)
                .finish(),
            Message::HelloAck { node_id, cluster_id, proof: _ } => f
                .debug_struct("HelloAck")
                .field("node_id", node_id)
                .field("cluster_id", cluster_id)
                .field("proof", &format_args!("{REDACTED}"))
                .finish(),
            Message::Challenge { .. } => f.write_str("Challenge"),
            Message::Heartbeat { term, leader_id, sent_ms } => f
                .debug_struct("Heartbeat")
                .field("term", term)
                .field("leader_id", leader_id)
                .field("sent_ms", sent_ms)
                .finish(),
            Message::HeartbeatReply {
                node_id,
                term,
                disk_total_bytes,
                disk_free_bytes,
                keys_by_state,
                clock_ms,
            } => f
                .debug_struct("HeartbeatReply")
                .field("node_id", node_id)
                .field("term", term)
                .field("disk_total_bytes", disk_total_bytes)
                .field("disk_free_bytes", disk_free_bytes)
                .field("keys_by_state", keys_by_state)
                .field("clock_ms", clock_ms)
                .finish(),
            _ => unreachable!("dispatched by Message::fmt"),
        }
    }

    /// Raft and forwarded admin traffic, errors and the bare yes.
    fn fmt_envelope(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Opaque payloads and bodies can be megabytes: show their size.
            Message::Raft { kind, payload } => f
                .debug_struct("Raft")
                .field("kind", kind)
                .field("payload_len_bytes", &payload.len())
                .finish(),
            Message::RaftReply { kind, payload } => f
                .debug_struct("RaftReply")
                .field("kind", kind)
                .field("payload_len_bytes", &payload.len())
                .finish(),
            Message::Forward { path, body } => f
                .debug_struct("Forward")
                .field("path", path)
                .field("body_len_bytes", &body.len())
                .finish(),
            Message::ForwardReply { status, body } => f
                .debug_struct("ForwardReply")
                .field("status", status)
                .field("body_len_bytes", &body.len())
                .finish(),
            Message::Error { code, message } => {
                f.debug_struct("Error").field("code", code).field("message", message).finish()
            }
            Message::Done => f.write_str("Done"),
            _ => unreachable!("dispatched by Message::fmt"),
        }
    }

    /// The key index kept by each key's homes.
    fn fmt_index(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::IndexUpdate { entry } => {
                f.debug_struct("IndexUpdate").field("entry", entry).finish()
            }
            Message::IndexLookup { domain, key } => {
                f.debug_struct("IndexLookup").field("domain", domain).field("key", key).finish()
            }
            Message::IndexReply { entry } => {
                f.debug_struct("IndexReply").field("entry", entry).finish()
            }
            Message::Superseded { entry } => {
                f.debug_struct("Superseded").field("entry", entry).finish()
            }
            Message::IndexForget { entry } => {
                f.debug_struct("IndexForget").field("entry", entry).finish()
            }
            Message::Stored { entry } => f.debug_struct("Stored").field("entry", entry).finish(),
            Message::ListIndex { domain, prefix, start, limit } => f
                .debug_struct("ListIndex")
                .field("domain", domain)
                .field("prefix", prefix)
                .field("start", start)
                .field("limit", limit)
                .finish(),
            Message::ListIndexReply { entries, more } => f
                .debug_struct("ListIndexReply")
                .field("count", &entries.len())
                .field("more", more)
                .finish(),
            Message::RangeDigest { holder, range, settled_before, digest, count } => f
                .debug_struct("RangeDigest")
                .field("holder", holder)
                .field("range", range)
                .field("settled_before", settled_before)
                .field("digest", digest)
                .field("count", count)
                .finish(),
            Message::RangeReply { same, listed, reached } => f
                .debug_struct("RangeReply")
                .field("same", same)
                .field("listed", &listed.len())
                .field("reached", reached)
                .finish(),
            Message::PropsGet { domain, path } => {
                f.debug_struct("PropsGet").field("domain", domain).field("path", path).finish()
            }
            Message::PropsReply { record } => {
                f.debug_struct("PropsReply").field("record_len_bytes", &record.len()).finish()
            }
            Message::PropsPut { domain, path, record } => f
                .debug_struct("PropsPut")
                .field("domain", domain)
                .field("path", path)
                .field("record_len_bytes", &record.len())
                .finish(),
            _ => unreachable!("dispatched by Message::fmt"),
        }
    }

    /// The tracker's replication: needs, copies, blob bodies and drops.
    fn fmt_replication(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::NeedsQuery { max } => f.debug_struct("NeedsQuery").field("max", max).finish(),
            Message::NeedsReply { needs } => {
                f.debug_struct("NeedsReply").field("count", &needs.len()).finish()
            }
            Message::Replicate { term, entry, source_peer } => f
                .debug_struct("Replicate")
                .field("term", term)
                .field("entry", entry)
                .field("source_peer", source_peer)
                .finish(),
            Message::ReplicateReply { ok, message } => {
                f.debug_struct("ReplicateReply").field("ok", ok).field("message", message).finish()
            }
            Message::FetchBlob { sha256 } => {
                let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
                f.debug_struct("FetchBlob").field("sha256", &hex).finish()
            }
            Message::FetchBlobRange { sha256, start, end } => {
                let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
                f.debug_struct("FetchBlobRange")
                    .field("sha256", &hex)
                    .field("start", start)
                    .field("end", end)
                    .finish()
            }
            Message::DropCopy { term, entry } => {
                f.debug_struct("DropCopy").field("term", term).field("entry", entry).finish()
            }
            _ => unreachable!("dispatched by Message::fmt"),
        }
    }
}

impl fmt::Debug for ArchivedMessage {
    /// Goes through the owned form so both print alike (and redact alike);
    /// it allocates, which is fine for logs and test failures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match rkyv::deserialize::<Message, rkyv::rancor::Error>(self) {
            Ok(message) => message.fmt(f),
            Err(_) => f.write_str("ArchivedMessage(<not deserialisable>)"),
        }
    }
}

impl From<ArchivedRaftRpc> for RaftRpc {
    fn from(archived: ArchivedRaftRpc) -> RaftRpc {
        match archived {
            ArchivedRaftRpc::AppendEntries => RaftRpc::AppendEntries,
            ArchivedRaftRpc::Vote => RaftRpc::Vote,
            ArchivedRaftRpc::InstallSnapshot => RaftRpc::InstallSnapshot,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Box<IndexEntry> {
        Box::new(IndexEntry {
            domain: "d".to_owned(),
            key: "k".to_owned(),
            hlc: 1,
            writer: 2,
            sha256: [0xab; 32],
            size_bytes: 3,
            class: "default".to_owned(),
            content_type: String::new(),
            deleted: false,
            holders: vec![2],
            wanted: 2,
            headers: String::new(),
        })
    }

    /// The anti-entropy and dead-property messages (one test function
    /// holding every variant would be too long).
    fn range_and_props_messages() -> [(&'static str, Message); 5] {
        let text = || "x".to_owned();
        [
            (
                "RangeDigest",
                Message::RangeDigest {
                    holder: 1,
                    range: Box::new(KeyRange { after: None, through: None }),
                    settled_before: 4,
                    digest: 2,
                    count: 3,
                },
            ),
            ("RangeReply", Message::RangeReply { same: false, listed: vec![], reached: None }),
            ("PropsGet", Message::PropsGet { domain: text(), path: text() }),
            ("PropsReply", Message::PropsReply { record: vec![1] }),
            ("PropsPut", Message::PropsPut { domain: text(), path: text(), record: vec![1] }),
        ]
    }

    /// Every variant reaches the helper that prints it, under its own name.
    #[test]
    fn every_variant_prints_its_name() {
        let text = || "x".to_owned();
        let messages = [
            (
                "Hello",
                Message::Hello {
                    node_id: 1,
                    cluster_id: 2,
                    nonce: [6; 32],
                    proof: [7; 32],
                    http: text(),
                    peer: text(),
                    zone: text(),
                },
            ),
            ("HelloAck", Message::HelloAck { node_id: 1, cluster_id: 2, proof: [7; 32] }),
            ("Challenge", Message::Challenge { nonce: [7; 32] }),
            ("Heartbeat", Message::Heartbeat { term: 1, leader_id: 2, sent_ms: 3 }),
            (
                "HeartbeatReply",
                Message::HeartbeatReply {
                    node_id: 1,
                    term: 2,
                    disk_total_bytes: 3,
                    disk_free_bytes: 4,
                    keys_by_state: vec![("under".to_owned(), 5)],
                    clock_ms: 6,
                },
            ),
            ("Raft", Message::Raft { kind: RaftRpc::Vote, payload: vec![0; 9] }),
            ("RaftReply", Message::RaftReply { kind: RaftRpc::Vote, payload: vec![0; 9] }),
            ("Forward", Message::Forward { path: text(), body: vec![0; 9] }),
            ("ForwardReply", Message::ForwardReply { status: 200, body: vec![0; 9] }),
            ("Error", Message::Error { code: 400, message: text() }),
            ("IndexUpdate", Message::IndexUpdate { entry: entry() }),
            ("IndexLookup", Message::IndexLookup { domain: text(), key: text() }),
            ("IndexReply", Message::IndexReply { entry: Some(entry()) }),
            ("NeedsQuery", Message::NeedsQuery { max: 1 }),
            ("NeedsReply", Message::NeedsReply { needs: vec![*entry()] }),
            ("Replicate", Message::Replicate { term: 1, entry: entry(), source_peer: text() }),
            ("ReplicateReply", Message::ReplicateReply { ok: true, message: text() }),
            ("FetchBlob", Message::FetchBlob { sha256: [0xab; 32] }),
            ("DropCopy", Message::DropCopy { term: 1, entry: entry() }),
            ("Done", Message::Done),
            ("Superseded", Message::Superseded { entry: entry() }),
            ("IndexForget", Message::IndexForget { entry: entry() }),
            (
                "ListIndex",
                Message::ListIndex { domain: text(), prefix: text(), start: text(), limit: 1 },
            ),
            ("ListIndexReply", Message::ListIndexReply { entries: vec![*entry()], more: true }),
            ("FetchBlobRange", Message::FetchBlobRange { sha256: [1; 32], start: 2, end: 3 }),
            ("Stored", Message::Stored { entry: entry() }),
        ];
        for (name, message) in messages.into_iter().chain(range_and_props_messages()) {
            let shown = format!("{message:?}");
            assert!(shown.starts_with(name), "{shown}");
            assert!(!shown.contains("[7, 7"), "proofs are redacted: {shown}");
        }
        let raft = format!("{:?}", Message::Raft { kind: RaftRpc::Vote, payload: vec![0; 9] });
        assert_eq!(raft, "Raft { kind: Vote, payload_len_bytes: 9 }");
        let blob = format!("{:?}", Message::FetchBlob { sha256: [0xab; 32] });
        assert_eq!(blob, format!("FetchBlob {{ sha256: {:?} }}", "ab".repeat(32)));
    }
}
