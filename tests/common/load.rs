//! A steady workload across faults, checked against its history: writers
//! PUT and DELETE at every node while a test injects faults; afterwards
//! every acknowledged write is readable at every node (or replaced by a
//! later acknowledged one), no deleted key is back, and every key is at
//! its class's copy count on disk (issue 12, and the fault issue's
//! scenarios built on it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::history::{agent, outcome, History, Outcome, State};
use super::{sha256_hex, wait_for};

pub const DOMAIN: &str = "steady";
/// Writers, each with keys of its own (its operations on a key are one
/// after another, so their order is known) sent to every node in turn.
const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 6;
/// Above `--inline-max`, so every copy is a blob file the test can count.
const BODY_BYTES: usize = 70_000;
/// The stated time: after the last fault, every node agrees on every key
/// and every key is at its count within this.
pub const CONVERGE: Duration = Duration::from_secs(90);
/// The default class keeps two copies.
pub const COPIES: usize = 2;

/// Runs the writers against every node while `faults` runs, then checks
/// the history: every node agrees on every key as the history allows, and
/// every key is at its copy count on disk, within [`CONVERGE`].
pub fn under_load(mut cluster: Cluster, faults: impl FnOnce(&mut Cluster)) {
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
/// fourth time), until `stop`; each pass over its keys sends each key to
/// another node than the pass before.
fn write_steadily(w: usize, bases: &[String], history: &Mutex<History>, stop: &AtomicBool) {
    let agent = agent();
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("w{w}-k{}", round % KEYS_PER_WRITER);
        let base = &bases[(round + round / KEYS_PER_WRITER + w) % bases.len()];
        let url = format!("{base}/v1/{DOMAIN}/{key}");
        if round % 4 == 3 {
            let result = agent.delete(&url).call();
            history.lock().unwrap().record(&key, "delete", None, outcome(result, &[204, 404]));
        } else {
            let body = super::bytes(BODY_BYTES, (w * 1_000_000 + round) as u64);
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
pub fn assert_every_node_agrees(cluster: &Cluster, history: &History, faults_over: Instant) {
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
pub fn answers(cluster: &Cluster, key: &str) -> Vec<Result<State, u16>> {
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

/// A state in a line of a report: the first digits of its sha256.
pub fn summary(state: &State) -> String {
    state.as_ref().map_or("none".to_owned(), |b| sha256_hex(b)[..12].to_owned())
}

fn report_key(cluster: &Cluster, history: &History, key: &str) {
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

/// Whether the key's homes count its class's copies (none once deleted),
/// asked at the first running node; inline bodies leave no file to count.
pub fn holders_at_count(cluster: &Cluster, key: &str) -> bool {
    let node = cluster.running().next().expect("a running node");
    let url = format!("{}?stat", node.key_url(DOMAIN, key));
    match super::http::get(&url).call() {
        Ok(answer) => {
            let stat: serde_json::Value = answer.into_json().unwrap_or_default();
            stat["holders"].as_array().map_or(0, Vec::len) == COPIES
        }
        Err(ureq::Error::Status(404, _)) => true,
        Err(_) => false,
    }
}
