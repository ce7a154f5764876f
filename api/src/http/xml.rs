//! Reads XML request bodies (WebDAV's, S3's) into a small element tree
//! with quick-xml, refusing what such a body never needs and an attacker
//! likes: any
//! DOCTYPE (so no DTD, no entity definitions, no external entities), entity
//! references other than XML's five, bodies over a size bound and trees
//! over a depth bound. Names are resolved to (namespace, local name).

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::NsReader;

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
