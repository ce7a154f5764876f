//! What all shards of one node share: the data directory, the metadata,
//! the clock, the configuration and the counters. Everything here is
//! `Send + Sync` and lock-free on the request path.

use std::sync::Arc;
use std::time::Duration;

use cairn_cluster::Control;
use cairn_engine::{Clock, DataDir, Meta, NodeStats};

use crate::metrics::ShardMetrics;

/// Settings fixed at start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub max_object_size_bytes: u64,
    /// Blobs up to this size live in their RocksDB record, not in a file.
    pub inline_max_bytes: u64,
    /// Memory for the shards' caches of small blobs, split evenly.
    pub cache_size_bytes: usize,
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    /// A connection whose client takes no response bytes for this long ends.
    pub write_timeout: Duration,
    pub shard_count: usize,
    /// Bytes per second this node takes in by background copies (split
    /// over the shards); 0 leaves them unlimited.
    pub copy_rate_bytes_per_s: u64,
    /// Where the HTTP API listens (URLs given to tracker clients point here).
    pub http_listen: std::net::SocketAddr,
    /// A MogileFS upload not closed within this time is dropped.
    pub mogile_upload_ttl: Duration,
    /// A proxy (`--no-store`): every new version goes to a store.
    pub no_store: bool,
    /// Bytes per second scrub re-reads (split over the shards); 0 = off.
    pub scrub_rate_bytes_per_s: u64,
    /// A scrub pass starts at most this often.
    pub scrub_period: Duration,
    /// Free bytes kept on the data directory's file system for metadata.
    pub disk_reserve_bytes: u64,
    /// Once `body_timeout` has passed, a body slower than this on average
    /// is cut off (408).
    pub body_min_rate_bytes_per_s: u64,
    /// A tracker connection that sends nothing for this long is closed.
    pub mogile_idle_timeout: Duration,
    /// The tracker port takes admin commands even where HTTP asks for keys.
    pub mogile_admin: bool,
    /// The domains the tracker port serves; empty: every domain.
    pub mogile_domains: Vec<String>,
    /// S3 virtual-host style: `<bucket>.<s3_domain>` names a bucket.
    pub s3_domain: Option<String>,
    /// The region S3 clients sign for and GetBucketLocation answers.
    pub s3_region: String,
}

pub struct Node {
    pub data: DataDir,
    pub meta: Meta,
    pub control: Control,
    pub clock: Clock,
    pub config: NodeConfig,
    pub stats: Arc<NodeStats>,
    pub shard_metrics: Vec<Arc<ShardMetrics>>,
    /// Free space left for new bytes (`--disk-reserve`).
    pub space: crate::space::Space,
}

impl Node {
    pub fn node_id_hex(&self) -> String {
        format!("{:016x}", self.clock.node_id())
    }
}
