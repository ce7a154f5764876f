//! The values kept in RocksDB, encoded by hand so that the bytes are
//! documented in `engine/FORMAT.md` and stable across crate upgrades.

use thiserror::Error;

use crate::blocks::BLOCK_SIZE_BYTES;
use crate::digest::Digest;
use crate::version::Version;

/// Format 1 had no fid (it reads as the version's clock value); format 2
/// appends it, format 3 the version's kept headers. Records are always
/// written in the newest format.
const KEY_RECORD_FORMAT_V1: u8 = 1;
const KEY_RECORD_FORMAT_V2: u8 = 2;
const KEY_RECORD_FORMAT: u8 = 3;
const PENDING_UPLOAD_FORMAT: u8 = 1;
/// Keys are at most this long (`names::KEY_LEN_MAX_BYTES`, with room).
const LONG_TEXT_LEN_MAX: usize = u16::MAX as usize;
const BLOB_RECORD_FORMAT: u8 = 1;
/// Format 2 appends the version's kept headers to format 1.
const INDEX_RECORD_FORMAT_V1: u8 = 1;
const INDEX_RECORD_FORMAT: u8 = 2;
/// Names stored in records (class, content type) are at most this long.
const SHORT_TEXT_LEN_MAX: usize = 255;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is truncated")]
    Truncated,
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    #[error("unknown key state {0}")]
    UnknownState(u8),
    #[error("unknown blob placement {0}")]
    UnknownPlacement(u8),
    #[error("record text is not UTF-8")]
    BadText,
    #[error("record has {0} trailing bytes")]
    Trailing(usize),
}

/// Where a key stands on this node (docs/design.md §4). `Uploading` is never
/// stored in a key record: an upload in progress has its own record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    Uploading,
    NeedReplication,
    ReplicationIn,
    ReplicationOut,
    Stored,
    ToDelete,
}

impl KeyState {
    pub const ALL: [KeyState; 6] = [
        KeyState::Uploading,
        KeyState::NeedReplication,
        KeyState::ReplicationIn,
        KeyState::ReplicationOut,
        KeyState::Stored,
        KeyState::ToDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Uploading => "uploading",
            KeyState::NeedReplication => "need-replication",
            KeyState::ReplicationIn => "replication-in",
            KeyState::ReplicationOut => "replication-out",
            KeyState::Stored => "stored",
            KeyState::ToDelete => "to-delete",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn from_u8(value: u8) -> Result<KeyState, RecordError> {
        KeyState::ALL.get(value as usize).copied().ok_or(RecordError::UnknownState(value))
    }
}

/// The committed version of a key on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub state: KeyState,
    pub version: Version,
    pub sha256: Digest,
    pub size_bytes: u64,
    pub class: String,
    pub content_type: String,
    /// The MogileFS file id of this version: given by `create_open` for a
    /// tracker upload, the version's clock value (`version.hlc`) otherwise.
    pub fid: u64,
    /// Response headers the version keeps besides its content type, as
    /// `name: value` lines (see [`HEADERS_LEN_MAX`]); empty for most.
    pub headers: String,
}

impl KeyRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.class.len() + self.content_type.len());
        out.push(KEY_RECORD_FORMAT);
        out.push(self.state as u8);
        out.extend_from_slice(&self.version.hlc.to_le_bytes());
        out.extend_from_slice(&self.version.node_id.to_le_bytes());
        out.extend_from_slice(&self.sha256.0);
        out.extend_from_slice(&self.size_bytes.to_le_bytes());
        put_short_text(&mut out, &self.class);
        put_short_text(&mut out, &self.content_type);
        out.extend_from_slice(&self.fid.to_le_bytes());
        put_text16(&mut out, &self.headers);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyRecord, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if ![KEY_RECORD_FORMAT, KEY_RECORD_FORMAT_V2, KEY_RECORD_FORMAT_V1].contains(&format) {
            return Err(RecordError::UnknownFormat(format));
        }
        let state = KeyState::from_u8(reader.u8()?)?;
        let hlc = reader.u64()?;
        let node_id = reader.u64()?;
        let sha256 = Digest(reader.array()?);
        let size_bytes = reader.u64()?;
        let class = reader.short_text()?;
        let content_type = reader.short_text()?;
        let fid = if format == KEY_RECORD_FORMAT_V1 { hlc } else { reader.u64()? };
        let headers = if format == KEY_RECORD_FORMAT { reader.text16()? } else { String::new() };
        reader.finish()?;
        Ok(KeyRecord {
            state,
            version: Version { hlc, node_id },
            sha256,
            size_bytes,
            class,
            content_type,
            fid,
            headers,
        })
    }
}

/// A MogileFS upload between `create_open` and `create_close` (or its
/// expiry): which key it is for, when it was opened, and, once the client
/// has sent the bytes, the blob that holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub domain: String,
    pub key: String,
    pub class: String,
    /// Wall-clock milliseconds since the Unix epoch at `create_open`.
    pub opened_unix_ms: u64,
    /// The bytes received so far, once a PUT to the upload's path finished.
    pub stored: Option<StoredUpload>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredUpload {
    pub sha256: Digest,
    pub size_bytes: u64,
}

impl PendingUpload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.domain.len() + self.key.len());
        out.push(PENDING_UPLOAD_FORMAT);
        out.extend_from_slice(&self.opened_unix_ms.to_le_bytes());
        match &self.stored {
            None => out.push(0),
            Some(stored) => {
                out.push(1);
                out.extend_from_slice(&stored.sha256.0);
                out.extend_from_slice(&stored.size_bytes.to_le_bytes());
            }
        }
        put_short_text(&mut out, &self.domain);
        put_short_text(&mut out, &self.class);
        put_text16(&mut out, &self.key);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PendingUpload, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if format != PENDING_UPLOAD_FORMAT {
            return Err(RecordError::UnknownFormat(format));
        }
        let opened_unix_ms = reader.u64()?;
        let stored = match reader.u8()? {
            0 => None,
            1 => Some(StoredUpload { sha256: Digest(reader.array()?), size_bytes: reader.u64()? }),
            other => return Err(RecordError::UnknownPlacement(other)),
        };
        let domain = reader.short_text()?;
        let class = reader.short_text()?;
        let key_len = usize::from(u16::from_le_bytes(reader.array()?));
        let key =
            String::from_utf8(reader.take(key_len)?.to_vec()).map_err(|_| RecordError::BadText)?;
        reader.finish()?;
        Ok(PendingUpload { domain, key, class, opened_unix_ms, stored })
    }
}

/// What a key's home node knows of it (docs/design.md §5): the newest version it
/// has heard of, and which nodes hold an intact copy of that version. A
/// deleted key keeps its record (a tombstone) so an older version arriving
/// late cannot bring it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexRecord {
    pub version: Version,
    pub sha256: Digest,
    pub size_bytes: u64,
    pub class: String,
    pub content_type: String,
    pub deleted: bool,
    /// Node ids, ascending, without repeats.
    pub holders: Vec<u64>,
    /// The version's kept headers (as in [`KeyRecord::headers`]).
    pub headers: String,
}

/// Holders listed at most in one index record.
pub const INDEX_HOLDERS_MAX: usize = 64;

impl IndexRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80 + 8 * self.holders.len());
        out.push(INDEX_RECORD_FORMAT);
        out.extend_from_slice(&self.version.hlc.to_le_bytes());
        out.extend_from_slice(&self.version.node_id.to_le_bytes());
        out.extend_from_slice(&self.sha256.0);
        out.extend_from_slice(&self.size_bytes.to_le_bytes());
        out.push(u8::from(self.deleted));
        put_short_text(&mut out, &self.class);
        put_short_text(&mut out, &self.content_type);
        let holders = &self.holders[..self.holders.len().min(INDEX_HOLDERS_MAX)];
        out.push(holders.len() as u8);
        for holder in holders {
            out.extend_from_slice(&holder.to_le_bytes());
        }
        put_text16(&mut out, &self.headers);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexRecord, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if format != INDEX_RECORD_FORMAT && format != INDEX_RECORD_FORMAT_V1 {
            return Err(RecordError::UnknownFormat(format));
        }
        let version = Version { hlc: reader.u64()?, node_id: reader.u64()? };
        let sha256 = Digest(reader.array()?);
        let size_bytes = reader.u64()?;
        let deleted = match reader.u8()? {
            0 => false,
            1 => true,
            other => return Err(RecordError::UnknownState(other)),
        };
        let class = reader.short_text()?;
        let content_type = reader.short_text()?;
        let count = usize::from(reader.u8()?);
        let mut holders = Vec::with_capacity(count);
        for _ in 0..count {
            holders.push(reader.u64()?);
        }
        let headers = if format == INDEX_RECORD_FORMAT { reader.text16()? } else { String::new() };
        reader.finish()?;
        Ok(IndexRecord {
            version,
            sha256,
            size_bytes,
            class,
            content_type,
            deleted,
            holders,
            headers,
        })
    }

    /// Merges what a holder says about `other` into this record: a newer
    /// version replaces it, the same version adds holders (or a deletion),
    /// an older one changes nothing. Answers whether anything changed.
    pub fn merge(&mut self, other: &IndexRecord) -> bool {
        if other.version > self.version {
            *self = other.clone();
            self.holders.sort_unstable();
            self.holders.dedup();
            return true;
        }
        if other.version < self.version {
            return false;
        }
        let before = (self.holders.len(), self.deleted);
        self.deleted |= other.deleted;
        for holder in &other.holders {
            if let Err(at) = self.holders.binary_search(holder) {
                self.holders.insert(at, *holder);
            }
        }
        self.holders.truncate(INDEX_HOLDERS_MAX);
        before != (self.holders.len(), self.deleted)
    }
}

/// What a node knows of one blob: its size, the CRC32 of each block, and,
/// for a small blob, the bytes themselves (kept in RocksDB, not in a file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRecord {
    pub size_bytes: u64,
    pub block_crcs: Vec<u32>,
    pub inline: Option<Vec<u8>>,
}

const PLACEMENT_FILE: u8 = 0;
const PLACEMENT_INLINE: u8 = 1;

impl BlobRecord {
    pub fn encode(&self) -> Vec<u8> {
        let inline_len = self.inline.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(18 + 4 * self.block_crcs.len() + inline_len);
        out.push(BLOB_RECORD_FORMAT);
        match &self.inline {
            None => out.push(PLACEMENT_FILE),
            Some(bytes) => {
                assert_eq!(bytes.len() as u64, self.size_bytes, "inline bytes are the whole blob");
                out.push(PLACEMENT_INLINE);
            }
        }
        out.extend_from_slice(&self.size_bytes.to_le_bytes());
        out.extend_from_slice(&(BLOCK_SIZE_BYTES as u32).to_le_bytes());
        out.extend_from_slice(&(self.block_crcs.len() as u32).to_le_bytes());
        for crc in &self.block_crcs {
            out.extend_from_slice(&crc.to_le_bytes());
        }
        if let Some(bytes) = &self.inline {
            out.extend_from_slice(bytes);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<BlobRecord, RecordError> {
        let mut reader = Reader(bytes);
        let format = reader.u8()?;
        if format != BLOB_RECORD_FORMAT {
            return Err(RecordError::UnknownFormat(format));
        }
        let placement = reader.u8()?;
        let size_bytes = reader.u64()?;
        let block_size = reader.u32()?;
        if u64::from(block_size) != BLOCK_SIZE_BYTES {
            return Err(RecordError::UnknownFormat(format));
        }
        let count = reader.u32()? as usize;
        if reader.0.len() < count * 4 {
            return Err(RecordError::Truncated);
        }
        let block_crcs = (0..count).map(|_| reader.u32()).collect::<Result<_, _>>()?;
        let inline = match placement {
            PLACEMENT_FILE => None,
            PLACEMENT_INLINE => {
                let len = usize::try_from(size_bytes).map_err(|_| RecordError::Truncated)?;
                Some(reader.take(len)?.to_vec())
            }
            other => return Err(RecordError::UnknownPlacement(other)),
        };
        reader.finish()?;
        Ok(BlobRecord { size_bytes, block_crcs, inline })
    }
}

fn put_short_text(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() <= SHORT_TEXT_LEN_MAX, "short text is validated before encoding");
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

fn put_text16(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() <= LONG_TEXT_LEN_MAX, "long text is validated before encoding");
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Truncation-checked little-endian reads.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl Reader<'_> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// Text with a two-byte length.
    pub(crate) fn text16(&mut self) -> Result<String, RecordError> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| RecordError::BadText)
    }

    pub(crate) fn short_text(&mut self) -> Result<String, RecordError> {
        let len = self.u8()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::BadText)
    }

    pub(crate) fn finish(&self) -> Result<(), RecordError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(RecordError::Trailing(n)),
        }
    }
}

/// Content types longer than this are not kept (they are not real ones).
pub const CONTENT_TYPE_LEN_MAX: usize = SHORT_TEXT_LEN_MAX;
/// A version's kept headers are at most this long, all lines together
/// (S3 allows 2 KiB of user metadata; the rest is room for the others).
pub const HEADERS_LEN_MAX: usize = 8 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> KeyRecord {
        KeyRecord {
            state: KeyState::NeedReplication,
            version: Version { hlc: 0x0123_4567_89ab_cdef, node_id: 42 },
            sha256: Digest([7; 32]),
            size_bytes: 1 << 40,
            class: "default".into(),
            content_type: "image/jpeg".into(),
            fid: 77,
            headers: "cache-control: no-store\n".into(),
        }
    }

    #[test]
    fn key_record_round_trips() {
        let record = sample();
        let bytes = record.encode();
        assert_eq!(bytes.len(), 1 + 1 + 8 + 8 + 32 + 8 + 1 + 7 + 1 + 10 + 8 + 2 + 24);
        assert_eq!(KeyRecord::decode(&bytes), Ok(record));
    }

    #[test]
    fn older_key_records_still_read() {
        let record = sample();
        let mut bytes = record.encode();
        bytes.truncate(bytes.len() - 2 - record.headers.len());
        bytes[0] = 2;
        let decoded = KeyRecord::decode(&bytes).expect("format 2 still reads");
        assert_eq!(decoded, KeyRecord { headers: String::new(), ..record.clone() });
        bytes.truncate(bytes.len() - 8);
        bytes[0] = 1;
        let decoded = KeyRecord::decode(&bytes).expect("format 1 still reads");
        let fid = record.version.hlc;
        assert_eq!(decoded, KeyRecord { fid, headers: String::new(), ..record });
    }

    #[test]
    fn pending_upload_round_trips_and_rejects_damage() {
        let mut pending = PendingUpload {
            domain: "photos".into(),
            key: "a/b é".into(),
            class: "default".into(),
            opened_unix_ms: 1_700_000_000_000,
            stored: None,
        };
        assert_eq!(PendingUpload::decode(&pending.encode()), Ok(pending.clone()));
        pending.stored = Some(StoredUpload { sha256: Digest([3; 32]), size_bytes: 9 });
        let bytes = pending.encode();
        assert_eq!(PendingUpload::decode(&bytes), Ok(pending));
        for cut in 0..bytes.len() {
            assert!(PendingUpload::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn key_record_rejects_damage() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(KeyRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(KeyRecord::decode(&longer), Err(RecordError::Trailing(1)));
        let mut bad_state = bytes.clone();
        bad_state[1] = 99;
        assert_eq!(KeyRecord::decode(&bad_state), Err(RecordError::UnknownState(99)));
        let mut bad_format = bytes;
        bad_format[0] = 4;
        assert_eq!(KeyRecord::decode(&bad_format), Err(RecordError::UnknownFormat(4)));
    }

    #[test]
    fn blob_record_round_trips_and_rejects_damage() {
        let record = BlobRecord {
            size_bytes: 200_000,
            block_crcs: vec![1, 2, 3, 0xffff_ffff],
            inline: None,
        };
        let bytes = record.encode();
        assert_eq!(bytes.len(), 18 + 16);
        assert_eq!(BlobRecord::decode(&bytes), Ok(record));
        assert!(BlobRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        let empty = BlobRecord { size_bytes: 0, block_crcs: vec![], inline: Some(vec![]) };
        assert_eq!(BlobRecord::decode(&empty.encode()), Ok(empty));
        let small =
            BlobRecord { size_bytes: 3, block_crcs: vec![9], inline: Some(b"abc".to_vec()) };
        let bytes = small.encode();
        assert_eq!(BlobRecord::decode(&bytes), Ok(small));
        for cut in 0..bytes.len() {
            assert!(BlobRecord::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_placement = bytes.clone();
        bad_placement[1] = 7;
        assert_eq!(BlobRecord::decode(&bad_placement), Err(RecordError::UnknownPlacement(7)));
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    fn record(hlc: u64, holders: &[u64]) -> IndexRecord {
        IndexRecord {
            version: Version { hlc, node_id: 9 },
            sha256: Digest([hlc as u8; 32]),
            size_bytes: 100,
            class: "triple".into(),
            content_type: "image/png".into(),
            deleted: false,
            holders: holders.to_vec(),
            headers: String::new(),
        }
    }

    #[test]
    fn index_records_round_trip() {
        let mut tomb = record(5, &[1, 2, 3]);
        tomb.deleted = true;
        for r in [record(1, &[]), record(7, &[4]), tomb] {
            assert_eq!(IndexRecord::decode(&r.encode()), Ok(r));
        }
        assert!(IndexRecord::decode(&record(1, &[2]).encode()[..20]).is_err());
    }

    #[test]
    fn merge_keeps_the_newest_version_and_unions_holders() {
        let mut home = record(5, &[3]);
        assert!(home.merge(&record(5, &[1])));
        assert_eq!(home.holders, [1, 3]);
        assert!(!home.merge(&record(5, &[3])), "nothing new");
        assert!(!home.merge(&record(4, &[7])), "older versions change nothing");
        assert_eq!(home.holders, [1, 3]);
        assert!(home.merge(&record(6, &[7])));
        assert_eq!((home.version.hlc, home.holders.clone()), (6, vec![7]));
        let mut deletion = record(6, &[]);
        deletion.deleted = true;
        assert!(home.merge(&deletion));
        assert!(home.deleted);
    }
}
