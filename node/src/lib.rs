//! One cairn node's data plane (docs/design.md §3–§5): the shards, the
//! upload pipeline, verified reads, reading and deleting a key wherever it
//! is, copies between nodes, the blob cache and the node's counters.
//!
//! Frontend-neutral: operations answer typed results and [`NodeError`]s,
//! never an HTTP status or a protocol's error code; the frontends
//! (`cairn-api`) map them. Only this crate writes key and blob records.

pub mod cache;
pub mod delete;
pub mod error;
pub mod listing;
pub mod metrics;
pub mod node;
pub mod pending;
pub mod props;
pub mod read;
pub mod recovery;
pub mod remote;
pub mod replication;
pub mod scrub;
pub mod shard;
pub mod space;
pub mod upload;

pub use error::NodeError;
pub use node::{Node, NodeConfig};
pub use shard::{Shard, ShardRequest};
