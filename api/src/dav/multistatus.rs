//! Writes WebDAV XML answers: multistatus documents, property elements,
//! lock discovery and `DAV:error` bodies. The `DAV:` namespace is always
//! prefix `D`; other namespaces are declared on the element that uses
//! them, so fragments can be streamed and concatenated freely.

use http::{header, Response, StatusCode};

use super::locks::ActiveLock;
use super::xml::{esc, DAV_NS};
use crate::http::ResBody;

pub const XML_CONTENT_TYPE: &str = "application/xml; charset=utf-8";
pub const MULTISTATUS_OPEN: &str =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">";
pub const MULTISTATUS_CLOSE: &str = "</D:multistatus>\n";

pub fn status_line(status: StatusCode) -> String {
    format!("HTTP/1.1 {} {}", status.as_str(), status.canonical_reason().unwrap_or(""))
}

/// `<D:name>`, `<name>` (no namespace) or `<P:name xmlns:P="ns">`.
pub fn open(out: &mut String, namespace: &str, name: &str) {
    open_tag(out, namespace, name, false);
}

pub fn empty(out: &mut String, namespace: &str, name: &str) {
    open_tag(out, namespace, name, true);
}

fn open_tag(out: &mut String, namespace: &str, name: &str, empty: bool) {
    out.push('<');
    if namespace == DAV_NS {
        out.push_str("D:");
        out.push_str(name);
    } else if namespace.is_empty() {
        out.push_str(name);
    } else {
        out.push_str("P:");
        out.push_str(name);
        out.push_str(" xmlns:P=\"");
        out.push_str(&esc(namespace));
        out.push('"');
    }
    out.push_str(if empty { "/>" } else { ">" });
}

pub fn close(out: &mut String, namespace: &str, name: &str) {
    out.push_str("</");
    if namespace == DAV_NS {
        out.push_str("D:");
    } else if !namespace.is_empty() {
        out.push_str("P:");
    }
    out.push_str(name);
    out.push('>');
}

/// `<D:name>escaped text</D:name>`
pub fn dav_text(out: &mut String, name: &str, text: &str) {
    open(out, DAV_NS, name);
    out.push_str(&esc(text));
    close(out, DAV_NS, name);
}

pub fn href(out: &mut String, href: &str) {
    dav_text(out, "href", href);
}

/// A `D:propstat` of `(namespace, name, Some(xml content) | None for empty)`.
pub fn propstat(out: &mut String, status: StatusCode, props: &[(String, String, Option<String>)]) {
    if props.is_empty() {
        return;
    }
    out.push_str("<D:propstat><D:prop>");
    for (namespace, name, value) in props {
        match value {
            Some(value) if !value.is_empty() => {
                open(out, namespace, name);
                out.push_str(value);
                close(out, namespace, name);
            }
            _ => empty(out, namespace, name),
        }
    }
    out.push_str("</D:prop>");
    dav_text(out, "status", &status_line(status));
    out.push_str("</D:propstat>");
}

pub fn supported_lock() -> String {
    let entry = |scope: &str| {
        format!(
            "<D:lockentry><D:lockscope><D:{scope}/></D:lockscope>\
             <D:locktype><D:write/></D:locktype></D:lockentry>"
        )
    };
    entry("exclusive") + &entry("shared")
}

/// The content of `D:lockdiscovery` for these locks.
pub fn lock_discovery(locks: &[ActiveLock]) -> String {
    let mut out = String::new();
    for lock in locks {
        out.push_str("<D:activelock><D:locktype><D:write/></D:locktype><D:lockscope>");
        out.push_str(if lock.exclusive { "<D:exclusive/>" } else { "<D:shared/>" });
        out.push_str("</D:lockscope>");
        dav_text(&mut out, "depth", if lock.infinite { "infinity" } else { "0" });
        if !lock.owner.is_empty() {
            out.push_str("<D:owner>");
            out.push_str(&lock.owner);
            out.push_str("</D:owner>");
        }
        dav_text(&mut out, "timeout", &format!("Second-{}", lock.timeout.as_secs()));
        out.push_str("<D:locktoken>");
        href(&mut out, &lock.token);
        out.push_str("</D:locktoken><D:lockroot>");
        href(&mut out, &lock.root_href);
        out.push_str("</D:lockroot></D:activelock>");
    }
    out
}

pub fn xml_response(status: StatusCode, body: String) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, XML_CONTENT_TYPE)
        .body(ResBody::bytes(body))
        .expect("valid headers")
}

/// An answer with a `DAV:error` body naming a precondition (RFC 4918 §16).
pub fn dav_error(status: StatusCode, condition: &str) -> Response<ResBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <D:error xmlns:D=\"DAV:\"><D:{condition}/></D:error>\n"
    );
    xml_response(status, body)
}
