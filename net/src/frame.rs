//! The peer-RPC frame, byte by byte as net/PROTOCOL.md writes it down: a
//! 16-byte header, then either a message payload padded to 16 bytes or a
//! raw blob body.
//!
//! Owns the layout, its bounds and every check on received bytes, on byte
//! slices and without IO: encoding a [`Message`] into one contiguous frame,
//! decoding a frame into an aligned [`FrameBuf`] where the message is
//! validated and read in place. Sockets are `peer_io`'s; what messages mean
//! is the cluster layer's.

use std::io;

use rkyv::rancor;
use rkyv::util::AlignedVec;

use crate::message::{ArchivedMessage, Message};

/// First four bytes of every frame, `b"CRN1"` read as a little-endian u32.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"CRN1");
/// The only frame version this code speaks.
pub const FRAME_VERSION: u8 = 3;
/// Size of the fixed header that starts every frame.
pub const FRAME_HEADER_BYTES: usize = 16;
/// Message payloads are padded to a multiple of this, so that every frame
/// starts aligned when frames are laid end to end in an aligned buffer.
pub const FRAME_ALIGN_BYTES: usize = 16;
/// Largest message payload (unpadded) a receiver accepts: bounds the buffer
/// one connection can make its peer allocate.
pub const FRAME_PAYLOAD_MAX_BYTES: u32 = 16 * 1024 * 1024;
/// Largest blob body one kind-2 frame can announce: the width of the length
/// field. The receiver also checks it against what the preceding message
/// said to expect.
pub const BLOB_FRAME_BODY_MAX_BYTES: u32 = u32::MAX;
/// A [`FrameBuf`] that grew past this for one large frame gives the memory
/// back on the next smaller one, so an idle connection stays small.
pub const FRAME_BUF_RETAIN_MAX_BYTES: usize = 1024 * 1024;

/// The one aligned buffer type frames are encoded into and read from.
pub type FrameBytes = AlignedVec<FRAME_ALIGN_BYTES>;

/// What follows a frame header (byte 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// An rkyv archive of one [`Message`], padded with zeros to 16 bytes.
    Message = 1,
    /// Raw blob bytes, unpadded and without CRC (SHA-256 checks them).
    BlobBody = 2,
}

impl FrameKind {
    pub fn from_byte(byte: u8) -> Option<FrameKind> {
        match byte {
            1 => Some(FrameKind::Message),
            2 => Some(FrameKind::BlobBody),
            _ => None,
        }
    }

    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// Why received bytes are not a frame (or why reading one failed). Each
/// check has its own variant so a peer's fault can be told from a bug.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames: the peer hung up.
    #[error("connection closed between frames")]
    Closed,
    /// The bytes ended inside a frame; counts are from the frame's start.
    #[error("frame truncated: {received_bytes} of {expected_bytes} bytes")]
    Truncated { expected_bytes: u64, received_bytes: u64 },
    #[error("bad frame magic {found:#010x}")]
    BadMagic { found: u32 },
    #[error("unsupported frame version {found}")]
    UnsupportedVersion { found: u8 },
    #[error("unknown frame kind {found}")]
    UnknownKind { found: u8 },
    #[error("reserved header field is {found:#06x}, not 0")]
    ReservedNonzero { found: u16 },
    #[error("message payload of {payload_len_bytes} bytes is over the bound of {max_bytes}")]
    PayloadTooLarge { payload_len_bytes: u32, max_bytes: u32 },
    #[error("blob body frame has CRC field {found:#010x}, not 0")]
    BlobCrcNonzero { found: u32 },
    #[error("nonzero byte in message padding")]
    PaddingNonzero,
    #[error("payload CRC32 is {payload_crc32:#010x}, header says {header_crc32:#010x}")]
    CrcMismatch { header_crc32: u32, payload_crc32: u32 },
    /// The payload passed its CRC but is not a valid `Message` archive.
    #[error("payload is not a valid Message archive")]
    InvalidArchive(#[source] rancor::Error),
    /// A frame of one kind came where the protocol needs another.
    #[error("expected a {expected:?} frame, got {found:?}")]
    UnexpectedKind { expected: FrameKind, found: FrameKind },
    /// The [`FrameBuf`] holds no message: nothing was read into it yet, the
    /// last frame read was a blob header, or the last read failed.
    #[error("frame buffer holds no message")]
    NoMessage,
    #[error("peer connection I/O failed")]
    Io(#[from] io::Error),
}

/// Why a message could not be made into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("message payload of {payload_len_bytes} bytes is over the bound of {max_bytes}")]
    PayloadTooLarge { payload_len_bytes: usize, max_bytes: u32 },
    #[error("message could not be archived")]
    Archive(#[source] rancor::Error),
}

/// A validated frame header. Only valid headers can be built: from
/// [`FrameHeader::decode`], [`FrameHeader::blob_body`] or by encoding a
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    kind: FrameKind,
    payload_len_bytes: u32,
    payload_crc32: u32,
}

impl FrameHeader {
    /// The header that announces `body_len_bytes` of raw blob body.
    pub fn blob_body(body_len_bytes: u32) -> FrameHeader {
        FrameHeader {
            kind: FrameKind::BlobBody,
            payload_len_bytes: body_len_bytes,
            payload_crc32: 0,
        }
    }

    fn message(payload_len_bytes: u32, payload_crc32: u32) -> FrameHeader {
        assert!(payload_len_bytes <= FRAME_PAYLOAD_MAX_BYTES, "encoder checks the bound first");
        FrameHeader { kind: FrameKind::Message, payload_len_bytes, payload_crc32 }
    }

    pub fn kind(&self) -> FrameKind {
        self.kind
    }

    /// Unpadded payload length of a message, or the body length of a blob.
    pub fn payload_len_bytes(&self) -> u32 {
        self.payload_len_bytes
    }

    /// CRC32 of the unpadded message payload; 0 for a blob body.
    pub fn payload_crc32(&self) -> u32 {
        self.payload_crc32
    }

    /// Bytes on the wire after the header: the padded payload of a message,
    /// the exact body of a blob.
    pub fn body_wire_len_bytes(&self) -> u64 {
        match self.kind {
            FrameKind::Message => padded_len_bytes(self.payload_len_bytes as usize) as u64,
            FrameKind::BlobBody => u64::from(self.payload_len_bytes),
        }
    }

    /// The whole frame on the wire, header included.
    pub fn frame_len_bytes(&self) -> u64 {
        FRAME_HEADER_BYTES as u64 + self.body_wire_len_bytes()
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut bytes = [0u8; FRAME_HEADER_BYTES];
        bytes[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        bytes[4] = FRAME_VERSION;
        bytes[5] = self.kind.as_byte();
        // bytes[6..8], reserved, stay 0.
        bytes[8..12].copy_from_slice(&self.payload_len_bytes.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.payload_crc32.to_le_bytes());
        bytes
    }

    /// Checks everything a header alone can tell, so that nothing is
    /// allocated or read for a frame that is already known to be bad.
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES]) -> Result<FrameHeader, FrameError> {
        let [m0, m1, m2, m3, version, kind, r0, r1, l0, l1, l2, l3, c0, c1, c2, c3] = *bytes;
        let magic = u32::from_le_bytes([m0, m1, m2, m3]);
        if magic != FRAME_MAGIC {
            return Err(FrameError::BadMagic { found: magic });
        }
        if version != FRAME_VERSION {
            return Err(FrameError::UnsupportedVersion { found: version });
        }
        let kind = FrameKind::from_byte(kind).ok_or(FrameError::UnknownKind { found: kind })?;
        let reserved = u16::from_le_bytes([r0, r1]);
        if reserved != 0 {
            return Err(FrameError::ReservedNonzero { found: reserved });
        }
        let payload_len_bytes = u32::from_le_bytes([l0, l1, l2, l3]);
        let payload_crc32 = u32::from_le_bytes([c0, c1, c2, c3]);
        match kind {
            FrameKind::Message if payload_len_bytes > FRAME_PAYLOAD_MAX_BYTES => {
                Err(FrameError::PayloadTooLarge {
                    payload_len_bytes,
                    max_bytes: FRAME_PAYLOAD_MAX_BYTES,
                })
            }
            FrameKind::BlobBody if payload_crc32 != 0 => {
                Err(FrameError::BlobCrcNonzero { found: payload_crc32 })
            }
            _ => Ok(FrameHeader { kind, payload_len_bytes, payload_crc32 }),
        }
    }
}

/// `len` rounded up to the frame alignment. Only called with lengths at
/// most `FRAME_PAYLOAD_MAX_BYTES`, so it cannot overflow.
fn padded_len_bytes(len_bytes: usize) -> usize {
    len_bytes.next_multiple_of(FRAME_ALIGN_BYTES)
}

/// Encodes `message` as one complete kind-1 frame (header, archive, zero
/// padding) into `out`, replacing what was there, ready for one write.
/// `out` keeps its capacity, so a sender can reuse one buffer.
pub fn encode_message(message: &Message, out: &mut FrameBytes) -> Result<(), EncodeError> {
    out.clear();
    // Room for the header, filled in once the payload's length and CRC are
    // known. The archive starts at offset 16, so its alignment (and hence
    // every byte of it) is the same as if it started at 0.
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    if let Err(error) = rkyv::api::high::to_bytes_in::<_, rancor::Error>(message, &mut *out) {
        out.clear();
        return Err(EncodeError::Archive(error));
    }
    seal_frame(out)
}

/// Frames `payload`, the bytes of an already archived [`Message`] (for
/// example one received and relayed as is), into `out` like
/// [`encode_message`]. The payload is not validated here; the receiver will.
pub fn encode_payload_frame(payload: &[u8], out: &mut FrameBytes) -> Result<(), EncodeError> {
    out.clear();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    out.extend_from_slice(payload);
    seal_frame(out)
}

/// Given `out` = 16 placeholder bytes + payload: checks the bound, pads and
/// writes the header.
fn seal_frame(out: &mut FrameBytes) -> Result<(), EncodeError> {
    let payload_len_bytes = out.len() - FRAME_HEADER_BYTES;
    let bounded_len_bytes =
        u32::try_from(payload_len_bytes).ok().filter(|len| *len <= FRAME_PAYLOAD_MAX_BYTES);
    let Some(bounded_len_bytes) = bounded_len_bytes else {
        out.clear();
        return Err(EncodeError::PayloadTooLarge {
            payload_len_bytes,
            max_bytes: FRAME_PAYLOAD_MAX_BYTES,
        });
    };
    let payload_crc32 = crc32fast::hash(&out[FRAME_HEADER_BYTES..]);
    out.resize(FRAME_HEADER_BYTES + padded_len_bytes(payload_len_bytes), 0);
    let header = FrameHeader::message(bounded_len_bytes, payload_crc32).encode();
    out[..FRAME_HEADER_BYTES].copy_from_slice(&header);
    Ok(())
}

/// A connection's receive buffer for message payloads: aligned, so the
/// archive can be validated and read in place, and reused from frame to
/// frame.
#[derive(Default)]
pub struct FrameBuf {
    /// Padded payload of the last message at the front; its length only
    /// grows (up to `FRAME_BUF_RETAIN_MAX_BYTES` once shrunk), so a reused
    /// buffer is never zeroed again.
    bytes: FrameBytes,
    /// Unpadded length of the message in `bytes`; `None` when it holds no
    /// checked message.
    message_len_bytes: Option<usize>,
}

impl FrameBuf {
    pub fn new() -> FrameBuf {
        FrameBuf::default()
    }

    /// Validates the message's archive (bytecheck) and returns it, read in
    /// place: no copy and no allocation. Each call validates again, which
    /// is cheap next to receiving the bytes (~10 ns for a small message).
    pub fn access(&self) -> Result<&ArchivedMessage, FrameError> {
        let payload = self.payload().ok_or(FrameError::NoMessage)?;
        rkyv::access::<ArchivedMessage, rancor::Error>(payload).map_err(FrameError::InvalidArchive)
    }

    /// Validates and copies the message out into its owned form.
    pub fn deserialize(&self) -> Result<Message, FrameError> {
        let archived = self.access()?;
        rkyv::deserialize::<Message, rancor::Error>(archived).map_err(FrameError::InvalidArchive)
    }

    /// The unpadded payload of the message held, CRC-checked but not yet
    /// validated as an archive.
    pub fn payload(&self) -> Option<&[u8]> {
        self.message_len_bytes.map(|len| &self.bytes[..len])
    }

    /// Drops the held message (the bytes stay, for reuse).
    pub(crate) fn forget(&mut self) {
        self.message_len_bytes = None;
    }

    /// Forgets the held message and returns exactly `header`'s padded
    /// payload length of space to receive into.
    pub(crate) fn receive_space(&mut self, header: &FrameHeader) -> &mut [u8] {
        assert_eq!(header.kind, FrameKind::Message, "only message payloads are buffered");
        self.message_len_bytes = None;
        let padded_bytes = padded_len_bytes(header.payload_len_bytes as usize);
        if self.bytes.len() > FRAME_BUF_RETAIN_MAX_BYTES
            && padded_bytes <= FRAME_BUF_RETAIN_MAX_BYTES
        {
            self.bytes = FrameBytes::new();
        }
        if self.bytes.len() < padded_bytes {
            self.bytes.resize(padded_bytes, 0);
        }
        &mut self.bytes[..padded_bytes]
    }

    /// After `receive_space` was filled: checks padding and CRC, and only
    /// then makes the payload visible to [`FrameBuf::access`].
    pub(crate) fn seal_received(&mut self, header: &FrameHeader) -> Result<(), FrameError> {
        let len_bytes = header.payload_len_bytes as usize;
        let padded_bytes = padded_len_bytes(len_bytes);
        if self.bytes[len_bytes..padded_bytes].iter().any(|byte| *byte != 0) {
            return Err(FrameError::PaddingNonzero);
        }
        let payload_crc32 = crc32fast::hash(&self.bytes[..len_bytes]);
        if payload_crc32 != header.payload_crc32 {
            return Err(FrameError::CrcMismatch {
                header_crc32: header.payload_crc32,
                payload_crc32,
            });
        }
        self.message_len_bytes = Some(len_bytes);
        Ok(())
    }
}

/// One frame decoded from the front of a byte slice by [`decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodedFrame<'a> {
    /// A message, now validated in the `FrameBuf` passed to `decode_frame`.
    Message { frame_len_bytes: usize },
    /// A blob body, borrowed from the input.
    BlobBody { body: &'a [u8] },
}

impl DecodedFrame<'_> {
    /// How many input bytes the frame took.
    pub fn frame_len_bytes(&self) -> usize {
        match self {
            DecodedFrame::Message { frame_len_bytes } => *frame_len_bytes,
            DecodedFrame::BlobBody { body } => FRAME_HEADER_BYTES + body.len(),
        }
    }
}

/// Decodes the frame at the front of `bytes`, which may hold more after
/// it: every header check, then for a message the padding, the CRC and the
/// archive's validity, leaving the message in `buf`. The synchronous twin
/// of `peer_io::read_frame` (which leaves archive validation to
/// [`FrameBuf::access`]); empty input is `Truncated`, as a slice has no
/// notion of a clean close.
pub fn decode_frame<'a>(
    bytes: &'a [u8],
    buf: &mut FrameBuf,
) -> Result<DecodedFrame<'a>, FrameError> {
    buf.forget();
    let truncated = |expected_bytes: u64| FrameError::Truncated {
        expected_bytes,
        received_bytes: bytes.len() as u64,
    };
    let Some((header_bytes, rest)) = bytes.split_first_chunk::<FRAME_HEADER_BYTES>() else {
        return Err(truncated(FRAME_HEADER_BYTES as u64));
    };
    let header = FrameHeader::decode(header_bytes)?;
    let frame_len_bytes = header.frame_len_bytes();
    // A length that does not fit in usize cannot be in the slice either.
    let Some(body) = usize::try_from(header.body_wire_len_bytes())
        .ok()
        .and_then(|body_wire_len_bytes| rest.get(..body_wire_len_bytes))
    else {
        return Err(truncated(frame_len_bytes));
    };
    match header.kind {
        FrameKind::BlobBody => Ok(DecodedFrame::BlobBody { body }),
        FrameKind::Message => {
            buf.receive_space(&header).copy_from_slice(body);
            buf.seal_received(&header)?;
            buf.access()?;
            Ok(DecodedFrame::Message { frame_len_bytes: FRAME_HEADER_BYTES + body.len() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_crn1_on_the_wire() {
        assert_eq!(&FRAME_MAGIC.to_le_bytes(), b"CRN1");
    }

    #[test]
    fn header_round_trips_and_rejects_what_it_must() {
        let header = FrameHeader::blob_body(1234);
        assert_eq!(FrameHeader::decode(&header.encode()).expect("valid header"), header);

        let mut too_long = FrameHeader::message(0, 0).encode();
        too_long[8..12].copy_from_slice(&(FRAME_PAYLOAD_MAX_BYTES + 1).to_le_bytes());
        assert!(matches!(
            FrameHeader::decode(&too_long),
            Err(FrameError::PayloadTooLarge { payload_len_bytes, .. })
                if payload_len_bytes == FRAME_PAYLOAD_MAX_BYTES + 1
        ));

        let mut blob_with_crc = FrameHeader::blob_body(1).encode();
        blob_with_crc[12] = 1;
        assert!(matches!(
            FrameHeader::decode(&blob_with_crc),
            Err(FrameError::BlobCrcNonzero { found: 1 })
        ));
    }

    #[test]
    fn padding_rounds_up_to_sixteen() {
        assert_eq!(padded_len_bytes(0), 0);
        assert_eq!(padded_len_bytes(1), 16);
        assert_eq!(padded_len_bytes(16), 16);
        assert_eq!(padded_len_bytes(17), 32);
        let max = FRAME_PAYLOAD_MAX_BYTES as usize;
        assert_eq!(padded_len_bytes(max), max);
    }

    #[test]
    fn frame_buf_gives_back_memory_after_a_large_frame() {
        let mut buf = FrameBuf::new();
        let large = FrameHeader::message(FRAME_BUF_RETAIN_MAX_BYTES as u32 + 1, 0);
        buf.receive_space(&large);
        assert!(buf.bytes.len() > FRAME_BUF_RETAIN_MAX_BYTES);
        buf.receive_space(&FrameHeader::message(16, 0));
        assert!(buf.bytes.capacity() <= FRAME_BUF_RETAIN_MAX_BYTES);
    }
}
