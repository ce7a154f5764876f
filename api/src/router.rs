//! The one router: every HTTP request a shard accepts goes to the frontend
//! its path names — WebDAV under `/dav/`, the MogileFS protocol's upload
//! path, else the `/v1/` API — and is counted and timed
//! (`http::server::answer`).

use std::convert::Infallible;
use std::rc::Rc;

use cairn_node::Shard;
use http::request::Parts;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::http::{ApiError, RequestBody, ResBody};

/// Serves one request; counts it and times it.
pub async fn handle(
    shard: Rc<Shard>,
    request: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    Ok(crate::http::server::answer(shard, request, dispatch, |error: ApiError, _| {
        error.into_response()
    })
    .await)
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
