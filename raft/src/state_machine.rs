//! [`StateMachine`]: openraft's state machine over [`ClusterState`], and
//! its snapshots in the `raft_state` column family.
//!
//! The state lives in memory and is made durable only by snapshots: the
//! current snapshot (meta and data, written in one synced batch) is what a
//! node restores at start, and openraft then re-applies the committed log
//! entries after it. Snapshot data is the versioned JSON of the whole
//! `ClusterState`, the same bytes on disk and on the wire. Applying the
//! commands themselves is `state.rs`'s business.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError};
use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

use crate::command::CommandResult;
use crate::keys::{CF_STATE, KEY_SNAPSHOT_DATA, KEY_SNAPSHOT_META};
use crate::record::{decode, encode};
use crate::state::ClusterState;
use crate::store_error::StoreError;
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::view::ClusterView;

/// The cluster state machine of one node.
pub struct StateMachine {
    view: ClusterView,
    snapshots: SnapshotStore,
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    state: ClusterState,
    snapshots: SnapshotStore,
}

/// The current snapshot on disk, shared by the state machine and its
/// builders. The lock orders saves and keeps meta and data read together.
#[derive(Clone)]
struct SnapshotStore {
    db: Arc<DB>,
    /// What the stored snapshot covers; `None` when there is none.
    current: Arc<Mutex<Option<SnapshotMeta>>>,
}

/// A snapshot as stored: what it covers, and its bytes.
type StoredSnapshot = (SnapshotMeta, Vec<u8>);

/// Whether a snapshot replaces a newer stored one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// Installed from the leader: always becomes current.
    Always,
    /// Built locally, maybe while a newer one was installed: kept only if
    /// it covers at least as much of the log as the stored one.
    IfNotOlder,
}

impl SnapshotStore {
    fn open(db: Arc<DB>) -> Result<(SnapshotStore, Option<StoredSnapshot>), StoreError> {
        let store = SnapshotStore { db, current: Arc::default() };
        let cf = store.cf()?;
        let Some(meta_bytes) = store.db.get_cf(cf, KEY_SNAPSHOT_META)? else {
            return Ok((store, None));
        };
        let meta: SnapshotMeta =
            decode(&meta_bytes).map_err(|e| StoreError::corrupt(CF_STATE, KEY_SNAPSHOT_META, e))?;
        let data = store.read_data()?;
        *store.lock() = Some(meta.clone());
        Ok((store, Some((meta, data))))
    }

    fn cf(&self) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(CF_STATE).ok_or(StoreError::MissingColumnFamily(CF_STATE))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SnapshotMeta>> {
        // Poisoned only if a save panicked: a bug, not an operating error.
        self.current.lock().expect("snapshot lock poisoned by a panic")
    }

    fn read_data(&self) -> Result<Vec<u8>, StoreError> {
        let data = self.db.get_cf(self.cf()?, KEY_SNAPSHOT_DATA)?;
        data.ok_or(StoreError::SnapshotDataMissing)
    }

    fn current(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        let current = self.lock();
        let Some(meta) = current.as_ref() else {
            return Ok(None);
        };
        Ok(Some((meta.clone(), self.read_data()?)))
    }

    /// Makes `meta` and `data` the current snapshot, durably; returns
    /// whether it did (see [`Replace`]).
    fn save(&self, meta: &SnapshotMeta, data: &[u8], replace: Replace) -> Result<bool, StoreError> {
        let mut current = self.lock();
        let newer_stored =
            current.as_ref().is_some_and(|stored| stored.last_log_id > meta.last_log_id);
        if replace == Replace::IfNotOlder && newer_stored {
            return Ok(false);
        }
        let cf = self.cf()?;
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, KEY_SNAPSHOT_META, encode(meta).map_err(StoreError::Encode)?);
        batch.put_cf(cf, KEY_SNAPSHOT_DATA, data);
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        *current = Some(meta.clone());
        Ok(true)
    }
}

/// The state a snapshot holds, checked against what its meta says.
fn decode_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<ClusterState, StoreError> {
    let state: ClusterState = decode(data).map_err(StoreError::SnapshotData)?;
    state.check()?;
    if state.last_applied() != meta.last_log_id.as_ref()
        || state.last_membership() != &meta.last_membership
    {
        return Err(StoreError::SnapshotMismatch {
            data: describe(state.last_applied(), state.last_membership()),
            meta: describe(meta.last_log_id.as_ref(), &meta.last_membership),
        });
    }
    Ok(state)
}

fn describe(last_applied: Option<&LogId>, membership: &StoredMembership) -> String {
    match last_applied {
        Some(log_id) => format!("log id {log_id} with membership {membership}"),
        None => format!("no log id, with membership {membership}"),
    }
}

impl StateMachine {
    /// The state machine stored in `db` (opened with the
    /// [`COLUMN_FAMILIES`](crate::COLUMN_FAMILIES)): the current snapshot's
    /// state, or the initial state if there is no snapshot yet.
    pub fn open(db: Arc<DB>) -> Result<StateMachine, StoreError> {
        let (snapshots, current) = SnapshotStore::open(db)?;
        let state = match current {
            Some((meta, data)) => decode_snapshot(&meta, &data)?,
            None => ClusterState::default(),
        };
        Ok(StateMachine { view: ClusterView::new(state), snapshots })
    }

    /// A handle to read the applied state from outside raft.
    pub fn view(&self) -> ClusterView {
        self.view.clone()
    }
}

fn apply_entry(state: &mut ClusterState, entry: Entry) -> CommandResult {
    state.set_last_applied(entry.log_id);
    match entry.payload {
        EntryPayload::Blank => CommandResult::Ok,
        EntryPayload::Normal(command) => {
            let result = state.apply(&command);
            if let CommandResult::Refused { reason } = &result {
                tracing::debug!(log_id = %entry.log_id, %reason, "command refused");
            }
            result
        }
        EntryPayload::Membership(membership) => {
            state.set_last_membership(StoredMembership::new(Some(entry.log_id), membership));
            CommandResult::Ok
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.view.read(|state| (state.last_applied().copied(), state.last_membership().clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        Ok(self.view.write(|state| entries.into_iter().map(|e| apply_entry(state, e)).collect()))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { state: self.view.to_state(), snapshots: self.snapshots.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = decode_snapshot(meta, &data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.snapshots
            .save(meta, &data, Replace::Always)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.view.write(|current| *current = state);
        tracing::info!(%meta, "installed a snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current =
            self.snapshots.current().map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(current.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = encode(&self.state)
            .map_err(|e| StorageIOError::write_snapshot(None, &StoreError::Encode(e)))?;
        let last_log_id = self.state.last_applied().copied();
        // The same log id always means the same state and the same bytes,
        // so the id needs nothing else to be unique.
        let snapshot_id = match &last_log_id {
            Some(log_id) => log_id.to_string(),
            None => "empty".to_owned(),
        };
        let last_membership = self.state.last_membership().clone();
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
        let saved = self
            .snapshots
            .save(&meta, &data, Replace::IfNotOlder)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        if saved {
            tracing::info!(%meta, "built a snapshot");
        } else {
            tracing::info!(%meta, "built a snapshot older than the one installed meanwhile");
        }
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}
