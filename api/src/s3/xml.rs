//! Writing S3's XML answers: elements in the S3 namespace, text escaped.

use quick_xml::escape::escape;

pub const NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

pub struct Xml(String);

impl Xml {
    pub fn document() -> Xml {
        Xml(String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"))
    }

    /// The document's root element, in S3's namespace.
    pub fn root(name: &str) -> Xml {
        let mut xml = Xml::document();
        xml.0.push_str(&format!("<{name} xmlns=\"{NAMESPACE}\">"));
        xml
    }

    pub fn open(&mut self, name: &str) {
        self.0.push_str(&format!("<{name}>"));
    }

    pub fn close(&mut self, name: &str) {
        self.0.push_str(&format!("</{name}>"));
    }

    pub fn text(&mut self, name: &str, text: &str) {
        self.0.push_str(&format!("<{name}>{}</{name}>", escape(text)));
    }

    /// Text content of the element open now.
    pub fn escaped(&mut self, text: &str) {
        self.0.push_str(&escape(text));
    }

    pub fn finish(self) -> String {
        self.0
    }
}
