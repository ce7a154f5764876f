//! Several nodes on loopback forming one cluster, for the cluster tests.

use std::time::Duration;

use serde_json::Value;

use super::{reply, wait_for, Host, Reply, TestNode};

/// Time for a cluster to form, or to agree again after a change.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(40);

pub struct Cluster {
    pub nodes: Vec<TestNode>,
}

impl Cluster {
    /// One node, then `count - 1` more joining it: one command each.
    pub fn start(count: usize, extra: &[&str]) -> Cluster {
        Cluster::start_on(vec![Host::loopback(); count], extra)
    }

    /// A node on each of `hosts`, the others joining the first.
    pub fn start_on(hosts: Vec<Host>, extra: &[&str]) -> Cluster {
        let count = hosts.len();
        let mut hosts = hosts.into_iter();
        let mut args = vec!["--shards", "1"];
        args.extend_from_slice(extra);
        let first = TestNode::start_on(hosts.next().expect("a host"), &args);
        let (seed, token) = (first.peer_address(), first.join_token_file());
        let mut nodes = vec![first];
        for host in hosts {
            let mut joining = args.clone();
            joining.extend_from_slice(&["--join", &seed, "--join-token-file", &token]);
            nodes.push(TestNode::start_on(host, &joining));
        }
        let cluster = Cluster { nodes };
        let voters = count.min(if count >= 5 { 5 } else { 3 });
        cluster.settle(count, voters);
        cluster
    }

    /// Starts one more node joining through the first, with `extra` flags.
    pub fn add(&mut self, extra: &[&str]) -> &TestNode {
        let (seed, token) = (self.nodes[0].peer_address(), self.nodes[0].join_token_file());
        let mut args = vec!["--shards", "1"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--join", &seed, "--join-token-file", &token]);
        self.nodes.push(TestNode::start(&args));
        self.nodes.last().expect("just added")
    }

    /// Makes class `name` with `replicas` copies and waits until every node knows it.
    pub fn make_class(&self, name: &str, replicas: u32) {
        let class = serde_json::json!({ "name": name, "replicas": replicas });
        assert_eq!(post(&self.nodes[0], "/v1/admin/classes", class).status, 201);
        for node in &self.nodes {
            wait_for(SETTLE_TIMEOUT, || class_names(node).contains(&name.to_owned()).then_some(()))
                .expect("class everywhere");
        }
    }

    pub fn running(&self) -> impl Iterator<Item = &TestNode> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// Waits until every running node reports the same leader (a running
    /// node) and `members` members of which `voters` are voters, all
    /// running ones alive. Returns the agreed report.
    pub fn settle(&self, members: usize, voters: usize) -> Value {
        let ids: Vec<String> = self.running().map(node_id).collect();
        wait_for(SETTLE_TIMEOUT, || {
            let reports: Vec<Value> = self.running().map(cluster_report).collect::<Option<_>>()?;
            let leader = reports[0]["leader"].as_str()?.to_owned();
            let agreed = reports.iter().all(|r| r["leader"] == leader.as_str());
            let listed = reports[0]["members"].as_array()?;
            let voter_count = listed.iter().filter(|m| m["voter"] == true).count();
            let running_alive = listed
                .iter()
                .filter(|m| ids.iter().any(|id| m["id"] == id.as_str()))
                .all(|m| m["state"] == "alive");
            (agreed
                && ids.contains(&leader)
                && listed.len() == members
                && voter_count == voters
                && running_alive)
                .then(|| reports[0].clone())
        })
        .unwrap_or_else(|| {
            let reports: Vec<_> = self.running().map(cluster_report).collect();
            panic!("cluster did not settle on {members} members / {voters} voters: {reports:#?}")
        })
    }

    pub fn leader_index(&self) -> usize {
        let report = cluster_report(self.running().next().expect("a running node")).unwrap();
        let leader = report["leader"].as_str().expect("a leader").to_owned();
        self.nodes.iter().position(|n| n.is_running() && node_id(n) == leader).expect("leader runs")
    }
}

pub fn node_id(node: &TestNode) -> String {
    let status = node.status();
    let id = status["node_id"].as_str();
    id.unwrap_or_else(|| panic!("/v1/status at {} without a node_id: {status}", node.base))
        .to_owned()
}

pub fn cluster_report(node: &TestNode) -> Option<Value> {
    let answer = super::http::get(&node.url("/v1/cluster")).call().ok()?;
    answer.into_json().ok()
}

pub fn post(node: &TestNode, path: &str, body: Value) -> Reply {
    reply(super::http::post(&node.url(path)).send_json(body))
}

pub fn put_class(node: &TestNode, domain: &str, key: &str, class: &str, body: &[u8]) -> Reply {
    let url = format!("{}?class={class}", node.key_url(domain, key));
    reply(super::http::put(&url).send_bytes(body))
}

pub fn class_names(node: &TestNode) -> Vec<String> {
    let listed = reply(super::http::get(&node.url("/v1/admin/classes")).call()).json();
    listed["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().into())
        .collect()
}
