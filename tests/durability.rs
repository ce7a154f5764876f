//! Nothing acknowledged is lost, nothing deleted comes back (issue 12):
//! versions stay ordered across restarts whatever the wall clock says.

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, TestNode};

/// How long a test watches a key for a change that must not happen: longer
/// than a few announcement and re-announcement rounds.
const WATCH: Duration = Duration::from_secs(8);

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
