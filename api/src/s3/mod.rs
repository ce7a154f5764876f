//! The S3 API (docs/s3.md) on its own listener: a bucket is a domain, an
//! object key is a key, so every object is the same key over `/v1/`,
//! WebDAV and MogileFS. Requests are signed with the cluster's access keys
//! (SigV4, `auth`); bodies may be `aws-chunked` (`body`); answers and
//! errors are S3's XML.

pub mod auth;
pub mod body;
mod bucket;
pub mod error;
mod list;
mod multipart;
mod object;
pub mod sigv4;
mod xml;

use std::convert::Infallible;
use std::rc::Rc;

use cairn_engine::{validate_domain, validate_key, NameError};
use cairn_node::Shard;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use crate::http::{Query, RequestBody, ResBody};
use error::S3Error;

/// Serves one shard's S3 listener until it fails.
pub async fn serve(shard: Rc<Shard>, listener: glommio::net::TcpListener) {
    crate::http::server::accept_connections(
        shard,
        listener,
        crate::http::server::HTTP_CONNECTIONS_PER_SHARD_MAX,
        |shard, stream| crate::http::server::serve_connection(shard, stream, handle),
    )
    .await;
}

/// What a request names.
pub struct Target {
    pub bucket: String,
    /// The object key; `None` for the bucket itself.
    pub key: Option<String>,
}

/// Serves one S3 request; counts and times it like every other.
pub async fn handle(
    shard: Rc<Shard>,
    request: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let failed = |error: S3Error, parts: &Parts| error.into_response(parts.uri.path());
    Ok(crate::http::server::answer(shard, request, dispatch, failed).await)
}

async fn dispatch(
    shard: &Rc<Shard>,
    parts: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, S3Error> {
    let query = Query::parse(parts.uri.query());
    let caller = auth::authenticate(shard, parts, &query)?;
    let Some(target) = target(shard, parts)? else {
        return match parts.method {
            Method::GET => bucket::list_buckets(shard, &caller),
            _ => Err(S3Error::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "on /")),
        };
    };
    let Some(key) = target.key.clone() else {
        return bucket::handle(shard, parts, &query, &caller, &target.bucket, body).await;
    };
    let multipart = query.has("uploadId") || query.has("uploads");
    if multipart {
        return multipart::handle(shard, parts, &query, &caller, &target.bucket, &key, body).await;
    }
    object::handle(shard, parts, &caller, &target.bucket, &key, body).await
}

/// The bucket and key a request names: from the Host (virtual-host style,
/// under `--s3-domain`) or the path's first segment (path style).
fn target(shard: &Shard, parts: &Parts) -> Result<Option<Target>, S3Error> {
    let path = parts.uri.path();
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| S3Error::bad_request("InvalidURI", "the path is not UTF-8"))?;
    let rest = decoded.strip_prefix('/').unwrap_or(&decoded);
    let host_bucket = virtual_host_bucket(shard, parts);
    let (bucket, key) = match host_bucket {
        Some(bucket) => (bucket, rest),
        None if rest.is_empty() => return Ok(None),
        None => match rest.split_once('/') {
            Some((bucket, key)) => (bucket.to_owned(), key),
            None => (rest.to_owned(), ""),
        },
    };
    validate_domain(&bucket).map_err(|_| {
        S3Error::bad_request("InvalidBucketName", format!("{bucket:?} is not a bucket name"))
    })?;
    if key.is_empty() {
        return Ok(Some(Target { bucket, key: None }));
    }
    validate_key(key).map_err(|error| match error {
        NameError::KeyTooLong => S3Error::bad_request("KeyTooLongError", error.to_string()),
        _ => S3Error::bad_request("InvalidArgument", error.to_string()),
    })?;
    Ok(Some(Target { bucket, key: Some(key.to_owned()) }))
}

fn virtual_host_bucket(shard: &Shard, parts: &Parts) -> Option<String> {
    let domain = shard.node.config.s3_domain.as_deref()?;
    let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let bucket = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_owned())
}

/// An empty `200`, `204` or other answer.
fn empty(status: StatusCode) -> Response<ResBody> {
    Response::builder().status(status).body(ResBody::empty()).expect("valid")
}

/// An XML answer.
fn xml_response(xml: xml::Xml) -> Response<ResBody> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/xml")
        .body(ResBody::bytes(xml.finish()))
        .expect("valid")
}

/// A request body's XML tree, whose root must be `root` (in any namespace:
/// clients send S3's or none).
fn parse_xml(text: &[u8], root: &str) -> Result<crate::http::xml::Element, S3Error> {
    let malformed = |what: String| S3Error::bad_request("MalformedXML", what);
    let element = crate::http::xml::parse(text).map_err(|e| malformed(e.to_string()))?;
    if element.name != root {
        return Err(malformed(format!("the body is not a {root}")));
    }
    Ok(element)
}

/// The text of `element`'s child `name`, if it has one.
fn child_text(element: &crate::http::xml::Element, name: &str) -> Option<String> {
    let child = element.elements().find(|e| e.name == name)?;
    Some(
        child
            .children
            .iter()
            .filter_map(|node| match node {
                crate::http::xml::Node::Text(text) => Some(text.as_str()),
                crate::http::xml::Node::Element(_) => None,
            })
            .collect(),
    )
}

/// Whether a bucket exists (the cluster state knows every domain; a PUT
/// here a moment ago may not have reached it yet).
fn bucket_exists(shard: &Shard, bucket: &str) -> Result<bool, S3Error> {
    Ok(shard.cluster_state().has_domain(bucket)
        || shard.node.meta.domain_exists(bucket).map_err(crate::http::ApiError::from)?)
}
