//! Several real `cairn` processes on loopback forming one cluster: joining,
//! agreeing on a leader, admin changes from any node, failover, loss of a
//! minority and of a majority, full restarts, and hostile peers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::cluster::{
    class_names, cluster_report, node_id, post, put_class, Cluster, SETTLE_TIMEOUT,
};
use common::{reply, wait_for, TestNode};
use serde_json::{json, Value};

#[test]
fn three_nodes_agree_and_share_classes() {
    let cluster = Cluster::start(3, &[]);
    let report = cluster.settle(3, 3);
    for member in report["members"].as_array().unwrap() {
        assert!(member["http"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(member["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(member["disk_total_bytes"].as_u64().unwrap() > 0, "{member}");
        assert!(member["last_heartbeat_ms"].as_u64().unwrap() > 0, "{member}");
        assert!(member["keys_by_state"]["stored"].is_u64(), "{member}");
    }
    // Every node names itself in /v1/status, and names the same leader.
    let ids: Vec<String> = cluster.nodes.iter().map(node_id).collect();
    for id in &ids {
        assert!(report["members"].as_array().unwrap().iter().any(|m| m["id"] == id.as_str()));
    }

    // A class made at one node is used by a PUT at another, at once.
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let made = post(c, "/v1/admin/classes", json!({ "name": "triple", "replicas": 3 }));
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let stored = wait_for(SETTLE_TIMEOUT, || {
        let put = put_class(b, "photos", "cat.jpg", "triple", b"meow");
        (put.status == 201).then_some(put)
    })
    .expect("the class reached the other node");
    assert_eq!(stored.json()["class"], "triple");
    assert_eq!(b.get("photos", "cat.jpg").body, b"meow");
    for node in [a, b, c] {
        wait_for(SETTLE_TIMEOUT, || class_names(node).contains(&"triple".to_owned()).then_some(()))
            .expect("the class reached every node");
    }
    // The first PUT registered the domain cluster-wide.
    wait_for(SETTLE_TIMEOUT, || {
        let domains = reply(common::http::get(&a.url("/v1/admin/domains")).call()).json();
        domains["domains"].as_array().unwrap().contains(&json!("photos")).then_some(())
    })
    .expect("domain registered");

    // Bad admin input: a clear 4xx, and nothing changes.
    post(a, "/v1/admin/classes", json!({ "name": "none", "replicas": 0 }))
        .assert_error(400, "bad_replicas");
    post(a, "/v1/admin/classes", json!({ "name": "bad name", "replicas": 2 }))
        .assert_error(400, "bad_class");
    post(a, "/v1/admin/classes", json!({ "nome": "x" })).assert_error(400, "bad_json");
    post(a, "/v1/admin/nodes/00000000000000ff/state", json!({ "state": "drain" }))
        .assert_error(404, "unknown_node");
    post(a, &format!("/v1/admin/nodes/{}/state", ids[1]), json!({ "state": "dead" }))
        .assert_error(400, "bad_state");
    reply(common::http::delete(&a.url("/v1/admin/classes/default")).call())
        .assert_error(409, "default_class");
    put_class(a, "photos", "dog.jpg", "quadruple", b"woof").assert_error(400, "unknown_class");
    assert_eq!(class_names(a), ["default", "triple"]);

    // Node states set by the operator are seen everywhere.
    let drained =
        post(a, &format!("/v1/admin/nodes/{}/state", ids[2]), json!({ "state": "drain" }));
    assert_eq!(drained.status, 200, "{}", String::from_utf8_lossy(&drained.body));
    wait_for(SETTLE_TIMEOUT, || {
        let report = cluster_report(b)?;
        let member = report["members"].as_array()?.iter().find(|m| m["id"] == ids[2].as_str())?;
        (member["state"] == "drain").then_some(())
    })
    .expect("drain state visible");

    // Deleting a class works from any node, too.
    let deleted = reply(common::http::delete(&b.url("/v1/admin/classes/triple")).call());
    assert_eq!(deleted.status, 204);
    wait_for(SETTLE_TIMEOUT, || (!class_names(c).contains(&"triple".to_owned())).then_some(()))
        .expect("class deleted everywhere");
}

#[test]
fn leader_failover_then_old_leader_rejoins_as_follower() {
    let mut cluster = Cluster::start(3, &[]);
    let old = cluster.leader_index();
    let old_id = node_id(&cluster.nodes[old]);
    let killed_at = Instant::now();
    cluster.nodes[old].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new_leader = wait_for(SETTLE_TIMEOUT, || {
        let reports: Vec<Value> =
            survivors.iter().map(|i| cluster_report(&cluster.nodes[*i])).collect::<Option<_>>()?;
        let leader = reports[0]["leader"].as_str()?;
        (leader != old_id && reports.iter().all(|r| r["leader"] == leader))
            .then(|| leader.to_owned())
    })
    .expect("a new leader");
    let failover = killed_at.elapsed();
    eprintln!("leader failover after kill -9 took {} ms", failover.as_millis());
    assert!(failover < Duration::from_secs(15), "failover took {failover:?}");

    // A minority is gone: admin changes still work, at either survivor.
    for i in &survivors {
        let name = format!("after-failover-{i}");
        let made =
            post(&cluster.nodes[*i], "/v1/admin/classes", json!({ "name": name, "replicas": 2 }));
        assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    }

    // The old leader comes back with only --data and follows.
    cluster.nodes[old].start_again();
    let report = cluster.settle(3, 3);
    assert_eq!(report["leader"], new_leader.as_str());
    let names = class_names(&cluster.nodes[old]);
    assert!(
        wait_for(SETTLE_TIMEOUT, || {
            let names = class_names(&cluster.nodes[old]);
            names.iter().filter(|n| n.starts_with("after-failover")).count().eq(&2).then_some(())
        })
        .is_some(),
        "old leader caught up: {names:?}"
    );
}

#[test]
fn majority_loss_stops_admin_changes_but_not_reads_and_writes() {
    let mut cluster = Cluster::start(3, &[]);
    let made =
        post(&cluster.nodes[0], "/v1/admin/classes", json!({ "name": "pair", "replicas": 2 }));
    assert_eq!(made.status, 201);
    let survivor = 2;
    wait_for(SETTLE_TIMEOUT, || {
        class_names(&cluster.nodes[survivor]).contains(&"pair".into()).then_some(())
    })
    .expect("class replicated");
    cluster.nodes[0].kill();
    cluster.nodes[1].kill();
    let node = &cluster.nodes[survivor];

    // Admin changes: 503 with a reason, within the commit timeout.
    let refused = wait_for(SETTLE_TIMEOUT, || {
        let started = Instant::now();
        let answer = post(node, "/v1/admin/classes", json!({ "name": "lonely", "replicas": 1 }));
        (answer.status == 503).then_some((answer, started.elapsed()))
    })
    .expect("admin refused without a majority");
    let (answer, took) = refused;
    assert!(
        ["no_leader", "no_quorum", "leader_unreachable"]
            .contains(&answer.json()["error"].as_str().unwrap()),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(!answer.json()["message"].as_str().unwrap().is_empty());
    assert!(took < Duration::from_secs(12), "refusal took {took:?}");
    assert!(!class_names(node).contains(&"lonely".to_owned()));

    // Blobs: PUT of a known class, GET, DELETE, all without raft.
    let put = put_class(node, "docs", "a.txt", "pair", b"still here");
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(node.get("docs", "a.txt").body, b"still here");
    assert_eq!(reply(common::http::delete(&node.key_url("docs", "a.txt")).call()).status, 204);
    // The cluster view still answers, from what this node knows.
    let report = cluster_report(node).expect("cluster report without a leader");
    assert_eq!(report["members"].as_array().unwrap().len(), 3);

    // The majority returns: admin changes work again.
    cluster.nodes[0].start_again();
    cluster.nodes[1].start_again();
    cluster.settle(3, 3);
    let node = &cluster.nodes[survivor];
    let made = post(node, "/v1/admin/classes", json!({ "name": "back", "replicas": 1 }));
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
}

#[test]
fn five_nodes_have_five_voters_and_survive_two_losses() {
    let mut cluster = Cluster::start(5, &[]);
    let leader = cluster.leader_index();
    let victims: Vec<usize> = (0..5).filter(|i| *i != leader).take(2).collect();
    for i in &victims {
        cluster.nodes[*i].kill();
    }
    let node = &cluster.nodes[leader];
    let made = post(node, "/v1/admin/classes", json!({ "name": "five", "replicas": 3 }));
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    // The two killed ones are reported down.
    wait_for(SETTLE_TIMEOUT, || {
        let report = cluster_report(node)?;
        let down = report["members"].as_array()?.iter().filter(|m| m["state"] == "down").count();
        (down == 2).then_some(())
    })
    .expect("two members down");
    for i in victims {
        cluster.nodes[i].start_again();
    }
    cluster.settle(5, 5);
}

#[test]
fn membership_and_classes_survive_a_full_restart() {
    let mut cluster = Cluster::start(3, &[]);
    let made =
        post(&cluster.nodes[1], "/v1/admin/classes", json!({ "name": "kept", "replicas": 3 }));
    assert_eq!(made.status, 201);
    let made = post(&cluster.nodes[2], "/v1/admin/domains", json!({ "name": "archive" }));
    assert_eq!(made.status, 201);
    let before = cluster.settle(3, 3);
    let ids = |report: &Value| -> Vec<String> {
        let mut ids: Vec<String> = report["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    for node in &mut cluster.nodes {
        node.kill();
    }
    for node in &mut cluster.nodes {
        node.start_again();
    }
    let after = cluster.settle(3, 3);
    assert_eq!(ids(&before), ids(&after));
    // Each node re-applies the log once the leader tells it what is committed.
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || {
            let domains = reply(common::http::get(&node.url("/v1/admin/domains")).call()).json();
            (class_names(node).contains(&"kept".to_owned())
                && domains["domains"].as_array()?.contains(&json!("archive")))
            .then_some(())
        })
        .unwrap_or_else(|| panic!("{} lost the class or the domain", node.base));
    }
}

#[test]
fn a_dead_voter_is_replaced_by_a_learner() {
    let mut cluster = Cluster::start(4, &["--down-after", "1s", "--dead-after", "3s"]);
    let report = cluster.settle(4, 3);
    let learner =
        report["members"].as_array().unwrap().iter().find(|m| m["voter"] == false).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let leader = cluster.leader_index();
    let victim = (0..4)
        .find(|i| *i != leader && node_id(&cluster.nodes[*i]) != learner)
        .expect("a follower voter");
    let victim_id = node_id(&cluster.nodes[victim]);
    cluster.nodes[victim].kill();
    let node = &cluster.nodes[leader];
    wait_for(SETTLE_TIMEOUT, || {
        let report = cluster_report(node)?;
        let members = report["members"].as_array()?;
        let victim = members.iter().find(|m| m["id"] == victim_id.as_str())?;
        let promoted = members.iter().find(|m| m["id"] == learner.as_str())?;
        (victim["state"] == "dead" && victim["voter"] == false && promoted["voter"] == true)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("dead voter not replaced: {:#?}", cluster_report(node)));
    // Back from the dead: alive again, as a learner (3 voters are enough).
    cluster.nodes[victim].start_again();
    cluster.settle(4, 3);
}

/// A raw peer connection that has read the callee's `Challenge`.
struct RawPeer {
    stream: TcpStream,
    challenge: [u8; 32],
}

impl RawPeer {
    fn open(node: &TestNode) -> RawPeer {
        let mut stream = TcpStream::connect(node.peer_address()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        match read_message(&mut stream) {
            cairn_net::Message::Challenge { nonce } => RawPeer { stream, challenge: nonce },
            other => panic!("a peer connection opens with a challenge, not {other:?}"),
        }
    }

    fn call(&mut self, message: &cairn_net::Message) -> cairn_net::Message {
        let mut frame = cairn_net::FrameBytes::new();
        cairn_net::encode_message(message, &mut frame).expect("a message encodes");
        self.stream.write_all(&frame).unwrap();
        read_message(&mut self.stream)
    }
}

fn read_message(stream: &mut TcpStream) -> cairn_net::Message {
    let mut header = [0u8; 16];
    stream.read_exact(&mut header).expect("a frame header");
    let decoded = cairn_net::FrameHeader::decode(&header).expect("a valid header");
    let mut frame = header.to_vec();
    frame.resize(decoded.frame_len_bytes() as usize, 0);
    stream.read_exact(&mut frame[16..]).expect("a frame payload");
    let mut received = cairn_net::FrameBuf::new();
    cairn_net::decode_frame(&frame, &mut received).expect("one frame");
    received.deserialize().expect("a message")
}

fn caller(secret: &str, node_id: u64, peer: &str) -> cairn_net::Caller {
    cairn_net::Caller {
        key: cairn_net::ClusterKey::derive(secret.as_bytes(), "peer handshake"),
        node_id,
        cluster_id: 0,
        http: "127.0.0.1:1".into(),
        peer: peer.into(),
        zone: String::new(),
    }
}

fn refusal(answer: cairn_net::Message) -> (u16, String) {
    match answer {
        cairn_net::Message::Error { code, message } => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn the_peer_port_admits_only_proven_members_speaking_for_themselves() {
    let cluster = Cluster::start(2, &[]);
    let (seed, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    let secret = seed.cluster_secret();
    // The secret is the seed's alone to read, and not on any command line.
    let mode = std::fs::metadata(seed.join_token_file()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A node with the wrong token never gets in.
    let wrong = std::env::temp_dir().join(format!("cairn-wrong-token-{}", std::process::id()));
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let intruder = TestNode::start(&[
        "--shards",
        "1",
        "--join",
        &seed.peer_address(),
        "--join-token-file",
        wrong.to_str().unwrap(),
    ]);
    // A Hello proven with the wrong secret is refused at once.
    let mut raw = RawPeer::open(seed);
    let (hello, _) = caller("not-the-token", 99, "127.0.0.1:2").hello(&raw.challenge);
    assert_eq!(refusal(raw.call(&hello)), (401, "wrong cluster secret".to_owned()));

    // A Hello recorded on one connection is worthless on another: the
    // callee's challenge differs, so the proof does not hold.
    let honest = caller(&secret, 99, "127.0.0.1:2");
    let mut first = RawPeer::open(seed);
    let (recorded, nonce) = honest.hello(&first.challenge);
    let ack = first.call(&recorded);
    honest.check_ack(&ack, &nonce, &first.challenge).expect("the honest Hello is accepted");
    let mut replay = RawPeer::open(seed);
    assert_ne!(replay.challenge, first.challenge, "every connection has its own challenge");
    assert_eq!(refusal(replay.call(&recorded)), (401, "wrong cluster secret".to_owned()));

    let other_id = u64::from_str_radix(&node_id(other), 16).unwrap();
    an_impostor_may_only_register(seed, &secret, other_id);
    no_peer_speaks_for_another_nor_from_the_future(seed, other, &secret, other_id);

    let report = cluster_report(seed).unwrap();
    assert_eq!(report["members"].as_array().unwrap().len(), 2, "{report:#}");
    drop(intruder);
    let _ = std::fs::remove_file(&wrong);

    // Garbage, a truncated frame and a frame with a bad CRC each close
    // their own connection and nothing else.
    let mut garbage = vec![0xAB; 64];
    garbage[..4].copy_from_slice(b"JUNK");
    let mut truncated = b"CRN1".to_vec();
    truncated.extend_from_slice(&[1, 1, 0, 0]);
    let mut bad_crc = b"CRN1".to_vec();
    bad_crc.extend_from_slice(&[1, 1, 0, 0, 16, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    bad_crc.extend_from_slice(&[0u8; 16]);
    for bytes in [garbage, truncated, bad_crc] {
        let RawPeer { mut stream, .. } = RawPeer::open(seed);
        stream.write_all(&bytes).unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.is_empty(), "no answer to a bad frame: {answer:?}");
    }
    let made = post(seed, "/v1/admin/classes", json!({ "name": "fine", "replicas": 1 }));
    assert_eq!(made.status, 201, "the node still works");
}

/// A caller naming a member recorded at another address may only ask to
/// register its new address, and the leader refuses that while the member
/// is alive: no second process takes over a live member's id.
fn an_impostor_may_only_register(seed: &TestNode, secret: &str, other_id: u64) {
    let impostor = caller(secret, other_id, "127.0.0.1:3");
    let mut raw = RawPeer::open(seed);
    let (hello, nonce) = impostor.hello(&raw.challenge);
    impostor.check_ack(&raw.call(&hello), &nonce, &raw.challenge).expect("the secret is right");
    let lookup = cairn_net::Message::IndexLookup { domain: "d".into(), key: "k".into() };
    let (code, message) = refusal(raw.call(&lookup));
    assert_eq!(code, 403, "{message}");
    let join = json!({ "hops": 0, "op": { "join": { "id": other_id, "member": {
        "http": "127.0.0.1:1", "peer": "127.0.0.1:3", "zone": "" } } } });
    let forward = cairn_net::Message::Forward {
        path: "admin-op".into(),
        body: serde_json::to_vec(&join).unwrap(),
    };
    match raw.call(&forward) {
        cairn_net::Message::ForwardReply { body, .. } => {
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains("id_in_use"), "a live member's id is not taken over: {body}");
        }
        other => panic!("the join was not answered: {other:?}"),
    }
}

/// Nor may a member speak for another in a request that names it, nor
/// stamp a version far in the future.
fn no_peer_speaks_for_another_nor_from_the_future(
    seed: &TestNode,
    other: &TestNode,
    secret: &str,
    other_id: u64,
) {
    let honest = caller(secret, 99, "127.0.0.1:2");
    let mut raw = RawPeer::open(seed);
    let (hello, nonce) = honest.hello(&raw.challenge);
    honest.check_ack(&raw.call(&hello), &nonce, &raw.challenge).unwrap();
    let entry = |hlc: u64, deleted: bool, holders: Vec<u64>| cairn_net::IndexEntry {
        domain: "d".into(),
        key: "victim".into(),
        hlc,
        writer: 99,
        sha256: [0; 32],
        size_bytes: 0,
        class: "default".into(),
        content_type: String::new(),
        deleted,
        holders,
        wanted: 0,
        headers: String::new(),
    };
    let forget =
        cairn_net::Message::IndexForget { entry: Box::new(entry(1 << 16, false, vec![other_id])) };
    assert_eq!(refusal(raw.call(&forget)).0, 403);

    // A tombstone stamped far in the future would shadow every later
    // write of its key: refused, and the key's next PUT is readable.
    assert_eq!(seed.put("d", "victim", b"before").status, 201);
    let tombstone =
        cairn_net::Message::IndexUpdate { entry: Box::new(entry(u64::MAX >> 1, true, vec![99])) };
    let (code, message) = refusal(raw.call(&tombstone));
    assert_eq!(code, 403);
    assert!(message.contains("ahead"), "{message}");
    let superseded =
        cairn_net::Message::Superseded { entry: Box::new(entry(u64::MAX >> 1, true, vec![99])) };
    assert_eq!(refusal(raw.call(&superseded)).0, 403);
    for node in [seed, other] {
        assert_eq!(node.get("d", "victim").body, b"before", "the key is whole everywhere");
    }
    assert_eq!(seed.put("d", "victim", b"after").status, 201);
    assert_eq!(other.get("d", "victim").body, b"after");
}
