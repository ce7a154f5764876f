//! [`new_raft_config`]: openraft's timing and snapshot settings for cairn,
//! checked before raft starts.

use openraft::{Config, SnapshotPolicy};
use thiserror::Error;

/// How often the leader heartbeats its followers on a LAN.
pub const HEARTBEAT_MS_DEFAULT: u64 = 250;
/// Shortest silence after which a follower stands for election.
pub const ELECTION_MIN_MS_DEFAULT: u64 = 1000;
/// Longest silence after which a follower stands for election.
pub const ELECTION_MAX_MS_DEFAULT: u64 = 2000;
/// A follower must be allowed to miss at least this many heartbeats in a
/// row before it calls an election.
pub const HEARTBEATS_MISSED_MIN: u64 = 2;
/// Time to send and install a whole snapshot: well under 1 MiB of JSON in
/// practice, tens of MiB with every collection at its bound.
pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 10_000;
/// Log entries applied since the last snapshot that trigger a new one.
pub const SNAPSHOT_ENTRIES_SINCE_LAST: u64 = 5000;
/// Entries already in a snapshot that are kept in the log, so a follower
/// slightly behind catches up from the log rather than a snapshot.
pub const SNAPSHOT_ENTRIES_KEPT_MAX: u64 = 1000;
/// Entries sent in one append request.
pub const APPEND_ENTRIES_MAX: u64 = 300;
/// Name of the raft cluster in openraft's logs and metrics.
pub const CLUSTER_NAME: &str = "cairn";

#[derive(Debug, Error)]
pub enum RaftConfigError {
    #[error("the heartbeat interval must be at least 1 ms")]
    HeartbeatZero,
    #[error(
        "the election timeout ({election_min_ms} ms) must be at least {HEARTBEATS_MISSED_MIN} \
         heartbeats ({heartbeat_ms} ms each)"
    )]
    ElectionTooShort { election_min_ms: u64, heartbeat_ms: u64 },
    #[error(transparent)]
    Invalid(Box<openraft::ConfigError>),
}

/// A validated openraft config with the given timing (milliseconds).
pub fn new_raft_config(
    heartbeat_ms: u64,
    election_min_ms: u64,
    election_max_ms: u64,
) -> Result<Config, RaftConfigError> {
    if heartbeat_ms == 0 {
        return Err(RaftConfigError::HeartbeatZero);
    }
    if election_min_ms < heartbeat_ms.saturating_mul(HEARTBEATS_MISSED_MIN) {
        return Err(RaftConfigError::ElectionTooShort { election_min_ms, heartbeat_ms });
    }
    let config = Config {
        cluster_name: CLUSTER_NAME.to_owned(),
        heartbeat_interval: heartbeat_ms,
        election_timeout_min: election_min_ms,
        election_timeout_max: election_max_ms,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        max_payload_entries: APPEND_ENTRIES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_ENTRIES_SINCE_LAST),
        max_in_snapshot_log_to_keep: SNAPSHOT_ENTRIES_KEPT_MAX,
        ..Config::default()
    };
    config.validate().map_err(|e| RaftConfigError::Invalid(Box::new(e)))
}

/// [`new_raft_config`] with the LAN defaults.
pub fn default_raft_config() -> Config {
    new_raft_config(HEARTBEAT_MS_DEFAULT, ELECTION_MIN_MS_DEFAULT, ELECTION_MAX_MS_DEFAULT)
        .expect("the default raft timing is valid (tested)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = default_raft_config();
        assert_eq!(config.heartbeat_interval, HEARTBEAT_MS_DEFAULT);
        assert_eq!(config.election_timeout_min, ELECTION_MIN_MS_DEFAULT);
        assert_eq!(config.election_timeout_max, ELECTION_MAX_MS_DEFAULT);
        assert_eq!(config.cluster_name, CLUSTER_NAME);
    }

    #[test]
    fn bad_timing_is_refused() {
        assert!(matches!(new_raft_config(0, 1000, 2000), Err(RaftConfigError::HeartbeatZero)));
        assert!(matches!(
            new_raft_config(250, 400, 2000),
            Err(RaftConfigError::ElectionTooShort { .. })
        ));
        assert!(matches!(new_raft_config(250, 2000, 2000), Err(RaftConfigError::Invalid(_))));
        assert!(matches!(new_raft_config(250, 2000, 1000), Err(RaftConfigError::Invalid(_))));
    }
}
