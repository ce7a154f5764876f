//! One key over HTTP, as `/v1/` and WebDAV both serve it: PUT from a
//! request body, GET and HEAD (ETag, `If-None-Match`, one `Range`) of the
//! key wherever it is, and DELETE. The node does the work; this turns
//! headers into its requests and its answers into responses.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::record::CONTENT_TYPE_LEN_MAX;
use cairn_engine::{Digest, KeyRecord};
use cairn_node::read::{read_anywhere, KeyFacts, Origin, ReadBody, Want};
use cairn_node::replication::hold_here;
use cairn_node::shard::CopyCommit;
use cairn_node::upload::{ChunkSource, KeyRef, PutRequest, S3_ETAG_HEADER};
use cairn_node::{NodeError, Shard};
use http::{header, HeaderMap, Response, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::body::ResBody;
use super::error::{ApiError, ErrorKind};
use super::range::{parse_range, RangeAnswer};
use super::RequestBody;

const DIGEST_HEADER: &str = "x-content-sha256";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Get,
    Head,
}

/// Stores the request's body as the key's new version; answers its record.
/// A `relayed` request (a member's, signed) may set the S3 ETag it keeps.
pub async fn put(
    shard: &Rc<Shard>,
    target: KeyRef,
    class: Option<String>,
    headers: &HeaderMap,
    body: &mut RequestBody,
    relayed: bool,
) -> Result<KeyRecord, ApiError> {
    let expected_sha256 = match headers.get(DIGEST_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(Digest::from_hex).ok_or_else(|| {
            ApiError::new(ErrorKind::BadDigest, "X-Content-Sha256 must be 64 hex digits")
        })?),
    };
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => String::new(),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|v| v.len() <= CONTENT_TYPE_LEN_MAX)
            .ok_or_else(|| {
                ApiError::new(ErrorKind::BadContentType, "Content-Type is not a short ASCII value")
            })?
            .to_string(),
    };
    let request = PutRequest {
        target,
        class,
        content_type,
        headers: super::kept::from_request(headers, relayed)?,
        md5_etag: super::kept::wants_md5_etag(headers),
        expected_sha256,
        declared_bytes: content_length(headers)?,
    };
    store_version(shard, request, &mut HttpBody::new(shard, body)).await
}

/// Stores a new version of a key from `source`: here, or at a store when
/// this node takes no new data (a proxy, or a member set `readonly` or
/// `drain`).
pub async fn store_version(
    shard: &Rc<Shard>,
    request: PutRequest,
    source: &mut impl ChunkSource,
) -> Result<KeyRecord, ApiError> {
    if !shard.takes_new_data() {
        return super::proxy::put_at_store(shard, request, source).await;
    }
    Ok(cairn_node::upload::put(shard, request, source).await?)
}

/// Which ETag a frontend answers: the SHA-256 (`/v1/`, WebDAV), or the
/// S3 ETag kept with the version (its MD5 when written over S3), else
/// the SHA-256.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TagStyle {
    Sha256,
    S3,
}

pub fn tag_of(facts: &KeyFacts, style: TagStyle) -> String {
    match style {
        TagStyle::S3 => super::kept::s3_etag(&facts.headers).map(str::to_owned),
        TagStyle::Sha256 => None,
    }
    .unwrap_or_else(|| etag(&facts.sha256))
}

/// What a GET or HEAD of this node's copy answers, from the request's
/// conditional and range headers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    NotModified,
    PreconditionFailed,
    Whole,
    Part { start: u64, end: u64 },
    NotSatisfiable,
}

/// The conditions of RFC 9110 §13.2.2, in its order, then the range.
fn plan(headers: &HeaderMap, facts: &KeyFacts, style: TagStyle) -> Plan {
    let tag = tag_of(facts, style);
    let modified_s = (facts.version_hlc >> 16) / 1000;
    let date = |name| {
        let value = headers.get(name)?.to_str().ok()?;
        let time = httpdate::parse_http_date(value).ok()?;
        Some(time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs())
    };
    if let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if !wanted.split(',').map(str::trim).any(|c| c == "*" || c == tag) {
            return Plan::PreconditionFailed;
        }
    } else if date(header::IF_UNMODIFIED_SINCE).is_some_and(|since| modified_s > since) {
        return Plan::PreconditionFailed;
    }
    if headers.contains_key(header::IF_NONE_MATCH) {
        if if_none_match(headers, &tag) {
            return Plan::NotModified;
        }
    } else if date(header::IF_MODIFIED_SINCE).is_some_and(|since| modified_s <= since) {
        return Plan::NotModified;
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match parse_range(range, facts.size_bytes) {
        RangeAnswer::Whole => Plan::Whole,
        RangeAnswer::Part { start, end } => Plan::Part { start, end },
        RangeAnswer::NotSatisfiable => Plan::NotSatisfiable,
    }
}

/// GET or HEAD of a key, served from this node or streamed from another
/// holder (a `Range` too: only its bytes are fetched).
pub async fn get(
    shard: &Rc<Shard>,
    target: &KeyRef,
    headers: &HeaderMap,
    kind: ReadKind,
    style: TagStyle,
) -> Result<Response<ResBody>, ApiError> {
    let want = |facts: &KeyFacts, _: Origin| {
        let size = facts.size_bytes;
        match kind {
            ReadKind::Head => Want::Nothing,
            ReadKind::Get => match plan(headers, facts, style) {
                Plan::Whole => Want::Bytes { start: 0, end: size },
                Plan::Part { start, end } => Want::Bytes { start, end },
                Plan::NotModified | Plan::PreconditionFailed | Plan::NotSatisfiable => {
                    Want::Nothing
                }
            },
        }
    };
    let reading = read_anywhere(shard, &target.domain, &target.key, want).await?;
    let facts = &reading.facts;
    let size = facts.size_bytes;
    let mut response = Response::builder()
        .header(header::ETAG, tag_of(facts, style))
        .header(header::LAST_MODIFIED, super::dates::rfc1123(facts.version_hlc))
        .header("x-cairn-version", facts.version_hlc.to_string());
    response = response.header(header::ACCEPT_RANGES, "bytes");
    if !facts.content_type.is_empty() {
        response = response.header(header::CONTENT_TYPE, &facts.content_type);
    }
    for (name, value) in super::kept::response_lines(&facts.headers) {
        response = response.header(name, value);
    }
    let (status, start, end) = match plan(headers, facts, style) {
        Plan::NotModified => {
            return Ok(response.status(StatusCode::NOT_MODIFIED).body(ResBody::empty())?);
        }
        Plan::PreconditionFailed => {
            let failed = ApiError::new(ErrorKind::PreconditionFailed, "a condition did not hold");
            return Err(failed);
        }
        Plan::NotSatisfiable => return Ok(not_satisfiable(size)),
        Plan::Whole => (StatusCode::OK, 0, size),
        Plan::Part { start, end } => {
            let range = format!("bytes {start}-{}/{size}", end - 1);
            response = response.header(header::CONTENT_RANGE, range);
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
    };
    let response = response.status(status).header(header::CONTENT_LENGTH, end - start);
    Ok(match reading.body {
        None => response.body(ResBody::empty())?,
        Some(ReadBody::Memory(bytes)) => response.body(ResBody::bytes(bytes))?,
        Some(ReadBody::Stream { chunks, length_bytes }) => {
            response.body(ResBody::Stream { chunks, remaining_bytes: length_bytes })?
        }
    })
}

fn not_satisfiable(size_bytes: u64) -> Response<ResBody> {
    let error =
        ApiError::new(ErrorKind::RangeNotSatisfiable, format!("the blob has {size_bytes} bytes"));
    let mut answer = error.into_response();
    let value = format!("bytes */{size_bytes}").parse().expect("valid header value");
    answer.headers_mut().insert(header::CONTENT_RANGE, value);
    answer
}

/// What a copy's target gets instead of the source's type and kept
/// headers (S3's `x-amz-metadata-directive: REPLACE`).
pub struct Replaced {
    pub content_type: String,
    pub headers: String,
}

/// Copies one key; answers the source's record as copied. A store makes
/// the new key refer to the same blob (held here first when it is held
/// elsewhere only), with the source's dead properties; a proxy streams
/// the bytes to a store.
pub async fn copy(
    shard: &Rc<Shard>,
    source_domain: &str,
    source_key: &str,
    target_domain: &str,
    target_key: &str,
    replaced: Option<Replaced>,
) -> Result<KeyRecord, ApiError> {
    let target = KeyRef { domain: target_domain.to_string(), key: target_key.to_string() };
    if !shard.takes_new_data() {
        let copied =
            super::proxy::copy_to_store(shard, source_domain, source_key, target, replaced);
        return copied.await;
    }
    let mut record = hold_here(shard, source_domain, source_key).await?;
    let copied = record.clone();
    if let Some(replaced) = replaced {
        // The bytes are the same: so is their S3 ETag.
        let etag = super::kept::s3_etag(&record.headers)
            .map(|etag| format!("{S3_ETAG_HEADER}: {etag}\n"))
            .unwrap_or_default();
        record.content_type = replaced.content_type;
        record.headers = replaced.headers + &etag;
    }
    let props = shard.node.meta.props(source_domain, source_key)?;
    let sha256 = record.sha256;
    shard.place(None, sha256).await?;
    let copy = CopyCommit { domain: target.domain, key: target.key, source: record, props };
    let committed = shard.commit_copy(copy).await;
    shard.unpin(sha256).await;
    committed?;
    Ok(copied)
}

/// DELETE of a key, wherever it is held.
pub async fn delete(shard: &Rc<Shard>, target: KeyRef) -> Result<(), ApiError> {
    cairn_node::delete::delete_anywhere(shard, target.domain, target.key).await?;
    Ok(())
}

/// Characters a key keeps as they are in a URL path; the rest is %-encoded.
const URL_KEEPS: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A key as a URL path: `/` kept, the rest %-encoded. A key with a `.` or
/// `..` segment has its slashes encoded too, so that it is one segment:
/// URL parsers remove dot segments (also %-encoded ones), and a client
/// would otherwise ask for another key (`a/../b` for `b`).
pub fn url_path(key: &str) -> String {
    let dotted = key.split('/').any(|segment| segment == "." || segment == "..");
    let encoded = utf8_percent_encode(key, URL_KEEPS).to_string();
    if dotted {
        encoded.replace('/', "%2F")
    } else {
        encoded
    }
}

pub fn etag(sha256: &Digest) -> String {
    format!("\"{sha256}\"")
}

fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|value| {
        value.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate == tag || candidate.strip_prefix("W/") == Some(tag)
        })
    })
}

pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => {
            value.to_str().ok().and_then(|v| v.parse().ok()).map(Some).ok_or_else(|| {
                ApiError::new(ErrorKind::BadContentLength, "Content-Length is not a number")
            })
        }
    }
}

/// A request body that must keep sending: a pause longer than `timeout`
/// fails the upload, and so does a body that, once the node has waited
/// `timeout` for it in all, arrives slower than `min_rate` bytes/s of that
/// waiting (a trickle would hold a temp file and buffers for ever). Only
/// time spent waiting for the client counts, not the node's own work.
pub struct HttpBody<'b> {
    body: &'b mut RequestBody,
    timeout: Duration,
    min_rate_bytes_per_s: u64,
    waited: Duration,
    received_bytes: u64,
}

impl<'b> HttpBody<'b> {
    pub fn new(shard: &Shard, body: &'b mut RequestBody) -> HttpBody<'b> {
        let config = &shard.node.config;
        HttpBody {
            body,
            timeout: config.body_timeout,
            min_rate_bytes_per_s: config.body_min_rate_bytes_per_s,
            waited: Duration::ZERO,
            received_bytes: 0,
        }
    }

    fn too_slow(&self) -> bool {
        self.waited > self.timeout
            && (self.received_bytes as f64)
                < self.min_rate_bytes_per_s as f64 * self.waited.as_secs_f64()
    }
}

impl ChunkSource for HttpBody<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        loop {
            let asked = std::time::Instant::now();
            let frame =
                glommio::timer::timeout(self.timeout, async { Ok(self.body.frame().await) })
                    .await
                    .map_err(|_| NodeError::BodyStalled { timeout: self.timeout })?;
            self.waited += asked.elapsed();
            let Some(frame) = frame else { return Ok(None) };
            let frame = frame.map_err(|error| NodeError::BodyFailed(error.to_string()))?;
            if let Ok(data) = frame.into_data() {
                self.received_bytes += data.len() as u64;
                if self.too_slow() {
                    return Err(NodeError::BodyStalled { timeout: self.timeout });
                }
                return Ok(Some(data));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn key_urls_keep_slashes_and_encode_the_rest_and_dot_segments() {
        assert_eq!(url_path("a/b c&d?é.jpg"), "a/b%20c%26d%3F%C3%A9.jpg");
        assert_eq!(url_path("a/c..d/.x"), "a/c..d/.x");
        assert_eq!(url_path("a/../b/./c"), "a%2F..%2Fb%2F.%2Fc");
        assert_eq!(url_path("../x"), "..%2Fx");
    }
}
