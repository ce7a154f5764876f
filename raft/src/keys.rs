//! Column family names and key encodings of the raft keyspace (described
//! byte by byte in the crate documentation).
//!
//! Values are encoded by `record.rs`; this module only names where they go.

use crate::record::RecordError;

/// Log entries, keyed by index.
pub const CF_LOG: &str = "raft_log";
/// Vote, committed and last-purged log ids, and the current snapshot.
pub const CF_STATE: &str = "raft_state";
/// The column families the node's RocksDB must be opened with.
pub const COLUMN_FAMILIES: &[&str] = &[CF_LOG, CF_STATE];

/// In [`CF_STATE`]: the last vote saved.
pub(crate) const KEY_VOTE: &[u8] = b"vote";
/// In [`CF_STATE`]: the last committed log id saved; absent when none is.
pub(crate) const KEY_COMMITTED: &[u8] = b"committed";
/// In [`CF_STATE`]: the id of the last log entry purged.
pub(crate) const KEY_LAST_PURGED: &[u8] = b"last_purged";
/// In [`CF_STATE`]: what the current snapshot covers.
pub(crate) const KEY_SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// In [`CF_STATE`]: the current snapshot's bytes.
pub(crate) const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

/// Length of a log key: a big-endian `u64`.
pub(crate) const LOG_KEY_BYTES: usize = 8;

/// The key of the log entry at `index`: big-endian, so keys sort by index.
pub(crate) fn log_key(index: u64) -> [u8; LOG_KEY_BYTES] {
    index.to_be_bytes()
}

/// The index a log key names.
pub(crate) fn log_index(key: &[u8]) -> Result<u64, RecordError> {
    let bytes: [u8; LOG_KEY_BYTES] =
        key.try_into().map_err(|_| RecordError::KeyLength { len_bytes: key.len() })?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_index() {
        let indexes = [0, 1, 255, 256, 65_536, u64::MAX - 1, u64::MAX];
        for pair in indexes.windows(2) {
            assert!(log_key(pair[0]) < log_key(pair[1]));
        }
        for index in indexes {
            assert_eq!(log_index(&log_key(index)).expect("a log key decodes"), index);
        }
    }

    #[test]
    fn short_log_key_is_an_error() {
        assert!(matches!(log_index(&[1, 2, 3]), Err(RecordError::KeyLength { len_bytes: 3 })));
    }
}
