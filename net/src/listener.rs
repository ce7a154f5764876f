//! One listening socket per shard on the same address (`SO_REUSEPORT`):
//! the kernel spreads connections over the shards, and a connection lives
//! and dies on the core that accepted it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Pending connections per socket.
const BACKLOG: i32 = 1024;

/// Sockets bound and listening, to be handed one to each shard.
pub struct ReusePortListeners {
    pub local_addr: SocketAddr,
    sockets: Vec<OwnedFd>,
}

impl ReusePortListeners {
    /// Binds `count` sockets to `addr`. With port 0 the first socket picks
    /// a free port and the others join it.
    pub fn bind(addr: SocketAddr, count: usize) -> io::Result<ReusePortListeners> {
        assert!(count > 0, "at least one listener");
        let first = bind_one(addr)?;
        let local_addr = first.local_addr()?.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "listener has no IP address")
        })?;
        let mut sockets = vec![OwnedFd::from(first)];
        for _ in 1..count {
            sockets.push(OwnedFd::from(bind_one(local_addr)?));
        }
        Ok(ReusePortListeners { local_addr, sockets })
    }

    /// Splits into one raw socket per shard (they are `Send`).
    pub fn into_sockets(self) -> Vec<OwnedFd> {
        self.sockets
    }
}

/// Turns a socket made by [`ReusePortListeners::into_sockets`] into a glommio
/// listener; call on the executor that will accept from it.
pub fn glommio_listener(socket: OwnedFd) -> glommio::net::TcpListener {
    // SAFETY: the fd is a bound, listening TCP socket whose ownership moves here.
    unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) }
}

fn bind_one(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket)
}
