//! What a domain name and a key may be. Keys are never used as file paths,
//! so any UTF-8 without NUL is allowed, but for `.` and `..` (no URL can
//! name them: every URL parser removes such a path segment); domains are kept to a small
//! alphabet because they appear in URLs and in admin commands.

use thiserror::Error;

pub const DOMAIN_LEN_MAX: usize = 63;
pub const KEY_LEN_MAX_BYTES: usize = 1024;

/// The domain that holds the parts of uploads under way (S3 multipart).
/// Not a valid domain name, so no client names it; a proxy relays parts
/// to a store under it with a signed relay header only.
pub const PARTS_DOMAIN: &str = "_parts";

/// Names the HTTP API uses below `/v1/` for itself.
const RESERVED_DOMAINS: &[&str] = &["status", "admin", "cluster", "metrics"];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("domain must match [a-z0-9][a-z0-9._-]{{0,62}}")]
    BadDomain,
    #[error("domain name {0:?} is reserved")]
    ReservedDomain(String),
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is longer than {KEY_LEN_MAX_BYTES} bytes")]
    KeyTooLong,
    #[error("key must not contain NUL")]
    KeyHasNul,
    #[error("a key cannot be `.` or `..`")]
    DotKey,
}

pub fn validate_domain(domain: &str) -> Result<(), NameError> {
    let bytes = domain.as_bytes();
    let first_ok = bytes.first().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = bytes
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
    if !first_ok || !rest_ok || bytes.len() > DOMAIN_LEN_MAX {
        return Err(NameError::BadDomain);
    }
    if RESERVED_DOMAINS.contains(&domain) {
        return Err(NameError::ReservedDomain(domain.to_string()));
    }
    Ok(())
}

/// Keys arrive already decoded as UTF-8 (invalid UTF-8 is refused where
/// the bytes are decoded).
pub fn validate_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() {
        return Err(NameError::EmptyKey);
    }
    if key.len() > KEY_LEN_MAX_BYTES {
        return Err(NameError::KeyTooLong);
    }
    if key.contains('\0') {
        return Err(NameError::KeyHasNul);
    }
    if key == "." || key == ".." {
        return Err(NameError::DotKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for good in ["a", "photos", "0-x", "a.b_c-d", &"a".repeat(63)] {
            assert_eq!(validate_domain(good), Ok(()), "{good}");
        }
        for bad in ["", "A", "-a", ".a", "a/b", "a b", "é", &"a".repeat(64)] {
            assert_eq!(validate_domain(bad), Err(NameError::BadDomain), "{bad}");
        }
        assert!(matches!(validate_domain("status"), Err(NameError::ReservedDomain(_))));
    }

    #[test]
    fn keys() {
        assert_eq!(validate_key("a/b/../c d.jpg"), Ok(()));
        assert_eq!(validate_key(&"k".repeat(1024)), Ok(()));
        assert_eq!(validate_key(""), Err(NameError::EmptyKey));
        assert_eq!(validate_key(&"k".repeat(1025)), Err(NameError::KeyTooLong));
        assert_eq!(validate_key("a\0b"), Err(NameError::KeyHasNul));
        assert_eq!(validate_key(".."), Err(NameError::DotKey));
        assert_eq!(validate_key("."), Err(NameError::DotKey));
        assert_eq!(validate_key("../x"), Ok(()));
    }
}
