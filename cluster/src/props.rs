//! WebDAV dead properties between the holders of a key (docs/design.md §9):
//! every holder keeps them beside its copy. A PROPPATCH at any node writes
//! the result to every holder, a new copy takes them from its source, and
//! a node that does not hold the key reads them from a holder.

use cairn_net::Message;

use crate::plane::Core;
use crate::replicas::INDEX_TIMEOUT;
use crate::work::ShardWork;

impl Core {
    /// A holder's side of `PropsGet`.
    pub fn props_here(&self, domain: &str, path: &str) -> Message {
        match self.storage.meta.props(domain, path) {
            Ok(props) if props.props.is_empty() => Message::PropsReply { record: Vec::new() },
            Ok(props) => Message::PropsReply { record: props.encode() },
            Err(error) => Message::Error { code: 500, message: error.to_string() },
        }
    }

    /// A holder's side of `PropsPut`: stored on the key's shard.
    pub async fn put_props(&self, domain: String, path: String, record: Vec<u8>) -> Message {
        let (reply, done) = futures_channel::oneshot::channel();
        let (d, p) = (domain.clone(), path.clone());
        let work = ShardWork::PutProps { domain, path, record, reply };
        if !self.to_shard(&d, &p, work) {
            return Message::Error { code: 503, message: "shard queue full".into() };
        }
        match done.await {
            Ok(true) => Message::Done,
            _ => Message::Error { code: 404, message: format!("{d}/{p} is not held here") },
        }
    }

    /// The dead properties a peer keeps for `path`.
    pub async fn props_at(&self, peer: &str, domain: &str, path: &str) -> Option<Vec<u8>> {
        let request = Message::PropsGet { domain: domain.to_owned(), path: path.to_owned() };
        match self.peers.call(peer, &request, INDEX_TIMEOUT).await {
            Ok(Message::PropsReply { record }) => Some(record),
            answer => {
                tracing::debug!(?answer, %peer, "cannot read dead properties");
                None
            }
        }
    }

    /// The dead properties of a key, from the first holder but this node
    /// that answers.
    pub async fn props_from_holders(&self, domain: &str, path: &str) -> Option<Vec<u8>> {
        let entry = self.lookup(domain, path).await.ok()??;
        if entry.deleted {
            return None;
        }
        for holder in entry.holders.into_iter().filter(|h| *h != self.id()) {
            let Some(peer) = self.peer_address(holder) else { continue };
            if let Some(record) = self.props_at(&peer, domain, path).await {
                return Some(record);
            }
        }
        None
    }

    /// Writes `record` at every holder of the key but this node: how many
    /// took it, and of how many.
    pub async fn put_props_at_holders(
        &self,
        domain: &str,
        path: &str,
        record: Vec<u8>,
    ) -> (usize, usize) {
        let Ok(Some(entry)) = self.lookup(domain, path).await else { return (0, 0) };
        if entry.deleted {
            return (0, 0);
        }
        let others: Vec<_> = entry.holders.into_iter().filter(|h| *h != self.id()).collect();
        let mut took = 0;
        for holder in &others {
            let Some(peer) = self.peer_address(*holder) else { continue };
            let request = Message::PropsPut {
                domain: domain.to_owned(),
                path: path.to_owned(),
                record: record.clone(),
            };
            match self.peers.call(&peer, &request, INDEX_TIMEOUT).await {
                Ok(Message::Done) => took += 1,
                answer => tracing::info!(?answer, %peer, "a holder missed dead properties"),
            }
        }
        (took, others.len())
    }
}
