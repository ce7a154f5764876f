//! What identifies and protects a blob's bytes, computed in one pass as
//! they arrive: the SHA-256 (its name) and a CRC32 per block (checked on
//! every read).

use sha2::{Digest as _, Sha256};

use crate::blocks::BlockCrcs;
use crate::digest::Digest;

/// What a finished upload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub sha256: Digest,
    pub size_bytes: u64,
    pub block_crcs: Vec<u32>,
}

#[derive(Default)]
pub struct Integrity {
    sha256: Sha256,
    crcs: BlockCrcs,
    size_bytes: u64,
}

impl Integrity {
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.crcs.update(data);
        self.size_bytes += data.len() as u64;
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn finish(self) -> Written {
        Written {
            sha256: Digest(self.sha256.finalize().into()),
            size_bytes: self.size_bytes,
            block_crcs: self.crcs.finish(),
        }
    }
}
