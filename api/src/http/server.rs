//! Accepting connections on one shard's listener, and serving HTTP/1.1 on
//! them with hyper through cairn-net's glommio adapter.

use std::rc::Rc;
use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::future::Future;

use cairn_net::{GlommioIo, LocalTimer};
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;

use super::request::{drain, expects_continue};
use super::{RequestBody, ResBody};
use cairn_node::Shard;

/// Open client connections per shard; more are closed at once.
pub const HTTP_CONNECTIONS_PER_SHARD_MAX: usize = 16 * 1024;

/// Accepts connections on one shard's listener and serves each with
/// `serve`, at most `open_max` at once (more are closed at once). Every
/// connection gets `--write-timeout-ms`, so a client that stops reading
/// cannot hold it.
pub async fn accept_connections<F, Fut>(
    shard: Rc<Shard>,
    listener: glommio::net::TcpListener,
    open_max: usize,
    serve: F,
) where
    F: Fn(Rc<Shard>, glommio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                // Out of descriptors, usually: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.get() >= open_max {
            continue;
        }
        let _ = stream.set_nodelay(true);
        if let Err(error) = stream.set_write_timeout(Some(shard.node.config.write_timeout)) {
            tracing::warn!(%error, "cannot set a write timeout; closing the connection");
            continue;
        }
        open.set(open.get() + 1);
        let open = open.clone();
        let serving = serve(shard.clone(), stream);
        glommio::spawn_local(async move {
            serving.await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// Serves HTTP/1.1 on one connection, each request with `handle`.
pub async fn serve_connection<H, Fut>(shard: Rc<Shard>, stream: glommio::net::TcpStream, handle: H)
where
    H: Fn(Rc<Shard>, Request<Incoming>) -> Fut + 'static,
    Fut: Future<Output = Result<Response<ResBody>, Infallible>> + 'static,
{
    let header_timeout = shard.node.config.header_timeout;
    let service = hyper::service::service_fn(move |request| handle(shard.clone(), request));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(LocalTimer)
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(GlommioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Answers one request with `dispatch` (`failed` turns its error into a
/// response), counting and timing it: what every HTTP listener does.
pub async fn answer<E>(
    shard: Rc<Shard>,
    request: Request<Incoming>,
    dispatch: impl AsyncFnOnce(&Rc<Shard>, &Parts, &mut RequestBody) -> Result<Response<ResBody>, E>,
    failed: impl FnOnce(E, &Parts) -> Response<ResBody>,
) -> Response<ResBody> {
    let started = Instant::now();
    let _active = shard.enter_request();
    let (parts, incoming) = request.into_parts();
    let mut body = RequestBody::new(incoming);
    let response = match dispatch(&shard, &parts, &mut body).await {
        Ok(response) => response,
        Err(error) => {
            // A client that asked `Expect: 100-continue` and was refused
            // before we read has sent nothing: leave it so.
            if body.polled() || !expects_continue(&parts) {
                drain(&mut body).await;
            }
            failed(error, &parts)
        }
    };
    shard.node.shard_metrics[shard.id].observe(
        &parts.method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
