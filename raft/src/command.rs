//! The entries of the cluster log ([`Command`]) and what applying one
//! answers ([`CommandResult`]).
//!
//! A command is encoded in the log with serde JSON, externally tagged with
//! the snake_case variant name (`{"create_domain":{"name":"photos"}}`), so
//! renaming a variant or a field changes the on-disk format. Whether a
//! command is accepted is decided by `ClusterState::apply`, identically on
//! every node; this module only names the outcomes.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::access::{AccessKey, Grant};
use crate::types::{Member, NodeId};

/// The operating state of a member, as the tracker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Heartbeats arrive; the node takes reads, writes and new copies.
    Alive,
    /// Heartbeats stopped recently; no new copies go there, nothing is repaired yet.
    Down,
    /// Down for longer than `--dead-after`: its copies are re-replicated elsewhere.
    Dead,
    /// Being emptied by an operator: serves reads, takes no new copies.
    Drain,
    /// Serves reads only.
    Readonly,
}

impl MemberState {
    /// The lowercase name used in the log, the admin API and the MogileFS protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Down => "down",
            MemberState::Dead => "dead",
            MemberState::Drain => "drain",
            MemberState::Readonly => "readonly",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the cluster log: a change to the cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Adds a member, or replaces its addresses, state and role.
    SetMember { id: NodeId, member: Member, state: MemberState, voter: bool },
    /// Changes the state of a known member; `at_unix_ms` is when (the
    /// leader's clock; 0 in entries written before it was recorded).
    SetMemberState {
        id: NodeId,
        state: MemberState,
        #[serde(default)]
        at_unix_ms: u64,
    },
    /// Forgets a member.
    RemoveMember { id: NodeId },
    /// Creates or updates a class: cluster-wide when `domain` is `None`,
    /// otherwise a class of that domain, which overrides a cluster-wide class
    /// of the same name (MogileFS's `create_class`).
    PutClass { domain: Option<String>, name: String, replicas: u32 },
    /// Deletes a cluster-wide class or a class of one domain.
    DeleteClass { domain: Option<String>, name: String },
    /// Creates a domain (a key namespace).
    CreateDomain { name: String },
    /// Deletes a domain that has no classes of its own left. Whether it
    /// still holds keys is checked by the proposer against the metadata.
    DeleteDomain { name: String },
    /// Sets a cluster setting.
    PutSetting { name: String, value: String },
    /// Records one of the tracker's decisions, so a new tracker can carry on.
    Decision { text: String },
    /// Creates an access key (its secret sealed); refused when the id exists.
    PutAccessKey { id: String, key: AccessKey },
    /// Changes what an existing key may do: its grant in `domain` (an empty
    /// grant removes it) and, when given, `admin`.
    SetAccessGrant { id: String, domain: Option<String>, grant: Grant, admin: Option<bool> },
    /// Revokes an access key.
    DeleteAccessKey { id: String },
    /// Lets anyone read a domain's keys without credentials, or stops it.
    SetPublicRead { domain: String, public: bool },
}

/// What applying one log entry answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandResult {
    /// The state changed as asked (or the entry carried no command).
    Ok,
    /// The state machine refused the command and left the state unchanged.
    Refused { reason: Refusal },
}

impl CommandResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, CommandResult::Ok)
    }
}

/// Why the state machine refused a command. The same on every node: it
/// depends only on the state and the command.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    #[error("the default class cannot be deleted")]
    DefaultClass,
    #[error("replicas must be between {replicas_min} and {replicas_max}, not {replicas}")]
    Replicas { replicas: u32, replicas_min: u32, replicas_max: u32 },
    #[error("{what} must be {len_bytes_min} to {len_bytes_max} bytes long, not {len_bytes}")]
    Length { what: Field, len_bytes: usize, len_bytes_min: usize, len_bytes_max: usize },
    #[error("at most {count_max} {what} may exist")]
    TooMany { what: Collection, count_max: usize },
    #[error("domain {name:?} exists")]
    DomainExists { name: String },
    #[error("domain {name:?} does not exist")]
    DomainNotFound { name: String },
    #[error("domain {name:?} still has classes")]
    DomainHasClasses { name: String },
    #[error("class {name:?} does not exist {}", scope(.domain))]
    ClassNotFound { domain: Option<String>, name: String },
    #[error("member {id} does not exist")]
    MemberNotFound { id: NodeId },
    #[error("access key {id:?} does not exist")]
    AccessKeyNotFound { id: String },
    #[error("access key {id:?} exists")]
    AccessKeyExists { id: String },
}

fn scope(domain: &Option<String>) -> String {
    match domain {
        Some(name) => format!("in domain {name:?}"),
        None => "cluster-wide".to_owned(),
    }
}

/// A bounded text field of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    DomainName,
    ClassName,
    SettingName,
    SettingValue,
    DecisionText,
    HttpAddress,
    PeerAddress,
    MogileAddress,
    Zone,
    AccessKeyId,
    AccessKeyName,
    SealedSecret,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::DomainName => "a domain name",
            Field::ClassName => "a class name",
            Field::SettingName => "a setting name",
            Field::SettingValue => "a setting value",
            Field::DecisionText => "a decision",
            Field::HttpAddress => "an HTTP address",
            Field::PeerAddress => "a peer address",
            Field::MogileAddress => "a MogileFS address",
            Field::Zone => "a zone",
            Field::AccessKeyId => "an access key id",
            Field::AccessKeyName => "an access key name",
            Field::SealedSecret => "a sealed secret",
        })
    }
}

/// A bounded collection of the cluster state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collection {
    Members,
    Domains,
    Classes,
    Settings,
    AccessKeys,
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Collection::Members => "members",
            Collection::Domains => "domains",
            Collection::Classes => "classes",
            Collection::Settings => "settings",
            Collection::AccessKeys => "access keys",
        })
    }
}
