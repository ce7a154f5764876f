//! Runs of the load generator against the in-memory blob server: request counting, body
//! verification, and open-loop latency that shows queueing instead of hiding it.

mod blob_server;

use std::time::Duration;

use blob_server::{Behaviour, BlobServer};
use loadgen::{Config, Mix, SizeDist, Workload};

fn config_for(server: &BlobServer) -> Config {
    Config {
        url_template: server.url_template(),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_exactly_the_requested_number() {
    let server = BlobServer::start(Behaviour::default()).await;
    let config = Config {
        workload: Workload::Get,
        keys: 50,
        concurrency: 4,
        prefill: true,
        verify: true,
        warmup: Duration::from_millis(200),
        requests: Some(200),
        ..config_for(&server)
    };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.requests, 200);
    assert_eq!(report.ops, 200);
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert_eq!(report.prefill_ops, 50);
    assert!(report.warmup_requests > 0, "a 200 ms warmup sends something");
    assert_eq!(server.requests(), 200 + report.warmup_requests + report.prefill_ops);
    assert_eq!(report.bytes, 200 * 4096);
    assert!(report.ops_per_s > 0.0 && report.mb_per_s > 0.0);
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.max >= report.latency_ms.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_exactly_the_requested_number() {
    let server = BlobServer::start(Behaviour::default()).await;
    let config = Config {
        workload: Workload::Put,
        sizes: SizeDist::parse("1k:1,3k:1").unwrap(),
        rate_per_s: Some(1000.0),
        concurrency: 4,
        warmup: Duration::from_millis(100),
        requests: Some(200),
        ..config_for(&server)
    };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.requests, 200);
    assert_eq!(report.ops, 200);
    assert_eq!(report.warmup_requests, 100);
    assert_eq!(server.requests(), 300);
    assert_eq!(report.rate, Some(1000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_catches_a_corrupted_body() {
    let server = BlobServer::start(Behaviour {
        corrupt_key: Some("k000003".to_string()),
        ..Behaviour::default()
    })
    .await;
    let config = Config {
        workload: Workload::Get,
        sizes: SizeDist::parse("4k:1,64k:1").unwrap(),
        keys: 8,
        concurrency: 2,
        prefill: true,
        verify: true,
        requests: Some(200),
        ..config_for(&server)
    };
    let report = loadgen::run(config).await.unwrap();
    let verify_errors = report.errors.get("verify").copied().unwrap_or(0);
    assert!(verify_errors > 0, "errors: {:?}", report.errors);
    // Only the one corrupted key fails; the other seven verify.
    assert_eq!(report.errors.len(), 1, "errors: {:?}", report.errors);
    assert_eq!(report.ops + verify_errors, 200);
    assert!(report.ops > verify_errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_keys_never_put_counts_404() {
    let server = BlobServer::start(Behaviour::default()).await;
    let config = Config { workload: Workload::Get, requests: Some(20), ..config_for(&server) };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.requests, 20);
    assert_eq!(report.ops, 0);
    assert_eq!(report.errors.get("404"), Some(&20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_count_as_connect_errors() {
    // Bind and drop a listener to find a port nothing listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = Config {
        url_template: format!("http://{addr}/{{key}}"),
        warmup: Duration::ZERO,
        duration: Duration::from_millis(300),
        ..Config::default()
    };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.ops, 0);
    assert!(report.errors.get("connect").copied().unwrap_or(0) > 0, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_against_nothing_fails_the_run() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = Config {
        url_template: format!("http://{addr}/{{key}}"),
        prefill: true,
        ..Config::default()
    };
    let error = loadgen::run(config).await.unwrap_err();
    assert!(error.to_string().contains("prefill"), "{error:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_run_sends_every_op_and_counts_them() {
    let server = BlobServer::start(Behaviour::default()).await;
    let config = Config {
        workload: Workload::Mixed,
        mix: Mix::parse("put=2,get=2,delete=1").unwrap(),
        keys: 20,
        concurrency: 3,
        verify: true,
        requests: Some(300),
        ..config_for(&server)
    };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.requests, 300);
    assert_eq!(server.requests(), 300);
    // GETs and DELETEs of keys not (or no longer) there are 404s, and nothing else fails:
    // whatever a GET finds is exactly what its key was PUT with.
    assert!(report.errors.keys().all(|kind| kind == "404"), "{:?}", report.errors);
    assert_eq!(report.ops + report.errors_total, 300);
    assert_eq!(report.mix.as_deref(), Some("put=2,get=2,delete=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_server_times_out() {
    let server =
        BlobServer::start(Behaviour { delay: Duration::from_millis(500), ..Behaviour::default() })
            .await;
    let config = Config {
        timeout: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        concurrency: 2,
        ..config_for(&server)
    };
    let report = loadgen::run(config).await.unwrap();
    assert_eq!(report.ops, 0);
    assert!(report.errors.get("timeout").copied().unwrap_or(0) >= 4, "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_queueing() {
    let behaviour = Behaviour { delay: Duration::from_millis(50), ..Behaviour::default() };
    let server = BlobServer::start(behaviour).await;
    let base = Config {
        concurrency: 1,
        duration: Duration::from_secs(1),
        timeout: Duration::from_secs(20),
        ..config_for(&server)
    };

    // 100 requests intended over 1 s, served one at a time at 50 ms each: the queue grows to
    // about 4.5 s, and the open loop's latency must show it.
    let open = loadgen::run(Config { rate_per_s: Some(100.0), ..base.clone() }).await.unwrap();
    assert_eq!(open.requests, 100);
    assert!(open.errors.is_empty(), "errors: {:?}", open.errors);
    assert!(open.latency_ms.p99 > 1000.0, "open-loop p99 {} ms", open.latency_ms.p99);
    assert!(open.latency_ms.p50 > 500.0, "open-loop p50 {} ms", open.latency_ms.p50);

    // The closed loop only ever waits for the server, so it sees the 50 ms itself.
    let closed = loadgen::run(base).await.unwrap();
    assert!(closed.ops >= 10, "closed loop did {} ops", closed.ops);
    assert!(closed.latency_ms.p50 >= 50.0, "closed-loop p50 {} ms", closed.latency_ms.p50);
    assert!(closed.latency_ms.p99 < 150.0, "closed-loop p99 {} ms", closed.latency_ms.p99);
}
