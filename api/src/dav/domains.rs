//! `/dav/` itself: a read-only collection whose members are the domains,
//! so that a client pointed at the server finds them. Domains are made by
//! their first write, never through here.

use std::collections::VecDeque;
use std::rc::Rc;

use cairn_engine::{Meta, MetaError};
use http::request::Parts;
use http::{header, Response};

use super::propfind::{self, MemberSource};
use super::resource::{Resource, PAGE_LEN};
use super::{depth, read_body, xml, Depth};
use crate::http::{ApiError, RequestBody, ResBody};
use cairn_node::Shard;

/// Domains a GET of `/dav/` lists (PROPFIND lists them all).
const HTML_LIST_MAX: usize = 1000;

pub async fn handle(
    shard: &Rc<Shard>,
    request: &Parts,
    body: &mut RequestBody,
) -> Result<Response<ResBody>, ApiError> {
    let root = Resource::Collection { prefix: String::new(), marker: None };
    match request.method.as_str() {
        "PROPFIND" => {
            let with_members = match depth(&request.headers)? {
                Depth::Zero => false,
                Depth::One => true,
                Depth::Infinity => return Ok(propfind::depth_refused()),
            };
            let asked = xml::propfind(&read_body(shard, body, &request.headers).await?)
                .map_err(super::bad_xml)?;
            let members = with_members
                .then(|| MemberSource::Domains(DomainPages::new(shard.node.meta.clone())));
            let none = cairn_engine::PropsRecord::default();
            propfind::multistatus(shard.node.clone(), "", &root, none, asked, members)
        }
        "GET" | "HEAD" => {
            let mut page = String::from(
                "<!DOCTYPE html>\n<html><head><title>/dav/</title></head><body><h1>/dav/</h1><ul>\n",
            );
            let listed = shard.node.meta.list_domains("", HTML_LIST_MAX + 1)?;
            for (i, domain) in listed.iter().enumerate() {
                if i == HTML_LIST_MAX {
                    page.push_str("<li>… (more: use PROPFIND)</li>\n");
                    break;
                }
                page.push_str(&format!("<li><a href=\"/dav/{domain}/\">{domain}/</a></li>\n"));
            }
            page.push_str("</ul></body></html>\n");
            let builder =
                Response::builder().header(header::CONTENT_TYPE, "text/html; charset=utf-8");
            let body = if request.method == http::Method::HEAD {
                ResBody::empty()
            } else {
                ResBody::bytes(page)
            };
            Ok(builder.body(body).expect("valid headers"))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Every domain as a member of `/dav/`, a page of names at a time.
pub struct DomainPages {
    meta: Meta,
    ready: VecDeque<String>,
    after: String,
    done: bool,
}

impl DomainPages {
    fn new(meta: Meta) -> DomainPages {
        DomainPages { meta, ready: VecDeque::new(), after: String::new(), done: false }
    }

    pub fn next(&mut self) -> Result<Option<(String, Resource)>, MetaError> {
        if self.ready.is_empty() && !self.done {
            let page = self.meta.list_domains(&self.after, PAGE_LEN)?;
            self.done = page.len() < PAGE_LEN;
            if let Some(last) = page.last() {
                self.after = last.clone();
            }
            self.ready.extend(page);
        }
        Ok(self
            .ready
            .pop_front()
            .map(|domain| (domain, Resource::Collection { prefix: String::new(), marker: None })))
    }
}
