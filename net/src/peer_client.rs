//! One peer-RPC connection on a tokio runtime (the raft thread): dial,
//! introduce ourselves with a `Hello`, then request → reply, one at a time.
//!
//! Owns the socket, the receive buffer and the deadlines; what a message
//! means is the caller's. Any error leaves the connection unusable: the
//! caller drops it and dials again.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::frame::{encode_message, FrameBuf, FrameBytes, FrameError};
use crate::message::Message;
use crate::peer_io::{read_frame, write_frame};

/// A connection to a peer that has accepted our `Hello`.
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
}

impl PeerConnection {
    /// Dials `address` and sends `hello`; the peer must answer `HelloAck`,
    /// which is returned with the connection.
    pub async fn connect(
        address: &str,
        hello: &Message,
        timeout: Duration,
    ) -> Result<(PeerConnection, Message), PeerError> {
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
        let ack = connection.call(hello, timeout).await?;
        match ack {
            Message::HelloAck { .. } => Ok((connection, ack)),
            other => Err(unexpected(other)),
        }
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

fn unexpected(message: Message) -> PeerError {
    PeerError::Unexpected(format!("{message:?}"))
}
