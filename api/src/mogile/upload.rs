//! The HTTP half of a MogileFS upload: the client PUTs the bytes to the
//! path `create_open` answered (`/v1/_mogile/{fid}`); they are stored like
//! a key's and become the pending upload's; the key changes only at
//! `create_close`.

use std::rc::Rc;

use cairn_node::Shard;
use http::request::Parts;
use http::{header, Method, Response, StatusCode};
use serde_json::json;

use crate::http::auth::{self, Signed};
use crate::http::key::{content_length, etag, HttpBody};
use crate::http::{ApiError, ErrorKind, Query, RequestBody, ResBody};

/// Where a client PUTs the bytes of the upload `create_open` answered.
/// `_` cannot start a domain, so no key's URL looks like this.
pub const UPLOAD_PATH_PREFIX: &str = "/v1/_mogile/";

/// The path of upload `fid`, with a token only this node's cluster can
/// make: fids are guessable (clients may even choose them), so the token,
/// good until the upload expires, is what lets a PUT add bytes to it.
pub fn upload_path(shard: &Shard, fid: u64) -> String {
    let ttl_s = shard.node.config.mogile_upload_ttl.as_secs();
    let token = auth::signature(shard, Signed::Upload, "", &fid.to_string(), ttl_s);
    format!("{UPLOAD_PATH_PREFIX}{fid}?t={token}")
}

/// `PUT /v1/_mogile/{fid}` (the part of the path after the prefix).
pub async fn handle(
    shard: &Rc<Shard>,
    fid: &str,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let Ok(fid) = fid.parse::<u64>() else {
        return Err(ApiError::not_found("no such endpoint"));
    };
    if request.method != Method::PUT {
        return Err(ApiError::method_not_allowed());
    }
    let token = Query::parse(request.uri.query()).get("t").map(str::to_owned);
    if !token.is_some_and(|t| auth::verify(shard, Signed::Upload, "", &fid.to_string(), &t)) {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "a MogileFS upload path must carry the token create_open gave with it",
        ));
    }
    let declared_bytes = content_length(&request.headers)?;
    let mut source = HttpBody::new(shard, body);
    let (sha256, size_bytes) =
        cairn_node::upload::put_pending(shard, fid, declared_bytes, &mut source).await?;
    let body = json!({ "fid": fid, "sha256": sha256.to_hex(), "size": size_bytes });
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, etag(&sha256))
        .body(ResBody::json(&body))?)
}
