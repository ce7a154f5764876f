//! Cluster listing (docs/design.md §5): a page of a domain's keys, at any
//! node. Index records are spread over the members by hash (each key at
//! its homes), so a page is a bounded merge: every member is asked for up
//! to `limit` records after the cursor, the answers are merged newest
//! version first, tombstones are hidden, and the page stops where the
//! first member that has more stopped (past it, that member's records are
//! not known yet).

use std::collections::BTreeMap;

use cairn_net::{IndexEntry, Message};
use cairn_raft::{MemberState, NodeId};

use crate::plane::Core;
use crate::replicas::{entry_of, newer_of, HOME_COUNT, INDEX_TIMEOUT};

/// Most keys a page holds (and most records a member is asked for).
pub const LIST_LIMIT_MAX: usize = 1000;

/// The smallest key after `key` (keys hold no NUL): a page that continues
/// after `key` starts there.
pub fn start_after(key: &str) -> String {
    format!("{key}\0")
}

/// One page of a cluster listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// Live keys in byte order, newest version of each, at most `limit`.
    pub entries: Vec<IndexEntry>,
    /// Where the next page starts (exclusive); `None` on the last page.
    pub next_after: Option<String>,
    /// Members that did not answer (a `partial` page may miss their keys).
    pub unanswered: Vec<NodeId>,
}

/// Too many members did not answer for the page to hold every key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("members {} did not answer", ids_text(.0))]
pub struct ListUnanswered(pub Vec<NodeId>);

fn ids_text(ids: &[NodeId]) -> String {
    ids.iter().map(|id| format!("{id:016x}")).collect::<Vec<_>>().join(", ")
}

/// One member's answer: its records in key order and whether it has more.
pub type MemberPart = (Vec<IndexEntry>, bool);

/// Merges the members' parts into a page of at most `limit` live keys.
///
/// A member that has more records stopped at its last key: keys after the
/// smallest such stop are left for the next page, which starts there.
pub fn merge_parts(parts: Vec<MemberPart>, limit: usize) -> (Vec<IndexEntry>, Option<String>) {
    let cutoff = parts
        .iter()
        .filter(|(entries, more)| *more && !entries.is_empty())
        .filter_map(|(entries, _)| entries.last().map(|e| e.key.clone()))
        .min();
    let mut newest: BTreeMap<String, IndexEntry> = BTreeMap::new();
    for entry in parts.into_iter().flat_map(|(entries, _)| entries) {
        if cutoff.as_ref().is_some_and(|cutoff| entry.key > *cutoff) {
            continue;
        }
        let merged = match newest.remove(&entry.key) {
            Some(known) => newer_of(known, entry),
            None => entry,
        };
        newest.insert(merged.key.clone(), merged);
    }
    let mut live: Vec<IndexEntry> = newest.into_values().filter(|e| !e.deleted).collect();
    if live.len() > limit {
        live.truncate(limit);
        let next = live.last().map(|e| e.key.clone());
        return (live, next);
    }
    (live, cutoff)
}

/// How many members may leave a page unanswered while it still holds
/// every key: one. Each key's index record is at every one of its homes
/// (`HOME_COUNT`, or every member when there are fewer) that was reachable
/// when it changed, so one silent member hides no key; two could, when
/// each missed what the other holds.
pub fn silent_allowed(asked: usize) -> usize {
    usize::from(asked >= 2 && HOME_COUNT >= 2)
}

impl Core {
    /// This node's index records of `domain` with keys starting with
    /// `prefix`, not below `start`, at most `limit`, and whether it has more.
    pub fn list_index(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
    ) -> Result<MemberPart, cairn_engine::MetaError> {
        let mut records = self.storage.meta.list_index_from(domain, prefix, start, limit + 1)?;
        let more = records.len() > limit;
        records.truncate(limit);
        let entries = records
            .into_iter()
            .map(|(key, record)| {
                let wanted = self.wanted(domain, &record.class);
                entry_of(domain, &key, &record, wanted)
            })
            .collect();
        Ok((entries, more))
    }

    /// A page of the cluster's keys of `domain` not below `start`: every
    /// member that is not dead is asked at once. Unless `partial`, the page fails when too
    /// many members are silent for it to hold every key.
    pub async fn list_cluster(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
        partial: bool,
    ) -> Result<ListPage, ListUnanswered> {
        let members: Vec<(NodeId, String)> = self.view.read(|s| {
            s.members()
                .iter()
                .filter(|(_, r)| r.state != MemberState::Dead)
                .map(|(id, r)| (*id, r.member.peer.clone()))
                .collect()
        });
        let Some(core) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return Err(ListUnanswered(members.iter().map(|m| m.0).collect()));
        };
        let mut asks = tokio::task::JoinSet::new();
        for (id, address) in members.iter().cloned() {
            let core = core.clone();
            let (domain, prefix, start) = (domain.to_owned(), prefix.to_owned(), start.to_owned());
            asks.spawn(async move {
                (id, core.ask_list(id, &address, domain, prefix, start, limit).await)
            });
        }
        let mut parts = Vec::with_capacity(members.len());
        let mut unanswered = Vec::new();
        while let Some(joined) = asks.join_next().await {
            match joined {
                Ok((_, Some(part))) => parts.push(part),
                Ok((id, None)) => unanswered.push(id),
                Err(_) => {}
            }
        }
        unanswered.sort_unstable();
        let answered = parts.len();
        if answered + unanswered.len() < members.len()
            || (!partial && unanswered.len() > silent_allowed(members.len()))
        {
            return Err(ListUnanswered(unanswered));
        }
        let (entries, next_after) = merge_parts(parts, limit);
        Ok(ListPage { entries, next_after, unanswered })
    }

    async fn ask_list(
        &self,
        id: NodeId,
        address: &str,
        domain: String,
        prefix: String,
        start: String,
        limit: usize,
    ) -> Option<MemberPart> {
        if id == self.id() {
            return self.list_index(&domain, &prefix, &start, limit).ok();
        }
        let request = Message::ListIndex { domain, prefix, start, limit: limit as u32 };
        match self.peers.call(address, &request, INDEX_TIMEOUT).await {
            Ok(Message::ListIndexReply { entries, more }) => Some((entries, more)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, hlc: u64, deleted: bool, holder: u64) -> IndexEntry {
        IndexEntry {
            domain: "d".into(),
            key: key.into(),
            hlc,
            writer: 1,
            sha256: [0; 32],
            size_bytes: 1,
            class: "default".into(),
            content_type: String::new(),
            headers: String::new(),
            deleted,
            holders: vec![holder],
            wanted: 2,
        }
    }

    fn keys(entries: &[IndexEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn members_merge_into_one_sorted_page_newest_first_without_tombstones() {
        let a = vec![entry("a", 1, false, 1), entry("c", 5, true, 1)];
        let b = vec![entry("b", 1, false, 2), entry("c", 4, false, 2), entry("a", 1, false, 2)];
        let (page, next) = merge_parts(vec![(a, false), (b, false)], 10);
        assert_eq!(keys(&page), ["a", "b"], "the newer tombstone of c hides it");
        assert_eq!(page[0].holders, [1, 2], "holders of one version add up");
        assert_eq!(next, None);
    }

    #[test]
    fn a_page_stops_where_a_member_with_more_stopped() {
        // Member a has more after "c": "d" at b may come after a's unseen keys.
        let a = vec![entry("a", 1, false, 1), entry("c", 1, false, 1)];
        let b = vec![entry("b", 1, false, 2), entry("d", 1, false, 2)];
        let (page, next) = merge_parts(vec![(a, true), (b, false)], 2);
        assert_eq!(keys(&page), ["a", "b"]);
        assert_eq!(next.as_deref(), Some("b"));
        let (page, next) = merge_parts(
            vec![(vec![entry("a", 1, true, 1), entry("c", 1, false, 1)], true), (vec![], false)],
            5,
        );
        assert_eq!(keys(&page), ["c"]);
        assert_eq!(next.as_deref(), Some("c"), "more to come after c");
    }

    #[test]
    fn one_silent_member_is_allowed_when_keys_have_two_homes() {
        assert_eq!(silent_allowed(1), 0);
        assert_eq!(silent_allowed(2), 1);
        assert_eq!(silent_allowed(3), 1);
        assert_eq!(silent_allowed(9), 1);
    }
}
