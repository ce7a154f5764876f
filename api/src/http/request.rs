//! What every frontend reads of a request: its query parameters and its
//! body (remembering whether it was read, for `100 Continue`).

use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

use super::{ApiError, ErrorKind};

/// Decoded query parameters, first value of each name.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Query(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// A yes/no parameter: present and not `false` or `0` (`?local`,
    /// `?local=true`).
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|value| !matches!(value, "false" | "0"))
    }
}

/// A refused request's unread body is read and dropped up to this much
/// before answering, so that a client still sending gets the answer
/// instead of a reset connection (a lingering close, as nginx does).
const DRAIN_MAX_BYTES: u64 = 64 << 20;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A request body that remembers whether it was read (reading it makes
/// hyper send `100 Continue`).
pub struct RequestBody {
    incoming: Incoming,
    polled: bool,
}

impl RequestBody {
    pub fn new(incoming: Incoming) -> RequestBody {
        RequestBody { incoming, polled: false }
    }

    /// Whether any of the body was asked for.
    pub fn polled(&self) -> bool {
        self.polled
    }

    pub async fn frame(&mut self) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        self.polled = true;
        self.incoming.frame().await
    }
}

pub fn expects_continue(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads a small request body whole: at most `max_bytes` (more is
/// `too_large`), each piece within `timeout` of the last.
pub async fn read_to_end(
    body: &mut RequestBody,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ApiError> {
    let too_large =
        || ApiError::new(ErrorKind::TooLarge, format!("this body is limited to {max_bytes} bytes"));
    let mut out = Vec::new();
    loop {
        let frame = glommio::timer::timeout(timeout, async { Ok(body.frame().await) })
            .await
            .map_err(|_| ApiError::new(ErrorKind::Timeout, "the request body stalled"))?;
        let Some(frame) = frame else { return Ok(out) };
        let frame = frame.map_err(|error| {
            ApiError::new(ErrorKind::BodyIncomplete, format!("request body failed: {error}"))
        })?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max_bytes {
                return Err(too_large());
            }
            out.extend_from_slice(data);
        }
    }
}

pub async fn drain(body: &mut RequestBody) {
    let _ = glommio::timer::timeout(DRAIN_TIMEOUT, async {
        let mut drained_bytes = 0u64;
        while drained_bytes <= DRAIN_MAX_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    drained_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => break,
            }
        }
        Ok(())
    })
    .await;
}
