//! WebDAV dead properties wherever a key is held (docs/design.md §9): each
//! holder keeps them beside its copy; a node that does not hold the key
//! reads them from a holder, and a PROPPATCH at any node ends at every
//! holder.

use std::rc::Rc;

use cairn_engine::props::PropsRecord;

use crate::error::NodeError;
use crate::node::Node;
use crate::shard::{apply_prop_ops, PropOp, Shard};

/// The dead properties of `path` (a key, or a folder's marker key): this
/// node's when it holds the key or is alone, else a holder's.
pub async fn props_of(node: &Node, domain: &str, path: &str) -> Result<PropsRecord, NodeError> {
    let here = node.meta.props(domain, path)?;
    if node.control.is_alone() || node.meta.key(domain, path)?.is_some() {
        return Ok(here);
    }
    match node.control.props_from_holders(domain, path).await {
        Some(record) if record.is_empty() => Ok(PropsRecord::default()),
        Some(record) => PropsRecord::decode(&record)
            .map_err(|error| NodeError::Io(std::io::Error::other(error.to_string()))),
        None => Ok(here),
    }
}

/// Applies a PROPPATCH to `path` wherever it is held: here (when held
/// here, or when no node holds such a key: a folder without a marker), then
/// the result at every other holder. A key held elsewhere only is patched
/// from a holder's properties.
pub async fn patch_anywhere(
    shard: &Rc<Shard>,
    domain: &str,
    path: &str,
    ops: Vec<PropOp>,
) -> Result<(), NodeError> {
    let node = &shard.node;
    let (d, p) = (domain.to_owned(), path.to_owned());
    if node.control.is_alone() {
        return shard.patch_props(d, p, ops).await.map(|_| ());
    }
    let held_here = node.meta.key(domain, path)?.is_some();
    let props = if held_here {
        shard.patch_props(d, p, ops).await?
    } else {
        match node.control.lookup(domain, path).await {
            Ok(Some(entry)) if !entry.deleted => {
                apply_prop_ops(props_of(node, domain, path).await?, ops)?
            }
            // Not a key anywhere: a folder known here, or nothing (404).
            _ => return shard.patch_props(d, p, ops).await.map(|_| ()),
        }
    };
    let (took, holders) = node.control.put_props_at_holders(domain, path, props.encode()).await;
    if took == 0 && !held_here {
        return Err(NodeError::HomesUnreachable);
    }
    if took < holders {
        tracing::info!(%domain, %path, took, holders, "a PROPPATCH reached some holders only");
    }
    Ok(())
}
