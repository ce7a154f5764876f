//! Domains, classes, hosts and devices as the tracker protocol sees them,
//! over the cluster state (raft, `node.control`): the only part of
//! `src/mogile/` that reads or changes cluster-wide definitions.
//!
//! Reads use the shard's copy of the applied state and never wait for
//! raft. Changes go to the leader; once one is committed, the answer waits
//! (briefly) until this node has applied it too, so a client that creates
//! a domain can use it on its next line.
//!
//! A node is a MogileFS host and its data directory a device; both are
//! numbered from the node id (see [`host_id`]).

use std::time::{Duration, Instant};

use cairn_net::mogile_line::Request;
use cairn_raft::{ClusterState, Command, CommandResult, MemberState, NodeId, DEFAULT_CLASS};

use super::commands::{Answer, ErrAnswer};
use cairn_cluster::ControlError;
use cairn_node::listing::key_page;
use cairn_node::Shard;

/// How long an answer waits for this node to apply its own change.
const APPLY_WAIT_MAX: Duration = Duration::from_secs(5);
const APPLY_POLL: Duration = Duration::from_millis(5);
/// Keys examined per step when `delete_class` looks for files of the class.
const CLASS_SCAN_BATCH: usize = 1000;

pub enum ClassChange {
    Create,
    Update,
}

pub struct Host {
    pub hostid: u64,
    pub node_id: NodeId,
    pub state: MemberState,
    /// `HOST:PORT` of the node's HTTP API.
    pub http: String,
    /// This node (its address is the one the client reached).
    pub local: bool,
    /// False for a proxy (`--no-store`): a host without a device.
    pub stores: bool,
}

impl Host {
    pub fn name(&self) -> String {
        cairn_cluster::node_id_text(self.node_id)
    }

    /// MogileFS's view of whether the device can be read and written.
    pub fn observed_state(&self) -> &'static str {
        match self.state {
            MemberState::Alive => "writeable",
            MemberState::Drain | MemberState::Readonly => "readable",
            MemberState::Down | MemberState::Dead => "unreachable",
        }
    }
}

/// The MogileFS host id of a node, which is also the device id of its data
/// directory: the top 31 bits of the node id (at least 1), so it is stable
/// for the life of the node, the same on every node, and fits the 32-bit
/// integers some MogileFS clients keep ids in.
pub fn host_id(node_id: NodeId) -> u64 {
    (node_id >> 33).max(1)
}

/// This node's device id.
pub fn local_device_id(shard: &Shard) -> u64 {
    host_id(shard.node.clock.node_id())
}

/// Whether admin commands are taken here: always where HTTP asks for no
/// key, else only with `--mogile-admin` (the protocol cannot authenticate).
pub fn admin_allowed(shard: &Shard) -> bool {
    shard.node.config.mogile_admin || !crate::http::auth::required(shard)
}

/// Whether the tracker port serves `domain` (`--mogile-domains`).
pub fn domain_served(shard: &Shard, domain: &str) -> bool {
    let served = &shard.node.config.mogile_domains;
    served.is_empty() || served.iter().any(|d| d == domain)
}

pub fn domain_exists(shard: &Shard, domain: &str) -> Result<bool, ErrAnswer> {
    Ok(shard.cluster_state().has_domain(domain))
}

/// The copies `class` wants in `domain` (the domain's own class, else the
/// cluster-wide one), or `None` when neither exists.
pub fn class_replicas(shard: &Shard, domain: &str, class: &str) -> Result<Option<u32>, ErrAnswer> {
    Ok(shard.cluster_state().replicas(domain, class))
}

/// Whether this node takes new files: not while it drains, is read-only,
/// or is marked down or dead.
pub fn device_writable(shard: &Shard) -> Result<bool, ErrAnswer> {
    let me = shard.node.clock.node_id();
    let state = shard.cluster_state().member(me).map(|record| record.state);
    Ok(state.is_none_or(|state| state == MemberState::Alive))
}

/// The classes a domain offers: the cluster-wide ones, overridden by its own.
fn domain_class_list(state: &ClusterState, domain: &str) -> Vec<(String, u32)> {
    let mut classes: std::collections::BTreeMap<String, u32> =
        state.classes().iter().map(|(name, class)| (name.clone(), class.replicas)).collect();
    for (name, class) in state.domain_classes(domain) {
        classes.insert(name.to_string(), class.replicas);
    }
    classes.into_iter().collect()
}

pub fn get_domains(shard: &Shard) -> Answer {
    let state = shard.cluster_state();
    let domains: Vec<&String> =
        state.domains().iter().filter(|d| domain_served(shard, d)).collect();
    let mut answer = vec![("domains".to_string(), domains.len().to_string())];
    for (i, domain) in domains.into_iter().enumerate() {
        let n = i + 1;
        answer.push((format!("domain{n}"), domain.clone()));
        let classes = domain_class_list(&state, domain);
        answer.push((format!("domain{n}classes"), classes.len().to_string()));
        for (j, (name, replicas)) in classes.iter().enumerate() {
            let prefix = format!("domain{n}class{}", j + 1);
            answer.push((format!("{prefix}name"), name.clone()));
            answer.push((format!("{prefix}mindevcount"), replicas.to_string()));
            answer.push((format!("{prefix}replpolicy"), format!("MultipleHosts({replicas})")));
            answer.push((format!("{prefix}hashtype"), "SHA-256".into()));
        }
    }
    Ok(answer)
}

/// Has `command` committed, then waits until this node applied it
/// (`applied` says whether the state shows it).
async fn submit(
    shard: &Shard,
    command: Command,
    applied: impl Fn(&ClusterState) -> bool,
) -> Result<(), ErrAnswer> {
    match shard.node.control.submit(command).await {
        Ok(CommandResult::Ok) => {}
        Ok(CommandResult::Refused { reason }) => return Err(refusal(reason)),
        Err(ControlError::Refused(reason)) => return Err(refusal(reason)),
        Err(error) => return Err(ErrAnswer::new("failure", error.to_string())),
    }
    let deadline = Instant::now() + APPLY_WAIT_MAX;
    while !applied(&shard.cluster_state()) && Instant::now() < deadline {
        glommio::timer::sleep(APPLY_POLL).await;
    }
    Ok(())
}

fn refusal(reason: cairn_raft::Refusal) -> ErrAnswer {
    use cairn_raft::Refusal as R;
    let code = match &reason {
        R::DomainExists { .. } => "domain_exists",
        R::DomainNotFound { .. } => "domain_not_found",
        R::DomainHasClasses { .. } => "domain_not_empty",
        R::ClassNotFound { .. } => "class_not_found",
        R::DefaultClass => "nodel_default_class",
        R::Replicas { .. } => "invalid_mindevcount",
        R::MemberNotFound { .. } => "no_device",
        R::Length { .. } => "bad_params",
        R::TooMany { .. } | R::AccessKeyNotFound { .. } | R::AccessKeyExists { .. } => "failure",
    };
    ErrAnswer::new(code, reason.to_string())
}

pub async fn create_domain(shard: &Shard, args: &Request) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| ErrAnswer::code("no_domain"))?;
    cairn_engine::validate_domain(domain)
        .map_err(|error| ErrAnswer::new("bad_params", error.to_string()))?;
    if domain_exists(shard, domain)? {
        return Err(ErrAnswer::code("domain_exists"));
    }
    let command = Command::CreateDomain { name: domain.to_string() };
    submit(shard, command, |state| state.has_domain(domain)).await?;
    Ok(vec![("domain".into(), domain.to_string())])
}

pub async fn delete_domain(shard: &Shard, args: &Request) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| ErrAnswer::code("no_domain"))?;
    let state = shard.cluster_state();
    if !state.has_domain(domain) {
        return Err(ErrAnswer::code("domain_not_found"));
    }
    if state.domain_classes(domain).next().is_some() {
        return Err(ErrAnswer::code("domain_not_empty"));
    }
    // Any key of the cluster counts, not only this node's.
    if !key_page(&shard.node, domain, "", "", 1).await?.keys.is_empty() {
        return Err(ErrAnswer::code("domain_has_files"));
    }
    let command = Command::DeleteDomain { name: domain.to_string() };
    submit(shard, command, |state| !state.has_domain(domain)).await?;
    Ok(vec![("domain".into(), domain.to_string())])
}

/// `create_class` and `update_class`: a class of the domain (docs/design.md §7),
/// overriding a cluster-wide class of the same name.
pub async fn create_class(shard: &Shard, args: &Request, change: ClassChange) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| ErrAnswer::code("no_domain"))?;
    let class = args.nonempty("class").ok_or_else(|| ErrAnswer::code("no_class"))?;
    let valid_name = class.len() <= 64
        && class.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !valid_name {
        return Err(ErrAnswer::new(
            "bad_params",
            "a class name is 1 to 64 letters, digits, '_', '-' or '.'",
        ));
    }
    let replicas = args
        .nonempty("mindevcount")
        .and_then(|text| text.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| ErrAnswer::code("invalid_mindevcount"))?;
    // Every blob is hashed with SHA-256 whatever the class says; MogileFS's
    // replication policies other than the default are not supported.
    match args.nonempty("hashtype") {
        None | Some("NONE" | "MD5" | "SHA-256") => {}
        Some(other) => {
            return Err(ErrAnswer::new("invalid_hashtype", format!("unknown hash type {other:?}")))
        }
    }
    match args.nonempty("replpolicy") {
        None => {}
        Some(policy) if policy.starts_with("MultipleHosts(") => {}
        Some(other) => {
            return Err(ErrAnswer::new(
                "invalid_replpolicy",
                format!("only MultipleHosts() is supported, not {other:?}"),
            ))
        }
    }
    let state = shard.cluster_state();
    if !state.has_domain(domain) {
        return Err(ErrAnswer::code("domain_not_found"));
    }
    let own = state.class(Some(domain), class).is_some();
    match change {
        ClassChange::Create if own => return Err(ErrAnswer::code("class_exists")),
        // MogileFS lets `update_class` set up the default class of a domain.
        ClassChange::Update if !own && class != DEFAULT_CLASS => {
            return Err(ErrAnswer::code("class_not_found"))
        }
        _ => {}
    }
    let command =
        Command::PutClass { domain: Some(domain.to_string()), name: class.to_string(), replicas };
    let wanted = Some(cairn_raft::ClassRecord { replicas });
    submit(shard, command, |state| state.class(Some(domain), class).copied() == wanted).await?;
    Ok(vec![
        ("class".into(), class.to_string()),
        ("mindevcount".into(), replicas.to_string()),
        ("domain".into(), domain.to_string()),
    ])
}

pub async fn delete_class(shard: &Shard, args: &Request) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| ErrAnswer::code("no_domain"))?;
    let class = args.nonempty("class").ok_or_else(|| ErrAnswer::code("no_class"))?;
    if class == DEFAULT_CLASS {
        return Err(ErrAnswer::code("nodel_default_class"));
    }
    let state = shard.cluster_state();
    if !state.has_domain(domain) {
        return Err(ErrAnswer::code("domain_not_found"));
    }
    if state.class(Some(domain), class).is_none() {
        return Err(ErrAnswer::code("class_not_found"));
    }
    if class_has_files(shard, domain, class).await? {
        return Err(ErrAnswer::code("class_has_files"));
    }
    let command =
        Command::DeleteClass { domain: Some(domain.to_string()), name: class.to_string() };
    submit(shard, command, |state| state.class(Some(domain), class).is_none()).await?;
    Ok(vec![("domain".into(), domain.to_string()), ("class".into(), class.to_string())])
}

/// Whether a key of `domain` anywhere in the cluster is of `class`: a walk
/// through the domain's keys (the cluster listing), a page at a time.
async fn class_has_files(shard: &Shard, domain: &str, class: &str) -> Result<bool, ErrAnswer> {
    let mut start = String::new();
    loop {
        let page = key_page(&shard.node, domain, "", &start, CLASS_SCAN_BATCH).await?;
        if page.keys.iter().any(|(_, record)| record.class == class) {
            return Ok(true);
        }
        match page.next_after {
            Some(next) => start = cairn_cluster::start_after(&next),
            None => return Ok(false),
        }
    }
}

/// `set_state host=NAME&device=DEVID&state=STATE`: the state of the node
/// (the device's host) in the cluster.
pub async fn set_state(shard: &Shard, args: &Request) -> Answer {
    let host = args.nonempty("host");
    let device = args.nonempty("device").and_then(|text| text.parse::<u64>().ok());
    let state = match args.nonempty("state") {
        Some("alive") => Some(MemberState::Alive),
        Some("down") => Some(MemberState::Down),
        Some("dead") => Some(MemberState::Dead),
        Some("drain") => Some(MemberState::Drain),
        Some("readonly") => Some(MemberState::Readonly),
        _ => None,
    };
    let (Some(host), Some(device), Some(state)) = (host, device, state) else {
        return Err(ErrAnswer::code("bad_params"));
    };
    let hosts = hosts(shard)?;
    let target =
        hosts.iter().find(|h| h.hostid == device).ok_or_else(|| ErrAnswer::code("no_device"))?;
    if target.name() != host && target.hostid.to_string() != host {
        return Err(ErrAnswer::code("host_mismatch"));
    }
    let id = target.node_id;
    let command = Command::SetMemberState { id, state, at_unix_ms: super::unix_ms_now() };
    submit(shard, command, |s| s.member(id).is_some_and(|m| m.state == state)).await?;
    Ok(Vec::new())
}

/// The cluster's members as MogileFS hosts (this node alone until it is
/// registered), by host id.
pub fn hosts(shard: &Shard) -> Result<Vec<Host>, ErrAnswer> {
    let me = shard.node.clock.node_id();
    let state = shard.cluster_state();
    let mut hosts: Vec<Host> = state
        .members()
        .iter()
        .map(|(id, record)| Host {
            hostid: host_id(*id),
            node_id: *id,
            state: record.state,
            http: record.member.http.clone(),
            local: *id == me,
            stores: !record.member.no_store,
        })
        .collect();
    if !hosts.iter().any(|h| h.local) {
        hosts.push(Host {
            hostid: host_id(me),
            node_id: me,
            state: MemberState::Alive,
            http: String::new(),
            local: true,
            stores: !shard.node.config.no_store,
        });
    }
    hosts.sort_by_key(|h| h.hostid);
    Ok(hosts)
}
