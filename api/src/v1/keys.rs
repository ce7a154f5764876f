//! `/v1/{domain}/{key}`: PUT, GET, HEAD and DELETE of one key (through
//! the shared `http::key`), `?stat`, and where a key is (`?locations`,
//! `?redirect`).

use std::rc::Rc;

use cairn_engine::{Digest, KeyRecord, KeyState};
use cairn_node::upload::KeyRef;
use cairn_node::{NodeError, Shard};
use http::{header, Response, StatusCode};
use serde_json::json;

use crate::http::auth::Signed;
use crate::http::{ApiError, ErrorKind, ResBody};

/// `201` with the stored version's record.
pub fn created(domain: &str, key: &str, record: &KeyRecord) -> Response<ResBody> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ETAG, crate::http::key::etag(&record.sha256))
        .body(ResBody::json(&record_json(domain, key, record)))
        .expect("valid headers")
}

pub async fn stat(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let meta = &shard.node.meta;
    let control = &shard.node.control;
    // Holders are what the homes know; a key held here is described even
    // when they cannot be asked.
    let index = control.lookup(&target.domain, &target.key).await;
    let homes: Vec<String> =
        control.homes(&target.domain, &target.key).iter().map(|h| format!("{h:016x}")).collect();
    let holders = |entry: &cairn_net::IndexEntry| -> Vec<String> {
        entry.holders.iter().map(|h| format!("{h:016x}")).collect()
    };
    let body = match meta.key(&target.domain, &target.key)? {
        Some(record) => {
            let mut body = record_json(&target.domain, &target.key, &record);
            body["block_size"] = json!(cairn_engine::BLOCK_SIZE_BYTES);
            body["content_type"] = json!(record.content_type);
            body["uploading"] = json!(meta.upload_in_progress(&target.domain, &target.key)?);
            // The holders of this version, as the key's homes know them.
            let same = index.as_ref().ok().and_then(Option::as_ref).filter(|e| {
                !e.deleted && e.hlc == record.version.hlc && e.writer == record.version.node_id
            });
            body["holders"] = json!(same.map(holders).unwrap_or_default());
            body["homes"] = json!(homes);
            body
        }
        None if meta.upload_in_progress(&target.domain, &target.key)? => json!({
            "domain": target.domain, "key": target.key, "state": KeyState::Uploading.as_str(),
        }),
        None => match index.map_err(|_| NodeError::HomesUnreachable)?.filter(|e| !e.deleted) {
            // Held elsewhere: what the homes know.
            Some(entry) => json!({
                "domain": target.domain,
                "key": target.key,
                "sha256": Digest(entry.sha256).to_hex(),
                "size": entry.size_bytes,
                "class": entry.class,
                "content_type": entry.content_type,
                "version": entry.hlc,
                "state": if entry.holders.is_empty() { "lost" } else { "elsewhere" },
                "holders": holders(&entry),
                "homes": homes,
            }),
            None => return Err(ApiError::not_found(format!("no key {:?}", target.key))),
        },
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))
        .expect("valid"))
}

pub fn record_json(domain: &str, key: &str, record: &KeyRecord) -> serde_json::Value {
    let mut json = json!({
        "domain": domain,
        "key": key,
        "sha256": record.sha256.to_hex(),
        "size": record.size_bytes,
        "class": record.class,
        "version": record.version.hlc,
        "state": record.state.as_str(),
    });
    if !record.headers.is_empty() {
        json["headers"] = json!(record.headers);
    }
    json
}

fn key_url(http: &str, target: &KeyRef) -> String {
    format!("http://{http}/v1/{}/{}", target.domain, crate::http::key::url_path(&target.key))
}

/// `GET …?locations`: `{"locations": [{"node", "url"}…]}`.
pub async fn locations(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let entry = cairn_node::remote::find(shard, &target.domain, &target.key).await?;
    let locations: Vec<_> = cairn_node::remote::holders(shard, &entry)
        .into_iter()
        .map(|holder| {
            let url = signed_url(key_url(&holder.http, &target), shard, &target);
            json!({ "node": format!("{:016x}", holder.id), "url": url })
        })
        .collect();
    let body = json!({
        "domain": target.domain,
        "key": target.key,
        "sha256": Digest(entry.sha256).to_hex(),
        "size": entry.size_bytes,
        "locations": locations,
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(&body))?)
}

/// `GET …?redirect`: 307 to a holder, this node first when it holds one.
pub async fn redirect(shard: &Shard, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    let entry = cairn_node::remote::find(shard, &target.domain, &target.key).await?;
    let me = shard.node.control.id();
    let mut candidates = cairn_node::remote::holders(shard, &entry);
    candidates.sort_by_key(|holder| holder.id != me);
    let holder = candidates.into_iter().next().ok_or_else(|| {
        ApiError::new(ErrorKind::NoHolder, format!("no live holder of {}", Digest(entry.sha256)))
    })?;
    Ok(Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(header::LOCATION, signed_url(key_url(&holder.http, &target), shard, &target))
        .body(ResBody::empty())?)
}

/// `url` with a `sig` that lets a client without credentials read the key
/// there, when the node asks for credentials at all.
pub fn signed_url(url: String, shard: &Shard, target: &KeyRef) -> String {
    let signed = crate::http::auth::sign(shard, Signed::Read, &target.domain, &target.key);
    match signed {
        Some(sig) => format!("{url}?sig={sig}"),
        None => url,
    }
}

/// `DELETE`: `204` once the key's homes have the deletion.
pub async fn delete(shard: &Rc<Shard>, target: KeyRef) -> Result<Response<ResBody>, ApiError> {
    crate::http::key::delete(shard, target).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(ResBody::empty())?)
}
