//! Who this node is to its peers: its id and addresses, the cluster it
//! belongs to and the join token that proves it (docs/design.md §8).
//!
//! Kept in the data directory: `join-token` (mode 0600, the secret every
//! member holds) and `cluster-id` (hex, learnt at bootstrap or from the
//! first peer that accepts us).

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{bail, Context as _};
use cairn_engine::DataDir;
use cairn_net::Message;
use cairn_raft::{Member, NodeId};
use sha2::{Digest as _, Sha256};

const TOKEN_FILE: &str = "join-token";
const CLUSTER_ID_FILE: &str = "cluster-id";

pub struct Identity {
    pub id: NodeId,
    pub member: Member,
    token_sha256: [u8; 32],
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

impl Identity {
    /// Reads or creates the token and cluster id. `raft_initialized` says
    /// whether raft already has a membership on disk.
    pub fn load(
        data: &DataDir,
        id: NodeId,
        member: Member,
        join: bool,
        join_token: Option<&str>,
        raft_initialized: bool,
    ) -> anyhow::Result<(Identity, Start)> {
        let stored = data.read_file(TOKEN_FILE)?.map(|t| t.trim().to_owned());
        let given = join_token.map(str::trim).filter(|t| !t.is_empty());
        let start = match (raft_initialized, join) {
            (true, _) => Start::Rejoin,
            (false, true) => Start::Join,
            (false, false) if stored.is_some() => bail!(
                "this node started joining a cluster and never finished: start it again with \
                 --join HOST:PEERPORT"
            ),
            (false, false) => Start::Bootstrap,
        };
        let token = match (stored, given) {
            (Some(stored), Some(given)) if stored != given => bail!(
                "--join-token differs from the token in {}/{TOKEN_FILE}; this node belongs to \
                 another cluster (use a fresh --data directory to join this one)",
                data.root().display()
            ),
            (Some(stored), _) => stored,
            (None, Some(given)) => given.to_owned(),
            (None, None) if start == Start::Join => bail!(
                "joining needs the cluster's join token: pass --join-token or set \
                 CAIRN_JOIN_TOKEN (print it on a member with `cairn admin join-token --data DIR`)"
            ),
            (None, None) => {
                uuid::Uuid::new_v4().simple().to_string()
                    + &uuid::Uuid::new_v4().simple().to_string()
            }
        };
        data.write_secret_durably(TOKEN_FILE, format!("{token}\n").as_bytes())
            .context("cannot write the join token")?;
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
            token_sha256: Sha256::digest(token.as_bytes()).into(),
            cluster_id: AtomicU64::new(cluster_id),
            data: data.clone(),
        };
        Ok((identity, start))
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

    pub fn hello(&self) -> Message {
        Message::Hello {
            node_id: self.id,
            cluster_id: self.cluster_id(),
            token_sha256: self.token_sha256,
            http: self.member.http.clone(),
            peer: self.member.peer.clone(),
            zone: self.member.zone.clone(),
        }
    }

    /// Whether a caller's `Hello` proves it belongs here: the same token,
    /// and the same cluster where both know theirs.
    pub fn admits(&self, token_sha256: &[u8; 32], cluster_id: u64) -> Result<(), &'static str> {
        // Compared without an early exit, so timing tells nothing.
        let difference =
            token_sha256.iter().zip(&self.token_sha256).fold(0u8, |d, (a, b)| d | (a ^ b));
        if difference != 0 {
            return Err("wrong join token");
        }
        let ours = self.cluster_id();
        if ours != 0 && cluster_id != 0 && ours != cluster_id {
            return Err("the caller belongs to another cluster");
        }
        Ok(())
    }
}
