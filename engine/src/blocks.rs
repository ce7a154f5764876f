//! CRC32 per 64 KiB block: computed while a blob is written, checked on
//! every read so that a flipped bit on disk is never served.

/// Blocks are aligned to file offsets: block `i` covers
/// `[i * BLOCK_SIZE_BYTES, (i + 1) * BLOCK_SIZE_BYTES)`, the last one shorter.
pub const BLOCK_SIZE_BYTES: u64 = 64 * 1024;

/// Streaming CRC32 of consecutive blocks.
#[derive(Default)]
pub struct BlockCrcs {
    current: crc32fast::Hasher,
    current_len: u64,
    done: Vec<u32>,
}

impl BlockCrcs {
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOCK_SIZE_BYTES - self.current_len) as usize;
            let take = room.min(data.len());
            self.current.update(&data[..take]);
            self.current_len += take as u64;
            data = &data[take..];
            if self.current_len == BLOCK_SIZE_BYTES {
                let full = std::mem::take(&mut self.current);
                self.done.push(full.finalize());
                self.current_len = 0;
            }
        }
    }

    /// The CRC of every block, the partial last one included.
    pub fn finish(mut self) -> Vec<u32> {
        if self.current_len > 0 {
            self.done.push(self.current.finalize());
        }
        self.done
    }
}

/// How many blocks a blob of `size_bytes` has.
pub fn block_count(size_bytes: u64) -> u64 {
    size_bytes.div_ceil(BLOCK_SIZE_BYTES)
}

/// The blocks that hold bytes `[start, end)`, as a range of block indexes.
pub fn blocks_covering(start: u64, end: u64) -> std::ops::Range<u64> {
    if start >= end {
        return 0..0;
    }
    (start / BLOCK_SIZE_BYTES)..end.div_ceil(BLOCK_SIZE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crcs_of(data: &[u8], pieces: &[usize]) -> Vec<u32> {
        let mut crcs = BlockCrcs::default();
        let mut rest = data;
        for &piece in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let take = piece.min(rest.len());
            crcs.update(&rest[..take]);
            rest = &rest[take..];
        }
        crcs.finish()
    }

    #[test]
    fn block_crcs_do_not_depend_on_how_bytes_arrive() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = crcs_of(&data, &[data.len()]);
        assert_eq!(whole.len(), 4);
        assert_eq!(crcs_of(&data, &[1, 4095, 70_000]), whole);
        assert_eq!(whole[0], crc32fast::hash(&data[..65536]));
        assert_eq!(whole[3], crc32fast::hash(&data[3 * 65536..]));
    }

    #[test]
    fn empty_blob_has_no_blocks() {
        assert!(BlockCrcs::default().finish().is_empty());
        assert_eq!(block_count(0), 0);
    }

    #[test]
    fn block_math() {
        assert_eq!(block_count(1), 1);
        assert_eq!(block_count(65536), 1);
        assert_eq!(block_count(65537), 2);
        assert_eq!(blocks_covering(0, 1), 0..1);
        assert_eq!(blocks_covering(65535, 65537), 0..2);
        assert_eq!(blocks_covering(65536, 131072), 1..2);
        assert_eq!(blocks_covering(5, 5), 0..0);
    }
}
