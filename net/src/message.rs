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
/// `Debug` is written by hand so that `token_sha256` never reaches a log:
/// it is what a node presents to join, as good as the secret itself.
#[derive(Archive, Serialize, Deserialize, Clone, PartialEq)]
#[rkyv(compare(PartialEq))]
pub enum Message {
    /// First message on a new peer connection: who is calling and proof
    /// that it holds the cluster's join token.
    Hello {
        node_id: u64,
        cluster_id: u64,
        /// SHA-256 of the join token (`DATA/join-token`).
        token_sha256: [u8; 32],
        /// Where the caller serves HTTP, `host:port`.
        http: String,
        /// Where the caller serves peer RPC, `host:port`.
        peer: String,
        /// The caller's failure zone, for placing copies apart.
        zone: String,
    },
    /// The callee accepted a `Hello`; it names itself and its cluster.
    HelloAck { node_id: u64, cluster_id: u64 },
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
}

/// Which openraft RPC a `Raft`/`RaftReply` payload holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
pub enum RaftRpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Stands in for `token_sha256` in every `Debug` output.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello { node_id, cluster_id, token_sha256: _, http, peer, zone } => f
                .debug_struct("Hello")
                .field("node_id", node_id)
                .field("cluster_id", cluster_id)
                .field("token_sha256", &format_args!("{REDACTED}"))
                .field("http", http)
                .field("peer", peer)
                .field("zone", zone)
                .finish(),
            Message::HelloAck { node_id, cluster_id } => f
                .debug_struct("HelloAck")
                .field("node_id", node_id)
                .field("cluster_id", cluster_id)
                .finish(),
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
            } => f
                .debug_struct("HeartbeatReply")
                .field("node_id", node_id)
                .field("term", term)
                .field("disk_total_bytes", disk_total_bytes)
                .field("disk_free_bytes", disk_free_bytes)
                .field("keys_by_state", keys_by_state)
                .finish(),
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
