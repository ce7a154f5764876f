//! Reads WebDAV request bodies into a small element tree with quick-xml,
//! refusing what a WebDAV body never needs and an attacker likes: any
//! DOCTYPE (so no DTD, no entity definitions, no external entities), entity
//! references other than XML's five, bodies over a size bound and trees
//! over a depth bound. Names are resolved to (namespace, local name).

use std::borrow::Cow;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::NsReader;

pub const DAV_NS: &str = "DAV:";
/// Elements nested deeper than this are refused.
const DEPTH_MAX: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("DOCTYPE declarations are not accepted")]
    DocType,
    #[error("undefined entity &{0};")]
    Entity(String),
    #[error("XML is nested more than {DEPTH_MAX} levels")]
    TooDeep,
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unexpected(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub namespace: String,
    pub name: String,
    /// Attributes without a namespace (and `xml:*` ones, by their full name).
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, namespace: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(namespace, name))
    }

    /// The content written back as XML in which every element declares its
    /// own namespace, so it stays well-formed inside any other document.
    pub fn inner_xml(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            write_node(&mut out, node);
        }
        out
    }
}

fn write_node(out: &mut String, node: &Node) {
    match node {
        Node::Text(text) => out.push_str(&escape(text.as_str())),
        Node::Element(element) => {
            out.push('<');
            out.push_str(&element.name);
            out.push_str(" xmlns=\"");
            out.push_str(&escape(element.namespace.as_str()));
            out.push('"');
            for (name, value) in &element.attributes {
                out.push(' ');
                out.push_str(name);
                out.push_str("=\"");
                out.push_str(&escape(value.as_str()));
                out.push('"');
            }
            if element.children.is_empty() {
                out.push_str("/>");
            } else {
                out.push('>');
                for child in &element.children {
                    write_node(out, child);
                }
                out.push_str("</");
                out.push_str(&element.name);
                out.push('>');
            }
        }
    }
}

/// Parses a whole body; answers its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("body is not UTF-8"))?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(malformed)?;
        let namespace = namespace_of(resolved)?;
        match event {
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(malformed("content after the root element"));
            }
            Event::Start(start) => {
                if stack.len() >= DEPTH_MAX {
                    return Err(XmlError::TooDeep);
                }
                stack.push(element(&reader, namespace, &start)?);
            }
            Event::Empty(start) => {
                let element = element(&reader, namespace, &start)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let text = text.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(data) => {
                let text = data.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(reference) => {
                let character = match reference.resolve_char_ref().map_err(malformed)? {
                    Some(character) => character,
                    None => {
                        let name = reference.decode().map_err(malformed)?;
                        match &*name {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => return Err(XmlError::Entity(other.to_string())),
                        }
                    }
                };
                push_text(&mut stack, character.encode_utf8(&mut [0; 4]))?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn malformed(error: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(error.to_string())
}

fn namespace_of(resolved: ResolveResult<'_>) -> Result<String, XmlError> {
    match resolved {
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Bound(namespace) => {
            String::from_utf8(namespace.0.to_vec()).map_err(|_| malformed("namespace is not UTF-8"))
        }
        ResolveResult::Unknown(prefix) => Err(malformed(format!(
            "undeclared namespace prefix {:?}",
            String::from_utf8_lossy(&prefix)
        ))),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    namespace: String,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let name = std::str::from_utf8(start.local_name().as_ref())
        .map_err(|_| malformed("element name is not UTF-8"))?
        .to_string();
    // `xmlns:p=""` may not undeclare a prefix (Namespaces in XML 1.0).
    if start.name().prefix().is_some() && namespace.is_empty() {
        return Err(malformed("a prefixed name in no namespace"));
    }
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(malformed)?;
        let key = attribute.key;
        match key.as_namespace_binding() {
            Some(PrefixDeclaration::Named(_)) if attribute.value.is_empty() => {
                return Err(malformed("a namespace prefix bound to no namespace"));
            }
            Some(_) => continue,
            None => {}
        }
        let value = attribute.unescape_value().map_err(malformed)?;
        let key_text =
            std::str::from_utf8(key.as_ref()).map_err(|_| malformed("attribute name"))?;
        let (resolved, _) = reader.resolve_attribute(key);
        match resolved {
            ResolveResult::Unbound => attributes.push((key_text.to_string(), value.into_owned())),
            ResolveResult::Bound(_) if key_text.starts_with("xml:") => {
                attributes.push((key_text.to_string(), value.into_owned()))
            }
            ResolveResult::Bound(_) => {}
            ResolveResult::Unknown(_) => return Err(malformed("undeclared attribute prefix")),
        }
    }
    Ok(Element { namespace, name, attributes, children: Vec::new() })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(last)) = parent.children.last_mut() {
                last.push_str(text);
            } else {
                parent.children.push(Node::Text(text.to_string()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

/// A property's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PropName {
    pub namespace: String,
    pub name: String,
}

/// What a PROPFIND asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Propfind {
    AllProp,
    PropName,
    Prop(Vec<PropName>),
}

pub fn propfind(body: &[u8]) -> Result<Propfind, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Propfind::AllProp);
    }
    let root = parse(body)?;
    if !root.is(DAV_NS, "propfind") {
        return Err(XmlError::Unexpected("the root element must be DAV:propfind"));
    }
    for element in root.elements() {
        if element.is(DAV_NS, "allprop") {
            return Ok(Propfind::AllProp);
        }
        if element.is(DAV_NS, "propname") {
            return Ok(Propfind::PropName);
        }
        if element.is(DAV_NS, "prop") {
            return Ok(Propfind::Prop(names(element)));
        }
    }
    Err(XmlError::Unexpected("DAV:propfind needs allprop, propname or prop"))
}

fn names(prop: &Element) -> Vec<PropName> {
    prop.elements()
        .map(|e| PropName { namespace: e.namespace.clone(), name: e.name.clone() })
        .collect()
}

/// One instruction of a PROPPATCH, in document order.
#[derive(Debug, PartialEq, Eq)]
pub enum PatchOp {
    Set { name: PropName, value: String },
    Remove(PropName),
}

pub fn proppatch(body: &[u8]) -> Result<Vec<PatchOp>, XmlError> {
    let root = parse(body)?;
    if !root.is(DAV_NS, "propertyupdate") {
        return Err(XmlError::Unexpected("the root element must be DAV:propertyupdate"));
    }
    let mut ops = Vec::new();
    for action in root.elements() {
        let set = action.is(DAV_NS, "set");
        if !set && !action.is(DAV_NS, "remove") {
            continue;
        }
        for prop in action.elements().filter(|e| e.is(DAV_NS, "prop")) {
            for element in prop.elements() {
                let name =
                    PropName { namespace: element.namespace.clone(), name: element.name.clone() };
                ops.push(if set {
                    PatchOp::Set { name, value: element.inner_xml() }
                } else {
                    PatchOp::Remove(name)
                });
            }
        }
    }
    if ops.is_empty() {
        return Err(XmlError::Unexpected("DAV:propertyupdate names no property"));
    }
    Ok(ops)
}

/// A LOCK request's body.
#[derive(Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub exclusive: bool,
    /// The owner element's content, written back in lockdiscovery.
    pub owner: String,
}

pub fn lockinfo(body: &[u8]) -> Result<LockInfo, XmlError> {
    let root = parse(body)?;
    if !root.is(DAV_NS, "lockinfo") {
        return Err(XmlError::Unexpected("the root element must be DAV:lockinfo"));
    }
    let scope = root
        .child(DAV_NS, "lockscope")
        .ok_or(XmlError::Unexpected("DAV:lockinfo needs a lockscope"))?;
    let exclusive = if scope.child(DAV_NS, "exclusive").is_some() {
        true
    } else if scope.child(DAV_NS, "shared").is_some() {
        false
    } else {
        return Err(XmlError::Unexpected("lockscope must be exclusive or shared"));
    };
    let kind = root
        .child(DAV_NS, "locktype")
        .ok_or(XmlError::Unexpected("DAV:lockinfo needs a locktype"))?;
    if kind.child(DAV_NS, "write").is_none() {
        return Err(XmlError::Unexpected("only write locks exist"));
    }
    let owner = root.child(DAV_NS, "owner").map(Element::inner_xml).unwrap_or_default();
    Ok(LockInfo { exclusive, owner })
}

/// Text escaped for XML content or attribute values.
pub fn esc(text: &str) -> Cow<'_, str> {
    escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies() {
        assert_eq!(propfind(b"").unwrap(), Propfind::AllProp);
        assert_eq!(
            propfind(b"<?xml version='1.0'?><D:propfind xmlns:D='DAV:'><D:propname/></D:propfind>")
                .unwrap(),
            Propfind::PropName
        );
        let asked = propfind(
            b"<propfind xmlns='DAV:'><prop><getetag/><x:a xmlns:x='urn:x'/><b xmlns=''/></prop></propfind>",
        )
        .unwrap();
        let name = |namespace: &str, name: &str| PropName {
            namespace: namespace.into(),
            name: name.into(),
        };
        assert_eq!(
            asked,
            Propfind::Prop(vec![name("DAV:", "getetag"), name("urn:x", "a"), name("", "b")])
        );
    }

    #[test]
    fn hostile_bodies_are_refused() {
        let xxe =
            br#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
            <D:propfind xmlns:D="DAV:"><D:prop><D:x>&xxe;</D:x></D:prop></D:propfind>"#;
        assert_eq!(parse(xxe), Err(XmlError::DocType));
        let laughs = br#"<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>"#;
        assert_eq!(parse(laughs), Err(XmlError::DocType));
        assert_eq!(parse(b"<a>&ent;</a>"), Err(XmlError::Entity("ent".into())));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert!(parse(b"<x:a/>").is_err());
        assert!(parse(b"<a xmlns:b=''><b:c/></a>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        assert!(propfind(b"<propfind xmlns='urn:not-dav'><allprop/></propfind>").is_err());
    }

    #[test]
    fn values_are_written_back_self_contained() {
        let body = br#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>
            <Z:author><Z:name lang="en">A &amp; B &#x10000;</Z:name><foo xmlns='bar'/></Z:author>
            </D:prop></D:set><D:remove><D:prop><Z:old/></D:prop></D:remove></D:propertyupdate>"#;
        let ops = proppatch(body).unwrap();
        let author = PropName { namespace: "urn:z".into(), name: "author".into() };
        assert_eq!(
            ops[0],
            PatchOp::Set {
                name: author,
                value: "<name xmlns=\"urn:z\" lang=\"en\">A &amp; B \u{10000}</name><foo xmlns=\"bar\"/>"
                    .into()
            }
        );
        assert_eq!(
            ops[1],
            PatchOp::Remove(PropName { namespace: "urn:z".into(), name: "old".into() })
        );
    }

    #[test]
    fn lock_bodies() {
        let body = br#"<D:lockinfo xmlns:D='DAV:'><D:lockscope><D:shared/></D:lockscope>
            <D:locktype><D:write/></D:locktype><D:owner><D:href>me</D:href></D:owner></D:lockinfo>"#;
        let info = lockinfo(body).unwrap();
        assert!(!info.exclusive);
        assert_eq!(info.owner, "<href xmlns=\"DAV:\">me</href>");
    }

    proptest::proptest! {
        /// Arbitrary bytes never panic the parser, and whatever parses
        /// writes back as XML that parses to the same tree.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&body);
            let _ = propfind(&body);
            let _ = proppatch(&body);
            let _ = lockinfo(&body);
        }

        #[test]
        fn values_round_trip(text in "[a-z<>&'\"\\PC]{0,30}", name in "[a-z]{1,8}") {
            let body = format!(
                "<r xmlns='urn:r'><{name} xmlns='urn:n' a=\"{}\">{}</{name}></r>",
                esc(&text), esc(&text)
            );
            let tree = parse(body.as_bytes()).unwrap();
            let rewritten = format!("<r xmlns=\"urn:r\">{}</r>", tree.inner_xml());
            proptest::prop_assert_eq!(parse(rewritten.as_bytes()).unwrap(), tree);
        }
    }
}
