//! cairn's frontends over one node (docs/design.md §9): the `/v1/` HTTP
//! API (`v1`), WebDAV (`dav`) and the MogileFS tracker protocol
//! (`mogile`), on the HTTP plumbing they share (`http`), behind one
//! router. No frontend names another; only the router and
//! [`serve_shard`] name them all.

pub mod dav;
pub mod http;
pub mod mogile;
pub mod router;
pub mod v1;

use std::rc::Rc;

use cairn_node::Shard;

/// Serves one shard's client listeners until they fail: HTTP (the `/v1/`
/// API and WebDAV) and the MogileFS tracker protocol.
pub async fn serve_shard(
    shard: Rc<Shard>,
    http: glommio::net::TcpListener,
    mogile: glommio::net::TcpListener,
) {
    glommio::spawn_local(mogile::serve(shard.clone(), mogile)).detach();
    http::server::accept_connections(
        shard,
        http,
        http::server::HTTP_CONNECTIONS_PER_SHARD_MAX,
        |shard, stream| http::server::serve_connection(shard, stream, router::handle),
    )
    .await;
}
