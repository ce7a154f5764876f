//! One cluster, one namespace: every node lists every key of the cluster,
//! whichever nodes hold it.

mod common;

use std::collections::BTreeSet;

use common::cluster::{Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, wait_for, Reply, TestNode};

/// Keys of the default class (two copies): on three nodes, each node holds
/// about two thirds of them.
const KEYS: usize = 24;

fn list(node: &TestNode, domain: &str, query: &str) -> Reply {
    reply(ureq::get(&node.url(&format!("/v1/{domain}?{query}"))).call())
}

/// Every key of the listing at `node`, page by page (`limit` a page),
/// checking that pages come in order with no key twice.
fn list_all(node: &TestNode, domain: &str, limit: usize) -> Result<Vec<String>, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let page = list(node, domain, &format!("limit={limit}{cursor}"));
        if page.status != 200 {
            return Err(format!("status {}: {}", page.status, String::from_utf8_lossy(&page.body)));
        }
        let page = page.json();
        let listed = page["keys"].as_array().unwrap();
        assert!(listed.len() <= limit, "a page holds at most its limit");
        for item in listed {
            let key = item["key"].as_str().unwrap().to_owned();
            assert!(keys.last().is_none_or(|last| *last < key), "{key} after {keys:?}");
            keys.push(key);
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(keys),
        }
    }
    Err("the listing never ended".into())
}

fn put_keys(cluster: &Cluster, domain: &str) -> BTreeSet<String> {
    (0..KEYS)
        .map(|i| {
            let key = format!("k{i:03}");
            let node = &cluster.nodes[i % cluster.nodes.len()];
            assert_eq!(node.put(domain, &key, &bytes(70_000 + i, i as u64)).status, 201);
            key
        })
        .collect()
}

#[test]
fn every_node_lists_every_key_of_the_cluster_while_a_node_joins() {
    let mut cluster = Cluster::start(3, &[]);
    let keys = put_keys(&cluster, "shared");
    let wanted: Vec<String> = keys.iter().cloned().collect();
    for node in &cluster.nodes {
        // A node's own keys are only a part of them.
        let local = list(node, "shared", "local=true").json();
        assert!(local["keys"].as_array().unwrap().len() < KEYS, "local listing is this node's");
        assert_eq!(list_all(node, "shared", 1000).unwrap(), wanted, "one page");
        assert_eq!(list_all(node, "shared", 5).unwrap(), wanted, "pages of five");
    }
    // A fourth node joins: while it does, and after, every node lists all.
    cluster.add(&[]);
    for _ in 0..3 {
        for node in &cluster.nodes {
            match list_all(node, "shared", 7) {
                Ok(listed) => assert_eq!(listed, wanted, "no key missing or twice"),
                // A member not yet answering fails the page, never shortens it.
                Err(error) => assert!(error.contains("members_unreachable"), "{error}"),
            }
        }
    }
    cluster.settle(4, 3);
    for node in &cluster.nodes {
        assert_eq!(list_all(node, "shared", 7).unwrap(), wanted);
    }
    // A deleted key leaves every node's listing.
    assert_eq!(reply(ureq::delete(&cluster.nodes[3].key_url("shared", "k005")).call()).status, 204);
    for node in &cluster.nodes {
        let listed = list_all(node, "shared", 4).unwrap();
        assert!(!listed.contains(&"k005".to_owned()) && listed.len() == KEYS - 1, "{listed:?}");
    }
}

#[test]
fn a_listing_with_silent_members_fails_unless_partial_is_asked() {
    let cluster = Cluster::start(3, &[]);
    let keys = put_keys(&cluster, "shared");
    let asking = &cluster.nodes[0];
    // One member silent: each key has another home that answers.
    cluster.nodes[1].signal("-STOP");
    let one_silent = list_all(asking, "shared", 10);
    cluster.nodes[2].signal("-STOP");
    let both_silent = list(asking, "shared", "limit=1000");
    let partial = list(asking, "shared", "limit=1000&partial=true");
    cluster.nodes[1].signal("-CONT");
    cluster.nodes[2].signal("-CONT");
    assert_eq!(one_silent.unwrap(), keys.iter().cloned().collect::<Vec<_>>());
    both_silent.assert_error(503, "members_unreachable");
    assert_eq!(partial.status, 200);
    let partial = partial.json();
    assert_eq!(partial["unanswered"].as_array().unwrap().len(), 2, "{partial}");
    // Awake again, the whole listing is back.
    wait_for(SETTLE_TIMEOUT, || list_all(asking, "shared", 1000).ok().filter(|l| l.len() == KEYS))
        .expect("every key listed again");
}
