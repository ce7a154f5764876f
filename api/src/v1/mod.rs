//! The client HTTP API (`/v1/…`, `/metrics`; README "HTTP API").

mod access;
mod admin;
mod keys;
mod list;
mod path;
mod status;

use std::rc::Rc;

use cairn_node::upload::KeyRef;
use cairn_node::Shard;
use http::request::Parts;
use http::{Method, Response};

pub use keys::record_json;
use path::Route;

use crate::http::auth::{self, Need};
use crate::http::key::{ReadKind, TagStyle};
use crate::http::{ApiError, Query, RequestBody, ResBody};
use cairn_engine::PARTS_DOMAIN;

pub async fn handle(
    shard: &Rc<Shard>,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let route = path::route(request.uri.path())?;
    let query = Query::parse(request.uri.query());
    match &route {
        Route::Key { domain, key } if domain == PARTS_DOMAIN => {
            if request.method != Method::PUT || !auth::relayed(shard, request, domain, key) {
                return Err(ApiError::not_found("no such endpoint"));
            }
        }
        Route::Domain { domain } if domain == PARTS_DOMAIN => {
            return Err(ApiError::not_found("no such endpoint"));
        }
        // A signed URL reads the bytes; it does not sign more URLs.
        Route::Key { domain, key }
            if matches!(request.method, Method::GET | Method::HEAD)
                && !["redirect", "locations", "stat"].iter().any(|q| query.has(q)) =>
        {
            auth::check_read(shard, request, &query, domain, key)?
        }
        Route::Key { domain, key } if request.method == Method::PUT => {
            auth::check_write(shard, request, domain, key)?
        }
        route => auth::check(shard, request, need(route, &request.method))?,
    }
    match (route, request.method.clone()) {
        (Route::Metrics, Method::GET) => Ok(status::metrics(shard)),
        (Route::Status, Method::GET) => status::status(shard).await,
        (Route::Cluster, Method::GET) => admin::cluster(shard).await,
        (Route::Admin { segments }, method) => {
            admin::admin(shard, &method, &segments, &query, body).await
        }
        (Route::Domain { domain }, Method::GET) => list::list(shard, &domain, &query).await,
        (Route::Key { domain, key }, method) => {
            one_key(shard, KeyRef { domain, key }, &method, &query, request, body).await
        }
        (Route::Unknown, _) => Err(ApiError::not_found("no such endpoint")),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// What a request on `route` needs of its access key.
fn need<'a>(route: &'a Route, method: &Method) -> Option<Need<'a>> {
    let reads = matches!(*method, Method::GET | Method::HEAD);
    match route {
        Route::Metrics => Some(Need::Metrics),
        Route::Status | Route::Cluster => Some(Need::AnyKey),
        Route::Admin { segments } => match (method, segments.as_slice()) {
            (&Method::DELETE, [what, name]) if what == "domains" => Some(Need::Owner(name)),
            (&Method::GET, [what, ..]) if what != "keys" => Some(Need::AnyKey),
            _ => Some(Need::Admin),
        },
        Route::Domain { domain } if reads => Some(Need::Read(domain)),
        Route::Domain { domain } | Route::Key { domain, .. } if !reads => Some(Need::Write(domain)),
        Route::Key { domain, .. } => Some(Need::Read(domain)),
        Route::Domain { .. } | Route::Unknown => None,
    }
}

async fn one_key(
    shard: &Rc<Shard>,
    target: KeyRef,
    method: &Method,
    query: &Query,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let headers = &request.headers;
    match *method {
        Method::PUT => {
            let class = query.get("class").map(str::to_string);
            let (domain, name) = (target.domain.clone(), target.key.clone());
            let relayed = auth::relayed(shard, request, &domain, &name);
            let put = crate::http::key::put(shard, target, class, headers, body, relayed);
            let record = put.await?;
            Ok(keys::created(&domain, &name, &record))
        }
        Method::GET if query.has("stat") => keys::stat(shard, target).await,
        Method::GET if query.has("locations") => keys::locations(shard, target).await,
        Method::GET if query.has("redirect") => keys::redirect(shard, target).await,
        Method::GET => {
            crate::http::key::get(shard, &target, headers, ReadKind::Get, TagStyle::Sha256).await
        }
        Method::HEAD => {
            crate::http::key::get(shard, &target, headers, ReadKind::Head, TagStyle::Sha256).await
        }
        Method::DELETE => keys::delete(shard, target).await,
        _ => Err(ApiError::method_not_allowed()),
    }
}
