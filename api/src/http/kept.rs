//! Headers a key's version keeps besides its content type, as S3 keeps
//! them: `Content-Disposition`, `Cache-Control`, `Content-Encoding`,
//! `Content-Language`, `Expires`, user metadata (`x-amz-meta-*`), and the
//! S3 ETag. Taken from a PUT over `/v1/`, WebDAV or S3, answered on every
//! GET and HEAD; stored as `name: value` lines (`KeyRecord::headers`).

use cairn_engine::record::HEADERS_LEN_MAX;
use cairn_node::upload::S3_ETAG_HEADER;
use http::HeaderMap;

use super::{ApiError, ErrorKind};

/// A PUT asking the node to keep its body's MD5 as the S3 ETag sends
/// this header with the value `md5` (what a proxy sends a store).
pub const ETAG_REQUEST_HEADER: &str = "x-cairn-etag";

/// The standard headers a version keeps.
const KEPT: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];
/// User metadata: kept whatever follows the prefix.
pub const USER_META_PREFIX: &str = "x-amz-meta-";

/// Whether a request header of this (lower-case) name is kept.
pub fn is_kept(name: &str) -> bool {
    KEPT.contains(&name) || name.starts_with(USER_META_PREFIX) || name == S3_ETAG_HEADER
}

/// The kept headers of a request, as stored. The S3 ETag is taken only
/// from a `trusted` request (a member relaying a write it checked): a
/// client cannot name its object's ETag.
pub fn from_request(headers: &HeaderMap, trusted: bool) -> Result<String, ApiError> {
    let mut kept = String::new();
    for (name, value) in headers {
        if !is_kept(name.as_str()) || (name == S3_ETAG_HEADER && !trusted) {
            continue;
        }
        let value = value.to_str().ok().filter(|v| !v.contains(['\r', '\n'])).ok_or_else(|| {
            ApiError::new(ErrorKind::BadHeader, format!("{name} is not printable ASCII"))
        })?;
        kept.push_str(name.as_str());
        kept.push_str(": ");
        kept.push_str(value.trim());
        kept.push('\n');
    }
    if kept.len() > HEADERS_LEN_MAX {
        return Err(ApiError::new(
            ErrorKind::HeadersTooLong,
            format!("the headers kept with an object are limited to {HEADERS_LEN_MAX} bytes"),
        ));
    }
    Ok(kept)
}

/// The stored lines as (name, value) pairs.
pub fn lines(kept: &str) -> impl Iterator<Item = (&str, &str)> {
    kept.lines().filter_map(|line| line.split_once(": "))
}

/// The stored lines a response carries (all but the internal S3 ETag).
pub fn response_lines(kept: &str) -> impl Iterator<Item = (&str, &str)> {
    lines(kept).filter(|(name, _)| *name != S3_ETAG_HEADER)
}

/// The S3 ETag kept with a version, if it has one.
pub fn s3_etag(kept: &str) -> Option<&str> {
    lines(kept).find(|(name, _)| *name == S3_ETAG_HEADER).map(|(_, value)| value)
}

/// Whether the request asks for its body's MD5 to be kept as its S3 ETag.
pub fn wants_md5_etag(headers: &HeaderMap) -> bool {
    headers.get(ETAG_REQUEST_HEADER).is_some_and(|v| v.as_bytes() == b"md5")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_round_trip_and_skip_the_rest() {
        let mut headers = HeaderMap::new();
        headers.insert("cache-control", "max-age=60".parse().unwrap());
        headers.insert("x-amz-meta-colour", " blue ".parse().unwrap());
        headers.insert("x-other", "no".parse().unwrap());
        headers.insert(S3_ETAG_HEADER, "\"abc\"".parse().unwrap());
        let kept = from_request(&headers, true).unwrap();
        let mut seen: Vec<_> = response_lines(&kept).collect();
        seen.sort();
        assert_eq!(seen, [("cache-control", "max-age=60"), ("x-amz-meta-colour", "blue")]);
        assert_eq!(s3_etag(&kept), Some("\"abc\""));
        assert_eq!(s3_etag(&from_request(&headers, false).unwrap()), None, "a client's is not");
    }

    #[test]
    fn too_much_metadata_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-meta-big", "x".repeat(HEADERS_LEN_MAX).parse().unwrap());
        assert_eq!(from_request(&headers, false).unwrap_err().kind, ErrorKind::HeadersTooLong);
    }
}
