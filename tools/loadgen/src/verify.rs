//! Expected SHA-256 digests of the deterministic payloads, for `--verify`. A digest depends only
//! on (size, offset), so it is computed once per distinct window and cached; checking a GET then
//! costs one hash of the received body.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::payload::Payload;

pub type Sha256Digest = [u8; 32];

/// Hashing more than this on a runtime worker would stall every other connection on it.
const INLINE_HASH_LIMIT_BYTES: usize = 256 * 1024;

/// The cache holds at most (distinct sizes) x `OFFSET_SPAN_BYTES` entries, the number of
/// distinct payload windows there are.
#[derive(Default)]
pub struct ExpectedDigests {
    cache: Mutex<HashMap<(u64, u64), Sha256Digest>>,
}

impl ExpectedDigests {
    pub async fn for_payload(&self, payload: &Payload) -> Sha256Digest {
        let window = (payload.size_bytes, payload.offset_bytes);
        if let Some(digest) = self.lock().get(&window) {
            return *digest;
        }
        let digest = if payload.bytes.len() <= INLINE_HASH_LIMIT_BYTES {
            sha256(&payload.bytes)
        } else {
            let bytes = payload.bytes.clone();
            match tokio::task::spawn_blocking(move || sha256(&bytes)).await {
                Ok(digest) => digest,
                // Only a runtime shutting down gets here; hashing inline is still correct.
                Err(_) => sha256(&payload.bytes),
            }
        };
        self.lock().insert(window, digest);
        digest
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u64, u64), Sha256Digest>> {
        // A panic elsewhere cannot leave a half-written digest: entries are inserted whole.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn sha256(bytes: &[u8]) -> Sha256Digest {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SizeDist;
    use crate::payload::Payloads;

    #[tokio::test]
    async fn expected_digest_matches_the_payload_bytes() {
        let payloads = Payloads::new(&SizeDist::parse("1k:1,1m:1").unwrap());
        let expected = ExpectedDigests::default();
        for key in 0..8 {
            let payload = payloads.for_key(key);
            assert_eq!(expected.for_payload(&payload).await, sha256(&payload.bytes));
            // The second lookup comes from the cache and must agree.
            assert_eq!(expected.for_payload(&payload).await, sha256(&payload.bytes));
        }
    }
}
