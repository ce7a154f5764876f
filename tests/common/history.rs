//! A workload's history and what it allows at the end: every operation a
//! client ran, with its outcome, and per key the states a correct store
//! may end in (issue 12; the fault-matrix issue builds on it).

use std::collections::BTreeMap;
use std::time::Duration;

/// What a key holds: its bytes, or nothing (deleted, never written).
pub type State = Option<Vec<u8>>;

/// How a client saw an operation end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 2xx (or 404 to a DELETE): it happened.
    Acknowledged,
    /// Refused before the request was sent (connection refused): it did
    /// not happen.
    NotSent,
    /// An error answer, a reset or a timeout: it may have happened, now or
    /// later.
    Unknown,
}

#[derive(Default)]
struct KeyHistory {
    /// The state the last acknowledged operation left.
    acknowledged: State,
    /// States of operations whose outcome is unknown: each may still win
    /// (its version was taken when it started; it reaches the homes when
    /// the node that took it does).
    maybe: Vec<State>,
}

/// The history of a workload, per key.
#[derive(Default)]
pub struct History {
    keys: BTreeMap<String, KeyHistory>,
    pub counts: BTreeMap<&'static str, usize>,
}

impl History {
    pub fn record(&mut self, key: &str, op: &'static str, state: State, outcome: Outcome) {
        let entry = self.keys.entry(key.to_owned()).or_default();
        match outcome {
            Outcome::Acknowledged => entry.acknowledged = state,
            Outcome::Unknown => entry.maybe.push(state),
            Outcome::NotSent => {}
        }
        let label = match outcome {
            Outcome::Acknowledged => "acknowledged",
            Outcome::NotSent => "not sent",
            Outcome::Unknown => "unknown",
        };
        *self.counts.entry(op).or_default() += 1;
        *self.counts.entry(label).or_default() += 1;
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.keys.keys()
    }

    /// Whether `found` is a state the key may end in: the last
    /// acknowledged one, or one of an operation whose outcome is unknown.
    /// Never an older acknowledged state (a lost write, a deleted key back).
    pub fn allows(&self, key: &str, found: &State) -> bool {
        let Some(entry) = self.keys.get(key) else { return found.is_none() };
        entry.acknowledged == *found || entry.maybe.contains(found)
    }

    /// The state the last acknowledged operation left.
    pub fn acknowledged(&self, key: &str) -> &State {
        &self.keys[key].acknowledged
    }
}

/// An HTTP client with bounded time per request, for workloads that run
/// while nodes die.
pub fn agent() -> ureq::Agent {
    super::http::builder()
        .timeout_connect(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .build()
}

/// Sorts a request's result into an outcome; `ok` lists the statuses that
/// acknowledge it.
pub fn outcome(result: Result<ureq::Response, ureq::Error>, ok: &[u16]) -> Outcome {
    match result {
        Ok(response) if ok.contains(&response.status()) => Outcome::Acknowledged,
        Err(ureq::Error::Status(status, _)) if ok.contains(&status) => Outcome::Acknowledged,
        Err(ureq::Error::Transport(error)) if error.kind() == ureq::ErrorKind::ConnectionFailed => {
            Outcome::NotSent
        }
        _ => Outcome::Unknown,
    }
}
