//! The work the raft thread hands to the shard that owns a key: the only
//! way the control plane reaches the data plane. The cluster crate defines
//! it and sends it; the node crate serves it (`cairn_node::replication`).

use cairn_engine::Version;
use cairn_net::{Caller, IndexEntry};
use futures_channel::{mpsc, oneshot};

/// Work queued per shard from the raft thread.
pub const SHARD_WORK_QUEUE_LEN: usize = 1024;

/// What the raft thread asks of the shard that owns a key.
pub enum ShardWork {
    /// Copy `entry`'s version from the node at `source_peer`.
    Pull {
        entry: Box<IndexEntry>,
        source_peer: String,
        caller: Caller,
        reply: oneshot::Sender<Result<(), CopyError>>,
    },
    /// The key's homes count enough copies of `version`: it is `stored`.
    MarkStored { domain: String, key: String, version: Version },
    /// A newer version or a deletion at `version` exists: drop the copy
    /// held here if it is older. Answers whether no older copy is left.
    DropIfOlder { domain: String, key: String, version: Version, reply: oneshot::Sender<bool> },
    /// The key has more copies than its class wants: drop this one, if it
    /// is still `version`.
    DropVersion { domain: String, key: String, version: Version, reply: oneshot::Sender<bool> },
    /// Replace the dead properties kept beside the key held here with
    /// `record` (a props record); answers false when the key is not here.
    PutProps { domain: String, path: String, record: Vec<u8>, reply: oneshot::Sender<bool> },
}

/// Why a copy was not made.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The same version is being copied here already.
    #[error("a copy of this version is already under way here")]
    AlreadyUnderWay,
    /// The source could not be reached, refused, hung up, or sent bytes
    /// that are not the version's.
    #[error("the source failed: {0}")]
    Source(String),
    /// This node could not store the copy.
    #[error("cannot store the copy: {0}")]
    Store(String),
}

pub type ShardWorkSender = mpsc::Sender<ShardWork>;

pub fn work_queue() -> (ShardWorkSender, mpsc::Receiver<ShardWork>) {
    mpsc::channel(SHARD_WORK_QUEUE_LEN)
}
