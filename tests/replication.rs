//! Replication across real processes: a key reaches its class's copy
//! count on distinct nodes, verified, and every node serves it.

mod common;

use common::cluster::{post, put_class, Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, sha256_hex, wait_for, TestNode};
use serde_json::json;

fn stat(node: &TestNode, domain: &str, key: &str) -> Option<serde_json::Value> {
    let answer = reply(ureq::get(&format!("{}?stat", node.key_url(domain, key))).call());
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
        let fid = node.fid_path(&sha256_hex(&big));
        let on_disk = std::fs::read(&fid).expect("a .fid copy on this node");
        assert_eq!(sha256_hex(&on_disk), sha256_hex(&big));
        assert_eq!(node.get("photos", "big.bin").body, big);
        assert_eq!(node.get("photos", "small.txt").body, small);
    }
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
    let listed =
        reply(ureq::get(&format!("{}?locations", node.key_url("docs", "report.pdf"))).call());
    assert_eq!(listed.status, 200, "{}", String::from_utf8_lossy(&listed.body));
    let locations = listed.json()["locations"].as_array().unwrap().clone();
    assert_eq!(locations.len(), 2);
    for location in &locations {
        let fetched = reply(ureq::get(location["url"].as_str().unwrap()).call());
        assert_eq!(fetched.body, body);
    }

    // ?redirect answers 307 to a holder.
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let redirected =
        reply(agent.get(&format!("{}?redirect", node.key_url("docs", "report.pdf"))).call());
    assert_eq!(redirected.status, 307);
    let location = redirected.header("location").unwrap().to_owned();
    assert!(locations.iter().any(|l| l["url"] == location.as_str()), "{location}");

    // A key nobody has is a 404 at once, from any node.
    let started = std::time::Instant::now();
    node.get("docs", "missing").assert_error(404, "not_found");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
