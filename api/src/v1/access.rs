//! Access keys and public domains under `/v1/admin/` (README "Security"):
//! `POST keys` makes a key and is the only answer that shows its secret;
//! `GET keys` lists them without; `DELETE keys/{id}` revokes one;
//! `POST keys/{id}/allow` sets what it may do in a domain (or `admin`);
//! `POST domains/{name}` sets `public_read`.

use cairn_raft::{Command, Grant};
use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::admin::{json_response, no_content, read_json, submit};
use crate::http::{ApiError, ErrorKind, RequestBody, ResBody};
use cairn_node::Shard;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    admin: bool,
}

pub async fn create(shard: &Shard, body: &mut RequestBody) -> Result<Response<ResBody>, ApiError> {
    let asked: NewKey = read_json(shard, body).await?;
    let (id, secret, key) = shard.node.control.new_access_key(&asked.name, asked.admin);
    submit(shard, Command::PutAccessKey { id: id.clone(), key }).await?;
    let value = json!({
        "id": id,
        "secret": secret,
        "name": asked.name,
        "admin": asked.admin,
        "authorization": format!("Bearer {id}:{secret}"),
    });
    Ok(json_response(StatusCode::CREATED, &value))
}

pub fn list(shard: &Shard) -> Response<ResBody> {
    let keys: Vec<serde_json::Value> = shard.node.control.read(|state| {
        state
            .access_keys()
            .iter()
            .map(|(id, key)| {
                json!({
                    "id": id,
                    "name": key.name,
                    "admin": key.admin,
                    "domains": key.domains,
                    "created_unix_ms": key.created_unix_ms,
                })
            })
            .collect()
    });
    json_response(StatusCode::OK, &json!({ "keys": keys }))
}

pub async fn delete(shard: &Shard, id: &str) -> Result<Response<ResBody>, ApiError> {
    submit(shard, Command::DeleteAccessKey { id: id.to_owned() }).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Allow {
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
    #[serde(default)]
    admin: Option<bool>,
}

/// Replaces what key `id` may do in one domain (all false: nothing), and
/// sets or clears `admin` when given.
pub async fn allow(
    shard: &Shard,
    id: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let asked: Allow = read_json(shard, body).await?;
    if let Some(domain) = &asked.domain {
        if domain != cairn_cluster::access::METRICS_SCOPE {
            cairn_engine::validate_domain(domain)?;
        }
    } else if asked.admin.is_none() {
        return Err(ApiError::new(ErrorKind::BadJson, "give a domain, or admin"));
    }
    let grant = Grant { read: asked.read, write: asked.write, owner: asked.owner };
    let shown = json!({ "id": id, "domain": asked.domain, "grant": grant, "admin": asked.admin });
    let command = Command::SetAccessGrant {
        id: id.to_owned(),
        domain: asked.domain,
        grant,
        admin: asked.admin,
    };
    submit(shard, command).await?;
    Ok(json_response(StatusCode::OK, &shown))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainSettings {
    public_read: bool,
}

pub async fn set_domain(
    shard: &Shard,
    name: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let asked: DomainSettings = read_json(shard, body).await?;
    let command = Command::SetPublicRead { domain: name.to_owned(), public: asked.public_read };
    submit(shard, command).await?;
    Ok(json_response(StatusCode::OK, &json!({ "name": name, "public_read": asked.public_read })))
}
