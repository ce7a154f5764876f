//! kill -9 in the middle of a stream of concurrent PUTs: after a restart
//! every acknowledged key is intact and no temp debris is left.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{bytes, sha256_hex, wait_for, TestNode};

#[test]
fn kill_during_concurrent_puts_loses_no_acknowledged_key() {
    let mut node = TestNode::start(&[]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let (acked, stop, base) = (acked.clone(), stop.clone(), node.base.clone());
            std::thread::spawn(move || {
                let agent = common::http::builder().timeout(Duration::from_secs(10)).build();
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{writer}-{i}");
                    // Sizes from a few bytes to ~600 KiB; every fourth blob
                    // is shared with another key.
                    let seed = if i % 4 == 0 { 1 } else { writer * 1_000_000 + i };
                    let data = bytes(((seed * 7919) % 600_000) as usize + 3, seed);
                    let url = format!("{base}/v1/crash/{key}");
                    match agent.put(&url).send_bytes(&data) {
                        Ok(response) if response.status() == 201 => {
                            acked.lock().unwrap().push((key, sha256_hex(&data)));
                        }
                        _ => break,
                    }
                }
            })
        })
        .collect();
    let enough =
        wait_for(Duration::from_secs(60), || (acked.lock().unwrap().len() >= 150).then_some(()));
    assert!(enough.is_some(), "writers made progress");
    node.kill();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }

    node.restart();
    assert_eq!(node.tmp_entries(), 0, "no temp debris after restart");
    let acked = acked.lock().unwrap().clone();
    for (key, sha) in &acked {
        let get = node.get("crash", key);
        assert_eq!(get.status, 200, "acknowledged key {key} lost");
        assert_eq!(&sha256_hex(&get.body), sha, "acknowledged key {key} damaged");
    }
    let status = node.status();
    assert_eq!(status["keys"]["uploading"]["keys"], 0);
    assert!(status["keys"]["need-replication"]["keys"].as_u64().unwrap() >= acked.len() as u64);
}
