//! The O_DIRECT write and verified read paths on a real file system.

use cairn_engine::reader::warm_up_direct_io;
use cairn_engine::{BlobReader, BlobRecord, BlobWriter, DataDir, ReadError, BLOCK_SIZE_BYTES};
use sha2::{Digest as _, Sha256};

fn on_executor<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(test)
        .expect("start executor")
        .join()
        .expect("test ran");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8).collect()
}

#[test]
fn written_blob_reads_back_verified_in_any_range() {
    on_executor(|| async {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        warm_up_direct_io(&dir.probe_path()).await.unwrap();
        let data = pattern(1_500_123);
        let tmp = dir.tmp_path("upload");
        let mut writer = BlobWriter::create(&tmp).await.unwrap();
        for piece in data.chunks(77_777) {
            writer.write(piece).await.unwrap();
        }
        let written = writer.finish().await.unwrap();
        assert_eq!(written.size_bytes, data.len() as u64);
        assert_eq!(written.sha256.0, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(written.block_crcs.len(), data.len().div_ceil(BLOCK_SIZE_BYTES as usize));
        assert_eq!(std::fs::read(&tmp).unwrap(), data, "file holds exactly the bytes");

        let record = BlobRecord {
            size_bytes: written.size_bytes,
            block_crcs: written.block_crcs,
            inline: None,
        };
        let reader = BlobReader::open(&tmp, record.clone()).await.unwrap();
        for (start, end) in [(0, data.len()), (1, 2), (65_535, 65_537), (1_048_570, 1_500_123)] {
            let mut got = Vec::new();
            let mut position = start as u64;
            loop {
                let chunk = reader.read_chunk(position, end as u64).await.unwrap();
                if chunk.is_empty() {
                    break;
                }
                position += chunk.len() as u64;
                got.extend_from_slice(&chunk);
            }
            assert!(got == data[start..end], "range {start}..{end}");
        }

        let mut damaged = data.clone();
        damaged[1_300_000] ^= 1;
        std::fs::write(&tmp, &damaged).unwrap();
        let reader = BlobReader::open(&tmp, record).await.unwrap();
        assert!(reader.read_chunk(0, 1000).await.is_ok(), "undamaged blocks still read");
        match reader.read_chunk(1_048_576, 1_500_123).await {
            Err(ReadError::Corrupt { block }) => assert_eq!(block, 1_300_000 / 65_536),
            other => panic!("expected corruption, got {other:?}"),
        }
    });
}

#[test]
fn empty_blob_is_written() {
    on_executor(|| async {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(root.path()).unwrap();
        warm_up_direct_io(&dir.probe_path()).await.unwrap();
        let tmp = dir.tmp_path("empty");
        let written = BlobWriter::create(&tmp).await.unwrap().finish().await.unwrap();
        assert_eq!(written.size_bytes, 0);
        assert!(written.block_crcs.is_empty());
        assert_eq!(std::fs::metadata(&tmp).unwrap().len(), 0);
    });
}

#[test]
fn inline_blob_reads_verified_ranges_and_detects_damage() {
    use cairn_engine::reader::read_inline;
    use cairn_engine::Integrity;
    let data = pattern(150_000);
    let mut integrity = Integrity::default();
    integrity.update(&data);
    let written = integrity.finish();
    let record = BlobRecord {
        size_bytes: written.size_bytes,
        block_crcs: written.block_crcs,
        inline: Some(data.clone()),
    };
    assert_eq!(read_inline(record.clone(), 0, 150_000).unwrap(), data);
    assert_eq!(read_inline(record.clone(), 65_530, 65_540).unwrap(), data[65_530..65_540]);
    let mut damaged = record.clone();
    damaged.inline.as_mut().unwrap()[140_000] ^= 4;
    assert!(read_inline(damaged.clone(), 0, 100).is_ok(), "undamaged blocks still read");
    assert!(matches!(read_inline(damaged, 139_000, 141_000), Err(ReadError::Corrupt { block: 2 })));
}
