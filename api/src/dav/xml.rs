//! WebDAV's request bodies (PROPFIND, PROPPATCH, LOCK) read from the
//! element tree of `http::xml`, and the XML WebDAV answers with.

use std::borrow::Cow;

use quick_xml::escape::escape;

pub use crate::http::xml::{parse, Element, XmlError};

pub const DAV_NS: &str = "DAV:";

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
