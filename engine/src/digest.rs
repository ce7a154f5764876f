//! The SHA-256 of a blob: its identity, its file name, its ETag.

use std::fmt;
use std::path::PathBuf;

/// A SHA-256 digest. Blobs are named by it, so equal bytes are stored once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits, either case.
    pub fn from_hex(text: &str) -> Option<Digest> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Digest(bytes))
    }

    /// The blob's path below `blobs/`: `aaa/bbb/<rest>.fid` where `aaabbb<rest>`
    /// is the lowercase hex digest. Three hex digits per level keep every
    /// directory at 4096 entries at most.
    pub fn fid_relative_path(&self) -> PathBuf {
        let hex = self.to_hex();
        let mut path = PathBuf::from(&hex[0..3]);
        path.push(&hex[3..6]);
        path.push(format!("{}.fid", &hex[6..]));
        path
    }

    /// A stable 64-bit number drawn from the digest, used to pick the shard
    /// that owns the blob's file.
    pub fn prefix_u64(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fid_path_splits_three_three_rest() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest = Digest::from_hex(hex).expect("valid hex");
        assert_eq!(
            digest.fid_relative_path(),
            PathBuf::from("e3b/0c4/4298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.fid")
        );
        assert_eq!(digest.to_hex(), hex);
    }

    #[test]
    fn from_hex_accepts_upper_case_and_rejects_bad_input() {
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert!(Digest::from_hex(upper).is_some());
        assert!(Digest::from_hex("abc").is_none());
        assert!(Digest::from_hex(&"g".repeat(64)).is_none());
    }
}
