//! Request bodies: a shared payload, optionally behind a unique 16-byte stamp. A
//! content-addressed server stores equal bytes once, so repeated PUTs of the same payload would
//! measure deduplication instead of writing; the stamp makes every body distinct without
//! copying the payload.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Bytes at the head of a body replaced by the stamp.
pub const STAMP_BYTES: usize = 16;

/// Numbers the stamps of this process; with the nonce, no two bodies repeat across runs.
static STAMPS: AtomicU64 = AtomicU64::new(0);

/// A body sent as at most two frames, with its exact length announced.
pub struct RequestBody {
    head: Option<Bytes>,
    tail: Option<Bytes>,
    remaining_bytes: u64,
}

impl RequestBody {
    pub fn whole(bytes: Bytes) -> RequestBody {
        let remaining_bytes = bytes.len() as u64;
        RequestBody { head: None, tail: Some(bytes), remaining_bytes }
    }

    /// `payload` with its first bytes replaced by a stamp unique to this process and `nonce`.
    pub fn stamped(payload: Bytes, nonce: u64) -> RequestBody {
        let mut stamp = [0u8; STAMP_BYTES];
        stamp[..8].copy_from_slice(&nonce.to_le_bytes());
        stamp[8..].copy_from_slice(&STAMPS.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let cut = STAMP_BYTES.min(payload.len());
        RequestBody {
            head: Some(Bytes::copy_from_slice(&stamp[..cut])),
            remaining_bytes: payload.len() as u64,
            tail: Some(payload.slice(cut..)),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.head.take().or_else(|| this.tail.take());
        if let Some(bytes) = &next {
            this.remaining_bytes -= bytes.len() as u64;
        }
        Poll::Ready(next.map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining_bytes == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(body: RequestBody) -> Vec<u8> {
        body.collect().await.expect("infallible").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn stamped_bodies_differ_and_keep_length_and_tail() {
        let payload = Bytes::from(vec![7u8; 100]);
        let first = collect(RequestBody::stamped(payload.clone(), 1)).await;
        let second = collect(RequestBody::stamped(payload.clone(), 1)).await;
        assert_eq!(first.len(), 100);
        assert_ne!(first, second);
        assert_eq!(&first[STAMP_BYTES..], &payload[STAMP_BYTES..]);
        let tiny = collect(RequestBody::stamped(Bytes::from_static(b"abc"), 1)).await;
        assert_eq!(tiny.len(), 3);
        assert_eq!(collect(RequestBody::whole(payload.clone())).await, payload.to_vec());
    }
}
