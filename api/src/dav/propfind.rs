//! PROPFIND: live properties computed from the key record (or collection
//! record), dead properties from their record, for one resource (Depth 0)
//! or a collection and its members (Depth 1, streamed a page at a time so
//! a large collection never sits in memory whole). Depth infinity is
//! refused (RFC 4918 §9.1, `propfind-finite-depth`).

use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use cairn_engine::PropsRecord;
use http::{Response, StatusCode};

use super::domains::DomainPages;
use super::locks;
use super::locks::LockTable;
use super::multistatus::{
    dav_error, href, lock_discovery, propstat, supported_lock, MULTISTATUS_CLOSE, MULTISTATUS_OPEN,
    XML_CONTENT_TYPE,
};
use super::path::PREFIX;
use super::resource::{Members, Resource, PAGE_LEN};
use super::xml::{esc, PropName, Propfind, DAV_NS};
use crate::http::dates::{rfc1123, rfc3339};
use crate::http::{ApiError, ResBody};
use cairn_node::{Node, NodeError};

/// Live properties, in the order allprop and propname list them.
pub const LIVE: [&str; 9] = [
    "resourcetype",
    "displayname",
    "getcontentlength",
    "getcontenttype",
    "getetag",
    "getlastmodified",
    "creationdate",
    "supportedlock",
    "lockdiscovery",
];

/// Live properties a client may set: stored as dead ones, they override.
pub const SETTABLE_LIVE: [&str; 1] = ["displayname"];

pub fn is_protected(name: &PropName) -> bool {
    name.namespace == DAV_NS
        && LIVE.contains(&name.name.as_str())
        && !SETTABLE_LIVE.contains(&name.name.as_str())
}

/// The XML content of a live property, or `None` when this resource has none.
fn live_value(
    resource: &Resource,
    name: &str,
    domain: &str,
    props: &PropsRecord,
    locks: &LockTable,
) -> Option<String> {
    let made = match resource {
        Resource::File { record, .. } => Some(record.version.hlc),
        Resource::Collection { marker, .. } => marker.as_ref().map(|m| m.created.hlc),
    };
    match name {
        "resourcetype" => Some(match resource {
            Resource::File { .. } => String::new(),
            Resource::Collection { .. } => "<D:collection/>".to_string(),
        }),
        "displayname" => match props.find(DAV_NS, "displayname") {
            Some(dead) => Some(dead.value.clone()),
            None if resource.path().is_empty() => Some(esc(domain).into_owned()),
            None => Some(esc(resource.display_name()).into_owned()),
        },
        "getcontentlength" => match resource {
            Resource::File { record, .. } => Some(record.size_bytes.to_string()),
            Resource::Collection { .. } => None,
        },
        "getcontenttype" => match resource {
            Resource::File { record, .. } if !record.content_type.is_empty() => {
                Some(esc(&record.content_type).into_owned())
            }
            Resource::File { .. } => Some("application/octet-stream".to_string()),
            Resource::Collection { .. } => None,
        },
        "getetag" => resource.etag().map(|tag| esc(&tag).into_owned()),
        "getlastmodified" => made.map(rfc1123),
        "creationdate" => made.map(rfc3339),
        "supportedlock" => Some(supported_lock()),
        "lockdiscovery" => Some(lock_discovery(&locks.affecting(domain, resource.path(), false))),
        _ => None,
    }
}

/// One `D:response` element for a resource of `domain`.
pub fn response(
    out: &mut String,
    domain: &str,
    resource: &Resource,
    props: &PropsRecord,
    asked: &Propfind,
    locks: &LockTable,
) {
    out.push_str("<D:response>");
    // A domain's root is `/dav/{domain}/`; `/dav/` itself has no domain.
    href(out, &if domain.is_empty() { PREFIX.to_string() } else { resource.href(domain) });
    let dav = |name: &str| (DAV_NS.to_string(), name.to_string());
    let dead_names = props
        .props
        .iter()
        .filter(|p| !(p.namespace == DAV_NS && LIVE.contains(&p.name.as_str())))
        .map(|p| (p.namespace.clone(), p.name.clone()));
    let mut found = Vec::new();
    let mut missing = Vec::new();
    match asked {
        Propfind::PropName => {
            for name in LIVE {
                if live_value(resource, name, domain, props, locks).is_some() {
                    found.push((DAV_NS.to_string(), name.to_string(), None));
                }
            }
            found.extend(dead_names.map(|(namespace, name)| (namespace, name, None)));
        }
        Propfind::AllProp => {
            for name in LIVE {
                if let Some(value) = live_value(resource, name, domain, props, locks) {
                    let (namespace, name) = dav(name);
                    found.push((namespace, name, Some(value)));
                }
            }
            for (namespace, name) in dead_names {
                let value = props.find(&namespace, &name).map(|p| p.value.clone());
                found.push((namespace, name, value));
            }
        }
        Propfind::Prop(names) => {
            for asked in names {
                let live = (asked.namespace == DAV_NS)
                    .then(|| live_value(resource, &asked.name, domain, props, locks))
                    .flatten();
                let value = live
                    .or_else(|| props.find(&asked.namespace, &asked.name).map(|p| p.value.clone()));
                let entry = (asked.namespace.clone(), asked.name.clone());
                match value {
                    Some(value) => found.push((entry.0, entry.1, Some(value))),
                    None => missing.push((entry.0, entry.1, None)),
                }
            }
        }
    }
    propstat(out, StatusCode::OK, &found);
    propstat(out, StatusCode::NOT_FOUND, &missing);
    out.push_str("</D:response>");
}

pub fn depth_refused() -> Response<ResBody> {
    dav_error(StatusCode::FORBIDDEN, "propfind-finite-depth")
}

/// Where the members of a Depth 1 answer come from.
pub enum MemberSource {
    /// The domains, as members of `/dav/`.
    Domains(DomainPages),
    /// A collection's members in `domain`.
    Collection { domain: String, members: Members },
}

impl MemberSource {
    /// The next member: its domain and what it is.
    async fn next(&mut self) -> Result<Option<(String, Resource)>, NodeError> {
        match self {
            MemberSource::Domains(pages) => Ok(pages.next()?),
            MemberSource::Collection { domain, members } => {
                Ok(members.next_member().await?.map(|member| (domain.clone(), member)))
            }
        }
    }
}

/// Whether answering `asked` needs the resources' dead properties.
fn needs_dead(asked: &Propfind) -> bool {
    match asked {
        Propfind::Prop(names) => names.iter().any(|name| !is_protected(name)),
        Propfind::AllProp | Propfind::PropName => true,
    }
}

/// The dead properties of a resource of `domain` that `asked` needs:
/// this node's, or a holder's for a key held elsewhere.
async fn dead_props(
    node: &Node,
    domain: &str,
    resource: &Resource,
    asked: &Propfind,
) -> Result<PropsRecord, NodeError> {
    if domain.is_empty() || !needs_dead(asked) {
        return Ok(PropsRecord::default());
    }
    if resource.path().is_empty() {
        return Ok(node.meta.props(domain, "")?);
    }
    cairn_node::props::props_of(node, domain, resource.path()).await
}

/// The 207 answer: the resource itself, then (Depth 1) its members a page
/// per body chunk.
pub async fn answer(
    node: Arc<Node>,
    domain: String,
    resource: Resource,
    asked: Propfind,
    with_members: bool,
) -> Result<Response<ResBody>, ApiError> {
    let members = match &resource {
        Resource::Collection { prefix, .. } if with_members => {
            let members = Members::of(&node, &domain, prefix);
            Some(MemberSource::Collection { domain: domain.clone(), members })
        }
        _ => None,
    };
    let props = dead_props(&node, &domain, &resource, &asked).await?;
    multistatus(node, &domain, &resource, props, asked, members)
}

/// A 207 of one resource (of `domain`; none for `/dav/` itself) and the
/// members `next` yields, streamed a page per chunk.
pub fn multistatus(
    node: Arc<Node>,
    domain: &str,
    resource: &Resource,
    props: PropsRecord,
    asked: Propfind,
    members: Option<MemberSource>,
) -> Result<Response<ResBody>, ApiError> {
    let mut first = String::from(MULTISTATUS_OPEN);
    response(&mut first, domain, resource, &props, &asked, locks::table());
    let builder = Response::builder()
        .status(StatusCode::MULTI_STATUS)
        .header(http::header::CONTENT_TYPE, XML_CONTENT_TYPE);
    let Some(next) = members else {
        first.push_str(MULTISTATUS_CLOSE);
        return Ok(builder.body(ResBody::bytes(first)).expect("valid headers"));
    };
    let state = Page { node, asked: Rc::new(asked), next: Some(next) };
    let head = futures_lite::stream::once(Ok(Bytes::from(first)));
    let pages = futures_lite::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((chunk, state))
    });
    use futures_lite::StreamExt;
    Ok(builder.body(ResBody::Chunked(Box::pin(head.chain(pages)))).expect("valid headers"))
}

struct Page {
    node: Arc<Node>,
    asked: Rc<Propfind>,
    /// `None` once the closing tag went out.
    next: Option<MemberSource>,
}
impl Page {
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        let next = self.next.as_mut()?;
        let mut out = String::new();
        for _ in 0..PAGE_LEN {
            let member = match next.next().await {
                Ok(Some((domain, member))) => {
                    match dead_props(&self.node, &domain, &member, &self.asked).await {
                        Ok(props) => Ok(Some((domain, member, props))),
                        Err(error) => Err(error),
                    }
                }
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            };
            match member {
                Ok(Some((domain, member, props))) => {
                    let locks = locks::table();
                    response(&mut out, &domain, &member, &props, &self.asked, locks);
                }
                Ok(None) => {
                    out.push_str(MULTISTATUS_CLOSE);
                    self.next = None;
                    break;
                }
                Err(error) => return Some(Err(std::io::Error::other(error.to_string()))),
            }
        }
        Some(Ok(Bytes::from(out)))
    }
}
