//! What a WebDAV path names: a key (a file) or a collection (a key prefix
//! ending in `/` under which keys or collection records exist), and the
//! members of a collection, read a bounded page at a time.

use std::collections::VecDeque;
use std::rc::Rc;

use cairn_engine::{CollectionRecord, KeyRecord, Meta, MetaError};

use super::path::{href, DavPath};
use crate::http::ApiError;
use cairn_node::shard::{collection_exists, CollectionOp, Shard};
use cairn_node::NodeError;

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

/// The resource at a path, if any. Without a trailing slash a key wins
/// over a collection of the same name.
pub fn resolve(meta: &Meta, path: &DavPath) -> Result<Option<Resource>, MetaError> {
    if !path.trailing_slash {
        if let Some(record) = meta.key(&path.domain, &path.name)? {
            return Ok(Some(Resource::File { key: path.name.clone(), record }));
        }
    }
    collection(meta, &path.domain, &path.prefix())
}

pub fn collection(meta: &Meta, domain: &str, prefix: &str) -> Result<Option<Resource>, MetaError> {
    if !collection_exists(meta, domain, prefix)? {
        return Ok(None);
    }
    let marker = if prefix.is_empty() { None } else { meta.collection(domain, prefix)? };
    Ok(Some(Resource::Collection { prefix: prefix.to_string(), marker }))
}

/// The smallest name after every name that starts with `prefix` (which ends with `/`).
fn past(prefix: &str) -> String {
    let mut out = prefix[..prefix.len() - 1].to_string();
    out.push('0');
    out
}

/// One of the two sorted sources of a collection's members.
struct Source {
    collections: bool,
    start: String,
    ready: VecDeque<Resource>,
    done: bool,
}

/// The direct members of a collection in name order: keys without a
/// further `/`, and sub-collections found through keys or records below.
pub struct Members {
    meta: Meta,
    page_len: usize,
    domain: String,
    prefix: String,
    keys: Source,
    collections: Source,
}

impl Members {
    pub fn new(meta: Meta, domain: &str, prefix: &str) -> Members {
        let source = |collections| Source {
            collections,
            start: prefix.to_string(),
            ready: VecDeque::new(),
            done: false,
        };
        Members {
            meta,
            page_len: PAGE_LEN,
            domain: domain.to_string(),
            prefix: prefix.to_string(),
            keys: source(false),
            collections: source(true),
        }
    }

    fn fill(&mut self, collections: bool) -> Result<(), MetaError> {
        let (meta, domain, prefix, page_len) =
            (&self.meta, &self.domain, &self.prefix, self.page_len);
        let source = if collections { &mut self.collections } else { &mut self.keys };
        while source.ready.is_empty() && !source.done {
            let page: Vec<(String, Option<KeyRecord>, Option<CollectionRecord>)> =
                if source.collections {
                    meta.list_collections_from(domain, prefix, &source.start, page_len)?
                        .into_iter()
                        .map(|(name, record)| (name, None, Some(record)))
                        .collect()
                } else {
                    meta.list_keys_from(domain, prefix, &source.start, page_len)?
                        .into_iter()
                        .map(|(name, record)| (name, Some(record), None))
                        .collect()
                };
            source.done = page.len() < page_len;
            let last = page.last().map(|(name, _, _)| format!("{name}\0"));
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
            if let Some(last) = last {
                source.start = source.start.clone().max(last);
            }
        }
        Ok(())
    }

    /// The next member, or `None` when there are no more.
    pub fn next_member(&mut self) -> Result<Option<Resource>, MetaError> {
        self.fill(false)?;
        self.fill(true)?;
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

/// Deletes every key and collection record under `prefix`, a bounded
/// batch at a time, each change on its owner shard.
pub async fn delete_tree(shard: &Rc<Shard>, domain: &str, prefix: &str) -> Result<(), ApiError> {
    let meta = shard.node.meta.clone();
    let mut start = prefix.to_string();
    loop {
        let page = meta.list_keys_from(domain, prefix, &start, BATCH_LEN)?;
        let Some((last, _)) = page.last() else { break };
        start = format!("{last}\0");
        let tasks: Vec<_> = page
            .into_iter()
            .map(|(key, _)| {
                let (shard, domain) = (shard.clone(), domain.to_string());
                glommio::spawn_local(async move {
                    cairn_node::delete::delete_everywhere(&shard, domain, key, None)
                        .await
                        .map(|_| ())
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
pub async fn settle(
    tasks: Vec<glommio::task::JoinHandle<Result<(), NodeError>>>,
) -> Result<(), ApiError> {
    let mut failure = None;
    for task in tasks {
        match task.await {
            Some(Ok(())) | Some(Err(NodeError::NotFound)) => {}
            Some(Err(error)) => failure = Some(ApiError::from(error)),
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
            let mut members = Members::new(meta, "d", &prefix);
            members.page_len = 3;
            let mut listed = Vec::new();
            while let Some(member) = members.next_member().unwrap() {
                listed.push(member.path().to_string());
            }
            prop_assert_eq!(listed, model(&keys, &markers, &prefix));
        }
    }
}
