//! Steady workloads across faults, checked against their history: PUTs and
//! DELETEs at every node while one node restarts with its clock behind and
//! another is wiped and rejoins (issue 12), or while the raft leader is
//! paused for 15 s (the fault issue's S4); afterwards every acknowledged
//! write is readable at every node (or replaced by a later acknowledged
//! one), no deleted key is back, and every key is at its class's copy
//! count on disk.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::history::{agent, outcome, History, Outcome, State};
use common::{sha256_hex, wait_for};

const DOMAIN: &str = "steady";
/// Writers, each with keys of its own (its operations on a key are one
/// after another, so their order is known) sent to every node in turn.
const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 6;
/// Above `--inline-max`, so every copy is a blob file the test can count.
const BODY_BYTES: usize = 70_000;
/// The stated time: after the last fault, every node agrees on every key
/// and every key is at its count within this.
const CONVERGE: Duration = Duration::from_secs(90);
/// The default class keeps two copies.
const COPIES: usize = 2;

#[test]
fn a_steady_workload_through_a_clock_behind_restart_and_a_wipe_loses_nothing() {
    let cluster = Cluster::start(4, &["--down-after", "1s", "--dead-after", "4s"]);
    under_load(cluster, |cluster| {
        thread::sleep(Duration::from_secs(4));
        // A crash, and a restart with the wall clock two minutes behind.
        cluster.nodes[1].kill();
        thread::sleep(Duration::from_secs(1));
        cluster.nodes[1].set_clock_offset(-120);
        cluster.nodes[1].start_again();
        thread::sleep(Duration::from_secs(6));
        // A replaced disk: the node comes back empty, as a new member.
        let (seed, rest) = cluster.nodes.split_at_mut(1);
        rest[2].wipe_and_rejoin(&seed[0]);
        thread::sleep(Duration::from_secs(8));
    });
}

/// S4 of the fault issue: the raft leader paused (SIGSTOP) for 15 s while
/// every node takes writes, then resumed.
#[test]
fn a_leader_paused_for_15_s_under_load_loses_nothing() {
    let cluster = Cluster::start(3, &["--down-after", "1s"]);
    under_load(cluster, |cluster| {
        thread::sleep(Duration::from_secs(3));
        let leader = cluster.leader_index();
        cluster.nodes[leader].signal("-STOP");
        thread::sleep(Duration::from_secs(15));
        cluster.nodes[leader].signal("-CONT");
        thread::sleep(Duration::from_secs(3));
    });
}

/// Runs the writers against every node while `faults` runs, then checks
/// the history: every node agrees on every key as the history allows, and
/// every key is at its copy count on disk, within [`CONVERGE`].
fn under_load(mut cluster: Cluster, faults: impl FnOnce(&mut Cluster)) {
    let bases: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.base.clone()).collect());
    let history = Arc::new(Mutex::new(History::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (bases, history, stop) = (bases.clone(), history.clone(), stop.clone());
            thread::spawn(move || write_steadily(w, &bases, &history, &stop))
        })
        .collect();
    faults(&mut cluster);
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("writer");
    }
    let faults_over = Instant::now();

    let history = history.lock().unwrap();
    eprintln!("workload: {:?}", history.counts);
    assert!(history.counts.get("acknowledged").copied().unwrap_or(0) > 100, "the workload ran");
    assert_every_node_agrees(&cluster, &history, faults_over);
    let at_count = wait_for(CONVERGE, || {
        history
            .keys()
            .all(|key| copies_on_disk(&cluster, key) == expected_copies(&cluster, key))
            .then_some(())
    });
    if at_count.is_none() {
        for key in history.keys() {
            let (found, wanted) = (copies_on_disk(&cluster, key), expected_copies(&cluster, key));
            eprintln!("{key}: {found} blob files, {wanted} wanted");
        }
        panic!("every key is at its copy count on disk within {CONVERGE:?}");
    }
    eprintln!("every key at its copy count {:?} after the last fault", faults_over.elapsed());
}

/// Writer `w`: over its keys in turn, a PUT of new bytes (a DELETE every
/// fourth time), each at the next node, until `stop`.
fn write_steadily(w: usize, bases: &[String], history: &Mutex<History>, stop: &AtomicBool) {
    let agent = agent();
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{w}-k{}", round % KEYS_PER_WRITER);
        let base = &bases[(round + w) % bases.len()];
        let url = format!("{base}/v1/{DOMAIN}/{key}");
        if round % 4 == 3 {
            let result = agent.delete(&url).call();
            history.lock().unwrap().record(&key, "delete", None, outcome(result, &[204, 404]));
        } else {
            let body = common::bytes(BODY_BYTES, (w * 1_000_000 + round) as u64);
            let result = agent.put(&url).send_bytes(&body);
            let seen = outcome(result, &[201]);
            history.lock().unwrap().record(&key, "put", Some(body), seen);
            if seen == Outcome::NotSent {
                thread::sleep(Duration::from_millis(50));
            }
        }
        round += 1;
    }
}

/// Waits until every running node answers every key as the history
/// allows (I1, I2), within [`CONVERGE`] of `faults_over`.
fn assert_every_node_agrees(cluster: &Cluster, history: &History, faults_over: Instant) {
    let converged = wait_for(CONVERGE, || {
        history.keys().all(|key| agreed_and_allowed(cluster, history, key)).then_some(())
    });
    if converged.is_none() {
        for key in history.keys() {
            report_key(cluster, history, key);
        }
        panic!("every node agrees on every key, as the history allows, within {CONVERGE:?}");
    }
    eprintln!("every node agrees on every key {:?} after the last fault", faults_over.elapsed());
}

/// What each running node answers for the key: its bytes, `None` for a
/// 404, `Err` for any other answer.
fn answers(cluster: &Cluster, key: &str) -> Vec<Result<State, u16>> {
    cluster
        .running()
        .map(|node| {
            let got = node.get(DOMAIN, key);
            match got.status {
                200 => Ok(Some(got.body)),
                404 => Ok(None),
                other => Err(other),
            }
        })
        .collect()
}

fn agreed_and_allowed(cluster: &Cluster, history: &History, key: &str) -> bool {
    let found = answers(cluster, key);
    let Some(Ok(first)) = found.first() else { return false };
    found.iter().all(|f| f.as_ref() == Ok(first)) && history.allows(key, first)
}

fn report_key(cluster: &Cluster, history: &History, key: &str) {
    let summary = |state: &State| {
        state.as_ref().map_or("none".to_owned(), |b| sha256_hex(b)[..12].to_owned())
    };
    let found: Vec<String> = answers(cluster, key)
        .iter()
        .map(|a| match a {
            Ok(state) => summary(state),
            Err(status) => format!("status {status}"),
        })
        .collect();
    eprintln!("{key}: acknowledged {}, nodes answer {found:?}", summary(history.acknowledged(key)));
}

/// The copies the key should have on disk: its class's count while it
/// exists, none once deleted (as the nodes now agree).
fn expected_copies(cluster: &Cluster, key: &str) -> usize {
    match answers(cluster, key).first() {
        Some(Ok(Some(_))) => COPIES,
        _ => 0,
    }
}

/// How many running nodes hold the key's current bytes as a blob file.
fn copies_on_disk(cluster: &Cluster, key: &str) -> usize {
    let Some(Ok(Some(body))) = answers(cluster, key).into_iter().next() else { return 0 };
    let sha = sha256_hex(&body);
    cluster.running().filter(|node| node.fid_path(&sha).exists()).count()
}

/// S1 of the fault issue: 1,000 uploads of new keys, sizes log-uniform
/// from 1 KiB to 1 MiB, 8 at a time at every node, while one node is
/// killed (-9) and restarted three times. Every acknowledged upload is
/// read with its bytes at every node and reaches its copy count; one whose
/// answer was lost is either absent or whole (I1, I2, I3).
#[test]
fn uploads_through_three_kills_of_a_store_lose_nothing() {
    const UPLOADS: usize = 1000;
    const CLIENTS: usize = 8;
    let mut cluster = Cluster::start(3, &["--down-after", "1s"]);
    let bases: Arc<Vec<String>> = Arc::new(cluster.nodes.iter().map(|n| n.base.clone()).collect());
    let history = Arc::new(Mutex::new(History::default()));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (bases, history, done) = (bases.clone(), history.clone(), done.clone());
            thread::spawn(move || {
                let agent = agent();
                for n in (c..UPLOADS).step_by(CLIENTS) {
                    let key = format!("u{n:04}");
                    let body = common::bytes(log_uniform_size(n), n as u64);
                    let url = format!("{}/v1/{DOMAIN}/{key}", bases[n % bases.len()]);
                    let seen = outcome(agent.put(&url).send_bytes(&body), &[201]);
                    history.lock().unwrap().record(&key, "put", Some(body), seen);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Killed at a quarter, half and three quarters of the uploads.
    for quarter in 1..=3 {
        while done.load(Ordering::Relaxed) < UPLOADS * quarter / 4 {
            thread::sleep(Duration::from_millis(5));
        }
        cluster.nodes[1].kill();
        thread::sleep(Duration::from_millis(300));
        cluster.nodes[1].start_again();
    }
    for client in clients {
        client.join().expect("client");
    }
    let faults_over = Instant::now();
    let history = history.lock().unwrap();
    eprintln!("uploads: {:?}", history.counts);
    assert!(history.counts.get("acknowledged").copied().unwrap_or(0) > UPLOADS / 2);
    assert_every_node_agrees(&cluster, &history, faults_over);
    let at_count = wait_for(CONVERGE, || {
        history.keys().all(|key| holders_at_count(&cluster, key)).then_some(())
    });
    assert!(at_count.is_some(), "every upload at its copy count within {CONVERGE:?}");
    eprintln!("every upload at its copy count {:?} after the last kill", faults_over.elapsed());
}

/// Upload `n`'s size: log-uniform from 1 KiB to 1 MiB (a fixed hash of
/// `n`, so a run is repeatable).
fn log_uniform_size(n: usize) -> usize {
    let mixed = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    let unit = mixed as f64 / (1u64 << 53) as f64;
    (1024.0 * 1024f64.powf(unit)) as usize
}

/// Whether the key's homes count its class's copies (none once deleted),
/// asked at the first node; inline bodies leave no file to count.
fn holders_at_count(cluster: &Cluster, key: &str) -> bool {
    let node = cluster.running().next().expect("a running node");
    let url = format!("{}?stat", node.key_url(DOMAIN, key));
    match common::http::get(&url).call() {
        Ok(answer) => {
            let stat: serde_json::Value = answer.into_json().unwrap_or_default();
            stat["holders"].as_array().map_or(0, Vec::len) == COPIES
        }
        Err(ureq::Error::Status(404, _)) => true,
        Err(_) => false,
    }
}
