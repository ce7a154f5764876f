//! A tiny in-memory blob server for the tests: PUT stores the body, GET returns it (404 when
//! absent), DELETE removes it. It can sleep before every answer and corrupt one key's body on
//! GET, counts every request it sees, and stops by itself: when dropped, and at the latest
//! after `MAX_LIFETIME`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// No test runs this long; a server left behind by a failed test still goes away.
const MAX_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct Behaviour {
    /// Slept before answering every request.
    pub delay: Duration,
    /// GET of this key returns its body with the first byte flipped.
    pub corrupt_key: Option<String>,
}

pub struct BlobServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    accept_task: JoinHandle<()>,
}

impl BlobServer {
    pub async fn start(behaviour: Behaviour) -> BlobServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound listener has an address");
        let requests = Arc::new(AtomicU64::new(0));
        let state = Arc::new(State {
            behaviour,
            blobs: Mutex::new(HashMap::new()),
            requests: Arc::clone(&requests),
        });
        let accept_task = tokio::spawn(async move {
            let accept_loop = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let state = Arc::clone(&state);
                            async move { Ok::<_, Infallible>(state.answer(request).await) }
                        });
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        let _ = tokio::time::timeout(MAX_LIFETIME, connection).await;
                    });
                }
            };
            let _ = tokio::time::timeout(MAX_LIFETIME, accept_loop).await;
        });
        BlobServer { addr, requests, accept_task }
    }

    pub fn url_template(&self) -> String {
        format!("http://{}/v1/{{domain}}/{{key}}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for BlobServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

struct State {
    behaviour: Behaviour,
    blobs: Mutex<HashMap<String, Bytes>>,
    requests: Arc<AtomicU64>,
}

impl State {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if !self.behaviour.delay.is_zero() {
            tokio::time::sleep(self.behaviour.delay).await;
        }
        let key = request.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        let method = request.method().clone();
        let status_only = |status: StatusCode| {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            response
        };
        match method {
            Method::PUT => {
                let Ok(body) = request.into_body().collect().await else {
                    return status_only(StatusCode::BAD_REQUEST);
                };
                self.blobs.lock().unwrap().insert(key, body.to_bytes());
                status_only(StatusCode::CREATED)
            }
            Method::GET => {
                let Some(body) = self.blobs.lock().unwrap().get(&key).cloned() else {
                    return status_only(StatusCode::NOT_FOUND);
                };
                let body = if self.behaviour.corrupt_key.as_deref() == Some(key.as_str()) {
                    let mut bytes = body.to_vec();
                    if let Some(first) = bytes.first_mut() {
                        *first ^= 0xFF;
                    }
                    Bytes::from(bytes)
                } else {
                    body
                };
                Response::new(Full::new(body))
            }
            Method::DELETE => match self.blobs.lock().unwrap().remove(&key) {
                Some(_) => status_only(StatusCode::NO_CONTENT),
                None => status_only(StatusCode::NOT_FOUND),
            },
            _ => status_only(StatusCode::METHOD_NOT_ALLOWED),
        }
    }
}
