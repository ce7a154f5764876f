//! A page of a domain's keys as every frontend lists them: the cluster's
//! (every member asked, `cairn_cluster::listing`), or a lone node's own.

use cairn_engine::{Digest, KeyRecord, KeyState, Version};
use cairn_net::IndexEntry;

use crate::error::NodeError;
use crate::node::Node;

/// Keys in byte order with what is known of each, and where the next page
/// starts (exclusive), `None` on the last.
pub struct KeyPage {
    pub keys: Vec<(String, KeyRecord)>,
    pub next_after: Option<String>,
}

/// Up to `limit` keys of `domain` starting with `prefix`, not below `start`;
/// a cluster key's record is what its homes know (`record_of`).
pub async fn key_page(
    node: &Node,
    domain: &str,
    prefix: &str,
    start: &str,
    limit: usize,
) -> Result<KeyPage, NodeError> {
    let control = &node.control;
    if control.is_alone() {
        let mut keys = node.meta.list_keys_from(domain, prefix, start, limit + 1)?;
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_after = if more { keys.last().map(|(key, _)| key.clone()) } else { None };
        return Ok(KeyPage { keys, next_after });
    }
    let page = control.list(domain, prefix, start, limit, false).await?;
    let keys =
        page.entries.into_iter().map(|entry| (entry.key.clone(), record_of(entry))).collect();
    Ok(KeyPage { keys, next_after: page.next_after })
}

/// A key record as the key's homes know it: `state` says whether it has
/// its class's copies; `fid` is the version's clock value.
pub fn record_of(entry: IndexEntry) -> KeyRecord {
    let stored = entry.holders.len() >= entry.wanted as usize;
    KeyRecord {
        state: if stored { KeyState::Stored } else { KeyState::NeedReplication },
        version: Version { hlc: entry.hlc, node_id: entry.writer },
        sha256: Digest(entry.sha256),
        size_bytes: entry.size_bytes,
        class: entry.class,
        content_type: entry.content_type,
        fid: entry.hlc,
        headers: entry.headers,
    }
}
