//! The cluster API: `GET /v1/cluster` and the admin writes under
//! `/v1/admin/` (classes, domains, node states). Writes go through raft:
//! followers hand them to the leader; without one they fail with 503.

use std::rc::Rc;

use cairn_raft::{Command, CommandResult, MemberState, NodeId};
use http::{header, Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::ApiError;
use crate::http::ErrorKind;
use crate::http::ResBody;
use crate::http::{Query, RequestBody};
use cairn_cluster::ControlError;
use cairn_node::Shard;

/// Admin request bodies are small JSON documents.
const ADMIN_BODY_MAX_BYTES: usize = 64 << 10;

pub async fn cluster(shard: &Shard) -> Result<Response<ResBody>, ApiError> {
    let report = shard.node.control.report().await;
    let value = serde_json::to_value(&report).expect("a report serialises");
    Ok(json_response(StatusCode::OK, &value))
}

/// `/v1/admin/{segments…}`.
pub async fn admin(
    shard: &Rc<Shard>,
    method: &Method,
    segments: &[String],
    query: &Query,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["classes"]) => Ok(list_classes(shard)),
        (&Method::POST, ["classes"]) => put_class(shard, body).await,
        (&Method::DELETE, ["classes", name]) => {
            let domain = query.get("domain").map(str::to_owned);
            let command = Command::DeleteClass { domain, name: (*name).to_owned() };
            submit(shard, command).await?;
            Ok(no_content())
        }
        (&Method::GET, ["domains"]) => Ok(list_domains(shard)),
        (&Method::POST, ["domains"]) => create_domain(shard, body).await,
        (&Method::DELETE, ["domains", name]) => delete_domain(shard, name).await,
        (&Method::POST, ["domains", name]) => super::access::set_domain(shard, name, body).await,
        (&Method::POST, ["nodes", id, "state"]) => set_node_state(shard, id, body).await,
        (&Method::GET, ["keys"]) => Ok(super::access::list(shard)),
        (&Method::POST, ["keys"]) => super::access::create(shard, body).await,
        (&Method::DELETE, ["keys", id]) => super::access::delete(shard, id).await,
        (&Method::POST, ["keys", id, "allow"]) => super::access::allow(shard, id, body).await,
        (
            _,
            ["classes"]
            | ["classes", _]
            | ["domains"]
            | ["domains", _]
            | ["nodes", _, "state"]
            | ["keys"]
            | ["keys", _]
            | ["keys", _, "allow"],
        ) => Err(ApiError::method_not_allowed()),
        _ => Err(ApiError::not_found("no such admin endpoint")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassBody {
    name: String,
    replicas: u32,
    #[serde(default)]
    domain: Option<String>,
}

async fn put_class(shard: &Shard, body: &mut RequestBody) -> Result<Response<ResBody>, ApiError> {
    let class: ClassBody = read_json(shard, body).await?;
    if let Some(domain) = &class.domain {
        cairn_engine::validate_domain(domain)?;
    }
    validate_class_name(&class.name)?;
    let command = Command::PutClass {
        domain: class.domain.clone(),
        name: class.name.clone(),
        replicas: class.replicas,
    };
    submit(shard, command).await?;
    let value = json!({ "name": class.name, "replicas": class.replicas, "domain": class.domain });
    Ok(json_response(StatusCode::CREATED, &value))
}

fn list_classes(shard: &Shard) -> Response<ResBody> {
    let classes = shard.node.control.read(|state| {
        let mut classes: Vec<_> = state
            .classes()
            .iter()
            .map(|(name, c)| json!({ "name": name, "replicas": c.replicas, "domain": null }))
            .collect();
        for domain in state.domains() {
            for (name, c) in state.domain_classes(domain) {
                classes.push(json!({ "name": name, "replicas": c.replicas, "domain": domain }));
            }
        }
        classes
    });
    json_response(StatusCode::OK, &json!({ "classes": classes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    name: String,
}

async fn create_domain(
    shard: &Shard,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let domain: DomainBody = read_json(shard, body).await?;
    cairn_engine::validate_domain(&domain.name)?;
    submit(shard, Command::CreateDomain { name: domain.name.clone() }).await?;
    Ok(json_response(StatusCode::CREATED, &json!({ "name": domain.name })))
}

fn list_domains(shard: &Shard) -> Response<ResBody> {
    let domains: Vec<String> = shard.node.control.read(|s| s.domains().iter().cloned().collect());
    json_response(StatusCode::OK, &json!({ "domains": domains }))
}

async fn delete_domain(shard: &Shard, name: &str) -> Result<Response<ResBody>, ApiError> {
    let keys = shard.node.meta.list_keys(name, "", None, 1)?;
    if !keys.is_empty() {
        return Err(ApiError::new(
            ErrorKind::DomainNotEmpty,
            format!("domain {name:?} still has keys"),
        ));
    }
    submit(shard, Command::DeleteDomain { name: name.to_owned() }).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
}

async fn set_node_state(
    shard: &Shard,
    id: &str,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let id = parse_node_id(id)?;
    let wanted: StateBody = read_json(shard, body).await?;
    let state = match wanted.state.as_str() {
        "alive" => MemberState::Alive,
        "drain" => MemberState::Drain,
        "readonly" => MemberState::Readonly,
        other => {
            return Err(ApiError::new(
                ErrorKind::BadState,
                format!("state must be \"alive\", \"drain\" or \"readonly\", not {other:?}"),
            ))
        }
    };
    let at_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    submit(shard, Command::SetMemberState { id, state, at_unix_ms }).await?;
    let value = json!({ "id": cairn_cluster::node_id_text(id), "state": state.as_str() });
    Ok(json_response(StatusCode::OK, &value))
}

/// Node ids are written as 16 hex digits everywhere.
fn parse_node_id(text: &str) -> Result<NodeId, ApiError> {
    u64::from_str_radix(text, 16)
        .ok()
        .filter(|_| !text.is_empty() && text.len() <= 16)
        .ok_or_else(|| ApiError::new(ErrorKind::BadNodeId, "a node id is 16 hex digits"))
}

fn validate_class_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorKind::BadClass,
            "a class name is 1 to 64 letters, digits, '_', '-' or '.'",
        ))
    }
}

pub(super) async fn submit(shard: &Shard, command: Command) -> Result<(), ApiError> {
    match shard.node.control.submit(command).await? {
        CommandResult::Ok => Ok(()),
        CommandResult::Refused { reason } => Err(ControlError::Refused(reason).into()),
    }
}

pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    shard: &Shard,
    body: &mut RequestBody,
) -> Result<T, ApiError> {
    let timeout = shard.node.config.body_timeout;
    let bytes = crate::http::request::read_to_end(body, ADMIN_BODY_MAX_BYTES, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(ErrorKind::BadJson, format!("bad request body: {e}")))
}

pub(super) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(ResBody::json(value))
        .expect("valid headers")
}

pub(super) fn no_content() -> Response<ResBody> {
    Response::builder().status(StatusCode::NO_CONTENT).body(ResBody::empty()).expect("valid")
}
