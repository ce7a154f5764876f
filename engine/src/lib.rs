//! cairn-engine: one node's disks and metadata.
//!
//! It owns the data directory layout, the blob files (written and read with
//! O_DIRECT through glommio, hashed and checksummed on the way), and the
//! RocksDB metadata (key records, blob records, references, group commit).
//! It knows nothing of HTTP, peers or raft: the `cairn` package composes it.

pub mod blocks;
pub mod datadir;
pub mod digest;
pub mod integrity;
pub mod meta;
pub mod names;
pub mod props;
pub mod reader;
pub mod record;
pub mod shard_hash;
pub mod stats;
pub mod version;
pub mod writer;

pub use blocks::{BlockCrcs, BLOCK_SIZE_BYTES};
pub use datadir::DataDir;
pub use digest::Digest;
pub use integrity::{Integrity, Written};
pub use meta::{Meta, MetaError, OutboxEntry};
pub use names::{validate_domain, validate_key, NameError, PARTS_DOMAIN};
pub use props::{CollectionRecord, DeadProp, PropsRecord};
pub use reader::{BlobReader, ReadError};
pub use record::{
    BlobRecord, IndexRecord, KeyRecord, KeyState, PendingUpload, RecordError, StoredUpload,
};
pub use shard_hash::{key_shard, Fnv};
pub use stats::NodeStats;
pub use version::{Clock, Version};
pub use writer::BlobWriter;
