//! The value encoding of the raft keyspace: one format-version byte, then
//! serde JSON.
//!
//! Decoding never panics: empty bytes, an unknown version or bad JSON are a
//! [`RecordError`], which the stores report as corruption.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// The first byte of every value this crate writes, snapshot data included.
pub const RECORD_VERSION: u8 = 1;

/// A value or key that cannot be decoded (or, for `Encode`, encoded).
#[derive(Debug, Error)]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("record version {found}, expected {RECORD_VERSION}")]
    Version { found: u8 },
    #[error("bad JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("cannot encode: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("log key of {len_bytes} bytes, expected 8")]
    KeyLength { len_bytes: usize },
}

/// Encodes `value` as a versioned record.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RecordError> {
    let mut bytes = vec![RECORD_VERSION];
    serde_json::to_writer(&mut bytes, value).map_err(RecordError::Encode)?;
    Ok(bytes)
}

/// Decodes a versioned record.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RecordError> {
    let (&version, json) = bytes.split_first().ok_or(RecordError::Empty)?;
    if version != RECORD_VERSION {
        return Err(RecordError::Version { found: version });
    }
    serde_json::from_slice(json).map_err(RecordError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let bytes = encode(&vec![1u64, 2, 3]).expect("a vector encodes");
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<Vec<u64>>(&bytes).expect("and decodes"), vec![1, 2, 3]);
    }

    #[test]
    fn bad_records_are_errors() {
        assert!(matches!(decode::<u64>(&[]), Err(RecordError::Empty)));
        assert!(matches!(decode::<u64>(b"\x02 7"), Err(RecordError::Version { found: 2 })));
        assert!(matches!(decode::<u64>(b"\x01{"), Err(RecordError::Json(_))));
        assert!(matches!(decode::<u64>(b"\x01\"seven\""), Err(RecordError::Json(_))));
    }
}
