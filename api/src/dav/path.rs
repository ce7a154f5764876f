//! Maps `/dav/{domain}/{path…}` to a domain and a key or collection
//! prefix, and back to hrefs. The mapping is the `/v1/` one (the same key
//! for the same name) with the rules a file tree needs: `/` separates
//! segments, so an encoded slash is refused; `.` and `..` segments, empty
//! segments and NUL are refused instead of being resolved; everything else,
//! backslashes included, is an ordinary character of a name.

use cairn_engine::{validate_domain, validate_key};
use http::HeaderMap;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::http::ApiError;
use crate::http::ErrorKind;

pub const PREFIX: &str = "/dav/";

/// A resource named by a `/dav/` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DavPath {
    pub domain: String,
    /// The key, without a trailing slash; empty for the domain's root.
    pub name: String,
    /// The URL ended with `/` (it names a collection).
    pub trailing_slash: bool,
}

impl DavPath {
    pub fn is_root(&self) -> bool {
        self.name.is_empty()
    }

    /// The key prefix of this path as a collection: `name/`, or `` for the root.
    pub fn prefix(&self) -> String {
        if self.name.is_empty() {
            String::new()
        } else {
            format!("{}/", self.name)
        }
    }

    /// The prefix of the collection that holds this path (`` for the root's members).
    pub fn parent_prefix(&self) -> String {
        match self.name.rfind('/') {
            Some(at) => self.name[..=at].to_string(),
            None => String::new(),
        }
    }
}

/// Parses the path of a request URL (already split from its query).
pub fn parse(path: &str) -> Result<DavPath, ApiError> {
    let rest = path.strip_prefix(PREFIX).ok_or_else(|| bad("WebDAV paths start with /dav/"))?;
    let (domain, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let domain = decode_segment(domain)?;
    validate_domain(&domain)?;
    let trailing_slash = tail.is_empty() || tail.ends_with('/');
    let tail = tail.strip_suffix('/').unwrap_or(tail);
    let mut segments = Vec::new();
    if !tail.is_empty() {
        for segment in tail.split('/') {
            segments.push(decode_segment(segment)?);
        }
    }
    let name = segments.join("/");
    if !name.is_empty() {
        validate_key(&name)?;
        // Room for the trailing slash of the collection prefix.
        if name.len() >= cairn_engine::names::KEY_LEN_MAX_BYTES {
            return Err(bad("path is too long"));
        }
    }
    Ok(DavPath { domain, name, trailing_slash })
}

fn decode_segment(segment: &str) -> Result<String, ApiError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| bad("names must be UTF-8 after percent-decoding"))?;
    match &*decoded {
        "" => Err(bad("empty path segment")),
        "." | ".." => Err(bad("dot segments are not allowed in WebDAV paths")),
        text if text.contains('/') => Err(bad("encoded slashes are not allowed in WebDAV paths")),
        text if text.contains('\0') => Err(bad("names must not contain NUL")),
        _ => Ok(decoded.into_owned()),
    }
}

fn bad(message: &str) -> ApiError {
    ApiError::new(ErrorKind::BadName, message)
}

/// Characters kept as they are in hrefs: RFC 3986 unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The href of a key (`collection` false) or a collection prefix.
pub fn href(domain: &str, name: &str) -> String {
    let mut out = String::with_capacity(PREFIX.len() + domain.len() + name.len() + 8);
    out.push_str(PREFIX);
    out.push_str(domain);
    out.push('/');
    for (i, segment) in name.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(segment, SEGMENT));
    }
    out
}

/// Where a COPY or MOVE goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination {
    Here(DavPath),
    /// Another host, or a path outside `/dav/`: RFC 4918 §9.8.5 (502).
    Elsewhere,
}

/// Reads the `Destination` header: an absolute URL on this server (the
/// same authority as `Host`) or an absolute path.
pub fn destination(headers: &HeaderMap) -> Result<Destination, ApiError> {
    let value = headers.get("destination").and_then(|v| v.to_str().ok()).ok_or_else(|| {
        ApiError::new(ErrorKind::BadDestination, "a Destination header is needed")
    })?;
    let uri: http::Uri = value
        .parse()
        .map_err(|_| ApiError::new(ErrorKind::BadDestination, "Destination is not a URL"))?;
    if let Some(authority) = uri.authority() {
        let host = headers.get(http::header::HOST).and_then(|v| v.to_str().ok());
        let same = host.is_some_and(|host| host.eq_ignore_ascii_case(authority.as_str()));
        if !same || !matches!(uri.scheme_str(), Some("http") | Some("https")) {
            return Ok(Destination::Elsewhere);
        }
    }
    if !uri.path().starts_with(PREFIX) {
        return Ok(Destination::Elsewhere);
    }
    Ok(Destination::Here(parse(uri.path())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(domain: &str, name: &str, trailing_slash: bool) -> DavPath {
        DavPath { domain: domain.into(), name: name.into(), trailing_slash }
    }

    #[test]
    fn maps_like_v1() {
        assert_eq!(parse("/dav/photos/a/b.jpg").unwrap(), path("photos", "a/b.jpg", false));
        assert_eq!(parse("/dav/photos/a%20b/").unwrap(), path("photos", "a b", true));
        assert_eq!(parse("/dav/photos/").unwrap(), path("photos", "", true));
        assert_eq!(parse("/dav/photos").unwrap(), path("photos", "", true));
        assert_eq!(parse("/dav/p/..%5c..%5cetc").unwrap(), path("p", "..\\..\\etc", false));
        assert_eq!(parse("/dav/p/%C3%BC").unwrap(), path("p", "ü", false));
    }

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [
            "/dav/p/../q/x",
            "/dav/p/a/%2e%2e/x",
            "/dav/p/%2E%2E",
            "/dav/p/./x",
            "/dav/p/a%2fb",
            "/dav/p/a%2F..%2Fb",
            "/dav/p/a%00b",
            "/dav/p/a//b",
            "/dav/..",
            "/dav/%2e%2e/x",
            "/dav/P/x",
            "/dav/status/x",
            "/dav/p/%ff",
            "/v1/p/x",
        ] {
            let error = parse(bad).expect_err(bad);
            assert_eq!(error.status(), http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn hrefs_round_trip() {
        for name in ["a", "a b/ü?#%", "x/y/z", "..\\x"] {
            let href = href("d", name);
            assert_eq!(parse(&href).unwrap(), path("d", name, false), "{href}");
        }
        assert_eq!(href("d", "a b/c"), "/dav/d/a%20b/c");
    }

    #[test]
    fn destinations() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1:80".parse().unwrap());
        let at = |value: &str, headers: &mut HeaderMap| {
            headers.insert("destination", value.parse().unwrap());
            destination(headers)
        };
        assert_eq!(
            at("http://127.0.0.1:80/dav/d/x%20y", &mut headers).unwrap(),
            Destination::Here(path("d", "x y", false))
        );
        assert_eq!(at("/dav/e/x/", &mut headers).unwrap(), Destination::Here(path("e", "x", true)));
        assert_eq!(
            at("http://evil.example/dav/d/x", &mut headers).unwrap(),
            Destination::Elsewhere
        );
        assert_eq!(at("http://127.0.0.1:80/v1/d/x", &mut headers).unwrap(), Destination::Elsewhere);
        assert_eq!(at("ftp://127.0.0.1:80/dav/d/x", &mut headers).unwrap(), Destination::Elsewhere);
        assert!(at("http://127.0.0.1:80/dav/d/../x", &mut headers).is_err());
    }

    proptest::proptest! {
        /// Any path either is refused or names a key of the domain it
        /// starts with, with no dot segment, and maps back to itself.
        #[test]
        fn parsing_never_escapes_the_domain(tail in "[a-z./%25 \\\\2eEfF0-9]{0,40}") {
            let url = format!("/dav/d/{tail}");
            if let Ok(parsed) = parse(&url) {
                proptest::prop_assert_eq!(&parsed.domain, "d");
                for segment in parsed.name.split('/').filter(|_| !parsed.name.is_empty()) {
                    proptest::prop_assert!(segment != ".." && segment != "." && !segment.is_empty());
                }
                if !parsed.name.is_empty() {
                    let again = parse(&href("d", &parsed.name)).unwrap();
                    proptest::prop_assert_eq!(again.name, parsed.name);
                }
            }
        }

        #[test]
        fn arbitrary_paths_never_panic(path in "\\PC{0,60}") {
            let _ = parse(&format!("/dav/{path}"));
        }
    }
}
