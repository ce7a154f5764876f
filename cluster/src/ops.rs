//! What the control plane is asked to do ([`AdminOp`]), what it answers
//! ([`OpReply`]) and how it fails ([`ControlError`]). All three cross the
//! wire as JSON inside `Forward`/`ForwardReply` when a follower hands an
//! operation to the leader.

use std::collections::BTreeMap;

use cairn_raft::{Command, CommandResult, Member, NodeId, Refusal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminOp {
    /// Append a command to the cluster log.
    Command(Command),
    /// Add a node (as a learner) or update its addresses.
    Join { id: NodeId, member: Member },
    /// The leader's view of the cluster, heartbeats included.
    Report,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpReply {
    Command(CommandResult),
    Joined { cluster_id: u64 },
    Report(ClusterReport),
}

/// A forwarded operation; `hops` stops a request from circling between
/// nodes that each believe another one leads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forwarded {
    pub hops: u8,
    pub op: AdminOp,
}

/// A node forwards an operation at most this many times.
pub const FORWARD_HOPS_MAX: u8 = 2;

#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlError {
    #[error(
        "no cluster leader is known (this node may be cut off from a majority of the voters); \
         admin changes need a leader, reads and writes of blobs do not"
    )]
    NoLeader,
    #[error(
        "the leader cannot reach a majority of the voters: the change was not committed within \
         {waited_ms} ms"
    )]
    NoQuorum { waited_ms: u64 },
    #[error("cannot reach the leader {leader:016x}: {reason}")]
    LeaderUnreachable { leader: NodeId, reason: String },
    #[error("cannot reach the member at {address}: {reason}")]
    PeerUnreachable { address: String, reason: String },
    #[error("{0}")]
    Refused(Refusal),
    #[error(
        "node {id} is a live member at {address}: another process cannot register under its id \
         (a copied data directory?)"
    )]
    IdInUse { id: String, address: String },
    #[error("the raft thread has stopped")]
    Stopped,
    #[error("raft failed: {0}")]
    Raft(String),
}

/// `GET /v1/cluster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterReport {
    /// The leader's node id (16 hex digits), `null` when none is known.
    pub leader: Option<String>,
    pub term: u64,
    /// The node that answered (the leader, unless it could not be reached).
    pub reported_by: String,
    pub members: Vec<MemberReport>,
    /// Per class: `green` (every key at its count), `yellow` (some under,
    /// none lost) or `red` (some key has no live copy), from the tracker's
    /// last rounds; empty from a node that is not the tracker.
    pub classes: Vec<ClassHealth>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassHealth {
    pub name: String,
    /// `null` for a cluster-wide class.
    pub domain: Option<String>,
    pub replicas: u32,
    pub health: String,
    pub keys_under: u64,
    pub keys_lost: u64,
    pub keys_over: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: String,
    pub http: String,
    pub peer: String,
    pub zone: String,
    /// `store`, or `proxy` for a member started with `--no-store`.
    #[serde(default)]
    pub role: String,
    /// The MogileFS tracker address (empty when not recorded).
    #[serde(default)]
    pub mogile: String,
    pub state: String,
    pub voter: bool,
    /// From the last heartbeat answer; `null` where the reporter has none.
    pub disk_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    /// When the leader last heard this member (unix ms).
    pub last_heartbeat_ms: Option<u64>,
    /// Key counts by state from the last heartbeat answer.
    pub keys_by_state: Option<BTreeMap<String, u64>>,
    /// How far the member's wall clock is ahead of the leader's (ms;
    /// negative: behind), from the last heartbeat.
    pub clock_offset_ms: Option<i64>,
    /// Background copies this member takes part in now, as the tracker
    /// counts them (`null` from a node that is not the tracker).
    pub copies_in_flight: Option<u32>,
}

pub fn node_id_text(id: NodeId) -> String {
    format!("{id:016x}")
}
