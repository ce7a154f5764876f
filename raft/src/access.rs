//! Access keys as the cluster state keeps them (docs/design.md §8): an id,
//! a secret sealed with a key of the cluster secret (never in the clear,
//! here or in the log), and what the key may do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one key may do in one domain. `owner` covers the domain's classes
/// and its deletion; `write` covers PUT, DELETE, MKCOL, MOVE and the like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub owner: bool,
}

/// One access key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// A name for people (`cairn admin key ls`).
    pub name: String,
    /// The secret sealed with the cluster's sealing key, hex.
    pub sealed_secret: String,
    /// Members, classes, domains and keys: the whole cluster.
    #[serde(default)]
    pub admin: bool,
    /// Per domain, what the key may do there.
    #[serde(default)]
    pub domains: BTreeMap<String, Grant>,
    /// When it was made (unix ms, by the node that made it).
    #[serde(default)]
    pub created_unix_ms: u64,
}

/// Access keys the cluster keeps at most.
pub const ACCESS_KEY_COUNT_MAX: usize = 65_536;
/// Longest key id.
pub const ACCESS_KEY_ID_BYTES_MAX: usize = 64;
/// Longest sealed secret (hex).
pub const SEALED_SECRET_BYTES_MAX: usize = 512;
