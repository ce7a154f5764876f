//! The client HTTP API (`/v1/…`, `/metrics`) served by every shard.

mod admin;
pub(crate) mod blob;
mod body;
mod error;
mod list;
mod path;
mod range;
mod remote;
mod status;

use std::convert::Infallible;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

pub use body::ResBody;
pub use error::ApiError;

use crate::shard::Shard;
use blob::{KeyRef, ReadKind};
use path::Route;

/// Decoded query parameters, first value of each name.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// A refused request's unread body is read and dropped up to this much
/// before answering, so that a client still sending gets the answer
/// instead of a reset connection (a lingering close, as nginx does).
const DRAIN_MAX_BYTES: u64 = 64 << 20;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one request; counts it and times it.
pub async fn handle(
    shard: Rc<Shard>,
    request: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let started = Instant::now();
    let _active = shard.enter_request();
    let (parts, incoming) = request.into_parts();
    let mut body = RequestBody { incoming, polled: false };
    let response = match dispatch(&shard, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            // A client that asked `Expect: 100-continue` and was refused
            // before we read has sent nothing: leave it so.
            if body.polled || !expects_continue(&parts) {
                drain(&mut body).await;
            }
            error.into_response()
        }
    };
    shard.node.shard_metrics[shard.id].observe(
        &parts.method,
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}

/// A request body that remembers whether it was read (reading it makes
/// hyper send `100 Continue`).
pub struct RequestBody {
    incoming: Incoming,
    polled: bool,
}

impl RequestBody {
    pub async fn frame(&mut self) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        self.polled = true;
        self.incoming.frame().await
    }
}

fn expects_continue(parts: &Parts) -> bool {
    parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

async fn drain(body: &mut RequestBody) {
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

async fn dispatch(
    shard: &Rc<Shard>,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let path = request.uri.path();
    // Some clients (Windows, office suites) ask the server's root first.
    let root_options = path == "/" && request.method == Method::OPTIONS;
    if path == "/dav" || path.starts_with(crate::dav::PREFIX) || root_options {
        return crate::dav::handle(shard, request, body).await;
    }
    let route = path::route(request.uri.path())?;
    let query = Query::parse(request.uri.query());
    match (route, request.method.clone()) {
        (Route::Metrics, Method::GET) => Ok(status::metrics(shard)),
        (Route::Status, Method::GET) => status::status(shard).await,
        (Route::Cluster, Method::GET) => admin::cluster(shard).await,
        (Route::Admin { segments }, method) => {
            admin::admin(shard, &method, &segments, &query, body).await
        }
        (Route::Domain { domain }, Method::GET) => list::list(shard, &domain, &query),
        (Route::Key { domain, key }, method) => {
            let target = KeyRef { domain, key };
            let headers = &request.headers;
            match method {
                Method::PUT => {
                    let class = query.get("class").map(str::to_string);
                    blob::put(shard, target, class, headers, body).await
                }
                Method::GET if query.has("stat") => blob::stat(shard, target).await,
                Method::GET if query.has("locations") => remote::locations(shard, target).await,
                Method::GET if query.has("redirect") => remote::redirect(shard, target).await,
                Method::GET | Method::HEAD => {
                    let kind = if method == Method::GET { ReadKind::Get } else { ReadKind::Head };
                    match blob::get(shard, &target, headers, kind).await {
                        // Not held here: found through the key's homes.
                        Err(error) if blob::is_not_here(&error) => {
                            remote::proxy(shard, target, kind).await
                        }
                        // This copy is damaged (and now quarantined): serve
                        // another holder's.
                        Err(error) if blob::is_damaged_copy(&error) => {
                            let (domain, name) = (target.domain.clone(), target.key.clone());
                            let served =
                                remote::proxy(shard, target, kind).await.map_err(|_| error)?;
                            // Another holder has the bytes: stop counting
                            // this node's damaged copy, so the tracker
                            // makes a good one elsewhere.
                            shard.drop_damaged_copy(domain, name);
                            Ok(served)
                        }
                        other => other,
                    }
                }
                Method::DELETE => blob::delete(shard, target).await,
                _ => Err(ApiError::method_not_allowed()),
            }
        }
        (Route::MogileUpload { fid }, Method::PUT) => {
            blob::put_pending(shard, fid, &request.headers, body).await
        }
        (Route::Unknown, _) => Err(ApiError::not_found("no such endpoint")),
        _ => Err(ApiError::method_not_allowed()),
    }
}
