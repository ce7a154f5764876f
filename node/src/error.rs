//! What can go wrong in the node's operations, as types a frontend maps
//! to its own answers (`cairn_api::http::error` for HTTP, the MogileFS
//! error map for the tracker protocol). Nothing here knows a status code.

use std::io;
use std::time::Duration;

use cairn_engine::{Digest, MetaError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The key (or resource) a change is about does not exist.
    #[error("no such key")]
    NotFound,
    /// This node holds no such key (a reader may look elsewhere).
    #[error("no key {key:?} in domain {domain:?}")]
    NotHere { domain: String, key: String },
    /// Neither this node nor the key's homes know the key.
    #[error("no key {key:?} in domain {domain:?}")]
    Unknown { domain: String, key: String },
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("shard {0} did not answer")]
    ShardGone(usize),
    /// The key changed since the caller read it (a MOVE's source).
    #[error("the key changed while this request ran")]
    Changed,
    /// A record would exceed its bound (dead properties).
    #[error("{0}")]
    Full(&'static str),
    #[error("unknown class {0:?}")]
    UnknownClass(String),
    /// The bytes received do not hash to what was announced.
    #[error("{0}")]
    DigestMismatch(String),
    /// The headers a version would keep are longer than a record holds.
    #[error("the headers kept with an object are limited to {max_bytes} bytes")]
    HeadersTooLong { max_bytes: usize },
    #[error("objects are limited to {max_bytes} bytes on this node")]
    TooLarge { max_bytes: u64 },
    /// The body stopped arriving for longer than the node waits.
    #[error("no body bytes arrived for {} ms", .timeout.as_millis())]
    BodyStalled { timeout: Duration },
    /// The body failed on its way (a broken connection, bad framing).
    #[error("request body failed: {0}")]
    BodyFailed(String),
    /// This node's copy failed its checksum (the file is quarantined).
    #[error("{0}")]
    Corrupt(String),
    /// This node has no intact copy of the blob (removed or quarantined).
    #[error("this node has no intact copy of {0}")]
    NoIntactCopy(Digest),
    /// The key's holders are all down or dead.
    #[error("no live holder of {0}")]
    NoHolder(Digest),
    /// No holder could be reached to stream the key from.
    #[error("no holder of {sha256} could be reached: {reason}")]
    NoHolderReachable { sha256: Digest, reason: String },
    /// None of the key's homes (nor any other member) could be asked
    /// where the key is.
    #[error("none of the key's home nodes could be reached; retry")]
    HomesUnreachable,
    /// None of the key's homes recorded a deletion.
    #[error(
        "none of the key's home nodes confirmed the deletion (it may still take effect); retry"
    )]
    NoHome,
    /// Too many members were silent for a listing to hold every key.
    #[error(transparent)]
    MembersUnreachable(#[from] cairn_cluster::ListUnanswered),
    /// A change of a pending upload or of a key was refused.
    #[error(transparent)]
    Refused(#[from] crate::pending::KeyOpRefused),
    /// Every copy of the key failed its checksum or went missing: the
    /// homes know the key and no holder.
    #[error("every copy of {key:?} in domain {domain:?} was found damaged or missing")]
    Lost { domain: String, key: String },
    /// Taking the bytes would leave less than `--disk-reserve` free.
    #[error("no space left on this node's disk (it keeps --disk-reserve free)")]
    DiskFull,
    /// This node is a proxy (`--no-store`): it keeps no blobs.
    #[error("this node is a proxy (--no-store) and keeps no blobs")]
    NotAStore,
    /// A copy from a peer failed (the peer refused, hung up, or sent the
    /// wrong bytes).
    #[error("{0}")]
    CopyFailed(String),
}

impl NodeError {
    /// Whether the failure is this node's copy being damaged or gone, so
    /// that another holder's copy may serve.
    pub fn is_damaged_copy(&self) -> bool {
        matches!(self, NodeError::Corrupt(_) | NodeError::NoIntactCopy(_))
    }
}
