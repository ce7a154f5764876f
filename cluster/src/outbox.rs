//! The outbox (docs/design.md §4): a change of a key is committed with an
//! outbox entry in the same batch, and the entry stays until every live
//! home of the key has confirmed it. Changes the homes missed (a timeout, a
//! home paused or down, a kill -9 after the answer) are re-sent from here,
//! with backoff, also after a restart: the time to deliver them depends on
//! how many are waiting, not on how many keys the node holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_engine::meta::Batch;
use cairn_engine::{OutboxEntry, Version};

use crate::plane::Core;
use crate::replicas::Announced;

/// Outbox entries looked at per scan.
const SCAN_MAX: usize = 256;
/// How often the outbox is scanned.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Announcements the outbox has under way at once.
const RESENDS_AT_ONCE: usize = 32;
/// First and longest wait before an entry is sent again.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Announcements of one key under way, and who waits for them to end.
#[derive(Default)]
pub struct Announcing {
    count: usize,
    waiters: Vec<futures_channel::oneshot::Sender<()>>,
}

/// Longest a PUT waits for its key's homes to confirm its version.
const CONFIRM_WAIT: Duration = Duration::from_millis(2500);

impl Core {
    /// Marks an announcement of the key as under way (before it is
    /// spawned, so that a waiter never misses it).
    pub fn begin_announce(&self, domain: &str, key: &str) {
        let mut announcing = self.announcing.lock().expect("announcing lock");
        announcing.entry((domain.to_owned(), key.to_owned())).or_default().count += 1;
    }

    /// Announces the key's current version to its homes and drops the
    /// outbox entries they have now confirmed; `begin_announce` came first.
    pub async fn announce_change(&self, domain: String, key: String) -> bool {
        let outcome = self.announce(domain.clone(), key.clone()).await;
        let settled = self.settle(&domain, &key, outcome);
        let id = (domain, key);
        let mut announcing = self.announcing.lock().expect("announcing lock");
        if let Some(under_way) = announcing.get_mut(&id) {
            under_way.count -= 1;
            if under_way.count == 0 {
                for waiter in announcing.remove(&id).map(|u| u.waiters).unwrap_or_default() {
                    let _ = waiter.send(());
                }
            }
        }
        settled
    }

    /// Waits, a bounded time, for the announcements of the key under way
    /// to end; answers whether every live home has confirmed `version`.
    pub async fn confirmed(&self, domain: &str, key: &str, version: Version) -> bool {
        let id = (domain.to_owned(), key.to_owned());
        let waiting = {
            let mut announcing = self.announcing.lock().expect("announcing lock");
            announcing.get_mut(&id).map(|under_way| {
                let (sender, receiver) = futures_channel::oneshot::channel();
                under_way.waiters.push(sender);
                receiver
            })
        };
        if let Some(receiver) = waiting {
            if tokio::time::timeout(CONFIRM_WAIT, receiver).await.is_err() {
                return false;
            }
        }
        self.storage.meta.outbox_of(domain, key).is_ok_and(|waiting| !waiting.contains(&version))
    }

    /// Drops the outbox entries an announcement settled; answers whether
    /// it settled them all.
    fn settle(&self, domain: &str, key: &str, outcome: Announced) -> bool {
        let up_to = match outcome {
            Announced::Confirmed(version) => version,
            Announced::NotHere => Version { hlc: u64::MAX, node_id: u64::MAX },
            Announced::Missed => return false,
        };
        let meta = &self.storage.meta;
        let Ok(versions) = meta.outbox_of(domain, key) else { return false };
        let mut batch = Batch::default();
        for version in versions.iter().filter(|version| **version <= up_to) {
            batch.delete_outbox(domain, key, *version);
        }
        // Lost with a crash, an entry is only sent once more.
        if let Err(error) = meta.write_unsynced(batch) {
            tracing::warn!(%error, "cannot drop settled outbox entries");
            return false;
        }
        true
    }
}

/// When each waiting entry may be sent again, and how long it waits after
/// the next miss.
#[derive(Default)]
struct Backoff {
    next: HashMap<(String, String, Version), (Instant, Duration)>,
}

impl Backoff {
    fn due(&self, id: &(String, String, Version), now: Instant) -> bool {
        self.next.get(id).is_none_or(|(at, _)| *at <= now)
    }

    fn missed(&mut self, id: (String, String, Version), now: Instant) {
        let wait = self.next.get(&id).map_or(RETRY_FIRST, |(_, wait)| (*wait * 2).min(RETRY_MAX));
        self.next.insert(id, (now + wait, wait));
    }
}

/// Re-sends, forever, the changes in the outbox that no announcement is
/// carrying at the moment.
pub async fn drain(core: Arc<Core>) {
    let mut backoff = Backoff::default();
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<OutboxEntry> = None;
    let mut ticker = tokio::time::interval(SCAN_INTERVAL);
    loop {
        ticker.tick().await;
        let entries = match core.storage.meta.outbox_after(cursor.as_ref(), SCAN_MAX) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "cannot scan the outbox");
                continue;
            }
        };
        seen.extend(entries.iter().map(|e| (e.domain.clone(), e.key.clone(), e.version)));
        cursor = if entries.len() < SCAN_MAX { None } else { entries.last().cloned() };
        if cursor.is_none() {
            // A pass ended: forget the backoff of entries that are gone.
            backoff.next.retain(|id, _| seen.contains(id));
            seen.clear();
        }
        let now = Instant::now();
        let due: Vec<OutboxEntry> = entries
            .into_iter()
            .filter(|e| backoff.due(&(e.domain.clone(), e.key.clone(), e.version), now))
            .filter(|e| {
                let id = (e.domain.clone(), e.key.clone());
                !core.announcing.lock().expect("announcing lock").contains_key(&id)
            })
            .collect();
        for batch in due.chunks(RESENDS_AT_ONCE) {
            let mut tasks = tokio::task::JoinSet::new();
            for entry in batch {
                let (core, entry) = (core.clone(), entry.clone());
                core.begin_announce(&entry.domain, &entry.key);
                tasks.spawn(async move {
                    let settled = core.announce_change(entry.domain.clone(), entry.key.clone());
                    (entry, settled.await)
                });
            }
            while let Some(done) = tasks.join_next().await {
                let Ok((entry, settled)) = done else { continue };
                if !settled {
                    backoff.missed((entry.domain, entry.key, entry.version), now);
                }
            }
        }
    }
}
