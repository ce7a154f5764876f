//! Peer authentication (net/PROTOCOL.md, "Opening"): the callee opens with
//! a fresh nonce, the caller answers with its `Hello` and an HMAC-SHA-256
//! over both nonces and everything it claims, the callee answers with its
//! own HMAC over the same nonces. Each side so proves it holds the cluster
//! secret without sending it, and a recorded exchange proves nothing on
//! another connection, whose nonces differ.
//!
//! Pure functions over messages; moving them is the caller's.

use std::fmt;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::message::{ArchivedMessage, Message};

/// A value used once: what each side adds to the connection's exchange.
pub type Nonce = [u8; 32];

/// The key every member derives from the cluster secret. Never printed.
#[derive(Clone)]
pub struct ClusterKey([u8; 32]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// A fresh random nonce from the operating system.
pub fn fresh_nonce() -> Nonce {
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).expect("the operating system has randomness");
    nonce
}

impl ClusterKey {
    /// The key for `purpose` of the cluster secret: each use of the secret
    /// (peer handshakes, sealing access keys, signing upload tokens) gets
    /// its own, so no value made for one can stand in for another.
    pub fn derive(secret: &[u8], purpose: &str) -> ClusterKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"cairn key v1\0");
        mac.update(purpose.as_bytes());
        ClusterKey(mac.finalize().into_bytes().into())
    }

    /// The raw key bytes, for a cipher or another MAC keyed with them.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HMAC-SHA-256 over `parts`, each prefixed with its length so that no
    /// two different lists of parts give the same input.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.hmac(parts).finalize().into_bytes().into()
    }

    /// Whether `given` is the MAC over `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], given: &[u8]) -> bool {
        self.hmac(parts).verify_slice(given).is_ok()
    }

    fn hmac(&self, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac
    }
}

/// Who this node is to a peer it dials, and the key it proves it with.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key: ClusterKey,
    pub node_id: u64,
    pub cluster_id: u64,
    pub http: String,
    pub peer: String,
    pub zone: String,
}

/// What a callee that accepted a `Hello` said of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub node_id: u64,
    pub cluster_id: u64,
}

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("the first message was not a Challenge")]
    NoChallenge,
    #[error("the first message was not a Hello")]
    NoHello,
    #[error("the answer to the Hello was not a HelloAck")]
    NoAck,
    #[error("wrong cluster secret")]
    WrongSecret,
}

fn hello_parts<'a>(
    challenge: &'a Nonce,
    nonce: &'a [u8],
    ids: &'a [u8; 16],
    addresses: [&'a str; 3],
) -> [&'a [u8]; 7] {
    let [http, peer, zone] = addresses;
    [b"hello", challenge, nonce, ids, http.as_bytes(), peer.as_bytes(), zone.as_bytes()]
}

fn ids(a: u64, b: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes());
    bytes
}

fn ack_parts<'a>(
    hello_nonce: &'a [u8],
    challenge: &'a Nonce,
    callee: &'a [u8; 16],
    caller_id: &'a [u8; 8],
) -> [&'a [u8]; 5] {
    [b"ack", hello_nonce, challenge, callee, caller_id]
}

impl Caller {
    /// The `Hello` answering the callee's `challenge`, and the nonce it
    /// carries (kept to check the `HelloAck`).
    pub fn hello(&self, challenge: &Nonce) -> (Message, Nonce) {
        let nonce = fresh_nonce();
        let ids = ids(self.node_id, self.cluster_id);
        let parts = hello_parts(challenge, &nonce, &ids, [&self.http, &self.peer, &self.zone]);
        let proof = self.key.mac(&parts);
        let hello = Message::Hello {
            node_id: self.node_id,
            cluster_id: self.cluster_id,
            nonce,
            proof,
            http: self.http.clone(),
            peer: self.peer.clone(),
            zone: self.zone.clone(),
        };
        (hello, nonce)
    }

    /// Checks the callee's answer to our `Hello`: it must prove the secret
    /// over this connection's nonces.
    pub fn check_ack(
        &self,
        ack: &Message,
        hello_nonce: &Nonce,
        challenge: &Nonce,
    ) -> Result<Accepted, HandshakeError> {
        let Message::HelloAck { node_id, cluster_id, proof } = ack else {
            return Err(HandshakeError::NoAck);
        };
        let callee = ids(*node_id, *cluster_id);
        let caller = self.node_id.to_le_bytes();
        if !self.key.verify(&ack_parts(hello_nonce, challenge, &callee, &caller), proof) {
            return Err(HandshakeError::WrongSecret);
        }
        Ok(Accepted { node_id: *node_id, cluster_id: *cluster_id })
    }
}

/// What a checked `Hello` says of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introduced {
    pub node_id: u64,
    pub cluster_id: u64,
    pub nonce: Nonce,
    pub http: String,
    pub peer: String,
}

/// The callee's side: the caller's `Hello`, read in place, must prove the
/// secret over `challenge`, the nonce this connection opened with.
pub fn check_hello(
    key: &ClusterKey,
    hello: &ArchivedMessage,
    challenge: &Nonce,
) -> Result<Introduced, HandshakeError> {
    let ArchivedMessage::Hello { node_id, cluster_id, nonce, proof, http, peer, zone } = hello
    else {
        return Err(HandshakeError::NoHello);
    };
    let (node_id, cluster_id) = (node_id.to_native(), cluster_id.to_native());
    let ids = ids(node_id, cluster_id);
    let parts = hello_parts(challenge, nonce, &ids, [http.as_str(), peer.as_str(), zone.as_str()]);
    if !key.verify(&parts, proof) {
        return Err(HandshakeError::WrongSecret);
    }
    Ok(Introduced {
        node_id,
        cluster_id,
        nonce: *nonce,
        http: http.as_str().to_owned(),
        peer: peer.as_str().to_owned(),
    })
}

/// The callee's `HelloAck` to a checked `Hello`.
pub fn ack(
    key: &ClusterKey,
    caller: &Introduced,
    challenge: &Nonce,
    node_id: u64,
    cluster_id: u64,
) -> Message {
    let callee = ids(node_id, cluster_id);
    let caller_id = caller.node_id.to_le_bytes();
    let proof = key.mac(&ack_parts(&caller.nonce, challenge, &callee, &caller_id));
    Message::HelloAck { node_id, cluster_id, proof }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode_message, FrameBuf, FrameBytes};

    fn caller(secret: &str) -> Caller {
        Caller {
            key: ClusterKey::derive(secret.as_bytes(), "peer"),
            node_id: 7,
            cluster_id: 9,
            http: "10.0.0.7:7500".into(),
            peer: "10.0.0.7:7501".into(),
            zone: "a".into(),
        }
    }

    fn archived(message: &Message) -> FrameBuf {
        let mut frame = FrameBytes::new();
        encode_message(message, &mut frame).unwrap();
        let mut buf = FrameBuf::new();
        crate::frame::decode_frame(&frame, &mut buf).unwrap();
        buf
    }

    #[test]
    fn both_sides_prove_the_secret_over_this_connections_nonces() {
        let (me, key) = (caller("s3cret"), ClusterKey::derive(b"s3cret", "peer"));
        let challenge = fresh_nonce();
        let (hello, nonce) = me.hello(&challenge);
        let introduced = check_hello(&key, archived(&hello).access().unwrap(), &challenge).unwrap();
        assert_eq!((introduced.node_id, introduced.cluster_id), (7, 9));
        let answer = ack(&key, &introduced, &challenge, 1, 9);
        let accepted = me.check_ack(&answer, &nonce, &challenge).unwrap();
        assert_eq!(accepted, Accepted { node_id: 1, cluster_id: 9 });
    }

    #[test]
    fn a_replayed_hello_or_ack_proves_nothing() {
        let (me, key) = (caller("s3cret"), ClusterKey::derive(b"s3cret", "peer"));
        let recorded = fresh_nonce();
        let (hello, nonce) = me.hello(&recorded);
        // Replayed on a connection that opened with another challenge.
        let other = fresh_nonce();
        let replayed = check_hello(&key, archived(&hello).access().unwrap(), &other);
        assert_eq!(replayed, Err(HandshakeError::WrongSecret));
        // An ack recorded for one Hello does not answer another.
        let introduced = check_hello(&key, archived(&hello).access().unwrap(), &recorded).unwrap();
        let answer = ack(&key, &introduced, &recorded, 1, 9);
        let (_, second_nonce) = me.hello(&recorded);
        assert_eq!(
            me.check_ack(&answer, &second_nonce, &recorded),
            Err(HandshakeError::WrongSecret)
        );
        assert!(me.check_ack(&answer, &nonce, &recorded).is_ok());
    }

    #[test]
    fn a_wrong_secret_or_a_changed_claim_is_refused() {
        let key = ClusterKey::derive(b"s3cret", "peer");
        let challenge = fresh_nonce();
        let (hello, _) = caller("guess").hello(&challenge);
        let refused = check_hello(&key, archived(&hello).access().unwrap(), &challenge);
        assert_eq!(refused, Err(HandshakeError::WrongSecret));
        let (mut hello, _) = caller("s3cret").hello(&challenge);
        if let Message::Hello { node_id, .. } = &mut hello {
            *node_id = 8;
        }
        let refused = check_hello(&key, archived(&hello).access().unwrap(), &challenge);
        assert_eq!(refused, Err(HandshakeError::WrongSecret), "the id is part of the proof");
    }

    #[test]
    fn keys_for_different_purposes_differ_and_never_print() {
        let peer = ClusterKey::derive(b"s3cret", "peer");
        let seal = ClusterKey::derive(b"s3cret", "seal");
        assert_ne!(peer.bytes(), seal.bytes());
        assert_eq!(format!("{peer:?}"), "ClusterKey(<redacted>)");
    }
}
