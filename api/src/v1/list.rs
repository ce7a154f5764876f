//! `GET /v1/{domain}?prefix=&after=&limit=`: keys in byte order, a page at
//! a time.

use http::{header, Response};
use serde_json::json;

use crate::http::ApiError;
use crate::http::ErrorKind;
use crate::http::Query;
use crate::http::ResBody;
use cairn_node::Shard;

pub const LIST_LIMIT_MAX: usize = 1000;

pub fn list(shard: &Shard, domain: &str, query: &Query) -> Result<Response<ResBody>, ApiError> {
    let limit = match query.get("limit") {
        None => LIST_LIMIT_MAX,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::new(ErrorKind::BadLimit, format!("limit must be 1..={LIST_LIMIT_MAX}"))
            })?,
    };
    let meta = &shard.node.meta;
    if !meta.domain_exists(domain)? {
        return Err(ApiError::not_found(format!("no domain {domain:?}")));
    }
    let prefix = query.get("prefix").unwrap_or("");
    let after = query.get("after");
    // One more than asked tells whether there is a next page.
    let mut keys = meta.list_keys(domain, prefix, after, limit + 1)?;
    let more = keys.len() > limit;
    keys.truncate(limit);
    let next_after = if more { keys.last().map(|(key, _)| key.clone()) } else { None };
    let items: Vec<_> = keys
        .iter()
        .map(|(key, record)| {
            json!({
                "key": key,
                "size": record.size_bytes,
                "sha256": record.sha256.to_hex(),
                "version": record.version.hlc,
                "state": record.state.as_str(),
            })
        })
        .collect();
    let body = json!({ "domain": domain, "keys": items, "next_after": next_after });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}
