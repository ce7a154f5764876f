//! Deterministic payloads. The bytes PUT for a key depend only on (key, size), never on the
//! seed or the run, so a GET can be verified without remembering what was sent, even by a later
//! run. One buffer per size is generated once; every key's payload is a zero-copy window into
//! it starting at a key-dependent offset, so keys differ without a per-request allocation.

use std::collections::HashMap;

use bytes::Bytes;

use crate::config::SizeDist;
use crate::rng::{mix64, Rng};

/// How far a key's window may start into its size's buffer: the number of distinct payloads
/// per size, and the extra bytes each buffer carries.
pub const OFFSET_SPAN_BYTES: u64 = 4096;

/// Salts that keep the size choice, the offset and the bytes from being correlated.
const SIZE_SALT: u64 = 0x5157_4E5A_0000_0001;
const OFFSET_SALT: u64 = 0x0FF5_E700_0000_0002;
const BYTES_SALT: u64 = 0xB17E_5000_0000_0003;

/// The body for one key.
#[derive(Clone, Debug)]
pub struct Payload {
    pub bytes: Bytes,
    pub size_bytes: u64,
    pub offset_bytes: u64,
}

/// The pre-generated buffers, one per size of the distribution.
pub struct Payloads {
    sizes: SizeDist,
    buffers: HashMap<u64, Bytes>,
}

impl Payloads {
    pub fn new(sizes: &SizeDist) -> Payloads {
        let buffers = sizes
            .classes()
            .iter()
            .map(|class| (class.size_bytes, generate(class.size_bytes)))
            .collect();
        Payloads { sizes: sizes.clone(), buffers }
    }

    /// A fixed function of the key, so every PUT of a key has the same size and a GET knows
    /// what length and bytes to expect.
    pub fn size_for_key(&self, key_index: u64) -> u64 {
        self.sizes.pick(mix64(key_index ^ SIZE_SALT))
    }

    pub fn for_key(&self, key_index: u64) -> Payload {
        let size_bytes = self.size_for_key(key_index);
        let offset_bytes = mix64(key_index ^ OFFSET_SALT) % OFFSET_SPAN_BYTES;
        let buffer =
            self.buffers.get(&size_bytes).expect("every size of the distribution has a buffer");
        let start = usize::try_from(offset_bytes).expect("the offset is below OFFSET_SPAN_BYTES");
        let len = usize::try_from(size_bytes).expect("sizes are bounded by MAX_SIZE_BYTES");
        Payload { bytes: buffer.slice(start..start + len), size_bytes, offset_bytes }
    }
}

fn generate(size_bytes: u64) -> Bytes {
    let len = usize::try_from(size_bytes + OFFSET_SPAN_BYTES)
        .expect("sizes are bounded by MAX_SIZE_BYTES");
    let mut rng = Rng::new(size_bytes ^ BYTES_SALT);
    let mut buffer = vec![0u8; len];
    // OFFSET_SPAN_BYTES is a multiple of 8, so only the size can leave a short tail.
    let mut chunks = buffer.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = rng.next_u64().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    Bytes::from(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_deterministic_per_key_and_size() {
        let sizes = SizeDist::parse("1k:1,3000:1").unwrap();
        let first = Payloads::new(&sizes);
        let second = Payloads::new(&sizes);
        for key in 0..50 {
            let a = first.for_key(key);
            let b = second.for_key(key);
            assert_eq!(a.bytes, b.bytes);
            assert_eq!(a.bytes.len() as u64, a.size_bytes);
            assert!(a.size_bytes == 1024 || a.size_bytes == 3000);
        }
    }

    #[test]
    fn keys_get_different_bytes_and_both_sizes() {
        let payloads = Payloads::new(&SizeDist::parse("1k:1,4k:1").unwrap());
        let distinct: std::collections::HashSet<Bytes> =
            (0..100).map(|k| payloads.for_key(k).bytes).collect();
        assert!(distinct.len() > 90, "only {} distinct payloads", distinct.len());
        let small = (0..1000).filter(|&k| payloads.size_for_key(k) == 1024).count();
        assert!((400..600).contains(&small), "{small} of 1000 keys are 1k");
    }

    #[test]
    fn odd_and_empty_sizes_work() {
        let payloads = Payloads::new(&SizeDist::parse("0:1,13:1").unwrap());
        for key in 0..20 {
            let p = payloads.for_key(key);
            assert_eq!(p.bytes.len() as u64, p.size_bytes);
        }
    }
}
