//! A one-node, one-shard cairn node in a temporary directory, assembled
//! the way `cairn serve` assembles one (src/serve.rs) but with no HTTP or
//! MogileFS listener: the data directory and metadata, the control plane
//! (a one-member raft cluster on a loopback peer port), the `Node`, and a
//! glommio executor running shard 0 with its mesh, its work queue and its
//! collector. Each test body runs on that executor, bounded in time.
//!
//! The control plane has no way to stop: its raft thread outlives the test
//! (until the test process exits). The directory is removed when the test
//! ends all the same.

// Not every test file (nor every stage of one) uses every helper.
#![allow(dead_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cairn_cluster::work::work_queue;
use cairn_cluster::{ClusterConfig, Storage, Timing};
use cairn_engine::reader::warm_up_direct_io;
use cairn_engine::{Clock, DataDir, Digest, Meta, NodeStats};
use cairn_node::metrics::ShardMetrics;
use cairn_node::read::ReadBody;
use cairn_node::upload::{put, InMemory, KeyRef, PutRequest};
use cairn_node::{Node, NodeConfig, NodeError, Shard, ShardRequest};
use cairn_raft::Member;
use futures_lite::StreamExt as _;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::LocalExecutorBuilder;
use sha2::{Digest as _, Sha256};

/// Longest a test body may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the one-node cluster may take to elect itself and apply its
/// own membership.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(30);
/// Registered io_uring memory for the executor: small, since unprivileged
/// processes may lock only 8 MiB and tests run side by side.
const IO_MEMORY_BYTES: usize = 256 << 10;
/// Blobs up to this size are kept inline in their metadata record.
pub const INLINE_MAX_BYTES: u64 = 64 << 10;

/// What a test may change of the node it gets.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The shard's blob cache; 0 makes every read go to the disk.
    pub cache_size_bytes: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { cache_size_bytes: 8 << 20 }
    }
}

/// Runs `body` on a fresh one-node, one-shard node with default options.
pub fn run<F, Fut>(body: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    run_with(Options::default(), body);
}

/// Runs `body` on a fresh one-node, one-shard node, once the cluster has
/// bootstrapped; fails the test if the body takes longer than
/// [`TEST_TIMEOUT`]. The node's directory is removed afterwards.
pub fn run_with<F, Fut>(options: Options, body: F)
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let root = tempfile::tempdir().expect("make a temporary directory");
    let (node, work) = start_node(root.path(), options);
    let executor = LocalExecutorBuilder::default()
        .name("test-shard-0")
        .io_memory(IO_MEMORY_BYTES)
        .spawn(move || async move {
            warm_up_direct_io(&node.data.probe_path()).await.expect("direct I/O warm-up");
            let mesh = MeshBuilder::<ShardRequest, Full>::full(1, 16);
            let (senders, receivers) = mesh.join().await.expect("join the shard mesh");
            let shard = Shard::new(0, node, senders);
            shard.serve_mesh(receivers);
            glommio::spawn_local(shard.clone().collect_garbage()).detach();
            glommio::spawn_local(cairn_node::replication::serve_work(shard.clone(), work)).detach();
            let test = async {
                wait_for_bootstrap(&shard).await;
                body(shard.clone()).await;
            };
            let timeout = async {
                glommio::timer::sleep(TEST_TIMEOUT).await;
                panic!("the test did not finish within {TEST_TIMEOUT:?}");
            };
            futures_lite::future::or(test, timeout).await;
        })
        .expect("start the shard executor");
    let finished = executor.join();
    drop(root);
    finished.expect("the test body panicked (see above)");
}

/// Opens the data directory and metadata, starts the control plane and
/// builds the node, as `cairn serve` does for one shard.
fn start_node(
    root: &Path,
    options: Options,
) -> (Arc<Node>, futures_channel::mpsc::Receiver<cairn_cluster::work::ShardWork>) {
    let data = DataDir::open(root).expect("open the data directory");
    let node_id = data.node_id().expect("make a node id");
    let meta = Meta::open_with_column_families(&data.meta_dir(), cairn_raft::COLUMN_FAMILIES)
        .expect("open the metadata");
    let stats = Arc::new(NodeStats::default());
    let peer_listener = TcpListener::bind("127.0.0.1:0").expect("bind a peer port");
    let peer_addr = peer_listener.local_addr().expect("peer port address");
    // No HTTP listener: nothing here serves HTTP, the address is only named.
    let http_listen = SocketAddr::from(([127, 0, 0, 1], 9));
    let member =
        Member { http: http_listen.to_string(), peer: peer_addr.to_string(), ..Member::default() };
    let (work_sender, work) = work_queue();
    let storage = Storage { data: data.clone(), meta: meta.clone(), stats: stats.clone() };
    let control = cairn_cluster::start(
        storage,
        vec![work_sender],
        ClusterConfig {
            id: node_id,
            member,
            peer_listener,
            join: None,
            join_token: None,
            timing: Timing {
                heartbeat: Duration::from_millis(100),
                down_after: Duration::from_secs(1),
                dead_after: Duration::from_secs(60),
                rescan_interval: Duration::from_secs(5),
                tombstone_grace: Duration::from_secs(86_400),
                handoff_grace: Duration::from_secs(300),
                max_clock_skew: Duration::from_secs(60),
            },
            cpu: None,
            copies_in_flight_max: 1,
            auth_forced: false,
        },
    )
    .expect("start the control plane");
    let node = Arc::new(Node {
        data,
        meta,
        control,
        clock: Clock::new(node_id),
        config: NodeConfig {
            mogile_admin: false,
            mogile_domains: Vec::new(),
            s3_domain: None,
            s3_region: "us-east-1".into(),
            max_object_size_bytes: 1 << 30,
            inline_max_bytes: INLINE_MAX_BYTES,
            cache_size_bytes: options.cache_size_bytes,
            body_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            shard_count: 1,
            copy_rate_bytes_per_s: 0,
            http_listen,
            mogile_upload_ttl: Duration::from_secs(60),
            no_store: false,
            scrub_rate_bytes_per_s: 0,
            scrub_period: Duration::from_secs(3600),
            disk_reserve_bytes: 0,
            body_min_rate_bytes_per_s: 0,
            mogile_idle_timeout: Duration::from_secs(60),
        },
        stats,
        shard_metrics: vec![Arc::new(ShardMetrics::default())],
        space: Default::default(),
    });
    (node, work)
}

/// Waits until this node leads its one-node cluster and the applied state
/// names it as a member (so that the key's homes, which are members, exist).
async fn wait_for_bootstrap(shard: &Shard) {
    let control = &shard.node.control;
    let me = control.id();
    eventually("the one-node cluster bootstraps", BOOTSTRAP_TIMEOUT, || {
        control.leader() == Some(me) && control.read(|state| state.member(me).is_some())
    })
    .await;
}

/// Polls `done` every 10 ms until it holds; panics naming `what` if it
/// does not within `deadline`.
pub async fn eventually(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting until {what}");
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// `len` bytes that differ from one 64 KiB block to the next.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8 ^ seed).collect()
}

pub fn sha256_of(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// A new key in domain `test`, uploaded from memory with the default class.
pub fn put_request(key: &str, declared_bytes: Option<u64>) -> PutRequest {
    PutRequest {
        target: KeyRef { domain: "test".into(), key: key.into() },
        class: None,
        content_type: "application/octet-stream".into(),
        headers: String::new(),
        md5_etag: false,
        expected_sha256: None,
        declared_bytes,
    }
}

/// Stores `bytes` as `test/<key>` (length declared) and answers its record.
pub async fn put_bytes(
    shard: &Rc<Shard>,
    key: &str,
    bytes: &[u8],
) -> Result<cairn_engine::KeyRecord, NodeError> {
    let request = put_request(key, Some(bytes.len() as u64));
    put(shard, request, &mut InMemory(Some(Bytes::copy_from_slice(bytes)))).await
}

/// All the bytes of a read body.
pub async fn collect(body: ReadBody) -> std::io::Result<Vec<u8>> {
    match body {
        ReadBody::Memory(bytes) => Ok(bytes.to_vec()),
        ReadBody::Stream { mut chunks, length_bytes } => {
            let mut all = Vec::with_capacity(length_bytes as usize);
            while let Some(chunk) = chunks.next().await {
                all.extend_from_slice(&chunk?);
            }
            Ok(all)
        }
    }
}

/// The files in `dir` (not recursive).
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list a directory")
        .map(|entry| entry.expect("read a directory entry").path())
        .collect()
}
