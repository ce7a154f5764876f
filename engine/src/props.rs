//! Records kept for WebDAV beside the key records: collection markers (an
//! empty directory exists) and dead properties (client-chosen name/value
//! pairs stored with a key or a collection). Encoded by hand; the bytes are
//! documented in `engine/FORMAT.md`. The engine does not parse the values:
//! they are XML fragments the HTTP layer wrote.

use crate::record::{Reader, RecordError};
use crate::version::Version;

const COLLECTION_RECORD_FORMAT: u8 = 1;
const PROPS_RECORD_FORMAT: u8 = 1;

/// An explicitly made collection (MKCOL): it exists even with no key under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionRecord {
    /// When it was made (the node's hybrid clock).
    pub created: Version,
}

impl CollectionRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(COLLECTION_RECORD_FORMAT);
        out.extend_from_slice(&self.created.hlc.to_le_bytes());
        out.extend_from_slice(&self.created.node_id.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<CollectionRecord, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if format != COLLECTION_RECORD_FORMAT {
            return Err(RecordError::UnknownFormat(format));
        }
        let hlc = reader.u64()?;
        let node_id = reader.u64()?;
        reader.finish()?;
        Ok(CollectionRecord { created: Version { hlc, node_id } })
    }
}

/// One dead property: a namespaced name and its value as an XML fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadProp {
    /// The XML namespace URI; empty for none.
    pub namespace: String,
    pub name: String,
    /// Well-formed XML content (text and elements), written back verbatim.
    pub value: String,
}

/// Every dead property of one key or collection, in the order first set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropsRecord {
    pub props: Vec<DeadProp>,
}

/// Bounds that keep one record small; the HTTP layer refuses more.
pub const PROPS_COUNT_MAX: usize = 256;
pub const PROPS_BYTES_MAX: usize = 64 * 1024;
/// Namespaces and names are at most this long.
pub const PROP_NAME_LEN_MAX: usize = 1024;

impl PropsRecord {
    /// Bytes of the encoded record (the bound [`PROPS_BYTES_MAX`] applies to this).
    pub fn encoded_len(&self) -> usize {
        3 + self
            .props
            .iter()
            .map(|p| 2 + p.namespace.len() + 2 + p.name.len() + 4 + p.value.len())
            .sum::<usize>()
    }

    pub fn find(&self, namespace: &str, name: &str) -> Option<&DeadProp> {
        self.props.iter().find(|p| p.namespace == namespace && p.name == name)
    }

    /// Sets a property, replacing one of the same name in place.
    pub fn set(&mut self, prop: DeadProp) {
        match self.props.iter_mut().find(|p| p.namespace == prop.namespace && p.name == prop.name) {
            Some(existing) => existing.value = prop.value,
            None => self.props.push(prop),
        }
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        self.props.retain(|p| !(p.namespace == namespace && p.name == name));
    }

    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.props.len() <= usize::from(u16::MAX),
            "props count is bounded before encoding"
        );
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(PROPS_RECORD_FORMAT);
        out.extend_from_slice(&(self.props.len() as u16).to_le_bytes());
        for prop in &self.props {
            put_text16(&mut out, &prop.namespace);
            put_text16(&mut out, &prop.name);
            let value_len = u32::try_from(prop.value.len()).expect("values are bounded");
            out.extend_from_slice(&value_len.to_le_bytes());
            out.extend_from_slice(prop.value.as_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PropsRecord, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if format != PROPS_RECORD_FORMAT {
            return Err(RecordError::UnknownFormat(format));
        }
        let count = reader.u16()?;
        let mut props = Vec::with_capacity(usize::from(count).min(PROPS_COUNT_MAX));
        for _ in 0..count {
            let namespace = reader.text16()?;
            let name = reader.text16()?;
            let len = reader.u32()? as usize;
            let value =
                String::from_utf8(reader.take(len)?.to_vec()).map_err(|_| RecordError::BadText)?;
            props.push(DeadProp { namespace, name, value });
        }
        reader.finish()?;
        Ok(PropsRecord { props })
    }
}

fn put_text16(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("names are bounded before encoding");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_record_round_trips_and_rejects_damage() {
        let record =
            CollectionRecord { created: Version { hlc: 0x1122_3344_5566_7788, node_id: 9 } };
        let bytes = record.encode();
        assert_eq!(bytes.len(), 17);
        assert_eq!(CollectionRecord::decode(&bytes), Ok(record));
        for cut in 0..bytes.len() {
            assert!(CollectionRecord::decode(&bytes[..cut]).is_err());
        }
        let mut longer = bytes;
        longer.push(1);
        assert_eq!(CollectionRecord::decode(&longer), Err(RecordError::Trailing(1)));
    }

    #[test]
    fn props_record_round_trips_and_rejects_damage() {
        let mut record = PropsRecord::default();
        record.set(DeadProp { namespace: "urn:x".into(), name: "a".into(), value: "1".into() });
        record.set(DeadProp { namespace: String::new(), name: "b".into(), value: "<c/>".into() });
        record
            .set(DeadProp { namespace: "urn:x".into(), name: "a".into(), value: "ü𐀀".into() });
        assert_eq!(record.props.len(), 2);
        assert_eq!(record.find("urn:x", "a").unwrap().value, "ü𐀀");
        let bytes = record.encode();
        assert_eq!(bytes.len(), record.encoded_len());
        assert_eq!(PropsRecord::decode(&bytes), Ok(record.clone()));
        for cut in 0..bytes.len() {
            assert!(PropsRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_format = bytes;
        bad_format[0] = 7;
        assert_eq!(PropsRecord::decode(&bad_format), Err(RecordError::UnknownFormat(7)));
        record.remove("urn:x", "a");
        assert_eq!(record.props.len(), 1);
        assert_eq!(
            PropsRecord::decode(&PropsRecord::default().encode()),
            Ok(PropsRecord::default())
        );
    }
}
