//! `hyper::rt::Read` / `Write` over glommio's `TcpStream`.
//!
//! Errors are passed up as they are (a read error is not an EOF), and hyper's
//! uninitialised read buffer is never exposed as `&mut [u8]`: bytes are read
//! into an initialised staging buffer owned by the connection and copied in.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use hyper::rt::ReadBufCursor;

/// Bytes read from the socket per call at most.
const STAGING_BYTES: usize = 64 * 1024;
/// Vectored writes up to this size are gathered into one `send`; larger
/// ones go buffer by buffer, so a big body is never copied.
const GATHER_MAX_BYTES: usize = 16 * 1024;

pub struct GlommioIo {
    stream: TcpStream,
    staging: Box<[u8]>,
    gather: Vec<u8>,
}

impl GlommioIo {
    pub fn new(stream: TcpStream) -> GlommioIo {
        GlommioIo {
            stream,
            staging: vec![0u8; STAGING_BYTES].into_boxed_slice(),
            gather: Vec::with_capacity(GATHER_MAX_BYTES),
        }
    }
}

impl hyper::rt::Read for GlommioIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(this.staging.len());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.stream).poll_read(cx, &mut this.staging[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&this.staging[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for GlommioIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    /// hyper hands over response head and body as separate buffers when the
    /// transport is vectored: small ones are gathered into one `send`, a
    /// large body is written as it is, without hyper copying it first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total_bytes: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() > 1 && total_bytes <= GATHER_MAX_BYTES {
            this.gather.clear();
            for buf in bufs {
                this.gather.extend_from_slice(buf);
            }
            return Pin::new(&mut this.stream).poll_write(cx, &this.gather);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        Pin::new(&mut this.stream).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.get_mut().stream).poll_close(cx) {
            // The peer may have gone first; that is how connections end.
            Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::NotConnected => {
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}
