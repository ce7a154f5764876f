//! What checking one S3 request's signature costs: the signing key derived
//! from the secret, the canonical request, its hash and the signature
//! (`api::s3::sigv4`), as `s3::auth` does for every signed request; and one
//! 64 KiB chunk of a signed `aws-chunked` body (its SHA-256 and signature).

use cairn_api::s3::sigv4::{self, Credential};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn sigv4(c: &mut Criterion) {
    let credential =
        Credential::parse("CK0123456789ABCDEF0123/20261208/us-east-1/s3/aws4_request").unwrap();
    let headers = vec![
        ("host".to_owned(), "127.0.0.1:7800".to_owned()),
        ("x-amz-content-sha256".to_owned(), sigv4::EMPTY_SHA256.to_owned()),
        ("x-amz-date".to_owned(), "20261208T010203Z".to_owned()),
    ];
    c.bench_function("sigv4_check_one_request", |b| {
        b.iter(|| {
            let uri = sigv4::canonical_uri(black_box("/photos/2026/12/IMG_0001.jpg"));
            let request = sigv4::canonical_request("GET", &uri, "", &headers, sigv4::EMPTY_SHA256);
            let to_sign = sigv4::string_to_sign("20261208T010203Z", &credential.scope(), &request);
            let key = sigv4::signing_key(
                black_box("0123456789abcdef0123456789abcdef01234567"),
                &credential,
            );
            sigv4::signature(&key, &to_sign)
        })
    });
    let key = sigv4::signing_key("0123456789abcdef0123456789abcdef01234567", &credential);
    let chunk = vec![7u8; 64 << 10];
    let mut group = c.benchmark_group("sigv4_chunk");
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    group.bench_function("check_one_64k_chunk", |b| {
        b.iter(|| {
            let to_sign = sigv4::chunk_string_to_sign(
                "20261208T010203Z",
                &credential.scope(),
                sigv4::EMPTY_SHA256,
                &sigv4::sha256_hex(black_box(&chunk)),
            );
            sigv4::signature(&key, &to_sign)
        })
    });
    group.finish();
}

criterion_group!(benches, sigv4);
criterion_main!(benches);
