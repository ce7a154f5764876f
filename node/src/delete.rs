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
    glommio::spawn_local(async move {
        if shard.node.meta.key(&domain, &key)?.is_some() {
            return delete_everywhere(&shard, domain, key, None).await.map(|_| ());
        }
        delete_held_elsewhere(&shard, &domain, &key).await
    })
    .detach()
    .await
    .ok_or_else(|| NodeError::Io(std::io::Error::other("delete task was cancelled")))?
}

/// Removes a key here (if its version is still `expected`, any when
/// `None`) and, through its homes, on every node; answers the record it
/// had here.
pub async fn delete_everywhere(
    shard: &Shard,
    domain: String,
    key: String,
    expected: Option<Version>,
) -> Result<KeyRecord, NodeError> {
    let old = shard.delete_if(domain.clone(), key.clone(), expected).await?;
    let tombstone = shard.node.clock.next_after(Some(old.version));
    // Answered once the homes have the tombstone (or could not be
    // reached: holders that missed it learn at their next announce).
    let told = shard.node.control.delete_everywhere(&domain, &key, &old.class, tombstone).await;
    if told == 0 {
        tracing::warn!(%domain, %key, "no home took the deletion; copies elsewhere remain for now");
    }
    Ok(old)
}

/// A key held elsewhere only: a tombstone later than what the homes know.
async fn delete_held_elsewhere(shard: &Shard, domain: &str, key: &str) -> Result<(), NodeError> {
    let node = &shard.node;
    let known = node.control.lookup(domain, key).await;
    let Some(known) = known.filter(|k| !k.deleted) else {
        return Err(NodeError::Unknown { domain: domain.to_owned(), key: key.to_owned() });
    };
    node.clock.observe(Version { hlc: known.hlc, node_id: known.writer });
    let told = node.control.delete_everywhere(domain, key, &known.class, node.clock.now()).await;
    if told == 0 {
        return Err(NodeError::NoHome);
    }
    Ok(())
}
