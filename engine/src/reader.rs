//! Reads a blob with O_DIRECT, checking the CRC32 of every block it
//! touches, so no byte that differs from what was written leaves the node.

use std::io;
use std::path::Path;

use bytes::Bytes;
use glommio::io::DmaFile;
use thiserror::Error;

use crate::blocks::{block_count, blocks_covering, BLOCK_SIZE_BYTES};
use crate::record::BlobRecord;

/// Bytes read from disk per step: a multiple of the block size.
pub const READ_CHUNK_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// Detected corruption: the copy must be quarantined and repaired.
    #[error("block {block} does not match its checksum")]
    Corrupt { block: u64 },
}

pub struct BlobReader {
    file: DmaFile,
    record: BlobRecord,
    identity: FileIdentity,
}

/// Which file on disk a reader has open (device and inode), so that a
/// damaged copy is quarantined only if it is still the one at the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    pub device: u64,
    pub inode: u64,
}

impl FileIdentity {
    pub fn of_metadata(metadata: &std::fs::Metadata) -> FileIdentity {
        use std::os::unix::fs::MetadataExt;
        FileIdentity { device: metadata.dev(), inode: metadata.ino() }
    }
}

impl BlobReader {
    pub async fn open(path: &Path, record: BlobRecord) -> Result<BlobReader, ReadError> {
        if record.block_crcs.len() as u64 != block_count(record.size_bytes) {
            return Err(ReadError::Corrupt { block: 0 });
        }
        let file = DmaFile::open(path).await.map_err(io::Error::from)?;
        let identity = fstat_identity(&file)?;
        Ok(BlobReader { file, record, identity })
    }

    pub fn size_bytes(&self) -> u64 {
        self.record.size_bytes
    }

    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    /// Reads from `start` towards `end` (exclusive), at most one chunk, and
    /// returns the verified bytes; an empty answer means `start >= end`.
    pub async fn read_chunk(&self, start: u64, end: u64) -> Result<Bytes, ReadError> {
        let end = end.min(self.record.size_bytes);
        let blocks = blocks_covering(start, end);
        if blocks.is_empty() {
            return Ok(Bytes::new());
        }
        let chunk_blocks = READ_CHUNK_BYTES / BLOCK_SIZE_BYTES;
        let last_block = blocks.end.min(blocks.start + chunk_blocks);
        let aligned_start = blocks.start * BLOCK_SIZE_BYTES;
        let read_end = (last_block * BLOCK_SIZE_BYTES).min(self.record.size_bytes);
        let want = (read_end - aligned_start) as usize;
        let read = self
            .file
            .read_at_aligned(aligned_start, self.file.align_up(want as u64) as usize)
            .await
            .map_err(io::Error::from)?;
        if read.len() < want {
            return Err(ReadError::Corrupt {
                block: blocks.start + (read.len() as u64 / BLOCK_SIZE_BYTES),
            });
        }
        for block in blocks.start..last_block {
            let from = ((block - blocks.start) * BLOCK_SIZE_BYTES) as usize;
            let to = (from + BLOCK_SIZE_BYTES as usize).min(want);
            if crc32fast::hash(&read[from..to]) != self.record.block_crcs[block as usize] {
                return Err(ReadError::Corrupt { block });
            }
        }
        let from = (start - aligned_start) as usize;
        let to = (end.min(read_end) - aligned_start) as usize;
        Ok(Bytes::copy_from_slice(&read[from..to]))
    }
}

fn fstat_identity(file: &DmaFile) -> io::Result<FileIdentity> {
    use std::os::fd::AsRawFd;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: the descriptor is open for the life of `file`; `stat` is a
    // valid out-pointer.
    if unsafe { libc::fstat(file.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(FileIdentity { device: stat.st_dev, inode: stat.st_ino })
}

/// Checks the blocks of a blob kept inline (in its record) that hold bytes
/// `[start, end)` and answers those bytes.
pub fn read_inline(record: BlobRecord, start: u64, end: u64) -> Result<Bytes, ReadError> {
    let end = end.min(record.size_bytes);
    let Some(bytes) = record.inline else {
        return Err(ReadError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "blob is not inline",
        )));
    };
    if bytes.len() as u64 != record.size_bytes {
        return Err(ReadError::Corrupt { block: 0 });
    }
    verify_blocks(&bytes, &record.block_crcs, start, end)?;
    Ok(Bytes::from(bytes).slice(start.min(end) as usize..end as usize))
}

/// Checks, against `block_crcs`, every block of the whole blob `bytes` that
/// holds a byte of `[start, end)`.
pub fn verify_blocks(
    bytes: &[u8],
    block_crcs: &[u32],
    start: u64,
    end: u64,
) -> Result<(), ReadError> {
    if block_crcs.len() as u64 != block_count(bytes.len() as u64) {
        return Err(ReadError::Corrupt { block: 0 });
    }
    for block in blocks_covering(start, end.min(bytes.len() as u64)) {
        let from = (block * BLOCK_SIZE_BYTES) as usize;
        let to = (from + BLOCK_SIZE_BYTES as usize).min(bytes.len());
        if crc32fast::hash(&bytes[from..to]) != block_crcs[block as usize] {
            return Err(ReadError::Corrupt { block });
        }
    }
    Ok(())
}

/// Reads one existing, non-empty file with O_DIRECT. Run first on every
/// executor: glommio 0.9 (issue 605) probes iopoll support on the first
/// direct-I/O open, and a new empty file makes it guess wrong, after which
/// every O_DIRECT read fails with EOPNOTSUPP.
pub async fn warm_up_direct_io(probe: &Path) -> io::Result<()> {
    let file = DmaFile::open(probe).await?;
    let read = file.read_at_aligned(0, 4096).await?;
    file.close().await?;
    if read.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "probe file is empty"));
    }
    Ok(())
}
