//! Who may do what over HTTP (README "Security"). A request proves an
//! access key with `Authorization: Bearer <id>:<secret>`, or HTTP Basic
//! with the same pair (what WebDAV clients send); a read may instead carry
//! a URL signed by a node (`?sig=`, from MogileFS `get_paths` and
//! `?redirect`), or read a domain set public-read. None of it applies on a
//! lone node bound to loopback (the README's first command), and all of it
//! once the cluster has had a second member or a listener is off loopback.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use cairn_cluster::access;
pub use cairn_cluster::access::Need;
use cairn_node::Shard;
use http::request::Parts;
use http::{header, HeaderMap};

use super::{ApiError, ErrorKind, Query};

/// How long a signed read URL stays good.
pub const SIGNED_URL_TTL_S: u64 = 3600;

/// Checks that the request may do what `need` asks (nothing when `None`).
pub fn check(shard: &Shard, parts: &Parts, need: Option<Need>) -> Result<(), ApiError> {
    let Some(need) = need else { return Ok(()) };
    // The shard's cached copy: no lock shared with other cores per request.
    let state = shard.cluster_state();
    if !shard.node.control.auth_required(&state) {
        return Ok(());
    }
    if matches!(need, Need::Read(domain) if state.is_public_read(domain)) {
        return Ok(());
    }
    let (id, secret) = credentials(&parts.headers)?.ok_or_else(|| {
        unauthorized("this request needs an access key: Authorization: Bearer <id>:<secret>")
    })?;
    let wrong = || unauthorized("unknown access key or wrong secret");
    let key = state.access_key(&id).ok_or_else(wrong)?;
    let expected = shard.node.control.unseal(&id, key).ok_or_else(wrong)?;
    if !same(secret.as_bytes(), expected.as_bytes()) {
        return Err(wrong());
    }
    if !access::allows(key, need) {
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            format!("access key {id} may not {}", describe(need)),
        ));
    }
    Ok(())
}

/// Like [`check`] for a read of one key, which a valid signed URL for that
/// key also allows.
pub fn check_read(
    shard: &Shard,
    parts: &Parts,
    query: &Query,
    domain: &str,
    key: &str,
) -> Result<(), ApiError> {
    if let Some(sig) = query.get("sig") {
        if verify_signed(shard, Signed::Read, domain, key, sig, unix_s()) {
            return Ok(());
        }
    }
    check(shard, parts, Some(Need::Read(domain)))
}

/// Like [`check`] for a PUT of one key, which a proxy that checked the
/// client's key relays with a signed [`RELAY_HEADER`].
pub fn check_write(shard: &Shard, parts: &Parts, domain: &str, key: &str) -> Result<(), ApiError> {
    if relayed(shard, parts, domain, key) {
        return Ok(());
    }
    check(shard, parts, Some(Need::Write(domain)))
}

/// Whether the request is a write of `domain`/`key` a member relayed
/// with a valid signature (also where the node asks for no key: then
/// every member signs anyway when it relays).
pub fn relayed(shard: &Shard, parts: &Parts, domain: &str, key: &str) -> bool {
    let relay = parts.headers.get(RELAY_HEADER).and_then(|v| v.to_str().ok());
    relay.is_some_and(|sig| verify_signed(shard, Signed::Write, domain, key, sig, unix_s()))
}

/// The header a proxy signs the writes it relays to a store with.
pub const RELAY_HEADER: &str = "x-cairn-relay";
/// How long a relay signature is good: it is checked when the store gets
/// the request head, moments after the proxy made it, so a copy of it
/// seen on the wire is soon worthless.
pub const RELAY_TTL_S: u64 = 30;

/// What a signature lets its bearer do with one key.
#[derive(Clone, Copy)]
pub enum Signed {
    /// Read it: the `sig` of a URL handed to a client (MogileFS paths,
    /// `?redirect`).
    Read,
    /// Write it: a proxy relaying a write it checked.
    Write,
    /// Add bytes to a MogileFS upload (the key is the fid).
    Upload,
}

/// The signature that lets its bearer do `what` with `domain`/`key` for
/// the next [`SIGNED_URL_TTL_S`] seconds (`None` when the node asks for no
/// key at all).
pub fn sign(shard: &Shard, what: Signed, domain: &str, key: &str) -> Option<String> {
    required(shard).then(|| signature(shard, what, domain, key, SIGNED_URL_TTL_S))
}

/// Whether this node asks clients for access keys now.
pub fn required(shard: &Shard) -> bool {
    shard.node.control.auth_required(&shard.cluster_state())
}

/// The signature letting its bearer do `what` with `domain`/`key` for
/// `ttl_s` seconds: `<expiry>.<hex HMAC>`.
pub fn signature(shard: &Shard, what: Signed, domain: &str, key: &str, ttl_s: u64) -> String {
    let expires = unix_s() + ttl_s;
    let url_key = shard.node.control.url_key();
    let mac = url_key.mac(&signed_parts(what, domain, key, &expires.to_le_bytes()));
    format!("{expires}.{}", hex::encode(mac))
}

/// Whether `sig` lets its bearer do `what` with `domain`/`key` now.
pub fn verify(shard: &Shard, what: Signed, domain: &str, key: &str, sig: &str) -> bool {
    verify_signed(shard, what, domain, key, sig, unix_s())
}

fn signed_parts<'a>(
    what: Signed,
    domain: &'a str,
    key: &'a str,
    expires: &'a [u8],
) -> [&'a [u8]; 4] {
    let action: &[u8] = match what {
        Signed::Read => b"read",
        Signed::Write => b"write",
        Signed::Upload => b"upload",
    };
    [action, domain.as_bytes(), key.as_bytes(), expires]
}

fn verify_signed(
    shard: &Shard,
    what: Signed,
    domain: &str,
    key: &str,
    sig: &str,
    now_s: u64,
) -> bool {
    let Some((expires, mac)) = sig.split_once('.') else { return false };
    let (Ok(expires), Ok(mac)) = (expires.parse::<u64>(), hex::decode(mac)) else { return false };
    let expires_bytes = expires.to_le_bytes();
    expires >= now_s
        && shard
            .node
            .control
            .url_key()
            .verify(&signed_parts(what, domain, key, &expires_bytes), &mac)
}

/// The key id and secret the request presents, if any.
fn credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| unauthorized("Authorization is not ASCII"))?;
    let pair = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim().to_owned(),
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .map_err(|_| unauthorized("Basic credentials are not base64"))?;
            String::from_utf8(decoded)
                .map_err(|_| unauthorized("Basic credentials are not UTF-8"))?
        }
        _ => return Err(unauthorized("Authorization must be Bearer <id>:<secret> or Basic")),
    };
    match pair.split_once(':') {
        Some((id, secret)) => Ok(Some((id.to_owned(), secret.to_owned()))),
        None => Err(unauthorized("credentials must be <id>:<secret>")),
    }
}

/// Compares without an early exit, so timing tells nothing of the secret.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, message)
}

fn describe(need: Need) -> String {
    match need {
        Need::Read(domain) => format!("read domain {domain:?}"),
        Need::Write(domain) => format!("write domain {domain:?}"),
        Need::Owner(domain) => format!("administer domain {domain:?}"),
        Need::Admin => "administer the cluster".to_owned(),
        Need::Metrics => "read the metrics".to_owned(),
        Need::AnyKey => "do this".to_owned(),
    }
}

fn unix_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
