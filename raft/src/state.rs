//! The replicated cluster state ([`ClusterState`]) and the pure function
//! that applies one command to it.
//!
//! [`ClusterState::apply`] does no I/O and reads no clock, so every node that
//! applies the same log reaches the same state and gives the same answers,
//! refusals included. Every collection has a named bound, checked before
//! anything changes. Persistence (snapshots) and the raft bookkeeping around
//! `apply` belong to `state_machine.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::access::{
    AccessKey, Grant, ACCESS_KEY_COUNT_MAX, ACCESS_KEY_ID_BYTES_MAX, SEALED_SECRET_BYTES_MAX,
};
use crate::command::{Collection, Command, CommandResult, Field, MemberState, Refusal};
use crate::types::{LogId, Member, NodeId, StoredMembership};

/// The class every domain falls back to; it always exists cluster-wide.
pub const DEFAULT_CLASS: &str = "default";
/// Replicas of the `default` class in a new cluster.
pub const DEFAULT_CLASS_REPLICAS: u32 = 2;
/// Fewest copies a class may ask for.
pub const REPLICAS_MIN: u32 = 1;
/// Most copies a class may ask for.
pub const REPLICAS_MAX: u32 = 16;

/// Longest domain, class or setting name.
pub const NAME_BYTES_MAX: usize = 255;
/// Longest setting value.
pub const SETTING_VALUE_BYTES_MAX: usize = 4096;
/// Longest `HOST:PORT` address of a member.
pub const ADDRESS_BYTES_MAX: usize = 255;
/// Longest zone name (a zone may be empty: no zone).
pub const ZONE_BYTES_MAX: usize = 64;
/// Longest decision text.
pub const DECISION_BYTES_MAX: usize = 4096;

/// Most members a cluster may have.
pub const MEMBER_COUNT_MAX: usize = 1024;
/// Most domains a cluster may have.
pub const DOMAIN_COUNT_MAX: usize = 65_536;
/// Most classes, cluster-wide and per-domain together.
pub const CLASS_COUNT_MAX: usize = 65_536;
/// Most settings a cluster may have.
pub const SETTING_COUNT_MAX: usize = 1024;
/// Decisions kept in the state; older ones are dropped as new ones arrive.
pub const DECISION_COUNT_MAX: usize = 1000;

/// A member as the cluster state knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member: Member,
    pub state: MemberState,
    /// Whether the member is meant to be a raft voter (otherwise a learner).
    pub voter: bool,
    /// When the member entered its state (unix ms by the leader that
    /// recorded it; 0 when unknown), so that a new leader counts a down
    /// member's time to `dead` from when it went down.
    #[serde(default)]
    pub state_since_unix_ms: u64,
}

/// A class: how many copies of each blob it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassRecord {
    pub replicas: u32,
}

/// Everything the cluster agrees on through raft (docs/design.md §7).
///
/// Serialized with serde JSON as snapshot data. Class keys are split in two
/// maps, cluster-wide classes and classes per domain, so every map key is a
/// string and the JSON round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    members: BTreeMap<NodeId, MemberRecord>,
    domains: BTreeSet<String>,
    /// Cluster-wide classes; always holds [`DEFAULT_CLASS`].
    classes: BTreeMap<String, ClassRecord>,
    /// Classes of one domain, overriding cluster-wide ones of the same name.
    /// Every key is in `domains`; no inner map is empty.
    domain_classes: BTreeMap<String, BTreeMap<String, ClassRecord>>,
    settings: BTreeMap<String, String>,
    /// The last [`DECISION_COUNT_MAX`] decisions, oldest first.
    decisions: VecDeque<String>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    #[serde(default)]
    access_keys: BTreeMap<String, AccessKey>,
    /// Domains anyone may read without credentials.
    #[serde(default)]
    public_read: BTreeSet<String>,
    /// Set once the cluster has had a second member; never cleared, so
    /// client authentication, once on, stays on (docs/design.md §8).
    #[serde(default)]
    clustered: bool,
    /// Set by the first access key ever made; never cleared, so a cluster
    /// whose keys were all revoked does not get a new admin key by itself.
    #[serde(default)]
    keys_made: bool,
}

impl Default for ClusterState {
    fn default() -> Self {
        let default_class = ClassRecord { replicas: DEFAULT_CLASS_REPLICAS };
        ClusterState {
            members: BTreeMap::new(),
            domains: BTreeSet::new(),
            classes: BTreeMap::from([(DEFAULT_CLASS.to_owned(), default_class)]),
            domain_classes: BTreeMap::new(),
            settings: BTreeMap::new(),
            decisions: VecDeque::new(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            access_keys: BTreeMap::new(),
            public_read: BTreeSet::new(),
            clustered: false,
            keys_made: false,
        }
    }
}

/// An invariant of [`ClusterState`] that decoded bytes broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateInvariantError {
    #[error("the default class is missing")]
    DefaultClassMissing,
    #[error("class {name:?} has {replicas} replicas")]
    Replicas { name: String, replicas: u32 },
    #[error("classes of domain {domain:?}, which does not exist")]
    OrphanClasses { domain: String },
    #[error("{what} holds {count}, more than {count_max}")]
    TooMany { what: &'static str, count: usize, count_max: usize },
}

impl ClusterState {
    /// Applies one command, or refuses it and changes nothing.
    pub fn apply(&mut self, command: &Command) -> CommandResult {
        match self.try_apply(command) {
            Ok(()) => CommandResult::Ok,
            Err(reason) => CommandResult::Refused { reason },
        }
    }

    /// Dispatches to one method per command; each checks every bound before
    /// it changes anything, so a refusal leaves the state as it was.
    fn try_apply(&mut self, command: &Command) -> Result<(), Refusal> {
        match command {
            Command::SetMember { id, member, state, voter } => {
                self.set_member(*id, member, *state, *voter)
            }
            Command::SetMemberState { id, state, at_unix_ms } => {
                self.set_member_state(*id, *state, *at_unix_ms)
            }
            Command::RemoveMember { id } => self.remove_member(*id),
            Command::PutClass { domain, name, replicas } => {
                self.put_class(domain.as_deref(), name, *replicas)
            }
            Command::DeleteClass { domain: None, name } => self.delete_class(name),
            Command::DeleteClass { domain: Some(domain), name } => {
                self.delete_domain_class(domain, name)
            }
            Command::CreateDomain { name } => self.create_domain(name),
            Command::DeleteDomain { name } => self.delete_domain(name),
            Command::PutSetting { name, value } => self.put_setting(name, value),
            Command::Decision { text } => self.record_decision(text),
            Command::PutAccessKey { id, key } => self.put_access_key(id, key),
            Command::SetAccessGrant { id, domain, grant, admin } => {
                self.set_access_grant(id, domain.as_deref(), *grant, *admin)
            }
            Command::DeleteAccessKey { id } => self
                .access_keys
                .remove(id)
                .map(drop)
                .ok_or_else(|| Refusal::AccessKeyNotFound { id: id.clone() }),
            Command::SetPublicRead { domain, public } => self.set_public_read(domain, *public),
        }
    }

    // Members.

    fn set_member(
        &mut self,
        id: NodeId,
        member: &Member,
        state: MemberState,
        voter: bool,
    ) -> Result<(), Refusal> {
        check_len(Field::HttpAddress, &member.http, 1, ADDRESS_BYTES_MAX)?;
        check_len(Field::PeerAddress, &member.peer, 1, ADDRESS_BYTES_MAX)?;
        check_len(Field::Zone, &member.zone, 0, ZONE_BYTES_MAX)?;
        check_len(Field::MogileAddress, &member.mogile, 0, ADDRESS_BYTES_MAX)?;
        if !self.members.contains_key(&id) {
            check_room(Collection::Members, self.members.len(), MEMBER_COUNT_MAX)?;
        }
        let record = MemberRecord { member: member.clone(), state, voter, state_since_unix_ms: 0 };
        self.members.insert(id, record);
        self.clustered |= self.members.len() >= 2;
        Ok(())
    }

    fn set_member_state(
        &mut self,
        id: NodeId,
        state: MemberState,
        at_unix_ms: u64,
    ) -> Result<(), Refusal> {
        let record = self.members.get_mut(&id).ok_or(Refusal::MemberNotFound { id })?;
        if record.state != state {
            record.state_since_unix_ms = at_unix_ms;
        }
        record.state = state;
        Ok(())
    }

    fn remove_member(&mut self, id: NodeId) -> Result<(), Refusal> {
        self.members.remove(&id).ok_or(Refusal::MemberNotFound { id })?;
        Ok(())
    }

    // Classes.

    fn put_class(
        &mut self,
        domain: Option<&str>,
        name: &str,
        replicas: u32,
    ) -> Result<(), Refusal> {
        check_len(Field::ClassName, name, 1, NAME_BYTES_MAX)?;
        if !(REPLICAS_MIN..=REPLICAS_MAX).contains(&replicas) {
            return Err(Refusal::Replicas {
                replicas,
                replicas_min: REPLICAS_MIN,
                replicas_max: REPLICAS_MAX,
            });
        }
        if let Some(domain) = domain {
            if !self.domains.contains(domain) {
                return Err(Refusal::DomainNotFound { name: domain.to_owned() });
            }
        }
        if self.class(domain, name).is_none() {
            check_room(Collection::Classes, self.class_count(), CLASS_COUNT_MAX)?;
        }
        let record = ClassRecord { replicas };
        match domain {
            None => self.classes.insert(name.to_owned(), record),
            Some(domain) => self
                .domain_classes
                .entry(domain.to_owned())
                .or_default()
                .insert(name.to_owned(), record),
        };
        Ok(())
    }

    /// Deletes a cluster-wide class; never the default one.
    fn delete_class(&mut self, name: &str) -> Result<(), Refusal> {
        if name == DEFAULT_CLASS {
            return Err(Refusal::DefaultClass);
        }
        self.classes
            .remove(name)
            .ok_or_else(|| Refusal::ClassNotFound { domain: None, name: name.to_owned() })?;
        Ok(())
    }

    /// Deletes a class of one domain, and the domain's map once it is empty.
    fn delete_domain_class(&mut self, domain: &str, name: &str) -> Result<(), Refusal> {
        let not_found =
            || Refusal::ClassNotFound { domain: Some(domain.to_owned()), name: name.to_owned() };
        let classes = self.domain_classes.get_mut(domain).ok_or_else(not_found)?;
        classes.remove(name).ok_or_else(not_found)?;
        if classes.is_empty() {
            self.domain_classes.remove(domain);
        }
        Ok(())
    }

    // Domains.

    fn create_domain(&mut self, name: &str) -> Result<(), Refusal> {
        check_len(Field::DomainName, name, 1, NAME_BYTES_MAX)?;
        if self.domains.contains(name) {
            return Err(Refusal::DomainExists { name: name.to_owned() });
        }
        check_room(Collection::Domains, self.domains.len(), DOMAIN_COUNT_MAX)?;
        self.domains.insert(name.to_owned());
        Ok(())
    }

    fn delete_domain(&mut self, name: &str) -> Result<(), Refusal> {
        if !self.domains.contains(name) {
            return Err(Refusal::DomainNotFound { name: name.to_owned() });
        }
        if self.domain_classes.contains_key(name) {
            return Err(Refusal::DomainHasClasses { name: name.to_owned() });
        }
        self.domains.remove(name);
        self.public_read.remove(name);
        Ok(())
    }

    // Access.

    fn put_access_key(&mut self, id: &str, key: &AccessKey) -> Result<(), Refusal> {
        check_len(Field::AccessKeyId, id, 1, ACCESS_KEY_ID_BYTES_MAX)?;
        check_len(Field::AccessKeyName, &key.name, 0, NAME_BYTES_MAX)?;
        check_len(Field::SealedSecret, &key.sealed_secret, 1, SEALED_SECRET_BYTES_MAX)?;
        for domain in key.domains.keys() {
            check_len(Field::DomainName, domain, 1, NAME_BYTES_MAX)?;
        }
        if self.access_keys.contains_key(id) {
            return Err(Refusal::AccessKeyExists { id: id.to_owned() });
        }
        check_room(Collection::AccessKeys, self.access_keys.len(), ACCESS_KEY_COUNT_MAX)?;
        self.access_keys.insert(id.to_owned(), key.clone());
        self.keys_made = true;
        Ok(())
    }

    fn set_access_grant(
        &mut self,
        id: &str,
        domain: Option<&str>,
        grant: Grant,
        admin: Option<bool>,
    ) -> Result<(), Refusal> {
        if let Some(domain) = domain {
            check_len(Field::DomainName, domain, 1, NAME_BYTES_MAX)?;
        }
        let not_found = || Refusal::AccessKeyNotFound { id: id.to_owned() };
        let key = self.access_keys.get_mut(id).ok_or_else(not_found)?;
        match domain {
            Some(domain) if grant == Grant::default() => drop(key.domains.remove(domain)),
            Some(domain) => drop(key.domains.insert(domain.to_owned(), grant)),
            None => {}
        }
        if let Some(admin) = admin {
            key.admin = admin;
        }
        Ok(())
    }

    fn set_public_read(&mut self, domain: &str, public: bool) -> Result<(), Refusal> {
        if !self.domains.contains(domain) {
            return Err(Refusal::DomainNotFound { name: domain.to_owned() });
        }
        if public {
            self.public_read.insert(domain.to_owned());
        } else {
            self.public_read.remove(domain);
        }
        Ok(())
    }

    pub fn access_key(&self, id: &str) -> Option<&AccessKey> {
        self.access_keys.get(id)
    }

    pub fn access_keys(&self) -> &BTreeMap<String, AccessKey> {
        &self.access_keys
    }

    pub fn is_public_read(&self, domain: &str) -> bool {
        self.public_read.contains(domain)
    }

    /// Whether an access key was ever made.
    pub fn keys_made(&self) -> bool {
        self.keys_made
    }

    /// Whether the cluster has ever had a second member.
    pub fn clustered(&self) -> bool {
        self.clustered
    }

    // Settings and decisions.

    fn put_setting(&mut self, name: &str, value: &str) -> Result<(), Refusal> {
        check_len(Field::SettingName, name, 1, NAME_BYTES_MAX)?;
        check_len(Field::SettingValue, value, 0, SETTING_VALUE_BYTES_MAX)?;
        if !self.settings.contains_key(name) {
            check_room(Collection::Settings, self.settings.len(), SETTING_COUNT_MAX)?;
        }
        self.settings.insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    /// Keeps the last [`DECISION_COUNT_MAX`] decisions, dropping the oldest.
    fn record_decision(&mut self, text: &str) -> Result<(), Refusal> {
        check_len(Field::DecisionText, text, 1, DECISION_BYTES_MAX)?;
        while self.decisions.len() >= DECISION_COUNT_MAX {
            self.decisions.pop_front();
        }
        self.decisions.push_back(text.to_owned());
        Ok(())
    }

    /// Replicas asked for by `class` in `domain`: the domain's own class
    /// first, then the cluster-wide one; `None` if neither exists.
    pub fn replicas(&self, domain: &str, class: &str) -> Option<u32> {
        self.class(Some(domain), class).or_else(|| self.class(None, class)).map(|c| c.replicas)
    }

    /// Exactly the class named: cluster-wide for `None`, else that domain's own.
    pub fn class(&self, domain: Option<&str>, name: &str) -> Option<&ClassRecord> {
        match domain {
            None => self.classes.get(name),
            Some(domain) => self.domain_classes.get(domain)?.get(name),
        }
    }

    /// Cluster-wide classes by name.
    pub fn classes(&self) -> &BTreeMap<String, ClassRecord> {
        &self.classes
    }

    /// The classes of one domain by name (empty if it has none of its own).
    pub fn domain_classes(&self, domain: &str) -> impl Iterator<Item = (&str, &ClassRecord)> {
        self.domain_classes.get(domain).into_iter().flatten().map(|(n, c)| (n.as_str(), c))
    }

    pub fn has_domain(&self, name: &str) -> bool {
        self.domains.contains(name)
    }

    pub fn domains(&self) -> &BTreeSet<String> {
        &self.domains
    }

    pub fn member(&self, id: NodeId) -> Option<&MemberRecord> {
        self.members.get(&id)
    }

    pub fn members(&self) -> &BTreeMap<NodeId, MemberRecord> {
        &self.members
    }

    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// The last [`DECISION_COUNT_MAX`] decisions, oldest first.
    pub fn decisions(&self) -> &VecDeque<String> {
        &self.decisions
    }

    /// The id of the last log entry applied to this state.
    pub fn last_applied(&self) -> Option<&LogId> {
        self.last_applied.as_ref()
    }

    /// The last raft membership config applied to this state.
    pub fn last_membership(&self) -> &StoredMembership {
        &self.last_membership
    }

    pub(crate) fn set_last_applied(&mut self, log_id: LogId) {
        self.last_applied = Some(log_id);
    }

    pub(crate) fn set_last_membership(&mut self, membership: StoredMembership) {
        self.last_membership = membership;
    }

    /// Checks the invariants `apply` keeps, for a state decoded from bytes.
    pub fn check(&self) -> Result<(), StateInvariantError> {
        if !self.classes.contains_key(DEFAULT_CLASS) {
            return Err(StateInvariantError::DefaultClassMissing);
        }
        let domain_classes = self.domain_classes.values().flat_map(|classes| classes.iter());
        for (name, class) in self.classes.iter().chain(domain_classes) {
            if !(REPLICAS_MIN..=REPLICAS_MAX).contains(&class.replicas) {
                let name = name.clone();
                return Err(StateInvariantError::Replicas { name, replicas: class.replicas });
            }
        }
        if let Some(domain) = self.domain_classes.keys().find(|d| !self.domains.contains(*d)) {
            return Err(StateInvariantError::OrphanClasses { domain: domain.clone() });
        }
        let counts = [
            ("members", self.members.len(), MEMBER_COUNT_MAX),
            ("domains", self.domains.len(), DOMAIN_COUNT_MAX),
            ("classes", self.class_count(), CLASS_COUNT_MAX),
            ("settings", self.settings.len(), SETTING_COUNT_MAX),
            ("decisions", self.decisions.len(), DECISION_COUNT_MAX),
        ];
        for (what, count, count_max) in counts {
            if count > count_max {
                return Err(StateInvariantError::TooMany { what, count, count_max });
            }
        }
        Ok(())
    }

    fn class_count(&self) -> usize {
        self.classes.len() + self.domain_classes.values().map(BTreeMap::len).sum::<usize>()
    }
}

fn check_len(
    what: Field,
    text: &str,
    len_bytes_min: usize,
    len_bytes_max: usize,
) -> Result<(), Refusal> {
    let len_bytes = text.len();
    if (len_bytes_min..=len_bytes_max).contains(&len_bytes) {
        Ok(())
    } else {
        Err(Refusal::Length { what, len_bytes, len_bytes_min, len_bytes_max })
    }
}

fn check_room(what: Collection, count: usize, count_max: usize) -> Result<(), Refusal> {
    if count < count_max {
        Ok(())
    } else {
        Err(Refusal::TooMany { what, count_max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(n: u16) -> Member {
        Member {
            http: format!("10.0.0.{n}:7500"),
            peer: format!("10.0.0.{n}:7501"),
            zone: "a".to_owned(),
            ..Member::default()
        }
    }

    fn refusal(result: CommandResult) -> Refusal {
        match result {
            CommandResult::Refused { reason } => reason,
            CommandResult::Ok => panic!("expected a refusal"),
        }
    }

    fn create_domain(state: &mut ClusterState, name: &str) {
        assert!(state.apply(&Command::CreateDomain { name: name.to_owned() }).is_ok());
    }

    fn put_class(domain: Option<&str>, name: &str, replicas: u32) -> Command {
        Command::PutClass { domain: domain.map(str::to_owned), name: name.to_owned(), replicas }
    }

    #[test]
    fn default_class_is_present_with_two_replicas() {
        let state = ClusterState::default();
        assert_eq!(state.replicas("any", DEFAULT_CLASS), Some(2));
        assert_eq!(state.check(), Ok(()));
    }

    #[test]
    fn default_class_cannot_be_deleted() {
        let mut state = ClusterState::default();
        let delete = Command::DeleteClass { domain: None, name: DEFAULT_CLASS.to_owned() };
        assert_eq!(refusal(state.apply(&delete)), Refusal::DefaultClass);
        assert_eq!(state, ClusterState::default());
    }

    #[test]
    fn replicas_out_of_bounds_are_refused() {
        let mut state = ClusterState::default();
        for replicas in [0, REPLICAS_MAX + 1] {
            let reason = refusal(state.apply(&put_class(None, "big", replicas)));
            assert!(matches!(reason, Refusal::Replicas { .. }), "{reason}");
        }
        assert!(state.apply(&put_class(None, "big", REPLICAS_MAX)).is_ok());
        assert_eq!(state.replicas("d", "big"), Some(REPLICAS_MAX));
    }

    #[test]
    fn domain_class_overrides_cluster_class() {
        let mut state = ClusterState::default();
        create_domain(&mut state, "photos");
        assert!(state.apply(&put_class(Some("photos"), DEFAULT_CLASS, 3)).is_ok());
        assert!(state.apply(&put_class(Some("photos"), "thumbs", 1)).is_ok());
        assert_eq!(state.replicas("photos", DEFAULT_CLASS), Some(3));
        assert_eq!(state.replicas("other", DEFAULT_CLASS), Some(2));
        assert_eq!(state.replicas("photos", "thumbs"), Some(1));
        assert_eq!(state.replicas("other", "thumbs"), None);
        let names: Vec<&str> = state.domain_classes("photos").map(|(name, _)| name).collect();
        assert_eq!(names, [DEFAULT_CLASS, "thumbs"]);

        // Deleting the override falls back to the cluster-wide default.
        let delete = Command::DeleteClass {
            domain: Some("photos".to_owned()),
            name: DEFAULT_CLASS.to_owned(),
        };
        assert!(state.apply(&delete).is_ok());
        assert_eq!(state.replicas("photos", DEFAULT_CLASS), Some(2));
    }

    #[test]
    fn domain_class_needs_its_domain() {
        let mut state = ClusterState::default();
        let reason = refusal(state.apply(&put_class(Some("nope"), "c", 2)));
        assert_eq!(reason, Refusal::DomainNotFound { name: "nope".to_owned() });
    }

    #[test]
    fn missing_class_delete_is_refused() {
        let mut state = ClusterState::default();
        create_domain(&mut state, "photos");
        for domain in [None, Some("photos".to_owned()), Some("nope".to_owned())] {
            let delete = Command::DeleteClass { domain: domain.clone(), name: "c".to_owned() };
            let reason = refusal(state.apply(&delete));
            assert_eq!(reason, Refusal::ClassNotFound { domain, name: "c".to_owned() });
        }
    }

    #[test]
    fn existing_domain_is_refused() {
        let mut state = ClusterState::default();
        create_domain(&mut state, "photos");
        let reason = refusal(state.apply(&Command::CreateDomain { name: "photos".to_owned() }));
        assert_eq!(reason, Refusal::DomainExists { name: "photos".to_owned() });
    }

    #[test]
    fn domain_with_classes_cannot_be_deleted() {
        let mut state = ClusterState::default();
        create_domain(&mut state, "photos");
        assert!(state.apply(&put_class(Some("photos"), "thumbs", 1)).is_ok());
        let delete = Command::DeleteDomain { name: "photos".to_owned() };
        assert_eq!(
            refusal(state.apply(&delete)),
            Refusal::DomainHasClasses { name: "photos".to_owned() }
        );
        let delete_class =
            Command::DeleteClass { domain: Some("photos".to_owned()), name: "thumbs".to_owned() };
        assert!(state.apply(&delete_class).is_ok());
        assert!(state.apply(&delete).is_ok());
        assert!(!state.has_domain("photos"));
        let reason = refusal(state.apply(&delete));
        assert_eq!(reason, Refusal::DomainNotFound { name: "photos".to_owned() });
    }

    #[test]
    fn empty_and_long_names_are_refused() {
        let mut state = ClusterState::default();
        for name in [String::new(), "x".repeat(NAME_BYTES_MAX + 1)] {
            let reason = refusal(state.apply(&Command::CreateDomain { name }));
            assert!(matches!(reason, Refusal::Length { what: Field::DomainName, .. }), "{reason}");
        }
        create_domain(&mut state, &"x".repeat(NAME_BYTES_MAX));
    }

    #[test]
    fn members_are_added_changed_and_removed() {
        let mut state = ClusterState::default();
        let set =
            Command::SetMember { id: 7, member: member(7), state: MemberState::Alive, voter: true };
        assert!(state.apply(&set).is_ok());
        assert!(state
            .apply(&Command::SetMemberState { id: 7, state: MemberState::Drain, at_unix_ms: 5 })
            .is_ok());
        let record = state.member(7).expect("member 7 was added");
        assert_eq!(record.state, MemberState::Drain);
        assert!(record.voter);
        assert_eq!(record.member, member(7));

        let unknown = Command::SetMemberState { id: 8, state: MemberState::Dead, at_unix_ms: 0 };
        assert_eq!(refusal(state.apply(&unknown)), Refusal::MemberNotFound { id: 8 });
        assert!(state.apply(&Command::RemoveMember { id: 7 }).is_ok());
        assert!(state.member(7).is_none());
        let again = Command::RemoveMember { id: 7 };
        assert_eq!(refusal(state.apply(&again)), Refusal::MemberNotFound { id: 7 });
    }

    #[test]
    fn member_without_address_is_refused() {
        let mut state = ClusterState::default();
        let mut bad = member(1);
        bad.peer.clear();
        let set =
            Command::SetMember { id: 1, member: bad, state: MemberState::Alive, voter: false };
        let reason = refusal(state.apply(&set));
        assert!(matches!(reason, Refusal::Length { what: Field::PeerAddress, .. }), "{reason}");
    }

    #[test]
    fn members_are_bounded() {
        let mut state = ClusterState::default();
        for id in 0..MEMBER_COUNT_MAX as u64 {
            let set = Command::SetMember {
                id,
                member: member(1),
                state: MemberState::Alive,
                voter: false,
            };
            assert!(state.apply(&set).is_ok());
        }
        let one_more = Command::SetMember {
            id: MEMBER_COUNT_MAX as u64,
            member: member(1),
            state: MemberState::Alive,
            voter: false,
        };
        let reason = refusal(state.apply(&one_more));
        assert_eq!(
            reason,
            Refusal::TooMany { what: Collection::Members, count_max: MEMBER_COUNT_MAX }
        );
        // Replacing an existing member needs no room.
        let replace =
            Command::SetMember { id: 0, member: member(2), state: MemberState::Down, voter: true };
        assert!(state.apply(&replace).is_ok());
    }

    #[test]
    fn settings_are_set_and_replaced() {
        let mut state = ClusterState::default();
        let put = |value: &str| Command::PutSetting {
            name: "dead_after_s".to_owned(),
            value: value.to_owned(),
        };
        assert!(state.apply(&put("600")).is_ok());
        assert!(state.apply(&put("900")).is_ok());
        assert_eq!(state.setting("dead_after_s"), Some("900"));
        assert_eq!(state.settings().len(), 1);
    }

    #[test]
    fn decisions_keep_only_the_last_ones() {
        let mut state = ClusterState::default();
        for n in 0..DECISION_COUNT_MAX + 5 {
            assert!(state.apply(&Command::Decision { text: format!("copy {n}") }).is_ok());
        }
        assert_eq!(state.decisions().len(), DECISION_COUNT_MAX);
        assert_eq!(state.decisions().front().map(String::as_str), Some("copy 5"));
        let last = format!("copy {}", DECISION_COUNT_MAX + 4);
        assert_eq!(state.decisions().back(), Some(&last));
        let too_long = Command::Decision { text: "x".repeat(DECISION_BYTES_MAX + 1) };
        assert!(!state.apply(&too_long).is_ok());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = ClusterState::default();
        create_domain(&mut state, "photos");
        let commands = [
            Command::SetMember {
                id: 3,
                member: member(3),
                state: MemberState::Readonly,
                voter: true,
            },
            put_class(Some("photos"), "thumbs", 1),
            put_class(None, "archive", 3),
            Command::PutSetting { name: "rebalance".to_owned(), value: "on".to_owned() },
            Command::Decision { text: "copy fid 1 to node 3".to_owned() },
        ];
        for command in &commands {
            assert!(state.apply(command).is_ok(), "{command:?}");
        }
        let json = serde_json::to_vec(&state).expect("a state serializes");
        let decoded: ClusterState = serde_json::from_slice(&json).expect("and decodes");
        assert_eq!(decoded, state);
        assert_eq!(decoded.check(), Ok(()));
    }

    #[test]
    fn commands_round_trip_through_json() {
        let command = put_class(Some("photos"), "thumbs", 1);
        let json = serde_json::to_string(&command).expect("a command serializes");
        assert_eq!(json, r#"{"put_class":{"domain":"photos","name":"thumbs","replicas":1}}"#);
        let decoded: Command = serde_json::from_str(&json).expect("and decodes");
        assert_eq!(decoded, command);
    }

    #[test]
    fn check_finds_a_missing_default_class() {
        let mut state = ClusterState::default();
        state.classes.clear();
        assert_eq!(state.check(), Err(StateInvariantError::DefaultClassMissing));
    }
}
