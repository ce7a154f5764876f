//! Keys this node does not hold (docs/design.md §5, §9): found through
//! their homes, and streamed from a holder over the peer port. Blob bytes
//! from a peer arrive as blob-body frames ([`PeerBlob`]); the holder checks
//! every block's CRC as it sends.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::Digest;
use cairn_net::peer_client::CHALLENGE_BYTES_MAX;
use cairn_net::{
    encode_message, read_frame, read_frame_bounded, write_frame, Caller, FrameBuf, FrameBytes,
    FrameKind,
};
use cairn_net::{IndexEntry, Message};
use cairn_raft::MemberState;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;
use sha2::{Digest as _, Sha256};

use crate::error::NodeError;
use crate::read::{KeyFacts, Origin, ReadBody, Reading, Want};
use crate::shard::Shard;
use crate::upload::ChunkSource;

/// A peer that sends nothing for this long fails the transfer.
const PEER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that does not accept a connection in this time is not reachable.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes handed on per chunk of a transfer.
const CHUNK_BYTES: usize = 256 << 10;

/// A member that holds a key's version and can serve reads.
pub struct Holder {
    pub id: u64,
    /// Its HTTP address.
    pub http: String,
    /// Its peer address.
    pub peer: String,
}

/// The key's newest version as its homes know it, with its holders.
pub async fn find(shard: &Shard, domain: &str, key: &str) -> Result<IndexEntry, NodeError> {
    match shard.node.control.lookup(domain, key).await {
        Ok(Some(entry)) if !entry.deleted && !entry.holders.is_empty() => Ok(entry),
        Ok(Some(entry)) if !entry.deleted => {
            Err(NodeError::Lost { domain: domain.to_owned(), key: key.to_owned() })
        }
        Ok(_) => Err(NodeError::Unknown { domain: domain.to_owned(), key: key.to_owned() }),
        Err(_) => Err(NodeError::HomesUnreachable),
    }
}

/// The holders of `entry` that can serve reads (not down or dead).
pub fn holders(shard: &Shard, entry: &IndexEntry) -> Vec<Holder> {
    holders_in(shard, entry, |state| {
        matches!(state, MemberState::Alive | MemberState::Drain | MemberState::Readonly)
    })
}

/// The holders of `entry` whose member state passes `wanted`.
fn holders_in(
    shard: &Shard,
    entry: &IndexEntry,
    wanted: impl Fn(MemberState) -> bool,
) -> Vec<Holder> {
    shard.node.control.read(|state| {
        entry
            .holders
            .iter()
            .filter_map(|id| {
                let member = state.member(*id)?;
                wanted(member.state).then(|| Holder {
                    id: *id,
                    http: member.member.http.clone(),
                    peer: member.member.peer.clone(),
                })
            })
            .collect()
    })
}

/// The holders a read tries: the readable ones, then those marked down
/// (a node paused for a few seconds is `down` until the leader hears it
/// again, and may hold the only copy).
fn holders_to_try(shard: &Shard, entry: &IndexEntry) -> Vec<Holder> {
    let mut tried = holders(shard, entry);
    tried.extend(holders_in(shard, entry, |state| state == MemberState::Down));
    tried
}

/// Reads a key held elsewhere: streams it whole from the first holder
/// that answers (the first bytes arrive before anything is answered, so
/// a holder that has lost the blob is passed over for the next one).
pub async fn read(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    want: &impl Fn(&KeyFacts, Origin) -> Want,
) -> Result<Reading, NodeError> {
    let entry = find(shard, domain, key).await?;
    read_entry(shard, domain, key, entry, want).await
}

/// Reads version `entry` of a key from one of its holders (see [`read`]).
pub async fn read_entry(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    entry: IndexEntry,
    want: &impl Fn(&KeyFacts, Origin) -> Want,
) -> Result<Reading, NodeError> {
    let facts = KeyFacts::of_entry(&entry);
    let wanted = want(&facts, Origin::Elsewhere);
    if wanted == Want::Nothing {
        return Ok(Reading { facts, origin: Origin::Elsewhere, want: wanted, body: None });
    }
    let Want::Bytes { start, end } = wanted else { unreachable!("matched above") };
    let whole = start == 0 && end == facts.size_bytes;
    let range = (!whole).then_some((start, end));
    let caller = shard.node.control.caller();
    let me = shard.node.control.id();
    let mut last_error = String::new();
    for holder in holders_to_try(shard, &entry) {
        if holder.id == me {
            continue;
        }
        let fetched = match fetch(&holder.peer, &facts.sha256, facts.size_bytes, range, &caller)
            .await
        {
            Ok(blob) => Ok(Checked { blob, hasher: whole.then(Sha256::new), sha256: facts.sha256 }),
            Err(error) => Err(error),
        };
        let fetched = match fetched {
            Ok(mut checked) => checked.next().await.map(|first| (checked, first)),
            Err(error) => Err(error),
        };
        match fetched {
            Ok((checked, first)) => {
                let first = futures_lite::stream::iter(first.map(Ok::<Bytes, std::io::Error>));
                let rest = futures_lite::stream::unfold(checked, |mut checked| async move {
                    match checked.next().await {
                        Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), checked)),
                        Ok(None) => None,
                        Err(message) => Some((Err(std::io::Error::other(message)), checked)),
                    }
                });
                let chunks = Box::pin(futures_lite::StreamExt::chain(first, rest));
                let body = ReadBody::Stream { chunks, length_bytes: end - start };
                return Ok(Reading {
                    facts,
                    origin: Origin::Elsewhere,
                    want: wanted,
                    body: Some(body),
                });
            }
            Err(error) => last_error = error,
        }
    }
    // The holders may have changed since the key was found: ask the homes
    // next time.
    shard.node.control.forget_location(domain, key);
    Err(NodeError::NoHolderReachable { sha256: facts.sha256, reason: last_error })
}

/// A blob streamed from a holder, checked end to end when read whole: the
/// last chunk is handed on only if the SHA-256 of all of them is the
/// version's (a holder's CRCs cover each block, not a blob whose bytes
/// were swapped as a whole), so a client never gets a complete-looking
/// wrong answer.
struct Checked {
    blob: PeerBlob,
    hasher: Option<Sha256>,
    sha256: Digest,
}

impl Checked {
    async fn next(&mut self) -> Result<Option<Bytes>, String> {
        let Some(chunk) = self.blob.next().await? else { return Ok(None) };
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&chunk);
            if self.blob.remaining_bytes == 0 {
                let got = Digest(self.hasher.take().expect("set").finalize().into());
                if got != self.sha256 {
                    return Err(format!(
                        "the holder sent bytes hashing to {got}, not {}",
                        self.sha256
                    ));
                }
            }
        }
        Ok(Some(chunk))
    }
}

/// Asks the node at `peer` for the bytes of blob `sha256` (`size_bytes`
/// long), or for `range` of them, and answers them as a chunk source.
pub async fn fetch(
    peer: &str,
    sha256: &Digest,
    size_bytes: u64,
    range: Option<(u64, u64)>,
    caller: &Caller,
) -> Result<PeerBlob, String> {
    let stream = TcpStream::connect_timeout(peer, PEER_CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("cannot reach {peer}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(PEER_READ_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut blob = PeerBlob {
        stream,
        receive: FrameBuf::new(),
        remaining_bytes: range.map_or(size_bytes, |(start, end)| end - start),
        frame_remaining_bytes: 0,
        chunk: vec![0; CHUNK_BYTES],
    };
    read_frame_bounded(&mut blob.stream, &mut blob.receive, CHALLENGE_BYTES_MAX)
        .await
        .map_err(|e| e.to_string())?;
    let challenge = match blob.receive.deserialize().map_err(|e| e.to_string())? {
        Message::Challenge { nonce } => nonce,
        other => return Err(format!("{peer} did not open with a challenge: {other:?}")),
    };
    let (hello, nonce) = caller.hello(&challenge);
    let ack = blob.call(&hello).await?;
    caller.check_ack(&ack, &nonce, &challenge).map_err(|e| format!("{peer}: {e}"))?;
    let mut frame = FrameBytes::new();
    let request = match range {
        None => Message::FetchBlob { sha256: sha256.0 },
        Some((start, end)) => Message::FetchBlobRange { sha256: sha256.0, start, end },
    };
    encode_message(&request, &mut frame).map_err(|e| e.to_string())?;
    write_frame(&mut blob.stream, &frame).await.map_err(|e| e.to_string())?;
    Ok(blob)
}

/// A blob arriving from a peer as blob-body frames.
pub struct PeerBlob {
    stream: TcpStream,
    receive: FrameBuf,
    remaining_bytes: u64,
    frame_remaining_bytes: u64,
    chunk: Vec<u8>,
}

impl PeerBlob {
    async fn call(&mut self, request: &Message) -> Result<Message, String> {
        let mut frame = FrameBytes::new();
        encode_message(request, &mut frame).map_err(|e| e.to_string())?;
        write_frame(&mut self.stream, &frame).await.map_err(|e| e.to_string())?;
        read_frame(&mut self.stream, &mut self.receive).await.map_err(|e| e.to_string())?;
        self.receive.deserialize().map_err(|e| e.to_string())
    }

    /// The next bytes of the blob, `None` once all of it has arrived.
    pub async fn next(&mut self) -> Result<Option<Bytes>, String> {
        if self.remaining_bytes == 0 {
            return Ok(None);
        }
        if self.frame_remaining_bytes == 0 {
            let header =
                read_frame(&mut self.stream, &mut self.receive).await.map_err(|e| e.to_string())?;
            if header.kind() == FrameKind::Message {
                let message = self.receive.deserialize().map_err(|e| e.to_string())?;
                return Err(format!("the source refused: {message:?}"));
            }
            self.frame_remaining_bytes = u64::from(header.payload_len_bytes());
            if self.frame_remaining_bytes == 0 || self.frame_remaining_bytes > self.remaining_bytes
            {
                return Err("the source sent a body of the wrong size".into());
            }
        }
        let want = (self.frame_remaining_bytes as usize).min(self.chunk.len());
        let read = self.stream.read(&mut self.chunk[..want]).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err("the source hung up inside the blob".into());
        }
        self.frame_remaining_bytes -= read as u64;
        self.remaining_bytes -= read as u64;
        Ok(Some(Bytes::copy_from_slice(&self.chunk[..read])))
    }
}

impl ChunkSource for PeerBlob {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        self.next().await.map_err(NodeError::CopyFailed)
    }
}

impl Shard {
    /// Drops this node's copy of a key whose bytes failed their checksum
    /// (they are quarantined already) and tells the key's homes, once
    /// another holder has been seen to serve it.
    pub fn drop_damaged_copy(self: &Rc<Self>, domain: String, key: String) {
        let shard = self.clone();
        glommio::spawn_local(async move {
            let Ok(Some(local)) = shard.node.meta.key(&domain, &key) else { return };
            if shard.delete_if(domain.clone(), key.clone(), Some(local.version)).await.is_ok() {
                tracing::warn!(%domain, %key, "dropped a damaged copy; another holder has the bytes");
                shard.node.control.forget_holder(&domain, &key, local.version);
            }
        })
        .detach();
    }
}
