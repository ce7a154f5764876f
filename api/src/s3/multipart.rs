//! Multipart uploads. Each part is a key of its own in a domain clients
//! cannot name (`_parts`: `<bucket>/<upload id>/<part number>`,
//! and the upload's description at `<bucket>/<upload id>/meta`), stored
//! and replicated like any key; CompleteMultipartUpload streams the parts
//! in order into the object's new version (never held in memory whole)
//! and drops them. The object's ETag is S3's: the MD5 of the parts' MD5s,
//! `-<part count>`. Uploads left unfinished for [`UPLOAD_TTL_S`] are
//! dropped when the next upload to their bucket starts.

use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cairn_node::listing::key_page;
use cairn_node::read::{read_anywhere, ReadBody, Want};
use cairn_node::upload::{ChunkSource, InMemory, KeyRef, PutRequest};
use cairn_node::{NodeError, Shard};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::auth::{authorize, Caller};
use super::error::S3Error;
use super::object::{copy_source, declared_bytes, facts_of, store_body};
use super::xml::Xml;
use super::{bucket_exists, empty, xml_response};
use crate::http::auth::Need;
use crate::http::key::{self, TagStyle};
use crate::http::{kept, ApiError, Query, RequestBody, ResBody};

/// The domain parts live in: not a valid domain name, so no client can
/// reach it through any interface.
const UPLOADS_DOMAIN: &str = cairn_engine::PARTS_DOMAIN;
/// An upload not completed within a week is dropped.
pub const UPLOAD_TTL_S: u64 = 7 * 24 * 3600;
/// S3's bounds: part numbers, and the least size of a part but the last.
const PART_NUMBER_MAX: u32 = 10_000;
const PART_BYTES_MIN: u64 = 5 << 20;
const COMPLETE_BODY_BYTES_MAX: usize = 1 << 20;

/// What an upload is for, kept at `<bucket>/<upload id>/meta`.
#[derive(Serialize, Deserialize)]
struct Upload {
    key: String,
    content_type: String,
    headers: String,
    class: Option<String>,
    started_unix_s: u64,
}

pub async fn handle(
    shard: &Rc<Shard>,
    parts: &Parts,
    query: &Query,
    caller: &Caller,
    bucket: &str,
    key: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    if !bucket_exists(shard, bucket)? {
        return Err(S3Error::no_such_bucket(bucket));
    }
    let upload_id = query.get("uploadId").unwrap_or_default();
    match (&parts.method, query.has("uploads")) {
        (&Method::POST, true) => {
            authorize(shard, caller, Need::Write(bucket))?;
            create(shard, parts, bucket, key).await
        }
        (&Method::PUT, false) => {
            authorize(shard, caller, Need::Write(bucket))?;
            let number = part_number(query)?;
            upload(shard, bucket, key, upload_id).await?;
            if parts.headers.contains_key("x-amz-copy-source") {
                return copy_part(shard, parts, caller, bucket, upload_id, number).await;
            }
            let target =
                KeyRef { domain: UPLOADS_DOMAIN.into(), key: part_key(bucket, upload_id, number) };
            let request = PutRequest {
                target,
                class: None,
                content_type: String::new(),
                headers: String::new(),
                md5_etag: true,
                expected_sha256: None,
                declared_bytes: declared_bytes(&parts.headers, &caller.payload)?,
            };
            let stored = store_body(shard, parts, caller, request, body).await?;
            Ok(super::object::put_answer(&stored))
        }
        (&Method::POST, false) => {
            authorize(shard, caller, Need::Write(bucket))?;
            complete(shard, bucket, key, upload_id, body).await
        }
        (&Method::DELETE, false) => {
            authorize(shard, caller, Need::Write(bucket))?;
            upload(shard, bucket, key, upload_id).await?;
            drop_upload(shard, bucket, upload_id).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::GET, false) => {
            authorize(shard, caller, Need::Read(bucket))?;
            upload(shard, bucket, key, upload_id).await?;
            list_parts(shard, bucket, key, upload_id).await
        }
        _ => Err(S3Error::not_implemented("this multipart operation")),
    }
}

fn part_key(bucket: &str, upload_id: &str, number: u32) -> String {
    format!("{bucket}/{upload_id}/{number:05}")
}

fn meta_key(bucket: &str, upload_id: &str) -> String {
    format!("{bucket}/{upload_id}/meta")
}

fn part_number(query: &Query) -> Result<u32, S3Error> {
    query
        .get("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=PART_NUMBER_MAX).contains(n))
        .ok_or_else(|| S3Error::bad_request("InvalidArgument", "partNumber must be 1..=10000"))
}

fn no_such_upload() -> S3Error {
    S3Error::new(
        StatusCode::NOT_FOUND,
        "NoSuchUpload",
        "the upload does not exist (completed or aborted?)",
    )
}

fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads a small key whole; `None` when there is no such key.
async fn read_small(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, S3Error> {
    let whole =
        |facts: &cairn_node::read::KeyFacts, _| Want::Bytes { start: 0, end: facts.size_bytes };
    let reading = match read_anywhere(shard, domain, key, whole).await {
        Ok(reading) => reading,
        Err(NodeError::NotFound | NodeError::NotHere { .. } | NodeError::Unknown { .. }) => {
            return Ok(None)
        }
        Err(error) => return Err(error.into()),
    };
    let mut source = PartSource { bodies: vec![reading.body], current: None };
    let mut bytes = Vec::new();
    while let Some(chunk) = source.next_chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// The upload `upload_id` of `bucket`, which must be for `key`.
async fn upload(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Upload, S3Error> {
    if upload_id.is_empty() || !upload_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(no_such_upload());
    }
    let bytes = read_small(shard, UPLOADS_DOMAIN, &meta_key(bucket, upload_id)).await?;
    let upload: Upload =
        bytes.and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(no_such_upload)?;
    if upload.key != key {
        return Err(no_such_upload());
    }
    Ok(upload)
}

async fn create(
    shard: &Rc<Shard>,
    parts: &Parts,
    bucket: &str,
    key: &str,
) -> Result<Response<ResBody>, S3Error> {
    expire(shard, bucket).await;
    let upload_id = uuid::Uuid::new_v4().simple().to_string();
    let upload = Upload {
        key: key.to_owned(),
        content_type: super::object::content_type(&parts.headers)?,
        headers: kept::from_request(&parts.headers, false)?,
        class: super::object::storage_class(&parts.headers)?,
        started_unix_s: unix_s(),
    };
    let bytes = serde_json::to_vec(&upload).expect("an upload serialises");
    let request = PutRequest {
        target: KeyRef { domain: UPLOADS_DOMAIN.into(), key: meta_key(bucket, &upload_id) },
        class: None,
        content_type: "application/json".into(),
        headers: String::new(),
        md5_etag: false,
        expected_sha256: None,
        declared_bytes: Some(bytes.len() as u64),
    };
    key::store_version(shard, request, &mut InMemory(Some(Bytes::from(bytes)))).await?;
    let mut xml = Xml::root("InitiateMultipartUploadResult");
    xml.text("Bucket", bucket);
    xml.text("Key", key);
    xml.text("UploadId", &upload_id);
    xml.close("InitiateMultipartUploadResult");
    Ok(xml_response(xml))
}

/// UploadPartCopy: the part is a range (or all) of another object.
async fn copy_part(
    shard: &Rc<Shard>,
    parts: &Parts,
    caller: &Caller,
    bucket: &str,
    upload_id: &str,
    number: u32,
) -> Result<Response<ResBody>, S3Error> {
    let (source_bucket, source_key) = copy_source(&parts.headers)?;
    authorize(shard, caller, Need::Read(&source_bucket))?;
    let range = parts.headers.get("x-amz-copy-source-range").and_then(|v| v.to_str().ok());
    let want = |facts: &cairn_node::read::KeyFacts, _| match range {
        None => Want::Bytes { start: 0, end: facts.size_bytes },
        Some(range) => match crate::http::range::parse_range(Some(range), facts.size_bytes) {
            crate::http::range::RangeAnswer::Part { start, end } => Want::Bytes { start, end },
            _ => Want::Nothing,
        },
    };
    let reading = read_anywhere(shard, &source_bucket, &source_key, want).await.map_err(
        |error| match error {
            NodeError::NotFound | NodeError::NotHere { .. } | NodeError::Unknown { .. } => {
                S3Error::no_such_key(&source_key)
            }
            other => other.into(),
        },
    )?;
    let Want::Bytes { start, end } = reading.want else {
        return Err(S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "the copy range is not satisfiable",
        ));
    };
    let request = PutRequest {
        target: KeyRef { domain: UPLOADS_DOMAIN.into(), key: part_key(bucket, upload_id, number) },
        class: None,
        content_type: String::new(),
        headers: String::new(),
        md5_etag: true,
        expected_sha256: None,
        declared_bytes: Some(end - start),
    };
    let mut source = PartSource { bodies: vec![reading.body], current: None };
    let record = key::store_version(shard, request, &mut source).await?;
    let facts = cairn_node::read::KeyFacts::of_record(&record);
    let mut xml = Xml::root("CopyPartResult");
    xml.text("ETag", &key::tag_of(&facts, TagStyle::S3));
    xml.text("LastModified", &super::list::timestamp(record.version.hlc));
    xml.close("CopyPartResult");
    Ok(xml_response(xml))
}

/// The parts CompleteMultipartUpload names: (number, ETag), in order.
fn parse_complete(text: &[u8]) -> Result<Vec<(u32, String)>, S3Error> {
    let malformed = || S3Error::bad_request("MalformedXML", "the part list is not complete");
    let root = super::parse_xml(text, "CompleteMultipartUpload")?;
    let list = root
        .elements()
        .filter(|e| e.name == "Part")
        .map(|part| {
            let number = super::child_text(part, "PartNumber").and_then(|n| n.trim().parse().ok());
            let etag = super::child_text(part, "ETag").map(|e| e.trim().to_owned());
            number.zip(etag).ok_or_else(malformed)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err(malformed());
    }
    Ok(list)
}

async fn complete(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    upload_id: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    let upload = upload(shard, bucket, key, upload_id).await?;
    let timeout = shard.node.config.body_timeout;
    let text = crate::http::request::read_to_end(body, COMPLETE_BODY_BYTES_MAX, timeout).await?;
    let list = parse_complete(&text)?;
    if list.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(S3Error::bad_request(
            "InvalidPartOrder",
            "parts must be listed in ascending order",
        ));
    }
    let invalid = |number: u32| {
        S3Error::bad_request(
            "InvalidPart",
            format!("part {number} was not uploaded or its ETag differs"),
        )
    };
    let mut md5s = md5::Md5::new();
    let mut total_bytes = 0u64;
    let mut checked = std::collections::VecDeque::with_capacity(list.len());
    for (at, (number, etag)) in list.iter().enumerate() {
        let facts = facts_of(shard, UPLOADS_DOMAIN, &part_key(bucket, upload_id, *number))
            .await?
            .ok_or_else(|| invalid(*number))?;
        let tag = key::tag_of(&facts, TagStyle::S3);
        if tag.trim_matches('"') != etag.trim_matches('"') {
            return Err(invalid(*number));
        }
        if at + 1 < list.len() && facts.size_bytes < PART_BYTES_MIN {
            return Err(S3Error::bad_request(
                "EntityTooSmall",
                format!("part {number} is smaller than 5 MiB"),
            ));
        }
        md5s.update(hex::decode(tag.trim_matches('"')).map_err(|_| invalid(*number))?);
        total_bytes += facts.size_bytes;
        checked.push_back((part_key(bucket, upload_id, *number), facts.sha256));
    }
    let etag = format!("\"{}-{}\"", hex::encode(md5s.finalize()), list.len());
    let request = PutRequest {
        target: KeyRef { domain: bucket.to_owned(), key: key.to_owned() },
        class: upload.class,
        content_type: upload.content_type,
        headers: format!("{}{}: {etag}\n", upload.headers, cairn_node::upload::S3_ETAG_HEADER),
        md5_etag: false,
        expected_sha256: None,
        declared_bytes: Some(total_bytes),
    };
    let mut parts = PartsInOrder { shard: shard.clone(), checked, current: None };
    key::store_version(shard, request, &mut parts).await?;
    // The object is stored: a failure to drop the parts leaves them to
    // the expiry, and must not tell the client the upload failed.
    if let Err(error) = drop_upload(shard, bucket, upload_id).await {
        tracing::info!(%bucket, %upload_id, code = error.code, "could not drop a completed upload's parts");
    }
    let mut xml = Xml::root("CompleteMultipartUploadResult");
    xml.text("Location", &format!("/{bucket}/{key}"));
    xml.text("Bucket", bucket);
    xml.text("Key", key);
    xml.text("ETag", &etag);
    xml.close("CompleteMultipartUploadResult");
    Ok(xml_response(xml))
}

/// The parts of a completed upload, read one after the other, each opened
/// only when the one before is done, and each the very bytes whose ETag
/// was checked (another version of the part fails the completion).
struct PartsInOrder {
    shard: Rc<Shard>,
    checked: std::collections::VecDeque<(String, cairn_engine::Digest)>,
    current: Option<PartSource>,
}

impl ChunkSource for PartsInOrder {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(chunk) = current.next_chunk().await? {
                    return Ok(Some(chunk));
                }
            }
            let Some((part, sha256)) = self.checked.pop_front() else { return Ok(None) };
            let whole = |facts: &cairn_node::read::KeyFacts, _| Want::Bytes {
                start: 0,
                end: facts.size_bytes,
            };
            let reading = read_anywhere(&self.shard, UPLOADS_DOMAIN, &part, whole).await?;
            if reading.facts.sha256 != sha256 {
                return Err(NodeError::Changed);
            }
            self.current = Some(PartSource { bodies: vec![reading.body], current: None });
        }
    }
}

/// The bytes of several reads, one after the other (`bodies` reversed:
/// the next is popped from the end).
struct PartSource {
    bodies: Vec<Option<ReadBody>>,
    current: Option<ReadBody>,
}

impl ChunkSource for PartSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        loop {
            match &mut self.current {
                None => match self.bodies.pop() {
                    None => return Ok(None),
                    Some(body) => self.current = body,
                },
                Some(ReadBody::Memory(bytes)) => {
                    let bytes = std::mem::take(bytes);
                    self.current = None;
                    if !bytes.is_empty() {
                        return Ok(Some(bytes));
                    }
                }
                Some(ReadBody::Stream { chunks, .. }) => {
                    match futures_lite::StreamExt::next(chunks).await.transpose()? {
                        Some(chunk) => return Ok(Some(chunk)),
                        None => self.current = None,
                    }
                }
            }
        }
    }
}

/// Deletes an upload's parts and description.
async fn drop_upload(shard: &Rc<Shard>, bucket: &str, upload_id: &str) -> Result<(), S3Error> {
    let prefix = format!("{bucket}/{upload_id}/");
    loop {
        let page = key_page(&shard.node, UPLOADS_DOMAIN, &prefix, &prefix, 1000).await?;
        if page.keys.is_empty() {
            return Ok(());
        }
        for (part, _) in page.keys {
            let target = KeyRef { domain: UPLOADS_DOMAIN.into(), key: part };
            match key::delete(shard, target).await {
                Ok(()) => {}
                Err(error) if error.kind == crate::http::ErrorKind::NotFound => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
}

/// The uploads of `bucket` under way: (upload id, description).
async fn uploads(shard: &Rc<Shard>, bucket: &str) -> Result<Vec<(String, Upload)>, S3Error> {
    let prefix = format!("{bucket}/");
    let mut start = prefix.clone();
    let mut found = Vec::new();
    loop {
        let page = key_page(&shard.node, UPLOADS_DOMAIN, &prefix, &start, 1000).await?;
        for (name, _) in &page.keys {
            let Some(upload_id) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix("/meta"))
            else {
                continue;
            };
            let bytes = read_small(shard, UPLOADS_DOMAIN, name).await?;
            if let Some(upload) = bytes.and_then(|b| serde_json::from_slice(&b).ok()) {
                found.push((upload_id.to_owned(), upload));
            }
        }
        match page.next_after {
            Some(after) if found.len() < 1000 => start = cairn_cluster::start_after(&after),
            _ => return Ok(found),
        }
    }
}

/// Drops the bucket's uploads older than [`UPLOAD_TTL_S`].
async fn expire(shard: &Rc<Shard>, bucket: &str) {
    let Ok(found) = uploads(shard, bucket).await else { return };
    let now = unix_s();
    for (upload_id, upload) in found {
        if upload.started_unix_s + UPLOAD_TTL_S < now {
            if let Err(error) = drop_upload(shard, bucket, &upload_id).await {
                tracing::info!(%bucket, %upload_id, code = error.code, "could not drop an expired upload");
            }
        }
    }
}

pub async fn list_uploads(
    shard: &Rc<Shard>,
    bucket: &str,
    query: &Query,
) -> Result<Response<ResBody>, S3Error> {
    let prefix = query.get("prefix").unwrap_or("");
    let mut found = uploads(shard, bucket).await?;
    found.retain(|(_, upload)| upload.key.starts_with(prefix));
    found.sort_by(|a, b| (&a.1.key, &a.0).cmp(&(&b.1.key, &b.0)));
    let mut xml = Xml::root("ListMultipartUploadsResult");
    xml.text("Bucket", bucket);
    xml.text("Prefix", prefix);
    xml.text("IsTruncated", "false");
    for (upload_id, upload) in found {
        xml.open("Upload");
        xml.text("Key", &upload.key);
        xml.text("UploadId", &upload_id);
        xml.text("Initiated", &super::list::timestamp((upload.started_unix_s * 1000) << 16));
        xml.text("StorageClass", "STANDARD");
        xml.close("Upload");
    }
    xml.close("ListMultipartUploadsResult");
    Ok(xml_response(xml))
}

async fn list_parts(
    shard: &Rc<Shard>,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<Response<ResBody>, S3Error> {
    let prefix = format!("{bucket}/{upload_id}/");
    let page = key_page(&shard.node, UPLOADS_DOMAIN, &prefix, &prefix, 1000).await?;
    let mut xml = Xml::root("ListPartsResult");
    xml.text("Bucket", bucket);
    xml.text("Key", key);
    xml.text("UploadId", upload_id);
    xml.text("IsTruncated", if page.next_after.is_some() { "true" } else { "false" });
    for (name, record) in page.keys {
        let Some(number) = name.strip_prefix(&prefix).and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let facts = cairn_node::read::KeyFacts::of_record(&record);
        xml.open("Part");
        xml.text("PartNumber", &number.to_string());
        xml.text("LastModified", &super::list::timestamp(record.version.hlc));
        xml.text("ETag", &key::tag_of(&facts, TagStyle::S3));
        xml.text("Size", &record.size_bytes.to_string());
        xml.close("Part");
    }
    xml.close("ListPartsResult");
    Ok(xml_response(xml))
}

impl From<cairn_cluster::ListUnanswered> for S3Error {
    fn from(error: cairn_cluster::ListUnanswered) -> S3Error {
        ApiError::from(NodeError::from(error)).into()
    }
}
