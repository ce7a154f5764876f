//! Replication across real processes: a key reaches its class's copy
//! count on distinct nodes, verified, and every node serves it.

mod common;

use std::time::Duration;

use common::cluster::{post, put_class, Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, sha256_hex, wait_for, TestNode};
use serde_json::json;

fn stat(node: &TestNode, domain: &str, key: &str) -> Option<serde_json::Value> {
    let answer = reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
    (answer.status == 200).then(|| answer.json())
}

#[test]
fn a_class_of_three_gets_three_verified_copies_and_any_node_serves_them() {
    let cluster = Cluster::start(3, &[]);
    let made =
        post(&cluster.nodes[0], "/v1/admin/classes", json!({ "name": "triple", "replicas": 3 }));
    assert_eq!(made.status, 201);
    let big = bytes(700_000, 11);
    let small = b"a small one".to_vec();
    let origin = &cluster.nodes[1];
    wait_for(SETTLE_TIMEOUT, || {
        (put_class(origin, "photos", "big.bin", "triple", &big).status == 201).then_some(())
    })
    .expect("PUT with the new class");
    assert_eq!(put_class(origin, "photos", "small.txt", "triple", &small).status, 201);

    // Every node ends with a verified copy of each, `stored`.
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || {
            let big_state = stat(node, "photos", "big.bin")?;
            let small_state = stat(node, "photos", "small.txt")?;
            (big_state["state"] == "stored" && small_state["state"] == "stored").then_some(())
        })
        .unwrap_or_else(|| panic!("{} did not end stored", node.base));
        let holders = wait_for(SETTLE_TIMEOUT, || {
            let state = stat(node, "photos", "big.bin")?;
            let holders = state["holders"].as_array()?.clone();
            (holders.len() == 3).then_some(holders)
        });
        assert!(holders.is_some(), "?stat lists the three holders");
        let fid = node.fid_path(&sha256_hex(&big));
        let on_disk = std::fs::read(&fid).expect("a .fid copy on this node");
        assert_eq!(sha256_hex(&on_disk), sha256_hex(&big));
        assert_eq!(node.get("photos", "big.bin").body, big);
        assert_eq!(node.get("photos", "small.txt").body, small);
    }

    // Class health: `triple` is green; a class wanting more copies than
    // there are nodes is yellow.
    let made =
        post(&cluster.nodes[0], "/v1/admin/classes", json!({ "name": "five", "replicas": 5 }));
    assert_eq!(made.status, 201);
    wait_for(SETTLE_TIMEOUT, || {
        (put_class(origin, "photos", "many", "five", b"x").status == 201).then_some(())
    })
    .expect("PUT with class five");
    let class = |report: &serde_json::Value, name: &str| {
        report["classes"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap()
    };
    wait_for(SETTLE_TIMEOUT, || {
        let report = common::cluster::cluster_report(origin)?;
        let (five, three) = (class(&report, "five"), class(&report, "triple"));
        (five["health"] == "yellow" && five["keys_under"] == 1 && three["health"] == "green")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("class health: {:#?}", common::cluster::cluster_report(origin)));
}

#[test]
fn a_node_without_the_key_proxies_redirects_and_lists_locations() {
    let cluster = Cluster::start(3, &[]);
    // Class `default` wants 2 copies: one node of the three holds none.
    let body = bytes(300_000, 5);
    let origin = &cluster.nodes[0];
    assert_eq!(origin.put("docs", "report.pdf", &body).status, 201);
    let holders_done = wait_for(SETTLE_TIMEOUT, || {
        let held: Vec<usize> = (0..3)
            .filter(|i| {
                stat(&cluster.nodes[*i], "docs", "report.pdf")
                    .is_some_and(|s| s["state"] == "stored")
            })
            .collect();
        (held.len() == 2).then_some(held)
    })
    .expect("two copies");
    let outsider = (0..3).find(|i| !holders_done.contains(i)).unwrap();
    let node = &cluster.nodes[outsider];
    assert!(!node.fid_path(&sha256_hex(&body)).exists(), "the outsider holds no copy");

    // A plain GET streams it from a holder.
    let got = node.get("docs", "report.pdf");
    assert_eq!(got.status, 200);
    assert_eq!(sha256_hex(&got.body), sha256_hex(&body));

    // ?locations names both holders, with URLs that serve the bytes.
    let listed = reply(
        common::http::get(&format!("{}?locations", node.key_url("docs", "report.pdf"))).call(),
    );
    assert_eq!(listed.status, 200, "{}", String::from_utf8_lossy(&listed.body));
    let locations = listed.json()["locations"].as_array().unwrap().clone();
    assert_eq!(locations.len(), 2);
    for location in &locations {
        let fetched = reply(common::http::get(location["url"].as_str().unwrap()).call());
        assert_eq!(fetched.body, body);
    }

    // ?redirect answers 307 to a holder.
    let agent = common::http::builder().redirects(0).build();
    let redirected =
        reply(agent.get(&format!("{}?redirect", node.key_url("docs", "report.pdf"))).call());
    assert_eq!(redirected.status, 307);
    let location = redirected.header("location").unwrap().to_owned();
    // Both are signed for the key (the signatures may differ by their expiry).
    let unsigned = |url: &str| url.split('?').next().unwrap_or_default().to_owned();
    let unsigned_location = unsigned(&location);
    assert!(
        locations.iter().any(|l| unsigned(l["url"].as_str().unwrap()) == unsigned_location),
        "{location}"
    );

    // A key nobody has is a 404 at once, from any node.
    let started = std::time::Instant::now();
    node.get("docs", "missing").assert_error(404, "not_found");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

fn triple(cluster: &Cluster) {
    cluster.make_class("triple", 3);
}

/// Waits until every running node holds `body` under the key, `stored`.
fn stored_everywhere(cluster: &Cluster, domain: &str, key: &str, body: &[u8]) {
    for node in cluster.running() {
        wait_for(SETTLE_TIMEOUT, || {
            let state = stat(node, domain, key)?;
            (state["state"] == "stored" && state["sha256"] == sha256_hex(body).as_str())
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!("{} never held {domain}/{key} stored: {:?}", node.base, stat(node, domain, key))
        });
    }
}

#[test]
fn two_puts_at_different_nodes_converge_to_the_later_one() {
    let cluster = Cluster::start(3, &[]);
    triple(&cluster);
    let first = bytes(200_000, 1);
    let second = bytes(150_000, 2);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "k", "triple", &first).status, 201);
    stored_everywhere(&cluster, "docs", "k", &first);
    assert_eq!(put_class(&cluster.nodes[2], "docs", "k", "triple", &second).status, 201);
    stored_everywhere(&cluster, "docs", "k", &second);
    for node in &cluster.nodes {
        assert_eq!(node.get("docs", "k").body, second);
    }
    // The loser's bytes are collected on every node.
    for node in &cluster.nodes {
        let fid = node.fid_path(&sha256_hex(&first));
        wait_for(SETTLE_TIMEOUT, || (!fid.exists()).then_some(())).expect("old copy collected");
    }
}

#[test]
fn a_delete_at_one_node_removes_every_copy() {
    let cluster = Cluster::start(3, &[]);
    triple(&cluster);
    let body = bytes(400_000, 3);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "gone", "triple", &body).status, 201);
    stored_everywhere(&cluster, "docs", "gone", &body);
    let deleted = reply(common::http::delete(&cluster.nodes[1].key_url("docs", "gone")).call());
    assert_eq!(deleted.status, 204);
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || (node.get("docs", "gone").status == 404).then_some(()))
            .unwrap_or_else(|| panic!("{} still serves a deleted key", node.base));
        let fid = node.fid_path(&sha256_hex(&body));
        wait_for(SETTLE_TIMEOUT, || (!fid.exists()).then_some(())).expect("copy removed");
    }
    // Deleting it again, anywhere, is a 404.
    reply(common::http::delete(&cluster.nodes[2].key_url("docs", "gone")).call())
        .assert_error(404, "not_found");
}

#[test]
fn copies_of_a_dead_node_are_made_again_elsewhere() {
    let mut cluster = Cluster::start(4, &["--down-after", "1s", "--dead-after", "3s"]);
    triple(&cluster);
    let body = bytes(250_000, 4);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "precious", "triple", &body).status, 201);
    let holders = |cluster: &Cluster| -> Vec<usize> {
        (0..cluster.nodes.len())
            .filter(|i| cluster.nodes[*i].is_running())
            .filter(|i| cluster.nodes[*i].fid_path(&sha256_hex(&body)).exists())
            .collect()
    };
    let before = wait_for(SETTLE_TIMEOUT, || Some(holders(&cluster)).filter(|h| h.len() == 3))
        .expect("three copies");
    let leader = cluster.leader_index();
    let victim = *before.iter().find(|i| **i != leader).expect("a holder that does not lead");
    cluster.nodes[victim].kill();
    let after = wait_for(SETTLE_TIMEOUT, || Some(holders(&cluster)).filter(|h| h.len() == 3))
        .expect("back to three copies");
    let newcomer = after.iter().find(|i| !before.contains(i)).expect("a new holder");
    assert_eq!(cluster.nodes[*newcomer].get("docs", "precious").body, body);
}

#[test]
fn a_corrupted_copy_is_never_served() {
    let cluster = Cluster::start(3, &[]);
    triple(&cluster);
    let body = bytes(300_000, 6);
    assert_eq!(put_class(&cluster.nodes[1], "docs", "fragile", "triple", &body).status, 201);
    stored_everywhere(&cluster, "docs", "fragile", &body);
    let node = &cluster.nodes[0];
    let fid = node.fid_path(&sha256_hex(&body));
    let mut damaged = std::fs::read(&fid).unwrap();
    damaged[100] ^= 0xff;
    std::fs::write(&fid, &damaged).unwrap();
    let got = node.get("docs", "fragile");
    assert_eq!(got.status, 200);
    assert_eq!(
        sha256_hex(&got.body),
        sha256_hex(&body),
        "a good holder's bytes, never the damaged ones"
    );
}

#[test]
fn a_copy_that_fails_at_a_damaged_holder_is_made_from_another() {
    let cluster = Cluster::start(3, &[]);
    cluster.make_class("pair", 2);
    let body = bytes(300_000, 31);
    let sha = sha256_hex(&body);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "mended", "pair", &body).status, 201);
    let holders = wait_for(SETTLE_TIMEOUT, || {
        let holders: Vec<&TestNode> =
            cluster.nodes.iter().filter(|n| n.fid_path(&sha).exists()).collect();
        (holders.len() == 2).then_some(holders)
    })
    .expect("two copies");
    // The holder a copy is taken from first (fewest copies in flight, then
    // the lowest id) has damaged bytes.
    let damaged = holders.iter().min_by_key(|n| common::cluster::node_id(n)).unwrap();
    let mut bytes_on_disk = std::fs::read(damaged.fid_path(&sha)).unwrap();
    bytes_on_disk[100] ^= 0xff;
    std::fs::write(damaged.fid_path(&sha), &bytes_on_disk).unwrap();
    let third = cluster.nodes.iter().find(|n| !n.fid_path(&sha).exists()).unwrap();
    let raised =
        post(&cluster.nodes[1], "/v1/admin/classes", json!({ "name": "pair", "replicas": 3 }));
    assert_eq!(raised.status, 201);
    wait_for(SETTLE_TIMEOUT, || {
        std::fs::read(third.fid_path(&sha)).ok().filter(|b| sha256_hex(b) == sha).map(|_| ())
    })
    .expect("the third copy came from the intact holder");
    assert!(!damaged.fid_path(&sha).exists(), "the damaged copy was quarantined");
}

#[test]
fn copies_in_flight_stay_within_the_limit() {
    let cluster = Cluster::start(3, &["--copies-in-flight", "1"]);
    triple(&cluster);
    let bodies: Vec<Vec<u8>> = (0..12).map(|i| bytes(2_000_000, 100 + i)).collect();
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(
            put_class(&cluster.nodes[0], "bulk", &format!("k{i}"), "triple", body).status,
            201
        );
    }
    let leader = &cluster.nodes[cluster.leader_index()];
    let mut busiest = 0;
    let done = wait_for(SETTLE_TIMEOUT, || {
        let report = common::cluster::cluster_report(leader)?;
        for member in report["members"].as_array()? {
            busiest = busiest.max(member["copies_in_flight"].as_u64().unwrap_or(0));
        }
        let all = (0..12)
            .all(|i| cluster.nodes.iter().all(|n| n.fid_path(&sha256_hex(&bodies[i])).exists()));
        all.then_some(())
    });
    assert!(done.is_some(), "every key reached three copies");
    assert!(busiest <= 1, "a node took part in {busiest} copies at once");
}

#[test]
fn changing_a_class_count_adds_or_removes_copies() {
    let cluster = Cluster::start(3, &[]);
    triple(&cluster);
    let body = bytes(120_000, 9);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "elastic", "triple", &body).status, 201);
    let copies =
        || cluster.nodes.iter().filter(|n| n.fid_path(&sha256_hex(&body)).exists()).count();
    wait_for(SETTLE_TIMEOUT, || (copies() == 3).then_some(())).expect("three copies");
    let lowered =
        post(&cluster.nodes[1], "/v1/admin/classes", json!({ "name": "triple", "replicas": 1 }));
    assert_eq!(lowered.status, 201);
    wait_for(SETTLE_TIMEOUT, || (copies() == 1).then_some(())).expect("down to one copy");
    // The one left serves every node.
    for node in &cluster.nodes {
        assert_eq!(node.get("docs", "elastic").body, body);
    }
    let raised =
        post(&cluster.nodes[2], "/v1/admin/classes", json!({ "name": "triple", "replicas": 2 }));
    assert_eq!(raised.status, 201);
    wait_for(SETTLE_TIMEOUT, || (copies() == 2).then_some(())).expect("back up to two copies");
}

#[test]
fn copies_show_as_replication_in_and_out_while_they_run() {
    // Paced so each copy streams for seconds whatever the machine's speed:
    // the polls below must catch both ends under way.
    let cluster = Cluster::start(3, &["--copy-rate", "8M"]);
    triple(&cluster);
    let body = bytes(32 << 20, 12);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "large", "triple", &body).status, 201);
    let (mut seen_in, mut seen_out) = (false, false);
    wait_for(SETTLE_TIMEOUT, || {
        for node in &cluster.nodes {
            let status = node.status();
            seen_in |= status["keys"]["replication-in"]["keys"].as_i64().unwrap_or(0) > 0;
            seen_out |= status["keys"]["replication-out"]["keys"].as_i64().unwrap_or(0) > 0;
        }
        let done = cluster.nodes.iter().all(|n| n.fid_path(&sha256_hex(&body)).exists());
        (done && seen_in && seen_out).then_some(())
    })
    .unwrap_or_else(|| panic!("copies never seen under way: in {seen_in}, out {seen_out}"));
    // Once done, nothing is counted as under way.
    wait_for(SETTLE_TIMEOUT, || {
        cluster
            .nodes
            .iter()
            .all(|n| {
                let status = n.status();
                status["keys"]["replication-in"]["keys"] == 0
                    && status["keys"]["replication-out"]["keys"] == 0
            })
            .then_some(())
    })
    .expect("no copy left under way");
}

#[test]
fn bytes_already_held_are_not_copied_again() {
    let cluster = Cluster::start(3, &[]);
    triple(&cluster);
    let body = bytes(500_000, 21);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "first", "triple", &body).status, 201);
    stored_everywhere(&cluster, "docs", "first", &body);
    let copied_before: Vec<u64> = cluster.nodes.iter().map(copies_in).collect();
    assert!(copied_before.iter().sum::<u64>() >= 2, "the first key was fetched: {copied_before:?}");
    // Same bytes under another key: every node already has the blob.
    assert_eq!(put_class(&cluster.nodes[1], "docs", "second", "triple", &body).status, 201);
    stored_everywhere(&cluster, "docs", "second", &body);
    let copied_after: Vec<u64> = cluster.nodes.iter().map(copies_in).collect();
    assert_eq!(copied_before, copied_after, "no bytes were fetched for the second key");
}

/// Copies this node fetched over the peer port (from /metrics).
fn copies_in(node: &TestNode) -> u64 {
    let text =
        String::from_utf8(reply(common::http::get(&node.url("/metrics")).call()).body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("cairn_copies_in_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("cairn_copies_in_total in /metrics")
}

#[test]
fn background_copies_keep_to_the_copy_rate() {
    // 2 MiB/s per node (one shard each here): a 10 MiB copy takes about 5 s
    // (unthrottled, the whole round takes about 1 s).
    let cluster = Cluster::start(3, &["--copy-rate", "2M"]);
    triple(&cluster);
    let body = bytes(10 << 20, 31);
    let started = std::time::Instant::now();
    assert_eq!(put_class(&cluster.nodes[0], "docs", "paced", "triple", &body).status, 201);
    stored_everywhere(&cluster, "docs", "paced", &body);
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_secs(4), "10 MiB at 2 MiB/s took only {took:?}");
}

#[test]
fn a_range_through_a_node_without_the_key_is_served_and_damage_never_looks_complete() {
    let cluster = Cluster::start(3, &[]);
    cluster.make_class("one", 1);
    let body = bytes(3 << 20, 77);
    assert_eq!(put_class(&cluster.nodes[0], "docs", "ranged", "one", &body).status, 201);
    let far = &cluster.nodes[1];
    assert!(!far.fid_path(&sha256_hex(&body)).exists(), "the far node holds no copy");
    let url = far.key_url("docs", "ranged");
    let part = reply(common::http::get(&url).set("Range", "bytes=1000-2999999").call());
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some(&*format!("bytes 1000-2999999/{}", body.len())));
    assert!(part.body == body[1000..3_000_000], "exactly the asked bytes");
    let tail = reply(common::http::get(&url).set("Range", "bytes=-10").call());
    assert_eq!((tail.status, &tail.body[..]), (206, &body[body.len() - 10..]));
    let outside = reply(common::http::get(&url).set("Range", "bytes=9999999-").call());
    outside.assert_error(416, "range_not_satisfiable");
    // The only copy is damaged past its first MiB: a read through the far
    // node breaks off, it never ends as if complete.
    let holder = &cluster.nodes[0];
    let mut on_disk = std::fs::read(holder.fid_path(&sha256_hex(&body))).unwrap();
    on_disk[(2 << 20) + 5] ^= 0xff;
    std::fs::write(holder.fid_path(&sha256_hex(&body)), &on_disk).unwrap();
    let mut got = Vec::new();
    let read = match common::http::get(&url).call() {
        Ok(response) => std::io::Read::read_to_end(&mut response.into_reader(), &mut got),
        Err(error) => Err(std::io::Error::other(error.to_string())),
    };
    assert!(read.is_err() || got.len() < body.len(), "a damaged read is never whole");
    assert_ne!(sha256_hex(&got), sha256_hex(&body));
}

#[test]
fn redirects_and_locations_name_a_key_with_dot_segments_and_not_another() {
    let cluster = Cluster::start(3, &[]);
    cluster.make_class("one", 1);
    let (dotted, plain) = (bytes(90_000, 5), bytes(90_000, 6));
    let holder = &cluster.nodes[0];
    // `a/../b` is one key; `b` another. A URL parser would turn one into the other.
    let url = holder.url("/v1/docs/a%2F..%2Fb?class=one");
    assert_eq!(reply(common::http::put(&url).send_bytes(&dotted)).status, 201);
    assert_eq!(put_class(holder, "docs", "b", "one", &plain).status, 201);
    let far = &cluster.nodes[1];
    let redirected = reply(common::http::get(&far.url("/v1/docs/a%2F..%2Fb?redirect")).call());
    assert_eq!(redirected.status, 200, "followed to the holder");
    assert!(redirected.body == dotted, "the dotted key's bytes, not b's");
    let found = reply(common::http::get(&far.url("/v1/docs/a%2F..%2Fb?locations")).call()).json();
    let location = found["locations"][0]["url"].as_str().unwrap().to_owned();
    assert!(reply(common::http::get(&location).call()).body == dotted, "{location}");
}

/// The first node whose `/v1/status` counts `state` work under way.
fn node_with(cluster: &Cluster, state: &str) -> Option<usize> {
    cluster.nodes.iter().position(|node| {
        node.is_running()
            && reply(common::http::get(&node.url("/v1/status")).call()).status == 200
            && node.status()["keys"][state]["keys"].as_i64().unwrap_or(0) > 0
    })
}

/// S7 of the fault issue: the target, then the source, then the leader are
/// killed (-9) while a copy streams, each started again at once; the key
/// still ends with its copies, whole on disk, and no node keeps temp debris.
#[test]
fn copies_survive_kills_of_target_source_and_leader_mid_stream() {
    // Paced, so each copy streams for seconds: the kills land inside one.
    let mut cluster = Cluster::start(3, &["--copy-rate", "8M", "--down-after", "1s"]);
    let body = bytes(24 << 20, 71);
    assert_eq!(cluster.nodes[0].put("s7", "big", &body).status, 201);
    for role in ["replication-in", "replication-out"] {
        let under_way = wait_for(SETTLE_TIMEOUT, || node_with(&cluster, role));
        let at = under_way.unwrap_or_else(|| panic!("a copy under way ({role})"));
        cluster.nodes[at].kill();
        cluster.nodes[at].start_again();
    }
    let under_way = wait_for(SETTLE_TIMEOUT, || node_with(&cluster, "replication-in"));
    assert!(under_way.is_some(), "a copy under way again");
    let leader = cluster.leader_index();
    cluster.nodes[leader].kill();
    cluster.nodes[leader].start_again();

    let sha = sha256_hex(&body);
    let copies = || cluster.nodes.iter().filter(|n| n.fid_path(&sha).exists()).count();
    let two = wait_for(Duration::from_secs(60), || (copies() == 2).then_some(()));
    assert!(two.is_some(), "two copies on disk, got {}", copies());
    for node in &cluster.nodes {
        assert_eq!(sha256_hex(&node.get("s7", "big").body), sha, "read at {}", node.base);
    }
    let clean = wait_for(SETTLE_TIMEOUT, || {
        cluster.nodes.iter().all(|n| n.tmp_entries() == 0).then_some(())
    });
    let debris: Vec<usize> = cluster.nodes.iter().map(TestNode::tmp_entries).collect();
    assert!(clean.is_some(), "no temp debris: {debris:?}");
}

/// What `node` says of `key` in `?stat`: `elsewhere` when it holds no copy.
fn local_state(node: &TestNode, domain: &str, key: &str) -> String {
    let stat = reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
    stat.json()["state"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_readonly_or_draining_node_takes_no_new_data_through_any_interface() {
    let cluster = Cluster::start(3, &[]);
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let b_id = common::cluster::node_id(b);
    assert_eq!(a.put("d", "seed", b"domain d exists").status, 201);
    for state in ["readonly", "drain"] {
        let set = post(a, &format!("/v1/admin/nodes/{b_id}/state"), json!({ "state": state }));
        assert_eq!(set.status, 200, "{}", String::from_utf8_lossy(&set.body));
        let seen = wait_for(SETTLE_TIMEOUT, || {
            let report = common::cluster::cluster_report(b)?;
            let me = report["members"].as_array()?.iter().find(|m| m["id"] == b_id.as_str())?;
            (me["state"] == state).then_some(())
        });
        assert!(seen.is_some(), "{b_id} sees itself {state}");
        // Through /v1/ and WebDAV the write is taken, and stored elsewhere.
        let key = format!("http-{state}");
        assert_eq!(b.put("d", &key, b"via http").status, 201);
        assert_eq!(local_state(b, "d", &key), "elsewhere");
        assert_eq!(b.get("d", &key).body, b"via http", "still readable there");
        let dav = format!("dav-{state}");
        assert_eq!(b.dav("PUT", &format!("d/{dav}"), &[], b"via dav").status, 201);
        assert_eq!(local_state(b, "d", &dav), "elsewhere");
        assert_eq!(a.get("d", &dav).body, b"via dav");
        // MogileFS says so, as MogileFS does.
        let mut tracker = common::tracker::Tracker::connect(b);
        tracker.err("create_open", &[("domain", "d"), ("key", "m")], "no_devices");
    }
    let set = post(a, &format!("/v1/admin/nodes/{b_id}/state"), json!({ "state": "alive" }));
    assert_eq!(set.status, 200);
    let held = wait_for(SETTLE_TIMEOUT, || {
        let put = b.put("d", "back", b"held here again");
        (put.status == 201 && local_state(b, "d", "back") != "elsewhere").then_some(())
    });
    assert!(held.is_some(), "an alive node stores its writes again");
}
