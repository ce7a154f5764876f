//! cairn-net: hyper 1.x on glommio.
//!
//! Owns the small adapter that lets hyper drive connections on a glommio
//! executor (IO traits, timer, executor), and the `SO_REUSEPORT` listeners
//! that give every shard its own accept queue on one port. It knows no
//! policy and no storage.
//!
//! Also owns the peer-RPC wire format (`frame`, `message`, `peer_io`;
//! byte by byte in net/PROTOCOL.md), and the MogileFS tracker protocol's
//! line format (`tracker`; described in docs/mogilefs.md).

pub mod frame;
pub mod handshake;
pub mod io;
pub mod listener;
pub mod message;
pub mod mogile_line;
pub mod peer_client;
pub mod peer_io;
pub mod rt;

pub use io::GlommioIo;
pub use listener::{glommio_listener, ReusePortListeners};
pub use rt::{LocalExecutor, LocalTimer};

pub use frame::{
    decode_frame, encode_message, FrameBuf, FrameBytes, FrameError, FrameHeader, FrameKind,
};
pub use handshake::{Caller, ClusterKey};
pub use message::{ArchivedMessage, IndexEntry, KeyName, KeyRange, KeyVersion, Message, RaftRpc};
pub use peer_client::{PeerConnection, PeerError};
pub use peer_io::{read_blob_body, read_frame, read_frame_bounded, write_frame};
