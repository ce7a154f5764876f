//! The leader's duties (DESIGN §6, §7): heartbeat every member, mark the
//! silent ones `down` and then `dead`, bring back the ones that answer,
//! and keep 3 voters (5 from 5 members), replacing dead ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_net::Message;
use cairn_raft::{Command, MemberState, NodeId};
use openraft::ChangeMembers;

use super::core::{unix_ms, Core, Health, COMMIT_TIMEOUT};

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
                let report = core.local_report();
                return (id, Some((report.disk_total_bytes, report.disk_free_bytes)));
            }
            let heartbeat = Message::Heartbeat { term, leader_id: core.id(), sent_ms: unix_ms() };
            let answer = core.peers.call(&address, &heartbeat, core.timing.heartbeat).await;
            match answer {
                Ok(Message::HeartbeatReply { disk_total_bytes, disk_free_bytes, .. }) => {
                    (id, Some((disk_total_bytes, disk_free_bytes)))
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
        if let Some((total, free)) = answer {
            entry.last_answer = Instant::now();
            entry.last_answer_unix_ms = Some(unix_ms());
            entry.disk_total_bytes = Some(total);
            entry.disk_free_bytes = Some(free);
        }
    }
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
                    let silent = health.get(id).map_or(Duration::ZERO, |h| now - h.last_answer);
                    let timing = core.timing;
                    let next =
                        judged_state(record.state, silent, timing.down_after, timing.dead_after);
                    (next != record.state).then_some((*id, next))
                })
                .collect()
        })
    };
    for (id, state) in changes {
        tracing::info!(node = %format!("{id:016x}"), state = state.as_str(), "member state");
        core.write(Command::SetMemberState { id, state }).await.map_err(|e| e.to_string())?;
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
}
