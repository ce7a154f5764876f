//! cairn's frontends over one node (docs/design.md §9): the `/v1/` HTTP
//! API (`v1`), WebDAV (`dav`) and the MogileFS tracker protocol
//! (`mogile`) and S3 (`s3`, on its own listener), on the HTTP plumbing
//! they share (`http`), behind one
//! router. No frontend names another; only the router and
//! [`serve_shard`] name them all.

pub mod dav;
pub mod http;
pub mod mogile;
pub mod router;
pub mod s3;
pub mod v1;

use std::rc::Rc;

use cairn_node::Shard;

/// One shard's client listeners.
pub struct Listeners {
    /// The `/v1/` API and WebDAV.
    pub http: glommio::net::TcpListener,
    /// The MogileFS tracker protocol.
    pub mogile: glommio::net::TcpListener,
    pub s3: glommio::net::TcpListener,
}

/// Serves one shard's client listeners until they fail.
pub async fn serve_shard(shard: Rc<Shard>, listeners: Listeners) {
    glommio::spawn_local(mogile::serve(shard.clone(), listeners.mogile)).detach();
    glommio::spawn_local(s3::serve(shard.clone(), listeners.s3)).detach();
    http::server::accept_connections(
        shard,
        listeners.http,
        http::server::HTTP_CONNECTIONS_PER_SHARD_MAX,
        |shard, stream| http::server::serve_connection(shard, stream, router::handle),
    )
    .await;
}
