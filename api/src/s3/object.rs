//! Objects: PutObject (streamed through the node's one upload pipeline,
//! its MD5 kept as the ETag), GetObject and HeadObject (Range and the
//! four conditional headers, through the shared `http::key::get`),
//! DeleteObject, DeleteObjects, CopyObject (a new reference to the same
//! blob: no bytes copied).

use std::rc::Rc;

use cairn_engine::KeyRecord;
use cairn_node::upload::{KeyRef, PutRequest};
use cairn_node::Shard;
use http::request::Parts;
use http::{header, HeaderMap, Method, Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::auth::{authorize, Caller, Payload};
use super::body::{Checksum, S3Body, CHECKSUM_HEADERS};
use super::error::S3Error;
use super::xml::Xml;
use super::{bucket_exists, empty, xml_response};
use crate::http::auth::Need;
use crate::http::key::{self, HttpBody, ReadKind, Replaced, TagStyle};
use crate::http::{kept, ApiError, ErrorKind, RequestBody, ResBody};

pub async fn handle(
    shard: &Rc<Shard>,
    parts: &Parts,
    caller: &Caller,
    bucket: &str,
    key: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    let target = || KeyRef { domain: bucket.to_owned(), key: key.to_owned() };
    match parts.method {
        Method::PUT if parts.headers.contains_key("x-amz-copy-source") => {
            authorize(shard, caller, Need::Write(bucket))?;
            copy(shard, parts, caller, target()).await
        }
        Method::PUT => {
            authorize(shard, caller, Need::Write(bucket))?;
            let stored = put(shard, parts, caller, target(), body, None).await?;
            Ok(put_answer(&stored))
        }
        Method::GET | Method::HEAD => {
            authorize(shard, caller, Need::Read(bucket))?;
            let kind = if parts.method == Method::GET { ReadKind::Get } else { ReadKind::Head };
            let answer = key::get(shard, &target(), &parts.headers, kind, TagStyle::S3).await;
            answer.map_err(|error| read_error(shard, bucket, key, error))
        }
        Method::DELETE => {
            authorize(shard, caller, Need::Write(bucket))?;
            delete(shard, target()).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(S3Error::not_implemented("this object operation")),
    }
}

fn read_error(shard: &Shard, bucket: &str, key: &str, error: ApiError) -> S3Error {
    match error.kind {
        ErrorKind::NotFound if !bucket_exists(shard, bucket).unwrap_or(true) => {
            S3Error::no_such_bucket(bucket)
        }
        ErrorKind::NotFound => S3Error::no_such_key(key),
        ErrorKind::PreconditionFailed => S3Error::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "at least one of the preconditions you specified did not hold",
        ),
        _ => error.into(),
    }
}

/// A DELETE: gone or never there, both answer 204 (as S3 does).
async fn delete(shard: &Rc<Shard>, target: KeyRef) -> Result<(), S3Error> {
    match key::delete(shard, target).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// A stored body: its version, and the checksum it was checked with.
pub struct Stored {
    pub record: KeyRecord,
    pub checksum: Option<(&'static str, String)>,
}

/// A PUT's answer: the ETag, and the checksum the body passed.
pub fn put_answer(stored: &Stored) -> Response<ResBody> {
    let mut response = empty(StatusCode::OK);
    let record = &stored.record;
    let tag =
        kept::s3_etag(&record.headers).map_or_else(|| key::etag(&record.sha256), str::to_owned);
    let headers = response.headers_mut();
    headers.insert(header::ETAG, tag.parse().expect("an ETag is a header value"));
    if let Some((name, value)) = &stored.checksum {
        if let Ok(value) = value.parse() {
            headers.insert(*name, value);
        }
    }
    response
}

/// Stores the request's body as the key's new version. `etag` is the ETag
/// to keep instead of the body's MD5 (a multipart object's).
pub async fn put(
    shard: &Rc<Shard>,
    parts: &Parts,
    caller: &Caller,
    target: KeyRef,
    body: &mut RequestBody,
    etag: Option<String>,
) -> Result<Stored, S3Error> {
    if !bucket_exists(shard, &target.domain)? {
        return Err(S3Error::no_such_bucket(&target.domain));
    }
    check_write_conditions(shard, &parts.headers, &target).await?;
    let headers = &parts.headers;
    let declared_bytes = declared_bytes(headers, &caller.payload)?;
    let mut kept_headers = kept::from_request(headers, false)?;
    strip_aws_chunked(&mut kept_headers);
    if let Some(etag) = &etag {
        kept_headers.push_str(&format!("{}: {etag}\n", cairn_node::upload::S3_ETAG_HEADER));
    }
    let request = PutRequest {
        target,
        class: storage_class(headers)?,
        content_type: content_type(headers)?,
        headers: kept_headers,
        md5_etag: etag.is_none(),
        expected_sha256: None,
        declared_bytes,
    };
    store_body(shard, parts, caller, request, body).await
}

/// Stores a request's body (decoded, checked) as `request` says.
pub async fn store_body(
    shard: &Rc<Shard>,
    parts: &Parts,
    caller: &Caller,
    mut request: PutRequest,
    body: &mut RequestBody,
) -> Result<Stored, S3Error> {
    let headers = &parts.headers;
    if let Payload::Sha256(digest) = &caller.payload {
        request.expected_sha256 = Some(*digest);
    }
    let declared_bytes = request.declared_bytes;
    let checksum = checksum(headers);
    let http = HttpBody::new(shard, body);
    let mut source = match &caller.payload {
        Payload::Chunked { signer } => {
            S3Body::chunked(http, signer.clone(), checksum, declared_bytes)
        }
        _ => S3Body::plain(http, checksum),
    };
    let record = key::store_version(shard, request, &mut source).await;
    let checksum = source.checksum();
    let record = record.map_err(|error| match error.kind {
        ErrorKind::DigestMismatch if error.message.contains("signature") => S3Error::signature(),
        // A checksum's own mismatch names it; any other is the signed hash's.
        ErrorKind::DigestMismatch
            if matches!(caller.payload, Payload::Sha256(_))
                && !error.message.contains("x-amz-checksum") =>
        {
            S3Error::bad_request("XAmzContentSHA256Mismatch", error.message)
        }
        _ => error.into(),
    })?;
    Ok(Stored { record, checksum })
}

/// The length of the object the body holds, when the client said.
pub fn declared_bytes(headers: &HeaderMap, payload: &Payload) -> Result<Option<u64>, S3Error> {
    let chunked = matches!(payload, Payload::Chunked { .. });
    let name = if chunked { "x-amz-decoded-content-length" } else { "content-length" };
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            Ok(Some(value.to_str().ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                S3Error::bad_request("InvalidArgument", format!("{name} is not a number"))
            })?))
        }
    }
}

/// The checksum the request sends, in a header or announced for the trailer.
fn checksum(headers: &HeaderMap) -> Option<Checksum> {
    for name in CHECKSUM_HEADERS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Checksum::for_header(name, Some(value.to_owned()));
        }
    }
    let trailer = headers.get("x-amz-trailer")?.to_str().ok()?;
    Checksum::for_header(trailer.trim(), None)
}

/// `aws-chunked` is how the body came, not how the object is encoded.
fn strip_aws_chunked(kept_headers: &mut String) {
    let lines: Vec<String> = kept_headers
        .lines()
        .filter_map(|line| match line.split_once(": ") {
            Some(("content-encoding", value)) => {
                let rest: Vec<&str> =
                    value.split(',').map(str::trim).filter(|v| *v != "aws-chunked").collect();
                (!rest.is_empty()).then(|| format!("content-encoding: {}", rest.join(",")))
            }
            _ => Some(line.to_owned()),
        })
        .collect();
    *kept_headers = lines.iter().map(|line| format!("{line}\n")).collect();
}

pub fn content_type(headers: &HeaderMap) -> Result<String, S3Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(String::new()) };
    value
        .to_str()
        .ok()
        .filter(|v| v.len() <= cairn_engine::record::CONTENT_TYPE_LEN_MAX)
        .map(str::to_owned)
        .ok_or_else(|| S3Error::bad_request("InvalidArgument", "Content-Type is too long"))
}

/// `x-amz-storage-class`: S3's standard classes are the default class;
/// any other name is a cairn class.
pub fn storage_class(headers: &HeaderMap) -> Result<Option<String>, S3Error> {
    let Some(value) = headers.get("x-amz-storage-class") else { return Ok(None) };
    let value =
        value.to_str().map_err(|_| S3Error::bad_request("InvalidStorageClass", "not ASCII"))?;
    Ok(match value {
        "STANDARD" | "REDUCED_REDUNDANCY" | "STANDARD_IA" | "INTELLIGENT_TIERING" => None,
        name => Some(name.to_owned()),
    })
}

/// `If-None-Match: *` (create only) and `If-Match: <etag>` on a PUT,
/// checked against the key's current version before the write.
async fn check_write_conditions(
    shard: &Rc<Shard>,
    headers: &HeaderMap,
    target: &KeyRef,
) -> Result<(), S3Error> {
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    if if_match.is_none() && if_none_match.is_none() {
        return Ok(());
    }
    let current = facts_of(shard, &target.domain, &target.key).await?;
    let current_tag = current.as_ref().map(|facts| key::tag_of(facts, TagStyle::S3));
    let failed = match (if_none_match, if_match) {
        (Some("*"), _) if current.is_some() => true,
        (_, Some(wanted)) => current_tag.as_deref().is_none_or(|tag| {
            !wanted.split(',').map(str::trim).any(|candidate| candidate == tag || candidate == "*")
        }),
        _ => false,
    };
    if failed {
        return Err(S3Error::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "at least one of the preconditions you specified did not hold",
        ));
    }
    Ok(())
}

/// What is known of a key's current version, wherever it is; `None` when
/// it has none.
pub async fn facts_of(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
) -> Result<Option<cairn_node::read::KeyFacts>, S3Error> {
    use cairn_node::NodeError;
    let nothing = |_: &cairn_node::read::KeyFacts, _| cairn_node::read::Want::Nothing;
    match cairn_node::read::read_anywhere(shard, domain, key, nothing).await {
        Ok(reading) => Ok(Some(reading.facts)),
        Err(NodeError::NotFound | NodeError::NotHere { .. } | NodeError::Unknown { .. }) => {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// CopyObject: `x-amz-copy-source: /bucket/key`.
async fn copy(
    shard: &Rc<Shard>,
    parts: &Parts,
    caller: &Caller,
    target: KeyRef,
) -> Result<Response<ResBody>, S3Error> {
    let (source_bucket, source_key) = copy_source(&parts.headers)?;
    authorize(shard, caller, Need::Read(&source_bucket))?;
    if !bucket_exists(shard, &target.domain)? {
        return Err(S3Error::no_such_bucket(&target.domain));
    }
    let replace = parts
        .headers
        .get("x-amz-metadata-directive")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"REPLACE"));
    let replaced = if replace {
        let mut headers = kept::from_request(&parts.headers, false)?;
        strip_aws_chunked(&mut headers);
        Some(Replaced { content_type: content_type(&parts.headers)?, headers })
    } else {
        None
    };
    let copied =
        key::copy(shard, &source_bucket, &source_key, &target.domain, &target.key, replaced).await;
    let record = copied.map_err(|error| read_error(shard, &source_bucket, &source_key, error))?;
    let facts = cairn_node::read::KeyFacts::of_record(&record);
    let mut xml = Xml::root("CopyObjectResult");
    xml.text("ETag", &key::tag_of(&facts, TagStyle::S3));
    xml.text("LastModified", &super::list::timestamp(record.version.hlc));
    xml.close("CopyObjectResult");
    Ok(xml_response(xml))
}

/// The bucket and key `x-amz-copy-source` names (a `?versionId` ignored:
/// there is only the current version).
pub fn copy_source(headers: &HeaderMap) -> Result<(String, String), S3Error> {
    let bad = || S3Error::bad_request("InvalidArgument", "x-amz-copy-source is not /bucket/key");
    let value = headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()).ok_or_else(bad)?;
    let value = value.split_once('?').map_or(value, |(path, _)| path);
    let decoded = percent_decode_str(value).decode_utf8().map_err(|_| bad())?;
    let (bucket, key) = decoded.trim_start_matches('/').split_once('/').ok_or_else(bad)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(bad());
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

/// DeleteObjects: `<Delete><Object><Key>…</Key></Object>…</Delete>`.
pub async fn delete_objects(
    shard: &Rc<Shard>,
    bucket: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    let timeout = shard.node.config.body_timeout;
    let text = crate::http::request::read_to_end(body, DELETE_BODY_BYTES_MAX, timeout).await?;
    let (keys, quiet) = parse_delete(&text)?;
    if keys.len() > DELETE_KEYS_MAX {
        return Err(S3Error::bad_request("MalformedXML", "at most 1000 keys per request"));
    }
    let mut xml = Xml::root("DeleteResult");
    for key in keys {
        let target = KeyRef { domain: bucket.to_owned(), key: key.clone() };
        let invalid = cairn_engine::validate_key(&key).is_err();
        match if invalid {
            Err(S3Error::bad_request("InvalidArgument", "bad key"))
        } else {
            delete(shard, target).await
        } {
            Ok(()) if quiet => {}
            Ok(()) => {
                xml.open("Deleted");
                xml.text("Key", &key);
                xml.close("Deleted");
            }
            Err(error) => {
                xml.open("Error");
                xml.text("Key", &key);
                xml.text("Code", error.code);
                xml.text("Message", &error.message);
                xml.close("Error");
            }
        }
    }
    xml.close("DeleteResult");
    Ok(xml_response(xml))
}

const DELETE_KEYS_MAX: usize = 1000;
/// 1000 keys of 1 KiB, with room for the XML around them.
const DELETE_BODY_BYTES_MAX: usize = 2 << 20;

fn parse_delete(text: &[u8]) -> Result<(Vec<String>, bool), S3Error> {
    let root = super::parse_xml(text, "Delete")?;
    let quiet = super::child_text(&root, "Quiet").is_some_and(|q| q.trim() == "true");
    let keys = root
        .elements()
        .filter(|e| e.name == "Object")
        .map(|object| super::child_text(object, "Key").unwrap_or_default())
        .collect();
    Ok((keys, quiet))
}

impl From<cairn_engine::MetaError> for S3Error {
    fn from(error: cairn_engine::MetaError) -> S3Error {
        ApiError::from(error).into()
    }
}
