//! Overload without harm (the fault issue): a client that holds hundreds of
//! silent connections to a node's peer port must not lock the cluster's
//! own traffic out of it.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::{cluster_report, Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, sha256_hex, wait_for, TestNode};

/// Silent connections the hostile client keeps open to each node it attacks.
const SILENT: usize = 300;
/// How long the attack lasts: longer than a node waits for a `Hello`.
const ATTACK: Duration = Duration::from_secs(12);

/// Keeps `SILENT` connections to `port` open without sending a byte,
/// opening a new one for each the node closes, until `stop`.
fn hold_silent_connections(port: u16, holding: &AtomicUsize, stop: &AtomicBool) -> usize {
    let open = || {
        let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let mut streams: Vec<Option<TcpStream>> = (0..SILENT).map(|_| open()).collect();
    holding.fetch_add(1, Ordering::Relaxed);
    let mut opened = SILENT;
    while !stop.load(Ordering::Relaxed) {
        for slot in &mut streams {
            let closed = match slot {
                None => true,
                Some(stream) => match stream.read(&mut [0u8; 64]) {
                    Ok(_) => true,
                    Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
                },
            };
            if closed {
                *slot = open();
                opened += 1;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
    opened
}

fn holders(node: &TestNode, key: &str) -> Vec<String> {
    let stat = reply(common::http::get(&format!("{}?stat", node.key_url("ov", key))).call());
    let listed = if stat.status == 200 { stat.json()["holders"].clone() } else { return vec![] };
    let ids = listed.as_array().cloned().unwrap_or_default();
    ids.iter().filter_map(|h| h.as_str().map(str::to_owned)).collect()
}

#[test]
fn silent_connections_on_the_peer_port_do_not_lock_the_cluster_out() {
    let cluster = Cluster::start(3, &[]);
    let reader = &cluster.nodes[2];
    let reader_id = common::cluster::node_id(reader);
    // Keys the reading node does not hold: every GET there fetches the
    // bytes over a new peer connection to one of the attacked nodes.
    let written: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let (key, body) = (format!("k{i:02}"), bytes(80_000 + i, i as u64));
            assert_eq!(cluster.nodes[i % 2].put("ov", &key, &body).status, 201);
            (key, body)
        })
        .collect();
    let mut remote_keys = Vec::new();
    for (key, body) in written {
        let two = wait_for(SETTLE_TIMEOUT, || (holders(reader, &key).len() == 2).then_some(()));
        assert!(two.is_some(), "{key} has two copies");
        if !holders(reader, &key).contains(&reader_id) {
            remote_keys.push((key, body));
        }
    }
    assert!(remote_keys.len() >= 5, "some keys live on the attacked nodes only");
    let term_before = cluster_report(reader).expect("report")["term"].clone();

    let stop = Arc::new(AtomicBool::new(false));
    let holding = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = cluster.nodes[..2]
        .iter()
        .map(|node| {
            let (port, holding, stop) = (node.peer_port, holding.clone(), stop.clone());
            thread::spawn(move || hold_silent_connections(port, &holding, &stop))
        })
        .collect();
    let attacking =
        wait_for(SETTLE_TIMEOUT, || (holding.load(Ordering::Relaxed) == 2).then_some(()));
    assert!(attacking.is_some(), "both attackers hold their connections");
    let started = Instant::now();
    let (mut served, mut failed) = (0, Vec::new());
    while started.elapsed() < ATTACK {
        for (key, body) in &remote_keys {
            let got = reader.get("ov", key);
            if got.status == 200 && sha256_hex(&got.body) == sha256_hex(body) {
                served += 1;
            } else {
                failed.push(format!("{key}: {}", got.status));
            }
        }
        let put = reader.put("ov", "during", b"written during the attack");
        if put.status != 201 {
            failed.push(format!("PUT: {}", put.status));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let opened: Vec<usize> = attackers.into_iter().map(|a| a.join().expect("attacker")).collect();
    eprintln!("{served} reads served during the attack; attackers opened {opened:?} connections");
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        served + failed.len(),
        &failed[..failed.len().min(10)]
    );
    let report = cluster_report(reader).expect("report");
    assert_eq!(report["term"], term_before, "no election during the attack");
    assert!(report["members"].as_array().expect("members").iter().all(|m| m["state"] == "alive"));
}

/// Reads until the peer closes or `within` passes; true when it closed.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut sink = [0u8; 256];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn silent_tracker_connections_are_closed_while_others_are_served() {
    let node = TestNode::start(&["--mogile-idle-timeout", "1s"]);
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(("127.0.0.1", node.mogile_port)).expect("connect"))
        .collect();
    let mut tracker = common::tracker::Tracker::connect(&node);
    for _ in 0..5 {
        tracker.ok("noop", &[]);
        thread::sleep(Duration::from_millis(300));
    }
    for stream in &mut silent {
        assert!(closed_within(stream, Duration::from_secs(5)), "a silent connection was closed");
    }
    // One that keeps talking is not.
    tracker.ok("noop", &[]);
}

#[test]
fn a_trickling_body_is_cut_off_with_408_and_leaves_nothing() {
    let node = TestNode::start(&["--body-timeout-ms", "2000", "--body-min-rate", "10K"]);
    let mut stream = TcpStream::connect(("127.0.0.1", node.http_port)).expect("connect");
    let head = "PUT /v1/slow/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    std::io::Write::write_all(&mut stream, head.as_bytes()).expect("head");
    stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        // 200 bytes every 300 ms: never silent for the 2 s timeout, but
        // ~670 B/s, far below the 10 KiB/s floor.
        if std::io::Write::write_all(&mut stream, &[b'x'; 200]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "answered {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "cut off soon after the timeout");
    assert_eq!(node.get("slow", "k").status, 404, "nothing was stored");
    let gone = wait_for(Duration::from_secs(5), || (node.tmp_entries() == 0).then_some(()));
    assert!(gone.is_some(), "no temp file left");
    assert_eq!(node.put("slow", "fast", &bytes(1 << 20, 5)).status, 201);
}

#[test]
fn a_tracker_connection_that_opens_without_closing_is_capped_while_others_are_served() {
    let node = TestNode::start(&[]);
    let mut admin = common::tracker::Tracker::connect(&node);
    admin.ok("create_domain", &[("domain", "cap")]);
    let mut hostile = common::tracker::Tracker::connect(&node);
    let mut opened = Vec::new();
    for i in 0..OPEN_UPLOADS_MAX {
        let key = format!("h{i}");
        opened.push(hostile.ok("create_open", &[("domain", "cap"), ("key", &key)]));
    }
    hostile.err("create_open", &[("domain", "cap"), ("key", "one-more")], "too_many_uploads");
    // Another client, meanwhile, stores and reads as usual.
    let mut good = common::tracker::Tracker::connect(&node);
    for i in 0..3 {
        let data = bytes(10_000, i);
        common::tracker::store(&mut good, "cap", &format!("good{i}"), &data);
        assert_eq!(node.get("cap", &format!("good{i}")).body, data);
    }
    // Closing one of its uploads (on any connection) makes room for one.
    let first = &opened[0];
    let put = reply(common::http::put(&first["path"]).send_bytes(b"late"));
    assert_eq!(put.status, 201);
    let close = [
        ("domain", "cap"),
        ("key", "h0"),
        ("fid", first["fid"].as_str()),
        ("devid", first["devid"].as_str()),
        ("path", first["path"].as_str()),
        ("size", "4"),
    ];
    good.ok("create_close", &close);
    hostile.ok("create_open", &[("domain", "cap"), ("key", "one-more")]);
    hostile.err("create_open", &[("domain", "cap"), ("key", "two-more")], "too_many_uploads");
    assert_eq!(node.get("cap", "h0").body, b"late");
}

/// `OPEN_UPLOADS_PER_CONNECTION_MAX` in api/src/mogile/commands.rs.
const OPEN_UPLOADS_MAX: usize = 64;
