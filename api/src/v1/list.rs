//! `GET /v1/{domain}?prefix=&after=&limit=`: the cluster's keys of a
//! domain in byte order, a page at a time, at any node (`?local=true`:
//! this node's keys only; `?partial=true`: a page even when members are
//! silent, naming them).

use http::{header, Response};
use serde_json::json;

use crate::http::ApiError;
use crate::http::ErrorKind;
use crate::http::Query;
use crate::http::ResBody;
use cairn_cluster::LIST_LIMIT_MAX;
use cairn_node::Shard;

pub async fn list(
    shard: &Shard,
    domain: &str,
    query: &Query,
) -> Result<Response<ResBody>, ApiError> {
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
    // The cluster state knows every domain; a PUT here a moment ago may
    // not have reached it yet.
    if !shard.cluster_state().has_domain(domain) && !shard.node.meta.domain_exists(domain)? {
        return Err(ApiError::not_found(format!("no domain {domain:?}")));
    }
    let prefix = query.get("prefix").unwrap_or("");
    let after = query.get("after");
    let control = &shard.node.control;
    let body = if query.flag("local") || control.is_alone() {
        local_page(shard, domain, prefix, after, limit)?
    } else {
        let start = after.map(cairn_cluster::start_after).unwrap_or_default();
        let page = control
            .list(domain, prefix, &start, limit, query.flag("partial"))
            .await
            .map_err(|e| ApiError::new(ErrorKind::MembersUnreachable, e.to_string()))?;
        let items: Vec<_> = page
            .entries
            .iter()
            .map(|entry| {
                let stored = entry.holders.len() >= entry.wanted as usize;
                json!({
                    "key": entry.key,
                    "size": entry.size_bytes,
                    "sha256": cairn_engine::Digest(entry.sha256).to_hex(),
                    "version": entry.hlc,
                    "state": if stored { "stored" } else { "need-replication" },
                    "copies": entry.holders.len(),
                })
            })
            .collect();
        let unanswered: Vec<String> =
            page.unanswered.iter().map(|id| format!("{id:016x}")).collect();
        json!({
            "domain": domain,
            "keys": items,
            "next_after": page.next_after,
            "unanswered": unanswered,
        })
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}

/// This node's own keys (a lone node's are the cluster's).
fn local_page(
    shard: &Shard,
    domain: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    // One more than asked tells whether there is a next page.
    let mut keys = shard.node.meta.list_keys(domain, prefix, after, limit + 1)?;
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
    Ok(json!({ "domain": domain, "keys": items, "next_after": next_after }))
}
