//! The peer listener (`--peer-listen`) on the raft thread: authenticates
//! each connection's `Hello`, then answers one request at a time. A bad
//! frame closes that connection with a logged reason, never more.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_net::handshake;
use cairn_net::{
    encode_message, read_frame, read_frame_bounded, write_frame, ArchivedMessage, FrameBuf,
    FrameBytes, FrameError, Message, RaftRpc,
};
use cairn_raft::{NodeId, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_util::compat::TokioAsyncReadCompatExt;

use super::listing::LIST_LIMIT_MAX;
use super::ops::{ControlError, Forwarded, OpReply};
use super::peers::FORWARD_PATH;
use crate::plane::Core;
use crate::speaker::Speaker;

/// A caller must introduce itself within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle peer connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest `Hello` accepted: nothing bigger is read before the caller has
/// proven it holds the cluster secret.
const HELLO_BYTES_MAX: u32 = 4096;
/// Connections of callers that proved they hold the cluster secret, served at
/// once; more are closed once admitted.
const PEER_CONNECTIONS_MAX: usize = 256;
/// Connections still waiting for their `Hello`. When one more arrives, the
/// one that has waited longest is closed: a member sends its `Hello` at
/// once, so silent connections, however many, cannot hold the port.
const UNPROVEN_MAX: usize = 256;
/// Error codes of `Message::Error`.
const CODE_UNAUTHORIZED: u16 = 401;
const CODE_BAD_REQUEST: u16 = 400;
const CODE_FORBIDDEN: u16 = 403;

pub async fn serve(core: Arc<Core>, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(PEER_CONNECTIONS_MAX));
    let unproven = Arc::new(Mutex::new(Unproven::default()));
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let (core, slots, waiting) = (core.clone(), slots.clone(), unproven.clone());
                let id = waiting.lock().expect("unproven lock").next_id();
                let task = tokio::spawn(async move {
                    let admit = || {
                        let still_waiting = waiting.lock().expect("unproven lock").remove(id);
                        still_waiting.then(|| slots.try_acquire_owned().ok()).flatten()
                    };
                    if let Err(reason) = serve_connection(&core, stream, admit).await {
                        tracing::info!(%remote, %reason, "peer connection closed");
                    }
                    waiting.lock().expect("unproven lock").remove(id);
                });
                let evicted = unproven.lock().expect("unproven lock").push(id, task.abort_handle());
                if let Some(oldest) = evicted {
                    oldest.abort();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "peer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The connections still waiting for their `Hello`, oldest first.
#[derive(Default)]
struct Unproven {
    waiting: VecDeque<(u64, AbortHandle)>,
    last_id: u64,
}

impl Unproven {
    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Adds a connection; answers the one to close when too many wait.
    fn push(&mut self, id: u64, task: AbortHandle) -> Option<AbortHandle> {
        self.waiting.push_back((id, task));
        (self.waiting.len() > UNPROVEN_MAX).then(|| self.waiting.pop_front()).flatten().map(|w| w.1)
    }

    /// Takes a connection off the list; false when it was not on it (it
    /// was closed to make room, or is already off).
    fn remove(&mut self, id: u64) -> bool {
        let at = self.waiting.iter().position(|(waiting, _)| *waiting == id);
        at.map(|at| self.waiting.remove(at)).is_some()
    }
}

/// Serves one connection; `admit`, called once the caller proved it holds
/// the cluster secret, answers its slot (none: too many connections).
async fn serve_connection(
    core: &Core,
    stream: TcpStream,
    admit: impl FnOnce() -> Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut stream = stream.compat();
    let mut receive = FrameBuf::new();
    let mut send = FrameBytes::new();
    let challenge = handshake::fresh_nonce();
    send_message(&mut stream, &mut send, &Message::Challenge { nonce: challenge }).await?;
    let first = read_frame_bounded(&mut stream, &mut receive, HELLO_BYTES_MAX);
    let hello = tokio::time::timeout(HELLO_TIMEOUT, first)
        .await
        .map_err(|_| "no Hello in time".to_owned())?;
    hello.map_err(|e| e.to_string())?;
    let introduced = receive.access().map_err(|e| e.to_string()).and_then(|hello| {
        let introduced = handshake::check_hello(core.identity.peer_key(), hello, &challenge)
            .map_err(|e| e.to_string())?;
        core.identity.admits(introduced.cluster_id).map_err(str::to_owned)?;
        Ok(introduced)
    });
    let caller = match introduced {
        Ok(caller) => caller,
        Err(reason) => {
            let refusal = Message::Error { code: CODE_UNAUTHORIZED, message: reason.clone() };
            send_message(&mut stream, &mut send, &refusal).await?;
            return Err(reason);
        }
    };
    let Some(_slot) = admit() else {
        return Err("too many peer connections".to_owned());
    };
    let (id, cluster_id) = (core.id(), core.identity.cluster_id());
    let ack = handshake::ack(core.identity.peer_key(), &caller, &challenge, id, cluster_id);
    send_message(&mut stream, &mut send, &ack).await?;
    let speaker = Speaker::of(core, &caller);
    loop {
        match tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut stream, &mut receive)).await {
            Err(_) => return Err("idle".to_owned()),
            Ok(Err(FrameError::Closed)) => return Ok(()),
            Ok(Err(error)) => return Err(format!("bad frame: {error}")),
            Ok(Ok(_)) => {}
        }
        match receive.access() {
            Ok(ArchivedMessage::FetchBlob { sha256 }) => {
                let sha256 = cairn_engine::Digest(*sha256);
                super::replicas::serve_blob(core, &mut stream, sha256, None).await?;
                continue;
            }
            Ok(ArchivedMessage::FetchBlobRange { sha256, start, end }) => {
                let sha256 = cairn_engine::Digest(*sha256);
                let range = Some((start.to_native(), end.to_native()));
                super::replicas::serve_blob(core, &mut stream, sha256, range).await?;
                continue;
            }
            _ => {}
        }
        let request = receive.access().map_err(|e| e.to_string())?;
        let reply = match speaker.refuses(request, crate::plane::unix_ms()) {
            Some(reason) => Message::Error { code: CODE_FORBIDDEN, message: reason },
            None => answer(core, &speaker, &receive).await?,
        };
        send_message(&mut stream, &mut send, &reply).await?;
    }
}

/// The answer to the request in `receive`, read in place.
async fn answer(core: &Core, speaker: &Speaker, receive: &FrameBuf) -> Result<Message, String> {
    let request = receive.access().map_err(|e| format!("bad message: {e}"))?;
    Ok(match request {
        ArchivedMessage::Raft { kind, payload } => {
            let kind = RaftRpc::from(*kind);
            match raft_call(core, speaker, kind, payload.as_slice()).await? {
                Ok(payload) => Message::RaftReply { kind, payload },
                Err(reason) => Message::Error { code: CODE_FORBIDDEN, message: reason },
            }
        }
        ArchivedMessage::Heartbeat { term, .. } => heartbeat_reply(core, term.to_native()),
        ArchivedMessage::Forward { path, body } if path.as_str() == FORWARD_PATH => {
            forwarded(core, body.as_slice()).await
        }
        ArchivedMessage::IndexUpdate { .. }
        | ArchivedMessage::Replicate { .. }
        | ArchivedMessage::Superseded { .. }
        | ArchivedMessage::Stored { .. }
        | ArchivedMessage::IndexForget { .. }
        | ArchivedMessage::RangeDigest { .. }
        | ArchivedMessage::PropsPut { .. }
        | ArchivedMessage::DropCopy { .. } => {
            let owned = receive.deserialize().map_err(|e| format!("bad message: {e}"))?;
            answer_owned(core, owned).await
        }
        ArchivedMessage::IndexLookup { domain, key } => {
            match core.index_lookup(domain.as_str(), key.as_str()) {
                Ok(entry) => Message::IndexReply { entry: entry.map(Box::new) },
                Err(error) => Message::Error { code: 500, message: error.to_string() },
            }
        }
        ArchivedMessage::ListIndex { domain, prefix, start, limit } => {
            let limit = (limit.to_native() as usize).min(LIST_LIMIT_MAX);
            match core.list_index(domain.as_str(), prefix.as_str(), start.as_str(), limit) {
                Ok((entries, more)) => Message::ListIndexReply { entries, more },
                Err(error) => Message::Error { code: 500, message: error.to_string() },
            }
        }
        ArchivedMessage::PropsGet { domain, path } => core.props_here(domain, path),
        ArchivedMessage::NeedsQuery { max } => {
            Message::NeedsReply { needs: core.needs(max.to_native() as usize) }
        }
        other => Message::Error {
            code: CODE_BAD_REQUEST,
            message: format!("unexpected request {other:?}"),
        },
    })
}

/// The answer to a `Heartbeat` of the tracker of `term`.
fn heartbeat_reply(core: &Core, term: u64) -> Message {
    // A tracker of this term speaks: older ones are deposed.
    core.term_seen.fetch_max(term, std::sync::atomic::Ordering::AcqRel);
    let report = core.local_report();
    Message::HeartbeatReply {
        node_id: core.id(),
        term: core.raft.metrics().borrow().current_term,
        disk_total_bytes: report.disk_total_bytes,
        disk_free_bytes: report.disk_free_bytes,
        keys_by_state: report.keys_by_state,
        clock_ms: crate::plane::unix_ms(),
    }
}

/// Runs an admin operation a follower forwarded (`body` is its JSON).
async fn forwarded(core: &Core, body: &[u8]) -> Message {
    let result: Result<OpReply, ControlError> = match serde_json::from_slice::<Forwarded>(body) {
        Ok(forwarded) => core.execute(forwarded.op, forwarded.hops).await,
        Err(error) => {
            return Message::Error {
                code: CODE_BAD_REQUEST,
                message: format!("bad forwarded operation: {error}"),
            }
        }
    };
    let status = if result.is_ok() { 200 } else { 503 };
    Message::ForwardReply { status, body: to_json(&result) }
}

/// The answer to the index and replication requests that are read as owned
/// messages (they carry an `IndexEntry` the node keeps or acts on).
async fn answer_owned(core: &Core, request: Message) -> Message {
    match request {
        Message::IndexUpdate { entry } => {
            Message::IndexReply { entry: core.index_update(&entry).map(Box::new) }
        }
        Message::Replicate { term, entry, source_peer } => {
            core.replicate(term, *entry, source_peer).await
        }
        Message::Superseded { entry } => {
            core.superseded(&entry);
            Message::Done
        }
        Message::Stored { entry } => {
            core.stored(&entry);
            Message::Done
        }
        Message::IndexForget { entry } => {
            core.index_forget(&entry);
            Message::Done
        }
        Message::DropCopy { term, entry } => core.drop_copy(term, *entry).await,
        Message::PropsPut { domain, path, record } => core.put_props(domain, path, record).await,
        Message::RangeDigest { holder, range, settled_before, digest, count } => {
            let theirs = crate::ranges::RangeSum { digest, count };
            core.range_listing(holder, &range, settled_before, theirs)
        }
        _ => unreachable!("matched in answer"),
    }
}

/// Runs one raft RPC; the reply is the JSON of raft's `Result`, or why
/// the caller may not send it (a vote or entries in another member's name).
/// A request that does not decode ends the connection.
async fn raft_call(
    core: &Core,
    speaker: &Speaker,
    kind: RaftRpc,
    payload: &[u8],
) -> Result<Result<Vec<u8>, String>, String> {
    let undecodable = |error: serde_json::Error| format!("undecodable {kind:?} request: {error}");
    let refused = |vote: &openraft::Vote<NodeId>| {
        vote.leader_id().voted_for().and_then(|node| speaker.refuses_raft(node))
    };
    Ok(match kind {
        RaftRpc::AppendEntries => {
            let request: AppendEntriesRequest<TypeConfig> =
                serde_json::from_slice(payload).map_err(undecodable)?;
            match refused(&request.vote) {
                Some(reason) => Err(reason),
                None => Ok(to_json(&core.raft.append_entries(request).await)),
            }
        }
        RaftRpc::Vote => {
            let request: VoteRequest<NodeId> =
                serde_json::from_slice(payload).map_err(undecodable)?;
            match refused(&request.vote) {
                Some(reason) => Err(reason),
                None => Ok(to_json(&core.raft.vote(request).await)),
            }
        }
        RaftRpc::InstallSnapshot => {
            let request: InstallSnapshotRequest<TypeConfig> =
                serde_json::from_slice(payload).map_err(undecodable)?;
            match refused(&request.vote) {
                Some(reason) => Err(reason),
                None => Ok(to_json(&core.raft.install_snapshot(request).await)),
            }
        }
    })
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("raft and control types serialize")
}

async fn send_message<W>(
    stream: &mut W,
    send: &mut FrameBytes,
    message: &Message,
) -> Result<(), String>
where
    W: futures_lite::AsyncWrite + Unpin,
{
    encode_message(message, send).map_err(|e| e.to_string())?;
    write_frame(stream, send).await.map_err(|e| e.to_string())
}
