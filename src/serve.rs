//! `cairn serve`: opens the data directory, recovers from a crash, binds
//! the listeners and runs one glommio executor (shard) per core.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cairn_cluster::work::{work_queue, ShardWork};
use cairn_cluster::{ClusterConfig, Storage, Timing};
use cairn_engine::reader::warm_up_direct_io;
use cairn_engine::{Clock, DataDir, Meta, NodeStats};
use cairn_net::{glommio_listener, ReusePortListeners};
use cairn_node::metrics::ShardMetrics;
use cairn_node::{Node, NodeConfig, Shard, ShardRequest};
use cairn_raft::Member;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

/// Requests queued between two shards before senders wait.
const MESH_QUEUE_LEN: usize = 1024;
/// glommio's own default registered-buffer size per executor.
const IO_MEMORY_MAX_BYTES: usize = 10 << 20;
const IO_MEMORY_MIN_BYTES: usize = 256 << 10;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Data directory (blobs, metadata, node id).
    #[arg(long, env = "CAIRN_DATA", default_value = "./cairn-data")]
    pub data: PathBuf,
    /// Client HTTP API address; port 0 picks a free port (see DATA/ports.json).
    #[arg(long, env = "CAIRN_LISTEN", default_value = "127.0.0.1:7500")]
    pub listen: SocketAddr,
    /// MogileFS tracker protocol address; port 0 picks a free port (see DATA/ports.json).
    #[arg(long, env = "CAIRN_MOGILE_LISTEN", default_value = "127.0.0.1:7001")]
    pub mogile_listen: SocketAddr,
    /// A MogileFS upload opened (`create_open`) and not closed within this
    /// time is dropped with its bytes (`90s`, `30m`, `1h`, `500ms`).
    #[arg(long, env = "CAIRN_MOGILE_UPLOAD_TTL", default_value = "1h", value_parser = parse_duration)]
    pub mogile_upload_ttl: Duration,
    /// Executors (one per core by default).
    #[arg(long, env = "CAIRN_SHARDS")]
    pub shards: Option<usize>,
    /// Largest object accepted, in bytes (suffixes K, M, G, T allowed).
    #[arg(long, env = "CAIRN_MAX_OBJECT_SIZE", default_value = "64G", value_parser = parse_size)]
    pub max_object_size: u64,
    /// Blobs up to this size are kept in the metadata (RocksDB, one WAL
    /// sync shared by concurrent uploads) instead of a file of their own
    /// with its own syncs; 0 keeps every blob in a file.
    #[arg(long, env = "CAIRN_INLINE_MAX", default_value = "64K", value_parser = parse_size)]
    pub inline_max: u64,
    /// Memory for caching small hot blobs (up to 1 MiB each), split over the
    /// shards; O_DIRECT reads bypass the page cache, so this is what keeps
    /// hot blobs off the disk. 0 turns it off.
    #[arg(long, env = "CAIRN_CACHE_SIZE", default_value = "512M", value_parser = parse_size)]
    pub cache_size: u64,
    /// Registered io_uring buffer memory per shard, in bytes. glommio locks
    /// three times this much; the default fits RLIMIT_MEMLOCK.
    #[arg(long, env = "CAIRN_IO_MEMORY", value_parser = parse_size)]
    pub io_memory: Option<u64>,
    /// Microseconds an idle shard spins before it sleeps. Sleeping costs a
    /// process-wide memory barrier (IPIs to every core) in glommio, so a short
    /// spin pays off under load; 0 never spins (the default: nodes share
    /// machines with their clients in tests).
    #[arg(long, env = "CAIRN_SPIN_BEFORE_PARK_US", default_value_t = 0)]
    pub spin_before_park_us: u64,
    /// A request body that sends nothing for this long is answered 408.
    #[arg(long, env = "CAIRN_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// A client that accepts no response bytes for this long is dropped.
    #[arg(long, env = "CAIRN_WRITE_TIMEOUT_MS", default_value_t = 30_000)]
    pub write_timeout_ms: u64,
    /// A client must send its request headers within this time.
    #[arg(long, env = "CAIRN_HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// Peer RPC address (raft, heartbeats, joins); port 0 picks a free port.
    #[arg(long, env = "CAIRN_PEER_LISTEN", default_value = "127.0.0.1:7501")]
    pub peer_listen: SocketAddr,
    /// Join the cluster of the member whose peer address this is. Needed
    /// only the first time: a member restarts with just `--data`.
    #[arg(long, env = "CAIRN_JOIN", value_name = "HOST:PEERPORT")]
    pub join: Option<String>,
    /// Client requests need an access key even on a lone node bound to
    /// loopback (they always do in a cluster, or off loopback).
    #[arg(long, env = "CAIRN_AUTH_REQUIRED")]
    pub auth_required: bool,
    /// A file holding the cluster's join token (`cairn admin join-token` on
    /// a member), mode 0600; or set `CAIRN_JOIN_TOKEN`.
    #[arg(long, env = "CAIRN_JOIN_TOKEN_FILE", value_name = "FILE")]
    pub join_token_file: Option<std::path::PathBuf>,
    /// Refused: a token on the command line is visible to every user in
    /// `ps`. Kept only to say so.
    #[arg(long, hide = true)]
    pub join_token: Option<String>,
    /// This node's failure zone (rack, room): copies are spread over zones.
    #[arg(long, env = "CAIRN_ZONE", default_value = "")]
    pub zone: String,
    /// The host other nodes and redirected clients use to reach this one;
    /// defaults to the listen address's host (required when that is 0.0.0.0).
    #[arg(long, env = "CAIRN_ADVERTISE_HOST")]
    pub advertise_host: Option<String>,
    /// How often the leader heartbeats every member.
    #[arg(long, env = "CAIRN_HEARTBEAT", default_value = "1s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// A member that has not answered for this long is `down`.
    #[arg(long, env = "CAIRN_DOWN_AFTER", default_value = "3s", value_parser = parse_duration)]
    pub down_after: Duration,
    /// Bytes per second one node takes in by background copies, so that
    /// repair never floods it (suffixes K, M, G); 0 = unlimited.
    #[arg(long, env = "CAIRN_COPY_RATE", default_value = "512M", value_parser = parse_size)]
    pub copy_rate: u64,
    /// Most background copies one node takes part in at once (as source or target).
    #[arg(long, env = "CAIRN_COPIES_IN_FLIGHT", default_value_t = 16)]
    pub copies_in_flight: u32,
    /// A member down for this long is `dead`: its copies are made again elsewhere.
    #[arg(long, env = "CAIRN_DEAD_AFTER", default_value = "10m", value_parser = parse_duration)]
    pub dead_after: Duration,
    /// How often a node compares the next range of keys it holds (4096)
    /// with what their homes know, to find any change either side missed
    /// (the safety net under the outbox); 0 = never.
    #[arg(long, env = "CAIRN_RESCAN_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub rescan_interval: Duration,
    /// How long a deleted key's tombstone is kept at least, once every
    /// holder has confirmed its copy is gone: it covers copies no home has
    /// heard of yet (a copy under way, an announcement still queued).
    #[arg(long, env = "CAIRN_TOMBSTONE_GRACE", default_value = "24h", value_parser = parse_duration)]
    pub tombstone_grace: Duration,
    /// After the members change, how long a lookup that the key's homes
    /// answer with "unknown" also asks every other member (index records
    /// may still be on their way to new homes).
    #[arg(long, env = "CAIRN_HANDOFF_GRACE", default_value = "5m", value_parser = parse_duration)]
    pub handoff_grace: Duration,
    /// How far ahead of this node's wall clock another node's clock may be
    /// and still be followed; a version from further ahead is passed by the
    /// next write of its key only, and is logged and counted
    /// (`cairn_clock_ahead_total`, `/v1/cluster` shows each member's offset).
    #[arg(long, env = "CAIRN_MAX_CLOCK_SKEW", default_value = "60s", value_parser = parse_duration)]
    pub max_clock_skew: Duration,
    /// Run as a proxy: a member that holds no blobs and is never chosen as
    /// a copy target. It takes PUTs by streaming them to a store chosen by
    /// the key, serves reads from holders, and speaks every interface.
    #[arg(long, env = "CAIRN_NO_STORE")]
    pub no_store: bool,
    /// Bytes per second the background scrub re-reads to check every
    /// blob's checksums (suffixes K, M, G); 0 = never.
    #[arg(long, env = "CAIRN_SCRUB_RATE", default_value = "32M", value_parser = parse_size)]
    pub scrub_rate: u64,
    /// A scrub pass over every blob starts at most this often.
    #[arg(long, env = "CAIRN_SCRUB_PERIOD", default_value = "24h", value_parser = parse_duration)]
    pub scrub_period: Duration,
    /// Free space kept on the data directory's file system for the metadata
    /// database; below it new writes get 507 (suffixes K, M, G).
    #[arg(long, env = "CAIRN_DISK_RESERVE", default_value = "256M", value_parser = parse_size)]
    pub disk_reserve: u64,
    /// Once --body-timeout-ms has passed, a request body arriving slower
    /// than this many bytes per second on average is cut off with 408.
    #[arg(long, env = "CAIRN_BODY_MIN_RATE", default_value = "1K", value_parser = parse_size)]
    pub body_min_rate: u64,
    /// A MogileFS tracker connection that sends nothing for this long is
    /// closed; longer than --mogile-upload-ttl, so a client that keeps its
    /// tracker connection through an upload keeps it until create_close.
    #[arg(long, env = "CAIRN_MOGILE_IDLE_TIMEOUT", default_value = "90m", value_parser = parse_duration)]
    pub mogile_idle_timeout: Duration,
    /// The MogileFS port takes its admin commands (create_domain,
    /// create_class, set_state, …) even where HTTP asks for access keys;
    /// the protocol has no way to authenticate them.
    #[arg(long, env = "CAIRN_MOGILE_ADMIN")]
    pub mogile_admin: bool,
    /// The domains the MogileFS port serves, comma-separated; others are
    /// `unreg_domain` there. Default: every domain.
    #[arg(long, env = "CAIRN_MOGILE_DOMAINS", value_delimiter = ',')]
    pub mogile_domains: Vec<String>,
    /// S3 API address; port 0 picks a free port (see DATA/ports.json).
    #[arg(long, env = "CAIRN_S3_LISTEN", default_value = "127.0.0.1:7800")]
    pub s3_listen: SocketAddr,
    /// S3 virtual-host style: a request to `<bucket>.<this domain>` names
    /// the bucket by its host (path style always works).
    #[arg(long, env = "CAIRN_S3_DOMAIN")]
    pub s3_domain: Option<String>,
    /// The region S3 clients sign for (they assume us-east-1 when none is set).
    #[arg(long, env = "CAIRN_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
}

/// The node's listeners, bound before anything else so that port 0 is
/// resolved before `ports.json` is written.
struct Listeners {
    http: ReusePortListeners,
    mogile: ReusePortListeners,
    s3: ReusePortListeners,
    peer: std::net::TcpListener,
}

impl Listeners {
    fn bind(args: &ServeArgs, shard_count: usize) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            http: ReusePortListeners::bind(args.listen, shard_count)
                .with_context(|| format!("cannot listen on {}", args.listen))?,
            mogile: ReusePortListeners::bind(args.mogile_listen, shard_count)
                .with_context(|| format!("cannot listen on {}", args.mogile_listen))?,
            s3: ReusePortListeners::bind(args.s3_listen, shard_count)
                .with_context(|| format!("cannot listen on {}", args.s3_listen))?,
            peer: std::net::TcpListener::bind(args.peer_listen)
                .with_context(|| format!("cannot listen for peers on {}", args.peer_listen))?,
        })
    }
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::open(&args.data)
        .with_context(|| format!("cannot open data directory {}", args.data.display()))?;
    let node_id = data.node_id().context("cannot read or create the node id")?;
    let meta = Meta::open_with_column_families(&data.meta_dir(), cairn_raft::COLUMN_FAMILIES)
        .context("cannot open the metadata database")?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (shard_count, raft_cpu) = threads(args.shards, cpus);

    let (tmp_removed, uploads_removed) = cairn_node::recovery::recover(&data, &meta)?;
    tracing::info!(tmp_removed, uploads_removed, "recovered from the last stop");
    let stats = Arc::new(NodeStats::default());
    let clock = Clock::with_max_skew(node_id, args.max_clock_skew.as_millis() as u64);
    if let Some(newest) = cairn_node::recovery::count_keys(&meta, &stats)? {
        clock.resume_after(newest);
    }

    let listeners = Listeners::bind(&args, shard_count)?;
    let (http_addr, mogile_addr) = (listeners.http.local_addr, listeners.mogile.local_addr);
    let s3_addr = listeners.s3.local_addr;
    let peer_addr = listeners.peer.local_addr()?;
    let host = advertised_host(args.advertise_host.as_deref(), http_addr)?;
    let member = Member {
        http: format!("{host}:{}", http_addr.port()),
        peer: format!("{host}:{}", peer_addr.port()),
        zone: args.zone.clone(),
        mogile: format!("{host}:{}", mogile_addr.port()),
        no_store: args.no_store,
    };
    let (work_senders, work_receivers): (Vec<_>, Vec<_>) =
        (0..shard_count).map(|_| work_queue()).unzip();
    let storage = Storage { data: data.clone(), meta: meta.clone(), stats: stats.clone() };
    let config = cluster_config(&args, node_id, member, listeners.peer, raft_cpu)?;
    let control = cairn_cluster::start(storage, work_senders, config)?;
    let node = Arc::new(Node {
        data,
        meta,
        control,
        clock,
        config: node_config(&args, shard_count, http_addr),
        stats,
        shard_metrics: (0..shard_count).map(|_| Arc::new(ShardMetrics::default())).collect(),
        space: Default::default(),
    });

    let ports = serde_json::json!({
        "http": http_addr.port(),
        "peer": peer_addr.port(),
        "mogile": mogile_addr.port(),
        "s3": s3_addr.port(),
    });
    node.data.write_file_durably("ports.json", ports.to_string().as_bytes())?;
    tracing::info!(
        node_id = %node.node_id_hex(),
        http = %http_addr,
        peer = %peer_addr,
        mogile = %mogile_addr,
        s3 = %s3_addr,
        shards = shard_count,
        "cairn is serving"
    );
    cairn_node::recovery::spawn_orphan_sweep(node.clone());
    let sockets = listeners
        .http
        .into_sockets()
        .into_iter()
        .zip(listeners.mogile.into_sockets())
        .zip(listeners.s3.into_sockets())
        .map(|((http, mogile), s3)| ShardSockets { http, mogile, s3 });
    run_shards(&args, node, cpus, sockets.zip(work_receivers).collect())
}

fn cluster_config(
    args: &ServeArgs,
    id: u64,
    member: Member,
    peer_listener: std::net::TcpListener,
    cpu: Option<usize>,
) -> anyhow::Result<ClusterConfig> {
    if args.join_token.is_some() {
        anyhow::bail!(
            "--join-token is not taken on the command line, where every user sees it in `ps`: \
             put the token in a file only you can read and pass --join-token-file FILE, or set \
             CAIRN_JOIN_TOKEN"
        );
    }
    let join_token = match &args.join_token_file {
        Some(path) => Some(cairn_cluster::read_secret_file(path)?.ok_or_else(|| {
            anyhow::anyhow!("--join-token-file {} does not exist or is empty", path.display())
        })?),
        None => std::env::var("CAIRN_JOIN_TOKEN").ok(),
    };
    Ok(ClusterConfig {
        id,
        member,
        peer_listener,
        join: args.join.clone(),
        join_token,
        timing: Timing {
            heartbeat: args.heartbeat,
            down_after: args.down_after,
            dead_after: args.dead_after,
            rescan_interval: args.rescan_interval,
            tombstone_grace: args.tombstone_grace,
            handoff_grace: args.handoff_grace,
            max_clock_skew: args.max_clock_skew,
        },
        cpu,
        copies_in_flight_max: args.copies_in_flight.max(1),
        auth_forced: args.auth_required
            || [args.listen, args.peer_listen, args.mogile_listen, args.s3_listen]
                .iter()
                .any(|address| !address.ip().is_loopback()),
    })
}

fn node_config(args: &ServeArgs, shard_count: usize, http_listen: SocketAddr) -> NodeConfig {
    NodeConfig {
        max_object_size_bytes: args.max_object_size,
        inline_max_bytes: args.inline_max,
        cache_size_bytes: args.cache_size as usize,
        body_timeout: Duration::from_millis(args.body_timeout_ms),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        write_timeout: Duration::from_millis(args.write_timeout_ms),
        shard_count,
        copy_rate_bytes_per_s: args.copy_rate,
        http_listen,
        mogile_upload_ttl: args.mogile_upload_ttl,
        no_store: args.no_store,
        scrub_rate_bytes_per_s: args.scrub_rate,
        scrub_period: args.scrub_period,
        disk_reserve_bytes: args.disk_reserve,
        body_min_rate_bytes_per_s: args.body_min_rate,
        mogile_idle_timeout: args.mogile_idle_timeout,
        mogile_admin: args.mogile_admin,
        mogile_domains: args.mogile_domains.clone(),
        s3_domain: args.s3_domain.clone(),
        s3_region: args.s3_region.clone(),
    }
}

/// One shard's client listening sockets.
struct ShardSockets {
    http: OwnedFd,
    mogile: OwnedFd,
    s3: OwnedFd,
}

/// What each shard is started with: its sockets, and its queue of work
/// from the raft thread.
type ShardStart = (ShardSockets, futures_channel::mpsc::Receiver<ShardWork>);

/// Runs one pinned glommio executor per shard until they all stop.
fn run_shards(
    args: &ServeArgs,
    node: Arc<Node>,
    cpus: usize,
    starts: Vec<ShardStart>,
) -> anyhow::Result<()> {
    let shard_count = starts.len();
    let io_memory = args.io_memory.map_or_else(|| default_io_memory(shard_count), |b| b as usize);
    let mesh = MeshBuilder::<ShardRequest, _>::full(shard_count, MESH_QUEUE_LEN);
    let mut executors = Vec::with_capacity(shard_count);
    for (id, (sockets, work)) in starts.into_iter().enumerate() {
        let (node, mesh) = (node.clone(), mesh.clone());
        let mut builder = LocalExecutorBuilder::new(Placement::Fixed(id % cpus))
            .name(&format!("shard-{id}"))
            .io_memory(io_memory);
        if args.spin_before_park_us > 0 {
            builder = builder.spin_before_park(Duration::from_micros(args.spin_before_park_us));
        }
        let executor = builder
            .spawn(move || run_shard(id, node, mesh, sockets, work))
            .map_err(|error| anyhow::anyhow!("cannot start shard {id}: {error}"))?;
        executors.push(executor);
    }
    for executor in executors {
        executor.join().map_err(|error| anyhow::anyhow!("shard failed: {error}"))?;
    }
    Ok(())
}

/// Shards, and the core the raft thread gets to itself: with more than 2
/// cores and no `--shards`, one core is left to raft (docs/design.md §3); with 2 or
/// fewer it shares.
fn threads(shards: Option<usize>, cpus: usize) -> (usize, Option<usize>) {
    match shards {
        Some(shards) => {
            let shards = shards.max(1);
            (shards, (shards < cpus).then_some(shards))
        }
        None if cpus > 2 => (cpus - 1, Some(cpus - 1)),
        None => (cpus.max(1), None),
    }
}

fn advertised_host(advertise: Option<&str>, listen: SocketAddr) -> anyhow::Result<String> {
    match advertise {
        Some(host) => Ok(host.to_owned()),
        None if listen.ip().is_unspecified() => anyhow::bail!(
            "--listen {listen} does not say how other nodes reach this one: pass --advertise-host"
        ),
        None if listen.is_ipv6() => Ok(format!("[{}]", listen.ip())),
        None => Ok(listen.ip().to_string()),
    }
}

/// Parses `500ms`, `3s`, `10m`, `1h` (and combinations such as `1m30s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| format!("not a duration: {text:?} ({e})"))
}

async fn run_shard(
    id: usize,
    node: Arc<Node>,
    mesh: MeshBuilder<ShardRequest, glommio::channels::channel_mesh::Full>,
    sockets: ShardSockets,
    work: futures_channel::mpsc::Receiver<ShardWork>,
) {
    if let Err(error) = warm_up_direct_io(&node.data.probe_path()).await {
        tracing::warn!(%error, "direct I/O warm-up failed");
    }
    let Ok((senders, receivers)) = mesh.join().await else {
        tracing::error!(shard = id, "cannot join the shard mesh");
        return;
    };
    let shard = Shard::new(id, node, senders);
    shard.serve_mesh(receivers);
    glommio::spawn_local(shard.clone().collect_garbage()).detach();
    glommio::spawn_local(cairn_node::scrub::run(shard.clone())).detach();
    if shard.id == 0 {
        glommio::spawn_local(cairn_node::space::watch(shard.node.clone())).detach();
    }
    glommio::spawn_local(cairn_node::replication::serve_work(shard.clone(), work)).detach();
    let listeners = cairn_api::Listeners {
        http: glommio_listener(sockets.http),
        mogile: glommio_listener(sockets.mogile),
        s3: glommio_listener(sockets.s3),
    };
    cairn_api::serve_shard(shard, listeners).await;
}

/// Per-shard registered memory that fits RLIMIT_MEMLOCK (glommio registers
/// it in three rings). Where it does not fit, glommio falls back to
/// unregistered buffers and says so in the log.
fn default_io_memory(shard_count: usize) -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid out-pointer for getrlimit.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0;
    let lock_limit_bytes =
        (known && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as usize);
    io_memory_within(lock_limit_bytes, shard_count)
}

fn io_memory_within(lock_limit_bytes: Option<usize>, shard_count: usize) -> usize {
    let Some(limit) = lock_limit_bytes else {
        return IO_MEMORY_MAX_BYTES;
    };
    // Half the limit: the rings themselves are charged to it too.
    let per_shard = limit / 2 / (3 * shard_count) / 4096 * 4096;
    per_shard.clamp(IO_MEMORY_MIN_BYTES, IO_MEMORY_MAX_BYTES)
}

/// Parses `1048576`, `64K`, `10M`, `64G`, `1T` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&text[..text.len() - 1], 10),
        Some('M') => (&text[..text.len() - 1], 20),
        Some('G') => (&text[..text.len() - 1], 30),
        Some('T') => (&text[..text.len() - 1], 40),
        _ => (text, 0),
    };
    let number: u64 = digits.trim().parse().map_err(|_| format!("not a size: {text:?}"))?;
    number
        .checked_shl(shift)
        .filter(|n| n >> shift == number)
        .ok_or_else(|| format!("size too large: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("64G"), Ok(64 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn raft_gets_a_core_when_there_are_spare_ones() {
        assert_eq!(threads(None, 2), (2, None));
        assert_eq!(threads(None, 1), (1, None));
        assert_eq!(threads(None, 8), (7, Some(7)));
        assert_eq!(threads(Some(2), 8), (2, Some(2)));
        assert_eq!(threads(Some(4), 4), (4, None));
    }

    #[test]
    fn io_memory_fits_the_lock_limit() {
        for shards in [1, 2, 4] {
            let per_shard = io_memory_within(Some(8 << 20), shards);
            assert!(3 * shards * per_shard <= 4 << 20, "{shards} shards leave room for the rings");
            assert_eq!(per_shard % 4096, 0);
        }
        assert_eq!(io_memory_within(None, 2), IO_MEMORY_MAX_BYTES);
        assert!(default_io_memory(2) >= IO_MEMORY_MIN_BYTES);
    }
}
