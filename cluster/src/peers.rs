//! Connections to other members for control traffic (heartbeats, forwarded
//! admin operations, joins), one per address, reused, redialled after any
//! error. Raft's own traffic has its own connections (`network`), so a slow
//! heartbeat never delays an append.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_net::{Message, PeerConnection, PeerError};

use super::identity::Identity;
use super::ops::{AdminOp, ControlError, Forwarded, OpReply};

type Slot = Arc<tokio::sync::Mutex<Option<PeerConnection>>>;

pub struct Peers {
    identity: Arc<Identity>,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Peers {
    pub fn new(identity: Arc<Identity>) -> Peers {
        Peers { identity, slots: Mutex::default() }
    }

    /// One request and its reply, dialling first when needed.
    pub async fn call(
        &self,
        address: &str,
        request: &Message,
        timeout: Duration,
    ) -> Result<Message, PeerError> {
        // Waiting for the connection counts too: a peer that stopped
        // answering must not queue callers behind it without end.
        tokio::time::timeout(timeout, self.call_in_turn(address, request, timeout))
            .await
            .map_err(|_| PeerError::Timeout(timeout))?
    }

    async fn call_in_turn(
        &self,
        address: &str,
        request: &Message,
        timeout: Duration,
    ) -> Result<Message, PeerError> {
        let slot = self.slot(address);
        let mut connection = slot.lock().await;
        // Taken out while in use: if this call is cancelled half-way (its
        // reply unread), the connection is dropped, not reused.
        let mut live = match connection.take() {
            Some(live) => live,
            None => connect(&self.identity, address, timeout).await?,
        };
        let reply = live.call(request, timeout).await;
        if reply.is_ok() {
            *connection = Some(live);
        }
        reply
    }

    /// Sends `op` to the member at `address` to be carried out there (or
    /// by its leader).
    pub async fn forward(
        &self,
        address: &str,
        op: &AdminOp,
        hops: u8,
        timeout: Duration,
    ) -> Result<Result<OpReply, ControlError>, PeerError> {
        let body = serde_json::to_vec(&Forwarded { hops, op: op.clone() })
            .map_err(|e| PeerError::Encode(e.to_string()))?;
        let request = Message::Forward { path: FORWARD_PATH.to_owned(), body };
        match self.call(address, &request, timeout).await? {
            Message::ForwardReply { body, .. } => serde_json::from_slice(&body)
                .map_err(|e| PeerError::Unexpected(format!("bad forward reply: {e}"))),
            other => Err(PeerError::Unexpected(format!("{other:?}"))),
        }
    }

    fn slot(&self, address: &str) -> Slot {
        let mut slots = self.slots.lock().expect("peer table lock");
        slots.entry(address.to_owned()).or_default().clone()
    }
}

/// The `path` of a `Forward` that carries an [`AdminOp`].
pub const FORWARD_PATH: &str = "admin-op";

/// Dials `address` and introduces this node; learns the cluster id from
/// the answer when it had none.
pub async fn connect(
    identity: &Identity,
    address: &str,
    timeout: Duration,
) -> Result<PeerConnection, PeerError> {
    let (connection, accepted) =
        PeerConnection::connect(address, &identity.caller(), timeout).await?;
    identity.learn_cluster_id(accepted.cluster_id);
    Ok(connection)
}
