//! The control plane (docs/design.md §1, §6–§8): openraft on a thread of
//! its own with a current-thread tokio runtime, the peer listener, joining,
//! the leader's tracker duties, the home role and placement. The shards see
//! it only through [`Control`]: reads of the applied cluster state that
//! never wait, and admin changes handed to the raft thread. It reaches the
//! shards only through the queues of [`work::ShardWork`] it is given at
//! start, and the node's storage through [`Storage`]: it never names the
//! node crate or a shard.

pub mod access;
mod anti_entropy;
mod handoff;
mod identity;
mod listing;
mod network;
mod ops;
mod outbox;
mod peers;
pub mod placement;
mod plane;
mod props;
mod ranges;
mod replicas;
mod server;
mod speaker;
mod tombstones;
mod tracker;
pub mod work;

use std::collections::BTreeMap;
use std::net::TcpListener as StdTcpListener;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use cairn_engine::{DataDir, Meta, NodeStats};
use cairn_raft::{
    default_raft_config, AccessKey, ClusterState, ClusterView, Command, CommandResult, LogStore,
    Member, MemberState, NodeId, Raft, StateMachine,
};
use openraft::storage::RaftLogStorage;

pub use identity::read_secret_file;
use identity::{Identity, Start};
pub use listing::{start_after, ListPage, ListUnanswered, LIST_LIMIT_MAX};
pub use ops::{node_id_text, ClusterReport, ControlError};
use ops::{AdminOp, OpReply};
use peers::Peers;
use plane::Core;
pub use plane::{LocalReport, Timing};
pub use replicas::HomesUnreachable;

/// How often a node checks that the cluster knows it as it is.
const REGISTER_INTERVAL: Duration = Duration::from_secs(1);
/// Time for a join request to be answered (the learner is added first).
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how this node takes part in the cluster.
pub struct ClusterConfig {
    pub id: NodeId,
    pub member: Member,
    /// Bound already, so that port 0 is resolved before `ports.json`.
    pub peer_listener: StdTcpListener,
    pub join: Option<String>,
    pub join_token: Option<String>,
    pub timing: Timing,
    /// The core the raft thread is pinned to, if any.
    pub cpu: Option<usize>,
    /// Most background copies a node takes part in at once.
    pub copies_in_flight_max: u32,
    /// Client requests need an access key even on a lone node (a listener
    /// off loopback, or `--auth required`).
    pub auth_forced: bool,
}

/// The file the first admin key is written to, `<id>:<secret>`.
pub const ADMIN_KEY_FILE: &str = "admin-key";

/// The shards' handle on the control plane; cheap to clone.
#[derive(Clone)]
pub struct Control {
    core: Arc<Core>,
    runtime: tokio::runtime::Handle,
}

impl Control {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.core.id()
    }

    /// The applied cluster state, read under a short lock; never waits for
    /// raft.
    pub fn read<T>(&self, f: impl FnOnce(&ClusterState) -> T) -> T {
        self.core.view.read(f)
    }

    pub fn view(&self) -> &ClusterView {
        &self.core.view
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.core.leader()
    }

    pub fn term(&self) -> u64 {
        self.core.raft.metrics().borrow().current_term
    }

    /// Has `command` committed by the leader (forwarded there from a
    /// follower) and answers what applying it said.
    pub async fn submit(&self, command: Command) -> Result<CommandResult, ControlError> {
        match self.run(AdminOp::Command(command)).await? {
            OpReply::Command(result) => Ok(result),
            other => Err(ControlError::Raft(format!("unexpected reply {other:?}"))),
        }
    }

    /// The cluster as the leader sees it (or this node, without a leader).
    pub async fn report(&self) -> ClusterReport {
        match self.run(AdminOp::Report).await {
            Ok(OpReply::Report(report)) => report,
            _ => self.core.report(),
        }
    }

    /// Tells the key's homes, in the background, that this node holds the
    /// key's current version.
    pub fn announce_local(&self, domain: &str, key: &str) {
        let core = self.core.clone();
        core.begin_announce(domain, key);
        let (domain, key) = (domain.to_owned(), key.to_owned());
        self.runtime.spawn(async move { core.announce_change(domain, key).await });
    }

    /// What the key's homes know of it (the newest version any live home
    /// answers), `None` when the homes that answered never heard of it, an
    /// error when none could be asked.
    pub async fn lookup(
        &self,
        domain: &str,
        key: &str,
    ) -> Result<Option<cairn_net::IndexEntry>, HomesUnreachable> {
        let core = self.core.clone();
        let (domain, key) = (domain.to_owned(), key.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.lookup(&domain, &key).await);
        });
        from_other_thread(answer).await.unwrap_or(Err(HomesUnreachable))
    }

    /// A page of the cluster's keys of `domain` with `prefix`, not below
    /// `start` (every member asked; see `listing`).
    pub async fn list(
        &self,
        domain: &str,
        prefix: &str,
        start: &str,
        limit: usize,
        partial: bool,
    ) -> Result<ListPage, ListUnanswered> {
        let core = self.core.clone();
        let (domain, prefix, start) = (domain.to_owned(), prefix.to_owned(), start.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let page = core.list_cluster(&domain, &prefix, &start, limit, partial).await;
            let _ = reply.send(page);
        });
        from_other_thread(answer).await.unwrap_or(Err(ListUnanswered(Vec::new())))
    }

    /// Waits, a bounded time, for this node's announcement of the key to
    /// end; answers whether every live home confirmed `version`.
    pub async fn confirmed(&self, domain: &str, key: &str, version: cairn_engine::Version) -> bool {
        let core = self.core.clone();
        let (domain, key) = (domain.to_owned(), key.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.confirmed(&domain, &key, version).await);
        });
        from_other_thread(answer).await.unwrap_or(false)
    }

    /// What the key's homes know of it, asked now (not from the location
    /// cache).
    pub async fn lookup_now(
        &self,
        domain: &str,
        key: &str,
    ) -> Result<Option<cairn_net::IndexEntry>, HomesUnreachable> {
        let core = self.core.clone();
        let (domain, key) = (domain.to_owned(), key.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.lookup_homes(&domain, &key).await);
        });
        from_other_thread(answer).await.unwrap_or(Err(HomesUnreachable))
    }

    /// The newest version of the key its homes know, asked now (not from
    /// the location cache); `None` when they know none or cannot be asked.
    pub async fn newest_version(&self, domain: &str, key: &str) -> Option<cairn_engine::Version> {
        let entry = self.lookup_now(domain, key).await.ok()??;
        Some(cairn_engine::Version { hlc: entry.hlc, node_id: entry.writer })
    }

    /// Tells this node's shard that `newer` replaces what it holds of the key.
    pub fn superseded(&self, newer: &cairn_net::IndexEntry) {
        // On the raft thread: it spawns tokio tasks, and a shard has no
        // tokio runtime (a shard that called it directly panicked).
        let (core, newer) = (self.core.clone(), newer.clone());
        self.runtime.spawn(async move { core.superseded(&newer) });
    }

    /// Whether this node is the cluster's only member (then every version
    /// it knows was made or seen by its own clock).
    pub fn is_alone(&self) -> bool {
        self.core.is_alone()
    }

    /// The ids of the key's homes (docs/design.md §5).
    pub fn homes(&self, domain: &str, key: &str) -> Vec<NodeId> {
        self.core.homes(domain, key).into_iter().map(|(id, _)| id).collect()
    }

    /// The members a proxy writes a new version of the key to, best first:
    /// the `alive` stores (not proxies), in the key's rendezvous order, so
    /// the first is usually one of the key's homes too.
    pub fn stores_for(&self, domain: &str, key: &str) -> Vec<(NodeId, Member)> {
        self.read(|s| {
            let stores: Vec<NodeId> = s
                .members()
                .iter()
                .filter(|(_, r)| r.state == MemberState::Alive && !r.member.no_store)
                .map(|(id, _)| *id)
                .collect();
            placement::homes(&stores, domain, key, stores.len())
                .into_iter()
                .filter_map(|id| Some((id, s.member(id)?.member.clone())))
                .collect()
        })
    }

    /// The dead properties kept for `path` by a holder of that key other
    /// than this node (the first that answers); `None`: none answered.
    pub async fn props_from_holders(&self, domain: &str, path: &str) -> Option<Vec<u8>> {
        let core = self.core.clone();
        let (domain, path) = (domain.to_owned(), path.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.props_from_holders(&domain, &path).await);
        });
        from_other_thread(answer).await.ok().flatten()
    }

    /// The dead properties the node at `peer` keeps for `path`.
    pub async fn props_at(&self, peer: &str, domain: &str, path: &str) -> Option<Vec<u8>> {
        let core = self.core.clone();
        let (peer, domain, path) = (peer.to_owned(), domain.to_owned(), path.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.props_at(&peer, &domain, &path).await);
        });
        from_other_thread(answer).await.ok().flatten()
    }

    /// Writes `record` as the dead properties of `path` at every holder of
    /// the key but this node; answers how many took it, and of how many.
    pub async fn put_props_at_holders(
        &self,
        domain: &str,
        path: &str,
        record: Vec<u8>,
    ) -> (usize, usize) {
        let core = self.core.clone();
        let (domain, path) = (domain.to_owned(), path.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.put_props_at_holders(&domain, &path, record).await);
        });
        from_other_thread(answer).await.unwrap_or((0, 0))
    }

    pub async fn delete_everywhere(
        &self,
        domain: &str,
        key: &str,
        class: &str,
        version: cairn_engine::Version,
    ) -> usize {
        let core = self.core.clone();
        let (domain, key, class) = (domain.to_owned(), key.to_owned(), class.to_owned());
        let (reply, answer) = futures_channel::oneshot::channel();
        self.runtime.spawn(async move {
            let _ = reply.send(core.delete_everywhere(domain, key, class, version).await);
        });
        from_other_thread(answer).await.unwrap_or(0)
    }

    /// Tells the key's homes, in the background, that this node no longer
    /// holds `version` of the key (its copy was damaged and dropped).
    pub fn forget_holder(&self, domain: &str, key: &str, version: cairn_engine::Version) {
        let core = self.core.clone();
        let entry = cairn_net::IndexEntry {
            domain: domain.to_owned(),
            key: key.to_owned(),
            hlc: version.hlc,
            writer: version.node_id,
            sha256: [0; 32],
            size_bytes: 0,
            class: String::new(),
            content_type: String::new(),
            headers: String::new(),
            deleted: false,
            holders: Vec::new(),
            wanted: 0,
        };
        self.runtime.spawn(async move { core.forget_holder(entry).await });
    }

    /// Forgets where a key was found (a holder did not answer, say).
    pub fn forget_location(&self, domain: &str, key: &str) {
        self.core.forget_location(domain, key);
    }

    /// Who this node says it is when it dials a peer.
    pub fn caller(&self) -> cairn_net::Caller {
        self.core.identity.caller()
    }

    /// Whether client requests must carry an access key: once the cluster
    /// has had a second member (in `state`), or when this node was started
    /// so. Callers on a shard pass its cached state.
    pub fn auth_required(&self, state: &ClusterState) -> bool {
        self.core.auth_forced || state.clustered()
    }

    /// The secret of access key `id`, if its sealed secret opens.
    pub fn unseal(&self, id: &str, key: &AccessKey) -> Option<String> {
        access::unseal(&self.core.identity.seal_key, id, &key.sealed_secret)
    }

    /// Fresh credentials and the record that keeps them sealed.
    pub fn new_access_key(&self, name: &str, admin: bool) -> (String, String, AccessKey) {
        new_access_key(&self.core.identity, name, admin)
    }

    /// The key read URLs for clients without credentials are signed with.
    pub fn url_key(&self) -> &cairn_net::ClusterKey {
        &self.core.identity.url_key
    }

    /// A member's HTTP and peer addresses.
    pub fn addresses(&self, id: NodeId) -> Option<(String, String)> {
        self.read(|s| s.member(id).map(|r| (r.member.http.clone(), r.member.peer.clone())))
    }

    async fn run(&self, op: AdminOp) -> Result<OpReply, ControlError> {
        let (reply, answer) = futures_channel::oneshot::channel();
        let core = self.core.clone();
        self.runtime.spawn(async move {
            let _ = reply.send(core.execute(op, 0).await);
        });
        from_other_thread(answer).await.map_err(|_| ControlError::Stopped)?
    }
}

fn new_access_key(identity: &Identity, name: &str, admin: bool) -> (String, String, AccessKey) {
    let (id, secret) = access::fresh_credentials();
    let key = sealed_key(identity, &id, &secret, name, admin);
    (id, secret, key)
}

/// The record of key `id` with `secret` sealed, granted nothing in any domain.
fn sealed_key(identity: &Identity, id: &str, secret: &str, name: &str, admin: bool) -> AccessKey {
    AccessKey {
        name: name.to_owned(),
        sealed_secret: access::seal(&identity.seal_key, id, secret),
        admin,
        domains: BTreeMap::new(),
        created_unix_ms: plane::unix_ms(),
    }
}

/// Makes sure the cluster has an admin key: the leader of a cluster with
/// none makes one, writes it to `DATA/admin-key` (0600) first and prints it
/// once, then records it (so a crash in between finds the file and
/// records that key on the next start).
async fn ensure_admin_key(core: Arc<Core>) {
    let mut ticker = tokio::time::interval(REGISTER_INTERVAL);
    loop {
        ticker.tick().await;
        if core.leader() != Some(core.id()) || core.view.read(|s| s.keys_made()) {
            continue;
        }
        // A new leader may not have applied the whole log yet: what it
        // sees of the keys must be the cluster's, not a stale view.
        if core.raft.ensure_linearizable().await.is_err() || core.view.read(|s| s.keys_made()) {
            continue;
        }
        let data = &core.storage.data;
        let existing = data.root().join(ADMIN_KEY_FILE);
        let (id, key) = match identity::read_secret_file(&existing) {
            Ok(Some(text)) => match text.split_once(':') {
                Some((id, secret)) => {
                    (id.to_owned(), sealed_key(&core.identity, id, secret, "admin", true))
                }
                None => {
                    tracing::error!(path = %existing.display(), "not an admin key: <id>:<secret>");
                    return;
                }
            },
            Ok(None) => {
                let (id, secret, key) = new_access_key(&core.identity, "admin", true);
                let line = format!("{id}:{secret}\n");
                if let Err(error) = data.write_secret_durably(ADMIN_KEY_FILE, line.as_bytes()) {
                    tracing::error!(%error, "cannot write the admin key");
                    continue;
                }
                println!(
                    "cairn: the cluster's first admin key is {id}:{secret} (kept in {}; it is \
                     shown only this once)",
                    existing.display()
                );
                (id, key)
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the admin key file");
                return;
            }
        };
        match core.write(Command::PutAccessKey { id: id.clone(), key }).await {
            Ok(_) => tracing::info!(%id, "made the cluster's first admin key"),
            Err(error) => tracing::warn!(%error, "cannot record the admin key yet"),
        }
    }
}

/// What of the node's storage the control plane reads and writes: index
/// records in the metadata, blob files it sends to peers, and the key
/// counters it reports and updates while it sends.
#[derive(Clone)]
pub struct Storage {
    pub data: DataDir,
    pub meta: Meta,
    pub stats: Arc<NodeStats>,
}

/// Starts raft and the peer listener on their own thread; returns once
/// raft is running (bootstrapped, or ready to join). `shard_work` holds
/// one queue per shard, in shard order.
pub fn start(
    storage: Storage,
    shard_work: Vec<work::ShardWorkSender>,
    config: ClusterConfig,
) -> anyhow::Result<Control> {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            if let Some(cpu) = config.cpu {
                pin_to_cpu(cpu);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(anyhow::Error::from(error)));
                    return;
                }
            };
            runtime.block_on(async move {
                match boot(storage, shard_work, config).await {
                    Ok(core) => {
                        let control = Control { core, runtime: tokio::runtime::Handle::current() };
                        let _ = ready.send(Ok(control));
                        std::future::pending::<()>().await;
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
            });
        })
        .context("cannot start the raft thread")?;
    started.recv().context("the raft thread stopped while starting")?
}

async fn boot(
    storage: Storage,
    shard_work: Vec<work::ShardWorkSender>,
    config: ClusterConfig,
) -> anyhow::Result<Arc<Core>> {
    let db = storage.meta.db();
    let mut log_store = LogStore::open(db.clone()).context("cannot open the raft log")?;
    let state_machine = StateMachine::open(db).context("cannot open the cluster state")?;
    let view = state_machine.view();
    let initialized = {
        let vote = log_store.read_vote().await.context("cannot read the raft vote")?;
        let log = log_store.get_log_state().await.context("cannot read the raft log")?;
        vote.is_some() || log.last_log_id.is_some() || view.read(|s| s.last_applied().is_some())
    };
    let (identity, start) = Identity::load(
        &storage.data,
        config.id,
        config.member.clone(),
        config.join.is_some(),
        config.join_token.as_deref(),
        initialized,
    )?;
    let identity = Arc::new(identity);
    let raft_config = Arc::new(default_raft_config());
    let network = network::Network { identity: identity.clone() };
    let raft = Raft::new(config.id, raft_config, network, log_store, state_machine)
        .await
        .context("cannot start raft")?;
    let core = Arc::new(Core {
        identity: identity.clone(),
        raft,
        view,
        peers: Peers::new(identity.clone()),
        heartbeat_peers: Peers::new(identity),
        timing: config.timing,
        health: Mutex::default(),
        storage,
        shard_work,
        term_seen: Default::default(),
        copies: Mutex::default(),
        copies_in_flight_max: config.copies_in_flight_max,
        copy_ended: tokio::sync::Notify::new(),
        unplanned_needs: Mutex::default(),
        needs_cursor: Mutex::default(),
        announcing: Mutex::default(),
        members_changed: Mutex::new(std::time::Instant::now()),
        me: OnceLock::new(),
        auth_forced: config.auth_forced,
        key_health: Mutex::default(),
        locations: Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(replicas::LOCATION_CACHE_ENTRIES).expect("non-zero"),
        )),
    });
    let _ = core.me.set(Arc::downgrade(&core));
    config.peer_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(config.peer_listener)?;
    tokio::spawn(server::serve(core.clone(), listener));
    if start == Start::Bootstrap {
        let members = BTreeMap::from([(config.id, config.member.clone())]);
        core.raft.initialize(members).await.context("cannot bootstrap the cluster")?;
        tracing::info!(node_id = %node_id_text(config.id), "bootstrapped a new one-node cluster");
    }
    tokio::spawn(register(core.clone(), config.join));
    tokio::spawn(ensure_admin_key(core.clone()));
    tokio::spawn(tracker::run(core.clone()));
    tokio::spawn(tracker::run_replication(core.clone()));
    tokio::spawn(anti_entropy::run(core.clone()));
    tokio::spawn(tombstones::collect(core.clone()));
    tokio::spawn(outbox::drain(core.clone()));
    tokio::spawn(handoff::run(core.clone()));
    Ok(core)
}

/// Makes sure the cluster knows this node with its current addresses:
/// asks the `--join` seed until raft has us, then the leader (through any
/// member) whenever our record is missing or stale.
async fn register(core: Arc<Core>, seed: Option<String>) {
    let mut ticker = tokio::time::interval(REGISTER_INTERVAL);
    let mut attempts = 0u64;
    loop {
        ticker.tick().await;
        let me = &core.identity.member;
        let id = core.id();
        let recorded = core.view.read(|s| s.member(id).map(|r| r.member.clone()));
        let known_to_raft = core.peer_address(id).is_some();
        if recorded.as_ref() == Some(me)
            && core.peer_address(id).as_deref() == Some(me.peer.as_str())
        {
            continue;
        }
        let op = AdminOp::Join { id, member: me.clone() };
        let result = if core.leader().is_some() {
            core.execute(op, 0).await
        } else {
            // No leader known: ask the seed, or any other member, to pass
            // the request on to theirs.
            let others: Vec<String> = core.view.read(|s| {
                s.members()
                    .iter()
                    .filter(|(m, _)| **m != id)
                    .map(|(_, r)| r.member.peer.clone())
                    .collect()
            });
            let target = match (&seed, known_to_raft) {
                (Some(seed), false) => Some(seed.clone()),
                _ if !others.is_empty() => Some(others[attempts as usize % others.len()].clone()),
                _ => seed.clone(),
            };
            let Some(target) = target else { continue };
            match core.peers.forward(&target, &op, 0, JOIN_TIMEOUT).await {
                Ok(result) => result,
                Err(error) => Err(ControlError::PeerUnreachable {
                    address: target,
                    reason: error.to_string(),
                }),
            }
        };
        attempts += 1;
        match result {
            Ok(OpReply::Joined { cluster_id }) => {
                core.identity.learn_cluster_id(cluster_id);
                tracing::info!(node_id = %node_id_text(id), "registered with the cluster");
            }
            Ok(_) => {}
            Err(error) if attempts % 10 == 1 => {
                tracing::warn!(%error, "cannot register with the cluster yet; retrying");
            }
            Err(_) => {}
        }
    }
}

fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is a plain bit set handed to the kernel by pointer for
    // this thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(cpu, "cannot pin the raft thread");
        }
    }
}

/// Waits on a shard for a reply sent from another thread (the raft thread,
/// another shard) without handing that thread this task's waker. glommio
/// 0.9 gives a waker woken from another thread back to its executor
/// through a queue, and that path races with the end of the task: under
/// load (100k PUTs into a 3-node cluster) it freed a finished task twice
/// and the process aborted in `process_foreign_wakes`. So the reply is
/// polled: at once, then after 20 µs, doubling up to 1 ms between looks.
pub async fn from_other_thread<T>(
    mut answer: futures_channel::oneshot::Receiver<T>,
) -> Result<T, futures_channel::oneshot::Canceled> {
    let mut pause = std::time::Duration::from_micros(20);
    loop {
        if let Some(value) = answer.try_recv()? {
            return Ok(value);
        }
        glommio::timer::sleep(pause).await;
        pause = (pause * 2).min(POLL_PAUSE_MAX);
    }
}

/// Longest pause between two looks at a reply from another thread.
const POLL_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(1);
