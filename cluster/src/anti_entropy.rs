//! Anti-entropy between holders and homes (docs/design.md §5). Every
//! `--rescan-interval` a node takes the next `RANGE_KEYS` keys it holds,
//! sums the versions it holds per home, and sends every live member its
//! sum for that range (`RangeDigest`). The member sums what its index lists
//! this holder for in the same range: equal sums end there, so a pass over
//! a node's keys costs one small message per member and range. Where they
//! differ the home answers what it lists, and the holder announces what
//! the home lacks and forgets what it lists wrongly (`ranges::differences`).
//! A missed announcement, `Superseded`, `IndexForget` or deletion is thus
//! found within one pass, whatever was lost on the way.

use std::sync::Arc;

use cairn_engine::{KeyRecord, KeyState, Version};
use cairn_net::{IndexEntry, KeyName, KeyRange, KeyVersion, Message};
use cairn_raft::{MemberState, NodeId};

use crate::placement;
use crate::plane::{unix_ms, Core};
use crate::ranges::{differences, RangeSum};
use crate::replicas::{HOME_COUNT, INDEX_TIMEOUT};

/// Keys a holder compares per period.
const RANGE_KEYS: usize = 4096;
/// Keys short of copies announced per period: their homes know them (the
/// sums say so); this only makes up for a lost `Stored` notice.
const NEED_ANNOUNCE_MAX: usize = 64;
/// Index records a home reads to answer one range, and versions it lists.
const HOME_SCAN_MAX: usize = 65_536;
const LISTED_MAX: usize = 16_384;
/// Index records read from RocksDB at a time.
const SCAN_PAGE: usize = 1024;
/// Versions younger than this are left out of a comparison on both sides:
/// their announcements may still be under way (the outbox carries them),
/// and counting them would make the newest range differ on every pass.
const SETTLE_MS: u64 = 5_000;

/// Compares, range after range and forever, the keys this node holds with
/// what their homes know.
pub async fn run(core: Arc<Core>) {
    if core.timing.rescan_interval.is_zero() {
        return;
    }
    let mut after: Option<KeyName> = None;
    let mut ticker = tokio::time::interval(core.timing.rescan_interval);
    loop {
        ticker.tick().await;
        if core.is_alone() {
            // A lone node is its own home: nothing to compare.
            continue;
        }
        let from = after.as_ref().map(|n| (n.domain.as_str(), n.key.as_str()));
        let keys = match core.storage.meta.keys_after(from, RANGE_KEYS) {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, "cannot scan keys to compare with their homes");
                continue;
            }
        };
        let through = match keys.last() {
            Some((domain, key, _)) if keys.len() == RANGE_KEYS => {
                Some(KeyName { domain: domain.clone(), key: key.clone() })
            }
            _ => None,
        };
        let range = KeyRange { after: after.take(), through: through.clone() };
        after = through;
        core.compare_range(range, keys).await;
    }
}

impl Core {
    /// Compares the keys held here in `range` with every live member.
    async fn compare_range(
        self: &Arc<Self>,
        range: KeyRange,
        keys: Vec<(String, String, KeyRecord)>,
    ) {
        let settled_before = Version::hlc_at(unix_ms().saturating_sub(SETTLE_MS));
        let keys: Vec<_> =
            keys.into_iter().filter(|(_, _, record)| record.version.hlc < settled_before).collect();
        let short = keys.iter().filter(|(_, _, record)| record.state == KeyState::NeedReplication);
        for (domain, key, _) in short.take(NEED_ANNOUNCE_MAX) {
            self.begin_announce(domain, key);
            self.announce_change(domain.clone(), key.clone()).await;
        }
        let candidates = self.home_candidates();
        let mut held: std::collections::HashMap<NodeId, Vec<KeyVersion>> = Default::default();
        for (domain, key, record) in keys {
            let version =
                KeyVersion { domain, key, hlc: record.version.hlc, writer: record.version.node_id };
            for home in placement::homes(&candidates, &version.domain, &version.key, HOME_COUNT) {
                held.entry(home).or_default().push(version.clone());
            }
        }
        let live: Vec<(NodeId, String)> = self.view.read(|state| {
            state
                .members()
                .iter()
                .filter(|(_, record)| {
                    !matches!(record.state, MemberState::Dead | MemberState::Down)
                })
                .map(|(id, record)| (*id, record.member.peer.clone()))
                .collect()
        });
        let mut comparisons = tokio::task::JoinSet::new();
        for (home, address) in live {
            let held = held.remove(&home).unwrap_or_default();
            let (core, range) = (self.clone(), range.clone());
            comparisons.spawn(async move {
                core.compare_with(home, address, range, settled_before, held).await
            });
        }
        while comparisons.join_next().await.is_some() {}
    }

    /// Compares the versions `held` here in `range` with one home's index.
    async fn compare_with(
        &self,
        home: NodeId,
        address: String,
        range: KeyRange,
        settled_before: u64,
        held: Vec<KeyVersion>,
    ) {
        let mut sum = RangeSum::default();
        for version in &held {
            sum.add(&version.domain, &version.key, version.hlc, version.writer);
        }
        let answer = if home == self.id() {
            self.range_listing(self.id(), &range, settled_before, sum)
        } else {
            let request = Message::RangeDigest {
                holder: self.id(),
                range: Box::new(range),
                settled_before,
                digest: sum.digest,
                count: sum.count,
            };
            match self.peers.call(&address, &request, INDEX_TIMEOUT).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::debug!(%error, home, "cannot compare a range of keys");
                    return;
                }
            }
        };
        let Message::RangeReply { same, listed, reached } = answer else {
            tracing::debug!(?answer, home, "a home did not compare a range of keys");
            return;
        };
        if same {
            return;
        }
        self.storage.stats.ranges_differing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let found = differences(&held, &listed, reached.as_ref());
        tracing::debug!(
            home,
            announce = found.announce.len(),
            check = found.check.len(),
            "a range of keys differs from a home's index"
        );
        for name in found.announce {
            self.begin_announce(&name.domain, &name.key);
            self.announce_change(name.domain, name.key).await;
        }
        for version in found.check {
            self.forget_unless_held(home, &address, version).await;
        }
    }

    /// A home lists this node for `listed`, which it did not hold when it
    /// looked: unless it holds that version or an older one now (an
    /// announcement settles those), the home stops counting it.
    async fn forget_unless_held(&self, home: NodeId, address: &str, listed: KeyVersion) {
        let version = Version { hlc: listed.hlc, node_id: listed.writer };
        match self.storage.meta.key(&listed.domain, &listed.key) {
            Ok(Some(record)) if record.version <= version => return,
            Ok(_) => {}
            Err(_) => return,
        }
        let entry = IndexEntry {
            domain: listed.domain,
            key: listed.key,
            hlc: listed.hlc,
            writer: listed.writer,
            sha256: [0; 32],
            size_bytes: 0,
            class: String::new(),
            content_type: String::new(),
            headers: String::new(),
            deleted: false,
            holders: vec![self.id()],
            wanted: 0,
        };
        if home == self.id() {
            self.index_forget(&entry);
            return;
        }
        let request = Message::IndexForget { entry: Box::new(entry) };
        if let Err(error) = self.peers.call(address, &request, INDEX_TIMEOUT).await {
            tracing::debug!(%error, home, "cannot tell a home a copy is gone");
        }
    }

    /// A home's side of `RangeDigest`: the versions its index lists
    /// `holder` for in `range`, among the keys it is home of, compared
    /// with the holder's sum.
    pub fn range_listing(
        &self,
        holder: NodeId,
        range: &KeyRange,
        settled_before: u64,
        theirs: RangeSum,
    ) -> Message {
        let candidates = self.home_candidates();
        let (mut listed, mut mine) = (Vec::new(), RangeSum::default());
        let (mut cursor, mut scanned, mut reached) = (range.after.clone(), 0, None);
        'scan: loop {
            let from = cursor.as_ref().map(|n| (n.domain.as_str(), n.key.as_str()));
            let page = match self.storage.meta.index_after(from, SCAN_PAGE) {
                Ok(page) => page,
                Err(error) => return Message::Error { code: 500, message: error.to_string() },
            };
            let full = page.len() == SCAN_PAGE;
            for (domain, key, record) in page {
                if !range.contains(&domain, &key) {
                    break 'scan;
                }
                scanned += 1;
                if record.version.hlc < settled_before
                    && record.holders.contains(&holder)
                    && placement::homes(&candidates, &domain, &key, HOME_COUNT).contains(&self.id())
                {
                    let (hlc, writer) = (record.version.hlc, record.version.node_id);
                    mine.add(&domain, &key, hlc, writer);
                    listed.push(KeyVersion {
                        domain: domain.clone(),
                        key: key.clone(),
                        hlc,
                        writer,
                    });
                }
                let here = KeyName { domain, key };
                if scanned >= HOME_SCAN_MAX || listed.len() >= LISTED_MAX {
                    reached = Some(here);
                    break 'scan;
                }
                cursor = Some(here);
            }
            if !full {
                break;
            }
        }
        let same = reached.is_none() && mine == theirs;
        Message::RangeReply { same, listed: if same { Vec::new() } else { listed }, reached }
    }
}
