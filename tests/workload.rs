//! Steady workloads across faults, checked against their history: PUTs and
//! DELETEs at every node while one node restarts with its clock behind and
//! another is wiped and rejoins (issue 12), or while the raft leader is
//! paused for 15 s (the fault issue's S4); afterwards every acknowledged
//! write is readable at every node (or replaced by a later acknowledged
//! one), no deleted key is back, and every key is at its class's copy
//! count on disk.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::history::{agent, outcome, History};
use common::load::{assert_every_node_agrees, holders_at_count, under_load, CONVERGE, DOMAIN};
use common::wait_for;

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
