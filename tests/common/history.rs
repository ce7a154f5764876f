//! A workload's history and what it allows at the end: every operation a
//! client ran, with its outcome, and per key the states a correct store
//! may end in (issue 12; the fault-matrix issue builds on it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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
        *self.counts.entry(op).or_default() += 1;
        *self.counts.entry(label(outcome)).or_default() += 1;
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

/// One write as a client saw it: the state it leaves, when it was sent and
/// when its answer came (real, monotonic time of the test process, whatever
/// the nodes' clocks say), and its outcome.
struct Timed {
    state: State,
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
}

/// A history of writes to keys that several clients overwrite at once:
/// which state a key may end in depends on the order in real time.
#[derive(Default)]
pub struct Timeline {
    keys: BTreeMap<String, Vec<Timed>>,
    pub counts: BTreeMap<&'static str, usize>,
}

impl Timeline {
    pub fn record(
        &mut self,
        key: &str,
        op: &'static str,
        state: State,
        outcome: Outcome,
        sent: Instant,
    ) {
        let answered = Instant::now();
        let timed = Timed { state, sent, answered, outcome };
        self.keys.entry(key.to_owned()).or_default().push(timed);
        *self.counts.entry(op).or_default() += 1;
        *self.counts.entry(label(outcome)).or_default() += 1;
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.keys.keys()
    }

    /// Whether `found` is a state the key may end in: one left by a write
    /// that was acknowledged, or whose outcome is unknown, and that no
    /// acknowledged write sent after its answer came replaced. A write
    /// sent after another was acknowledged must win over it, at whatever
    /// nodes, whatever their clocks; writes that overlap in time may end
    /// in either order. The key's state before the first write counts as
    /// a write acknowledged before the test began.
    pub fn allows(&self, key: &str, found: &State) -> bool {
        let Some(writes) = self.keys.get(key) else { return found.is_none() };
        let replaced = |answered: Option<Instant>| {
            let Some(answered) = answered else { return true };
            writes.iter().any(|w| w.outcome == Outcome::Acknowledged && w.sent > answered)
        };
        let first = writes.iter().map(|w| w.sent).min();
        let before = first.and_then(|t| t.checked_sub(Duration::from_millis(1)));
        (found.is_none() && !replaced(before))
            || writes.iter().any(|w| {
                let answered = match w.outcome {
                    Outcome::Acknowledged => Some(w.answered),
                    // It may take effect at any time, also after every
                    // other write (its version was taken when it was sent).
                    Outcome::Unknown => None,
                    Outcome::NotSent => return false,
                };
                w.state == *found && (answered.is_none() || !replaced(answered))
            })
    }

    /// The state of the acknowledged write answered last, if any.
    pub fn last_answered(&self, key: &str) -> Option<&State> {
        let writes = self.keys.get(key)?;
        let acknowledged = writes.iter().filter(|w| w.outcome == Outcome::Acknowledged);
        acknowledged.max_by_key(|w| w.answered).map(|w| &w.state)
    }
}

fn label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Acknowledged => "acknowledged",
        Outcome::NotSent => "not sent",
        Outcome::Unknown => "unknown",
    }
}
