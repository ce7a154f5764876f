//! The openraft type configuration for cairn, and the member address record
//! that openraft carries in its membership config.
//!
//! This module owns the names other crates use for raft types; it does not
//! own the cluster state (`state.rs`) or the log entries (`command.rs`).

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandResult};

/// A raft node id: stable for the life of a node, kept in its data directory.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// cairn's raft types: commands in, command results out, members as nodes.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A raft handle for cairn.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry of cairn's raft log.
pub type Entry = openraft::Entry<TypeConfig>;
/// The id of a log entry: leader term, leader node and index.
pub type LogId = openraft::LogId<NodeId>;
/// A vote: term, candidate and whether it is committed.
pub type Vote = openraft::Vote<NodeId>;
/// What a snapshot covers: last log id, last membership, snapshot id.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Member>;
/// A membership config with the log id it was applied at.
pub type StoredMembership = openraft::StoredMembership<NodeId, Member>;
/// The error every storage trait method returns.
pub type StorageError = openraft::StorageError<NodeId>;

/// How to reach a member and where it stands.
///
/// Addresses are `HOST:PORT`; the zone is a free-form failure-domain name
/// (`--zone`), empty when the node has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The HTTP API and blob transfer address.
    pub http: String,
    /// The peer RPC address (raft and replication).
    pub peer: String,
    /// The failure domain used by placement to spread copies.
    pub zone: String,
    /// The MogileFS tracker-protocol address; empty when unknown (a
    /// member registered before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mogile: String,
    /// A proxy (`--no-store`): it holds no blobs and is never a copy or
    /// upload target; it is still a home of keys (docs/design.md §1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_store: bool,
}
