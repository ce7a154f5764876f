//! WebDAV write locks (class 2), held in memory per node: a restart
//! forgets them, and in a cluster a lock taken through one node is not
//! seen by another. That is enough for clients that insist on LOCK before
//! writing (Finder, Windows, davfs2, office suites); cairn never relies on
//! locks for its own consistency (per-key shard turns do that).
//!
//! Also reads the `If` header (RFC 4918 §10.4): its lists of state tokens
//! and entity tags, and which tokens a request submits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Locks held at once per node; a LOCK past this is refused (503).
pub const LOCKS_MAX: usize = 10_000;
/// Longest timeout granted; `Infinite` and larger requests get this.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Granted when the client asks for none.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct ActiveLock {
    /// `opaquelocktoken:<uuid>`
    pub token: String,
    pub domain: String,
    /// The locked key, or collection prefix (ending in `/`, `` for the root).
    pub path: String,
    /// Depth infinity: covers every member of a collection.
    pub infinite: bool,
    pub exclusive: bool,
    /// The client's owner XML, written back verbatim.
    pub owner: String,
    /// The root's href, for lockdiscovery.
    pub root_href: String,
    pub timeout: Duration,
    pub expires: Instant,
}

impl ActiveLock {
    /// Whether this lock applies to `path` (a key or a collection prefix).
    pub fn covers(&self, domain: &str, path: &str) -> bool {
        self.domain == domain
            && (self.path == path
                || (self.infinite && is_collection(&self.path) && path.starts_with(&self.path)))
    }

    /// Whether this lock sits at or below the collection `prefix`.
    fn within(&self, domain: &str, prefix: &str) -> bool {
        self.domain == domain && self.path.starts_with(prefix)
    }
}

fn is_collection(path: &str) -> bool {
    path.is_empty() || path.ends_with('/')
}

/// The node's lock table: locks live in memory, in the process (node)
/// that granted them (README, "WebDAV").
pub fn table() -> &'static LockTable {
    static TABLE: std::sync::LazyLock<LockTable> = std::sync::LazyLock::new(LockTable::default);
    &TABLE
}

#[derive(Default)]
pub struct LockTable {
    locks: Mutex<HashMap<String, ActiveLock>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LockRefused {
    /// Another lock is in the way (423, `no-conflicting-lock`).
    Conflict,
    /// The table is full (503).
    Full,
}

impl LockTable {
    fn with<T>(&self, act: impl FnOnce(&mut HashMap<String, ActiveLock>) -> T) -> T {
        let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        locks.retain(|_, lock| lock.expires > now);
        act(&mut locks)
    }

    /// Locks that apply to `path`; with `tree`, also those on its members.
    pub fn affecting(&self, domain: &str, path: &str, tree: bool) -> Vec<ActiveLock> {
        self.with(|locks| {
            locks
                .values()
                .filter(|l| {
                    l.covers(domain, path)
                        || (tree && is_collection(path) && l.within(domain, path))
                })
                .cloned()
                .collect()
        })
    }

    /// Takes a new lock unless one in the way exists.
    pub fn lock(&self, lock: ActiveLock) -> Result<ActiveLock, LockRefused> {
        self.with(|locks| {
            if locks.len() >= LOCKS_MAX {
                return Err(LockRefused::Full);
            }
            let tree = lock.infinite && is_collection(&lock.path);
            let conflict = locks.values().any(|other| {
                let overlaps = other.covers(&lock.domain, &lock.path)
                    || (tree && other.within(&lock.domain, &lock.path));
                overlaps && (other.exclusive || lock.exclusive)
            });
            if conflict {
                return Err(LockRefused::Conflict);
            }
            locks.insert(lock.token.clone(), lock.clone());
            Ok(lock)
        })
    }

    /// Extends a lock; answers it, or `None` when the token is unknown.
    pub fn refresh(&self, token: &str, timeout: Duration) -> Option<ActiveLock> {
        self.with(|locks| {
            let lock = locks.get_mut(token)?;
            lock.timeout = timeout;
            lock.expires = Instant::now() + timeout;
            Some(lock.clone())
        })
    }

    pub fn get(&self, token: &str) -> Option<ActiveLock> {
        self.with(|locks| locks.get(token).cloned())
    }

    pub fn unlock(&self, token: &str) -> bool {
        self.with(|locks| locks.remove(token).is_some())
    }

    /// Drops the locks of a resource that is gone (deleted or moved away),
    /// and of its members when it is a collection.
    pub fn forget(&self, domain: &str, path: &str) {
        self.with(|locks| {
            locks.retain(|_, l| {
                !(l.domain == domain
                    && (l.path == path || (is_collection(path) && l.path.starts_with(path))))
            })
        });
    }
}

/// `Timeout: Second-N, Infinite` → the first acceptable value, bounded.
pub fn timeout(header: Option<&str>) -> Duration {
    let Some(header) = header else {
        return TIMEOUT_DEFAULT;
    };
    for item in header.split(',').map(str::trim) {
        if item.eq_ignore_ascii_case("infinite") {
            return TIMEOUT_MAX;
        }
        if let Some(seconds) = item.strip_prefix("Second-").and_then(|s| s.parse::<u64>().ok()) {
            return Duration::from_secs(seconds.max(1)).min(TIMEOUT_MAX);
        }
    }
    TIMEOUT_DEFAULT
}

pub fn new_token() -> String {
    format!("opaquelocktoken:{}", uuid::Uuid::new_v4())
}

/// One condition of an `If` list.
#[derive(Debug, PartialEq, Eq)]
pub enum Condition {
    Token(String),
    ETag(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct IfList {
    /// The tagged resource's URL, or `None` for the request's resource.
    pub resource: Option<String>,
    /// `(negated, condition)`, all of which must hold.
    pub conditions: Vec<(bool, Condition)>,
}

/// What a condition is checked against: the lock tokens that apply to a
/// resource, and its entity tag (none for collections and missing ones).
#[derive(Clone, Default)]
pub struct ResourceState {
    pub tokens: Vec<String>,
    pub etag: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Default)]
pub struct IfHeader {
    pub lists: Vec<IfList>,
}

impl IfHeader {
    pub fn parse(text: &str) -> Option<IfHeader> {
        let mut lists = Vec::new();
        let mut resource: Option<String> = None;
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<') {
                let end = after.find('>')?;
                resource = Some(after[..end].to_string());
                rest = after[end + 1..].trim_start();
                continue;
            }
            let mut inner = rest.strip_prefix('(')?.trim_start();
            let mut conditions = Vec::new();
            loop {
                if let Some(after) = inner.strip_prefix(')') {
                    rest = after.trim_start();
                    break;
                }
                let mut negated = false;
                if inner.len() >= 3 && inner[..3].eq_ignore_ascii_case("not") {
                    negated = true;
                    inner = inner[3..].trim_start();
                }
                if let Some(after) = inner.strip_prefix('<') {
                    let end = after.find('>')?;
                    conditions.push((negated, Condition::Token(after[..end].to_string())));
                    inner = after[end + 1..].trim_start();
                } else if let Some(after) = inner.strip_prefix('[') {
                    let end = after.find(']')?;
                    conditions.push((negated, Condition::ETag(after[..end].to_string())));
                    inner = after[end + 1..].trim_start();
                } else {
                    return None;
                }
            }
            if conditions.is_empty() {
                return None;
            }
            lists.push(IfList { resource: resource.clone(), conditions });
        }
        (!lists.is_empty()).then_some(IfHeader { lists })
    }

    /// Tokens the client submits: every one it names, negated or not (a
    /// client that names a token proves it holds it).
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().flat_map(|list| {
            list.conditions.iter().filter_map(|(_, c)| match c {
                Condition::Token(token) => Some(token.as_str()),
                Condition::ETag(_) => None,
            })
        })
    }

    /// True when any list holds (RFC 4918 §10.4.3).
    pub fn holds(&self, mut state: impl FnMut(Option<&str>) -> ResourceState) -> bool {
        self.lists.iter().any(|list| {
            let state = state(list.resource.as_deref());
            list.conditions.iter().all(|(negated, condition)| {
                let matched = match condition {
                    Condition::Token(token) => state.tokens.iter().any(|t| t == token),
                    Condition::ETag(tag) => {
                        let tag = tag.strip_prefix("W/").unwrap_or(tag);
                        state.etag.as_deref() == Some(tag)
                    }
                };
                matched != *negated
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, infinite: bool, exclusive: bool) -> ActiveLock {
        ActiveLock {
            token: new_token(),
            domain: "d".into(),
            path: path.into(),
            infinite,
            exclusive,
            owner: String::new(),
            root_href: String::new(),
            timeout: TIMEOUT_DEFAULT,
            expires: Instant::now() + TIMEOUT_DEFAULT,
        }
    }

    #[test]
    fn conflicts_and_coverage() {
        let table = LockTable::default();
        let collection = table.lock(lock("c/", true, true)).unwrap();
        assert_eq!(table.lock(lock("c/x", false, false)).unwrap_err(), LockRefused::Conflict);
        assert_eq!(table.affecting("d", "c/x/y", false).len(), 1);
        assert_eq!(table.affecting("d", "e", false).len(), 0);
        assert!(table.unlock(&collection.token));
        table.lock(lock("c/x", false, false)).unwrap();
        table.lock(lock("c/x", false, false)).unwrap();
        assert_eq!(table.lock(lock("c/", true, true)).unwrap_err(), LockRefused::Conflict);
        table.lock(lock("c/", false, true)).unwrap();
        assert_eq!(table.affecting("d", "c/", true).len(), 3);
        table.forget("d", "c/");
        assert_eq!(table.affecting("d", "c/", true).len(), 0);
    }

    #[test]
    fn if_headers() {
        let header = IfHeader::parse(
            "<http://h/dav/d/x> (<opaquelocktoken:a> [\"e\"]) (Not <DAV:no-lock> [W/\"e\"])",
        )
        .unwrap();
        assert_eq!(header.lists.len(), 2);
        assert_eq!(header.lists[1].resource.as_deref(), Some("http://h/dav/d/x"));
        assert_eq!(header.tokens().collect::<Vec<_>>(), ["opaquelocktoken:a", "DAV:no-lock"]);
        let state = |tokens: &[&str], etag: &str| ResourceState {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            etag: Some(etag.to_string()),
        };
        assert!(header.holds(|_| state(&["opaquelocktoken:a"], "\"e\"")));
        assert!(header.holds(|_| state(&[], "\"e\"")));
        assert!(!header.holds(|_| state(&[], "\"f\"")));
        assert!(IfHeader::parse("(<a> [\"e\"]").is_none());
        assert!(IfHeader::parse("garbage").is_none());
        assert!(IfHeader::parse("()").is_none());
    }

    #[test]
    fn timeouts_are_bounded() {
        assert_eq!(timeout(None), TIMEOUT_DEFAULT);
        assert_eq!(timeout(Some("Infinite, Second-4100000000")), TIMEOUT_MAX);
        assert_eq!(timeout(Some("Second-30")), Duration::from_secs(30));
        assert_eq!(timeout(Some("Second-99999999")), TIMEOUT_MAX);
    }
}
