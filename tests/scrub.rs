//! Scrub and repair (the fault issue's S6): bytes rotting on disk are found
//! by the background scrub, quarantined and copied again from a good
//! holder; a key whose every copy rotted is reported lost and never served.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::time::Duration;

use common::cluster::{cluster_report, Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, sha256_hex, wait_for, TestNode};

const KEYS: usize = 30;

fn holders(node: &TestNode, key: &str) -> Vec<String> {
    let stat = reply(common::http::get(&format!("{}?stat", node.key_url("rot", key))).call());
    let listed = if stat.status == 200 { stat.json()["holders"].clone() } else { return vec![] };
    listed
        .as_array()
        .map_or(Vec::new(), |a| a.iter().filter_map(|h| h.as_str()).map(String::from).collect())
}

fn flip_a_byte(path: &std::path::Path, at: u64) {
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).open(path).expect("a blob file");
    file.seek(SeekFrom::Start(at)).expect("seek");
    let mut byte = [0u8; 1];
    std::io::Read::read_exact(&mut file, &mut byte).expect("read");
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.write_all(&[byte[0] ^ 0x5a]).expect("write");
    file.sync_all().expect("sync");
}

fn quarantined(node: &TestNode) -> u64 {
    node.status()["quarantined"].as_u64().unwrap_or(0)
}

/// Damages every copy of k00 and, on node 1, flips a byte in 3 other
/// files and cuts 3 more short; answers how many files it damaged.
fn inject_rot(cluster: &Cluster, data: &[Vec<u8>]) -> u64 {
    let damaged_all = 0;
    let mut injected = 0;
    for node in &cluster.nodes {
        let path = node.fid_path(&sha256_hex(&data[damaged_all]));
        if path.exists() {
            flip_a_byte(&path, 70_000);
            injected += 1;
        }
    }
    assert_eq!(injected, 2, "k00 has two copies on disk");
    let rotting = &cluster.nodes[1];
    let mut on_node: Vec<usize> =
        (1..KEYS).filter(|i| rotting.fid_path(&sha256_hex(&data[*i])).exists()).collect();
    on_node.truncate(6);
    assert_eq!(on_node.len(), 6, "node 1 holds at least 6 keys");
    for (n, i) in on_node.iter().enumerate() {
        let path = rotting.fid_path(&sha256_hex(&data[*i]));
        if n < 3 {
            flip_a_byte(&path, 1234 + n as u64 * 20_000);
        } else {
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("blob file");
            file.set_len(50_000).expect("truncate");
        }
        injected += 1;
    }

    injected
}

#[test]
fn scrub_finds_rot_quarantines_it_and_the_copies_are_made_again() {
    let cluster = Cluster::start(3, &["--scrub-rate", "512M", "--scrub-period", "1s"]);
    let data: Vec<Vec<u8>> = (0..KEYS).map(|i| bytes(100_000 + i * 3000, 500 + i as u64)).collect();
    for (i, body) in data.iter().enumerate() {
        assert_eq!(cluster.nodes[i % 3].put("rot", &format!("k{i:02}"), body).status, 201);
    }
    for i in 0..KEYS {
        let key = format!("k{i:02}");
        let two = wait_for(SETTLE_TIMEOUT, || {
            (holders(&cluster.nodes[0], &key).len() == 2).then_some(())
        });
        assert!(two.is_some(), "{key} reached 2 copies");
    }

    let injected = inject_rot(&cluster, &data);

    // Scrub finds each damaged file once: the quarantine holds exactly
    // what was injected.
    let found = wait_for(Duration::from_secs(30), || {
        let total: u64 = cluster.nodes.iter().map(quarantined).sum();
        (total == injected).then_some(())
    });
    let counts: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{} {}", quarantined(n), n.status()["scrub"]))
        .collect();
    assert!(found.is_some(), "quarantined {counts:?}, injected {injected}");

    // Every other key is back at 2 verified copies, and no node serves a
    // wrong byte.
    for (i, body) in data.iter().enumerate().skip(1) {
        let key = format!("k{i:02}");
        let two = wait_for(SETTLE_TIMEOUT, || {
            (holders(&cluster.nodes[0], &key).len() == 2).then_some(())
        });
        assert!(two.is_some(), "{key} copied again: {:?}", holders(&cluster.nodes[0], &key));
        for node in &cluster.nodes {
            let got = node.get("rot", &key);
            assert_eq!(got.status, 200, "{key} at {}", node.base);
            assert_eq!(sha256_hex(&got.body), sha256_hex(body), "{key} at {}", node.base);
        }
    }
    // k00 is lost: never served, reported in ?stat and class health.
    for node in &cluster.nodes {
        node.get("rot", "k00").assert_error(503, "lost");
    }
    let stat = reply(
        common::http::get(&format!("{}?stat", cluster.nodes[2].key_url("rot", "k00"))).call(),
    );
    assert_eq!(stat.json()["state"], "lost", "{}", String::from_utf8_lossy(&stat.body));
    let red = wait_for(SETTLE_TIMEOUT, || {
        cluster.nodes.iter().find_map(|node| {
            let report = cluster_report(node)?;
            let classes = report["classes"].as_array()?.clone();
            classes
                .iter()
                .any(|c| c["health"] == "red" && c["keys_lost"].as_u64() >= Some(1))
                .then_some(())
        })
    });
    assert!(red.is_some(), "class health turns red");
    let rotting = &cluster.nodes[1];
    let status = rotting.status();
    assert!(status["scrub"]["damaged"].as_u64() >= Some(6), "{status}");
    assert!(status["scrub"]["passes"].as_u64() >= Some(1), "{status}");
    let metrics = reply(common::http::get(&rotting.url("/metrics")).call());
    assert!(String::from_utf8_lossy(&metrics.body).contains("cairn_scrub_damaged_total"));
}
