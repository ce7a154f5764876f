//! Domains, classes, hosts and devices as the tracker protocol sees them:
//! the only part of `src/mogile/` that reads or changes cluster-wide
//! definitions.
//!
//! Stand-in until the cluster state is on this branch: domains are the
//! node's own domain records, the only class is the built-in `default`,
//! and the one host is this node.

use cairn_engine::meta::Batch;
use cairn_engine::validate_domain;
use cairn_net::tracker::Request;

use super::commands::{check_domain, Answer, Refusal};
use super::DEVICE_ID;
use crate::classes;
use crate::shard::Shard;

/// Domains answered by `get_domains` at most.
const DOMAINS_MAX: usize = 10_000;

pub enum ClassChange {
    Create,
    Update,
}

pub struct Host {
    pub hostid: u64,
    pub status: String,
    pub name: String,
    pub ip: String,
    pub http_port: u16,
    /// This node (its address is the one the client reached).
    pub local: bool,
}

pub fn domain_exists(shard: &Shard, domain: &str) -> Result<bool, Refusal> {
    Ok(shard.node.meta.domain_exists(domain)?)
}

/// The copies `class` wants in `domain`, or `None` when it does not exist.
pub fn class_replicas(shard: &Shard, domain: &str, class: &str) -> Result<Option<u32>, Refusal> {
    let _ = (shard, domain);
    Ok(classes::replicas(class))
}

/// Whether this node takes new files.
pub fn device_writable(shard: &Shard) -> Result<bool, Refusal> {
    let _ = shard;
    Ok(true)
}

pub fn get_domains(shard: &Shard) -> Answer {
    let domains = shard.node.meta.domains(DOMAINS_MAX)?;
    let mut answer = vec![("domains".to_string(), domains.len().to_string())];
    for (i, domain) in domains.iter().enumerate() {
        let n = i + 1;
        answer.push((format!("domain{n}"), domain.clone()));
        answer.push((format!("domain{n}classes"), "1".into()));
        let replicas = classes::replicas(classes::DEFAULT_CLASS).unwrap_or(1);
        answer.extend(class_pairs(n, 1, classes::DEFAULT_CLASS, replicas));
    }
    Ok(answer)
}

fn class_pairs(
    domain_n: usize,
    class_n: usize,
    name: &str,
    replicas: u32,
) -> Vec<(String, String)> {
    let prefix = format!("domain{domain_n}class{class_n}");
    vec![
        (format!("{prefix}name"), name.to_string()),
        (format!("{prefix}mindevcount"), replicas.to_string()),
        (format!("{prefix}replpolicy"), format!("MultipleHosts({replicas})")),
        (format!("{prefix}hashtype"), "SHA-256".into()),
    ]
}

pub async fn create_domain(shard: &Shard, args: &Request) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| Refusal::code("no_domain"))?;
    validate_domain(domain).map_err(|error| Refusal::new("bad_params", error.to_string()))?;
    if domain_exists(shard, domain)? {
        return Err(Refusal::code("domain_exists"));
    }
    let mut batch = Batch::default();
    batch.put_domain(domain);
    shard.node.meta.commit(batch).await?;
    Ok(vec![("domain".into(), domain.to_string())])
}

pub async fn delete_domain(shard: &Shard, args: &Request) -> Answer {
    let domain = args.nonempty("domain").ok_or_else(|| Refusal::code("no_domain"))?;
    if !domain_exists(shard, domain)? {
        return Err(Refusal::code("domain_not_found"));
    }
    if shard.node.meta.domain_has_keys(domain)? {
        return Err(Refusal::code("domain_has_files"));
    }
    let mut batch = Batch::default();
    batch.delete_domain(domain);
    shard.node.meta.commit(batch).await?;
    Ok(vec![("domain".into(), domain.to_string())])
}

pub async fn create_class(shard: &Shard, args: &Request, change: ClassChange) -> Answer {
    let _ = change;
    check_domain(shard, args)?;
    Err(Refusal::new("failure", "classes need the cluster state"))
}

pub async fn delete_class(shard: &Shard, args: &Request) -> Answer {
    check_domain(shard, args)?;
    Err(Refusal::new("failure", "classes need the cluster state"))
}

pub async fn set_state(shard: &Shard, args: &Request) -> Answer {
    let _ = shard;
    let _ = args;
    Err(Refusal::new("failure", "states need the cluster state"))
}

pub fn hosts(shard: &Shard) -> Result<Vec<Host>, Refusal> {
    Ok(vec![Host {
        hostid: DEVICE_ID,
        status: "alive".into(),
        name: shard.node.node_id_hex(),
        ip: String::new(),
        http_port: shard.node.config.http_listen.port(),
        local: true,
    }])
}
