//! A full disk (the fault issue's S5): a node whose data directory fills
//! up answers `507 disk_full` to new writes, keeps nothing partial, keeps
//! serving what it has, and takes writes again once space is freed,
//! without a restart. The data directory is a small ext4 filesystem on a
//! loop device the test makes (root only, as CI runs).

mod common;

use std::time::Duration;

use common::disk::SmallDisk;
use common::{bytes, reply, sha256_hex, wait_for, TestNode};

/// The filesystem's size: small enough to fill in seconds.
const DISK_MIB: u64 = 512;
const BODY_BYTES: usize = 1 << 20;

fn tmp_files(node: &TestNode) -> usize {
    node.tmp_entries()
}

#[test]
fn a_full_disk_refuses_writes_with_507_keeps_serving_and_recovers_without_a_restart() {
    fill_and_free(BODY_BYTES, Free::DeleteKeys);
}

/// Bodies small enough to live in their metadata record: the metadata
/// database (its WAL and tables) is what fills the disk. Deleted records
/// give their space back only when compacted, so here an operator frees
/// space by removing another file.
#[test]
fn a_full_metadata_disk_refuses_writes_with_507_and_recovers_without_a_restart() {
    fill_and_free(48 << 10, Free::RemoveBallast);
}

/// How the test frees space once the disk is full.
#[derive(PartialEq)]
enum Free {
    DeleteKeys,
    RemoveBallast,
}

/// A file that takes room on the test's disk until it is removed.
const BALLAST_MIB: u64 = 160;

fn fill_and_free(body_bytes: usize, free: Free) {
    let disk = SmallDisk::ext4(DISK_MIB);
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; (BALLAST_MIB << 20) as usize]).expect("ballast");
    let data = disk.path().join("data");
    let node = TestNode::start_in(&data, &["--cache-size", "0", "--disk-reserve", "128M"]);
    let mut stored = Vec::new();
    let mut refusal = None;
    for i in 0..(DISK_MIB as usize * 2 * BODY_BYTES / body_bytes) {
        let key = format!("k{i:05}");
        let body = bytes(body_bytes, i as u64);
        let put = node.put("full", &key, &body);
        match put.status {
            201 => stored.push((key, body)),
            _ => {
                refusal = Some((key, put));
                break;
            }
        }
    }
    let (refused_key, put) = refusal.expect("the disk fills up");
    put.assert_error(507, "disk_full");
    assert!(stored.len() >= 20, "{} keys fit", stored.len());
    // Nothing partial: no temp file, no trace of the refused key.
    assert_eq!(node.get("full", &refused_key).status, 404);
    assert_eq!(tmp_files(&node), 0, "no temp debris");
    node.put("full", "another", &bytes(body_bytes, 9999)).assert_error(507, "disk_full");
    // What is stored is still served.
    for (key, body) in &stored {
        let got = node.get("full", key);
        assert_eq!(got.status, 200, "{key}");
        assert_eq!(sha256_hex(&got.body), sha256_hex(body), "{key}");
    }
    // Freeing space makes writes work again, with no restart.
    if free == Free::RemoveBallast {
        std::fs::remove_file(&ballast).expect("remove the ballast");
    } else {
        for (key, _) in stored.iter().take(stored.len() / 2) {
            let deleted = reply(common::http::delete(&node.key_url("full", key)).call());
            assert_eq!(deleted.status, 204, "{key}");
        }
    }
    let again = wait_for(Duration::from_secs(30), || {
        let put = node.put("full", &refused_key, &bytes(body_bytes, 4242));
        (put.status == 201).then_some(())
    });
    let last = node.put("full", &refused_key, &bytes(body_bytes, 4242));
    let refused = String::from_utf8_lossy(&put.body).to_string();

    assert!(
        again.is_some(),
        "writes work again once space is freed: first refusal {refused}, now {} {}",
        last.status,
        String::from_utf8_lossy(&last.body)
    );
    let got = node.get("full", &refused_key);
    assert_eq!(sha256_hex(&got.body), sha256_hex(&bytes(body_bytes, 4242)));
    let kept = if free == Free::DeleteKeys { stored.len() / 2 } else { 0 };
    for (key, body) in stored.iter().skip(kept) {
        assert_eq!(sha256_hex(&node.get("full", key).body), sha256_hex(body), "{key}");
    }
    drop(node);
}
