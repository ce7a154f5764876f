//! Streams an upload to a file with O_DIRECT, hashing (SHA-256) and
//! checksumming (CRC32 per block) the same bytes on the way.
//!
//! Bytes are copied once, from the network buffer into an aligned DMA
//! buffer; when a buffer fills it is written in the background while the
//! next one fills (write-behind), so memory stays flat for any size.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::rc::Rc;

use glommio::io::{DmaBuffer, DmaFile};
use glommio::task::JoinHandle;

use crate::integrity::{Integrity, Written};

/// Size of one DMA write; a multiple of the CRC block size.
pub const WRITE_BUFFER_BYTES: usize = 512 * 1024;
/// Writes in flight behind the buffer being filled.
const WRITES_IN_FLIGHT_MAX: usize = 2;

/// Dropped before [`BlobWriter::finish`], a writer leaves its in-flight
/// writes to complete on their own (they keep the file open); the caller
/// unlinks the file.
pub struct BlobWriter {
    file: Rc<DmaFile>,
    buffer: Option<DmaBuffer>,
    buffer_len: usize,
    /// File offset of the buffer being filled.
    buffer_offset: u64,
    in_flight: VecDeque<JoinHandle<io::Result<()>>>,
    integrity: Integrity,
}

impl BlobWriter {
    pub async fn create(path: &Path) -> io::Result<BlobWriter> {
        let file = DmaFile::create(path).await?;
        Ok(BlobWriter {
            buffer: Some(file.alloc_dma_buffer(WRITE_BUFFER_BYTES)),
            file: Rc::new(file),
            buffer_len: 0,
            buffer_offset: 0,
            in_flight: VecDeque::new(),
            integrity: Integrity::default(),
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.integrity.size_bytes()
    }

    pub async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.integrity.update(data);
        while !data.is_empty() {
            let buffer = self.buffer.as_mut().expect("a buffer is present between writes");
            let take = (WRITE_BUFFER_BYTES - self.buffer_len).min(data.len());
            buffer.as_bytes_mut()[self.buffer_len..self.buffer_len + take]
                .copy_from_slice(&data[..take]);
            self.buffer_len += take;
            data = &data[take..];
            if self.buffer_len == WRITE_BUFFER_BYTES {
                self.submit_buffer(WRITE_BUFFER_BYTES).await?;
            }
        }
        Ok(())
    }

    /// Writes the tail, waits for every write, sets the exact length and
    /// syncs the data: after this the file is durable under its temp name.
    pub async fn finish(mut self) -> io::Result<Written> {
        let size_bytes = self.size_bytes();
        if self.buffer_len > 0 {
            let aligned = self.file.align_up(self.buffer_len as u64) as usize;
            let buffer = self.buffer.as_mut().expect("a buffer is present between writes");
            buffer.as_bytes_mut()[self.buffer_len..aligned].fill(0);
            self.submit_buffer(aligned).await?;
        }
        while let Some(write) = self.in_flight.pop_front() {
            join(write).await?;
        }
        self.file.truncate(size_bytes).await?;
        self.file.fdatasync().await?;
        let file = Rc::try_unwrap(self.file)
            .map_err(|_| io::Error::other("blob file still shared after all writes finished"))?;
        file.close().await?;
        Ok(self.integrity.finish())
    }

    async fn submit_buffer(&mut self, write_len: usize) -> io::Result<()> {
        if self.in_flight.len() >= WRITES_IN_FLIGHT_MAX {
            let oldest = self.in_flight.pop_front().expect("in_flight is not empty");
            join(oldest).await?;
        }
        let mut buffer = self.buffer.take().expect("a buffer is present between writes");
        buffer.trim_to_size(write_len);
        let file = self.file.clone();
        let offset = self.buffer_offset;
        let write = glommio::spawn_local(async move {
            let written = file.write_at(buffer, offset).await?;
            // A regular file takes a short write only when the file system
            // runs out of room mid-buffer: report it as such.
            if written != write_len {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            Ok(())
        })
        .detach();
        self.in_flight.push_back(write);
        self.buffer_offset += self.buffer_len as u64;
        self.buffer_len = 0;
        self.buffer = Some(self.file.alloc_dma_buffer(WRITE_BUFFER_BYTES));
        Ok(())
    }
}

async fn join(write: JoinHandle<io::Result<()>>) -> io::Result<()> {
    write.await.unwrap_or_else(|| Err(io::Error::other("blob write was cancelled")))
}
