//! Index handoff (docs/design.md §5): a key's homes are a function of the
//! members, so when members join or die the homes of some keys change. Each
//! node then walks its index records in bounded batches and sends every
//! record to the key's homes that were not homes before (tombstones too, so
//! a deleted key cannot come back through a new home), and drops the records
//! of keys it is no longer home of once their new homes have them. For a
//! while after a change, a lookup that the homes answer with "unknown" also
//! asks the other members (`Core::lookup_homes`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_engine::meta::Batch;
use cairn_engine::IndexRecord;
use cairn_net::Message;
use cairn_raft::{MemberState, NodeId};

use crate::placement;
use crate::plane::Core;
use crate::replicas::{entry_of, HOME_COUNT};

/// How often a node compares the members with those it handed off for.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Index records handed off per batch, and the pause between batches.
const BATCH_RECORDS: usize = 512;
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Records sent at once.
const SENDS_AT_ONCE: usize = 32;
/// How long a record may take to reach a new home.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node does with one index record when the members change.
#[derive(Debug, PartialEq, Eq)]
pub struct Handoff {
    /// Homes to send the record to.
    pub send_to: Vec<NodeId>,
    /// This node is no longer a home: the record goes once they have it.
    pub drop_here: bool,
}

/// The handoff of a key's record held by `me`, from the homes among
/// `before` to those among `after`. A home before sends only to the new
/// homes (the others have the record already); a node that was not a home
/// (a record left from an earlier change) sends to every home.
pub fn plan(before: &[NodeId], after: &[NodeId], me: NodeId, domain: &str, key: &str) -> Handoff {
    let was = placement::homes(before, domain, key, HOME_COUNT);
    let now = placement::homes(after, domain, key, HOME_COUNT);
    let was_home = was.contains(&me);
    let send_to = now
        .iter()
        .copied()
        .filter(|home| *home != me && !(was_home && was.contains(home)))
        .collect();
    Handoff { send_to, drop_here: !now.contains(&me) }
}

impl Core {
    /// Members that can be homes (every one but the dead), sorted.
    pub fn home_candidates(&self) -> Vec<NodeId> {
        self.view.read(|state| {
            state
                .members()
                .iter()
                .filter(|(_, record)| record.state != MemberState::Dead)
                .map(|(id, _)| *id)
                .collect()
        })
    }

    /// Whether the members changed (or this node started) lately enough
    /// that some index records may not have reached their new homes.
    pub fn handoff_recent(&self) -> bool {
        let changed = *self.members_changed.lock().expect("members changed lock");
        changed.elapsed() < self.timing.handoff_grace
    }

    /// Sends one index record to one member; answers whether it took it.
    async fn send_record(&self, to: NodeId, domain: &str, key: &str, record: &IndexRecord) -> bool {
        let Some(address) = self.view.read(|s| s.member(to).map(|m| m.member.peer.clone())) else {
            return false;
        };
        let entry = Box::new(entry_of(domain, key, record, 0));
        let request = Message::IndexUpdate { entry };
        matches!(
            self.peers.call(&address, &request, SEND_TIMEOUT).await,
            Ok(Message::IndexReply { entry: Some(_) })
        )
    }
}

/// Watches the members and hands the index off whenever they change.
pub async fn run(core: Arc<Core>) {
    let mut handed_for = core.home_candidates();
    let mut ticker = tokio::time::interval(WATCH_INTERVAL);
    loop {
        ticker.tick().await;
        let now = core.home_candidates();
        if now == handed_for {
            continue;
        }
        *core.members_changed.lock().expect("members changed lock") = Instant::now();
        // A node that knew no members yet (just started) has nothing to
        // compare with: the holders' announcements reach the homes.
        if !handed_for.is_empty() && !now.is_empty() {
            let started = Instant::now();
            let (sent, dropped) = hand_off(&core, &handed_for, &now).await;
            let took_ms = started.elapsed().as_millis() as u64;
            tracing::info!(sent, dropped, took_ms, "handed index records to new homes");
        }
        handed_for = now;
    }
}

/// One pass over this node's index for a change from `before` to `after`:
/// answers the records sent and dropped.
async fn hand_off(core: &Arc<Core>, before: &[NodeId], after: &[NodeId]) -> (usize, usize) {
    let (mut sent, mut dropped) = (0, 0);
    let mut cursor: Option<(String, String)> = None;
    loop {
        let after_key = cursor.as_ref().map(|(d, k)| (d.as_str(), k.as_str()));
        let records = match core.storage.meta.index_after(after_key, BATCH_RECORDS) {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "cannot scan the index to hand it off");
                return (sent, dropped);
            }
        };
        let done = records.len() < BATCH_RECORDS;
        cursor = records.last().map(|(d, k, _)| (d.clone(), k.clone()));
        for chunk in records.chunks(SENDS_AT_ONCE) {
            let mut tasks = tokio::task::JoinSet::new();
            for (domain, key, record) in chunk {
                let handoff = plan(before, after, core.id(), domain, key);
                if handoff.send_to.is_empty() && !handoff.drop_here {
                    continue;
                }
                let (core, domain, key, record) =
                    (core.clone(), domain.clone(), key.clone(), record.clone());
                tasks.spawn(async move {
                    let mut all = true;
                    for to in &handoff.send_to {
                        all &= core.send_record(*to, &domain, &key, &record).await;
                    }
                    let dropped = handoff.drop_here && all && core.drop_record(&domain, &key);
                    (handoff.send_to.len(), dropped)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let Ok((count, was_dropped)) = done else { continue };
                sent += count;
                dropped += usize::from(was_dropped);
            }
        }
        if done {
            return (sent, dropped);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

impl Core {
    /// Removes this node's index record of a key it is no longer home of.
    fn drop_record(&self, domain: &str, key: &str) -> bool {
        let mut batch = Batch::default();
        batch.delete_index(domain, key);
        self.storage.meta.write_unsynced(batch).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_before_send_only_to_the_new_homes_and_drop_what_is_no_longer_theirs() {
        let before: Vec<NodeId> = vec![1, 2, 3];
        let after: Vec<NodeId> = vec![1, 2, 3, 4, 5, 6];
        let mut moved = 0;
        for i in 0..500 {
            let key = format!("k{i}");
            let was = placement::homes(&before, "d", &key, HOME_COUNT);
            let now = placement::homes(&after, "d", &key, HOME_COUNT);
            for me in [1, 2, 3] {
                let handoff = plan(&before, &after, me, "d", &key);
                let new: Vec<NodeId> = now.iter().copied().filter(|h| !was.contains(h)).collect();
                assert_eq!(handoff.send_to, new, "{key} at {me}");
                assert_eq!(handoff.drop_here, !now.contains(&me));
            }
            moved += usize::from(now.iter().all(|h| !was.contains(h)));
        }
        // Some keys get only new homes: without the handoff nobody they ask knows them.
        assert!(moved > 0);
    }

    #[test]
    fn a_record_left_at_a_node_that_was_no_home_goes_to_every_home() {
        let members: Vec<NodeId> = (1..=6).collect();
        let key = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| !placement::homes(&members, "d", k, HOME_COUNT).contains(&6))
            .expect("a key not homed at 6");
        let handoff = plan(&members, &members, 6, "d", &key);
        assert_eq!(handoff.send_to, placement::homes(&members, "d", &key, HOME_COUNT));
        assert!(handoff.drop_here);
        // Unchanged members, a home: nothing to do.
        let home = placement::homes(&members, "d", &key, HOME_COUNT)[0];
        let handoff = plan(&members, &members, home, "d", &key);
        assert_eq!(handoff, Handoff { send_to: vec![], drop_here: false });
    }
}
