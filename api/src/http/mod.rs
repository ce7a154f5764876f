//! HTTP plumbing every HTTP frontend shares: requests and bodies, the one
//! map from failures to statuses and JSON errors, ranges, the handling of
//! one key's PUT, GET and DELETE, and the connection loop.

pub mod auth;
pub mod body;
pub mod dates;
pub mod error;
pub mod kept;
pub mod key;
pub mod proxy;
pub mod range;
pub mod request;
pub mod server;
pub mod xml;

pub use body::ResBody;
pub use error::{ApiError, ErrorKind};
pub use request::{Query, RequestBody};
