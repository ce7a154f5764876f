//! WebDAV (RFC 4918, classes 1 and 2) under `/dav/{domain}/…`, over the
//! same keys as `/v1/`: a file is a key, a collection is a key prefix
//! ending in `/`. Reads and writes of bytes reuse `http::blob`; every
//! change of a key runs on its owner shard (`shard.rs`).
//!
//! Owns: method dispatch, preconditions (`If`, locks), MKCOL, DELETE of
//! collections, PROPPATCH, LOCK/UNLOCK. Not here: request paths
//! (`path`), XML in (`xml`) and out (`multistatus`), PROPFIND
//! (`propfind`), COPY/MOVE (`copymove`), the lock table (`locks`).

mod copymove;
mod domains;
pub mod locks;
mod multistatus;
mod path;
mod propfind;
mod resource;
mod xml;

use std::rc::Rc;
use std::sync::Arc;

use cairn_engine::props::PROP_NAME_LEN_MAX;
use cairn_engine::DeadProp;
use http::request::Parts;
use http::{header, HeaderMap, Response, StatusCode};

pub use locks::LockTable;
pub use path::PREFIX;

use crate::http::auth::{self, Need};
use crate::http::key::{self, ReadKind};
use crate::http::ErrorKind;
use crate::http::{ApiError, RequestBody, ResBody};
use cairn_node::shard::{CollectionOp, PropOp, Shard};
use cairn_node::upload::{KeyRef, PutRequest};
use cairn_node::Node;
use cairn_node::NodeError;
use locks::{ActiveLock, IfHeader, LockRefused, ResourceState};
use multistatus::{dav_error, lock_discovery, propstat, xml_response, MULTISTATUS_CLOSE};
use path::DavPath;
use resource::{collection_in_cluster, resolve, resolve_local, Resource};
use xml::{PatchOp, PropName, XmlError};

/// Request bodies of PROPFIND, PROPPATCH, LOCK and MKCOL are read whole,
/// up to this much.
const XML_BODY_MAX_BYTES: usize = 1 << 20;
/// Members a GET of a collection lists (PROPFIND lists them all).
const HTML_LIST_MAX: usize = 1000;

const ALLOW: &str =
    "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK";

pub async fn handle(
    shard: &Rc<Shard>,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let method = request.method.as_str();
    if method == "OPTIONS" {
        return Ok(Response::builder()
            .header("dav", "1, 2")
            .header(header::ALLOW, ALLOW)
            .header("ms-author-via", "DAV")
            .header(header::CONTENT_LENGTH, 0)
            .body(ResBody::empty())
            .expect("valid headers"));
    }
    if matches!(request.uri.path(), "/dav" | "/dav/") {
        auth::check(shard, request, Some(Need::AnyKey))?;
        return domains::handle(shard, request, body).await;
    }
    let path = path::parse(request.uri.path())?;
    let need = match method {
        // COPY reads here; its Destination is checked for a write there.
        "GET" | "HEAD" | "PROPFIND" | "COPY" => Need::Read(&path.domain),
        _ => Need::Write(&path.domain),
    };
    auth::check(shard, request, Some(need))?;
    match method {
        "GET" => get(shard, request, path, ReadKind::Get).await,
        "HEAD" => get(shard, request, path, ReadKind::Head).await,
        "PUT" => put(shard, request, path, body).await,
        "DELETE" => delete(shard, request, path).await,
        "MKCOL" => mkcol(shard, request, path, body).await,
        "PROPFIND" => propfind(shard, request, path, body).await,
        "PROPPATCH" => proppatch(shard, request, path, body).await,
        "COPY" => copymove::transfer(shard, request, path, copymove::Transfer::Copy).await,
        "MOVE" => copymove::transfer(shard, request, path, copymove::Transfer::Move).await,
        "LOCK" => lock(shard, request, path, body).await,
        "UNLOCK" => unlock(shard, request, path),
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Conflict, message)
}

fn no_parent() -> ApiError {
    conflict("the parent collection does not exist")
}

fn not_found(path: &DavPath) -> ApiError {
    ApiError::not_found(format!("nothing at {:?} in domain {:?}", path.name, path.domain))
}

fn bad_xml(error: XmlError) -> ApiError {
    ApiError::new(ErrorKind::BadXml, error.to_string())
}

/// The collection prefix that holds a key or collection path; `None` for the root.
fn parent_of(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    Some(trimmed.rfind('/').map_or(String::new(), |at| trimmed[..=at].to_string()))
}

/// Reads a small request body whole.
async fn read_body(
    shard: &Shard,
    body: &mut RequestBody,
    headers: &HeaderMap,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            format!("WebDAV request bodies are limited to {XML_BODY_MAX_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > XML_BODY_MAX_BYTES as u64) {
        return Err(too_large());
    }
    crate::http::request::read_to_end(body, XML_BODY_MAX_BYTES, shard.node.config.body_timeout)
        .await
}

/// Whether a collection is at `prefix`: records here, or keys anywhere.
async fn is_collection(node: &Node, domain: &str, prefix: &str) -> Result<bool, ApiError> {
    Ok(collection_in_cluster(node, domain, prefix).await?.is_some())
}

/// A resource a request changes, for the lock check.
pub struct Target {
    pub domain: String,
    /// A key, or a collection prefix.
    pub path: String,
    /// Also locks on the collection's members (DELETE, MOVE of a collection).
    pub tree: bool,
}

impl Target {
    fn new(domain: &str, path: &str, tree: bool) -> Target {
        Target { domain: domain.to_string(), path: path.to_string(), tree }
    }

    /// The parent collection of `path`: adding or removing a member changes it.
    fn parent(domain: &str, path: &str) -> Option<Target> {
        parent_of(path).map(|parent| Target::new(domain, &parent, false))
    }
}

/// The lock tokens and entity tag an `If` condition is checked against,
/// as the cluster knows the resource.
async fn state_of(node: &Node, path: &DavPath) -> ResourceState {
    let resolved = resolve(node, path).await.ok().flatten();
    let lock_path = match &resolved {
        Some(resource) => resource.path().to_string(),
        None if path.trailing_slash => path.prefix(),
        None => path.name.clone(),
    };
    ResourceState {
        tokens: locks::table()
            .affecting(&path.domain, &lock_path, false)
            .into_iter()
            .map(|lock| lock.token)
            .collect(),
        etag: resolved.and_then(|resource| resource.etag()),
    }
}

fn if_header(headers: &HeaderMap) -> Result<Option<IfHeader>, ApiError> {
    let Some(value) = headers.get("if") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(IfHeader::parse)
        .map(Some)
        .ok_or_else(|| ApiError::new(ErrorKind::BadIf, "the If header does not parse"))
}

/// Checks the `If` header (412 when it does not hold) and that every lock
/// on the targets had its token submitted (423). `Ok(Some(answer))` is a refusal.
async fn preconditions(
    node: &Node,
    request: &Parts,
    path: &DavPath,
    targets: &[Target],
) -> Result<Option<Response<ResBody>>, ApiError> {
    let header = if_header(&request.headers)?;
    if let Some(header) = &header {
        // Each resource the header names, looked up once, before the check.
        let mut states: Vec<(Option<&str>, ResourceState)> = Vec::new();
        for list in &header.lists {
            let named = list.resource.as_deref();
            if states.iter().any(|(known, _)| *known == named) {
                continue;
            }
            let state = match named {
                None => state_of(node, path).await,
                Some(url) => {
                    let tagged =
                        url.parse::<http::Uri>().ok().and_then(|u| path::parse(u.path()).ok());
                    match tagged {
                        Some(tagged) => state_of(node, &tagged).await,
                        None => ResourceState::default(),
                    }
                }
            };
            states.push((named, state));
        }
        let holds = header.holds(|tagged| {
            states
                .iter()
                .find(|(named, _)| *named == tagged)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        });
        if !holds {
            return Err(ApiError::new(
                ErrorKind::PreconditionFailed,
                "the If header does not hold",
            ));
        }
    }
    let submitted: Vec<&str> = header.iter().flat_map(IfHeader::tokens).collect();
    for target in targets {
        for lock in locks::table().affecting(&target.domain, &target.path, target.tree) {
            if !submitted.contains(&lock.token.as_str()) {
                return Ok(Some(dav_error(StatusCode::LOCKED, "lock-token-submitted")));
            }
        }
    }
    Ok(None)
}

async fn get(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    kind: ReadKind,
) -> Result<Response<ResBody>, ApiError> {
    match resolve(&shard.node, &path).await?.ok_or_else(|| not_found(&path))? {
        Resource::File { key, .. } => {
            let target = KeyRef { domain: path.domain, key };
            key::get(shard, &target, &request.headers, kind, key::TagStyle::Sha256).await
        }
        Resource::Collection { prefix, .. } => {
            let builder =
                Response::builder().header(header::CONTENT_TYPE, "text/html; charset=utf-8");
            if matches!(kind, ReadKind::Head) {
                return Ok(builder.body(ResBody::empty()).expect("valid headers"));
            }
            let page = html_listing(&shard.node, &path.domain, &prefix).await?;
            Ok(builder.body(ResBody::bytes(page)).expect("valid headers"))
        }
    }
}

/// A plain page of a collection's first members, for browsers.
async fn html_listing(node: &Arc<Node>, domain: &str, prefix: &str) -> Result<String, ApiError> {
    let mut members = resource::Members::of(node, domain, prefix);
    let title = xml::esc(&resource::collection_or_key_href(domain, prefix)).into_owned();
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><title>{title}</title></head><body><h1>{title}</h1><ul>\n"
    );
    let mut listed = 0;
    while let Some(member) = members.next_member().await? {
        if listed == HTML_LIST_MAX {
            out.push_str("<li>… (more: use PROPFIND)</li>\n");
            break;
        }
        let name = member.display_name();
        let slash = if member.is_collection() { "/" } else { "" };
        out.push_str(&format!(
            "<li><a href=\"{}\">{}{slash}</a></li>\n",
            xml::esc(&member.href(domain)),
            xml::esc(name)
        ));
        listed += 1;
    }
    out.push_str("</ul></body></html>\n");
    Ok(out)
}

async fn put(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let node = &shard.node;
    if path.trailing_slash || is_collection(node, &path.domain, &path.prefix()).await? {
        return Err(ApiError::new(ErrorKind::MethodNotAllowed, "a collection cannot be PUT"));
    }
    if !is_collection(node, &path.domain, &path.parent_prefix()).await? {
        return Err(no_parent());
    }
    let existed = matches!(resolve(node, &path).await?, Some(Resource::File { .. }));
    let mut targets = vec![Target::new(&path.domain, &path.name, false)];
    if !existed {
        targets.extend(Target::parent(&path.domain, &path.name));
    }
    if let Some(refused) = preconditions(&shard.node, request, &path, &targets).await? {
        return Ok(refused);
    }
    let target = KeyRef { domain: path.domain, key: path.name };
    let stored = key::put(shard, target, None, &request.headers, body, false).await?;
    let status = if existed { StatusCode::NO_CONTENT } else { StatusCode::CREATED };
    Ok(Response::builder()
        .status(status)
        .header(header::ETAG, key::etag(&stored.sha256))
        .body(ResBody::empty())?)
}

async fn delete(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
) -> Result<Response<ResBody>, ApiError> {
    let resource = resolve(&shard.node, &path).await?.ok_or_else(|| not_found(&path))?;
    let domain = path.domain.clone();
    let mut targets = vec![Target::new(&domain, resource.path(), resource.is_collection())];
    targets.extend(Target::parent(&domain, resource.path()));
    if let Some(refused) = preconditions(&shard.node, request, &path, &targets).await? {
        return Ok(refused);
    }
    remove(shard, &domain, &resource).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(ResBody::empty()).expect("valid"))
}

/// Deletes a file or a whole collection, and the locks on it.
async fn remove(shard: &Rc<Shard>, domain: &str, resource: &Resource) -> Result<(), ApiError> {
    match resource {
        Resource::File { key, .. } => {
            let target = KeyRef { domain: domain.to_string(), key: key.clone() };
            key::delete(shard, target).await?;
        }
        Resource::Collection { prefix, .. } => {
            let (task_shard, domain_owned, prefix) =
                (shard.clone(), domain.to_string(), prefix.clone());
            // Detached: a client that goes away must not stop it half way.
            glommio::spawn_local(async move {
                resource::delete_tree(&task_shard, &domain_owned, &prefix).await
            })
            .detach()
            .await
            .ok_or_else(|| ApiError::from(std::io::Error::other("delete task was cancelled")))??;
        }
    }
    locks::table().forget(domain, resource.path());
    Ok(())
}

async fn mkcol(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    if !read_body(shard, body, &request.headers).await?.is_empty() {
        return Err(ApiError::new(ErrorKind::UnsupportedBody, "MKCOL takes no body"));
    }
    let node = &shard.node;
    // A file of the folder's name counts, whether the URL ends in `/` or not.
    let as_file = DavPath { trailing_slash: false, ..path.clone() };
    let exists = path.is_root() || resolve(node, &as_file).await?.is_some();
    if exists {
        return Err(ApiError::new(ErrorKind::Exists, "something already exists at this path"));
    }
    if !is_collection(node, &path.domain, &path.parent_prefix()).await? {
        return Err(no_parent());
    }
    let prefix = path.prefix();
    let mut targets = vec![Target::new(&path.domain, &prefix, false)];
    targets.extend(Target::parent(&path.domain, &prefix));
    if let Some(refused) = preconditions(&shard.node, request, &path, &targets).await? {
        return Ok(refused);
    }
    if !node.control.is_alone() {
        mark_collection(shard, &path.domain, &prefix).await?;
    } else if !shard.collection(path.domain.clone(), prefix, CollectionOp::Make).await? {
        return Err(ApiError::new(ErrorKind::Exists, "something already exists at this path"));
    }
    Ok(Response::builder().status(StatusCode::CREATED).body(ResBody::empty()).expect("valid"))
}

/// In a cluster an empty folder is an empty key named like it (`a/b/`),
/// not a record of this node: it is copied, listed and deleted like any
/// key, so every node sees the folder and it outlives the node that made
/// it.
pub(super) async fn mark_collection(
    shard: &Rc<Shard>,
    domain: &str,
    prefix: &str,
) -> Result<(), ApiError> {
    put_empty(shard, domain, prefix).await
}

/// A PROPFIND's Depth; none means infinity (RFC 4918 §9.1).
enum Depth {
    Zero,
    One,
    Infinity,
}

fn depth(headers: &HeaderMap) -> Result<Depth, ApiError> {
    match headers.get("depth").map(|v| v.as_bytes()) {
        Some(b"0") => Ok(Depth::Zero),
        Some(b"1") => Ok(Depth::One),
        None => Ok(Depth::Infinity),
        Some(value) if value.eq_ignore_ascii_case(b"infinity") => Ok(Depth::Infinity),
        Some(_) => Err(ApiError::new(ErrorKind::BadDepth, "Depth must be 0, 1 or infinity")),
    }
}

async fn propfind(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let with_members = match depth(&request.headers)? {
        Depth::Zero => false,
        Depth::One => true,
        Depth::Infinity => return Ok(propfind::depth_refused()),
    };
    let asked = xml::propfind(&read_body(shard, body, &request.headers).await?).map_err(bad_xml)?;
    let resource = resolve(&shard.node, &path).await?.ok_or_else(|| not_found(&path))?;
    propfind::answer(shard.node.clone(), path.domain, resource, asked, with_members).await
}

async fn proppatch(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let ops = xml::proppatch(&read_body(shard, body, &request.headers).await?).map_err(bad_xml)?;
    let resource = resolve(&shard.node, &path).await?.ok_or_else(|| not_found(&path))?;
    if resource.path().is_empty() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "a domain's root has no properties of its own",
        ));
    }
    let targets = [Target::new(&path.domain, resource.path(), false)];
    if let Some(refused) = preconditions(&shard.node, request, &path, &targets).await? {
        return Ok(refused);
    }
    let names: Vec<PropName> = ops
        .iter()
        .map(|op| match op {
            PatchOp::Set { name, .. } | PatchOp::Remove(name) => name.clone(),
        })
        .collect();
    if names
        .iter()
        .any(|n| n.namespace.len() > PROP_NAME_LEN_MAX || n.name.len() > PROP_NAME_LEN_MAX)
    {
        return Err(ApiError::new(ErrorKind::BadName, "property names are limited to 1024 bytes"));
    }
    let domain = path.domain;
    let href = resource.href(&domain);
    // Protected properties fail the whole request (it is atomic): 403 for
    // them, 424 for the others.
    if names.iter().any(propfind::is_protected) {
        let (refused, dependent): (Vec<_>, Vec<_>) =
            names.into_iter().partition(propfind::is_protected);
        return Ok(patch_answer(
            &href,
            &[(StatusCode::FORBIDDEN, refused), (StatusCode::FAILED_DEPENDENCY, dependent)],
        ));
    }
    let ops = ops
        .into_iter()
        .map(|op| match op {
            PatchOp::Set { name, value } => {
                PropOp::Set(DeadProp { namespace: name.namespace, name: name.name, value })
            }
            PatchOp::Remove(name) => PropOp::Remove { namespace: name.namespace, name: name.name },
        })
        .collect();
    match cairn_node::props::patch_anywhere(shard, &domain, resource.path(), ops).await {
        Ok(()) => Ok(patch_answer(&href, &[(StatusCode::OK, names)])),
        Err(NodeError::Full(_)) => {
            Ok(patch_answer(&href, &[(StatusCode::INSUFFICIENT_STORAGE, names)]))
        }
        Err(NodeError::NotFound) => Err(ApiError::not_found(format!("nothing at {href}"))),
        Err(error) => Err(error.into()),
    }
}

fn patch_answer(href: &str, groups: &[(StatusCode, Vec<PropName>)]) -> Response<ResBody> {
    let mut out = String::from(multistatus::MULTISTATUS_OPEN);
    out.push_str("<D:response>");
    multistatus::href(&mut out, href);
    for (status, names) in groups {
        let props: Vec<_> =
            names.iter().map(|n| (n.namespace.clone(), n.name.clone(), None)).collect();
        propstat(&mut out, *status, &props);
    }
    out.push_str("</D:response>");
    out.push_str(MULTISTATUS_CLOSE);
    xml_response(StatusCode::MULTI_STATUS, out)
}

fn lock_answer(status: StatusCode, lock: &ActiveLock) -> Response<ResBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>{}</D:lockdiscovery></D:prop>\n",
        lock_discovery(std::slice::from_ref(lock))
    );
    let mut answer = xml_response(status, body);
    let token = format!("<{}>", lock.token).parse().expect("tokens are ASCII");
    answer.headers_mut().insert("lock-token", token);
    answer
}

async fn lock(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let node = &shard.node;
    let timeout = locks::timeout(request.headers.get("timeout").and_then(|v| v.to_str().ok()));
    let body = read_body(shard, body, &request.headers).await?;
    let resource = resolve(node, &path).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        // A refresh: the lock is named by the If header.
        let lock_path = resource.as_ref().map_or(path.name.clone(), |r| r.path().to_string());
        let header = if_header(&request.headers)?.ok_or_else(|| {
            ApiError::new(ErrorKind::BadLock, "a LOCK without a body refreshes the lock in If")
        })?;
        let applying = locks::table().affecting(&path.domain, &lock_path, false);
        let token = header.tokens().find(|t| applying.iter().any(|l| l.token == *t));
        let refreshed = token.and_then(|token| locks::table().refresh(token, timeout));
        return match refreshed {
            Some(lock) => Ok(lock_answer(StatusCode::OK, &lock)),
            None => Err(ApiError::new(
                ErrorKind::PreconditionFailed,
                "no lock named in If applies to this resource",
            )),
        };
    }
    let info = xml::lockinfo(&body).map_err(bad_xml)?;
    let infinite = match request.headers.get("depth").map(|v| v.as_bytes()) {
        None => true,
        Some(b"0") => false,
        Some(value) if value.eq_ignore_ascii_case(b"infinity") => true,
        Some(_) => return Err(ApiError::new(ErrorKind::BadDepth, "LOCK Depth is 0 or infinity")),
    };
    let (lock_path, root_href, created) = match &resource {
        Some(resource) => (resource.path().to_string(), resource.href(&path.domain), false),
        None => {
            if path.trailing_slash || path.is_root() {
                return Err(not_found(&path));
            }
            if !is_collection(node, &path.domain, &path.parent_prefix()).await? {
                return Err(no_parent());
            }
            (path.name.clone(), path::href(&path.domain, &path.name), true)
        }
    };
    let wanted = ActiveLock {
        token: locks::new_token(),
        domain: path.domain.clone(),
        infinite: infinite && (lock_path.is_empty() || lock_path.ends_with('/')),
        path: lock_path,
        exclusive: info.exclusive,
        owner: info.owner,
        root_href,
        timeout,
        expires: std::time::Instant::now() + timeout,
    };
    let taken = match locks::table().lock(wanted) {
        Ok(lock) => lock,
        Err(LockRefused::Conflict) => {
            return Ok(dav_error(StatusCode::LOCKED, "no-conflicting-lock"));
        }
        Err(LockRefused::Full) => {
            return Err(ApiError::new(ErrorKind::Busy, "this node holds too many locks"));
        }
    };
    if created {
        // RFC 4918 §7.3: locking an unmapped URL makes an empty resource.
        if let Err(error) = put_empty(shard, &path.domain, &path.name).await {
            locks::table().unlock(&taken.token);
            return Err(error);
        }
        return Ok(lock_answer(StatusCode::CREATED, &taken));
    }
    Ok(lock_answer(StatusCode::OK, &taken))
}

/// Stores an empty file, as a PUT of no bytes would.
async fn put_empty(shard: &Rc<Shard>, domain: &str, key: &str) -> Result<(), ApiError> {
    let request = PutRequest {
        target: KeyRef { domain: domain.to_string(), key: key.to_string() },
        class: None,
        content_type: String::new(),
        headers: String::new(),
        md5_etag: false,
        expected_sha256: None,
        declared_bytes: Some(0),
    };
    key::store_version(shard, request, &mut cairn_node::upload::InMemory::default()).await?;
    Ok(())
}

fn unlock(
    shard: &Rc<Shard>,
    request: &Parts,
    path: DavPath,
) -> Result<Response<ResBody>, ApiError> {
    let node = &shard.node;
    let token = request
        .headers
        .get("lock-token")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_start_matches('<').trim_end_matches('>').to_string())
        .ok_or_else(|| ApiError::new(ErrorKind::BadLockToken, "UNLOCK needs a Lock-Token"))?;
    let resource = resolve_local(&node.meta, &path)?;
    let lock_path = resource.as_ref().map_or(path.name.clone(), |r| r.path().to_string());
    match locks::table().get(&token) {
        Some(lock) if lock.covers(&path.domain, &lock_path) => {
            locks::table().unlock(&token);
            Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(ResBody::empty())
                .expect("valid"))
        }
        _ => Ok(dav_error(StatusCode::CONFLICT, "lock-token-matches-request-uri")),
    }
}
