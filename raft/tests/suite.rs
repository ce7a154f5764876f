//! openraft's own storage test suite, run against the RocksDB log store and
//! state machine, each test on a fresh DB in a temporary directory.

use cairn_raft::{open_db, LogStore, StateMachine, StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageIOError;
use tempfile::TempDir;

struct TempDbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for TempDbBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let db = open_db(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let log_store = LogStore::open(db.clone()).map_err(|e| StorageIOError::write(&e))?;
        let state_machine = StateMachine::open(db).map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite() -> anyhow::Result<()> {
    Suite::test_all(TempDbBuilder)?;
    Ok(())
}
