//! What a WebDAV path names: a key (a file) or a collection (a key prefix
//! ending in `/` under which keys or collection records exist), and the
//! members of a collection, read a bounded page at a time.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use cairn_engine::{CollectionRecord, KeyRecord, Meta, MetaError};

use super::path::{href, DavPath};
use crate::http::ApiError;
use cairn_node::listing::{key_page, record_of};
use cairn_node::shard::{collection_exists, CollectionOp, Shard};
use cairn_node::{Node, NodeError};

/// Records read from RocksDB per page when walking a collection.
pub const PAGE_LEN: usize = 256;
/// Keys changed at once when a collection is deleted or copied.
pub const BATCH_LEN: usize = 64;

#[derive(Clone, Debug)]
pub enum Resource {
    File {
        key: String,
        record: KeyRecord,
    },
    /// `prefix` ends with `/`, or is empty for the domain's root.
    Collection {
        prefix: String,
        marker: Option<CollectionRecord>,
    },
}

impl Resource {
    /// The key or prefix: what locks and dead properties are stored under.
    pub fn path(&self) -> &str {
        match self {
            Resource::File { key, .. } => key,
            Resource::Collection { prefix, .. } => prefix,
        }
    }

    pub fn is_collection(&self) -> bool {
        matches!(self, Resource::Collection { .. })
    }

    pub fn href(&self, domain: &str) -> String {
        collection_or_key_href(domain, self.path())
    }

    pub fn etag(&self) -> Option<String> {
        match self {
            Resource::File { record, .. } => Some(format!("\"{}\"", record.sha256)),
            Resource::Collection { .. } => None,
        }
    }

    /// The last segment of the name ("" for the root).
    pub fn display_name(&self) -> &str {
        let path = self.path().strip_suffix('/').unwrap_or(self.path());
        path.rsplit('/').next().unwrap_or(path)
    }
}

/// The href of a key, or of a collection prefix (with its trailing slash).
pub fn collection_or_key_href(domain: &str, path: &str) -> String {
    match path.strip_suffix('/') {
        Some(name) => href(domain, name) + "/",
        None if path.is_empty() => href(domain, "").trim_end_matches('/').to_string() + "/",
        None => href(domain, path),
    }
}

/// The resource at a path on this node alone, if any. Without a trailing
/// slash a key wins over a collection of the same name.
pub fn resolve_local(meta: &Meta, path: &DavPath) -> Result<Option<Resource>, MetaError> {
    if !path.trailing_slash {
        if let Some(record) = meta.key(&path.domain, &path.name)? {
            return Ok(Some(Resource::File { key: path.name.clone(), record }));
        }
    }
    collection(meta, &path.domain, &path.prefix())
}

/// The resource at a path in the cluster: a key this node holds, else one
/// the key's homes know, else a collection (of this node's records, or of
/// keys anywhere).
pub async fn resolve(node: &Node, path: &DavPath) -> Result<Option<Resource>, NodeError> {
    if !path.trailing_slash {
        if let Some(record) = node.meta.key(&path.domain, &path.name)? {
            return Ok(Some(Resource::File { key: path.name.clone(), record }));
        }
        if let Some(record) = key_elsewhere(node, &path.domain, &path.name).await? {
            return Ok(Some(Resource::File { key: path.name.clone(), record }));
        }
    }
    collection_in_cluster(node, &path.domain, &path.prefix()).await
}

/// A key held by other nodes, as its homes know it.
async fn key_elsewhere(
    node: &Node,
    domain: &str,
    key: &str,
) -> Result<Option<KeyRecord>, NodeError> {
    if node.control.is_alone() {
        return Ok(None);
    }
    match node.control.lookup(domain, key).await {
        Ok(Some(entry)) if !entry.deleted => Ok(Some(record_of(entry))),
        Ok(_) => Ok(None),
        Err(_) => Err(NodeError::HomesUnreachable),
    }
}

pub fn collection(meta: &Meta, domain: &str, prefix: &str) -> Result<Option<Resource>, MetaError> {
    if !collection_exists(meta, domain, prefix)? {
        return Ok(None);
    }
    let marker = if prefix.is_empty() { None } else { meta.collection(domain, prefix)? };
    Ok(Some(Resource::Collection { prefix: prefix.to_string(), marker }))
}

/// A collection with records here, or with keys anywhere in the cluster.
pub async fn collection_in_cluster(
    node: &Node,
    domain: &str,
    prefix: &str,
) -> Result<Option<Resource>, NodeError> {
    if let Some(found) = collection(&node.meta, domain, prefix)? {
        return Ok(Some(found));
    }
    if node.control.is_alone() {
        return Ok(None);
    }
    let page = key_page(node, domain, prefix, prefix, 1).await?;
    Ok((!page.keys.is_empty())
        .then(|| Resource::Collection { prefix: prefix.to_string(), marker: None }))
}

/// The smallest name after every name that starts with `prefix` (which ends with `/`).
fn past(prefix: &str) -> String {
    let mut out = prefix[..prefix.len() - 1].to_string();
    out.push('0');
    out
}

/// A name read from one source: a key's record or a collection record.
type Named = (String, Option<KeyRecord>, Option<CollectionRecord>);

/// One of the two sorted sources of a collection's members.
struct Source {
    start: String,
    ready: VecDeque<Resource>,
    done: bool,
}

/// The direct members of a collection in name order: keys without a
/// further `/`, and sub-collections found through keys or records below.
/// Keys are the cluster's when a node is given (`key_page`), else those
/// of `meta`; collection records are this node's.
pub struct Members {
    meta: Meta,
    cluster: Option<Arc<Node>>,
    page_len: usize,
    domain: String,
    prefix: String,
    keys: Source,
    collections: Source,
}

impl Members {
    pub fn new(meta: Meta, cluster: Option<Arc<Node>>, domain: &str, prefix: &str) -> Members {
        let source = || Source { start: prefix.to_string(), ready: VecDeque::new(), done: false };
        Members {
            meta,
            cluster,
            page_len: PAGE_LEN,
            domain: domain.to_string(),
            prefix: prefix.to_string(),
            keys: source(),
            collections: source(),
        }
    }

    /// A collection's members in the cluster.
    pub fn of(node: &Arc<Node>, domain: &str, prefix: &str) -> Members {
        Members::new(node.meta.clone(), Some(node.clone()), domain, prefix)
    }

    /// The next page of names of one source not below `start`, and where
    /// the page after it starts (`None`: this was the last).
    async fn page(
        &self,
        collections: bool,
        start: &str,
    ) -> Result<(Vec<Named>, Option<String>), NodeError> {
        let (meta, domain, prefix, page_len) =
            (&self.meta, &self.domain, &self.prefix, self.page_len);
        if !collections {
            if let Some(node) = &self.cluster {
                let page = key_page(node, domain, prefix, start, page_len).await?;
                let next = page.next_after.as_deref().map(cairn_cluster::start_after);
                let named = page.keys.into_iter().map(|(name, r)| (name, Some(r), None)).collect();
                return Ok((named, next));
            }
        }
        let named: Vec<Named> = if collections {
            meta.list_collections_from(domain, prefix, start, page_len)?
                .into_iter()
                .map(|(name, record)| (name, None, Some(record)))
                .collect()
        } else {
            meta.list_keys_from(domain, prefix, start, page_len)?
                .into_iter()
                .map(|(name, record)| (name, Some(record), None))
                .collect()
        };
        let next = (named.len() >= page_len)
            .then(|| named.last().map(|(name, _, _)| format!("{name}\0")))
            .flatten();
        Ok((named, next))
    }

    async fn fill(&mut self, collections: bool) -> Result<(), NodeError> {
        loop {
            let source = if collections { &self.collections } else { &self.keys };
            if !source.ready.is_empty() || source.done {
                return Ok(());
            }
            let start = source.start.clone();
            let (page, next) = self.page(collections, &start).await?;
            let prefix = self.prefix.clone();
            let source = if collections { &mut self.collections } else { &mut self.keys };
            source.done = next.is_none();
            for (name, key, marker) in page {
                if name < source.start {
                    continue;
                }
                let rest = &name[prefix.len()..];
                match rest.find('/') {
                    _ if rest.is_empty() => {}
                    Some(at) => {
                        let sub = format!("{prefix}{}", &rest[..=at]);
                        source.start = past(&sub);
                        // The sub-collection's own record, when this is it.
                        let marker = if at + 1 == rest.len() { marker } else { None };
                        source.ready.push_back(Resource::Collection { prefix: sub, marker });
                    }
                    None => {
                        source.start = format!("{name}\0");
                        if let Some(record) = key {
                            source.ready.push_back(Resource::File { key: name, record });
                        }
                    }
                }
            }
            if let Some(next) = next {
                source.start = source.start.clone().max(next);
            }
        }
    }

    /// The next member, or `None` when there are no more.
    pub async fn next_member(&mut self) -> Result<Option<Resource>, NodeError> {
        self.fill(false).await?;
        self.fill(true).await?;
        let key = self.keys.ready.front().map(|r| r.path().to_string());
        let collection = self.collections.ready.front().map(|r| r.path().to_string());
        Ok(match (key, collection) {
            (None, None) => None,
            (Some(_), None) => self.keys.ready.pop_front(),
            (None, Some(_)) => self.collections.ready.pop_front(),
            (Some(k), Some(c)) if k < c => self.keys.ready.pop_front(),
            (Some(k), Some(c)) if k > c => self.collections.ready.pop_front(),
            // The same sub-collection from both: the record's copy knows its date.
            _ => {
                self.keys.ready.pop_front();
                self.collections.ready.pop_front()
            }
        })
    }
}

/// Deletes every key under `prefix` in the cluster and this node's
/// collection records under it, a bounded batch at a time, each change on
/// its owner shard.
pub async fn delete_tree(shard: &Rc<Shard>, domain: &str, prefix: &str) -> Result<(), ApiError> {
    let meta = shard.node.meta.clone();
    let mut start = prefix.to_string();
    loop {
        let page = key_page(&shard.node, domain, prefix, &start, BATCH_LEN).await?;
        if page.keys.is_empty() && page.next_after.is_none() {
            break;
        }
        let next = page.keys.last().map(|(last, _)| last.clone()).or(page.next_after);
        start = cairn_cluster::start_after(&next.unwrap_or_default());
        let tasks: Vec<_> = page
            .keys
            .into_iter()
            .map(|(key, _)| {
                let (shard, domain) = (shard.clone(), domain.to_string());
                glommio::spawn_local(async move {
                    cairn_node::delete::delete_anywhere(&shard, domain, key).await
                })
                .detach()
            })
            .collect();
        settle(tasks).await?;
    }
    let mut start = prefix.to_string();
    loop {
        let page = meta.list_collections_from(domain, prefix, &start, BATCH_LEN)?;
        let Some((last, _)) = page.last() else { break };
        start = format!("{last}\0");
        let tasks: Vec<_> = page
            .into_iter()
            .map(|(marked, _)| {
                let (shard, domain) = (shard.clone(), domain.to_string());
                glommio::spawn_local(async move {
                    shard.collection(domain, marked, CollectionOp::Remove).await.map(|_| ())
                })
                .detach()
            })
            .collect();
        settle(tasks).await?;
    }
    Ok(())
}

/// Waits for every task; a key someone else removed meanwhile is no failure.
pub async fn settle<E: Into<ApiError>>(
    tasks: Vec<glommio::task::JoinHandle<Result<(), E>>>,
) -> Result<(), ApiError> {
    let mut failure = None;
    for task in tasks {
        match task.await.map(|done| done.map_err(Into::into)) {
            Some(Ok(())) => {}
            Some(Err(error)) if error.kind == crate::http::ErrorKind::NotFound => {}
            Some(Err(error)) => failure = Some(error),
            None => failure = Some(ApiError::from(std::io::Error::other("task was cancelled"))),
        }
    }
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use cairn_engine::meta::Batch;
    use cairn_engine::{Digest, KeyState, Version};
    use proptest::prelude::*;

    use super::*;

    fn record() -> KeyRecord {
        KeyRecord {
            state: KeyState::Stored,
            version: Version { hlc: 1, node_id: 1 },
            sha256: Digest([0; 32]),
            size_bytes: 0,
            class: "default".into(),
            content_type: String::new(),
            fid: 1,
            headers: String::new(),
        }
    }

    /// The members of `prefix` computed naively from every name.
    fn model(keys: &BTreeSet<String>, markers: &BTreeSet<String>, prefix: &str) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (name, is_key) in
            keys.iter().map(|k| (k, true)).chain(markers.iter().map(|m| (m, false)))
        {
            let Some(rest) = name.strip_prefix(prefix) else { continue };
            match rest.find('/') {
                _ if rest.is_empty() => {}
                Some(at) => {
                    out.insert(format!("{prefix}{}", &rest[..=at]));
                }
                None if is_key => {
                    out.insert(name.clone());
                }
                None => {}
            }
        }
        out.into_iter().collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Members, read a page of 3 at a time, are exactly those of a
        /// model built from all the names.
        #[test]
        fn members_match_a_model(
            keys in proptest::collection::btree_set("[ab/]{1,6}", 0..40),
            markers in proptest::collection::btree_set("[ab/]{0,4}/", 0..10),
            prefix in "([ab]{1,2}/){0,2}",
        ) {
            let keys: BTreeSet<String> = keys.into_iter().filter(|k| !k.contains("//")).collect();
            let markers: BTreeSet<String> =
                markers.into_iter().filter(|m| m != "/" && !m.contains("//")).collect();
            let dir = tempfile::tempdir().unwrap();
            let meta = Meta::open(dir.path()).unwrap();
            let mut batch = Batch::default();
            for key in &keys {
                batch.put_key("d", key, &record());
            }
            for marker in &markers {
                let made = CollectionRecord { created: Version { hlc: 2, node_id: 1 } };
                batch.put_collection("d", marker, &made);
            }
            futures_lite::future::block_on(meta.commit(batch)).unwrap();
            let mut members = Members::new(meta, None, "d", &prefix);
            members.page_len = 3;
            let mut listed = Vec::new();
            while let Some(member) = futures_lite::future::block_on(members.next_member()).unwrap() {
                listed.push(member.path().to_string());
            }
            prop_assert_eq!(listed, model(&keys, &markers, &prefix));
        }
    }
}
