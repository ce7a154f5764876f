//! Placement policy (docs/design.md §5, §6): which node copies a key to which, which
//! extra copies go, and which nodes are a key's homes.
//!
//! Everything here is a pure function of a snapshot the tracker passes in:
//! no I/O, no clock, no randomness. The same snapshot gives the same
//! commands on every node and in every run, so a new tracker re-derives what
//! the old one decided, and the policy is tested without a cluster. Running
//! the commands, counting holders and throttling by MB/s belong to the
//! tracker, not to this module.
//!
//! Two words used below:
//! - a *readable* holder (`Alive`, `Drain`, `Readonly`) can be the source of
//!   a copy and counts as a copy a reader can reach;
//! - a *lasting* holder (`Alive`, `Readonly`, `Down`) counts towards the
//!   copies a key wants. A `Down` node may only have blinked, so its copies
//!   are not replaced yet; a `Drain` node is being emptied and a `Dead` one
//!   is gone, so theirs are replaced. A holder missing from the snapshot is
//!   neither.
//!
//! Zones: `""` is a zone like any other, so in a cluster without zones the
//! zone rules change nothing.

use std::collections::{BTreeMap, BTreeSet};

use cairn_engine::{Digest, Fnv};
use cairn_raft::{MemberState, NodeId};

/// A target keeps this share of its disk free after a copy lands: a copy
/// needs `free_bytes >= size_bytes + total_bytes / FREE_RESERVE_DIVISOR`
/// (1 %), counting the copies planned to it earlier in the same round.
pub const FREE_RESERVE_DIVISOR: u64 = 100;

/// A member as placement sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub id: NodeId,
    /// `""` = no zone.
    pub zone: String,
    pub state: MemberState,
    /// False for a proxy (`--no-store`): never a target.
    pub stores: bool,
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Background copies this node is already part of (as source or target).
    pub copies_in_flight: u32,
}

/// A key whose copy count differs from what its class wants.
#[derive(Debug, Clone)]
pub struct KeyNeed {
    pub domain: String,
    pub key: String,
    pub sha256: Digest,
    pub size_bytes: u64,
    pub wanted: u32,
    /// Nodes that hold an intact copy of this version.
    pub holders: Vec<NodeId>,
    /// Copies of this key that failed lately, as `(source, target)`: other
    /// sources and targets are tried first, so a damaged or unreachable
    /// holder is not picked again and again.
    pub failed: Vec<(NodeId, NodeId)>,
}

impl KeyNeed {
    fn failures_from(&self, source: NodeId) -> usize {
        self.failed.iter().filter(|(s, _)| *s == source).count()
    }

    fn failures_to(&self, target: NodeId) -> usize {
        self.failed.iter().filter(|(_, t)| *t == target).count()
    }
}

/// Copy `needs[need]` from `source` to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// Index into the `needs` passed to [`plan_copies`].
    pub need: usize,
    pub source: NodeId,
    pub target: NodeId,
}

/// Drop the copy of `needs[need]` held by `holder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveCommand {
    /// Index into the `needs` passed to [`plan_removals`].
    pub need: usize,
    pub holder: NodeId,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Copies a node may be part of at once, as source or target.
    pub copies_in_flight_max: u32,
}

fn is_readable(state: MemberState) -> bool {
    matches!(state, MemberState::Alive | MemberState::Drain | MemberState::Readonly)
}

fn is_lasting(state: MemberState) -> bool {
    matches!(state, MemberState::Alive | MemberState::Readonly | MemberState::Down)
}

/// A copy may be deleted only where the node still takes writes
/// (MogileFS's `can_delete_from`): not on a `Readonly` node.
fn is_deletable(state: MemberState) -> bool {
    matches!(state, MemberState::Alive | MemberState::Drain)
}

/// The snapshot's nodes by id, plus what this round has planned so far.
struct Round<'a> {
    nodes: BTreeMap<NodeId, &'a NodeView>,
    /// Copies planned this round per node, as source or target.
    planned_copies: BTreeMap<NodeId, u32>,
    /// Bytes planned this round per target.
    planned_bytes: BTreeMap<NodeId, u64>,
    copies_in_flight_max: u32,
}

impl<'a> Round<'a> {
    fn new(nodes: &'a [NodeView], limits: Limits) -> Round<'a> {
        Round {
            nodes: nodes.iter().map(|node| (node.id, node)).collect(),
            planned_copies: BTreeMap::new(),
            planned_bytes: BTreeMap::new(),
            copies_in_flight_max: limits.copies_in_flight_max,
        }
    }

    fn state(&self, id: NodeId) -> Option<MemberState> {
        self.nodes.get(&id).map(|node| node.state)
    }

    fn load(&self, node: &NodeView) -> u64 {
        u64::from(node.copies_in_flight)
            + u64::from(self.planned_copies.get(&node.id).copied().unwrap_or(0))
    }

    fn has_room(&self, node: &NodeView) -> bool {
        self.load(node) < u64::from(self.copies_in_flight_max)
    }

    /// Free bytes left once this round's planned copies have landed.
    fn free_bytes(&self, node: &NodeView) -> u64 {
        node.free_bytes.saturating_sub(self.planned_bytes.get(&node.id).copied().unwrap_or(0))
    }

    fn fits(&self, node: &NodeView, size_bytes: u64) -> bool {
        let reserve_bytes = node.total_bytes / FREE_RESERVE_DIVISOR;
        u128::from(self.free_bytes(node)) >= u128::from(size_bytes) + u128::from(reserve_bytes)
    }

    fn record(&mut self, need: &KeyNeed, source: NodeId, target: NodeId) {
        *self.planned_copies.entry(source).or_default() += 1;
        *self.planned_copies.entry(target).or_default() += 1;
        *self.planned_bytes.entry(target).or_default() += need.size_bytes;
    }
}

/// Copies to start this round, at most one new copy per key per round.
///
/// Keys with the fewest lasting copies go first, so when the throttle runs
/// out it is the safest keys that wait; ties keep the order of `needs`.
/// A key that cannot get a source and a target now is skipped and comes back
/// next round; a key with no readable holder ("red") gets nothing. Commands
/// come out in planning order.
pub fn plan_copies(nodes: &[NodeView], needs: &[KeyNeed], limits: Limits) -> Vec<CopyCommand> {
    let mut round = Round::new(nodes, limits);
    let lasting = |need: &KeyNeed| {
        let holders: BTreeSet<NodeId> = need.holders.iter().copied().collect();
        holders.into_iter().filter(|&id| round.state(id).is_some_and(is_lasting)).count()
    };
    let mut order: Vec<(usize, usize)> =
        needs.iter().enumerate().map(|(index, need)| (lasting(need), index)).collect();
    order.sort_unstable();

    let mut served: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut commands = Vec::new();
    for (lasting_count, index) in order {
        let need = &needs[index];
        if lasting_count >= need.wanted as usize
            || served.contains(&(need.domain.as_str(), need.key.as_str()))
        {
            continue;
        }
        // Every missing copy at once, each to a node of its own: a key
        // short of two copies gets both in one round, in parallel.
        let mut planned = need.clone();
        for _ in lasting_count..need.wanted as usize {
            let (Some(source), Some(target)) =
                (pick_source(&round, need), pick_target(&round, &planned))
            else {
                break;
            };
            round.record(need, source, target);
            planned.holders.push(target);
            commands.push(CopyCommand { need: index, source, target });
        }
        served.insert((need.domain.as_str(), need.key.as_str()));
    }
    commands
}

/// The readable holder with room whose copies of this key failed least,
/// then with the fewest copies in flight (planned ones included); the
/// lowest id breaks ties.
fn pick_source(round: &Round, need: &KeyNeed) -> Option<NodeId> {
    need.holders
        .iter()
        .filter_map(|id| round.nodes.get(id).copied())
        .filter(|node| is_readable(node.state) && round.has_room(node))
        .min_by_key(|node| (need.failures_from(node.id), round.load(node), node.id))
        .map(|node| node.id)
}

/// An alive store (not a proxy), not a holder, with room and space, in a zone no lasting holder is
/// in when there is one, where this key's copies failed least; among
/// those, weighted rendezvous by free space (see [`weighted_score`]).
fn pick_target(round: &Round, need: &KeyNeed) -> Option<NodeId> {
    let covered: BTreeSet<&str> = need
        .holders
        .iter()
        .filter_map(|id| round.nodes.get(id))
        .filter(|node| is_lasting(node.state))
        .map(|node| node.zone.as_str())
        .collect();
    let eligible: Vec<&NodeView> = round
        .nodes
        .values()
        .copied()
        .filter(|node| node.state == MemberState::Alive && node.stores)
        .filter(|node| !need.holders.contains(&node.id))
        .filter(|node| round.has_room(node) && round.fits(node, need.size_bytes))
        .collect();
    let new_zone = eligible.iter().any(|node| !covered.contains(node.zone.as_str()));
    let eligible: Vec<&NodeView> = eligible
        .into_iter()
        .filter(|node| !new_zone || !covered.contains(node.zone.as_str()))
        .collect();
    let least_failed = eligible.iter().map(|node| need.failures_to(node.id)).min();
    eligible
        .into_iter()
        .filter(|node| Some(need.failures_to(node.id)) == least_failed)
        .map(|node| (weighted_score(&need.sha256, node.id, round.free_bytes(node)), node.id))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(_, id)| id)
}

/// Weighted rendezvous hashing: `-ln(u) / free_bytes` with `u` in (0, 1]
/// drawn from hash(sha256, node). The lowest score wins. Each score is an
/// exponential variable with rate `free_bytes`, so a node wins with
/// probability `free_bytes / Σ free_bytes`: keys spread over nodes in
/// proportion to free space, without state. Equal bytes (same sha256) rank
/// nodes the same way, and a node joining takes only the keys it now wins.
fn weighted_score(sha256: &Digest, node: NodeId, free_bytes: u64) -> f64 {
    let mut hash = Fnv::default();
    hash.write(&sha256.0);
    hash.write(&node.to_le_bytes());
    // The top 53 bits, plus one so u is never 0: exactly representable in f64.
    let u = ((hash.finish() >> 11) + 1) as f64 / (1u64 << 53) as f64;
    -u.ln() / free_bytes.max(1) as f64
}

/// Extra copies to drop for keys holding more than `wanted`, counting only
/// readable holders: every remaining readable holder still serves the key,
/// so readable holders never drop below `wanted`.
///
/// Extras are dropped only from `Alive` or `Drain` nodes (a `Readonly` node
/// takes no deletes), one at a time, preferring in order:
/// 1. a `Drain` node — it is being emptied, even if it is its zone's last copy;
/// 2. a node whose zone keeps another readable copy — never the last copy in
///    a zone while another choice exists;
/// 3. the fullest node (lowest free fraction); the lowest id breaks ties.
pub fn plan_removals(nodes: &[NodeView], needs: &[KeyNeed]) -> Vec<RemoveCommand> {
    let nodes: BTreeMap<NodeId, &NodeView> = nodes.iter().map(|node| (node.id, node)).collect();
    let mut commands = Vec::new();
    for (index, need) in needs.iter().enumerate() {
        let mut readable: Vec<&NodeView> = need
            .holders
            .iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|id| nodes.get(id).copied())
            .filter(|node| is_readable(node.state))
            .collect();
        while readable.len() > need.wanted as usize {
            let mut zone_copies: BTreeMap<&str, usize> = BTreeMap::new();
            for node in &readable {
                *zone_copies.entry(node.zone.as_str()).or_default() += 1;
            }
            let Some(position) = (0..readable.len())
                .filter(|&at| is_deletable(readable[at].state))
                .min_by(|&a, &b| {
                    let rank = |node: &NodeView| {
                        (node.state != MemberState::Drain, zone_copies[node.zone.as_str()] == 1)
                    };
                    let (a, b) = (readable[a], readable[b]);
                    rank(a)
                        .cmp(&rank(b))
                        .then(free_fraction(a).total_cmp(&free_fraction(b)))
                        .then(a.id.cmp(&b.id))
                })
            else {
                break;
            };
            commands.push(RemoveCommand { need: index, holder: readable.remove(position).id });
        }
    }
    commands
}

/// A node without a known size counts as full.
fn free_fraction(node: &NodeView) -> f64 {
    if node.total_bytes == 0 {
        0.0
    } else {
        node.free_bytes as f64 / node.total_bytes as f64
    }
}

/// The key's home nodes: the first `count` of `members` by rendezvous
/// (highest-random-weight) hash of (domain, key, node id); stable when
/// unrelated members come and go, because each member's weight depends only
/// on itself and the key. Duplicate ids count once; fewer than `count`
/// members give all of them. The hash is fixed here (not `std`'s, which may
/// change between Rust releases) because every node must agree on it.
pub fn homes(members: &[NodeId], domain: &str, key: &str, count: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u64, NodeId)> = members
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|&id| {
            let mut hash = Fnv::default();
            hash.write(&(domain.len() as u64).to_le_bytes());
            hash.write(domain.as_bytes());
            hash.write(&(key.len() as u64).to_le_bytes());
            hash.write(key.as_bytes());
            hash.write(&id.to_le_bytes());
            (hash.finish(), id)
        })
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().take(count).map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use MemberState::{Alive, Dead, Down, Drain, Readonly};

    const TB: u64 = 1 << 40;

    fn node(id: NodeId, zone: &str, state: MemberState) -> NodeView {
        NodeView {
            id,
            zone: zone.to_string(),
            state,
            stores: true,
            free_bytes: TB,
            total_bytes: 2 * TB,
            copies_in_flight: 0,
        }
    }

    fn need(key: &str, wanted: u32, holders: &[NodeId]) -> KeyNeed {
        let mut sha256 = [0u8; 32];
        sha256[..key.len().min(32)].copy_from_slice(&key.as_bytes()[..key.len().min(32)]);
        KeyNeed {
            domain: "photos".to_string(),
            key: key.to_string(),
            sha256: Digest(sha256),
            size_bytes: 1000,
            wanted,
            holders: holders.to_vec(),
            failed: Vec::new(),
        }
    }

    const NO_THROTTLE: Limits = Limits { copies_in_flight_max: u32::MAX };

    fn targets(nodes: &[NodeView], needs: &[KeyNeed]) -> Vec<NodeId> {
        plan_copies(nodes, needs, NO_THROTTLE).iter().map(|copy| copy.target).collect()
    }

    #[test]
    fn a_failed_source_or_target_is_tried_last() {
        let nodes: Vec<NodeView> = (1..=4).map(|id| node(id, "", MemberState::Alive)).collect();
        let fresh = need("k", 3, &[1, 2]);
        let first = plan_copies(&nodes, std::slice::from_ref(&fresh), NO_THROTTLE);
        assert_eq!(first.len(), 1);
        let (source, target) = (first[0].source, first[0].target);
        // That copy failed: the other holder and the other non-holder go next.
        let failed = KeyNeed { failed: vec![(source, target)], ..fresh.clone() };
        let again = plan_copies(&nodes, &[failed], NO_THROTTLE);
        assert_eq!(again.len(), 1);
        assert_ne!(again[0].source, source, "another holder is the source");
        assert_ne!(again[0].target, target, "another node is the target");
        // When every choice failed once, the key still gets a copy.
        let all_failed = KeyNeed { failed: vec![(1, 3), (2, 4)], ..fresh };
        assert_eq!(plan_copies(&nodes, &[all_failed], NO_THROTTLE).len(), 1);
    }

    #[test]
    fn target_is_never_a_holder_or_a_node_that_is_not_alive() {
        let nodes = [
            node(1, "", Alive),
            node(2, "", Down),
            node(3, "", Dead),
            node(4, "", Drain),
            node(5, "", Readonly),
            node(6, "", Alive),
        ];
        assert_eq!(targets(&nodes, &[need("k", 3, &[1])]), vec![6]);
        assert_eq!(targets(&nodes, &[need("k", 3, &[1, 6])]), Vec::<NodeId>::new());
    }

    #[test]
    fn a_proxy_is_never_a_target_even_with_the_most_room() {
        let mut nodes = [node(1, "", Alive), node(2, "b", Alive), node(3, "", Alive)];
        nodes[1].stores = false;
        nodes[1].free_bytes = 100 * TB;
        let needs: Vec<KeyNeed> = (0..50).map(|i| need(&format!("k{i}"), 2, &[1])).collect();
        assert!(targets(&nodes, &needs).iter().all(|&target| target == 3));
    }

    #[test]
    fn target_keeps_one_percent_of_its_disk_free() {
        let mut nodes = [node(1, "", Alive), node(2, "", Alive)];
        nodes[1].total_bytes = 100_000;
        nodes[1].free_bytes = 1999; // size 1000 + reserve 1000 would need 2000.
        assert!(targets(&nodes, &[need("k", 2, &[1])]).is_empty());
        nodes[1].free_bytes = 2000;
        assert_eq!(targets(&nodes, &[need("k", 2, &[1])]), vec![2]);
        // The second copy in the same round no longer fits.
        assert_eq!(targets(&nodes, &[need("k", 2, &[1]), need("j", 2, &[1])]), vec![2]);
    }

    #[test]
    fn target_prefers_a_zone_without_a_copy() {
        let nodes = [node(1, "a", Alive), node(2, "a", Alive), node(3, "b", Alive)];
        let needs: Vec<KeyNeed> = (0..50).map(|i| need(&format!("k{i}"), 2, &[1])).collect();
        assert!(targets(&nodes, &needs).iter().all(|&target| target == 3));
    }

    #[test]
    fn target_falls_back_to_a_covered_zone() {
        let mut nodes = [node(1, "a", Alive), node(2, "a", Alive), node(3, "b", Alive)];
        nodes[2].free_bytes = 0;
        assert_eq!(targets(&nodes, &[need("k", 2, &[1])]), vec![2]);
    }

    #[test]
    fn zone_of_a_dead_or_draining_holder_is_not_covered() {
        let nodes =
            [node(1, "a", Dead), node(2, "b", Alive), node(3, "a", Alive), node(4, "b", Alive)];
        assert_eq!(targets(&nodes, &[need("k", 2, &[1, 2])]), vec![3]);
        let nodes =
            [node(1, "a", Drain), node(2, "b", Alive), node(3, "a", Alive), node(4, "b", Alive)];
        assert_eq!(targets(&nodes, &[need("k", 2, &[1, 2])]), vec![3]);
    }

    #[test]
    fn dead_and_draining_copies_are_replaced_but_down_ones_are_not() {
        let nodes = [node(1, "", Alive), node(2, "", Dead), node(3, "", Drain), node(4, "", Down)];
        let nodes = [&nodes[..], &[node(5, "", Alive)]].concat();
        assert_eq!(targets(&nodes, &[need("k", 2, &[1, 2])]), vec![5]);
        assert_eq!(targets(&nodes, &[need("k", 2, &[1, 3])]), vec![5]);
        assert!(targets(&nodes, &[need("k", 2, &[1, 4])]).is_empty());
    }

    #[test]
    fn source_is_a_readable_holder_with_the_fewest_copies_in_flight() {
        let mut nodes = [
            node(1, "", Alive),
            node(2, "", Drain),
            node(3, "", Readonly),
            node(4, "", Down),
            node(5, "", Alive),
        ];
        nodes[0].copies_in_flight = 3;
        nodes[1].copies_in_flight = 2;
        nodes[2].copies_in_flight = 1;
        let copies = plan_copies(&nodes, &[need("k", 5, &[1, 2, 3, 4])], NO_THROTTLE);
        assert_eq!(copies, vec![CopyCommand { need: 0, source: 3, target: 5 }]);
    }

    #[test]
    fn key_without_a_readable_holder_is_red_and_gets_nothing() {
        let nodes = [node(1, "", Down), node(2, "", Dead), node(3, "", Alive)];
        assert!(targets(&nodes, &[need("k", 3, &[1, 2]), need("j", 1, &[9])]).is_empty());
    }

    #[test]
    fn throttle_caps_copies_per_node_and_skips_the_rest() {
        let mut nodes = [node(1, "", Alive), node(2, "", Alive), node(3, "", Alive)];
        nodes[0].copies_in_flight = 1;
        let needs: Vec<KeyNeed> = (0..10).map(|i| need(&format!("k{i}"), 2, &[1])).collect();
        // Node 1 is the only source and has room for one more copy.
        let copies = plan_copies(&nodes, &needs, Limits { copies_in_flight_max: 2 });
        assert_eq!(copies.len(), 1);
        assert!(plan_copies(&nodes, &needs, Limits { copies_in_flight_max: 1 }).is_empty());
    }

    #[test]
    fn keys_with_fewest_lasting_copies_go_first_under_throttle() {
        let nodes = [node(1, "", Alive), node(2, "", Alive), node(3, "", Alive)];
        let needs = [need("safe", 3, &[1, 2]), need("risky", 3, &[1])];
        let copies = plan_copies(&nodes, &needs, Limits { copies_in_flight_max: 1 });
        assert_eq!(copies, vec![CopyCommand { need: 1, source: 1, target: 2 }]);
    }

    #[test]
    fn every_missing_copy_of_a_key_in_one_round_to_distinct_nodes() {
        let nodes: Vec<NodeView> = (1..=5).map(|id| node(id, "", Alive)).collect();
        let copies = plan_copies(&nodes, &[need("k", 3, &[1]), need("k", 3, &[2])], NO_THROTTLE);
        assert_eq!(copies.len(), 2, "the first need of the key is served, the duplicate is not");
        let targets: BTreeSet<NodeId> = copies.iter().map(|c| c.target).collect();
        assert_eq!(targets.len(), 2);
        assert!(!targets.contains(&1));
    }

    fn removed(nodes: &[NodeView], needs: &[KeyNeed]) -> Vec<NodeId> {
        plan_removals(nodes, needs).iter().map(|remove| remove.holder).collect()
    }

    #[test]
    fn removal_prefers_a_draining_node() {
        let nodes = [node(1, "a", Alive), node(2, "b", Drain), node(3, "a", Alive)];
        assert_eq!(removed(&nodes, &[need("k", 2, &[1, 2, 3])]), vec![2]);
    }

    #[test]
    fn removal_prefers_a_zone_with_two_copies_over_the_fullest_node() {
        let mut nodes = [node(1, "a", Alive), node(2, "a", Alive), node(3, "b", Alive)];
        nodes[2].free_bytes = 0;
        nodes[1].free_bytes = TB / 2;
        assert_eq!(removed(&nodes, &[need("k", 2, &[1, 2, 3])]), vec![2]);
    }

    #[test]
    fn removal_takes_the_fullest_node_among_equals() {
        let mut nodes = [node(1, "", Alive), node(2, "", Alive), node(3, "", Alive)];
        nodes[1].free_bytes = TB / 4;
        nodes[2].free_bytes = TB / 2;
        assert_eq!(removed(&nodes, &[need("k", 1, &[1, 2, 3])]), vec![2, 3]);
    }

    #[test]
    fn removal_never_drops_readable_holders_below_wanted() {
        let nodes = [node(1, "", Alive), node(2, "", Down), node(3, "", Dead), node(4, "", Alive)];
        assert!(removed(&nodes, &[need("k", 2, &[1, 2, 3, 4])]).is_empty());
        assert!(removed(&nodes, &[need("k", 2, &[1, 4, 9])]).is_empty());
    }

    #[test]
    fn removal_skips_readonly_nodes() {
        let nodes = [node(1, "", Readonly), node(2, "", Readonly), node(3, "", Alive)];
        assert_eq!(removed(&nodes, &[need("k", 1, &[1, 2, 3])]), vec![3]);
    }

    #[test]
    fn homes_are_capped_by_members_distinct_and_deterministic() {
        let members = [5, 3, 9, 3];
        let homes_now = homes(&members, "photos", "cat.jpg", 5);
        assert_eq!(homes_now.len(), 3);
        assert_eq!(homes_now.iter().collect::<BTreeSet<_>>().len(), 3);
        assert_eq!(homes(&[9, 5, 3], "photos", "cat.jpg", 5), homes_now);
        assert!(homes(&[], "photos", "cat.jpg", 3).is_empty());
    }

    #[test]
    fn free_space_weighting_gives_the_bigger_node_three_quarters() {
        let mut nodes = [node(1, "", Alive), node(2, "", Alive), node(3, "", Readonly)];
        nodes[0].free_bytes = TB;
        nodes[1].free_bytes = 3 * TB;
        nodes[0].total_bytes = 4 * TB;
        nodes[1].total_bytes = 4 * TB;
        let needs: Vec<KeyNeed> = (0..4000u32)
            .map(|i| {
                let mut need = need(&format!("k{i}"), 2, &[3]);
                need.sha256.0[..4].copy_from_slice(&i.to_le_bytes());
                need
            })
            .collect();
        let copies = plan_copies(&nodes, &needs, NO_THROTTLE);
        assert_eq!(copies.len(), 4000);
        let bigger = copies.iter().filter(|copy| copy.target == 2).count();
        assert!((2600..=3400).contains(&bigger), "bigger node got {bigger} of 4000");
    }

    fn arb_state() -> impl Strategy<Value = MemberState> {
        prop_oneof![Just(Alive), Just(Down), Just(Dead), Just(Drain), Just(Readonly)]
    }

    /// Nodes 1..=n; holders may name ids above n (members no longer known).
    fn arb_nodes() -> impl Strategy<Value = Vec<NodeView>> {
        prop::collection::vec(
            (0..4usize, arb_state(), 0..1_000_000u64, 0..1_000_000u64, 0..6u32),
            1..=12,
        )
        .prop_map(|shapes| {
            shapes
                .into_iter()
                .enumerate()
                .map(|(at, (zone, state, free_bytes, used_bytes, copies_in_flight))| NodeView {
                    id: at as NodeId + 1,
                    zone: ["", "a", "b", "c"][zone].to_string(),
                    state,
                    stores: true,
                    free_bytes,
                    total_bytes: free_bytes + used_bytes,
                    copies_in_flight,
                })
                .collect()
        })
    }

    fn arb_needs() -> impl Strategy<Value = Vec<KeyNeed>> {
        prop::collection::vec(
            (
                0..60u32,
                any::<[u8; 32]>(),
                0..50_000u64,
                1..=5u32,
                prop::collection::vec(1..=13u64, 0..6),
            ),
            0..200,
        )
        .prop_map(|needs| {
            needs
                .into_iter()
                .map(|(key, sha256, size_bytes, wanted, holders)| KeyNeed {
                    domain: "d".to_string(),
                    key: format!("k{key}"),
                    sha256: Digest(sha256),
                    size_bytes,
                    wanted,
                    holders,
                    failed: Vec::new(),
                })
                .collect()
        })
    }

    fn state_of(nodes: &[NodeView], id: NodeId) -> Option<MemberState> {
        nodes.iter().find(|node| node.id == id).map(|node| node.state)
    }

    fn distinct(holders: &[NodeId]) -> BTreeSet<NodeId> {
        holders.iter().copied().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn copies_obey_every_rule(nodes in arb_nodes(), needs in arb_needs(), max in 0..6u32) {
            let limits = Limits { copies_in_flight_max: max };
            let copies = plan_copies(&nodes, &needs, limits);
            prop_assert_eq!(&copies, &plan_copies(&nodes, &needs, limits));

            let mut load: BTreeMap<NodeId, u32> = BTreeMap::new();
            let mut bytes: BTreeMap<NodeId, u64> = BTreeMap::new();
            let mut keys = BTreeSet::new();
            let mut per_key: BTreeMap<(&String, &String), usize> = BTreeMap::new();
            for copy in &copies {
                let need = &needs[copy.need];
                prop_assert!(!need.holders.contains(&copy.target));
                prop_assert_eq!(state_of(&nodes, copy.target), Some(Alive));
                prop_assert!(need.holders.contains(&copy.source));
                prop_assert!(state_of(&nodes, copy.source).is_some_and(is_readable));
                prop_assert!(keys.insert((&need.domain, &need.key, copy.target)), "two copies to one node");
                *per_key.entry((&need.domain, &need.key)).or_insert(0usize) += 1;
                let lasting = distinct(&need.holders)
                    .into_iter()
                    .filter(|&id| state_of(&nodes, id).is_some_and(is_lasting))
                    .count();
                prop_assert!(lasting + per_key[&(&need.domain, &need.key)] <= need.wanted as usize);
                *load.entry(copy.source).or_default() += 1;
                *load.entry(copy.target).or_default() += 1;
                *bytes.entry(copy.target).or_default() += need.size_bytes;
            }
            for node in &nodes {
                let planned = load.get(&node.id).copied().unwrap_or(0);
                prop_assert!(planned == 0 || node.copies_in_flight + planned <= max);
                let planned_bytes = bytes.get(&node.id).copied().unwrap_or(0);
                prop_assert!(
                    planned_bytes == 0
                        || node.free_bytes >= planned_bytes + node.total_bytes / FREE_RESERVE_DIVISOR
                );
            }

            // Zone spread: a node that had room and space all round long was
            // eligible when each key was planned, so if one sat in a zone the
            // key had no lasting copy in, the key's first target is in such a
            // zone too (later targets of the key also avoid the first's zone).
            let mut first_of_key = BTreeSet::new();
            for copy in &copies {
                let need = &needs[copy.need];
                if !first_of_key.insert((&need.domain, &need.key)) {
                    continue;
                }
                let zone = |id: NodeId| nodes.iter().find(|node| node.id == id).map(|node| &node.zone);
                let covered: BTreeSet<&String> = need
                    .holders
                    .iter()
                    .filter(|&&id| state_of(&nodes, id).is_some_and(is_lasting))
                    .filter_map(|&id| zone(id))
                    .collect();
                let open_zone_was_eligible = nodes.iter().any(|node| {
                    let planned = load.get(&node.id).copied().unwrap_or(0);
                    let planned_bytes = bytes.get(&node.id).copied().unwrap_or(0);
                    node.state == Alive
                        && !need.holders.contains(&node.id)
                        && !covered.contains(&node.zone)
                        && node.copies_in_flight + planned < max
                        && node.free_bytes
                            >= planned_bytes + need.size_bytes + node.total_bytes / FREE_RESERVE_DIVISOR
                });
                if open_zone_was_eligible {
                    prop_assert!(!covered.contains(zone(copy.target).unwrap()));
                }
            }
        }

        #[test]
        fn removals_keep_wanted_readable_copies(nodes in arb_nodes(), needs in arb_needs()) {
            let removals = plan_removals(&nodes, &needs);
            prop_assert_eq!(&removals, &plan_removals(&nodes, &needs));
            let mut by_need: BTreeMap<usize, BTreeSet<NodeId>> = BTreeMap::new();
            for removal in &removals {
                let need = &needs[removal.need];
                prop_assert!(need.holders.contains(&removal.holder));
                prop_assert!(state_of(&nodes, removal.holder).is_some_and(is_deletable));
                prop_assert!(by_need.entry(removal.need).or_default().insert(removal.holder));
            }
            for (index, need) in needs.iter().enumerate() {
                let gone = by_need.remove(&index).unwrap_or_default();
                let readable = distinct(&need.holders)
                    .into_iter()
                    .filter(|&id| state_of(&nodes, id).is_some_and(is_readable))
                    .count();
                prop_assert!(gone.is_empty() || readable - gone.len() >= need.wanted as usize);
            }
        }

        #[test]
        fn homes_keep_their_order_when_another_member_leaves(
            members in prop::collection::btree_set(any::<u64>(), 1..20),
            key in "[a-z]{1,12}",
            count in 0..6usize,
            pick in any::<prop::sample::Index>(),
        ) {
            let members: Vec<NodeId> = members.into_iter().collect();
            let before = homes(&members, "d", &key, count);
            prop_assert_eq!(&before, &homes(&members, "d", &key, count));
            prop_assert_eq!(before.len(), count.min(members.len()));
            let leaving = members[pick.index(members.len())];
            let rest: Vec<NodeId> = members.iter().copied().filter(|&id| id != leaving).collect();
            let after = homes(&rest, "d", &key, count);
            if !before.contains(&leaving) {
                prop_assert_eq!(&after, &before);
            } else {
                // A home left: the others keep their order and one newcomer fills the end.
                let kept: Vec<NodeId> = before.iter().copied().filter(|&id| id != leaving).collect();
                prop_assert_eq!(&after[..kept.len()], &kept[..]);
            }
        }
    }
}
