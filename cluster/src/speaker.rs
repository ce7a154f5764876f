//! A member speaks only for itself (docs/design.md §8): what a peer
//! connection may ask, given who proved themselves at its handshake. Every
//! caller holds the cluster secret; these rules keep a misconfigured node
//! (a copied data directory, a second process under one id) or a faulty
//! one from acting in another member's name or poisoning versions.

use cairn_engine::Version;
use cairn_net::handshake::Introduced;
use cairn_net::ArchivedMessage;
use cairn_raft::NodeId;

use super::ops::{AdminOp, Forwarded};
use super::peers::FORWARD_PATH;
use crate::plane::Core;

/// A version stamped further ahead of this node's wall clock than this is
/// refused: no clock is that far off, and such a version (a tombstone
/// above all) would shadow every later write of its key.
pub const VERSION_AHEAD_MAX_MS: u64 = 60 * 60 * 1000;

/// The caller of one peer connection.
pub struct Speaker {
    id: NodeId,
    /// The peer address the member list records for this id, when the
    /// `Hello` gave another: such a caller may only ask to record its
    /// new address (the leader refuses while the recorded one is alive).
    recorded_elsewhere: Option<String>,
}

impl Speaker {
    pub fn of(core: &Core, caller: &Introduced) -> Speaker {
        let recorded = core.view.read(|s| s.member(caller.node_id).map(|r| r.member.peer.clone()));
        Speaker {
            id: caller.node_id,
            recorded_elsewhere: recorded.filter(|peer| *peer != caller.peer),
        }
    }

    /// Why `request` is refused from this caller, if it is.
    pub fn refuses(&self, request: &ArchivedMessage, now_ms: u64) -> Option<String> {
        let forwarded_join = match request {
            ArchivedMessage::Forward { path, body } if path.as_str() == FORWARD_PATH => {
                match serde_json::from_slice::<Forwarded>(body.as_slice()) {
                    Ok(Forwarded { hops, op: AdminOp::Join { id, .. } }) => Some((hops, id)),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(recorded) = &self.recorded_elsewhere {
            if forwarded_join.map(|(_, id)| id) != Some(self.id) {
                return Some(format!(
                    "node {} is a member at {recorded}; this connection may only register its \
                     new address",
                    crate::node_id_text(self.id)
                ));
            }
        }
        let speaks_for = match request {
            // A join passed on by a member carries the joiner's id.
            _ if forwarded_join.is_some_and(|(hops, _)| hops == 0) => {
                forwarded_join.map(|(_, id)| id)
            }
            ArchivedMessage::RangeDigest { holder, .. } => Some(holder.to_native()),
            ArchivedMessage::IndexForget { entry } => {
                return entry
                    .holders
                    .iter()
                    .any(|h| h.to_native() != self.id)
                    .then(|| self.not_itself("forget another member's copy"))
                    .or_else(|| too_far_ahead(entry.hlc.to_native(), now_ms));
            }
            ArchivedMessage::IndexUpdate { entry }
            | ArchivedMessage::Superseded { entry }
            | ArchivedMessage::Stored { entry }
            | ArchivedMessage::Replicate { entry, .. }
            | ArchivedMessage::DropCopy { entry, .. } => {
                return too_far_ahead(entry.hlc.to_native(), now_ms)
            }
            _ => None,
        };
        speaks_for.filter(|id| *id != self.id).map(|_| self.not_itself("speak for another member"))
    }

    /// Why a raft request naming `node` as its candidate or leader is
    /// refused from this caller, if it is.
    pub fn refuses_raft(&self, node: NodeId) -> Option<String> {
        (node != self.id).then(|| self.not_itself("send raft requests for another member"))
    }

    fn not_itself(&self, what: &str) -> String {
        format!("node {} may not {what}", crate::node_id_text(self.id))
    }
}

fn too_far_ahead(hlc: u64, now_ms: u64) -> Option<String> {
    let stamped_ms = Version { hlc, node_id: 0 }.unix_ms();
    (stamped_ms > now_ms.saturating_add(VERSION_AHEAD_MAX_MS)).then(|| {
        format!(
            "a version stamped {} s ahead of this node's clock is refused (limit {} s)",
            (stamped_ms - now_ms) / 1000,
            VERSION_AHEAD_MAX_MS / 1000
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_an_hour_ahead_is_refused_a_minute_is_not() {
        let now_ms = 1_800_000_000_000;
        let at = |ms: u64| Version::hlc_at(ms);
        assert_eq!(too_far_ahead(at(now_ms + 60_000), now_ms), None);
        assert_eq!(too_far_ahead(at(now_ms - 3_600_000), now_ms), None);
        assert!(too_far_ahead(at(now_ms + VERSION_AHEAD_MAX_MS + 1000), now_ms).is_some());
        assert!(too_far_ahead(u64::MAX, now_ms).is_some());
    }
}
