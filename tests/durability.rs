//! Nothing acknowledged is lost, nothing deleted comes back (issue 12):
//! versions stay ordered across restarts whatever the wall clock says.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, SETTLE_TIMEOUT};
use common::{wait_for, TestNode};

/// How long a test watches a key for a change that must not happen: longer
/// than a few announcement and anti-entropy rounds.
const WATCH: Duration = Duration::from_secs(8);
/// Time for a change of a key to reach its homes.
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
        let cluster = common::reply(common::http::get(&node.url("/v1/cluster")).call());
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
    let deleted = common::reply(common::http::delete(&node.key_url("d", "gone")).call());
    assert_eq!(deleted.status, 204);
    key_stays(&node, "d", "gone", None);
}

fn dav(node: &TestNode, method: &str, path: &str, destination: &str) -> common::Reply {
    node.dav(method, path, &[("Destination", &node.url(&format!("/dav/{destination}")))], b"")
}

fn holders(node: &TestNode, domain: &str, key: &str) -> usize {
    let stat =
        common::reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
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
        let stat = common::reply(
            common::http::get(&format!("{}?stat", origin.key_url("notes", "a"))).call(),
        );
        (stat.json()["state"] == "stored").then_some(())
    })
    .expect("the original has its two copies");
    assert_eq!(dav(origin, "MOVE", "notes/a", "notes/b").status, 201);
    assert_eq!(dav(origin, "COPY", "notes/b", "notes/c").status, 201);
    // At once, when they commit.
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

/// The ids of the key's homes, as `?stat` at `node` names them.
fn homes_of(node: &TestNode, domain: &str, key: &str) -> Vec<String> {
    let stat =
        common::reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
    assert_eq!(stat.status, 200, "?stat of {domain}/{key}");
    let homes = stat.json()["homes"].as_array().expect("?stat lists the homes").clone();
    homes.iter().map(|home| home.as_str().unwrap().to_owned()).collect()
}

/// A key of `domain` stored through `origin` whose homes do not include
/// `origin`, with its homes.
fn key_homed_elsewhere(cluster: &Cluster, origin: usize, domain: &str) -> (String, Vec<String>) {
    let me = common::cluster::node_id(&cluster.nodes[origin]);
    for i in 0..64 {
        let key = format!("k{i}");
        let stored = cluster.nodes[origin].put(domain, &key, key.as_bytes());
        assert_eq!(stored.status, 201);
        let homes = homes_of(&cluster.nodes[origin], domain, &key);
        if homes.len() == 3 && !homes.contains(&me) {
            return (key, homes);
        }
    }
    panic!("no key of 64 is homed away from node {origin}");
}

/// A key never written whose homes are `homes` (placement's own function).
fn unwritten_key_with_homes(cluster: &Cluster, domain: &str, homes: &[String]) -> String {
    let ids: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|node| u64::from_str_radix(&common::cluster::node_id(node), 16).unwrap())
        .collect();
    let mut wanted: Vec<u64> = homes.iter().map(|h| u64::from_str_radix(h, 16).unwrap()).collect();
    wanted.sort_unstable();
    (0..10_000)
        .map(|i| format!("never-{i}"))
        .find(|key| {
            let mut found = cairn_cluster::placement::homes(&ids, domain, key, 3);
            found.sort_unstable();
            found == wanted
        })
        .expect("a key with the same homes")
}

#[test]
fn without_its_homes_a_delete_is_not_acknowledged_and_a_read_is_unavailable_not_missing() {
    let cluster = Cluster::start(4, &[]);
    cluster.settle(4, 3);
    let (key, homes) = key_homed_elsewhere(&cluster, 0, "cut");
    let unknown = unwritten_key_with_homes(&cluster, "cut", &homes);
    let paused: Vec<&TestNode> = cluster
        .nodes
        .iter()
        .filter(|node| homes.contains(&common::cluster::node_id(node)))
        .collect();
    assert_eq!(paused.len(), 3);
    for node in &paused {
        node.signal("-STOP");
    }
    let origin = &cluster.nodes[0];
    // Not held at origin? It took the PUT, so it is: the delete must still
    // reach a home before it is acknowledged.
    let deleted = common::reply(common::http::delete(&origin.key_url("cut", &key)).call());
    let unknown = common::reply(common::http::get(&origin.key_url("cut", &unknown)).call());
    for node in &paused {
        node.signal("-CONT");
    }
    deleted.assert_error(503, "no_home");
    unknown.assert_error(503, "homes_unreachable");
    // A 503 is not an acknowledgement: the deletion may still arrive (a
    // paused home reads its socket once it runs again). A retry settles
    // it, and then no node serves the key.
    wait_for(SETTLE_TIMEOUT, || {
        let again = common::reply(common::http::delete(&origin.key_url("cut", &key)).call());
        matches!(again.status, 204 | 404).then_some(())
    })
    .expect("the retried delete is acknowledged");
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || (node.get("cut", &key).status == 404).then_some(()))
            .unwrap_or_else(|| panic!("the deleted key is gone at {}", node.base));
    }
}

#[test]
fn a_later_write_at_a_node_whose_clock_is_behind_wins() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.settle(3, 3);
    let behind = 1;
    cluster.nodes[behind].kill();
    cluster.nodes[behind].set_clock_offset(-120);
    cluster.nodes[behind].start_again();
    cluster.settle(3, 3);
    let first = &cluster.nodes[0];
    assert_eq!(first.put("race", "k", b"first").status, 201);
    // The first write is known to the homes: every node serves it.
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || (node.get("race", "k").body == b"first").then_some(()))
            .expect("the first write is readable everywhere");
    }
    assert_eq!(cluster.nodes[behind].put("race", "k", b"second").status, 201);
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || (node.get("race", "k").body == b"second").then_some(()))
            .unwrap_or_else(|| panic!("the later write is served at {}", node.base));
    }
    for node in &cluster.nodes {
        key_stays(node, "race", "k", Some(b"second"));
    }
}

#[test]
fn a_clock_too_far_ahead_is_shown_counted_and_not_followed_and_later_writes_still_win() {
    let mut cluster = Cluster::start(3, &["--max-clock-skew", "30s"]);
    let ahead = 2;
    cluster.nodes[ahead].kill();
    cluster.nodes[ahead].set_clock_offset(120);
    cluster.nodes[ahead].start_again();
    cluster.settle(3, 3);
    // The leader sees the member's clock two minutes ahead.
    let ahead_id = common::cluster::node_id(&cluster.nodes[ahead]);
    let offset = wait_for(SETTLE_TIMEOUT, || {
        let report = common::cluster::cluster_report(&cluster.nodes[0])?;
        let members = report["members"].as_array()?.clone();
        let member = members.iter().find(|m| m["id"] == ahead_id.as_str())?;
        member["clock_offset_ms"].as_i64().filter(|ms| *ms > 100_000)
    });
    assert!(offset.is_some(), "/v1/cluster shows the member's clock ahead");
    // A write there carries a version from the future; a later write at a
    // node with a true clock still wins, everywhere.
    assert_eq!(cluster.nodes[ahead].put("skew", "k", b"from the future").status, 201);
    assert_eq!(cluster.nodes[0].put("skew", "k", b"later").status, 201);
    for node in &cluster.nodes {
        assert_eq!(node.get("skew", "k").body, b"later", "at {}", node.base);
    }
    // The node that passed it counted the version it would not follow.
    let metrics = common::reply(common::http::get(&cluster.nodes[0].url("/metrics")).call());
    let text = String::from_utf8(metrics.body).unwrap();
    let counted = text
        .lines()
        .find_map(|line| line.strip_prefix("cairn_clock_ahead_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(counted.is_some_and(|n| n > 0), "cairn_clock_ahead_total counts it: {counted:?}");
    for node in &cluster.nodes {
        key_stays(node, "skew", "k", Some(b"later"));
    }
}

/// Found by S9 (clocks 10 minutes apart): a DELETE at a node that holds no
/// copy took the version it passes from the node's location cache, which
/// a write elsewhere does not refresh; its tombstone, stamped by a clock
/// behind that write's, lost to it although the DELETE came after it.
#[test]
fn a_delete_after_a_write_from_a_clock_ahead_wins_at_a_node_that_holds_no_copy() {
    let mut cluster = Cluster::start(3, &[]);
    let (ahead, deleter) = (1, 2);
    cluster.nodes[ahead].kill();
    cluster.nodes[ahead].set_clock_offset(600);
    cluster.nodes[ahead].start_again();
    cluster.settle(3, 3);
    cluster.make_class("one", 1);
    let put = |at: usize, body: &[u8]| {
        common::cluster::put_class(&cluster.nodes[at], "skew", "k", "one", body).status
    };
    // One copy, at node 0; the deleter looks it up (?stat) and caches it.
    assert_eq!(put(0, b"first"), 201);
    wait_for(SETTLE_TIMEOUT, || (holders(&cluster.nodes[deleter], "skew", "k") == 1).then_some(()))
        .expect("the deleter finds the key's one holder");
    // A later write at the node whose clock is ahead, then a DELETE at the
    // deleter, which holds no copy: the DELETE came last, so it wins.
    assert_eq!(put(ahead, b"from the future"), 201);
    let deleted = common::http::delete(&cluster.nodes[deleter].key_url("skew", "k")).call();
    assert_eq!(common::reply(deleted).status, 204);
    for node in &cluster.nodes {
        key_stays(node, "skew", "k", None);
    }
}

#[test]
fn a_wiped_node_is_a_new_member_and_its_old_copies_are_made_again() {
    let mut cluster = Cluster::start(3, &["--down-after", "1s", "--dead-after", "4s"]);
    let origin = &cluster.nodes[0];
    let keys: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    for key in &keys {
        wait_for(SETTLE_TIMEOUT, || {
            (origin.put("wiped", key, key.as_bytes()).status == 201).then_some(())
        })
        .expect("PUT");
    }
    for key in &keys {
        wait_for(SETTLE_TIMEOUT, || (holders(origin, "wiped", key) == 2).then_some(()))
            .expect("two copies of every key");
    }
    let old_id = common::cluster::node_id(&cluster.nodes[2]);
    let (seed, rest) = cluster.nodes.split_at_mut(1);
    rest[1].wipe_and_rejoin(&seed[0]);
    let new_id = common::cluster::node_id(&cluster.nodes[2]);
    assert_ne!(old_id, new_id, "a wiped node has a new id");
    // The old id answers no more: it goes down, then dead.
    let origin = &cluster.nodes[0];
    wait_for(SETTLE_TIMEOUT, || {
        let report = common::cluster::cluster_report(origin)?;
        let members = report["members"].as_array()?.clone();
        let old = members.iter().find(|m| m["id"] == old_id.as_str())?;
        (old["state"] == "dead").then_some(())
    })
    .expect("the old id of a wiped node is declared dead");
    // Every key is back at two copies besides the old id's.
    for key in &keys {
        wait_for(SETTLE_TIMEOUT, || {
            let stat = common::reply(
                common::http::get(&format!("{}?stat", origin.key_url("wiped", key))).call(),
            );
            let holders: Vec<String> = stat.json()["holders"]
                .as_array()?
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect();
            let real = holders.iter().filter(|h| **h != old_id).count();
            (real >= 2).then_some(())
        })
        .unwrap_or_else(|| panic!("wiped/{key} is back at two real copies"));
    }
}

/// The state of member `id` as the current leader reports it.
fn member_state(cluster: &Cluster, id: &str) -> Option<String> {
    let report = common::cluster::cluster_report(cluster.running().next()?)?;
    let members = report["members"].as_array()?.clone();
    let member = members.iter().find(|m| m["id"] == id)?;
    member["state"].as_str().map(str::to_owned)
}

#[test]
fn leader_changes_do_not_restart_the_time_to_dead() {
    // Leaders change every ~4 s, more often than --dead-after: the member
    // that stopped must still be declared dead, counted from when it went
    // down, not from each new leader's start.
    let mut cluster = Cluster::start(5, &["--down-after", "1s", "--dead-after", "8s"]);
    let leader = cluster.leader_index();
    let victim = (0..5).find(|i| *i != leader).unwrap();
    let victim_id = common::cluster::node_id(&cluster.nodes[victim]);
    cluster.nodes[victim].kill();
    let started = Instant::now();
    let mut dead_at = None;
    while started.elapsed() < Duration::from_secs(30) {
        if member_state(&cluster, &victim_id).as_deref() == Some("dead") {
            dead_at = Some(started.elapsed());
            break;
        }
        // Every 4 s, the leader is killed and comes back as a follower.
        if started.elapsed().as_secs() % 4 == 3 {
            if let Some(leader) = wait_for(SETTLE_TIMEOUT, || {
                let report = common::cluster::cluster_report(cluster.running().next()?)?;
                let id = report["leader"].as_str()?.to_owned();
                cluster
                    .nodes
                    .iter()
                    .position(|n| n.is_running() && common::cluster::node_id(n) == id)
            }) {
                cluster.nodes[leader].restart();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let dead_at = dead_at.expect("the stopped member is declared dead despite leader changes");
    assert!(dead_at < Duration::from_secs(25), "dead after {dead_at:?}");
}

/// Every node serves `data` for the key within `within`.
fn readable_everywhere(cluster: &Cluster, domain: &str, key: &str, data: &[u8], within: Duration) {
    for node in cluster.running() {
        wait_for(within, || (node.get(domain, key).body == data).then_some(()))
            .unwrap_or_else(|| panic!("{domain}/{key} is the acknowledged bytes at {}", node.base));
    }
}

#[test]
fn changes_the_homes_missed_are_sent_again_from_the_outbox() {
    // No rescan of the keys: whatever reaches the homes comes from the outbox.
    let mut cluster = Cluster::start(4, &["--rescan-interval", "0s"]);
    let (key, homes) = key_homed_elsewhere(&cluster, 0, "out");
    let fresh = unwritten_key_with_homes(&cluster, "out", &homes);
    let homes_of_key: Vec<usize> =
        (0..4).filter(|i| homes.contains(&common::cluster::node_id(&cluster.nodes[*i]))).collect();
    let (new, other) = (common::bytes(5_000, 21), common::bytes(70_000, 22));
    // An announcement lost to a crash right after the answer.
    for i in &homes_of_key {
        cluster.nodes[*i].signal("-STOP");
    }
    assert_eq!(cluster.nodes[0].put("out", &key, &new).status, 201);
    assert_eq!(cluster.nodes[0].put("out", &fresh, &other).status, 201);
    cluster.nodes[0].kill();
    for i in &homes_of_key {
        cluster.nodes[*i].signal("-CONT");
    }
    cluster.nodes[0].start_again();
    readable_everywhere(&cluster, "out", &key, &new, SETTLE_TIMEOUT);
    readable_everywhere(&cluster, "out", &fresh, &other, SETTLE_TIMEOUT);
    // An announcement that timed out: the homes were paused past it.
    let late = unwritten_key_with_homes(&cluster, "out-late", &homes);
    let body = common::bytes(3_000, 23);
    for i in &homes_of_key {
        cluster.nodes[*i].signal("-STOP");
    }
    assert_eq!(cluster.nodes[0].put("out-late", &late, &body).status, 201);
    std::thread::sleep(Duration::from_secs(8));
    for i in &homes_of_key {
        cluster.nodes[*i].signal("-CONT");
    }
    readable_everywhere(&cluster, "out-late", &late, &body, SETTLE_TIMEOUT);
    for (domain, key) in [("out", &key), ("out", &fresh), ("out-late", &late)] {
        wait_for(SETTLE_TIMEOUT, || (holders(&cluster.nodes[1], domain, key) == 2).then_some(()))
            .unwrap_or_else(|| panic!("{domain}/{key} reaches its class's two copies"));
    }
}

#[test]
fn after_nodes_join_every_key_is_found_at_every_node_and_no_deleted_key_returns() {
    // No rescan, and lookups ask only the homes: what the new homes know
    // comes from the handoff.
    let quiet = ["--rescan-interval", "0s", "--handoff-grace", "0s"];
    let mut cluster = Cluster::start(3, &quiet);
    let body = |i: usize| common::bytes(1_000 + i, i as u64);
    for i in 0..200 {
        let node = &cluster.nodes[i % 3];
        assert_eq!(node.put("moved", &format!("k{i}"), &body(i)).status, 201);
    }
    for i in (0..200).step_by(5) {
        let deleted = common::reply(
            common::http::delete(&cluster.nodes[0].key_url("moved", &format!("k{i}"))).call(),
        );
        assert_eq!(deleted.status, 204, "DELETE k{i}");
    }
    for _ in 0..3 {
        cluster.add(&quiet);
    }
    cluster.settle(6, 5);
    for node in &cluster.nodes {
        for i in 0..200 {
            let key = format!("k{i}");
            // The handoff starts within a second of the change.
            let got = wait_for(Duration::from_secs(10), || {
                let got = node.get("moved", &key);
                (got.status == 200 || i % 5 == 0).then_some(got)
            })
            .unwrap_or_else(|| node.get("moved", &key));
            if i % 5 == 0 {
                assert_eq!(got.status, 404, "deleted moved/{key} at {}", node.base);
            } else {
                assert_eq!(got.status, 200, "moved/{key} at {}", node.base);
                assert_eq!(got.body, body(i), "moved/{key} at {}", node.base);
            }
        }
    }
}

/// The ids of the key's holders, as `?stat` at `node` lists them.
fn holder_ids(node: &TestNode, domain: &str, key: &str) -> Vec<String> {
    let stat =
        common::reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
    let listed = stat.json()["holders"].as_array().cloned().unwrap_or_default();
    listed.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect()
}

#[test]
fn a_read_after_an_acknowledged_write_sees_it_at_every_node_even_a_paused_holder() {
    let cluster = Cluster::start(3, &[]);
    let first = common::bytes(20_000, 31);
    assert_eq!(cluster.nodes[0].put("raw", "k", &first).status, 201);
    wait_for(SETTLE_TIMEOUT, || {
        (holder_ids(&cluster.nodes[0], "raw", "k").len() == 2).then_some(())
    })
    .expect("the key reaches its two copies");
    let holders = holder_ids(&cluster.nodes[0], "raw", "k");
    let other = cluster
        .nodes
        .iter()
        .position(|n| {
            n.base != cluster.nodes[0].base && holders.contains(&common::cluster::node_id(n))
        })
        .expect("a second holder");
    // The second holder misses the newer write (and the notice that its
    // copy is stale) while it is paused.
    cluster.nodes[other].signal("-STOP");
    let second = common::bytes(20_000, 32);
    assert_eq!(cluster.nodes[0].put("raw", "k", &second).status, 201);
    std::thread::sleep(Duration::from_secs(1));
    cluster.nodes[other].signal("-CONT");
    // At once, no waiting: every node, the woken holder first.
    let woken = cluster.nodes[other].get("raw", "k");
    assert_eq!((woken.status, woken.body == second), (200, true), "the woken holder");
    for node in &cluster.nodes {
        assert_eq!(node.get("raw", "k").body, second, "at {}", node.base);
    }
    // A write at one node is read at the others as soon as it is answered.
    for round in 0..10u64 {
        let writer = &cluster.nodes[(round % 3) as usize];
        let data = common::bytes(3_000, 100 + round);
        assert_eq!(writer.put("raw", "k", &data).status, 201);
        for node in &cluster.nodes {
            assert_eq!(node.get("raw", "k").body, data, "round {round} at {}", node.base);
        }
    }
}

#[test]
fn the_writer_learns_its_key_is_stored_from_the_homes_not_from_a_rescan() {
    // No anti-entropy: only the homes' notice can tell the writer.
    let cluster = Cluster::start(3, &["--rescan-interval", "0s"]);
    let origin = &cluster.nodes[0];
    for i in 0..5 {
        let key = format!("k{i}");
        assert_eq!(origin.put("told", &key, &common::bytes(100_000, i)).status, 201);
    }
    for i in 0..5 {
        let url = format!("{}?stat", origin.key_url("told", &format!("k{i}")));
        wait_for(NOTICE_TIMEOUT, || {
            let stat = common::reply(common::http::get(&url).call());
            (stat.json()["state"] == "stored").then_some(())
        })
        .unwrap_or_else(|| panic!("told/k{i} is stored at its writer once its copy is made"));
    }
}

/// A counter from the node's `/metrics` (0 when absent).
fn counter(node: &TestNode, name: &str) -> u64 {
    let metrics = common::reply(common::http::get(&node.url("/metrics")).call());
    let text = String::from_utf8(metrics.body).expect("/metrics is UTF-8");
    let prefix = format!("{name} ");
    let value = text.lines().find_map(|line| line.strip_prefix(&prefix));
    value.map_or(0, |n| n.parse().expect("a counter is a whole number"))
}

/// PUTs `count` keys of class `class` at `node`, from a few threads.
fn fill(node: &TestNode, domain: &str, class: &str, count: usize) {
    std::thread::scope(|scope| {
        for thread in 0..8 {
            scope.spawn(move || {
                for i in (thread..count).step_by(8) {
                    let key = format!("k{i:06}");
                    let reply = common::cluster::put_class(node, domain, &key, class, b"x");
                    assert_eq!(reply.status, 201, "{domain}/{key}");
                }
            });
        }
    });
}

/// Keys `probe/{prefix}{i}` written at `node` (class `one`, `body`) none
/// of whose homes is that node, so it hears of their changes only as a
/// holder; `count` of them (the others written on the way stay).
fn keys_not_homed_at(
    cluster: &Cluster,
    node: usize,
    prefix: &str,
    count: usize,
    body: &[u8],
) -> Vec<String> {
    let writer = &cluster.nodes[node];
    let id = common::cluster::node_id(writer);
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|key| {
            assert_eq!(common::cluster::put_class(writer, "probe", key, "one", body).status, 201);
            let stat = common::reply(
                common::http::get(&format!("{}?stat", writer.key_url("probe", key))).call(),
            );
            let homes = stat.json()["homes"].as_array().cloned().unwrap_or_default();
            assert!(!homes.is_empty(), "?stat names the key's homes: {}", stat.json());
            !homes.iter().any(|home| home.as_str() == Some(id.as_str()))
        })
        .take(count)
        .collect()
}

#[test]
fn a_holder_that_missed_a_newer_version_drops_its_copy_within_a_range_pass() {
    // Node 3 holds 6,000 keys: a scan announcing every one of them takes
    // minutes at this period, comparing ranges of them with their homes
    // takes seconds.
    let cluster = Cluster::start(4, &["--rescan-interval", "1s"]);
    cluster.make_class("one", 1);
    let stale = &cluster.nodes[3];
    fill(stale, "bulk", "one", 6_000);
    let keys = keys_not_homed_at(&cluster, 3, "s", 3, b"old");
    // Paused, it misses the homes' notice that a newer version replaced its copy.
    stale.signal("-STOP");
    for key in &keys {
        let reply = common::cluster::put_class(&cluster.nodes[0], "probe", key, "one", b"new");
        assert_eq!(reply.status, 201);
    }
    // Paused past the homes' 2 s wait for it: their notice is lost.
    std::thread::sleep(Duration::from_secs(3));
    stale.signal("-CONT");
    // Nobody reads the keys there (a read drops a stale copy by itself).
    for key in &keys {
        let url = format!("{}?stat", stale.key_url("probe", key));
        wait_for(Duration::from_secs(15), || {
            let stat = common::reply(common::http::get(&url).call());
            (stat.json()["state"] == "elsewhere").then_some(())
        })
        .unwrap_or_else(|| panic!("the stale copy of probe/{key} is dropped"));
        assert_eq!(stale.get("probe", key).body, b"new", "the homes' version is served");
    }
}

#[test]
fn a_tombstone_is_collected_once_every_holder_dropped_its_copy_and_the_key_stays_deleted() {
    let cluster = Cluster::start(4, &["--rescan-interval", "1s", "--tombstone-grace", "1s"]);
    cluster.make_class("one", 1);
    let holder = &cluster.nodes[3];
    let keys = keys_not_homed_at(&cluster, 3, "t", 3, b"doomed");
    // The keys' homes are the other three nodes (and the paused one would
    // not answer).
    let collected = |cluster: &Cluster| -> u64 {
        let homes = &cluster.nodes[..3];
        homes.iter().map(|node| counter(node, "cairn_tombstones_collected_total")).sum()
    };
    let before = collected(&cluster);
    // The only holder is paused when the keys are deleted: the homes keep
    // their tombstones, however long past the grace, until it confirms.
    holder.signal("-STOP");
    for key in &keys {
        let reply =
            common::reply(common::http::delete(&cluster.nodes[0].key_url("probe", key)).call());
        assert_eq!(reply.status, 204, "probe/{key}");
    }
    let paused_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < paused_until {
        assert_eq!(collected(&cluster), before, "no tombstone goes while its holder has a copy");
        std::thread::sleep(Duration::from_millis(250));
    }
    holder.signal("-CONT");
    // Back, the holder learns of the deletion and drops its copy; then the
    // tombstones go (one per home of each key).
    let all = before + 3 * keys.len() as u64;
    wait_for(Duration::from_secs(20), || (collected(&cluster) >= all).then_some(()))
        .unwrap_or_else(|| panic!("every tombstone is collected: {}", collected(&cluster)));
    let deadline = Instant::now() + WATCH;
    while Instant::now() < deadline {
        for node in &cluster.nodes {
            for key in &keys {
                assert_eq!(node.get("probe", key).status, 404, "probe/{key} stays deleted");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for node in &cluster.nodes {
        let listed = common::reply(common::http::get(&node.url("/v1/probe")).call()).json();
        let listed: Vec<&str> = listed["keys"]
            .as_array()
            .expect("a listing has keys")
            .iter()
            .filter_map(|k| k["key"].as_str())
            .collect();
        assert!(keys.iter().all(|key| !listed.contains(&key.as_str())), "{listed:?}");
    }
}
