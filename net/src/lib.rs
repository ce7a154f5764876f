//! cairn-net: hyper 1.x on glommio.
//!
//! Owns the small adapter that lets hyper drive connections on a glommio
//! executor (IO traits, timer, executor), and the `SO_REUSEPORT` listeners
//! that give every shard its own accept queue on one port. It knows no
//! policy and no storage.

pub mod io;
pub mod listener;
pub mod rt;

pub use io::GlommioIo;
pub use listener::{glommio_listener, ReusePortListeners};
pub use rt::{LocalExecutor, LocalTimer};
