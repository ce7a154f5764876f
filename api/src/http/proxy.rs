//! The proxy role's writes (docs/design.md §1): a node started with
//! `--no-store` keeps no blobs, so a new version is sent on to a store as a
//! `/v1/` PUT while the client's body arrives (nothing is spooled here),
//! and the store's answer is the answer. Stores are tried in the key's
//! rendezvous order until one takes the connection; once a store has the
//! request there is no second try, so no write runs twice.

use std::io;
use std::rc::Rc;

use bytes::Bytes;
use cairn_engine::{Digest, KeyRecord, KeyState, Version};
use cairn_net::GlommioIo;
use cairn_node::read::{ReadBody, Want};
use cairn_node::upload::{ChunkSource, KeyRef, PutRequest};
use cairn_node::{NodeError, Shard};
use futures_channel::mpsc;
use futures_lite::{future, StreamExt};
use glommio::net::TcpStream;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http1::SendRequest;

use super::error::{ApiError, ErrorKind};
use super::key::url_path;

type OutBody = StreamBody<mpsc::Receiver<Result<Frame<Bytes>, io::Error>>>;

/// A store that does not accept the connection in this time is skipped.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The store's answer (a small JSON document) is read up to this size.
const ANSWER_BYTES_MAX: usize = 64 << 10;
/// Chunks of the body held between the client and the store.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Errors a store's PUT may answer, passed on to the client as they are.
const PUT_ERRORS: [ErrorKind; 14] = [
    ErrorKind::BadContentLength,
    ErrorKind::BadContentType,
    ErrorKind::BadDigest,
    ErrorKind::BadName,
    ErrorKind::BodyIncomplete,
    ErrorKind::DigestMismatch,
    ErrorKind::UnknownClass,
    ErrorKind::Timeout,
    ErrorKind::TooLarge,
    ErrorKind::Io,
    ErrorKind::Metadata,
    ErrorKind::Busy,
    ErrorKind::DiskFull,
    ErrorKind::ShardGone,
];

/// Stores `request` with the bytes of `source` at a store; answers the
/// record the store committed.
pub async fn put_at_store(
    shard: &Rc<Shard>,
    request: PutRequest,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, ApiError> {
    let target = &request.target;
    let mut reason = String::from("no store is alive");
    let mut source = Watched { source, started: false };
    for (id, store) in shard.node.control.stores_for(&target.domain, &target.key) {
        let sent = match connect(&store.http).await {
            Ok(sender) => send(shard, sender, &store.http, id, &request, &mut source).await,
            Err(error) => Err(ApiError::new(ErrorKind::NoStore, error.to_string())),
        };
        match sent {
            // Nothing of the body was taken yet: the next store may have it.
            Err(error)
                if (!source.started && error.kind == ErrorKind::StoreFailed)
                    || error.kind == ErrorKind::NoStore =>
            {
                reason = format!("{}: {}", store.http, error.message);
            }
            other => return other,
        }
    }
    Err(ApiError::new(ErrorKind::NoStore, format!("no store could take the write ({reason})")))
}

/// A source that tells whether any of it was taken.
struct Watched<'s, S> {
    source: &'s mut S,
    started: bool,
}

impl<S: ChunkSource> ChunkSource for Watched<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        self.started = true;
        self.source.next_chunk().await
    }
}

/// Copies key `source` of `source_domain` to `target` (WebDAV COPY and
/// MOVE at a proxy, which has no blob for a new key to refer to): streams
/// the source from a holder into a store as the target's new version, with
/// the source's class, type (or `replaced`'s), kept headers and dead
/// properties. Answers the source's record as copied.
pub async fn copy_to_store(
    shard: &Rc<Shard>,
    source_domain: &str,
    source: &str,
    target: KeyRef,
    replaced: Option<super::key::Replaced>,
) -> Result<KeyRecord, ApiError> {
    let entry = cairn_node::remote::find(shard, source_domain, source).await?;
    let whole =
        |facts: &cairn_node::read::KeyFacts, _| Want::Bytes { start: 0, end: facts.size_bytes };
    let reading = cairn_node::read::read_anywhere(shard, source_domain, source, whole).await?;
    if reading.facts.version_hlc != entry.hlc {
        return Err(NodeError::Changed.into());
    }
    let props = cairn_node::props::props_of(&shard.node, source_domain, source).await?;
    let (target_domain, target_key) = (target.domain.clone(), target.key.clone());
    let (content_type, headers) = match replaced {
        None => (reading.facts.content_type.clone(), reading.facts.headers.clone()),
        Some(replaced) => {
            let etag = super::kept::s3_etag(&reading.facts.headers)
                .map(|etag| format!("{}: {etag}\n", cairn_node::upload::S3_ETAG_HEADER))
                .unwrap_or_default();
            (replaced.content_type, replaced.headers + &etag)
        }
    };
    let request = PutRequest {
        target,
        class: Some(entry.class.clone()),
        content_type,
        headers,
        md5_etag: false,
        expected_sha256: Some(reading.facts.sha256),
        declared_bytes: Some(reading.facts.size_bytes),
    };
    put_at_store(shard, request, &mut ReadSource(reading.body)).await?;
    if !props.props.is_empty() {
        let control = &shard.node.control;
        control.put_props_at_holders(&target_domain, &target_key, props.encode()).await;
    }
    Ok(cairn_node::listing::record_of(entry))
}

/// A read's bytes as an upload's source.
struct ReadSource(Option<ReadBody>);

impl ChunkSource for ReadSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        match &mut self.0 {
            None => Ok(None),
            Some(ReadBody::Memory(bytes)) => {
                let bytes = std::mem::take(bytes);
                self.0 = None;
                Ok(Some(bytes))
            }
            Some(ReadBody::Stream { chunks, .. }) => Ok(chunks.next().await.transpose()?),
        }
    }
}

async fn connect(address: &str) -> io::Result<SendRequest<OutBody>> {
    let stream = TcpStream::connect_timeout(address, CONNECT_TIMEOUT).await?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(GlommioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    glommio::spawn_local(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection to a store ended");
        }
    })
    .detach();
    Ok(sender)
}

async fn send(
    shard: &Shard,
    mut sender: SendRequest<OutBody>,
    address: &str,
    store: u64,
    request: &PutRequest,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, ApiError> {
    let (domain, key) = (&request.target.domain, &request.target.key);
    let mut builder = put_head(address, request);
    // Signed even where no key is asked for: parts (`PARTS_DOMAIN`) are
    // taken from relays only.
    {
        use super::auth::{signature, Signed, RELAY_TTL_S};
        let relay = signature(shard, Signed::Write, domain, key, RELAY_TTL_S);
        builder = builder.header(super::auth::RELAY_HEADER, relay);
    }
    // A store that stops taking the body or answering (paused, cut off)
    // fails the write after the same silence a client is allowed.
    let silence = shard.node.config.body_timeout;
    let stalled = || {
        ApiError::new(ErrorKind::StoreFailed, format!("the store at {address} stopped answering"))
    };
    let (mut chunks, body) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let outgoing = builder.body(StreamBody::new(body))?;
    let pump = async {
        loop {
            match source.next_chunk().await {
                Ok(Some(chunk)) => {
                    let sent = glommio::timer::timeout(silence, async {
                        Ok(send_chunk(&mut chunks, Ok(Frame::data(chunk))).await)
                    });
                    match sent.await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return Ok(()),
                        Err(_) => return Err(stalled()),
                    }
                }
                Ok(None) => return Ok(()),
                Err(error) => {
                    // An error frame, not the end: the store must not take
                    // a body cut short for a whole one.
                    let _ = send_chunk(&mut chunks, Err(io::Error::other(error.to_string()))).await;
                    return Err(ApiError::from(error));
                }
            }
        }
    };
    let mut answer = std::pin::pin!(sender.send_request(outgoing));
    // The store may answer before the whole body is sent (a refusal): the
    // answer is then taken as it is, never awaited a second time.
    let early = future::or(async { Ok(pump.await) }, async { Err((&mut answer).await) });
    let answer = match early.await {
        Ok(Err(error)) => return Err(error),
        Ok(Ok(())) => glommio::timer::timeout(silence, async { Ok(answer.await) })
            .await
            .map_err(|_| stalled())?,
        Err(early_answer) => early_answer,
    };
    let failed = |error: String| {
        ApiError::new(ErrorKind::StoreFailed, format!("the store at {address} failed: {error}"))
    };
    let response = answer.map_err(|error| failed(error.to_string()))?;
    let status = response.status();
    let body = glommio::timer::timeout(silence, async {
        Ok(Limited::new(response.into_body(), ANSWER_BYTES_MAX).collect().await)
    })
    .await
    .map_err(|_| stalled())?
    .map_err(|error| failed(error.to_string()))?;
    let json: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
    if status == StatusCode::CREATED {
        return stored_record(&json, store, &request.content_type).ok_or_else(|| {
            ApiError::new(ErrorKind::StoreFailed, format!("the store at {address} answered {json}"))
        });
    }
    Err(store_error(address, status, &json))
}

/// The head of the `/v1/` PUT a store is sent.
fn put_head(address: &str, request: &PutRequest) -> http::request::Builder {
    let target = &request.target;
    let mut uri = format!("/v1/{}/{}", target.domain, url_path(&target.key));
    if let Some(class) = &request.class {
        uri.push_str("?class=");
        uri.extend(form_urlencoded::byte_serialize(class.as_bytes()));
    }
    let mut builder = Request::put(uri).header(header::HOST, address);
    if !request.content_type.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, &request.content_type);
    }
    if let Some(bytes) = request.declared_bytes {
        builder = builder.header(header::CONTENT_LENGTH, bytes);
    }
    for (name, value) in super::kept::lines(&request.headers) {
        builder = builder.header(name, value);
    }
    if request.md5_etag {
        builder = builder.header(super::kept::ETAG_REQUEST_HEADER, "md5");
    }
    if let Some(sha256) = request.expected_sha256 {
        builder = builder.header("x-content-sha256", sha256.to_hex());
    }
    builder
}

/// Hands one chunk to the connection, waiting while it has enough; fails
/// once the connection is gone.
async fn send_chunk<T>(chunks: &mut mpsc::Sender<T>, item: T) -> Result<(), mpsc::SendError> {
    future::poll_fn(|cx| chunks.poll_ready(cx)).await?;
    chunks.start_send(item)
}

/// The record a store answered for a PUT (`/v1/` PUT's JSON); the store
/// wrote the version, so it is the version's writer.
fn stored_record(json: &serde_json::Value, store: u64, content_type: &str) -> Option<KeyRecord> {
    let hlc = json["version"].as_u64()?;
    let state = json["state"].as_str()?;
    Some(KeyRecord {
        state: KeyState::ALL.into_iter().find(|s| s.as_str() == state)?,
        version: Version { hlc, node_id: store },
        sha256: Digest::from_hex(json["sha256"].as_str()?)?,
        size_bytes: json["size"].as_u64()?,
        class: json["class"].as_str()?.to_string(),
        content_type: content_type.to_string(),
        fid: hlc,
        headers: json["headers"].as_str().unwrap_or_default().to_string(),
    })
}

/// A store's refusal, as the client would have had it from the store.
fn store_error(address: &str, status: StatusCode, json: &serde_json::Value) -> ApiError {
    let code = json["error"].as_str().unwrap_or_default();
    let message = json["message"].as_str().unwrap_or_default();
    match PUT_ERRORS.into_iter().find(|kind| kind.code() == code && kind.status() == status) {
        Some(kind) => ApiError::new(kind, message),
        None => ApiError::new(
            ErrorKind::StoreFailed,
            format!("the store at {address} answered {status}: {code} {message}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stores_refusal_keeps_its_code_and_anything_else_is_store_failed() {
        let json = serde_json::json!({"error": "disk_full", "message": "no space"});
        let error = store_error("s:1", StatusCode::INSUFFICIENT_STORAGE, &json);
        assert_eq!(error.kind, ErrorKind::DiskFull);
        assert_eq!(error.message, "no space");
        let error = store_error("s:1", StatusCode::INTERNAL_SERVER_ERROR, &json);
        assert_eq!(error.kind, ErrorKind::StoreFailed, "a code with another status is not trusted");
        let json = serde_json::json!({"error": "leader_unreachable", "message": "x"});
        let error = store_error("s:1", StatusCode::SERVICE_UNAVAILABLE, &json);
        assert_eq!(error.kind, ErrorKind::StoreFailed);
    }

    #[test]
    fn a_stores_record_is_read_back_with_the_store_as_writer() {
        let json = serde_json::json!({
            "domain": "d", "key": "k", "sha256": "ab".repeat(32), "size": 5,
            "class": "default", "version": 77, "state": "need-replication",
        });
        let record = stored_record(&json, 9, "text/plain").expect("a whole answer");
        assert_eq!(record.version, Version { hlc: 77, node_id: 9 });
        assert_eq!(record.state, KeyState::NeedReplication);
        assert_eq!(record.size_bytes, 5);
        assert_eq!(record.content_type, "text/plain");
        assert!(stored_record(&serde_json::json!({"version": 1}), 9, "").is_none());
    }
}
