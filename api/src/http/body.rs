//! Response bodies: empty, one buffer, or a stream of verified chunks read
//! from disk. Not `Send`: a response lives on the shard that made it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_lite::Stream;
use hyper::body::{Body, Frame, SizeHint};

pub type ChunkStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>>>>;

pub enum ResBody {
    Full(Option<Bytes>),
    Stream {
        chunks: ChunkStream,
        remaining_bytes: u64,
    },
    /// A body of unknown length (chunked encoding), e.g. a large listing.
    Chunked(ChunkStream),
}

impl ResBody {
    pub fn empty() -> ResBody {
        ResBody::Full(None)
    }

    pub fn bytes(bytes: impl Into<Bytes>) -> ResBody {
        ResBody::Full(Some(bytes.into()))
    }

    pub fn json(value: &serde_json::Value) -> ResBody {
        let mut text = serde_json::to_vec(value).expect("a JSON value always serialises");
        text.push(b'\n');
        ResBody::bytes(text)
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResBody::Stream { chunks, remaining_bytes } => {
                if *remaining_bytes == 0 {
                    return Poll::Ready(None);
                }
                match chunks.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        *remaining_bytes = remaining_bytes.saturating_sub(chunk.len() as u64);
                        Poll::Ready(Some(Ok(Frame::data(chunk))))
                    }
                    Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
                    Poll::Ready(None) => Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob ended before its length",
                    )))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ResBody::Chunked(chunks) => {
                chunks.as_mut().poll_next(cx).map(|c| c.map(|c| c.map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Full(bytes) => bytes.is_none(),
            ResBody::Stream { remaining_bytes, .. } => *remaining_bytes == 0,
            ResBody::Chunked(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResBody::Stream { remaining_bytes, .. } => SizeHint::with_exact(*remaining_bytes),
            ResBody::Chunked(_) => SizeHint::default(),
        }
    }
}
