//! Per-request name work: key validation and fid path derivation.

use cairn_engine::{validate_domain, validate_key, Digest};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn names(c: &mut Criterion) {
    let key = "photos/2026/11/25/IMG_0001-with-a-longer-name.jpg";
    c.bench_function("validate_domain_and_key", |b| {
        b.iter(|| {
            validate_domain(black_box("photos")).is_ok() && validate_key(black_box(key)).is_ok()
        })
    });
    let digest = Digest([0xa7; 32]);
    c.bench_function("fid_relative_path", |b| b.iter(|| black_box(&digest).fid_relative_path()));
}

criterion_group!(benches, names);
criterion_main!(benches);
