//! The engine's PUT path in-process, no HTTP: O_DIRECT writes with SHA-256
//! and block CRCs, then truncate and fdatasync, on a glommio executor.

use std::cell::Cell;
use std::future::Future;

use cairn_engine::reader::warm_up_direct_io;
use cairn_engine::{BlobWriter, DataDir};
use criterion::async_executor::AsyncExecutor;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Bytes handed to the writer per call, as hyper hands them over.
const PIECE_BYTES: usize = 64 * 1024;

struct Glommio(glommio::LocalExecutor);

impl AsyncExecutor for &Glommio {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.0.run(future)
    }
}

fn engine_put(c: &mut Criterion) {
    let executor = Glommio(glommio::LocalExecutorBuilder::default().make().expect("executor"));
    let root = tempfile::tempdir().expect("tempdir");
    let dir = DataDir::open(root.path()).expect("data dir");
    executor.0.run(async { warm_up_direct_io(&dir.probe_path()).await.expect("warm up") });
    let serial = Cell::new(0u64);
    let mut group = c.benchmark_group("engine_put");
    group.sample_size(20);
    for size_bytes in [4 << 10, 1 << 20, 16 << 20] {
        let data: Vec<u8> = (0..size_bytes).map(|i| (i % 253) as u8).collect();
        group.throughput(Throughput::Bytes(size_bytes as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size_bytes), &data, |b, data| {
            b.to_async(&executor).iter(|| {
                serial.set(serial.get() + 1);
                let path = dir.tmp_path(&format!("bench-{}", serial.get()));
                async move {
                    let mut writer = BlobWriter::create(&path).await.expect("create");
                    for piece in data.chunks(PIECE_BYTES) {
                        writer.write(piece).await.expect("write");
                    }
                    let written = writer.finish().await.expect("finish");
                    std::fs::remove_file(&path).expect("remove");
                    written.size_bytes
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, engine_put);
criterion_main!(benches);
