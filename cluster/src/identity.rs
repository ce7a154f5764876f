//! Who this node is to its peers: its id and addresses, the cluster it
//! belongs to and the secret that proves it (docs/design.md §8).
//!
//! Kept in the data directory: `cluster-secret` (mode 0600, the secret every
//! member holds; `join-token` before, renamed at start) and `cluster-id`
//! (hex, learnt at bootstrap or from the first peer that accepts us).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use cairn_engine::DataDir;
use cairn_net::{Caller, ClusterKey};
use cairn_raft::{Member, NodeId};

const SECRET_FILE: &str = "cluster-secret";
/// Where the secret was kept before it had its present name.
const OLD_SECRET_FILE: &str = "join-token";
const CLUSTER_ID_FILE: &str = "cluster-id";
/// What the peer handshake's key is derived for.
const PEER_PURPOSE: &str = "peer handshake";

pub struct Identity {
    pub id: NodeId,
    pub member: Member,
    peer_key: ClusterKey,
    /// Seals access keys' secrets (`access.rs`).
    pub seal_key: ClusterKey,
    /// Signs read URLs handed to clients that carry no credentials.
    pub url_key: ClusterKey,
    /// 0 until known (a node that has not joined yet).
    cluster_id: AtomicU64,
    data: DataDir,
}

/// How the node comes up, decided from the data directory and the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Nothing here yet and no `--join`: found a new cluster.
    Bootstrap,
    /// Join the cluster at the `--join` address.
    Join,
    /// A member already: raft's stored state says the rest.
    Rejoin,
}

/// Reads a file holding a secret, refusing it when anyone but its owner
/// may read it (as ssh does with keys): a secret others can read is no
/// longer the cluster's alone.
pub fn read_secret_file(path: &Path) -> anyhow::Result<Option<String>> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} holds a secret and may be read by others (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
}

impl Identity {
    /// Reads or creates the secret and cluster id. `raft_initialized` says
    /// whether raft already has a membership on disk; `given` is the
    /// secret handed to a joining node.
    pub fn load(
        data: &DataDir,
        id: NodeId,
        member: Member,
        join: bool,
        given: Option<&str>,
        raft_initialized: bool,
    ) -> anyhow::Result<(Identity, Start)> {
        let (old, path) = (data.root().join(OLD_SECRET_FILE), data.root().join(SECRET_FILE));
        if old.exists() && !path.exists() {
            std::fs::rename(&old, &path).context("cannot rename join-token to cluster-secret")?;
        }
        let stored = read_secret_file(&path)?;
        let given = given.map(str::trim).filter(|t| !t.is_empty());
        let start = match (raft_initialized, join) {
            (true, _) => Start::Rejoin,
            (false, true) => Start::Join,
            (false, false) if stored.is_some() => bail!(
                "this node started joining a cluster and never finished: start it again with \
                 --join HOST:PEERPORT"
            ),
            (false, false) => Start::Bootstrap,
        };
        let secret = match (stored, given) {
            (Some(stored), Some(given)) if stored != given => bail!(
                "the join token given differs from {}; this node belongs to another cluster \
                 (use a fresh --data directory to join this one)",
                path.display()
            ),
            (Some(stored), _) => stored,
            (None, Some(given)) => given.to_owned(),
            (None, None) if start == Start::Join => bail!(
                "joining needs the cluster's join token: pass --join-token-file FILE or set \
                 CAIRN_JOIN_TOKEN (print it on a member with `cairn admin join-token --data DIR`)"
            ),
            (None, None) => {
                uuid::Uuid::new_v4().simple().to_string()
                    + &uuid::Uuid::new_v4().simple().to_string()
            }
        };
        data.write_secret_durably(SECRET_FILE, format!("{secret}\n").as_bytes())
            .context("cannot write the cluster secret")?;
        let cluster_id = match data.read_file(CLUSTER_ID_FILE)? {
            Some(text) => u64::from_str_radix(text.trim(), 16)
                .with_context(|| format!("{CLUSTER_ID_FILE} is not a hex number"))?,
            None if start == Start::Bootstrap => {
                let fresh = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
                data.write_file_durably(CLUSTER_ID_FILE, format!("{fresh:016x}\n").as_bytes())?;
                fresh
            }
            None => 0,
        };
        let identity = Identity {
            id,
            member,
            peer_key: ClusterKey::derive(secret.as_bytes(), PEER_PURPOSE),
            seal_key: ClusterKey::derive(secret.as_bytes(), crate::access::SEAL_PURPOSE),
            url_key: ClusterKey::derive(secret.as_bytes(), crate::access::URL_PURPOSE),
            cluster_id: AtomicU64::new(cluster_id),
            data: data.clone(),
        };
        Ok((identity, start))
    }

    /// The key proving membership in peer handshakes.
    pub fn peer_key(&self) -> &ClusterKey {
        &self.peer_key
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Acquire)
    }

    /// Adopts the cluster id a peer told us, if we had none.
    pub fn learn_cluster_id(&self, cluster_id: u64) {
        if cluster_id == 0 || self.cluster_id() != 0 {
            return;
        }
        if self
            .cluster_id
            .compare_exchange(0, cluster_id, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let text = format!("{cluster_id:016x}\n");
            if let Err(error) = self.data.write_file_durably(CLUSTER_ID_FILE, text.as_bytes()) {
                tracing::warn!(%error, "cannot record the cluster id");
            }
        }
    }

    /// Who this node says it is when it dials a peer.
    pub fn caller(&self) -> Caller {
        Caller {
            key: self.peer_key.clone(),
            node_id: self.id,
            cluster_id: self.cluster_id(),
            http: self.member.http.clone(),
            peer: self.member.peer.clone(),
            zone: self.member.zone.clone(),
        }
    }

    /// Whether a caller that proved the secret belongs here: the same
    /// cluster, where both know theirs.
    pub fn admits(&self, cluster_id: u64) -> Result<(), &'static str> {
        let ours = self.cluster_id();
        if ours != 0 && cluster_id != 0 && ours != cluster_id {
            return Err("the caller belongs to another cluster");
        }
        Ok(())
    }
}
