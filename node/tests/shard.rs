//! The node's operations on one shard of a one-node cluster, in process:
//! upload commit, verified reads, reading and deleting a key wherever it is.

mod harness;

use std::time::Duration;

use bytes::Bytes;
use cairn_engine::KeyState;
use cairn_node::upload::{put, InMemory};
use cairn_node::NodeError;
use harness::{
    eventually, files_in, pattern, put_bytes, put_request, run, sha256_of, INLINE_MAX_BYTES,
};

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
