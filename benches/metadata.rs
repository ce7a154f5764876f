//! RocksDB commits with a synced WAL: 64 commits one after another (each
//! pays its own sync) against 64 concurrent commits (the commit thread
//! groups them under one sync).

use cairn_engine::meta::Batch;
use cairn_engine::{Digest, KeyRecord, KeyState, Meta, Version};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;

const COMMITS: u64 = 64;

fn record(i: u64) -> KeyRecord {
    KeyRecord {
        state: KeyState::NeedReplication,
        version: Version { hlc: i, node_id: 1 },
        sha256: Digest([i as u8; 32]),
        size_bytes: 4096,
        class: "default".into(),
        content_type: String::new(),
        fid: i,
        headers: String::new(),
    }
}

fn batch(i: u64) -> Batch {
    let mut batch = Batch::default();
    let key = format!("key-{i}");
    let record = record(i);
    batch.put_key("bench", &key, &record);
    batch.add_ref(&record.sha256, "bench", &key);
    batch
}

fn metadata(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Meta::open(dir.path()).expect("open rocksdb");
    let mut group = c.benchmark_group("rocksdb_64_synced_commits");
    group.throughput(Throughput::Elements(COMMITS));
    group.sample_size(20);
    group.bench_function("one_by_one", |b| {
        b.iter(|| {
            for i in 0..COMMITS {
                block_on(meta.commit(batch(i))).expect("commit");
            }
        })
    });
    group.bench_function("grouped", |b| {
        b.iter(|| {
            let commits: Vec<_> = (0..COMMITS).map(|i| meta.commit(batch(i))).collect();
            // Every commit is queued before the first is awaited, so the
            // commit thread finds them waiting together.
            block_on(async {
                for commit in commits {
                    commit.await.expect("commit");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, metadata);
criterion_main!(benches);
