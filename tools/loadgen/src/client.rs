//! The target server and one keep-alive HTTP/1.1 connection to it: URL template handling,
//! lazy connect and reconnect after a break, PUT bodies sent from shared buffers with a
//! Content-Length, and response bodies read frame by frame (hashed when verifying).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use http::{Method, Request};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::body::RequestBody;
use crate::config::Op;
use crate::verify::Sha256Digest;

/// The key for an index: `k000000`, `k000001`, ... (wider once the index needs it).
pub fn key_name(key_index: u64) -> String {
    format!("k{key_index:06}")
}

/// Where requests go: a resolved address, the Host header, and the path with `{key}` left in.
#[derive(Debug)]
pub struct Target {
    pub addr: SocketAddr,
    authority: String,
    path_template: String,
    /// Sent as `Authorization` with every request (`LOADGEN_AUTHORIZATION`,
    /// e.g. `Bearer <id>:<secret>` for a cluster that asks for keys).
    authorization: Option<String>,
}

impl Target {
    /// Substitutes `{domain}` now and resolves the host once, so no request pays for DNS.
    pub async fn resolve(url_template: &str, domain: &str) -> Result<Target> {
        let url = url_template.replace("{domain}", domain);
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("url template `{url_template}` must start with http:// (TLS is not supported)");
        };
        let (authority, path_template) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        ensure!(path_template.contains("{key}"), "url template `{url_template}` has no {{key}}");
        let parsed: http::uri::Authority =
            authority.parse().with_context(|| format!("`{authority}` is not a host[:port]"))?;
        let sample = path_template.replace("{key}", &key_name(0));
        http::uri::PathAndQuery::try_from(sample.as_str())
            .with_context(|| format!("`{sample}` is not a valid request path"))?;
        let host = parsed.host().trim_start_matches('[').trim_end_matches(']');
        let port = parsed.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("cannot resolve `{authority}`"))?
            .next()
            .with_context(|| format!("`{authority}` resolves to no address"))?;
        Ok(Target {
            addr,
            authority: authority.to_string(),
            path_template: path_template.into(),
            authorization: std::env::var("LOADGEN_AUTHORIZATION").ok(),
        })
    }

    pub fn path_for(&self, key_index: u64) -> String {
        self.path_template.replace("{key}", &key_name(key_index))
    }
}

/// Why a request did not succeed; the label is the key of the report's error counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Io,
    Verify,
    Status(u16),
}

impl Failure {
    pub fn label(self) -> String {
        match self {
            Failure::Connect => "connect".to_string(),
            Failure::Timeout => "timeout".to_string(),
            Failure::Io => "io".to_string(),
            Failure::Verify => "verify".to_string(),
            Failure::Status(code) => code.to_string(),
        }
    }
}

/// A successful response.
#[derive(Debug)]
pub struct Received {
    pub body_bytes: u64,
    /// Present when hashing was asked for.
    pub digest: Option<Sha256Digest>,
}

/// One connection, carrying one request at a time.
pub struct Connection {
    target: Arc<Target>,
    link: Option<Link>,
}

struct Link {
    sender: SendRequest<RequestBody>,
    driver: JoinHandle<()>,
}

impl Drop for Link {
    // A request abandoned at its timeout could otherwise keep the socket busy in the driver
    // for as long as the server takes.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    pub fn new(target: Arc<Target>) -> Connection {
        Connection { target, link: None }
    }

    fn reset(&mut self) {
        self.link = None;
    }

    /// Sends one request and reads the whole response, all within `budget`. After a timeout or
    /// a broken stream the socket is dropped, since its state is unknown; the next request
    /// connects afresh.
    pub async fn request(
        &mut self,
        op: Op,
        key_index: u64,
        body: RequestBody,
        hash_body: bool,
        budget: Duration,
    ) -> Result<Received, Failure> {
        let exchange = self.exchange(op, key_index, body, hash_body);
        let result = tokio::time::timeout(budget, exchange).await.unwrap_or(Err(Failure::Timeout));
        if matches!(result, Err(Failure::Io | Failure::Connect | Failure::Timeout)) {
            self.reset();
        }
        result
    }

    async fn exchange(
        &mut self,
        op: Op,
        key_index: u64,
        body: RequestBody,
        hash_body: bool,
    ) -> Result<Received, Failure> {
        let target = Arc::clone(&self.target);
        let method = match op {
            Op::Put => Method::PUT,
            Op::Get => Method::GET,
            Op::Delete => Method::DELETE,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(target.path_for(key_index))
            .header(http::header::HOST, target.authority.as_str());
        if let Some(authorization) = &target.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.as_str());
        }
        let request = request
            .body(body)
            .expect("the path and host were validated when the target was resolved");
        let link = self.ready_link().await?;
        let response = link.sender.send_request(request).await.map_err(|_| Failure::Io)?;
        let status = response.status();
        let mut hasher = (hash_body && status.is_success()).then(Sha256::new);
        let mut body = response.into_body();
        let mut body_bytes = 0u64;
        // Bounded by the caller's per-request timeout rather than a frame count: bodies may be
        // of any size. Error bodies are read too, so the connection stays usable.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Failure::Io)?;
            if let Some(data) = frame.data_ref() {
                body_bytes += data.len() as u64;
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(data);
                }
            }
        }
        if !status.is_success() {
            return Err(Failure::Status(status.as_u16()));
        }
        Ok(Received { body_bytes, digest: hasher.map(|h| h.finalize().into()) })
    }

    async fn ready_link(&mut self) -> Result<&mut Link, Failure> {
        if let Some(link) = self.link.as_mut() {
            // A server may close an idle keep-alive connection; that is not an error.
            if link.sender.ready().await.is_err() {
                self.link = None;
            }
        }
        if self.link.is_none() {
            let mut link = connect(self.target.addr).await?;
            link.sender.ready().await.map_err(|_| Failure::Connect)?;
            self.link = Some(link);
        }
        Ok(self.link.as_mut().expect("a link was kept or just made"))
    }
}

async fn connect(addr: SocketAddr) -> Result<Link, Failure> {
    let stream = TcpStream::connect(addr).await.map_err(|_| Failure::Connect)?;
    // Small requests must not wait on Nagle; failing to set it only costs latency.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    // Its errors reach the sender as failed requests, where they are counted.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Link { sender, driver })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_are_zero_padded() {
        assert_eq!(key_name(0), "k000000");
        assert_eq!(key_name(42), "k000042");
        assert_eq!(key_name(1_234_567), "k1234567");
    }

    #[tokio::test]
    async fn template_substitutes_domain_and_key() {
        let target =
            Target::resolve("http://127.0.0.1:7500/v1/{domain}/{key}", "bench").await.unwrap();
        assert_eq!(target.addr, "127.0.0.1:7500".parse().unwrap());
        assert_eq!(target.path_for(7), "/v1/bench/k000007");
        let webdav = Target::resolve("http://127.0.0.1:8080/{key}", "x").await.unwrap();
        assert_eq!(webdav.path_for(3), "/k000003");
        assert_eq!(webdav.authority, "127.0.0.1:8080");
    }

    #[tokio::test]
    async fn bad_templates_are_refused() {
        assert!(Target::resolve("https://127.0.0.1/{key}", "d").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:1/fixed", "d").await.is_err());
        assert!(Target::resolve("http:///{key}", "d").await.is_err());
    }

    #[test]
    fn failure_labels() {
        assert_eq!(Failure::Status(404).label(), "404");
        assert_eq!(Failure::Verify.label(), "verify");
    }
}
