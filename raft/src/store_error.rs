//! [`StoreError`]: what can go wrong reading or writing the raft keyspace.
//!
//! The storage trait methods turn it into openraft's `StorageError`, naming
//! what was being read or written; opening a store returns it as is.

use thiserror::Error;

use crate::record::RecordError;
use crate::state::StateInvariantError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("column family {0:?} is missing: open the DB with cairn_raft::COLUMN_FAMILIES")]
    MissingColumnFamily(&'static str),
    #[error("corrupt record in {cf} under {key}: {source}")]
    Corrupt {
        cf: &'static str,
        key: String,
        #[source]
        source: RecordError,
    },
    #[error("the log entry under index {key_index} has index {entry_index}")]
    IndexMismatch { key_index: u64, entry_index: u64 },
    #[error("snapshot meta is stored without its data")]
    SnapshotDataMissing,
    #[error("snapshot data does not decode: {0}")]
    SnapshotData(#[source] RecordError),
    #[error("corrupt snapshot state: {0}")]
    SnapshotState(#[from] StateInvariantError),
    #[error("snapshot data covers up to {data}, its meta says {meta}")]
    SnapshotMismatch { data: String, meta: String },
    #[error("cannot encode a record: {0}")]
    Encode(#[source] RecordError),
}

impl StoreError {
    /// A record of `cf` under `key` that does not decode.
    pub(crate) fn corrupt(cf: &'static str, key: &[u8], source: RecordError) -> StoreError {
        StoreError::Corrupt { cf, key: String::from_utf8_lossy(key).into_owned(), source }
    }

    /// A log record under `index` that does not decode.
    pub(crate) fn corrupt_log(index: u64, source: RecordError) -> StoreError {
        StoreError::Corrupt { cf: crate::keys::CF_LOG, key: format!("index {index}"), source }
    }
}
