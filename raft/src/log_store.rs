//! [`LogStore`]: openraft's log storage (entries, vote, committed and
//! last-purged log ids) in the `raft_log` and `raft_state` column families
//! of the node's RocksDB.
//!
//! It owns no DB: it is handed one opened with [`COLUMN_FAMILIES`]. Calls
//! block on RocksDB; raft runs on its own thread, and each call is one read
//! or one write batch. Writes that raft relies on for safety (appended
//! entries, votes, truncation) are synced before they are acknowledged.
//!
//! [`COLUMN_FAMILIES`]: crate::COLUMN_FAMILIES

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{ColumnFamily, Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{log_index, log_key, CF_LOG, CF_STATE, KEY_COMMITTED, KEY_LAST_PURGED, KEY_VOTE};
use crate::record::{decode, encode};
use crate::store_error::StoreError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Most entries one `limited_get_log_entries` call returns, so a lagging
/// follower is caught up in bounded batches.
pub const LOG_READ_ENTRIES_MAX: usize = 1024;

/// The raft log, vote and log pointers of one node. Cheap to clone: clones
/// share the DB, and a clone is the log reader handed to replication tasks.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

/// Whether a write waits for the WAL to reach the disk.
#[derive(Clone, Copy)]
enum Durability {
    Synced,
    /// Written in order with later writes, but may be lost in a crash
    /// along with them.
    Buffered,
}

impl LogStore {
    /// A log store in `db`, which must have been opened with the
    /// [`COLUMN_FAMILIES`](crate::COLUMN_FAMILIES).
    pub fn open(db: Arc<DB>) -> Result<LogStore, StoreError> {
        let store = LogStore { db };
        store.cf(CF_LOG)?;
        store.cf(CF_STATE)?;
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or(StoreError::MissingColumnFamily(name))
    }

    fn read_state<T: DeserializeOwned>(&self, key: &'static [u8]) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.db.get_pinned_cf(self.cf(CF_STATE)?, key)? else {
            return Ok(None);
        };
        let value = decode(&bytes).map_err(|e| StoreError::corrupt(CF_STATE, key, e))?;
        Ok(Some(value))
    }

    fn write_state<T: Serialize>(
        &self,
        key: &'static [u8],
        value: Option<&T>,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_STATE)?;
        match value {
            Some(value) => batch.put_cf(cf, key, encode(value).map_err(StoreError::Encode)?),
            None => batch.delete_cf(cf, key),
        }
        self.write(batch, durability)
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(matches!(durability, Durability::Synced));
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// The id of the last entry in the log, if there is one.
    fn last_log_id(&self) -> Result<Option<LogId>, StoreError> {
        /// Decodes only the log id of an entry.
        #[derive(Deserialize)]
        struct EntryLogId {
            log_id: LogId,
        }
        let Some(item) = self.db.iterator_cf(self.cf(CF_LOG)?, IteratorMode::End).next() else {
            return Ok(None);
        };
        let (key, value) = item?;
        let index = log_index(&key).map_err(|e| StoreError::corrupt(CF_LOG, &key, e))?;
        let entry: EntryLogId = decode(&value).map_err(|e| StoreError::corrupt_log(index, e))?;
        check_index(index, entry.log_id.index)?;
        Ok(Some(entry.log_id))
    }

    /// Entries from `start` up to `end` (exclusive; `None` = to the last),
    /// at most `count_max` of them. Missing entries are skipped.
    fn read_entries(
        &self,
        start: u64,
        end: Option<u64>,
        count_max: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        if end.is_some_and(|end| end <= start) {
            return Ok(entries);
        }
        let start_key = log_key(start);
        let mode = IteratorMode::From(&start_key, Direction::Forward);
        for item in self.db.iterator_cf(self.cf(CF_LOG)?, mode) {
            if entries.len() >= count_max {
                break;
            }
            let (key, value) = item?;
            let index = log_index(&key).map_err(|e| StoreError::corrupt(CF_LOG, &key, e))?;
            if end.is_some_and(|end| index >= end) {
                break;
            }
            let entry: Entry = decode(&value).map_err(|e| StoreError::corrupt_log(index, e))?;
            check_index(index, entry.log_id.index)?;
            entries.push(entry);
        }
        Ok(entries)
    }

    fn append_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<(), StoreError> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                log_key(entry.log_id.index),
                encode(&entry).map_err(StoreError::Encode)?,
            );
        }
        self.write(batch, Durability::Synced)
    }

    /// Deletes entries from `index` on.
    fn truncate_from(&self, index: u64) -> Result<(), StoreError> {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        // The range end is exclusive: the key of u64::MAX goes on its own.
        batch.delete_range_cf(cf, log_key(index), log_key(u64::MAX));
        batch.delete_cf(cf, log_key(u64::MAX));
        // Synced, so that entries later appended in the place of the
        // removed ones are never mixed with them after a crash.
        self.write(batch, Durability::Synced)
    }

    /// Deletes entries up to `log_id` (inclusive) and records it as the
    /// last purged, in one atomic batch.
    fn purge_to(&self, log_id: &LogId) -> Result<(), StoreError> {
        let log_cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_STATE)?,
            KEY_LAST_PURGED,
            encode(log_id).map_err(StoreError::Encode)?,
        );
        batch.delete_range_cf(log_cf, log_key(0), log_key(log_id.index));
        batch.delete_cf(log_cf, log_key(log_id.index));
        // Only entries already in a (synced) snapshot are purged: losing
        // the purge in a crash brings them back, which is harmless.
        self.write(batch, Durability::Buffered)
    }
}

fn check_index(key_index: u64, entry_index: u64) -> Result<(), StoreError> {
    if key_index == entry_index {
        Ok(())
    } else {
        Err(StoreError::IndexMismatch { key_index, entry_index })
    }
}

/// `range` as a start index and an exclusive end (`None`: no end), or
/// `None` if it is empty.
fn index_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.checked_add(1),
        Bound::Excluded(&end) => Some(end),
        Bound::Unbounded => None,
    };
    Some((start, end))
}

fn read_logs_error(e: StoreError) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_logs_error(e: StoreError) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    /// The whole range: openraft asks for bounded ranges here (entries to
    /// apply, or to check), and bounds replication reads with
    /// `limited_get_log_entries`.
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((start, end)) = index_bounds(&range) else {
            return Ok(Vec::new());
        };
        self.read_entries(start, end, usize::MAX).map_err(read_logs_error)
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start, Some(end), LOG_READ_ENTRIES_MAX).map_err(read_logs_error)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> =
            self.read_state(KEY_LAST_PURGED).map_err(read_logs_error)?;
        let last_log_id = self.last_log_id().map_err(read_logs_error)?;
        let last_log_id = last_log_id.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_state(KEY_VOTE, Some(vote), Durability::Synced)
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_state(KEY_VOTE).map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Buffered: a committed id lost in a crash only means fewer entries
        // re-applied at start; the leader tells the rest again.
        self.write_state(KEY_COMMITTED, committed.as_ref(), Durability::Buffered)
            .map_err(write_logs_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read_state(KEY_COMMITTED).map_err(read_logs_error)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_entries(entries).map_err(write_logs_error)?;
        // The batch was written with a WAL sync: the entries are on disk.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating the raft log");
        self.truncate_from(log_id.index).map_err(write_logs_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging the raft log");
        self.purge_to(&log_id).map_err(write_logs_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_bounds_cover_every_range_shape() {
        assert_eq!(index_bounds(&(..)), Some((0, None)));
        assert_eq!(index_bounds(&(3..7)), Some((3, Some(7))));
        assert_eq!(index_bounds(&(3..=7)), Some((3, Some(8))));
        assert_eq!(index_bounds(&(3..=u64::MAX)), Some((3, None)));
        assert_eq!(index_bounds(&(5..)), Some((5, None)));
        let after_last = (Bound::Excluded(u64::MAX), Bound::Unbounded);
        assert_eq!(index_bounds(&after_last), None);
    }
}
