//! The node's operations on one shard of a one-node cluster, in process:
//! upload commit, verified reads, reading and deleting a key wherever it is.

mod harness;

use std::io::{Seek as _, SeekFrom, Write as _};
use std::time::Duration;

use bytes::Bytes;
use cairn_engine::KeyState;
use cairn_node::read::{read_anywhere, read_blob, read_here, KeyFacts, Origin, Want};
use cairn_node::upload::{put, InMemory};
use cairn_node::NodeError;
use harness::{
    collect, eventually, files_in, pattern, put_bytes, put_request, run, run_with, sha256_of,
    Options, INLINE_MAX_BYTES,
};

/// Sizes of a blob stored in a file, both under and over the 1 MiB up to
/// which a read loads the blob whole (and may cache it) instead of
/// streaming it.
const FILE_SIZES: [usize; 2] = [200_000, 2_500_000];

fn whole(facts: &KeyFacts, _: Origin) -> Want {
    Want::Bytes { start: 0, end: facts.size_bytes }
}

#[test]
fn put_keeps_a_small_blob_inline_in_meta() {
    run(|shard| async move {
        let data = pattern(1000, 1);
        let record = put_bytes(&shard, "small", &data).await.expect("put");
        let node = &shard.node;

        assert_eq!(record.sha256, sha256_of(&data));
        assert_eq!(record.size_bytes, data.len() as u64);
        assert_eq!(record.class, cairn_raft::DEFAULT_CLASS);
        assert_eq!(record.state, KeyState::NeedReplication, "the default class wants 2 copies");
        let stored = node.meta.key("test", "small").unwrap().expect("key in Meta");
        assert_eq!(stored.sha256, record.sha256);
        assert_eq!(stored.version, record.version);
        let blob = node.meta.blob(&record.sha256).unwrap().expect("blob record in Meta");
        assert_eq!(blob.inline.as_deref(), Some(&data[..]), "bytes kept in the record");
        assert!(node.meta.has_refs(&record.sha256).unwrap());
        assert!(!node.data.fid_path(&record.sha256).exists(), "no file for an inline blob");
        assert!(!node.meta.upload_in_progress("test", "small").unwrap());
        assert_eq!(node.stats.get(KeyState::NeedReplication), (1, data.len() as i64));
        assert_eq!(node.stats.get(KeyState::Uploading), (0, 0));
    });
}

#[test]
fn put_places_a_large_blob_in_its_file() {
    run(|shard| async move {
        let node = shard.node.clone();
        // With a declared length the body goes to a file at once; without
        // one it starts in memory and spills over.
        for (key, declared) in [("declared", true), ("undeclared", false)] {
            let data = pattern(300_000, key.len() as u8);
            assert!(data.len() as u64 > INLINE_MAX_BYTES);
            let request = put_request(key, declared.then_some(data.len() as u64));
            let record = put(&shard, request, &mut InMemory(Some(Bytes::from(data.clone()))))
                .await
                .expect("put");

            assert_eq!(record.sha256, sha256_of(&data), "{key}");
            assert_eq!(record.size_bytes, data.len() as u64, "{key}");
            let stored = node.meta.key("test", key).unwrap().expect("key in Meta");
            assert_eq!((stored.sha256, stored.version), (record.sha256, record.version));
            let blob = node.meta.blob(&record.sha256).unwrap().expect("blob record in Meta");
            assert!(blob.inline.is_none(), "{key}: a large blob is not inline");
            assert_eq!(blob.size_bytes, data.len() as u64);
            let on_disk = std::fs::read(node.data.fid_path(&record.sha256)).expect("blob file");
            assert_eq!(on_disk.len(), data.len(), "{key}");
            assert_eq!(sha256_of(&on_disk), record.sha256, "{key}: the file hashes to its name");
            assert!(!node.meta.upload_in_progress("test", key).unwrap(), "{key}");
        }
        assert!(files_in(&node.data.tmp_dir()).is_empty(), "the temp files became blob files");
        assert_eq!(node.stats.get(KeyState::NeedReplication), (2, 600_000));
        assert_eq!(node.stats.get(KeyState::Uploading), (0, 0));
    });
}

#[test]
fn put_refuses_bytes_that_do_not_match_the_announced_sha256() {
    run(|shard| async move {
        let node = shard.node.clone();
        for size in [1000, 300_000] {
            let key = format!("mismatch-{size}");
            let data = pattern(size, 3);
            let mut request = put_request(&key, None);
            request.expected_sha256 = Some(sha256_of(b"other bytes"));
            let refused =
                put(&shard, request, &mut InMemory(Some(Bytes::from(data.clone())))).await;

            assert!(
                matches!(refused, Err(NodeError::DigestMismatch(_))),
                "{size}: {:?}",
                refused.err()
            );
            assert!(node.meta.key("test", &key).unwrap().is_none(), "{size}: no key");
            let sha256 = sha256_of(&data);
            assert!(node.meta.blob(&sha256).unwrap().is_none(), "{size}: no blob record");
            assert!(!node.data.fid_path(&sha256).exists(), "{size}: no blob file");
            assert!(!node.meta.upload_in_progress("test", &key).unwrap(), "{size}: no upload");
            // The temp file is removed in the background.
            let tmp = node.data.tmp_dir();
            eventually(
                "the refused upload's temp file is removed",
                Duration::from_secs(10),
                || files_in(&tmp).is_empty(),
            )
            .await;
        }
        assert_eq!(node.stats.get(KeyState::Uploading), (0, 0));
        assert_eq!(node.stats.get(KeyState::NeedReplication), (0, 0));
    });
}

#[test]
fn read_here_returns_the_bytes_put() {
    run(|shard| async move {
        for (key, size) in [("inline", 1000), ("file", FILE_SIZES[0]), ("large", FILE_SIZES[1])] {
            let data = pattern(size, 5);
            let record = put_bytes(&shard, key, &data).await.expect("put");

            // Twice: a second read of a blob up to 1 MiB comes from the cache.
            for _ in 0..2 {
                let reading = read_here(&shard, "test", key, &whole).await.expect("read");
                assert_eq!(reading.origin, Origin::Here);
                assert_eq!(reading.facts.sha256, record.sha256, "{key}");
                assert_eq!(reading.facts.size_bytes, size as u64, "{key}");
                let bytes = collect(reading.body.expect("a body")).await.expect("read the body");
                assert!(bytes == data, "{key}: the bytes read are the bytes put");
            }
            // A range across a block boundary.
            let (start, end) = (size / 3, size / 3 + 70_000.min(size / 2));
            let body = read_blob(&shard, &record.sha256, start as u64, end as u64).await;
            let bytes = collect(body.expect("read a range")).await.expect("read the range");
            assert!(bytes == data[start..end], "{key}: range {start}..{end}");
        }
        let nothing = read_here(&shard, "test", "never-put", &whole).await;
        assert!(matches!(nothing, Err(NodeError::NotHere { .. })), "{:?}", nothing.err());
    });
}

#[test]
fn read_of_a_damaged_blob_fails_and_quarantines_it() {
    // No cache: every read goes to the file.
    run_with(Options { cache_size_bytes: 0 }, |shard| async move {
        let node = shard.node.clone();
        for (round, size) in FILE_SIZES.into_iter().enumerate() {
            let key = format!("damaged-{size}");
            let data = pattern(size, 7);
            let record = put_bytes(&shard, &key, &data).await.expect("put");
            let reading = read_here(&shard, "test", &key, &whole).await.expect("read");
            assert!(collect(reading.body.unwrap()).await.unwrap() == data);

            // One byte flipped in the second block: within the first chunk any
            // read of the whole blob checks before it answers.
            let path = node.data.fid_path(&record.sha256);
            let damaged_at = 70_000;
            let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            file.seek(SeekFrom::Start(damaged_at)).unwrap();
            file.write_all(&[data[damaged_at as usize] ^ 0x40]).unwrap();
            file.sync_all().unwrap();
            drop(file);

            let refused = read_here(&shard, "test", &key, &whole).await;
            assert!(matches!(refused, Err(NodeError::Corrupt(_))), "{size}: {:?}", refused.err());
            let corrupt_reads = node.stats.corrupt_reads.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(corrupt_reads, round as u64 + 1);
            eventually("the damaged file moves to quarantine", Duration::from_secs(10), || {
                !path.exists()
            })
            .await;
            let quarantined: Vec<_> = files_in(&node.data.quarantine_dir())
                .into_iter()
                .filter(|p| p.to_string_lossy().contains(&record.sha256.to_hex()))
                .collect();
            assert_eq!(quarantined.len(), 1, "{size}: one quarantined copy");
            let kept = std::fs::read(&quarantined[0]).unwrap();
            assert_eq!(kept.len(), size);
            assert_ne!(sha256_of(&kept), record.sha256, "the damaged bytes are what is kept");

            // The file is gone: no intact copy here any more.
            let gone = read_blob(&shard, &record.sha256, 0, size as u64).await;
            assert!(matches!(gone, Err(NodeError::NoIntactCopy(_))), "{size}: {:?}", gone.err());
        }
    });
}

#[test]
fn read_anywhere_of_a_key_no_one_holds_is_unknown() {
    run(|shard| async move {
        let read = read_anywhere(&shard, "test", "nobody-has-it", whole).await;
        match read {
            Err(NodeError::Unknown { domain, key }) => {
                assert_eq!((domain.as_str(), key.as_str()), ("test", "nobody-has-it"));
            }
            other => panic!("expected Unknown, got {:?}", other.err()),
        }
    });
}

#[test]
fn read_anywhere_of_a_key_held_here_reads_it_here() {
    run(|shard| async move {
        let data = pattern(FILE_SIZES[0], 9);
        let record = put_bytes(&shard, "held", &data).await.expect("put");
        let reading = read_anywhere(&shard, "test", "held", whole).await.expect("read");
        assert_eq!(reading.origin, Origin::Here);
        assert_eq!(reading.facts.sha256, record.sha256);
        assert_eq!(reading.facts.version_hlc, record.version.hlc);
        assert!(collect(reading.body.unwrap()).await.unwrap() == data);
    });
}

#[test]
fn delete_anywhere_removes_the_key_and_a_second_delete_is_unknown() {
    run(|shard| async move {
        let node = shard.node.clone();
        let data = pattern(FILE_SIZES[0], 11);
        let record = put_bytes(&shard, "doomed", &data).await.expect("put");
        assert_eq!(node.stats.get(KeyState::NeedReplication), (1, data.len() as i64));

        cairn_node::delete::delete_anywhere(&shard, "test".into(), "doomed".into())
            .await
            .expect("delete");
        assert!(node.meta.key("test", "doomed").unwrap().is_none(), "key gone from Meta");
        assert!(!node.meta.has_refs(&record.sha256).unwrap(), "no key refers to the blob");
        assert_eq!(node.stats.get(KeyState::NeedReplication), (0, 0));
        for state in [KeyState::Stored, KeyState::Uploading] {
            assert_eq!(node.stats.get(state), (0, 0), "{state:?}");
        }

        let again =
            cairn_node::delete::delete_anywhere(&shard, "test".into(), "doomed".into()).await;
        assert!(matches!(again, Err(NodeError::Unknown { .. })), "{:?}", again.err());
        let read = read_anywhere(&shard, "test", "doomed", whole).await;
        assert!(matches!(read, Err(NodeError::Unknown { .. })), "{:?}", read.err());

        // The collector removes the blob no key refers to.
        let path = node.data.fid_path(&record.sha256);
        eventually("the deleted key's blob file is collected", Duration::from_secs(10), || {
            !path.exists()
        })
        .await;
    });
}
