//! One peer-RPC connection on a tokio runtime (the raft thread): dial,
//! answer the callee's `Challenge` with a `Hello` and check its proof
//! (`handshake`), then request → reply, one at a time.
//!
//! Owns the socket, the receive buffer and the deadlines; what a message
//! means is the caller's. Any error leaves the connection unusable: the
//! caller drops it and dials again.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::frame::{encode_message, FrameBuf, FrameBytes, FrameError};
use crate::handshake::{Accepted, Caller, HandshakeError};
use crate::message::Message;
use crate::peer_io::{read_frame, read_frame_bounded, write_frame};

/// Largest `Challenge` read before the callee has proven anything.
pub const CHALLENGE_BYTES_MAX: u32 = 256;

/// A connection to a peer that has accepted our `Hello` and proven it
/// holds the cluster secret.
pub struct PeerConnection {
    stream: Compat<TcpStream>,
    receive: FrameBuf,
    send: FrameBytes,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect: {0}")]
    Connect(io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("cannot encode the message: {0}")]
    Encode(String),
    #[error("peer refused: {code} {message}")]
    Refused { code: u16, message: String },
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
}

impl PeerConnection {
    /// Dials `address` and runs the handshake as `caller`; answers the
    /// connection and what the callee said of itself.
    pub async fn connect(
        address: &str,
        caller: &Caller,
        timeout: Duration,
    ) -> Result<(PeerConnection, Accepted), PeerError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| PeerError::Timeout(timeout))?
            .map_err(PeerError::Connect)?;
        let _ = stream.set_nodelay(true);
        let mut connection = PeerConnection {
            stream: stream.compat(),
            receive: FrameBuf::new(),
            send: FrameBytes::new(),
        };
        let challenge = async {
            read_frame_bounded(
                &mut connection.stream,
                &mut connection.receive,
                CHALLENGE_BYTES_MAX,
            )
            .await?;
            connection.receive.deserialize()
        };
        let challenge = match tokio::time::timeout(timeout, challenge)
            .await
            .map_err(|_| PeerError::Timeout(timeout))??
        {
            Message::Challenge { nonce } => nonce,
            Message::Error { code, message } => return Err(PeerError::Refused { code, message }),
            _ => return Err(HandshakeError::NoChallenge.into()),
        };
        let (hello, nonce) = caller.hello(&challenge);
        let ack = connection.call(&hello, timeout).await?;
        let accepted = caller.check_ack(&ack, &nonce, &challenge)?;
        Ok((connection, accepted))
    }

    /// Sends `request` and waits for the one reply, within `timeout`. A
    /// `Message::Error` reply is returned as [`PeerError::Refused`].
    pub async fn call(
        &mut self,
        request: &Message,
        timeout: Duration,
    ) -> Result<Message, PeerError> {
        encode_message(request, &mut self.send).map_err(|e| PeerError::Encode(e.to_string()))?;
        let exchange = async {
            write_frame(&mut self.stream, &self.send).await.map_err(FrameError::Io)?;
            read_frame(&mut self.stream, &mut self.receive).await?;
            self.receive.deserialize()
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout(timeout))??;
        match reply {
            Message::Error { code, message } => Err(PeerError::Refused { code, message }),
            reply => Ok(reply),
        }
    }
}
