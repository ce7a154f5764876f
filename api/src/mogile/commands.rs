//! What each tracker command does and answers: MogileFS 2.x's argument
//! names, answer keys and error codes, over cairn's keys (see
//! `docs/mogilefs.md` for the mapping and what is not supported).

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use crate::http::key::url_path;
use cairn_engine::{validate_key, Digest, KeyRecord, PendingUpload, Version};
use cairn_net::mogile_line::Request;
use cairn_net::IndexEntry;

use super::admin;
use super::unix_ms_now;
use super::upload::{upload_path, UPLOAD_PATH_PREFIX};
use cairn_node::listing::{key_page, record_of};
use cairn_node::pending::{KeyOp, KeyOpDone, KeyOpRefused};
use cairn_node::replication::hold_here;
use cairn_node::{NodeError, Shard};

/// `list_keys` answers at most this many keys (MogileFS's bound).
const LIST_KEYS_MAX: usize = 1000;
/// `list_fids` answers at most this many fids (MogileFS's bound), 100 by default.
const LIST_FIDS_MAX: usize = 500;
const LIST_FIDS_DEFAULT: usize = 100;

/// An `ERR` answer: a MogileFS error code and its message.
#[derive(Debug, PartialEq, Eq)]
pub struct ErrAnswer {
    pub code: &'static str,
    pub message: String,
}

impl ErrAnswer {
    pub fn new(code: &'static str, message: impl Into<String>) -> ErrAnswer {
        ErrAnswer { code, message: message.into() }
    }

    /// With MogileFS's own message for the code, or the code itself where
    /// MogileFS has none (as MogileFS answers), so such answers are byte-exact.
    pub fn code(code: &'static str) -> ErrAnswer {
        ErrAnswer::new(code, standard_message(code).unwrap_or(code))
    }
}

impl From<NodeError> for ErrAnswer {
    fn from(error: NodeError) -> ErrAnswer {
        tracing::warn!(%error, "tracker command failed");
        ErrAnswer::new("failure", format!("Operation failed: {error}"))
    }
}

/// A refused change of a pending upload or a key, as MogileFS words it.
impl From<KeyOpRefused> for ErrAnswer {
    fn from(refused: KeyOpRefused) -> ErrAnswer {
        match refused {
            KeyOpRefused::UploadNotOpen { .. } => {
                ErrAnswer::new("no_temp_file", "No tempfile or file already closed")
            }
            KeyOpRefused::UploadOfOtherKey { .. } => ErrAnswer::new("bogus_args", "bogus_args"),
            KeyOpRefused::NothingReceived { .. } => {
                ErrAnswer::new("size_verify_error", refused.to_string())
            }
            KeyOpRefused::SizeMismatch { .. } => {
                ErrAnswer::new("size_mismatch", refused.to_string())
            }
            KeyOpRefused::ChecksumMismatch { .. } => {
                ErrAnswer::new("checksum_mismatch", refused.to_string())
            }
            KeyOpRefused::KeyExists => ErrAnswer::new("key_exists", refused.to_string()),
            KeyOpRefused::NoSuchKey => ErrAnswer::new("invalid_key", "invalid_key"),
        }
    }
}

impl From<cairn_engine::MetaError> for ErrAnswer {
    fn from(error: cairn_engine::MetaError) -> ErrAnswer {
        NodeError::from(error).into()
    }
}

pub type Answer = Result<Vec<(String, String)>, ErrAnswer>;

/// Where the connection came in: URLs are built for the address the
/// client reached us at when the HTTP API listens on every address.
pub struct Client {
    pub local_ip: IpAddr,
    /// Fids this connection opened (`create_open`) that may still be open.
    pub opened: std::cell::RefCell<Vec<u64>>,
}

/// Uploads one tracker connection may hold open at once: each is a record
/// and, once its bytes came, a blob kept until `create_close` or expiry, so
/// a client that opens without closing is bounded (connections are bounded
/// per shard too). A client uploads one file at a time per connection.
pub const OPEN_UPLOADS_PER_CONNECTION_MAX: usize = 64;

impl Client {
    pub fn new(local_ip: IpAddr) -> Client {
        Client { local_ip, opened: Default::default() }
    }

    /// Refuses a new upload while this connection holds the most it may:
    /// those closed or expired since (on any connection) no longer count.
    fn may_open(&self, shard: &Shard) -> Result<(), ErrAnswer> {
        let mut opened = self.opened.borrow_mut();
        if opened.len() < OPEN_UPLOADS_PER_CONNECTION_MAX {
            return Ok(());
        }
        let meta = &shard.node.meta;
        let mut still = Vec::with_capacity(opened.len());
        for fid in opened.iter() {
            if meta.pending_upload(*fid)?.is_some() {
                still.push(*fid);
            }
        }
        *opened = still;
        if opened.len() < OPEN_UPLOADS_PER_CONNECTION_MAX {
            return Ok(());
        }
        Err(ErrAnswer::new(
            "too_many_uploads",
            format!(
                "this connection has {OPEN_UPLOADS_PER_CONNECTION_MAX} uploads open; close them \
                 (create_close) before opening more"
            ),
        ))
    }
}

pub async fn answer(shard: &Rc<Shard>, client: &Client, request: &Request) -> Answer {
    let args = request;
    match request.command.as_str() {
        "noop" => Ok(Vec::new()),
        "create_open" => create_open(shard, client, args).await,
        "create_close" => create_close(shard, args).await,
        "get_paths" => get_paths(shard, client, args).await,
        "file_info" => file_info(shard, args).await,
        "delete" => delete(shard, args).await,
        "rename" => rename(shard, args).await,
        "updateclass" => updateclass(shard, args).await,
        "list_keys" => list_keys(shard, args).await,
        "list_fids" => list_fids(shard, args),
        "get_hosts" => get_hosts(shard, client, args),
        "get_devices" => get_devices(shard, args).await,
        "get_domains" => admin::get_domains(shard),
        "create_domain" | "delete_domain" | "create_class" | "update_class" | "delete_class"
        | "set_state"
            if !admin::admin_allowed(shard) =>
        {
            Err(ErrAnswer::new(
                "no_permission",
                "admin commands are refused on the MogileFS port where HTTP asks for access keys \
                 (start the node with --mogile-admin, or use the HTTP admin API)",
            ))
        }
        "create_domain" => admin::create_domain(shard, args).await,
        "delete_domain" => admin::delete_domain(shard, args).await,
        "create_class" => admin::create_class(shard, args, admin::ClassChange::Create).await,
        "update_class" => admin::create_class(shard, args, admin::ClassChange::Update).await,
        "delete_class" => admin::delete_class(shard, args).await,
        "set_state" => admin::set_state(shard, args).await,
        _ => Err(ErrAnswer::code("unknown_command")),
    }
}

/// MogileFS's messages for its error codes.
pub fn standard_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "after_mismatch" => "Pattern does not match the after-value?",
        "bad_params" => "Invalid parameters to command; please see documentation",
        "class_exists" => "That class already exists in that domain",
        "class_has_files" => "Class still has files, unable to delete",
        "class_not_found" => "Class not found",
        "domain_has_files" => "Domain still has files, unable to delete",
        "domain_exists" => "That domain already exists",
        "domain_not_empty" => "Domain still has classes, unable to delete",
        "domain_not_found" => "Domain not found",
        "failure" => "Operation failed",
        "host_mismatch" => "The device specified doesn't belong to the host specified",
        "invalid_mindevcount" => "The mindevcount must be at least 1",
        "key_exists" => "Target key name already exists; can't overwrite.",
        "no_class" => "No class provided",
        "no_devices" => "No devices found to store file",
        "no_device" => "Device not found",
        "no_domain" => "No domain provided",
        "no_temp_file" => "No tempfile or file already closed",
        "none_match" => "No keys match that pattern and after-value (if any).",
        "nodel_default_class" => "Cannot delete the default class",
        "unknown_command" => "Unknown server command",
        "unknown_state" => "Invalid/unknown state",
        "unreg_domain" => "Domain name invalid/not found",
        _ => return None,
    })
}

fn pairs<const N: usize>(items: [(&str, String); N]) -> Vec<(String, String)> {
    items.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// The domain argument, which must name an existing domain.
pub fn check_domain<'a>(shard: &Shard, args: &'a Request) -> Result<&'a str, ErrAnswer> {
    let domain = args.nonempty("domain").ok_or_else(|| ErrAnswer::code("no_domain"))?;
    if !admin::domain_served(shard, domain) || !admin::domain_exists(shard, domain)? {
        return Err(ErrAnswer::code("unreg_domain"));
    }
    Ok(domain)
}

/// A key argument: present, not empty, and a key cairn can store.
fn check_key<'a>(args: &'a Request, name: &str) -> Result<&'a str, ErrAnswer> {
    let key = args.nonempty(name).ok_or_else(|| ErrAnswer::code("no_key"))?;
    validate_key(key).map_err(|error| ErrAnswer::new("no_key", error.to_string()))?;
    Ok(key)
}

fn number(args: &Request, name: &str) -> Result<Option<u64>, ErrAnswer> {
    match args.nonempty(name) {
        None => Ok(None),
        Some(text) => text
            .parse()
            .map(Some)
            .map_err(|_| ErrAnswer::new("bad_params", format!("{name} must be a number"))),
    }
}

/// `http://HOST:PORT` of this node's HTTP API, as `client` can reach it.
fn http_base(shard: &Shard, client: &Client) -> String {
    let listen = shard.node.config.http_listen;
    let ip = if listen.ip().is_unspecified() { client.local_ip } else { listen.ip() };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

fn key_url(shard: &Shard, client: &Client, domain: &str, key: &str) -> String {
    format!("{}/v1/{domain}/{}", http_base(shard, client), url_path(key))
}

async fn create_open(shard: &Rc<Shard>, client: &Client, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?;
    let key = check_key(args, "key")?;
    let class = args.nonempty("class").unwrap_or(cairn_raft::DEFAULT_CLASS);
    if admin::class_replicas(shard, domain, class)?.is_none() {
        return Err(ErrAnswer::code("unreg_class"));
    }
    if !admin::device_writable(shard)? {
        return Err(ErrAnswer::code("no_devices"));
    }
    client.may_open(shard)?;
    let meta = &shard.node.meta;
    // Clients send `fid=0` to mean "pick one".
    let fid = match number(args, "fid")?.filter(|fid| *fid != 0) {
        Some(fid) => {
            if fid > i64::MAX as u64 {
                return Err(ErrAnswer::new("bad_params", "fid must be below 2^63"));
            }
            if meta.pending_upload(fid)?.is_some() || meta.fid_key(fid)?.is_some() {
                return Err(ErrAnswer::code("fid_in_use"));
            }
            fid
        }
        None => shard.node.clock.now().hlc,
    };
    let pending = PendingUpload {
        domain: domain.to_string(),
        key: key.to_string(),
        class: class.to_string(),
        opened_unix_ms: unix_ms_now(),
        stored: None,
    };
    cairn_node::pending::open(shard, fid, &pending).await?;
    client.opened.borrow_mut().push(fid);
    let path = format!("{}{}", http_base(shard, client), upload_path(shard, fid));
    let devid = admin::local_device_id(shard).to_string();
    if args.nonempty("multi_dest").is_some_and(|v| v != "0") {
        Ok(pairs([
            ("fid", fid.to_string()),
            ("dev_count", "1".into()),
            ("devid_1", devid),
            ("path_1", path),
        ]))
    } else {
        Ok(pairs([("fid", fid.to_string()), ("devid", devid), ("path", path)]))
    }
}

async fn create_close(shard: &Rc<Shard>, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?;
    let fid = number(args, "fid")?.ok_or_else(|| ErrAnswer::code("no_fid"))?;
    let devid = number(args, "devid")?.ok_or_else(|| ErrAnswer::code("no_devid"))?;
    let path = args.nonempty("path").ok_or_else(|| ErrAnswer::code("no_path"))?;
    let sha256 = match args.nonempty("checksum") {
        None => None,
        Some(text) => parse_checksum(text)?,
    };
    let path = path.split('?').next().unwrap_or_default();
    if !path.ends_with(&format!("{UPLOAD_PATH_PREFIX}{fid}")) {
        return Err(ErrAnswer::code("bogus_args"));
    }
    let Some(pending) = shard.node.meta.pending_upload(fid)? else {
        return Err(ErrAnswer::code("no_temp_file"));
    };
    let device = admin::local_device_id(shard);
    if devid != device {
        return Err(ErrAnswer::new(
            "invalid_destdev",
            format!("File uploaded to invalid dest {devid}. Valid devices were: {device}"),
        ));
    }
    let key = args.nonempty("key").unwrap_or("");
    if pending.domain != domain || (!key.is_empty() && pending.key != key) {
        return Err(ErrAnswer::code("bogus_args"));
    }
    let target = (pending.domain.clone(), pending.key.clone());
    if key.is_empty() {
        // MogileFS: closing without a key throws the upload away.
        let op =
            KeyOp::Expire { fid, domain: target.0, key: target.1, opened_before_unix_ms: u64::MAX };
        shard.key_op(op).await?;
        return Ok(Vec::new());
    }
    // The class may have been deleted since create_open: fall back to default.
    let replicas = match admin::class_replicas(shard, domain, &pending.class)? {
        Some(replicas) => replicas,
        None => admin::class_replicas(shard, domain, cairn_raft::DEFAULT_CLASS)?.unwrap_or(1),
    };
    // MogileFS: a size of 0, -1 or none is not checked (zero-byte files exist).
    let size_bytes = match args.nonempty("size").map(str::parse::<i64>) {
        None => None,
        Some(Ok(size)) => u64::try_from(size).ok().filter(|size| *size > 0),
        Some(Err(_)) => return Err(ErrAnswer::new("bad_params", "size must be a number")),
    };
    let op = KeyOp::Close { fid, domain: target.0, key: target.1, size_bytes, sha256, replicas };
    // Detached: a client that goes away must not cancel a commit half done.
    let shard = shard.clone();
    let done = glommio::spawn_local(async move { shard.key_op(op).await })
        .detach()
        .await
        .ok_or_else(|| ErrAnswer::new("failure", "close task was cancelled"))??;
    match done {
        KeyOpDone::Done => Ok(Vec::new()),
        KeyOpDone::Refused(refused) => Err(refused.into()),
    }
}

/// `SHA-256:<hex>` is checked against the bytes; `MD5:<hex>` (the only
/// other hash MogileFS knows) is refused rather than taken unchecked.
fn parse_checksum(text: &str) -> Result<Option<Digest>, ErrAnswer> {
    let invalid = || ErrAnswer::code("invalid_checksum_format");
    let (name, hex) = text.split_once(':').ok_or_else(invalid)?;
    match name.to_ascii_uppercase().as_str() {
        "SHA-256" | "SHA256" => Digest::from_hex(hex).map(Some).ok_or_else(invalid),
        "MD5" => Err(ErrAnswer::new(
            "unsupported_checksum",
            "cairn checks SHA-256, not MD5: send checksum=SHA-256:<hex>, or none",
        )),
        _ => Err(invalid()),
    }
}

/// Paths a client may GET: this node's copy first when it holds one, then
/// the other holders the key's homes know, up to `pathcount` (default 2,
/// as MogileFS).
async fn get_paths(shard: &Shard, client: &Client, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?;
    let key = check_key(args, "key")?;
    let local = shard.node.meta.key(domain, key)?;
    let mut urls = Vec::new();
    if local.is_some() {
        urls.push(key_url(shard, client, domain, key));
    }
    let control = &shard.node.control;
    let known = control.lookup(domain, key).await;
    if let Some(entry) = known.ok().flatten().filter(|e| !e.deleted) {
        for holder in entry.holders.iter().filter(|h| **h != control.id()) {
            if let Some((http, _)) = control.addresses(*holder) {
                urls.push(format!("http://{http}/v1/{domain}/{}", url_path(key)));
            }
        }
    }
    if urls.is_empty() {
        return Err(ErrAnswer::code("unknown_key"));
    }
    let pathcount = args.nonempty("pathcount").and_then(|n| n.parse::<usize>().ok()).unwrap_or(2);
    urls.truncate(pathcount.max(1));
    // MogileFS clients fetch paths with no credentials: a cluster that
    // asks for keys hands out URLs signed for this one key, for a while.
    if let Some(sig) = crate::http::auth::sign(shard, crate::http::auth::Signed::Read, domain, key)
    {
        urls.iter_mut().for_each(|url| *url = format!("{url}?sig={sig}"));
    }
    let mut answer = vec![("paths".to_string(), urls.len().to_string())];
    for (i, url) in urls.into_iter().enumerate() {
        answer.push((format!("path{}", i + 1), url));
    }
    Ok(answer)
}

/// What the key's homes know of it (in a cluster), with its holders.
async fn known(shard: &Shard, domain: &str, key: &str) -> Result<Option<IndexEntry>, ErrAnswer> {
    let control = &shard.node.control;
    if control.is_alone() {
        return Ok(None);
    }
    match control.lookup(domain, key).await {
        Ok(found) => Ok(found.filter(|entry| !entry.deleted)),
        Err(_) => Err(NodeError::HomesUnreachable.into()),
    }
}

async fn file_info(shard: &Shard, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?;
    let key = check_key(args, "key")?;
    let local = shard.node.meta.key(domain, key)?;
    let known = known(shard, domain, key).await?;
    let (record, holders) = match (local, known) {
        (Some(local), Some(entry)) if local.version == entry_version(&entry) => {
            (local, entry.holders)
        }
        (local, Some(entry))
            if local.as_ref().is_none_or(|l| l.version < entry_version(&entry)) =>
        {
            let holders = entry.holders.clone();
            (record_of(entry), holders)
        }
        (Some(local), _) => (local, vec![shard.node.control.id()]),
        (None, _) => return Err(ErrAnswer::code("unknown_key")),
    };
    let mut answer = pairs([
        ("fid", record.fid.to_string()),
        ("domain", domain.to_string()),
        ("class", record.class.clone()),
        ("key", key.to_string()),
        ("length", record.size_bytes.to_string()),
        ("devcount", holders.len().max(1).to_string()),
        ("checksum", format!("SHA-256:{}", record.sha256)),
    ]);
    if args.nonempty("devices").is_some_and(|v| v != "0") {
        let devids: Vec<String> =
            holders.iter().map(|id| admin::host_id(*id).to_string()).collect();
        answer.push(("devids".into(), devids.join(",")));
    }
    Ok(answer)
}

fn entry_version(entry: &IndexEntry) -> Version {
    Version { hlc: entry.hlc, node_id: entry.writer }
}

/// This node's record of a key, copied here first when it is held
/// elsewhere only: `rename` and `updateclass` change it here, and the
/// change reaches the homes from here. `missing` is the command's code for
/// a key that is nowhere.
async fn held_here(
    shard: &Rc<Shard>,
    domain: &str,
    key: &str,
    missing: &'static str,
) -> Result<KeyRecord, ErrAnswer> {
    match hold_here(shard, domain, key).await {
        Ok(record) => Ok(record),
        Err(NodeError::NotFound | NodeError::Unknown { .. }) => Err(ErrAnswer::code(missing)),
        Err(error) => Err(error.into()),
    }
}

async fn delete(shard: &Rc<Shard>, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?.to_string();
    let key = check_key(args, "key")?.to_string();
    match cairn_node::delete::delete_anywhere(shard, domain, key).await {
        Ok(()) => Ok(Vec::new()),
        Err(NodeError::NotFound | NodeError::Unknown { .. }) => Err(ErrAnswer::code("unknown_key")),
        Err(error) => Err(error.into()),
    }
}

async fn rename(shard: &Rc<Shard>, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?.to_string();
    let from_key = check_key(args, "from_key")?.to_string();
    let to_key = check_key(args, "to_key")?.to_string();
    let record = held_here(shard, &domain, &from_key, "unknown_key").await?;
    if from_key == to_key {
        return Err(ErrAnswer::code("key_exists"));
    }
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let fid = record.fid;
        let op = KeyOp::RenameIn { domain: domain.clone(), key: to_key, record };
        if let KeyOpDone::Refused(refused) = shard.key_op(op).await? {
            return Err(refused.into());
        }
        shard.key_op(KeyOp::RenameOut { domain, key: from_key, fid }).await?;
        Ok(Vec::new())
    })
    .detach()
    .await
    .ok_or_else(|| ErrAnswer::new("failure", "rename task was cancelled"))?
}

async fn updateclass(shard: &Rc<Shard>, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?.to_string();
    let key = check_key(args, "key")?.to_string();
    let class = args.nonempty("class").ok_or_else(|| ErrAnswer::code("no_class"))?.to_string();
    let replicas = admin::class_replicas(shard, &domain, &class)?
        .ok_or_else(|| ErrAnswer::code("class_not_found"))?;
    held_here(shard, &domain, &key, "invalid_key").await?;
    match shard.key_op(KeyOp::UpdateClass { domain, key, class, replicas }).await? {
        KeyOpDone::Done => Ok(Vec::new()),
        KeyOpDone::Refused(refused) => Err(refused.into()),
    }
}

async fn list_keys(shard: &Shard, args: &Request) -> Answer {
    let domain = check_domain(shard, args)?;
    let prefix = args.arg("prefix").unwrap_or("");
    let after = args.nonempty("after");
    if after.is_some_and(|after| !after.starts_with(prefix)) {
        return Err(ErrAnswer::code("after_mismatch"));
    }
    let limit = match number(args, "limit")? {
        None | Some(0) => LIST_KEYS_MAX,
        Some(n) => (n as usize).min(LIST_KEYS_MAX),
    };
    let keys = cluster_keys(shard, domain, prefix, after, limit).await?;
    let Some(last) = keys.last() else {
        return Err(ErrAnswer::code("none_match"));
    };
    let mut answer = pairs([("key_count", keys.len().to_string()), ("next_after", last.clone())]);
    for (i, key) in keys.iter().enumerate() {
        answer.push((format!("key_{}", i + 1), key.clone()));
    }
    Ok(answer)
}

/// Up to `limit` of the cluster's keys of `domain` after `after`, page
/// after page of the cluster listing.
async fn cluster_keys(
    shard: &Shard,
    domain: &str,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, ErrAnswer> {
    let mut keys = Vec::new();
    let mut start = after.map(cairn_cluster::start_after).unwrap_or_default();
    while keys.len() < limit {
        let page = key_page(&shard.node, domain, prefix, &start, limit - keys.len()).await?;
        keys.extend(page.keys.into_iter().map(|(key, _)| key));
        match page.next_after {
            Some(next) => start = cairn_cluster::start_after(&next),
            None => break,
        }
    }
    Ok(keys)
}

fn list_fids(shard: &Shard, args: &Request) -> Answer {
    let from = number(args, "from")?.unwrap_or(0);
    // MogileFS reads `to` as a count, not as the last fid.
    let count = match number(args, "to")? {
        None | Some(0) => LIST_FIDS_DEFAULT,
        Some(n) => (n as usize).min(LIST_FIDS_MAX),
    };
    let meta = &shard.node.meta;
    let mut answer = Vec::new();
    let mut n = 0;
    for (fid, domain, key) in meta.list_fids(from, count)? {
        // The index may name a key whose version changed since: skip it.
        let Some(record) = meta.key(&domain, &key)?.filter(|r| r.fid == fid) else {
            continue;
        };
        n += 1;
        answer.extend(pairs([
            (&format!("fid_{n}_fid"), fid.to_string()),
            (&format!("fid_{n}_domain"), domain),
            (&format!("fid_{n}_class"), record.class),
            (&format!("fid_{n}_key"), key),
            (&format!("fid_{n}_length"), record.size_bytes.to_string()),
            (&format!("fid_{n}_devcount"), "1".into()),
        ]));
    }
    answer.insert(0, ("fid_count".into(), n.to_string()));
    Ok(answer)
}

fn get_hosts(shard: &Shard, client: &Client, args: &Request) -> Answer {
    let wanted = number(args, "hostid")?;
    let mut answer = Vec::new();
    let mut n = 0;
    for host in admin::hosts(shard)? {
        if !host.stores || wanted.is_some_and(|id| id != host.hostid) {
            continue;
        }
        n += 1;
        let (ip, port) = host_address(shard, client, &host);
        answer.extend(pairs([
            (&format!("host{n}_hostid"), host.hostid.to_string()),
            (&format!("host{n}_status"), host.state.as_str().to_string()),
            (&format!("host{n}_hostname"), host.name()),
            (&format!("host{n}_hostip"), ip),
            (&format!("host{n}_http_port"), port.clone()),
            (&format!("host{n}_http_get_port"), port),
        ]));
    }
    answer.insert(0, ("hosts".into(), n.to_string()));
    Ok(answer)
}

/// The IP and port of a host's HTTP API: for this node, the address the
/// client reached when the API listens on every address.
fn host_address(shard: &Shard, client: &Client, host: &admin::Host) -> (String, String) {
    if host.local {
        let listen = shard.node.config.http_listen;
        let ip = if listen.ip().is_unspecified() { client.local_ip } else { listen.ip() };
        return (ip.to_string(), listen.port().to_string());
    }
    match host.http.rsplit_once(':') {
        Some((ip, port)) => (ip.trim_matches(['[', ']']).to_string(), port.to_string()),
        None => (host.http.clone(), String::new()),
    }
}

async fn get_devices(shard: &Shard, args: &Request) -> Answer {
    let wanted = number(args, "devid")?;
    let hosts = admin::hosts(shard)?;
    const MIB: u64 = 1 << 20;
    let data = shard.node.data.clone();
    let local = glommio::executor()
        .spawn_blocking(move || data.disk_usage_blocking())
        .await
        .map_err(NodeError::from)?;
    // Other nodes' disks as the leader last heard them.
    let remote =
        if hosts.iter().any(|h| !h.local) { Some(shard.node.control.report().await) } else { None };
    let mut answer = Vec::new();
    let mut n = 0;
    for host in hosts {
        if !host.stores || wanted.is_some_and(|id| id != host.hostid) {
            continue;
        }
        let disk = if host.local {
            Some((local.total_bytes, local.free_bytes))
        } else {
            let name = host.name();
            remote.as_ref().and_then(|report| {
                let member = report.members.iter().find(|m| m.id == name)?;
                Some((member.disk_total_bytes?, member.disk_free_bytes?))
            })
        };
        n += 1;
        let mb = |bytes: Option<u64>| bytes.map_or(String::new(), |b| (b / MIB).to_string());
        let total = disk.map(|d| d.0);
        let free = disk.map(|d| d.1);
        let used = disk.map(|(total, free)| (total / MIB).saturating_sub(free / MIB) * MIB);
        answer.extend(pairs([
            (&format!("dev{n}_devid"), host.hostid.to_string()),
            (&format!("dev{n}_hostid"), host.hostid.to_string()),
            (&format!("dev{n}_status"), host.state.as_str().to_string()),
            (&format!("dev{n}_observed_state"), host.observed_state().to_string()),
            (&format!("dev{n}_mb_total"), mb(total)),
            (&format!("dev{n}_mb_used"), mb(used)),
            (&format!("dev{n}_mb_free"), mb(free)),
            (&format!("dev{n}_weight"), "100".into()),
        ]));
    }
    answer.insert(0, ("devices".into(), n.to_string()));
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        let hex = "ab".repeat(32);
        assert!(matches!(parse_checksum(&format!("SHA-256:{hex}")), Ok(Some(_))));
        let md5 = parse_checksum(&format!("MD5:{}", "0".repeat(32)));
        assert_eq!(md5.unwrap_err().code, "unsupported_checksum");
        for bad in ["SHA-256:zz", "CRC:00", "nothing"] {
            assert_eq!(parse_checksum(bad).unwrap_err().code, "invalid_checksum_format", "{bad}");
        }
    }
}
