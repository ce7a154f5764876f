//! Keys this node does not hold (DESIGN §5, §9): found through their homes,
//! then listed (`?locations`), redirected to (`?redirect`) or streamed from
//! a holder over the peer port (a proxy GET).

use std::rc::Rc;

use bytes::Bytes;
use cairn_net::IndexEntry;
use cairn_raft::MemberState;
use http::{header, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

use super::blob::{KeyRef, ReadKind};
use super::body::ResBody;
use super::error::ApiError;
use crate::replication::fetch;
use crate::shard::Shard;

/// Kept as they are in the URLs of `?locations` and `?redirect`.
const URL_KEEPS: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The key's newest version as its homes know it, with its holders.
async fn find(shard: &Shard, target: &KeyRef) -> Result<IndexEntry, ApiError> {
    match shard.node.control.lookup(&target.domain, &target.key).await {
        Some(entry) if !entry.deleted && !entry.holders.is_empty() => Ok(entry),
        _ => Err(ApiError::not_found(format!(
            "no key {:?} in domain {:?}",
            target.key, target.domain
        ))),
    }
}

/// `(node id, HTTP address, peer address)` of each holder that can serve
/// reads (not down or dead).
fn holders(shard: &Shard, entry: &IndexEntry) -> Vec<(u64, String, String)> {
    shard.node.control.read(|state| {
        entry
            .holders
            .iter()
            .filter_map(|id| {
                let member = state.member(*id)?;
                let readable = matches!(
                    member.state,
                    MemberState::Alive | MemberState::Drain | MemberState::Readonly
                );
                readable.then(|| (*id, member.member.http.clone(), member.member.peer.clone()))
            })
            .collect()
    })
}

fn key_url(http: &str, target: &KeyRef) -> String {
    format!("http://{http}/v1/{}/{}", target.domain, utf8_percent_encode(&target.key, URL_KEEPS))
}

/// `GET …?locations`: `{"locations": [{"node", "url"}…]}`.
pub async fn locations(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let entry = find(shard, &target).await?;
    let locations: Vec<_> = holders(shard, &entry)
        .into_iter()
        .map(
            |(id, http, _)| json!({ "node": format!("{id:016x}"), "url": key_url(&http, &target) }),
        )
        .collect();
    let body = json!({
        "domain": target.domain,
        "key": target.key,
        "sha256": cairn_engine::Digest(entry.sha256).to_hex(),
        "size": entry.size_bytes,
        "locations": locations,
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}

/// `GET …?redirect`: 307 to a holder, this node first when it holds one.
pub async fn redirect(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let entry = find(shard, &target).await?;
    let me = shard.node.control.id();
    let mut candidates = holders(shard, &entry);
    candidates.sort_by_key(|(id, _, _)| *id != me);
    let (_, http, _) = candidates.into_iter().next().ok_or_else(|| no_holder(&entry))?;
    Ok(Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(header::LOCATION, key_url(&http, &target))
        .body(ResBody::empty())
        .expect("valid"))
}

/// GET or HEAD of a key held elsewhere: streams it from the first holder
/// that answers. The holder checks every block's CRC as it sends.
pub async fn proxy(
    shard: &Rc<Shard>,
    target: KeyRef,
    kind: ReadKind,
) -> Result<Response<ResBody>, ApiError> {
    let entry = find(shard, &target).await?;
    let sha256 = cairn_engine::Digest(entry.sha256);
    let mut response = Response::builder()
        .header(header::ETAG, format!("\"{sha256}\""))
        .header("x-cairn-version", entry.hlc.to_string())
        .header(header::CONTENT_LENGTH, entry.size_bytes);
    if !entry.content_type.is_empty() {
        response = response.header(header::CONTENT_TYPE, &entry.content_type);
    }
    if matches!(kind, ReadKind::Head) {
        return Ok(response.body(ResBody::empty()).expect("valid"));
    }
    let hello = shard.node.control.hello();
    let me = shard.node.control.id();
    let mut last_error = String::new();
    for (id, _, peer) in holders(shard, &entry) {
        if id == me {
            continue;
        }
        let fetched = match fetch(&peer, &sha256, entry.size_bytes, &hello).await {
            Ok(mut blob) => blob.next().await.map(|first| (blob, first)),
            Err(error) => Err(error),
        };
        // The first bytes arrived before anything is answered: a holder
        // that has lost the blob is passed over for the next one.
        match fetched {
            Ok((blob, first)) => {
                let first = futures_lite::stream::iter(first.map(Ok::<Bytes, std::io::Error>));
                let rest = futures_lite::stream::unfold(blob, |mut blob| async move {
                    match blob.next().await {
                        Ok(Some(chunk)) => Some((Ok::<Bytes, std::io::Error>(chunk), blob)),
                        Ok(None) => None,
                        Err(message) => Some((Err(std::io::Error::other(message)), blob)),
                    }
                });
                let chunks = futures_lite::StreamExt::chain(first, rest);
                let body =
                    ResBody::Stream { chunks: Box::pin(chunks), remaining_bytes: entry.size_bytes };
                return Ok(response.body(body).expect("valid"));
            }
            Err(error) => last_error = error,
        }
    }
    // The holders may have changed since the key was found: ask the homes
    // next time.
    shard.node.control.forget_location(&target.domain, &target.key);
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "no_holder_reachable",
        format!("no holder of {sha256} could be reached: {last_error}"),
    ))
}

fn no_holder(entry: &IndexEntry) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no_holder",
        format!("no live holder of {}", cairn_engine::Digest(entry.sha256)),
    )
}
