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

use common::cluster::{cluster_report, node_id, Cluster, SETTLE_TIMEOUT};
use common::history::{agent, outcome, History, Outcome, State, Timeline};
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

/// S2: how many times the raft leader is killed, one every
/// [`LEADER_KILL_PERIOD`]. The issue asks for 60 s (6 kills); CI runs 3 to
/// keep its budget, `CAIRN_LEADER_KILLS=6` runs the whole minute.
const LEADER_KILLS: usize = 3;
const LEADER_KILL_PERIOD: Duration = Duration::from_secs(10);

/// S2 of the fault issue: under writes at every node, the raft leader is
/// killed (-9) every 10 s and restarted once another leader is reported,
/// so the next kill takes the new leader.
#[test]
fn the_leader_killed_every_10_s_under_load_loses_nothing() {
    let kills = std::env::var("CAIRN_LEADER_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(LEADER_KILLS);
    let cluster = Cluster::start(3, &["--down-after", "1s"]);
    under_load(cluster, |cluster| {
        thread::sleep(Duration::from_secs(2));
        let mut failovers = Vec::new();
        for _ in 0..kills {
            let next = Instant::now() + LEADER_KILL_PERIOD;
            failovers.push(kill_the_leader(cluster));
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        eprintln!("leader changes: {}; failover times: {failovers:?}", failovers.len());
    });
}

/// Kills the raft leader, waits until a survivor reports another leader,
/// and starts the killed node again; answers the time from the kill until
/// the new leader was reported.
fn kill_the_leader(cluster: &mut Cluster) -> Duration {
    cluster.settle(3, 3);
    let old = cluster.leader_index();
    let old_id = node_id(&cluster.nodes[old]);
    cluster.nodes[old].kill();
    let killed = Instant::now();
    wait_for(SETTLE_TIMEOUT, || {
        cluster.running().find_map(|node| {
            let report = cluster_report(node)?;
            let leader = report["leader"].as_str()?;
            (leader != old_id).then_some(())
        })
    })
    .expect("the survivors elect a new leader");
    let failover = killed.elapsed();
    cluster.nodes[old].start_again();
    failover
}

/// S4's second half: bytes of each large PUT a store is paused under.
const LARGE_BYTES: usize = 32 << 20;
/// How long the store is paused.
const STORE_PAUSE: Duration = Duration::from_secs(15);

/// S4 of the fault issue, second half: a store paused (SIGSTOP) for 15 s
/// while two large PUTs stream into it, one client waiting it out, one
/// giving up after 8 s, then resumed. A PUT answered 201 is read whole at
/// every node; one that failed leaves the key absent or whole, never
/// partial; no temp file is left; the other nodes serve other keys
/// throughout the pause.
#[test]
fn a_store_paused_mid_put_leaves_each_key_whole_or_absent_while_the_others_serve() {
    let cluster = Cluster::start(3, &["--down-after", "1s"]);
    let paused = (cluster.leader_index() + 1) % 3;
    let node = &cluster.nodes[paused];
    let clients = [("patient", 60), ("impatient", 8)];
    let bodies: Vec<Vec<u8>> = (0..2).map(|seed| common::bytes(LARGE_BYTES, seed)).collect();
    let sent: Vec<AtomicUsize> = (0..2).map(|_| AtomicUsize::new(0)).collect();
    let (outcomes, resumed): (Vec<Outcome>, Instant) = thread::scope(|scope| {
        let uploads: Vec<_> = (0..2)
            .map(|i| {
                let (key, timeout_s) = clients[i];
                let (url, body, sent) = (node.key_url(DOMAIN, key), &bodies[i], &sent[i]);
                scope.spawn(move || paced_put(&url, body, Duration::from_secs(timeout_s), sent))
            })
            .collect();
        wait_for(Duration::from_secs(30), || {
            sent.iter().all(|s| s.load(Ordering::Relaxed) >= LARGE_BYTES / 4).then_some(())
        })
        .expect("both uploads under way");
        let stopped = Stopped::stop(node);
        let served = serve_others_for(&cluster, paused, STORE_PAUSE);
        drop(stopped);
        let resumed = Instant::now();
        eprintln!("during the pause the other nodes served: {served:?}");
        (uploads.into_iter().map(|u| u.join().expect("an upload thread")).collect(), resumed)
    });
    eprintln!("outcomes: {:?}", clients.iter().map(|c| c.0).zip(&outcomes).collect::<Vec<_>>());
    assert_ne!(outcomes[1], Outcome::Acknowledged, "the impatient client gave up in the pause");
    for ((key, _), (outcome, body)) in clients.iter().zip(outcomes.iter().zip(&bodies)) {
        whole_everywhere_or_absent(&cluster, key, body, *outcome);
    }
    for node in &cluster.nodes {
        wait_for(CONVERGE, || (node.tmp_entries() == 0).then_some(()))
            .unwrap_or_else(|| panic!("temp files left at {}", node.base));
    }
    eprintln!("checked, no temp file left, {:?} after the store resumed", resumed.elapsed());
}

/// A node paused (SIGSTOP) until this is dropped, also by a failing
/// assertion: the uploads into it then end and the test with them.
struct Stopped<'a>(&'a common::TestNode);

impl<'a> Stopped<'a> {
    fn stop(node: &'a common::TestNode) -> Stopped<'a> {
        node.signal("-STOP");
        Stopped(node)
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.signal("-CONT");
    }
}

/// PUTs `body` at `url`, 2 ms' pause every 64 KiB (about 30 MB/s), counting in `sent`
/// what the connection took; `timeout` bounds the whole request.
fn paced_put(url: &str, body: &[u8], timeout: Duration, sent: &AtomicUsize) -> Outcome {
    struct Paced<'a> {
        body: &'a [u8],
        sent: &'a AtomicUsize,
    }
    impl std::io::Read for Paced<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let at = self.sent.load(Ordering::Relaxed);
            let n = buf.len().min(self.body.len() - at);
            buf[..n].copy_from_slice(&self.body[at..at + n]);
            self.sent.fetch_add(n, Ordering::Relaxed);
            if at >> 16 != (at + n) >> 16 {
                thread::sleep(Duration::from_millis(2));
            }
            Ok(n)
        }
    }
    let agent =
        common::http::builder().timeout_connect(Duration::from_secs(2)).timeout(timeout).build();
    let request = agent.put(url).set("Content-Length", &body.len().to_string());
    outcome(request.send(Paced { body, sent }), &[201])
}

/// What the nodes that were not paused did meanwhile.
#[derive(Debug)]
struct Served {
    /// PUTs acknowledged, each then read back at the other node.
    pairs: usize,
    /// The slowest pair, retries included.
    slowest: Duration,
    /// GETs answered `503` (a retry is asked for) and then served.
    retried: usize,
}

/// PUTs and GETs keys of its own at every node but `paused`, for `time`;
/// every PUT must be acknowledged and every GET served, a `503` retried
/// (for at most [`SETTLE_TIMEOUT`]).
fn serve_others_for(cluster: &Cluster, paused: usize, time: Duration) -> Served {
    let agent = agent();
    let others: Vec<&common::TestNode> =
        cluster.nodes.iter().enumerate().filter(|(i, _)| *i != paused).map(|(_, n)| n).collect();
    let end = Instant::now() + time;
    let mut served = Served { pairs: 0, slowest: Duration::ZERO, retried: 0 };
    while Instant::now() < end {
        let n = served.pairs;
        let (key, body) = (format!("other{n}"), common::bytes(70_000, 1000 + n as u64));
        let (at, from) = (others[n % 2], others[(n + 1) % 2]);
        let started = Instant::now();
        let put = agent.put(&at.key_url(DOMAIN, &key)).send_bytes(&body);
        assert_eq!(outcome(put, &[201]), Outcome::Acknowledged, "PUT {key} at {}", at.base);
        let got = wait_for(SETTLE_TIMEOUT, || {
            let got = common::reply(agent.get(&from.key_url(DOMAIN, &key)).call());
            served.retried += usize::from(got.status == 503);
            (got.status != 503).then_some(got)
        })
        .expect("a GET answered 503 is served when retried");
        assert_eq!((got.status, got.body == body), (200, true), "GET {key} at {}", from.base);
        served.slowest = served.slowest.max(started.elapsed());
        served.pairs += 1;
    }
    served
}

/// A PUT acknowledged is read whole at every node, and reaches its copy
/// count; one whose outcome is unknown leaves the key, at every node
/// alike, absent or whole.
fn whole_everywhere_or_absent(cluster: &Cluster, key: &str, body: &[u8], outcome: Outcome) {
    let agreed = wait_for(CONVERGE, || {
        let found = common::load::answers(cluster, key);
        let first = found.first()?.clone().ok()?;
        found.iter().all(|f| f.as_ref() == Ok(&first)).then_some(first)
    })
    .unwrap_or_else(|| panic!("every node answers {key} alike"));
    let left = if agreed.is_some() { "whole" } else { "absent" };
    match (outcome, agreed) {
        (Outcome::Acknowledged, Some(found)) => {
            assert!(found == body, "{key}: acknowledged, read back whole");
            let at_count = wait_for(CONVERGE, || holders_at_count(cluster, key).then_some(()));
            assert!(at_count.is_some(), "{key} at its copy count");
        }
        (Outcome::Acknowledged, None) => panic!("{key}: acknowledged, then not found"),
        (_, Some(found)) => {
            assert!(found == body, "{key}: a failed PUT left {} bytes, not whole", found.len())
        }
        (_, None) => {}
    }
    eprintln!("{key}: {outcome:?}; every node finds it {left}");
}

/// S9: how far ahead one node's clock is, and another's behind.
const SKEW_S: i64 = 600;
/// The few keys every client overwrites.
const CONTENDED_KEYS: usize = 4;
const WRITERS_PER_NODE: usize = 2;
/// Bursts of overwrites, each of new keys, each checked once quiet: each
/// key's end state tells about the writes of the burst's last moments.
const BURSTS: usize = 5;
const BURST: Duration = Duration::from_secs(3);

/// S9 of the fault issue: one node's clock 10 minutes ahead and one 10
/// minutes behind, while clients at all three nodes overwrite (and now
/// and then delete) the same few keys. Afterwards every node answers the
/// same for each key, and it is a write that no acknowledged write sent
/// after its answer replaced: whatever the clocks, a later write wins.
#[test]
fn clocks_10_minutes_apart_under_concurrent_overwrites_a_later_write_still_wins() {
    let mut cluster = Cluster::start(3, &["--down-after", "1s"]);
    cluster.nodes[1].set_clock_offset(SKEW_S);
    cluster.nodes[1].restart();
    cluster.nodes[2].set_clock_offset(-SKEW_S);
    cluster.nodes[2].restart();
    cluster.settle(3, 3);
    assert_clocks_apart(&cluster, 2 * SKEW_S);
    let (mut acknowledged, mut last_answered_won, mut slowest) = (0, 0, Duration::ZERO);
    for burst in 0..BURSTS {
        let timeline = overwrite_concurrently(&cluster, burst, BURST);
        acknowledged += timeline.counts.get("acknowledged").copied().unwrap_or(0);
        let quiet = Instant::now();
        let agreed = wait_for(CONVERGE, || {
            timeline.keys().map(|key| agreed_state(&cluster, key)).collect::<Option<Vec<_>>>()
        })
        .unwrap_or_else(|| {
            for key in timeline.keys() {
                let found: Vec<String> = common::load::answers(&cluster, key)
                    .iter()
                    .map(|a| {
                        a.as_ref().map_or_else(|s| format!("status {s}"), common::load::summary)
                    })
                    .collect();
                eprintln!("{key}: nodes answer {found:?}");
                for node in &cluster.nodes {
                    let stat = common::http::get(&format!("{}?stat", node.key_url(DOMAIN, key)));
                    let stat = common::reply(stat.call());
                    eprintln!("  {}: {}", node.base, String::from_utf8_lossy(&stat.body));
                }
            }
            panic!("every node answers every key alike within {CONVERGE:?}")
        });
        slowest = slowest.max(quiet.elapsed());
        for (key, found) in timeline.keys().zip(&agreed) {
            let summary = common::load::summary(found);
            assert!(timeline.allows(key, found), "{key}: {summary} is not a write that may win");
            last_answered_won += usize::from(timeline.last_answered(key) == Some(found));
        }
        let at_count = wait_for(CONVERGE, || {
            timeline.keys().all(|k| holders_at_count(&cluster, k)).then_some(())
        });
        assert!(at_count.is_some(), "every key at its copy count within {CONVERGE:?}");
    }
    assert!(acknowledged > 100, "the workload ran");
    eprintln!(
        "{acknowledged} writes acknowledged; every node agreed on every key within {slowest:?} \
         of each burst; {last_answered_won} of {} keys at the write answered last",
        BURSTS * CONTENDED_KEYS
    );
}

/// Waits until the members' clocks, as the leader reads them, spread over
/// at least 90 % of `spread_s`.
fn assert_clocks_apart(cluster: &Cluster, spread_s: i64) {
    let spread = wait_for(SETTLE_TIMEOUT, || {
        let report = cluster_report(&cluster.nodes[0])?;
        let offsets: Vec<i64> = report["members"]
            .as_array()?
            .iter()
            .map(|m| m["clock_offset_ms"].as_i64().unwrap_or(0))
            .collect();
        let spread = offsets.iter().max()? - offsets.iter().min()?;
        (spread > spread_s * 900).then_some(spread)
    });
    assert!(spread.is_some(), "/v1/cluster shows the clocks {spread_s} s apart");
}

/// What every node answers for the key, once they all answer alike.
fn agreed_state(cluster: &Cluster, key: &str) -> Option<State> {
    let found = common::load::answers(cluster, key);
    let first = found.first()?.clone().ok()?;
    found.iter().all(|f| f.as_ref() == Ok(&first)).then_some(first)
}

/// Clients at every node PUT new bytes to the contended keys of `burst`
/// (a DELETE every fifth time), for `time`; their timeline.
fn overwrite_concurrently(cluster: &Cluster, burst: usize, time: Duration) -> Timeline {
    let timeline = Mutex::new(Timeline::default());
    let end = Instant::now() + time;
    thread::scope(|scope| {
        for (n, node) in cluster.nodes.iter().enumerate() {
            for w in 0..WRITERS_PER_NODE {
                let (timeline, client) = (&timeline, n * WRITERS_PER_NODE + w);
                scope.spawn(move || {
                    let agent = agent();
                    for round in (0..).take_while(|_| Instant::now() < end) {
                        let key = format!("b{burst}c{}", (round * 7 + client * 3) % CONTENDED_KEYS);
                        let url = node.key_url(DOMAIN, &key);
                        let sent = Instant::now();
                        let (op, state, seen) = if (round + client) % 5 == 4 {
                            ("delete", None, outcome(agent.delete(&url).call(), &[204, 404]))
                        } else {
                            let body = format!("client {client} round {round}").into_bytes();
                            let seen = outcome(agent.put(&url).send_bytes(&body), &[201]);
                            ("put", Some(body), seen)
                        };
                        timeline.lock().unwrap().record(&key, op, state, seen, sent);
                    }
                });
            }
        }
    });
    timeline.into_inner().unwrap()
}
