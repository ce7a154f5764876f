//! Frames over a byte stream: writing encoded frames, reading one frame
//! into a connection's reusable [`FrameBuf`], and streaming a blob body in
//! bounded chunks.
//!
//! Generic over futures-lite's `AsyncRead`/`AsyncWrite`, so the same code
//! runs on glommio's `TcpStream` and on in-memory cursors in tests. Owns no
//! connection: dialling, accepting, authentication, timeouts and what to do
//! with a message are the cluster layer's. The byte layout and its checks
//! are `frame`'s.
//!
//! None of these futures is cancel-safe: dropping one part-way leaves the
//! stream inside a frame, and the connection must then be closed.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::{
    FrameBuf, FrameError, FrameHeader, FrameKind, FRAME_HEADER_BYTES, FRAME_PAYLOAD_MAX_BYTES,
};

/// Largest chunk of blob body handed to the caller at once, whatever the
/// size of the buffer it lends.
pub const BLOB_CHUNK_MAX_BYTES: usize = 256 * 1024;

/// Writes one encoded frame (from `frame::encode_message`, or a blob
/// header from [`FrameHeader::encode`]) as one contiguous buffer, then
/// flushes so that a small message never waits in a buffer. To send a blob,
/// write its header with this, then the body bytes with `write_all`, then
/// flush.
pub async fn write_frame<W>(writer: &mut W, frame: &[u8]) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    writer.write_all(frame).await?;
    writer.flush().await
}

/// Reads the next frame's header and, for a message, its padded payload
/// into `buf` (checking padding and CRC; the archive itself is validated by
/// [`FrameBuf::access`]). The header is checked before anything is
/// allocated or read for the payload. For a blob body only the header is
/// read: the caller must then drain the body with [`read_blob_body`].
///
/// A stream that ends cleanly before a header is [`FrameError::Closed`];
/// one that ends inside a frame is [`FrameError::Truncated`].
pub async fn read_frame<R>(reader: &mut R, buf: &mut FrameBuf) -> Result<FrameHeader, FrameError>
where
    R: AsyncRead + Unpin,
{
    read_frame_bounded(reader, buf, FRAME_PAYLOAD_MAX_BYTES).await
}

/// [`read_frame`] that also refuses, before reading it, a message payload
/// longer than `payload_max_bytes` (and any blob body): for what an
/// unauthenticated caller may send, such as its `Hello`.
pub async fn read_frame_bounded<R>(
    reader: &mut R,
    buf: &mut FrameBuf,
    payload_max_bytes: u32,
) -> Result<FrameHeader, FrameError>
where
    R: AsyncRead + Unpin,
{
    // Whatever happens next, the message of the previous frame is gone, so
    // it cannot be mistaken for this one's.
    buf.forget();
    let mut header_bytes = [0u8; FRAME_HEADER_BYTES];
    let received_bytes = read_full(reader, &mut header_bytes).await?;
    if received_bytes == 0 {
        return Err(FrameError::Closed);
    }
    if received_bytes < FRAME_HEADER_BYTES {
        return Err(FrameError::Truncated {
            expected_bytes: FRAME_HEADER_BYTES as u64,
            received_bytes: received_bytes as u64,
        });
    }
    let header = FrameHeader::decode(&header_bytes)?;
    if header.kind() == FrameKind::BlobBody {
        if payload_max_bytes < FRAME_PAYLOAD_MAX_BYTES {
            return Err(FrameError::UnexpectedKind {
                expected: FrameKind::Message,
                found: FrameKind::BlobBody,
            });
        }
        return Ok(header);
    }
    if header.payload_len_bytes() > payload_max_bytes {
        return Err(FrameError::PayloadTooLarge {
            payload_len_bytes: header.payload_len_bytes(),
            max_bytes: payload_max_bytes,
        });
    }
    let space = buf.receive_space(&header);
    let received_bytes = read_full(reader, space).await?;
    if received_bytes < space.len() {
        return Err(FrameError::Truncated {
            expected_bytes: header.frame_len_bytes(),
            received_bytes: (FRAME_HEADER_BYTES + received_bytes) as u64,
        });
    }
    buf.seal_received(&header)?;
    Ok(header)
}

/// Starts reading the blob body announced by `header` (from
/// [`read_frame`]). The returned reader borrows the stream, so no other
/// frame can be read until the body is drained; dropping it early leaves
/// the stream inside the body, and the connection must be closed.
pub fn read_blob_body<'r, R>(
    reader: &'r mut R,
    header: &FrameHeader,
) -> Result<BlobBodyReader<'r, R>, FrameError>
where
    R: AsyncRead + Unpin,
{
    if header.kind() != FrameKind::BlobBody {
        return Err(FrameError::UnexpectedKind {
            expected: FrameKind::BlobBody,
            found: header.kind(),
        });
    }
    Ok(BlobBodyReader { reader, body_len_bytes: header.payload_len_bytes(), received_bytes: 0 })
}

/// Pulls a blob body off the stream in chunks of at most
/// [`BLOB_CHUNK_MAX_BYTES`]. The bytes are unchecked: the receiver hashes
/// them and compares with the blob's SHA-256.
pub struct BlobBodyReader<'r, R> {
    reader: &'r mut R,
    body_len_bytes: u32,
    received_bytes: u32,
}

impl<R> BlobBodyReader<'_, R>
where
    R: AsyncRead + Unpin,
{
    /// Body bytes not yet handed out.
    pub fn remaining_bytes(&self) -> u32 {
        self.body_len_bytes - self.received_bytes
    }

    /// Fills the front of `chunk` with the next body bytes (as many as fit,
    /// up to [`BLOB_CHUNK_MAX_BYTES`] and the end of the body) and returns
    /// them; `None` once the whole body has been handed out.
    pub async fn next_chunk<'c>(
        &mut self,
        chunk: &'c mut [u8],
    ) -> Result<Option<&'c [u8]>, FrameError> {
        let remaining_bytes = self.remaining_bytes() as usize;
        if remaining_bytes == 0 {
            return Ok(None);
        }
        assert!(!chunk.is_empty(), "an empty chunk buffer would never make progress");
        let want_bytes = chunk.len().min(BLOB_CHUNK_MAX_BYTES).min(remaining_bytes);
        let space = &mut chunk[..want_bytes];
        let got_bytes = read_full(self.reader, space).await?;
        // `got_bytes <= want_bytes <= remaining`, so this stays within u32.
        self.received_bytes += got_bytes as u32;
        if got_bytes < want_bytes {
            return Err(FrameError::Truncated {
                expected_bytes: FRAME_HEADER_BYTES as u64 + u64::from(self.body_len_bytes),
                received_bytes: FRAME_HEADER_BYTES as u64 + u64::from(self.received_bytes),
            });
        }
        Ok(Some(&chunk[..want_bytes]))
    }
}

/// Reads until `space` is full or the stream ends; returns how many bytes
/// arrived. Unlike `read_exact` it says how far it got, which the errors
/// above report.
async fn read_full<R>(reader: &mut R, space: &mut [u8]) -> io::Result<usize>
where
    R: AsyncRead + Unpin,
{
    let mut filled_bytes = 0;
    while filled_bytes < space.len() {
        match reader.read(&mut space[filled_bytes..]).await {
            Ok(0) => break,
            Ok(read_bytes) => filled_bytes += read_bytes,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(filled_bytes)
}
