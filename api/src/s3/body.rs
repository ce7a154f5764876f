//! S3 request bodies as an upload's source: plain, or `aws-chunked` (each
//! chunk framed `<hex size>[;chunk-signature=<sig>]\r\n<bytes>\r\n`, then
//! a zero chunk and, with a trailer, `name:value` lines). The framing never
//! reaches the stored object; every chunk signature is checked against the
//! chain from the request's seed signature; an `x-amz-checksum-*` (header
//! or trailer) is checked against the bytes; the decoded length must be
//! the one declared. Any failure is an error before the end of the
//! source, so the node stores nothing.

use base64::Engine as _;
use bytes::{Buf, Bytes, BytesMut};
use cairn_node::upload::ChunkSource;
use cairn_node::NodeError;
use sha2::{Digest as _, Sha256};

use super::sigv4;

/// What verifies a signed `aws-chunked` body's chunks.
#[derive(Clone)]
pub struct ChunkSigner {
    pub key: [u8; 32],
    pub amz_date: String,
    pub scope: String,
    /// The request's own signature: the first chunk's "previous".
    pub seed: String,
}

/// A checksum a client sent (`x-amz-checksum-<algorithm>`), checked
/// against the bytes as they pass.
pub struct Checksum {
    name: &'static str,
    expected: Option<String>,
    state: ChecksumState,
}

enum ChecksumState {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Sha256(Box<Sha256>),
}

pub const CHECKSUM_HEADERS: [&str; 3] =
    ["x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-sha256"];

impl Checksum {
    /// A checker for the checksum header `name`, its value known now or
    /// (from a trailer) later.
    pub fn for_header(name: &str, expected: Option<String>) -> Option<Checksum> {
        let (name, state) = match name {
            "x-amz-checksum-crc32" => {
                (CHECKSUM_HEADERS[0], ChecksumState::Crc32(crc32fast::Hasher::new()))
            }
            "x-amz-checksum-crc32c" => (CHECKSUM_HEADERS[1], ChecksumState::Crc32c(0)),
            "x-amz-checksum-sha256" => (CHECKSUM_HEADERS[2], ChecksumState::Sha256(Box::default())),
            _ => return None,
        };
        Some(Checksum { name, expected, state })
    }

    fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            ChecksumState::Crc32(hasher) => hasher.update(bytes),
            ChecksumState::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, bytes),
            ChecksumState::Sha256(hasher) => hasher.update(bytes),
        }
    }

    /// The checksum of the bytes so far, base64 as S3 sends it.
    fn value(&self) -> String {
        let bytes = match &self.state {
            ChecksumState::Crc32(hasher) => hasher.clone().finalize().to_be_bytes().to_vec(),
            ChecksumState::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            ChecksumState::Sha256(hasher) => hasher.clone().finalize().to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn verify(&self) -> Result<(), NodeError> {
        let actual = self.value();
        match &self.expected {
            Some(expected) if *expected != actual => Err(NodeError::DigestMismatch(format!(
                "the body's {} is {actual}, the request said {expected}",
                self.name
            ))),
            Some(_) => Ok(()),
            None => Err(NodeError::BodyFailed(format!(
                "x-amz-trailer announced {}, and the body's trailer did not carry it",
                self.name
            ))),
        }
    }

    /// The checksum's header and value, as a PUT's answer carries it.
    pub fn header(&self) -> (&'static str, String) {
        (self.name, self.value())
    }
}

/// Longest chunk header or trailer line taken.
const LINE_MAX_BYTES: usize = 4096;

enum Stage {
    /// Expecting a chunk header line.
    Header,
    /// Inside a chunk's bytes.
    Data {
        remaining: u64,
    },
    /// Expecting the CRLF after a chunk's bytes.
    DataEnd,
    /// After the zero chunk: trailer lines up to an empty one.
    Trailer,
    Done,
}

/// A request body as an upload's source: `aws-chunked` decoded when it is,
/// checked in every case.
pub struct S3Body<S> {
    inner: S,
    chunked: bool,
    buf: BytesMut,
    inner_done: bool,
    stage: Stage,
    signer: Option<ChunkSigner>,
    previous_signature: String,
    chunk_signature: String,
    chunk_hash: Sha256,
    checksum: Option<Checksum>,
    trailer: Vec<u8>,
    decoded_bytes: u64,
    declared_bytes: Option<u64>,
}

impl<S: ChunkSource> S3Body<S> {
    pub fn plain(inner: S, checksum: Option<Checksum>) -> S3Body<S> {
        S3Body::new(inner, false, None, checksum, None)
    }

    pub fn chunked(
        inner: S,
        signer: Option<ChunkSigner>,
        checksum: Option<Checksum>,
        declared_bytes: Option<u64>,
    ) -> S3Body<S> {
        S3Body::new(inner, true, signer, checksum, declared_bytes)
    }

    fn new(
        inner: S,
        chunked: bool,
        signer: Option<ChunkSigner>,
        checksum: Option<Checksum>,
        declared_bytes: Option<u64>,
    ) -> S3Body<S> {
        let previous_signature = signer.as_ref().map(|s| s.seed.clone()).unwrap_or_default();
        S3Body {
            inner,
            chunked,
            buf: BytesMut::new(),
            inner_done: false,
            stage: Stage::Header,
            signer,
            previous_signature,
            chunk_signature: String::new(),
            chunk_hash: Sha256::new(),
            checksum,
            trailer: Vec::new(),
            decoded_bytes: 0,
            declared_bytes,
        }
    }

    /// The checksum the body was checked with, once it has all been read.
    pub fn checksum(&self) -> Option<(&'static str, String)> {
        self.checksum.as_ref().map(Checksum::header)
    }

    /// More raw bytes into the buffer; false at the inner body's end.
    async fn fill(&mut self) -> Result<bool, NodeError> {
        if self.inner_done {
            return Ok(false);
        }
        match self.inner.next_chunk().await? {
            Some(bytes) => {
                self.buf.extend_from_slice(&bytes);
                Ok(true)
            }
            None => {
                self.inner_done = true;
                Ok(false)
            }
        }
    }

    /// The next CRLF-ended line (without it), reading more as needed.
    async fn line(&mut self) -> Result<Option<Vec<u8>>, NodeError> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(at).to_vec();
                self.buf.advance(2);
                return Ok(Some(line));
            }
            if self.buf.len() > LINE_MAX_BYTES {
                return Err(bad_framing("a chunk header or trailer line is too long"));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    fn start_chunk(&mut self, line: &[u8]) -> Result<u64, NodeError> {
        let line =
            std::str::from_utf8(line).map_err(|_| bad_framing("a chunk header is not text"))?;
        let (size, extension) = line.split_once(';').unwrap_or((line, ""));
        let size = u64::from_str_radix(size.trim(), 16)
            .map_err(|_| bad_framing("a chunk size is not hexadecimal"))?;
        if self.signer.is_some() {
            let signature = extension
                .strip_prefix("chunk-signature=")
                .ok_or_else(|| bad_framing("a chunk of a signed body has no chunk-signature"))?;
            self.chunk_signature = signature.trim().to_owned();
            self.chunk_hash = Sha256::new();
        }
        Ok(size)
    }

    fn end_chunk(&mut self) -> Result<(), NodeError> {
        let Some(signer) = &self.signer else { return Ok(()) };
        let hash = hex::encode(std::mem::take(&mut self.chunk_hash).finalize());
        let to_sign = sigv4::chunk_string_to_sign(
            &signer.amz_date,
            &signer.scope,
            &self.previous_signature,
            &hash,
        );
        let expected = sigv4::signature(&signer.key, &to_sign);
        if !sigv4::same(&expected, &self.chunk_signature) {
            return Err(NodeError::DigestMismatch(
                "a chunk's signature does not match its bytes".into(),
            ));
        }
        self.previous_signature = expected;
        Ok(())
    }

    fn take_trailer_line(&mut self, line: &[u8]) -> Result<(), NodeError> {
        let text = std::str::from_utf8(line).map_err(|_| bad_framing("a trailer is not text"))?;
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad_framing("a trailer line is not name:value"));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if name == "x-amz-trailer-signature" {
            return self.check_trailer_signature(&value);
        }
        self.trailer.extend_from_slice(line);
        self.trailer.push(b'\n');
        // The checker was made from `x-amz-trailer`, before the bytes.
        if let Some(checksum) = self.checksum.as_mut().filter(|c| c.name == name) {
            checksum.expected = Some(value);
        }
        Ok(())
    }

    fn check_trailer_signature(&self, signature: &str) -> Result<(), NodeError> {
        let Some(signer) = &self.signer else { return Ok(()) };
        let to_sign = sigv4::trailer_string_to_sign(
            &signer.amz_date,
            &signer.scope,
            &self.previous_signature,
            &self.trailer,
        );
        if !sigv4::same(&sigv4::signature(&signer.key, &to_sign), signature) {
            return Err(NodeError::DigestMismatch("the trailer's signature does not match".into()));
        }
        Ok(())
    }

    /// At the end of the decoded bytes: the declared length and checksum.
    fn finish(&mut self) -> Result<(), NodeError> {
        if let Some(declared) = self.declared_bytes {
            if declared != self.decoded_bytes {
                return Err(NodeError::BodyFailed(format!(
                    "the body decodes to {} bytes, x-amz-decoded-content-length says {declared}",
                    self.decoded_bytes
                )));
            }
        }
        if let Some(checksum) = &self.checksum {
            checksum.verify()?;
        }
        Ok(())
    }

    fn pass(&mut self, bytes: &[u8]) {
        self.decoded_bytes += bytes.len() as u64;
        if let Some(checksum) = &mut self.checksum {
            checksum.update(bytes);
        }
        if self.signer.is_some() {
            self.chunk_hash.update(bytes);
        }
    }

    async fn next_decoded(&mut self) -> Result<Option<Bytes>, NodeError> {
        loop {
            match self.stage {
                Stage::Header => {
                    let line = self.line().await?.ok_or_else(truncated)?;
                    let size = self.start_chunk(&line)?;
                    self.stage = if size == 0 {
                        self.end_chunk()?;
                        Stage::Trailer
                    } else {
                        Stage::Data { remaining: size }
                    };
                }
                Stage::Data { remaining } => {
                    if self.buf.is_empty() && !self.fill().await? {
                        return Err(truncated());
                    }
                    let take = remaining.min(self.buf.len() as u64) as usize;
                    let bytes = self.buf.split_to(take).freeze();
                    self.pass(&bytes);
                    let remaining = remaining - take as u64;
                    self.stage =
                        if remaining == 0 { Stage::DataEnd } else { Stage::Data { remaining } };
                    return Ok(Some(bytes));
                }
                Stage::DataEnd => {
                    let line = self.line().await?.ok_or_else(truncated)?;
                    if !line.is_empty() {
                        return Err(bad_framing("a chunk is longer than its size"));
                    }
                    self.end_chunk()?;
                    self.stage = Stage::Header;
                }
                Stage::Trailer => match self.line().await? {
                    None => {
                        self.stage = Stage::Done;
                    }
                    Some(line) if line.is_empty() => self.stage = Stage::Done,
                    Some(line) => self.take_trailer_line(&line)?,
                },
                Stage::Done => {
                    self.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}

impl<S: ChunkSource> ChunkSource for S3Body<S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
        if self.chunked {
            return self.next_decoded().await;
        }
        match self.inner.next_chunk().await? {
            Some(bytes) => {
                self.pass(&bytes);
                Ok(Some(bytes))
            }
            None => {
                self.finish()?;
                Ok(None)
            }
        }
    }
}

fn bad_framing(message: &str) -> NodeError {
    NodeError::BodyFailed(format!("aws-chunked body: {message}"))
}

fn truncated() -> NodeError {
    NodeError::BodyFailed("aws-chunked body: it ended inside a chunk".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &[u8], signer: Option<ChunkSigner>) -> Result<Vec<u8>, NodeError> {
        let trailer = signer.is_none();
        decode_with(body, signer, trailer)
    }

    /// `trailer`: as `x-amz-trailer: x-amz-checksum-crc32` announces it.
    fn decode_with(
        body: &[u8],
        signer: Option<ChunkSigner>,
        trailer: bool,
    ) -> Result<Vec<u8>, NodeError> {
        futures_lite::future::block_on(async {
            // Fed a few bytes at a time: framing splits anywhere.
            let pieces: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect::<Vec<_>>();
            let checksum = Checksum::for_header("x-amz-checksum-crc32", None).filter(|_| trailer);
            let mut source = S3Body::chunked(Pieces(pieces.into()), signer, checksum, None);
            let mut out = Vec::new();
            while let Some(bytes) = source.next_chunk().await? {
                out.extend_from_slice(&bytes);
            }
            Ok(out)
        })
    }

    struct Pieces(std::collections::VecDeque<Bytes>);

    impl ChunkSource for Pieces {
        async fn next_chunk(&mut self) -> Result<Option<Bytes>, NodeError> {
            Ok(self.0.pop_front())
        }
    }

    #[test]
    fn unsigned_chunks_with_a_trailer_decode_to_the_bytes_and_check_the_crc() {
        let data = b"hello, chunked world";
        let crc =
            base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes());
        let body = format!(
            "5\r\nhello\r\n{:x}\r\n{}\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n",
            data.len() - 5,
            std::str::from_utf8(&data[5..]).unwrap()
        );
        assert_eq!(decode(body.as_bytes(), None).unwrap(), data);
        let wrong = body.replace(&crc, "AAAAAA==");
        assert!(matches!(decode(wrong.as_bytes(), None), Err(NodeError::DigestMismatch(_))));
        let short = &body.as_bytes()[..body.len() - 40];
        assert!(decode(short, None).is_err(), "a body cut short never ends cleanly");
        let no_trailer = body.replace(&format!("x-amz-checksum-crc32:{crc}\r\n"), "");
        let missing = decode(no_trailer.as_bytes(), None);
        assert!(missing.is_err(), "an announced trailer checksum must come");
    }

    #[test]
    fn crc32c_is_the_castagnoli_checksum() {
        // RFC 3720's test vector: 32 bytes of zeros.
        let mut checksum = Checksum::for_header("x-amz-checksum-crc32c", None).unwrap();
        checksum.update(&[0; 32]);
        let expected =
            base64::engine::general_purpose::STANDARD.encode(0x8a91_36aa_u32.to_be_bytes());
        assert_eq!(checksum.value(), expected);
    }

    #[test]
    fn signed_chunks_are_checked_against_the_chain() {
        let credential =
            sigv4::Credential::parse("AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request")
                .unwrap();
        let signer = ChunkSigner {
            key: sigv4::signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", &credential),
            amz_date: "20130524T000000Z".into(),
            scope: credential.scope(),
            seed: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
        };
        let sign = |previous: &str, data: &[u8]| {
            let to_sign = sigv4::chunk_string_to_sign(
                &signer.amz_date,
                &signer.scope,
                previous,
                &sigv4::sha256_hex(data),
            );
            sigv4::signature(&signer.key, &to_sign)
        };
        let first = sign(&signer.seed, b"abc");
        let last = sign(&first, b"");
        let body = format!("3;chunk-signature={first}\r\nabc\r\n0;chunk-signature={last}\r\n\r\n");
        assert_eq!(decode(body.as_bytes(), Some(signer.clone())).unwrap(), b"abc");
        let tampered = body.replace("abc", "abd");
        assert!(decode(tampered.as_bytes(), Some(signer)).is_err());
    }
}
