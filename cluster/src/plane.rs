//! The control plane's state on the raft thread and the operations it
//! carries out: as the leader, or by forwarding to the leader.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_raft::{ClusterView, Command, CommandResult, Member, MemberState, NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::ChangeMembers;

use super::identity::Identity;
use super::ops::{
    node_id_text, AdminOp, ClusterReport, ControlError, MemberReport, OpReply, FORWARD_HOPS_MAX,
};
use super::peers::Peers;

/// How long an admin change may wait to be committed.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a forwarded operation may take, commit included.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(8);

/// Failure detection timing (docs/design.md §6).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat: Duration,
    pub down_after: Duration,
    pub dead_after: Duration,
    /// Period of one range comparison with the homes (`anti_entropy.rs`); zero: never.
    pub rescan_interval: Duration,
    /// How long after a deletion its tombstone is kept at least (`tombstones.rs`).
    pub tombstone_grace: Duration,
    /// How long after a change of members lookups also ask non-homes.
    pub handoff_grace: Duration,
    /// Members whose clocks are off by more are logged (`--max-clock-skew`).
    pub max_clock_skew: Duration,
}

/// What a node reports about itself in a heartbeat answer.
#[derive(Debug, Clone, Default)]
pub struct LocalReport {
    pub disk_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub keys_by_state: Vec<(String, u64)>,
    /// How far the member's wall clock is ahead of the leader's (ms,
    /// negative: behind), less half the heartbeat's round trip.
    pub clock_offset_ms: i64,
}

/// What the leader last heard from a member.
#[derive(Debug, Clone)]
pub struct Health {
    pub last_answer: Instant,
    /// Unix ms of `last_answer`, `None` before the first answer.
    pub last_answer_unix_ms: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub keys_by_state: Option<BTreeMap<String, u64>>,
    pub clock_offset_ms: Option<i64>,
}

pub struct Core {
    pub identity: Arc<Identity>,
    /// Client requests need an access key even on a lone node.
    pub auth_forced: bool,
    pub raft: Raft,
    pub view: ClusterView,
    pub peers: Peers,
    /// Connections for heartbeats only, so they never wait behind other
    /// control traffic to the same member.
    pub heartbeat_peers: Peers,
    pub timing: Timing,
    /// Filled by the leader's heartbeats; empty elsewhere.
    pub health: Mutex<HashMap<NodeId, Health>>,
    /// The node's metadata, blob files and key counters.
    pub storage: crate::Storage,
    /// Each shard's queue of work from this thread, in shard order.
    pub shard_work: Vec<crate::work::ShardWorkSender>,
    /// The highest tracker term a copy command came with (fencing).
    pub term_seen: std::sync::atomic::AtomicU64,
    /// Copies started by this node as the tracker.
    pub copies: Mutex<super::tracker::CopiesInFlight>,
    /// Most background copies a node takes part in at once.
    pub copies_in_flight_max: u32,
    /// Woken when a copy or a drop ends, so the next round plans more at
    /// once instead of at the next tick.
    pub copy_ended: tokio::sync::Notify,
    /// Needs the last round gathered but did not plan (limits), for the
    /// rounds that copies ending wake.
    pub unplanned_needs: Mutex<Vec<cairn_net::IndexEntry>>,
    /// Where keys held elsewhere were found lately (docs/design.md §5): answers
    /// lookups without asking the homes, for a short while.
    pub locations: Mutex<lru::LruCache<(String, String), (cairn_net::IndexEntry, Instant)>>,
    /// Keys whose count is off, for the classes' health.
    pub key_health: Mutex<super::tracker::KeyHealth>,
    /// This core, for tasks it spawns.
    pub me: OnceLock<std::sync::Weak<Core>>,
    /// Where the last `NeedsQuery` scan of the index stopped.
    pub needs_cursor: Mutex<Option<(String, String)>>,
    /// Keys whose announcement is under way (the outbox skips them).
    pub announcing: Mutex<HashMap<(String, String), crate::outbox::Announcing>>,
    /// When the members last changed as this node saw them (or it started).
    pub members_changed: Mutex<Instant>,
}

impl Core {
    pub fn id(&self) -> NodeId {
        self.identity.id
    }

    /// Whether this node is the cluster's only member.
    pub fn is_alone(&self) -> bool {
        self.view.read(|state| state.members().len() <= 1)
    }

    /// What this node says about itself in heartbeat answers.
    pub fn local_report(&self) -> LocalReport {
        let disk = self.storage.data.disk_usage_blocking().ok();
        let stats = &self.storage.stats;
        let keys_by_state = cairn_engine::KeyState::ALL
            .iter()
            .map(|state| (state.as_str().to_owned(), stats.get(*state).0.max(0) as u64))
            .collect();
        LocalReport {
            disk_total_bytes: disk.map_or(0, |d| d.total_bytes),
            disk_free_bytes: disk.map_or(0, |d| d.free_bytes),
            keys_by_state,
            clock_offset_ms: 0,
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.id())
    }

    /// The peer address of `id` in raft's membership.
    pub fn peer_address(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.membership_config.membership().get_node(&id).map(|member| member.peer.clone())
    }

    /// Carries out `op` here if this node leads, else on the leader.
    /// `hops` counts how often it was forwarded already.
    pub async fn execute(&self, op: AdminOp, hops: u8) -> Result<OpReply, ControlError> {
        let leader = self.leader();
        if leader == Some(self.id()) {
            return self.execute_as_leader(op).await;
        }
        let forwarded = match leader {
            Some(leader) if hops < FORWARD_HOPS_MAX => match self.peer_address(leader) {
                Some(address) => {
                    let attempt = self.peers.forward(&address, &op, hops + 1, FORWARD_TIMEOUT);
                    match attempt.await {
                        Ok(reply) => reply,
                        Err(error) => Err(ControlError::LeaderUnreachable {
                            leader,
                            reason: error.to_string(),
                        }),
                    }
                }
                None => Err(ControlError::NoLeader),
            },
            _ => Err(ControlError::NoLeader),
        };
        match (op, forwarded) {
            // Without the leader, the report is what this node knows.
            (AdminOp::Report, Err(_)) => Ok(OpReply::Report(self.report())),
            (_, result) => result,
        }
    }

    async fn execute_as_leader(&self, op: AdminOp) -> Result<OpReply, ControlError> {
        match op {
            AdminOp::Command(command) => self.write(command).await.map(OpReply::Command),
            AdminOp::Join { id, member } => self.admit(id, member).await,
            AdminOp::Report => Ok(OpReply::Report(self.report())),
        }
    }

    /// Appends `command` to the log and waits for it to be applied.
    pub async fn write(&self, command: Command) -> Result<CommandResult, ControlError> {
        self.check_quorum()?;
        let written = tokio::time::timeout(COMMIT_TIMEOUT, self.raft.client_write(command)).await;
        match written {
            Err(_) => Err(ControlError::NoQuorum { waited_ms: COMMIT_TIMEOUT.as_millis() as u64 }),
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(error)) => Err(raft_error(error)),
        }
    }

    /// A leader that has not heard from a majority for longer than an
    /// election timeout cannot commit: say so at once instead of waiting.
    fn check_quorum(&self) -> Result<(), ControlError> {
        let silent_ms = self.raft.metrics().borrow().millis_since_quorum_ack;
        let limit_ms = self.raft.config().election_timeout_max;
        match silent_ms {
            Some(ms) if ms > limit_ms => Err(ControlError::NoQuorum { waited_ms: ms }),
            _ => Ok(()),
        }
    }

    /// Adds a node as a learner, or updates its addresses, then records it
    /// as a member (keeping an operator's drain/readonly).
    async fn admit(&self, id: NodeId, member: Member) -> Result<OpReply, ControlError> {
        self.check_quorum()?;
        let known = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.membership().get_node(&id).cloned()
        };
        if let Some(node) = known.as_ref().filter(|node| node.peer != member.peer) {
            if self.answered_within(id, self.timing.down_after) {
                let (id, address) = (node_id_text(id), node.peer.clone());
                return Err(ControlError::IdInUse { id, address });
            }
        }
        match known {
            None => drop(timed(self.raft.add_learner(id, member.clone(), false)).await?),
            Some(node) if node != member => {
                let nodes = BTreeMap::from([(id, member.clone())]);
                drop(
                    timed(self.raft.change_membership(ChangeMembers::SetNodes(nodes), true))
                        .await?,
                )
            }
            Some(_) => {}
        }
        let voter = self.is_voter(id);
        let state = self.view.read(|s| s.member(id).map(|r| r.state));
        let state = match state {
            Some(MemberState::Drain) => MemberState::Drain,
            Some(MemberState::Readonly) => MemberState::Readonly,
            _ => MemberState::Alive,
        };
        self.health.lock().expect("health lock").insert(id, Health::fresh());
        match self.write(Command::SetMember { id, member, state, voter }).await? {
            CommandResult::Ok => Ok(OpReply::Joined { cluster_id: self.identity.cluster_id() }),
            CommandResult::Refused { reason } => Err(ControlError::Refused(reason)),
        }
    }

    /// Whether the member answered a heartbeat of this leader lately.
    fn answered_within(&self, id: NodeId, within: Duration) -> bool {
        let health = self.health.lock().expect("health lock");
        health
            .get(&id)
            .is_some_and(|h| h.last_answer_unix_ms.is_some() && h.last_answer.elapsed() < within)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let is_voter = metrics.membership_config.membership().voter_ids().any(|v| v == id);
        is_voter
    }

    /// The members as this node knows them, with heartbeat figures where
    /// it has them (the leader does).
    pub fn report(&self) -> ClusterReport {
        let (leader, term) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_leader, metrics.current_term)
        };
        let health = self.health.lock().expect("health lock").clone();
        let leading = leader == Some(self.id());
        let copies = self.copies.lock().expect("copies lock");
        let members = self.view.read(|state| {
            state
                .members()
                .iter()
                .map(|(id, record)| {
                    let heard = health.get(id);
                    MemberReport {
                        id: node_id_text(*id),
                        http: record.member.http.clone(),
                        peer: record.member.peer.clone(),
                        zone: record.member.zone.clone(),
                        role: if record.member.no_store { "proxy" } else { "store" }.to_owned(),
                        mogile: record.member.mogile.clone(),
                        state: record.state.as_str().to_owned(),
                        voter: self.is_voter(*id),
                        disk_total_bytes: heard.and_then(|h| h.disk_total_bytes),
                        disk_free_bytes: heard.and_then(|h| h.disk_free_bytes),
                        last_heartbeat_ms: heard.and_then(|h| h.last_answer_unix_ms),
                        keys_by_state: heard.and_then(|h| h.keys_by_state.clone()),
                        clock_offset_ms: heard.and_then(|h| h.clock_offset_ms),
                        copies_in_flight: leading.then(|| copies.count(*id)),
                    }
                })
                .collect()
        });
        let classes = if leading { self.class_health() } else { Vec::new() };
        ClusterReport {
            leader: leader.map(node_id_text),
            term,
            reported_by: node_id_text(self.id()),
            members,
            classes,
        }
    }
}

impl Core {
    fn class_health(&self) -> Vec<super::ops::ClassHealth> {
        let classes: Vec<(String, Option<String>, u32)> = self.view.read(|state| {
            let mut classes: Vec<_> =
                state.classes().iter().map(|(n, c)| (n.clone(), None, c.replicas)).collect();
            for domain in state.domains() {
                for (name, class) in state.domain_classes(domain) {
                    classes.push((name.to_owned(), Some(domain.clone()), class.replicas));
                }
            }
            classes
        });
        let mut health = self.key_health.lock().expect("key health lock");
        classes
            .into_iter()
            .map(|(name, domain, replicas)| {
                let (under, lost, over) = health.counts(&name, domain.as_deref());
                let colour = match (under, lost) {
                    (_, 1..) => "red",
                    (1.., 0) => "yellow",
                    _ => "green",
                };
                super::ops::ClassHealth {
                    name,
                    domain,
                    replicas,
                    health: colour.to_owned(),
                    keys_under: under,
                    keys_lost: lost,
                    keys_over: over,
                }
            })
            .collect()
    }
}

impl Health {
    /// A member not heard from yet: counted from now, so a new leader does
    /// not call everyone down before its first round of heartbeats.
    pub fn fresh() -> Health {
        Health {
            last_answer: Instant::now(),
            last_answer_unix_ms: None,
            disk_total_bytes: None,
            disk_free_bytes: None,
            keys_by_state: None,
            clock_offset_ms: None,
        }
    }
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

async fn timed<T>(
    change: impl std::future::Future<
        Output = Result<T, RaftError<NodeId, ClientWriteError<NodeId, Member>>>,
    >,
) -> Result<T, ControlError> {
    match tokio::time::timeout(COMMIT_TIMEOUT, change).await {
        Err(_) => Err(ControlError::NoQuorum { waited_ms: COMMIT_TIMEOUT.as_millis() as u64 }),
        Ok(result) => result.map_err(raft_error),
    }
}

fn raft_error(error: RaftError<NodeId, ClientWriteError<NodeId, Member>>) -> ControlError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => ControlError::NoLeader,
        other => ControlError::Raft(other.to_string()),
    }
}
