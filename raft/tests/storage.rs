//! The RocksDB raft storage across restarts, with corrupt records, and with
//! a snapshot installed while an older one is being built.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use cairn_raft::{
    open_db, ClusterState, Command, CommandResult, Entry, LogId, LogStore, Member, MemberState,
    Refusal, StateMachine, StoreError, Vote, CF_LOG, CF_STATE,
};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper,
};
use rocksdb::DB;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn member(n: u8) -> Member {
    Member {
        http: format!("10.0.0.{n}:7500"),
        peer: format!("10.0.0.{n}:7501"),
        zone: format!("zone-{n}"),
        ..Member::default()
    }
}

fn command_entry(term: u64, index: u64, command: Command) -> Entry {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(command) }
}

/// A short history: a one-voter membership, then commands, one refused.
fn history() -> Vec<Entry> {
    let membership = Membership::new(vec![BTreeSet::from([1])], BTreeMap::from([(1, member(1))]));
    vec![
        Entry { log_id: log_id(1, 1), payload: EntryPayload::Membership(membership) },
        command_entry(1, 2, Command::CreateDomain { name: "photos".to_owned() }),
        command_entry(
            1,
            3,
            Command::PutClass {
                domain: Some("photos".to_owned()),
                name: "thumbs".to_owned(),
                replicas: 1,
            },
        ),
        command_entry(
            2,
            4,
            Command::SetMember { id: 1, member: member(1), state: MemberState::Alive, voter: true },
        ),
        command_entry(2, 5, Command::Decision { text: "copy fid 9 to node 1".to_owned() }),
        command_entry(2, 6, Command::DeleteDomain { name: "videos".to_owned() }),
    ]
}

fn open(path: &Path) -> anyhow::Result<(Arc<DB>, LogStore, StateMachine)> {
    let db = open_db(path)?;
    let log_store = LogStore::open(db.clone())?;
    let state_machine = StateMachine::open(db.clone())?;
    Ok((db, log_store, state_machine))
}

#[tokio::test]
async fn reopening_restores_vote_log_committed_and_state() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let entries = history();
    let vote = Vote::new_committed(2, 1);
    let expected: ClusterState;
    {
        let (_db, mut log_store, mut state_machine) = open(dir.path())?;
        log_store.save_vote(&vote).await?;
        log_store.blocking_append(entries.clone()).await?;

        let results = state_machine.apply(entries[..3].to_vec()).await?;
        assert!(results.iter().all(CommandResult::is_ok), "{results:?}");
        let snapshot = state_machine.get_snapshot_builder().await.build_snapshot().await?;
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));

        let results = state_machine.apply(entries[3..].to_vec()).await?;
        let refusal = Refusal::DomainNotFound { name: "videos".to_owned() };
        assert_eq!(
            results,
            [CommandResult::Ok, CommandResult::Ok, CommandResult::Refused { reason: refusal }]
        );
        log_store.save_committed(Some(log_id(2, 6))).await?;
        log_store.purge(log_id(1, 2)).await?;
        expected = state_machine.view().to_state();
        assert_eq!(expected.last_applied(), Some(&log_id(2, 6)));
    }

    let (_db, mut log_store, mut state_machine) = open(dir.path())?;
    assert_eq!(log_store.read_vote().await?, Some(vote));
    assert_eq!(log_store.read_committed().await?, Some(log_id(2, 6)));
    let log_state = log_store.get_log_state().await?;
    assert_eq!(log_state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(log_state.last_log_id, Some(log_id(2, 6)));
    assert_eq!(log_store.try_get_log_entries(..).await?, entries[2..]);

    // The state machine comes back as the snapshot left it ...
    let restored = state_machine.view().to_state();
    assert_eq!(restored.last_applied(), Some(&log_id(1, 3)));
    assert_eq!(restored.replicas("photos", "thumbs"), Some(1));
    assert!(restored.decisions().is_empty());
    let snapshot = state_machine.get_current_snapshot().await?.context("a snapshot was stored")?;
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));
    assert_eq!(state_machine.applied_state().await?.1, *expected.last_membership());

    // ... and openraft re-applies the committed entries after it.
    let initial =
        StorageHelper::new(&mut log_store, &mut state_machine).get_initial_state().await?;
    assert_eq!(initial.committed, Some(log_id(2, 6)));
    assert_eq!(state_machine.view().to_state(), expected);
    Ok(())
}

#[tokio::test]
async fn corrupt_log_entry_is_an_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, mut log_store, _state_machine) = open(dir.path())?;
    log_store.blocking_append(history()).await?;
    let cf = db.cf_handle(CF_LOG).context("the log column family exists")?;
    db.put_cf(cf, 4u64.to_be_bytes(), b"\x01{\"log_id\":")?;
    assert!(log_store.try_get_log_entries(1..4).await.is_ok());
    assert!(log_store.try_get_log_entries(1..5).await.is_err());

    // An entry stored under the wrong index is corruption too.
    let misplaced = serde_json::to_vec(&history()[0])?;
    db.put_cf(cf, 6u64.to_be_bytes(), [&[1u8][..], &misplaced].concat())?;
    assert!(log_store.get_log_state().await.is_err());
    Ok(())
}

#[tokio::test]
async fn corrupt_snapshot_is_an_error() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    {
        let (db, _log_store, mut state_machine) = open(dir.path())?;
        state_machine.apply(history()).await?;
        state_machine.get_snapshot_builder().await.build_snapshot().await?;
        let cf = db.cf_handle(CF_STATE).context("the state column family exists")?;
        db.put_cf(cf, b"snapshot_data", b"\x01{}")?;
    }
    let db = open_db(dir.path())?;
    let error = StateMachine::open(db).err().context("a corrupt snapshot must not open")?;
    assert!(matches!(error, StoreError::SnapshotData(_)), "{error}");
    Ok(())
}

#[tokio::test]
async fn snapshot_built_before_an_install_does_not_replace_it() -> anyhow::Result<()> {
    let leader_dir = tempfile::tempdir()?;
    let follower_dir = tempfile::tempdir()?;
    let (_leader_db, _leader_log, mut leader) = open(leader_dir.path())?;
    let (_follower_db, _follower_log, mut follower) = open(follower_dir.path())?;
    let entries = history();

    leader.apply(entries.clone()).await?;
    let newer = leader.get_snapshot_builder().await.build_snapshot().await?;

    follower.apply(entries[..2].to_vec()).await?;
    let mut stale_builder = follower.get_snapshot_builder().await;
    let mut received = follower.begin_receiving_snapshot().await?;
    *received = *newer.snapshot;
    follower.install_snapshot(&newer.meta, received).await?;
    assert_eq!(follower.view().to_state(), leader.view().to_state());

    let stale = stale_builder.build_snapshot().await?;
    assert_eq!(stale.meta.last_log_id, Some(log_id(1, 2)));
    let current = follower.get_current_snapshot().await?.context("a snapshot was installed")?;
    assert_eq!(current.meta, newer.meta);
    Ok(())
}
