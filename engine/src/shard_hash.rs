//! The one hash cairn fixes itself (not `std`'s, which may change between
//! Rust releases): FNV-1a. Every node must agree on where a key lives, and
//! every shard on which shard owns a key.

/// FNV-1a over the bytes written; [`Fnv::finish`] adds the SplitMix64
/// mixer so that every output bit depends on every input bit (plain
/// FNV-1a mixes its high bits poorly, and rendezvous compares whole values).
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The plain FNV-1a value.
    pub fn plain(&self) -> u64 {
        self.0
    }

    /// The value, mixed.
    pub fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The shard that owns a key, among `shard_count`: plain FNV-1a of
/// `domain NUL key`, cheap and good enough to spread keys over a handful
/// of shards.
pub fn key_shard(domain: &str, key: &str, shard_count: usize) -> usize {
    let mut hash = Fnv::default();
    hash.write(domain.as_bytes());
    hash.write(&[0]);
    hash.write(key.as_bytes());
    (hash.plain() % shard_count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_1a_of_known_input() {
        let mut hash = Fnv::default();
        hash.write(b"a");
        assert_eq!(hash.plain(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn key_shards_stay_where_they_were() {
        // Keys must not move between shards across releases.
        assert_eq!(key_shard("d", "k", 1), 0);
        let spread: std::collections::BTreeSet<usize> =
            (0..64).map(|i| key_shard("photos", &format!("k{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
