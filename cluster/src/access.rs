//! Access keys (docs/design.md §8): made with a random id and secret, the
//! secret sealed with ChaCha20-Poly1305 under a key of the cluster secret
//! before it enters the cluster log, and unsealed to check a request (S3's
//! signatures will need the secret itself, so it is sealed, not hashed).

use cairn_net::ClusterKey;
use cairn_raft::{AccessKey, Grant};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// What the sealing key is derived for.
pub const SEAL_PURPOSE: &str = "access key seal";
/// What the key signing read URLs is derived for.
pub const URL_PURPOSE: &str = "signed urls";

const NONCE_BYTES: usize = 12;

/// A fresh key id (`CK` and 20 hex digits, upper case, as S3 ids look)
/// and secret (40 hex digits).
pub fn fresh_credentials() -> (String, String) {
    let mut bytes = [0u8; 30];
    getrandom::fill(&mut bytes).expect("the operating system has randomness");
    let id = format!("CK{}", hex::encode_upper(&bytes[..10]));
    (id, hex::encode(&bytes[10..]))
}

/// Seals `secret` for key `id` (the id is bound in as associated data, so
/// a sealed secret moved to another id does not open).
pub fn seal(key: &ClusterKey, id: &str, secret: &str) -> String {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.bytes()));
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).expect("the operating system has randomness");
    let payload = Payload { msg: secret.as_bytes(), aad: id.as_bytes() };
    let sealed = cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("sealing cannot fail");
    hex::encode([&nonce[..], &sealed].concat())
}

/// The secret sealed for `id`; `None` when it does not open (another
/// cluster secret, or tampered with).
pub fn unseal(key: &ClusterKey, id: &str, sealed: &str) -> Option<String> {
    let bytes = hex::decode(sealed).ok()?;
    if bytes.len() < NONCE_BYTES {
        return None;
    }
    let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.bytes()));
    let opened =
        cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: id.as_bytes() });
    String::from_utf8(opened.ok()?).ok()
}

/// What a request needs of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    Read(&'a str),
    Write(&'a str),
    Owner(&'a str),
    /// Members, classes, domains and keys.
    Admin,
    /// `/metrics`: an admin key, or one granted `read` on the `metrics` scope.
    Metrics,
    /// Any valid key (the cluster's status, WebDAV's root).
    AnyKey,
}

/// Whether `key` may do what `need` asks.
pub fn allows(key: &AccessKey, need: Need) -> bool {
    let grant = |domain: &str| key.domains.get(domain).copied().unwrap_or_default();
    key.admin
        || match need {
            Need::Read(domain) => {
                let Grant { read, write, owner } = grant(domain);
                read || write || owner
            }
            Need::Write(domain) => grant(domain).write || grant(domain).owner,
            Need::Owner(domain) => grant(domain).owner,
            Need::Admin => false,
            Need::Metrics => grant(METRICS_SCOPE).read,
            Need::AnyKey => true,
        }
}

/// The scope name a key is granted `read` on to read `/metrics`.
pub const METRICS_SCOPE: &str = "metrics";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_id_and_cluster() {
        let key = ClusterKey::derive(b"cluster one", SEAL_PURPOSE);
        let (id, secret) = fresh_credentials();
        let sealed = seal(&key, &id, &secret);
        assert!(!sealed.contains(&secret));
        assert_eq!(unseal(&key, &id, &sealed).as_deref(), Some(secret.as_str()));
        assert_eq!(unseal(&key, "CKOTHER", &sealed), None);
        let other = ClusterKey::derive(b"cluster two", SEAL_PURPOSE);
        assert_eq!(unseal(&other, &id, &sealed), None);
        assert_eq!(unseal(&key, &id, "zz"), None);
    }

    #[test]
    fn grants_cover_what_they_name() {
        let mut key = AccessKey::default();
        key.domains.insert("photos".into(), Grant { read: true, ..Grant::default() });
        key.domains.insert("logs".into(), Grant { write: true, ..Grant::default() });
        assert!(allows(&key, Need::Read("photos")));
        assert!(!allows(&key, Need::Write("photos")));
        assert!(allows(&key, Need::Read("logs")), "write implies read");
        assert!(!allows(&key, Need::Owner("logs")));
        assert!(!allows(&key, Need::Read("other")));
        assert!(!allows(&key, Need::Admin));
        assert!(!allows(&key, Need::Metrics));
        assert!(allows(&key, Need::AnyKey));
        key.admin = true;
        assert!(allows(&key, Need::Owner("other")) && allows(&key, Need::Admin));
    }
}
