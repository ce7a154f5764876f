//! Nothing acknowledged is lost, nothing deleted comes back (issue 12):
//! versions stay ordered across restarts whatever the wall clock says.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, SETTLE_TIMEOUT};
use common::{wait_for, TestNode};

/// How long a test watches a key for a change that must not happen: longer
/// than a few announcement and re-announcement rounds.
const WATCH: Duration = Duration::from_secs(8);
/// Time for a change of a key to reach its homes: well under the holders'
/// re-announcement period.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(3);

/// GETs the key again and again for `WATCH`; every answer must be `expect`
/// (`None`: 404).
fn key_stays(node: &TestNode, domain: &str, key: &str, expect: Option<&[u8]>) {
    let deadline = Instant::now() + WATCH;
    while Instant::now() < deadline {
        let reply = node.get(domain, key);
        match expect {
            Some(body) => {
                assert_eq!(reply.status, 200, "{domain}/{key} must stay readable");
                assert_eq!(reply.body, body, "{domain}/{key} must keep the newest bytes");
            }
            None => assert_eq!(reply.status, 404, "{domain}/{key} must stay deleted"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node is up and its cluster has a leader (a PUT's class is known).
fn ready(node: &TestNode) {
    let led = wait_for(Duration::from_secs(30), || {
        let cluster = common::reply(ureq::get(&node.url("/v1/cluster")).call());
        (cluster.status == 200 && cluster.json()["leader"].is_string()).then_some(())
    });
    assert!(led.is_some(), "the node leads its one-node cluster");
}

#[test]
fn a_put_after_a_restart_with_the_clock_behind_is_kept() {
    let mut node = TestNode::start(&[]);
    ready(&node);
    assert_eq!(node.put("d", "k", b"first").status, 201);
    node.kill();
    node.set_clock_offset(-120);
    node.start_again();
    ready(&node);
    assert_eq!(node.put("d", "k", b"second").status, 201);
    key_stays(&node, "d", "k", Some(b"second"));
}

#[test]
fn a_delete_after_a_restart_with_the_clock_behind_stays_deleted() {
    let mut node = TestNode::start(&[]);
    ready(&node);
    assert_eq!(node.put("d", "gone", b"first").status, 201);
    node.kill();
    node.set_clock_offset(-120);
    node.start_again();
    ready(&node);
    let deleted = common::reply(ureq::delete(&node.key_url("d", "gone")).call());
    assert_eq!(deleted.status, 204);
    key_stays(&node, "d", "gone", None);
}

fn dav(node: &TestNode, method: &str, path: &str, destination: &str) -> common::Reply {
    let request = ureq::request(method, &node.url(&format!("/dav/{path}")))
        .set("Destination", &node.url(&format!("/dav/{destination}")));
    common::reply(request.call())
}

fn holders(node: &TestNode, domain: &str, key: &str) -> usize {
    let stat = common::reply(ureq::get(&format!("{}?stat", node.key_url(domain, key))).call());
    if stat.status != 200 {
        return 0;
    }
    stat.json()["holders"].as_array().map_or(0, Vec::len)
}

#[test]
fn webdav_moves_and_copies_reach_every_node() {
    let cluster = Cluster::start(3, &[]);
    let origin = &cluster.nodes[0];
    let data = common::bytes(200_000, 3);
    wait_for(SETTLE_TIMEOUT, || (origin.put("notes", "a", &data).status == 201).then_some(()))
        .expect("PUT");
    wait_for(SETTLE_TIMEOUT, || {
        let stat =
            common::reply(ureq::get(&format!("{}?stat", origin.key_url("notes", "a"))).call());
        (stat.json()["state"] == "stored").then_some(())
    })
    .expect("the original has its two copies");
    assert_eq!(dav(origin, "MOVE", "notes/a", "notes/b").status, 201);
    assert_eq!(dav(origin, "COPY", "notes/b", "notes/c").status, 201);
    // At once, not at the holders' next re-announcement (every 5 s for
    // keys short of copies, far less often for the others).
    for node in &cluster.nodes {
        for key in ["b", "c"] {
            wait_for(NOTICE_TIMEOUT, || (node.get("notes", key).body == data).then_some(()))
                .unwrap_or_else(|| panic!("notes/{key} is readable at {}", node.base));
        }
        wait_for(SETTLE_TIMEOUT, || (node.get("notes", "a").status == 404).then_some(()))
            .unwrap_or_else(|| panic!("the moved key's old name is gone at {}", node.base));
    }
    for key in ["b", "c"] {
        wait_for(SETTLE_TIMEOUT, || (holders(origin, "notes", key) == 2).then_some(()))
            .unwrap_or_else(|| panic!("notes/{key} reaches its class's two copies"));
    }
}
