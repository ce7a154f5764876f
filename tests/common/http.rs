//! The tests' HTTP client: ureq's, except that a request to a node of a
//! cluster carries that cluster's admin key (client authentication is on
//! once a cluster has had a second member). Tests of authentication itself
//! use plain `ureq` to send what they choose.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The admin-key file of the cluster of each node, by its HTTP address.
fn keys() -> &'static Mutex<HashMap<String, PathBuf>> {
    static KEYS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    KEYS.get_or_init(Mutex::default)
}

/// Records that the node at `address` (`host:port`) belongs to the cluster
/// whose first admin key is (or will be) in `key_file`.
pub fn register(address: String, key_file: PathBuf) {
    keys().lock().unwrap().insert(address, key_file);
}

/// The `Authorization` value for a request to `address`, once its
/// cluster's admin key exists.
pub fn authorization(address: &str) -> Option<String> {
    let file = keys().lock().unwrap().get(address)?.clone();
    let key = std::fs::read_to_string(file).ok()?;
    Some(format!("Bearer {}", key.trim()))
}

// The signature is ureq's middleware's, large error and all.
#[allow(clippy::result_large_err)]
fn authorize(
    request: ureq::Request,
    next: ureq::MiddlewareNext,
) -> Result<ureq::Response, ureq::Error> {
    let address = request
        .request_url()
        .ok()
        .map(|url| format!("{}:{}", url.host(), url.port().unwrap_or(80)));
    match address.and_then(|address| authorization(&address)) {
        Some(value) if request.header("authorization").is_none() => {
            next.handle(request.set("Authorization", &value))
        }
        _ => next.handle(request),
    }
}

/// An agent builder whose agent authorizes like [`get`] and the others.
pub fn builder() -> ureq::AgentBuilder {
    ureq::AgentBuilder::new().middleware(authorize)
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| builder().build())
}

pub fn get(url: &str) -> ureq::Request {
    agent().get(url)
}

pub fn head(url: &str) -> ureq::Request {
    agent().head(url)
}

pub fn put(url: &str) -> ureq::Request {
    agent().put(url)
}

pub fn post(url: &str) -> ureq::Request {
    agent().post(url)
}

pub fn delete(url: &str) -> ureq::Request {
    agent().delete(url)
}

pub fn request(method: &str, url: &str) -> ureq::Request {
    agent().request(method, url)
}
