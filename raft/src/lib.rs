//! cairn-raft: the cluster state of cairn (docs/design.md §7) and the storage that
//! openraft 0.9 needs for it, in column families of the node's RocksDB.
//!
//! What it owns: the raft type configuration ([`TypeConfig`], [`Member`]),
//! the log entries ([`Command`]) and the pure state they build
//! ([`ClusterState`]), the log store ([`LogStore`]), the state machine and
//! its snapshots ([`StateMachine`]), and the raft timing
//! ([`new_raft_config`]). What it does not: peer RPC (`RaftNetwork`),
//! starting raft, and opening the node's DB (it is handed an `Arc<DB>` that
//! was opened with [`COLUMN_FAMILIES`]; [`open_db`] does that for tests).
//!
//! # On-disk format
//!
//! The raft keyspace is two column families of the node's metadata RocksDB
//! (the engine's keys stay in the default column family, see
//! `engine/FORMAT.md`). Every value this crate writes is a *record*: one
//! format-version byte, `0x01` ([`RECORD_VERSION`]), followed by UTF-8 JSON
//! (serde_json, compact). A record that is empty, has another version byte
//! or does not decode is reported as corruption ([`StoreError`]), never a
//! panic. Part of the JSON is defined by openraft's own serde derives
//! (`LogId`, `Vote`, `Membership`, `SnapshotMeta`), so an openraft upgrade
//! must be checked against this description.
//!
//! In the JSON below, a *log id* is
//! `{"leader_id":{"term":T,"node_id":N},"index":I}`: the entry at index `I`
//! (u64) written by leader `N` (u64 node id) in term `T` (u64).
//!
//! ## Column family `raft_log`: the log
//!
//! - key: 8 bytes, the log index as a u64 big-endian, so keys sort by index
//!   (a key of another length is corruption);
//! - value: a record of one `openraft::Entry`.
//!
//! An entry is `{"log_id":LOG_ID,"payload":PAYLOAD}` with `PAYLOAD` one of
//! `"Blank"`, `{"Normal":COMMAND}` or `{"Membership":MEMBERSHIP}`.
//! `COMMAND` is a [`Command`], externally tagged with its snake_case name:
//! `{"create_domain":{"name":"photos"}}`,
//! `{"put_class":{"domain":"photos","name":"thumbs","replicas":1}}` (domain
//! `null` for a cluster-wide class), `{"set_member":{"id":1,"member":MEMBER,
//! "state":"alive","voter":true}}`, and so on, field names as in the Rust
//! definition; member states are `"alive"`, `"down"`, `"dead"`, `"drain"`,
//! `"readonly"`. `MEMBERSHIP` is
//! `{"configs":[[1,2,3]],"nodes":{"1":MEMBER,...}}` (one voter set, two
//! during a joint change; node ids as decimal strings), and `MEMBER` is
//! `{"http":"HOST:PORT","peer":"HOST:PORT","zone":"a","mogile":"HOST:PORT","no_store":true}`
//! (`mogile` and `no_store` left out when empty or false). The index in the
//! key always equals the entry's `log_id.index`; a mismatch is corruption.
//! The log has no holes: it runs from the entry after `last_purged` to the
//! last key.
//!
//! ## Column family `raft_state`: vote, log pointers and the snapshot
//!
//! Keys are ASCII strings, without a terminator:
//!
//! - `vote`: a record of `{"leader_id":{"term":T,"node_id":N},"committed":BOOL}`;
//!   written synced on every vote change.
//! - `committed`: a record of the last committed log id known; absent if
//!   none is. Written buffered as commits advance.
//! - `last_purged`: a record of the log id of the last entry deleted from
//!   the front of the log; written buffered, in the same batch as the
//!   deletion.
//! - `snapshot_meta`: a record of what the current snapshot covers,
//!   `{"last_log_id":LOG_ID,"last_membership":{"log_id":LOG_ID,
//!   "membership":MEMBERSHIP},"snapshot_id":"T3-N1-42"}` (the id is the
//!   last log id, printed by openraft); written synced, in one batch with
//!   `snapshot_data`.
//! - `snapshot_data`: a record of the [`ClusterState`] (below).
//!
//! (`null` stands for an absent log id in `last_log_id` and `log_id`.)
//!
//! Snapshot data is the same record on disk and on the wire:
//! `{"members":{"1":{"member":MEMBER,"state":"alive","voter":true}},
//! "domains":["photos"],"classes":{"default":{"replicas":2}},
//! "domain_classes":{"photos":{"thumbs":{"replicas":1}}},"settings":{},
//! "decisions":["..."],"last_applied":LOG_ID,"last_membership":{...}}`.
//! Its `last_applied` and `last_membership` equal the meta's `last_log_id`
//! and `last_membership`, and it keeps the invariants of
//! [`ClusterState::check`]; a snapshot that does not is refused.
//!
//! ## Durability
//!
//! Appended entries, votes and truncations are written with a WAL sync
//! before raft is told they are done. The committed log id and purges are
//! buffered (ordered with later writes, but not synced): a crash that loses
//! them only makes the node re-apply fewer entries at start, or keep
//! entries it meant to delete. The state machine lives in memory; at start it is the
//! current snapshot's state, and openraft re-applies the log entries from
//! there up to `committed`.

mod access;
mod command;
mod config;
mod db;
mod keys;
mod log_store;
mod record;
mod state;
mod state_machine;
mod store_error;
mod types;
mod view;

pub use access::{
    AccessKey, Grant, ACCESS_KEY_COUNT_MAX, ACCESS_KEY_ID_BYTES_MAX, SEALED_SECRET_BYTES_MAX,
};
pub use command::{Collection, Command, CommandResult, Field, MemberState, Refusal};
pub use config::{
    default_raft_config, new_raft_config, RaftConfigError, APPEND_ENTRIES_MAX, CLUSTER_NAME,
    ELECTION_MAX_MS_DEFAULT, ELECTION_MIN_MS_DEFAULT, HEARTBEATS_MISSED_MIN, HEARTBEAT_MS_DEFAULT,
    INSTALL_SNAPSHOT_TIMEOUT_MS, SNAPSHOT_ENTRIES_KEPT_MAX, SNAPSHOT_ENTRIES_SINCE_LAST,
};
pub use db::open_db;
pub use keys::{CF_LOG, CF_STATE, COLUMN_FAMILIES};
pub use log_store::{LogStore, LOG_READ_ENTRIES_MAX};
pub use record::{RecordError, RECORD_VERSION};
pub use state::{
    ClassRecord, ClusterState, MemberRecord, StateInvariantError, ADDRESS_BYTES_MAX,
    CLASS_COUNT_MAX, DECISION_BYTES_MAX, DECISION_COUNT_MAX, DEFAULT_CLASS, DEFAULT_CLASS_REPLICAS,
    DOMAIN_COUNT_MAX, MEMBER_COUNT_MAX, NAME_BYTES_MAX, REPLICAS_MAX, REPLICAS_MIN,
    SETTING_COUNT_MAX, SETTING_VALUE_BYTES_MAX, ZONE_BYTES_MAX,
};
pub use state_machine::{SnapshotBuilder, StateMachine};
pub use store_error::StoreError;
pub use types::{
    Entry, LogId, Member, NodeId, Raft, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
    Vote,
};
pub use view::ClusterView;
