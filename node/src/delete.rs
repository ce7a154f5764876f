//! Deleting a key wherever it is (docs/design.md §4, §5): the version held
//! here is removed on its shard, and a tombstone version later than the
//! newest one known goes to the key's homes, which tell every holder.

use std::rc::Rc;

use cairn_engine::{KeyRecord, Version};

use crate::error::NodeError;
use crate::shard::Shard;

/// Deletes a key from any node, whether it holds the key or not. The work
/// is detached: a client that goes away must not cancel a delete between
/// its commit and its bookkeeping.
pub async fn delete_anywhere(
    shard: &Rc<Shard>,
    domain: String,
    key: String,
) -> Result<(), NodeError> {
    let shard = shard.clone();
    glommio::spawn_local(async move { delete_version(&shard, domain, key, None).await })
        .detach()
        .await
        .ok_or_else(|| NodeError::Io(std::io::Error::other("delete task was cancelled")))?
}

/// Deletes a key (if its version is still `expected`, any when `None`)
/// on every node, whether it is held here or not.
pub async fn delete_version(
    shard: &Shard,
    domain: String,
    key: String,
    expected: Option<Version>,
) -> Result<(), NodeError> {
    if shard.node.meta.key(&domain, &key)?.is_some() {
        return delete_everywhere(shard, domain, key, expected).await.map(|_| ());
    }
    delete_held_elsewhere(shard, &domain, &key, expected).await
}

/// Deletes a key held here (if its version is still `expected`, any when
/// `None`) on every node: a tombstone goes to the key's homes first, and
/// only once one has it is the copy here removed, so a deletion no home
/// recorded changes nothing (`NoHome`). Answers the record it had here.
async fn delete_everywhere(
    shard: &Shard,
    domain: String,
    key: String,
    expected: Option<Version>,
) -> Result<KeyRecord, NodeError> {
    let old = shard.node.meta.key(&domain, &key)?.ok_or(NodeError::NotFound)?;
    if expected.is_some_and(|version| version != old.version) {
        return Err(NodeError::Changed);
    }
    // Past a newer write elsewhere too: this deletion came after it.
    let elsewhere = match shard.node.control.is_alone() {
        true => None,
        false => shard.node.control.newest_version(&domain, &key).await,
    };
    let tombstone = shard.node.clock.next_after(Some(old.version).max(elsewhere));
    let told = shard.node.control.delete_everywhere(&domain, &key, &old.class, tombstone).await;
    if told == 0 {
        return Err(NodeError::NoHome);
    }
    match shard.delete_if(domain, key, Some(old.version)).await {
        // Gone already (the homes' notice came first), or replaced by a
        // newer version, which wins over this deletion.
        Ok(_) | Err(NodeError::NotFound | NodeError::Changed) => Ok(old),
        Err(error) => Err(error),
    }
}

/// A key held elsewhere only: a tombstone later than what the homes know
/// (if that is still `expected`, any when `None`).
async fn delete_held_elsewhere(
    shard: &Shard,
    domain: &str,
    key: &str,
    expected: Option<Version>,
) -> Result<(), NodeError> {
    let node = &shard.node;
    // Asked now, not from the location cache: a write elsewhere since the
    // entry was cached does not refresh it here, and a tombstone past only
    // the cached version (stamped by a clock behind that write's) would
    // lose to a write acknowledged before this deletion.
    let known = node.control.lookup_now(domain, key).await;
    let known = known.map_err(|_| NodeError::HomesUnreachable)?;
    let Some(known) = known.filter(|k| !k.deleted) else {
        return Err(NodeError::Unknown { domain: domain.to_owned(), key: key.to_owned() });
    };
    let version = Version { hlc: known.hlc, node_id: known.writer };
    if expected.is_some_and(|expected| expected != version) {
        return Err(NodeError::Changed);
    }
    let tombstone = node.clock.next_after(Some(version));
    let told = node.control.delete_everywhere(domain, key, &known.class, tombstone).await;
    if told == 0 {
        return Err(NodeError::NoHome);
    }
    Ok(())
}
