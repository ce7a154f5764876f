//! The one router: every HTTP request a shard accepts goes to the frontend
//! its path names — WebDAV under `/dav/`, the MogileFS protocol's upload
//! path, else the `/v1/` API — and is counted and timed here.

use std::convert::Infallible;
use std::rc::Rc;
use std::time::Instant;

use cairn_node::Shard;
use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::http::request::{drain, expects_continue};
use crate::http::{ApiError, RequestBody, ResBody};

/// Serves one request; counts it and times it.
pub async fn handle(
    shard: Rc<Shard>,
    request: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let started = Instant::now();
    let _active = shard.enter_request();
    let (parts, incoming) = request.into_parts();
    let mut body = RequestBody::new(incoming);
    let response = match dispatch(&shard, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            // A client that asked `Expect: 100-continue` and was refused
            // before we read has sent nothing: leave it so.
            if body.polled() || !expects_continue(&parts) {
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
    if let Some(fid) = path.strip_prefix(crate::mogile::UPLOAD_PATH_PREFIX) {
        return crate::mogile::upload::handle(shard, fid, request, body).await;
    }
    crate::v1::handle(shard, request, body).await
}
