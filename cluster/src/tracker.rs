//! The leader's duties (docs/design.md §6, §7): heartbeat every member, mark the
//! silent ones `down` and then `dead`, bring back the ones that answer,
//! and keep 3 voters (5 from 5 members), replacing dead ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_net::{IndexEntry, Message};
use cairn_raft::{Command, MemberState, NodeId};
use openraft::ChangeMembers;

use crate::placement::{self, CopyCommand, KeyNeed, Limits, NodeView, RemoveCommand};
use crate::plane::{unix_ms, Core, Health, LocalReport, COMMIT_TIMEOUT};

/// Voters wanted: 3, or 5 once there are at least 5 members.
pub fn voters_wanted(member_count: usize) -> usize {
    if member_count >= 5 {
        5
    } else {
        3
    }
}

/// A learner this far behind the leader's log is not promoted yet.
const PROMOTION_LAG_MAX: u64 = 100;

pub async fn run(core: Arc<Core>) {
    let mut was_leader = false;
    let mut ticker = tokio::time::interval(core.timing.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let leading = core.is_leader();
        if leading && !was_leader {
            // Everyone gets a fresh start with a new leader.
            let ids: Vec<NodeId> = core.view.read(|s| s.members().keys().copied().collect());
            let mut health = core.health.lock().expect("health lock");
            health.clear();
            health.extend(ids.into_iter().map(|id| (id, Health::fresh())));
        }
        if !leading && was_leader {
            core.health.lock().expect("health lock").clear();
        }
        was_leader = leading;
        if !leading {
            continue;
        }
        heartbeat_all(&core).await;
        if let Err(error) = judge_members(&core).await {
            tracing::info!(%error, "cannot record member states");
        }
        if let Err(error) = keep_voters(&core).await {
            tracing::info!(%error, "cannot change the voters");
        }
    }
}

/// The leader's replication rounds, on their own loop so that a slow round
/// (a member slow to answer, a raft write) never delays the heartbeats
/// that decide who is alive.
pub async fn run_replication(core: Arc<Core>) {
    let mut ticker = tokio::time::interval(core.timing.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A round at every tick, and sooner when a copy ends: repair then
        // runs at the pace copies finish, not one batch per tick.
        let fresh = tokio::select! {
            _ = ticker.tick() => true,
            _ = core.copy_ended.notified() => {
                tokio::time::sleep(ROUND_GAP_MIN).await;
                false
            }
        };
        if core.is_leader() {
            replicate_round(&core, fresh).await;
        }
    }
}

/// The least time between two replication rounds that copies ending woke.
const ROUND_GAP_MIN: Duration = Duration::from_millis(20);

/// Sends one heartbeat to every member at once; records who answered.
async fn heartbeat_all(core: &Arc<Core>) {
    let term = core.raft.metrics().borrow().current_term;
    let targets: Vec<(NodeId, String)> = core.view.read(|s| {
        s.members().iter().map(|(id, record)| (*id, record.member.peer.clone())).collect()
    });
    let mut tasks = Vec::with_capacity(targets.len());
    for (id, address) in targets {
        let core = core.clone();
        tasks.push(tokio::spawn(async move {
            if id == core.id() {
                return (id, Some(core.local_report()));
            }
            let sent_ms = unix_ms();
            let heartbeat = Message::Heartbeat { term, leader_id: core.id(), sent_ms };
            let answer =
                core.heartbeat_peers.call(&address, &heartbeat, core.timing.heartbeat).await;
            match answer {
                Ok(Message::HeartbeatReply {
                    node_id,
                    disk_total_bytes,
                    disk_free_bytes,
                    keys_by_state,
                    clock_ms,
                    ..
                }) if node_id == id => {
                    let clock_offset_ms = clock_offset(sent_ms, clock_ms, unix_ms());
                    let report =
                        LocalReport { disk_total_bytes, disk_free_bytes, keys_by_state, clock_offset_ms };
                    (id, Some(report))
                }
                // Another node at this member's address (its disk was
                // replaced, say): the member itself is silent, so it goes
                // down and then dead, and its copies are made again.
                Ok(Message::HeartbeatReply { node_id, .. }) => {
                    let (member, answered) = (format!("{id:016x}"), format!("{node_id:016x}"));
                    tracing::warn!(%member, %answered, %address, "another node answers at a member's address");
                    (id, None)
                }
                Ok(other) => {
                    tracing::debug!(node = %format!("{id:016x}"), ?other, "odd heartbeat answer");
                    (id, None)
                }
                Err(error) => {
                    tracing::debug!(node = %format!("{id:016x}"), %error, "heartbeat failed");
                    (id, None)
                }
            }
        }));
    }
    for task in tasks {
        let Ok((id, answer)) = task.await else { continue };
        let mut health = core.health.lock().expect("health lock");
        let entry = health.entry(id).or_insert_with(Health::fresh);
        if let Some(report) = answer {
            entry.last_answer = Instant::now();
            entry.last_answer_unix_ms = Some(unix_ms());
            entry.disk_total_bytes = Some(report.disk_total_bytes);
            entry.disk_free_bytes = Some(report.disk_free_bytes);
            entry.keys_by_state = Some(report.keys_by_state.into_iter().collect());
            entry.clock_offset_ms = Some(report.clock_offset_ms);
            if report.clock_offset_ms.unsigned_abs() > core.timing.max_clock_skew.as_millis() as u64
            {
                let (node, offset_ms) = (format!("{id:016x}"), report.clock_offset_ms);
                tracing::warn!(%node, offset_ms, "a member's clock is off by more than --max-clock-skew");
            }
        }
    }
}

/// How far a member's clock (`clock_ms`, read when it answered) is ahead
/// of the leader's: the answer was made, on the leader's clock, about
/// halfway between sending and receiving.
fn clock_offset(sent_ms: u64, clock_ms: u64, received_ms: u64) -> i64 {
    let midway = sent_ms / 2 + received_ms / 2;
    clock_ms as i64 - midway as i64
}

/// How long a `down` member has been silent at least, from when the
/// cluster state says it went down (it was silent `down_after` by then):
/// a new leader does not start counting again.
/// A member that answered this leader since it went down is judged by
/// this leader's own count alone.
fn silence_since_down(
    record: &cairn_raft::MemberRecord,
    answered_at_unix_ms: Option<u64>,
    down_after: Duration,
) -> Duration {
    let since = record.state_since_unix_ms;
    let answered_since = answered_at_unix_ms.is_some_and(|answered| answered >= since);
    if record.state != MemberState::Down || since == 0 || answered_since {
        return Duration::ZERO;
    }
    let down_for_ms = unix_ms().saturating_sub(record.state_since_unix_ms);
    Duration::from_millis(down_for_ms) + down_after
}

/// The state a member should be in after `silent` without an answer.
pub fn judged_state(
    state: MemberState,
    silent: Duration,
    down_after: Duration,
    dead_after: Duration,
) -> MemberState {
    match state {
        MemberState::Down | MemberState::Dead if silent < down_after => MemberState::Alive,
        MemberState::Down if silent >= dead_after => MemberState::Dead,
        MemberState::Alive | MemberState::Drain | MemberState::Readonly if silent >= down_after => {
            MemberState::Down
        }
        unchanged => unchanged,
    }
}

async fn judge_members(core: &Core) -> Result<(), String> {
    let now = Instant::now();
    let changes: Vec<(NodeId, MemberState)> = {
        let health = core.health.lock().expect("health lock");
        core.view.read(|state| {
            state
                .members()
                .iter()
                .filter_map(|(id, record)| {
                    let heard = health.get(id).map_or(Duration::ZERO, |h| now - h.last_answer);
                    let timing = core.timing;
                    let answered_at = health.get(id).and_then(|h| h.last_answer_unix_ms);
                    let silent =
                        heard.max(silence_since_down(record, answered_at, timing.down_after));
                    let next =
                        judged_state(record.state, silent, timing.down_after, timing.dead_after);
                    (next != record.state).then_some((*id, next))
                })
                .collect()
        })
    };
    for (id, state) in changes {
        tracing::info!(node = %format!("{id:016x}"), state = state.as_str(), "member state");
        let command = Command::SetMemberState { id, state, at_unix_ms: unix_ms() };
        core.write(command).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One voter change per round: replace a dead voter with a live, caught-up
/// learner, or add one while there are fewer voters than wanted.
async fn keep_voters(core: &Core) -> Result<(), String> {
    let (voters, learners, last_index, matched) = {
        let metrics = core.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();
        let matched = metrics.replication.clone().unwrap_or_default();
        (voters, learners, metrics.last_log_index.unwrap_or(0), matched)
    };
    let member_count = voters.len() + learners.len();
    let state_of = |id: NodeId| core.view.read(|s| s.member(id).map(|r| r.state));
    let candidate = learners.iter().copied().find(|id| {
        let caught_up = matched
            .get(id)
            .and_then(|log_id| log_id.as_ref())
            .is_some_and(|log_id| log_id.index + PROMOTION_LAG_MAX >= last_index);
        matches!(state_of(*id), Some(MemberState::Alive)) && caught_up
    });
    let Some(candidate) = candidate else { return Ok(()) };
    let dead = voters.iter().copied().find(|id| state_of(*id) == Some(MemberState::Dead));
    let change = match dead {
        Some(dead) => {
            let mut next = voters.clone();
            next.remove(&dead);
            next.insert(candidate);
            tracing::info!(dead = %format!("{dead:016x}"), with = %format!("{candidate:016x}"), "replacing a dead voter");
            ChangeMembers::ReplaceAllVoters(next)
        }
        None if voters.len() < voters_wanted(member_count) => {
            tracing::info!(node = %format!("{candidate:016x}"), "promoting a learner to voter");
            ChangeMembers::AddVoterIds(BTreeSet::from([candidate]))
        }
        None => return Ok(()),
    };
    let changed = tokio::time::timeout(COMMIT_TIMEOUT, core.raft.change_membership(change, true));
    match changed.await {
        Err(_) => return Err("the voter change was not committed in time".into()),
        Ok(Err(error)) => return Err(error.to_string()),
        Ok(Ok(_)) => {}
    }
    // Keep the members' voter flags in the state in step with raft.
    for id in [Some(candidate), dead].into_iter().flatten() {
        let record = core.view.read(|s| s.member(id).cloned());
        if let Some(record) = record {
            let voter = core.is_voter(id);
            let command =
                Command::SetMember { id, member: record.member, state: record.state, voter };
            core.write(command).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Keys asked of each member per round.
const NEEDS_PER_MEMBER_MAX: u32 = 256;
/// How long dropping an extra copy may take.
const COPY_DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one copy may take before the tracker stops counting it.
const COPY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A key whose copy count is off stops counting against its class's health
/// once the homes have not reported it for this long.
const HEALTH_WINDOW: Duration = Duration::from_secs(10);

/// Keys whose count is off, as the last rounds saw them.
#[derive(Default)]
pub struct KeyHealth {
    keys: std::collections::HashMap<(String, String), (String, Shortfall, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortfall {
    Under,
    Lost,
    Over,
}

impl Shortfall {
    /// How a key with `lasting` lasting copies misses the `wanted` count.
    fn of(lasting: usize, wanted: u32) -> Shortfall {
        match lasting {
            0 => Shortfall::Lost,
            n if n < wanted as usize => Shortfall::Under,
            _ => Shortfall::Over,
        }
    }
}

impl KeyHealth {
    fn record(&mut self, need: &IndexEntry, shortfall: Shortfall, now: Instant) {
        self.keys.insert(key_of(need), (need.class.clone(), shortfall, now));
    }

    /// `(under, lost, over)` counts for a class (of one domain, or
    /// cluster-wide for keys of domains without their own class of that name).
    pub fn counts(&mut self, class: &str, domain: Option<&str>) -> (u64, u64, u64) {
        self.keys.retain(|_, (_, _, seen)| seen.elapsed() < HEALTH_WINDOW);
        let mut counts = (0, 0, 0);
        for ((key_domain, _), (key_class, shortfall, _)) in &self.keys {
            if key_class != class || domain.is_some_and(|d| d != key_domain) {
                continue;
            }
            match shortfall {
                Shortfall::Under => counts.0 += 1,
                Shortfall::Lost => counts.1 += 1,
                Shortfall::Over => counts.2 += 1,
            }
        }
        counts
    }
}

/// Copies the tracker has started and not seen end.
#[derive(Default)]
pub struct CopiesInFlight {
    per_node: std::collections::HashMap<NodeId, u32>,
    /// Copies under way per key.
    keys: std::collections::HashMap<(String, String), u32>,
    /// Copies that failed per key since it last got one, `(source, target)`.
    failed: std::collections::HashMap<(String, String), Vec<(NodeId, NodeId)>>,
}

/// Failed pairs remembered per key; older ones are forgotten first.
const FAILED_PAIRS_PER_KEY_MAX: usize = 8;
/// Keys whose failures are remembered; past it the memory starts afresh
/// (it only orders choices, so forgetting costs a retry, never a copy).
const FAILED_KEYS_MAX: usize = 100_000;

impl CopiesInFlight {
    pub fn count(&self, id: NodeId) -> u32 {
        self.per_node.get(&id).copied().unwrap_or(0)
    }

    fn start(&mut self, key: (String, String), source: NodeId, target: NodeId) {
        *self.per_node.entry(source).or_default() += 1;
        *self.per_node.entry(target).or_default() += 1;
        *self.keys.entry(key).or_default() += 1;
    }

    fn end(&mut self, key: &(String, String), source: NodeId, target: NodeId, ok: bool) {
        for id in [source, target] {
            if let Some(count) = self.per_node.get_mut(&id) {
                *count = count.saturating_sub(1);
            }
        }
        self.release(key);
        if ok {
            self.failed.remove(key);
            return;
        }
        if self.failed.len() >= FAILED_KEYS_MAX && !self.failed.contains_key(key) {
            self.failed.clear();
        }
        let pairs = self.failed.entry(key.clone()).or_default();
        if pairs.len() == FAILED_PAIRS_PER_KEY_MAX {
            pairs.remove(0);
        }
        pairs.push((source, target));
    }

    /// The copies of `key` that failed since it last got one.
    fn failures(&self, key: &(String, String)) -> Vec<(NodeId, NodeId)> {
        self.failed.get(key).cloned().unwrap_or_default()
    }

    /// Marks a key busy (a drop under way) without counting a copy.
    fn hold(&mut self, key: (String, String)) {
        *self.keys.entry(key).or_default() += 1;
    }

    fn release(&mut self, key: &(String, String)) {
        if let Some(count) = self.keys.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                self.keys.remove(key);
            }
        }
    }
}

// One replication round is a short driver around pure decisions. The driver
// takes a snapshot (the members, the homes' answers, the heartbeat figures,
// the copies in flight) and does the I/O; `MergedNeeds`, `shortfall`,
// `node_views` and `plan_round` decide from that snapshot alone, with no I/O
// and no clock, like `placement`.

/// A member as one replication round sees it.
#[derive(Debug, Clone)]
struct RoundMember {
    id: NodeId,
    /// Peer RPC address, `host:port`.
    peer: String,
    state: MemberState,
    zone: String,
    /// False for a proxy (`--no-store`).
    stores: bool,
}

/// A copy to start: `target` pulls `entry`'s version from `source`.
#[derive(Debug, Clone, PartialEq)]
struct CopyAction {
    entry: IndexEntry,
    source: NodeId,
    target: NodeId,
    source_peer: String,
    target_peer: String,
}

/// An extra copy to drop: the holder at `holder_peer` drops `entry`'s version.
#[derive(Debug, Clone, PartialEq)]
struct DropAction {
    entry: IndexEntry,
    holder_peer: String,
}

/// What a round decided: the text the log records first, then what to run.
#[derive(Debug, Clone, PartialEq)]
struct RoundPlan {
    decision: String,
    drops: Vec<DropAction>,
    copies: Vec<CopyAction>,
}

/// A key as the tracker tracks it: `(domain, key)`.
fn key_of(entry: &IndexEntry) -> (String, String) {
    (entry.domain.clone(), entry.key.clone())
}

/// Members that are asked for their needs: not the silent ones.
fn is_asked_for_needs(state: MemberState) -> bool {
    !matches!(state, MemberState::Down | MemberState::Dead)
}

/// The homes' answers merged into one need per key, in the order first seen.
#[derive(Default)]
struct MergedNeeds {
    needs: Vec<IndexEntry>,
    /// Index in `needs` of each key seen.
    seen: std::collections::HashMap<(String, String), usize>,
}

impl MergedNeeds {
    /// Adds one home's answer, leaving out keys with a copy or a drop under
    /// way. Homes may disagree: the newest version wins, and what they know
    /// of its holders adds up.
    fn add(&mut self, answer: Vec<IndexEntry>, busy: &CopiesInFlight) {
        for need in answer {
            let key = key_of(&need);
            if busy.keys.contains_key(&key) {
                continue;
            }
            let Some(&at) = self.seen.get(&key) else {
                self.seen.insert(key, self.needs.len());
                self.needs.push(need);
                continue;
            };
            let known = &mut self.needs[at];
            if (need.hlc, need.writer) > (known.hlc, known.writer) {
                *known = need;
            } else if (need.hlc, need.writer) == (known.hlc, known.writer) {
                for holder in need.holders {
                    if !known.holders.contains(&holder) {
                        known.holders.push(holder);
                    }
                }
            }
        }
    }

    fn into_needs(self) -> Vec<IndexEntry> {
        self.needs
    }
}

/// How `need`'s copy count is off, counting only its lasting holders
/// (`Alive`, `Readonly`, `Down`) among `members`.
fn shortfall(need: &IndexEntry, members: &[RoundMember]) -> Shortfall {
    let lasting = need
        .holders
        .iter()
        .filter(|holder| {
            members.iter().any(|member| {
                member.id == **holder
                    && matches!(
                        member.state,
                        MemberState::Alive | MemberState::Readonly | MemberState::Down
                    )
            })
        })
        .count();
    Shortfall::of(lasting, need.wanted)
}

/// The members as placement sees them: disk figures from the last
/// heartbeats (0 when not heard), copies from those in flight.
fn node_views(
    members: &[RoundMember],
    health: &std::collections::HashMap<NodeId, Health>,
    busy: &CopiesInFlight,
) -> Vec<NodeView> {
    members
        .iter()
        .map(|member| {
            let heard = health.get(&member.id);
            NodeView {
                id: member.id,
                zone: member.zone.clone(),
                state: member.state,
                stores: member.stores,
                free_bytes: heard.and_then(|h| h.disk_free_bytes).unwrap_or(0),
                total_bytes: heard.and_then(|h| h.disk_total_bytes).unwrap_or(0),
                copies_in_flight: busy.count(member.id),
            }
        })
        .collect()
}

fn key_needs(needs: &[IndexEntry], busy: &CopiesInFlight) -> Vec<KeyNeed> {
    needs
        .iter()
        .map(|n| KeyNeed {
            failed: busy.failures(&key_of(n)),
            domain: n.domain.clone(),
            key: n.key.clone(),
            sha256: cairn_engine::Digest(n.sha256),
            size_bytes: n.size_bytes,
            wanted: n.wanted,
            holders: n.holders.clone(),
        })
        .collect()
}

/// The decision as the log records it: counts, then up to 8 copies and 8
/// drops, cut (between characters) to what a decision may hold.
fn decision_text(
    term: u64,
    needs: &[IndexEntry],
    copies: &[CopyCommand],
    removals: &[RemoveCommand],
) -> String {
    let mut text = format!("term {term}: {} copies, {} removals", copies.len(), removals.len());
    for copy in copies.iter().take(8) {
        let need = &needs[copy.need];
        text +=
            &format!("; {}/{} {:016x}->{:016x}", need.domain, need.key, copy.source, copy.target);
    }
    for removal in removals.iter().take(8) {
        let need = &needs[removal.need];
        text += &format!("; {}/{} drop at {:016x}", need.domain, need.key, removal.holder);
    }
    // Keys are any UTF-8: cut between characters, or `truncate` panics.
    let mut cut = text.len().min(cairn_raft::DECISION_BYTES_MAX);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// Plans the copies and drops for `needs` (`placement`), each with the peer
/// addresses it runs against; `None` when there is nothing to do. A command
/// whose node has no known address is in the decision but not run.
fn plan_round(
    term: u64,
    members: &[RoundMember],
    nodes: &[NodeView],
    needs: &[IndexEntry],
    busy: &CopiesInFlight,
    limits: Limits,
) -> Option<RoundPlan> {
    let key_needs = key_needs(needs, busy);
    let copies = placement::plan_copies(nodes, &key_needs, limits);
    let removals = placement::plan_removals(nodes, &key_needs);
    if copies.is_empty() && removals.is_empty() {
        return None;
    }
    let decision = decision_text(term, needs, &copies, &removals);
    let peer_of = |id: NodeId| members.iter().find(|m| m.id == id).map(|m| m.peer.clone());
    let drops = removals
        .iter()
        .filter_map(|removal| {
            let holder_peer = peer_of(removal.holder)?;
            Some(DropAction { entry: needs[removal.need].clone(), holder_peer })
        })
        .collect();
    let copies = copies
        .iter()
        .filter_map(|copy| {
            Some(CopyAction {
                entry: needs[copy.need].clone(),
                source: copy.source,
                target: copy.target,
                source_peer: peer_of(copy.source)?,
                target_peer: peer_of(copy.target)?,
            })
        })
        .collect();
    Some(RoundPlan { decision, drops, copies })
}

/// One round of replication: gathers the keys whose count is off from
/// their homes (`fresh`), or takes those the last gathering left unplanned
/// (a round woken by a copy ending: asking every home again each time would
/// cost a scan of their index per copy), plans copies (`placement`),
/// records the decision in the log, then tells each target to pull from
/// its source.
pub async fn replicate_round(core: &Arc<Core>, fresh: bool) {
    let term = core.raft.metrics().borrow().current_term;
    let members: Vec<RoundMember> = core.view.read(|s| {
        s.members()
            .iter()
            .map(|(id, r)| RoundMember {
                id: *id,
                peer: r.member.peer.clone(),
                state: r.state,
                zone: r.member.zone.clone(),
                stores: !r.member.no_store,
            })
            .collect()
    });
    let needs = if fresh {
        let needs = gather_needs(core, &members).await;
        let mut health = core.key_health.lock().expect("key health lock");
        let now = Instant::now();
        for need in &needs {
            health.record(need, shortfall(need, &members), now);
        }
        needs
    } else {
        std::mem::take(&mut *core.unplanned_needs.lock().expect("unplanned needs lock"))
    };
    if needs.is_empty() {
        return;
    }
    let nodes = {
        let health = core.health.lock().expect("health lock");
        let busy = core.copies.lock().expect("copies lock");
        node_views(&members, &health, &busy)
    };
    let limits = Limits { copies_in_flight_max: core.copies_in_flight_max };
    let plan = {
        let busy = core.copies.lock().expect("copies lock");
        plan_round(term, &members, &nodes, &needs, &busy, limits)
    };
    let Some(plan) = plan else {
        *core.unplanned_needs.lock().expect("unplanned needs lock") = needs;
        return;
    };
    // What this round did not plan waits for the next one; a planned key's
    // holders change with its copies, so it is gathered afresh.
    let planned: BTreeSet<(String, String)> = plan
        .copies
        .iter()
        .map(|c| key_of(&c.entry))
        .chain(plan.drops.iter().map(|d| key_of(&d.entry)))
        .collect();
    *core.unplanned_needs.lock().expect("unplanned needs lock") =
        needs.into_iter().filter(|need| !planned.contains(&key_of(need))).collect();
    // Nothing is done that the log does not say: a new tracker reads it.
    if let Err(error) = core.write(Command::Decision { text: plan.decision }).await {
        tracing::info!(%error, "cannot record copy decisions; not copying this round");
        return;
    }
    for removal in plan.drops {
        start_drop(core, term, removal);
    }
    for copy in plan.copies {
        start_copy(core, term, copy);
    }
}

/// Asks each member that is not silent for its keys whose count is off
/// (this node answers itself), merging each answer as it arrives.
async fn gather_needs(core: &Core, members: &[RoundMember]) -> Vec<IndexEntry> {
    let mut merged = MergedNeeds::default();
    for member in members.iter().filter(|m| is_asked_for_needs(m.state)) {
        let answer = if member.id == core.id() {
            core.needs(NEEDS_PER_MEMBER_MAX as usize)
        } else {
            let query = Message::NeedsQuery { max: NEEDS_PER_MEMBER_MAX };
            match core.peers.call(&member.peer, &query, core.timing.heartbeat).await {
                Ok(Message::NeedsReply { needs }) => needs,
                _ => continue,
            }
        };
        let busy = core.copies.lock().expect("copies lock");
        merged.add(answer, &busy);
    }
    merged.into_needs()
}

/// Tells a holder to drop an extra copy, in the background.
fn start_drop(core: &Arc<Core>, term: u64, removal: DropAction) {
    // Busy until the holder answers, so no other round plans this key
    // from holder lists that do not show the drop yet.
    let key = key_of(&removal.entry);
    core.copies.lock().expect("copies lock").hold(key.clone());
    let core = core.clone();
    tokio::spawn(async move {
        let request = Message::DropCopy { term, entry: Box::new(removal.entry) };
        if let Err(error) = core.peers.call(&removal.holder_peer, &request, COPY_DROP_TIMEOUT).await
        {
            tracing::info!(%error, "dropping an extra copy failed");
        }
        core.copies.lock().expect("copies lock").release(&key);
        core.copy_ended.notify_one();
    });
}

/// Tells a target to pull a copy from its source, in the background; the
/// copy counts as in flight until the target answers or gives up.
fn start_copy(core: &Arc<Core>, term: u64, copy: CopyAction) {
    let CopyAction { entry, source, target, source_peer, target_peer } = copy;
    let key = key_of(&entry);
    core.copies.lock().expect("copies lock").start(key.clone(), source, target);
    let core = core.clone();
    tokio::spawn(async move {
        let request = Message::Replicate { term, entry: Box::new(entry), source_peer };
        let outcome = async {
            let mut connection =
                super::peers::connect(&core.identity, &target_peer, core.timing.heartbeat * 5)
                    .await
                    .map_err(|e| e.to_string())?;
            connection.call(&request, COPY_TIMEOUT).await.map_err(|e| e.to_string())
        };
        let ok = match outcome.await {
            Ok(Message::ReplicateReply { ok: true, .. }) => true,
            Ok(other) => {
                tracing::info!(key = %format!("{}/{}", key.0, key.1), ?other, "copy failed");
                false
            }
            Err(error) => {
                tracing::info!(key = %format!("{}/{}", key.0, key.1), %error, "copy failed");
                false
            }
        };
        core.copies.lock().expect("copies lock").end(&key, source, target, ok);
        core.copy_ended.notify_one();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOWN: Duration = Duration::from_secs(3);
    const DEAD: Duration = Duration::from_secs(600);

    #[test]
    fn states_follow_silence() {
        let s = |state, secs| judged_state(state, Duration::from_secs(secs), DOWN, DEAD);
        assert_eq!(s(MemberState::Alive, 1), MemberState::Alive);
        assert_eq!(s(MemberState::Alive, 3), MemberState::Down);
        assert_eq!(s(MemberState::Down, 100), MemberState::Down);
        assert_eq!(s(MemberState::Down, 600), MemberState::Dead);
        assert_eq!(s(MemberState::Dead, 0), MemberState::Alive);
        assert_eq!(s(MemberState::Down, 1), MemberState::Alive);
        assert_eq!(s(MemberState::Drain, 1), MemberState::Drain);
        assert_eq!(s(MemberState::Readonly, 5), MemberState::Down);
        // Dead is reached through down, never straight from alive.
        assert_eq!(s(MemberState::Alive, 900), MemberState::Down);
    }

    #[test]
    fn voter_targets() {
        assert_eq!(voters_wanted(1), 3);
        assert_eq!(voters_wanted(4), 3);
        assert_eq!(voters_wanted(5), 5);
        assert_eq!(voters_wanted(9), 5);
    }

    // Replication rounds: the pure decisions.

    const TB: u64 = 1 << 40;

    fn member(id: NodeId, state: MemberState) -> RoundMember {
        RoundMember {
            id,
            peer: format!("10.0.0.{id}:7501"),
            state,
            zone: String::new(),
            stores: true,
        }
    }

    fn entry(key: &str, (hlc, writer): (u64, u64), wanted: u32, holders: &[NodeId]) -> IndexEntry {
        IndexEntry {
            domain: "photos".to_owned(),
            key: key.to_owned(),
            hlc,
            writer,
            sha256: [0xab; 32],
            size_bytes: 1000,
            class: "default".to_owned(),
            content_type: String::new(),
            headers: String::new(),
            deleted: false,
            holders: holders.to_vec(),
            wanted,
        }
    }

    /// Every member heard from, with 1 TB free of 2 TB.
    fn heard(members: &[RoundMember]) -> std::collections::HashMap<NodeId, Health> {
        let heard = |_| Health {
            disk_total_bytes: Some(2 * TB),
            disk_free_bytes: Some(TB),
            ..Health::fresh()
        };
        members.iter().map(|m| (m.id, heard(m))).collect()
    }

    fn plan(members: &[RoundMember], needs: &[IndexEntry]) -> Option<RoundPlan> {
        let nodes = node_views(members, &heard(members), &CopiesInFlight::default());
        let busy = CopiesInFlight::default();
        plan_round(7, members, &nodes, needs, &busy, Limits { copies_in_flight_max: 10 })
    }

    #[test]
    fn a_new_leader_counts_time_to_dead_from_when_the_member_went_down() {
        let down_after = Duration::from_secs(1);
        let since = unix_ms() - 5_000;
        let record = |state| cairn_raft::MemberRecord {
            member: cairn_raft::Member::default(),
            state,
            voter: true,
            state_since_unix_ms: since,
        };
        let silent = silence_since_down(&record(MemberState::Down), None, down_after);
        assert!(silent >= Duration::from_secs(6), "{silent:?}");
        // Answered since it went down: this leader's own count decides.
        let answered = Some(since + 1_000);
        assert_eq!(
            silence_since_down(&record(MemberState::Down), answered, down_after),
            Duration::ZERO
        );
        assert_eq!(
            silence_since_down(&record(MemberState::Alive), None, down_after),
            Duration::ZERO
        );
    }

    #[test]
    fn silent_members_are_not_asked_for_needs() {
        assert!(is_asked_for_needs(MemberState::Alive));
        assert!(is_asked_for_needs(MemberState::Drain));
        assert!(is_asked_for_needs(MemberState::Readonly));
        assert!(!is_asked_for_needs(MemberState::Down));
        assert!(!is_asked_for_needs(MemberState::Dead));
    }

    #[test]
    fn merged_needs_keep_the_newest_version_and_add_up_its_holders() {
        let busy = CopiesInFlight::default();
        let mut merged = MergedNeeds::default();
        merged.add(vec![entry("a", (5, 1), 3, &[1]), entry("b", (1, 1), 2, &[1])], &busy);
        let second = vec![
            entry("a", (5, 1), 3, &[2, 1]),
            entry("b", (1, 2), 2, &[3]),
            entry("c", (1, 1), 2, &[2]),
        ];
        merged.add(second, &busy);
        // Older versions change nothing, holders included.
        merged.add(vec![entry("a", (4, 9), 3, &[9]), entry("b", (1, 1), 2, &[4])], &busy);
        let needs = merged.into_needs();
        let keys: Vec<&str> = needs.iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"], "in the order first seen");
        assert_eq!(needs[0].holders, [1, 2], "same version: holders add up, once each");
        assert_eq!((needs[1].hlc, needs[1].writer), (1, 2), "the newer writer wins a tie of hlc");
        assert_eq!(needs[1].holders, [3], "a newer version replaces the older one's holders");
    }

    #[test]
    fn merged_needs_leave_out_keys_with_work_under_way() {
        let mut busy = CopiesInFlight::default();
        busy.start(("photos".to_owned(), "copying".to_owned()), 1, 2);
        busy.hold(("photos".to_owned(), "dropping".to_owned()));
        let mut merged = MergedNeeds::default();
        let answer = ["copying", "dropping", "idle"].map(|key| entry(key, (1, 1), 2, &[1]));
        merged.add(answer.to_vec(), &busy);
        let keys: Vec<String> = merged.into_needs().into_iter().map(|n| n.key).collect();
        assert_eq!(keys, ["idle"]);
    }

    #[test]
    fn shortfall_counts_lasting_holders_only() {
        let states = [
            MemberState::Alive,
            MemberState::Readonly,
            MemberState::Down,
            MemberState::Drain,
            MemberState::Dead,
        ];
        let members: Vec<RoundMember> =
            states.into_iter().zip(1..).map(|(state, id)| member(id, state)).collect();
        let of =
            |wanted, holders: &[NodeId]| shortfall(&entry("k", (1, 1), wanted, holders), &members);
        assert_eq!(of(4, &[1, 2, 3]), Shortfall::Under, "alive, readonly and down last");
        assert_eq!(of(3, &[1, 2, 3, 4]), Shortfall::Over, "drain does not count");
        assert_eq!(of(2, &[4, 5, 9]), Shortfall::Lost, "drain, dead and unknown do not last");
        assert_eq!(of(1, &[1, 3]), Shortfall::Over);
    }

    #[test]
    fn node_views_take_disks_from_heartbeats_and_copies_in_flight() {
        let members = [member(1, MemberState::Alive), member(2, MemberState::Drain)];
        let mut health = heard(&members[..1]);
        health.insert(2, Health::fresh());
        let mut busy = CopiesInFlight::default();
        busy.start(("photos".to_owned(), "k".to_owned()), 2, 3);
        let nodes = node_views(&members, &health, &busy);
        let seen: Vec<_> = nodes
            .iter()
            .map(|n| (n.id, n.state, n.free_bytes, n.total_bytes, n.copies_in_flight))
            .collect();
        assert_eq!(
            seen,
            [(1, MemberState::Alive, TB, 2 * TB, 0), (2, MemberState::Drain, 0, 0, 1)],
            "a member not heard from has no free space"
        );
        assert!(node_views(&members, &Default::default(), &busy)
            .iter()
            .all(|n| n.total_bytes == 0));
    }

    #[test]
    fn decision_text_lists_at_most_eight_copies_and_eight_drops() {
        let needs: Vec<IndexEntry> =
            (0..10).map(|i| entry(&format!("k{i}"), (1, 1), 2, &[1])).collect();
        let copies: Vec<CopyCommand> =
            (0..10).map(|need| CopyCommand { need, source: 1, target: 0xab }).collect();
        let removals = [RemoveCommand { need: 9, holder: 2 }];
        let text = decision_text(3, &needs, &copies, &removals);
        assert!(text.starts_with("term 3: 10 copies, 1 removals; photos/k0 "), "{text}");
        assert!(text.contains("; photos/k7 0000000000000001->00000000000000ab;"), "{text}");
        assert!(!text.contains("photos/k8 "), "{text}");
        assert!(text.ends_with("; photos/k9 drop at 0000000000000002"), "{text}");
    }

    #[test]
    fn decision_text_fits_a_decision() {
        let long = "x".repeat(1000);
        let needs = [entry(&long, (1, 1), 2, &[1])];
        let copies = vec![CopyCommand { need: 0, source: 1, target: 2 }; 8];
        let text = decision_text(1, &needs, &copies, &[]);
        assert_eq!(text.len(), cairn_raft::DECISION_BYTES_MAX);
    }

    #[test]
    fn decision_text_is_cut_between_characters() {
        // Keys may be any UTF-8: a cut at the byte limit would split an "é".
        let long = "é".repeat(500);
        let needs = [entry(&long, (1, 1), 2, &[1])];
        let copies = vec![CopyCommand { need: 0, source: 1, target: 2 }; 8];
        let text = decision_text(1, &needs, &copies, &[]);
        assert_eq!(text.len(), cairn_raft::DECISION_BYTES_MAX - 1);
        assert!(text.ends_with('é'));
    }

    #[test]
    fn a_round_with_every_count_met_does_nothing() {
        let members = [member(1, MemberState::Alive), member(2, MemberState::Alive)];
        assert_eq!(plan(&members, &[]), None);
        assert_eq!(plan(&members, &[entry("k", (1, 1), 2, &[1, 2])]), None);
    }

    #[test]
    fn a_round_copies_a_short_key_between_known_peers() {
        let members = [member(1, MemberState::Alive), member(2, MemberState::Alive)];
        let need = entry("k", (1, 1), 2, &[1]);
        let plan = plan(&members, std::slice::from_ref(&need)).expect("a copy");
        assert_eq!(
            plan.decision,
            "term 7: 1 copies, 0 removals; photos/k 0000000000000001->0000000000000002"
        );
        let copy = CopyAction {
            entry: need,
            source: 1,
            target: 2,
            source_peer: "10.0.0.1:7501".to_owned(),
            target_peer: "10.0.0.2:7501".to_owned(),
        };
        assert_eq!(plan.copies, [copy]);
        assert!(plan.drops.is_empty());
    }

    #[test]
    fn a_round_drops_an_extra_copy_at_its_holder() {
        let members: Vec<RoundMember> = (1..=3).map(|id| member(id, MemberState::Alive)).collect();
        let need = entry("k", (1, 1), 2, &[3, 2, 1]);
        let plan = plan(&members, std::slice::from_ref(&need)).expect("a drop");
        assert_eq!(
            plan.decision,
            "term 7: 0 copies, 1 removals; photos/k drop at 0000000000000001"
        );
        assert_eq!(
            plan.drops,
            [DropAction { entry: need, holder_peer: "10.0.0.1:7501".to_owned() }]
        );
        assert!(plan.copies.is_empty());
    }

    #[test]
    fn a_command_for_a_node_without_an_address_is_decided_but_not_run() {
        let known = [member(1, MemberState::Alive)];
        let all = [member(1, MemberState::Alive), member(2, MemberState::Alive)];
        let nodes = node_views(&all, &heard(&all), &CopiesInFlight::default());
        let needs = [entry("k", (1, 1), 2, &[1])];
        let limits = Limits { copies_in_flight_max: 10 };
        let plan = plan_round(7, &known, &nodes, &needs, &CopiesInFlight::default(), limits)
            .expect("a decision");
        assert!(plan.decision.starts_with("term 7: 1 copies"), "{}", plan.decision);
        assert!(plan.copies.is_empty());
    }
}
