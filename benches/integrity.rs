//! The cost of our integrity path: SHA-256 plus a CRC32 per 64 KiB block
//! over a stream of network-sized buffers, against SHA-256 alone (the
//! baseline every content-addressed store pays) and CRC32 alone.

use cairn_engine::BlockCrcs;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest as _, Sha256};

const STREAM_BYTES: usize = 8 << 20;
const PIECE_BYTES: usize = 16 * 1024;

fn integrity(c: &mut Criterion) {
    let data: Vec<u8> = (0..STREAM_BYTES).map(|i| (i * 131 % 251) as u8).collect();
    let mut group = c.benchmark_group("integrity_8MiB_in_16KiB_pieces");
    group.throughput(Throughput::Bytes(STREAM_BYTES as u64));
    group.bench_function("sha256", |b| {
        b.iter(|| {
            let mut sha = Sha256::new();
            for piece in data.chunks(PIECE_BYTES) {
                sha.update(piece);
            }
            sha.finalize()
        })
    });
    group.bench_function("crc32_blocks", |b| {
        b.iter(|| {
            let mut crcs = BlockCrcs::default();
            for piece in data.chunks(PIECE_BYTES) {
                crcs.update(piece);
            }
            crcs.finish()
        })
    });
    group.bench_function("sha256_and_crc32_blocks", |b| {
        b.iter(|| {
            let mut sha = Sha256::new();
            let mut crcs = BlockCrcs::default();
            for piece in data.chunks(PIECE_BYTES) {
                sha.update(piece);
                crcs.update(piece);
            }
            (sha.finalize(), crcs.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, integrity);
criterion_main!(benches);
