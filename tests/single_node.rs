//! One real node on loopback: the blob lifecycle of docs/design.md §4 and the
//! HTTP API of §9, proven from the outside.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{bytes, reply, sha256_hex, wait_for, TestNode};

const WAIT: Duration = Duration::from_secs(20);
/// The node's default `--inline-max`.
const INLINE_MAX_BYTES: u64 = 64 * 1024;

#[test]
fn put_then_get_round_trips_bytes_exactly() {
    let node = TestNode::start(&[]);
    for (key, len) in [("empty", 0usize), ("one-mib", 1 << 20), ("odd/size.bin", 70_001)] {
        let data = bytes(len, len as u64);
        let put = node.put("photos", key, &data);
        assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
        let answer = put.json();
        assert_eq!(answer["sha256"], sha256_hex(&data));
        assert_eq!(answer["size"], len as u64);
        assert_eq!(answer["domain"], "photos");
        assert_eq!(answer["key"], key);
        assert_eq!(answer["class"], "default");
        assert_eq!(answer["state"], "need-replication");
        assert!(answer["version"].as_u64().unwrap() > 0);

        let get = node.get("photos", key);
        assert_eq!(get.status, 200);
        assert_eq!(get.body.len(), len);
        assert!(get.body == data, "bytes differ for {key}");
        assert_eq!(get.header("etag").unwrap(), format!("\"{}\"", sha256_hex(&data)));
        let fid = node.fid_path(&sha256_hex(&data));
        if len as u64 > INLINE_MAX_BYTES {
            assert_eq!(std::fs::read(&fid).expect("fid file exists"), data);
        } else {
            assert!(!fid.exists(), "a small blob lives in its record, not a file");
        }
    }
    assert_eq!(node.tmp_entries(), 0);
}

#[test]
fn small_blobs_live_in_metadata_and_are_collected_there() {
    let node = TestNode::start(&[]);
    let first = bytes(5000, 1);
    let second = bytes(6000, 2);
    // Chunked: the node cannot know the size in advance.
    assert_eq!(reply(common::http::put(&node.key_url("s", "k")).send(&first[..])).status, 201);
    assert_eq!(node.put("s", "k", &second).status, 201);
    assert_eq!(node.get("s", "k").body, second);
    assert_eq!(count_fids(&node), 0);
    let part = reply(common::http::get(&node.key_url("s", "k")).set("Range", "bytes=10-19").call());
    assert_eq!(part.body, &second[10..20]);
    let collected =
        wait_for(WAIT, || (node.status()["keys"]["to-delete"]["blobs"] == 0).then_some(()));
    assert!(collected.is_some(), "the replaced small blob is collected");
    // An identical small blob under another key is shared, and survives the
    // first key's deletion.
    assert_eq!(node.put("s", "k2", &second).status, 201);
    assert_eq!(reply(common::http::delete(&node.key_url("s", "k")).call()).status, 204);
    assert!(collector_done(&node), "the collector looked at the dropped reference");
    assert_eq!(node.get("s", "k2").body, second);
}

#[test]
fn chunked_64_mib_upload_round_trips() {
    let node = TestNode::start(&[]);
    let data = bytes(64 << 20, 64);
    // No Content-Length: ureq sends a reader with chunked encoding.
    let put = reply(common::http::put(&node.key_url("big", "blob")).send(&data[..]));
    assert_eq!(put.status, 201);
    assert_eq!(put.json()["sha256"], sha256_hex(&data));
    let get = node.get("big", "blob");
    assert_eq!(get.status, 200);
    assert_eq!(sha256_hex(&get.body), sha256_hex(&data));
    assert_eq!(node.tmp_entries(), 0);
}

#[test]
fn stat_shows_state_and_content_type_is_served_back() {
    let node = TestNode::start(&[]);
    let put = reply(
        common::http::put(&node.key_url("docs", "a.txt"))
            .set("Content-Type", "text/plain; charset=utf-8")
            .send_bytes(b"hello"),
    );
    assert_eq!(put.status, 201);
    let stat = reply(common::http::get(&format!("{}?stat", node.key_url("docs", "a.txt"))).call());
    assert_eq!(stat.status, 200);
    let stat = stat.json();
    assert_eq!(stat["state"], "need-replication");
    assert_eq!(stat["block_size"], 65536);
    assert_eq!(stat["size"], 5);
    assert_eq!(stat["sha256"], sha256_hex(b"hello"));
    let get = node.get("docs", "a.txt");
    assert_eq!(get.header("content-type"), Some("text/plain; charset=utf-8"));
    let missing =
        reply(common::http::get(&format!("{}?stat", node.key_url("docs", "nope"))).call());
    missing.assert_error(404, "not_found");
}

#[test]
fn equal_bytes_share_one_fid_until_the_last_key_goes() {
    let node = TestNode::start(&[]);
    let data = bytes(100_000, 7);
    assert_eq!(node.put("d", "one", &data).status, 201);
    assert_eq!(node.put("d", "two", &data).status, 201);
    let fid = node.fid_path(&sha256_hex(&data));
    assert!(fid.exists());
    let blobs = count_fids(&node);
    assert_eq!(blobs, 1);

    assert_eq!(reply(common::http::delete(&node.key_url("d", "one")).call()).status, 204);
    assert_eq!(node.get("d", "one").status, 404);
    assert_eq!(node.get("d", "two").body, data);
    // Still referenced by "two": the collector must leave it.
    assert!(collector_done(&node), "the collector looked at the dropped reference");
    assert!(fid.exists());

    assert_eq!(reply(common::http::delete(&node.key_url("d", "two")).call()).status, 204);
    assert!(wait_for(WAIT, || (!fid.exists()).then_some(())).is_some(), "fid collected");
    reply(common::http::delete(&node.key_url("d", "two")).call()).assert_error(404, "not_found");
}

#[test]
fn overwrite_replaces_the_key_and_collects_the_old_blob() {
    let node = TestNode::start(&[]);
    let first = bytes(500_000, 1);
    let second = bytes(600_000, 2);
    let v1 = node.put("d", "k", &first).json()["version"].as_u64().unwrap();
    let v2 = node.put("d", "k", &second).json()["version"].as_u64().unwrap();
    assert!(v2 > v1);
    assert_eq!(node.get("d", "k").body, second);
    let old = node.fid_path(&sha256_hex(&first));
    assert!(wait_for(WAIT, || (!old.exists()).then_some(())).is_some(), "old blob collected");
    assert!(node.fid_path(&sha256_hex(&second)).exists());
}

#[test]
fn range_head_and_if_none_match() {
    let node = TestNode::start(&[]);
    let data = bytes(300_000, 3);
    node.put("r", "k", &data);
    let url = node.key_url("r", "k");
    let tag = format!("\"{}\"", sha256_hex(&data));

    let part = reply(common::http::get(&url).set("Range", "bytes=65530-131080").call());
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[65530..131081]);
    assert_eq!(part.header("content-range"), Some("bytes 65530-131080/300000"));
    let tail = reply(common::http::get(&url).set("Range", "bytes=-10").call());
    assert_eq!(tail.body, &data[299_990..]);
    let open = reply(common::http::get(&url).set("Range", "bytes=299999-").call());
    assert_eq!(open.body, &data[299_999..]);

    let beyond = reply(common::http::get(&url).set("Range", "bytes=300000-").call());
    beyond.assert_error(416, "range_not_satisfiable");
    assert_eq!(beyond.header("content-range"), Some("bytes */300000"));

    let head = reply(common::http::head(&url).call());
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert_eq!(head.header("etag"), Some(tag.as_str()));
    assert!(head.body.is_empty());

    let cached = reply(common::http::get(&url).set("If-None-Match", &tag).call());
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    let stale = reply(common::http::get(&url).set("If-None-Match", "\"other\"").call());
    assert_eq!(stale.status, 200);
}

#[test]
fn listing_with_prefix_and_cursor() {
    let node = TestNode::start(&[]);
    let keys = ["a/1", "a/2", "a/3", "b/1", "a/10"];
    for key in keys {
        assert_eq!(node.put("list", key, key.as_bytes()).status, 201);
    }
    let page =
        |query: &str| reply(common::http::get(&node.url(&format!("/v1/list?{query}"))).call());
    let names = |value: &serde_json::Value| -> Vec<String> {
        value["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap().to_string())
            .collect()
    };
    let all = page("").json();
    assert_eq!(names(&all), ["a/1", "a/10", "a/2", "a/3", "b/1"]);
    assert!(all["next_after"].is_null());

    let first = page("prefix=a/&limit=2").json();
    assert_eq!(names(&first), ["a/1", "a/10"]);
    assert_eq!(first["next_after"], "a/10");
    let second = page("prefix=a/&limit=2&after=a/10").json();
    assert_eq!(names(&second), ["a/2", "a/3"]);
    assert!(second["next_after"].is_null());

    page("limit=0").assert_error(400, "bad_limit");
    page("limit=1001").assert_error(400, "bad_limit");
    reply(common::http::get(&node.url("/v1/nosuchdomain")).call()).assert_error(404, "not_found");
}

#[test]
fn bad_input_gets_a_json_4xx_and_changes_nothing() {
    let node = TestNode::start(&["--max-object-size", "1M"]);
    let put = |path: &str, body: &[u8]| reply(common::http::put(&node.url(path)).send_bytes(body));
    put("/v1/Bad/k", b"x").assert_error(400, "bad_name");
    put("/v1/-bad/k", b"x").assert_error(400, "bad_name");
    put("/v1/status/k", b"x").assert_error(400, "bad_name");
    put("/v1/good/", b"x").assert_error(400, "bad_name");
    put("/v1/good/a%00b", b"x").assert_error(400, "bad_name");
    put("/v1/good/%ff%fe", b"x").assert_error(400, "bad_name");
    put(&format!("/v1/good/{}", "k".repeat(1025)), b"x").assert_error(400, "bad_name");
    put("/v1/good/k?class=nope", b"x").assert_error(400, "unknown_class");

    let mismatch = reply(
        common::http::put(&node.key_url("good", "k"))
            .set("X-Content-Sha256", &sha256_hex(b"something else"))
            .send_bytes(b"x"),
    );
    mismatch.assert_error(400, "digest_mismatch");
    let malformed = reply(
        common::http::put(&node.key_url("good", "k"))
            .set("X-Content-Sha256", "zz")
            .send_bytes(b"x"),
    );
    malformed.assert_error(400, "bad_digest");
    let matching = reply(
        common::http::put(&node.key_url("good", "ok"))
            .set("X-Content-Sha256", &sha256_hex(b"fine"))
            .send_bytes(b"fine"),
    );
    assert_eq!(matching.status, 201);

    // Over the limit by Content-Length: refused before any body byte is sent.
    let answer = raw_exchange(
        &node,
        "PUT /v1/good/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "got {answer:?}");
    assert!(answer.contains("\"error\":\"too_large\""));
    // Over the limit while streaming (chunked, no length known).
    let big = bytes(3 << 20, 2);
    reply(common::http::put(&node.key_url("good", "big2")).send(&big[..]))
        .assert_error(413, "too_large");

    // Nothing changed: only "ok" exists, no temp files, no upload records.
    let listing = reply(common::http::get(&node.url("/v1/good")).call()).json();
    let keys: Vec<_> =
        listing["keys"].as_array().unwrap().iter().map(|k| k["key"].clone()).collect();
    assert_eq!(keys, [serde_json::json!("ok")]);
    assert_eq!(node.get("good", "k").status, 404);
    assert!(wait_for(WAIT, || (node.tmp_entries() == 0).then_some(())).is_some());
    let uploading = wait_for(WAIT, || {
        let status = node.status();
        (status["keys"]["uploading"]["keys"] == 0).then_some(())
    });
    assert!(uploading.is_some(), "no upload left in progress");
    assert_eq!(count_fids(&node), 0, "refused bodies left no blob file");
}

#[test]
fn client_that_vanishes_mid_upload_leaves_nothing() {
    let node = TestNode::start(&[]);
    let port = node.base.rsplit(':').next().unwrap().to_string();
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let head = "PUT /v1/gone/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&bytes(3 << 20, 9)).unwrap();
    // Wait until the node has the upload in progress, then vanish.
    let started = wait_for(WAIT, || {
        let stat = reply(common::http::get(&format!("{}?stat", node.key_url("gone", "k"))).call());
        (stat.status == 200 && stat.json()["state"] == "uploading").then_some(())
    });
    assert!(started.is_some(), "upload visible as uploading");
    drop(stream);
    let cleaned = wait_for(WAIT, || {
        let stat = reply(common::http::get(&format!("{}?stat", node.key_url("gone", "k"))).call());
        (stat.status == 404 && node.tmp_entries() == 0).then_some(())
    });
    assert!(cleaned.is_some(), "temp file and upload record removed");
    assert_eq!(node.status()["keys"]["uploading"]["keys"], 0);
}

#[test]
fn slow_client_times_out_with_408() {
    let node = TestNode::start(&["--body-timeout-ms", "500"]);
    let text = raw_exchange(
        &node,
        "PUT /v1/slow/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
    );
    assert!(text.starts_with("HTTP/1.1 408"), "got {text:?}");
    assert!(text.contains("\"error\":\"timeout\""));
    assert!(wait_for(WAIT, || (node.tmp_entries() == 0).then_some(())).is_some());
    assert_eq!(node.get("slow", "k").status, 404);
}

#[test]
fn flipped_byte_in_a_fid_is_never_served() {
    let node = TestNode::start(&[]);
    let data = bytes(400_000, 11);
    let sha = sha256_hex(&data);
    node.put("c", "k", &data);
    let fid = node.fid_path(&sha);
    flip_byte(&fid, 200_000);

    // The damage lies within the first chunk read (1 MiB), which is checked
    // before the status line goes out: the node answers an error, no bytes.
    let get = node.get("c", "k");
    get.assert_error(502, "corrupt_copy");
    assert!(wait_for(WAIT, || (!fid.exists()).then_some(())).is_some(), "copy quarantined");
    let quarantined: Vec<_> = std::fs::read_dir(node.dir.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(quarantined.len() == 1 && quarantined[0].starts_with(&sha), "{quarantined:?}");
    node.get("c", "k").assert_error(503, "no_intact_copy");
    assert_eq!(node.status()["corrupt_reads"], 1);

    // A new PUT of the same bytes heals the key.
    assert_eq!(node.put("c", "k2", &data).status, 201);
    assert_eq!(node.get("c", "k").body, data);
}

#[test]
fn damage_deep_in_a_large_blob_cuts_the_response() {
    let node = TestNode::start(&[]);
    let data = bytes(3 << 20, 12);
    let sha = sha256_hex(&data);
    node.put("c", "big", &data);
    flip_byte(&node.fid_path(&sha), (2 << 20) + 5);
    let response = common::http::get(&node.key_url("c", "big")).call().expect("headers are sent");
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let read = response.into_reader().read_to_end(&mut body);
    assert!(read.is_err() || body.len() < data.len(), "response must not complete");
    assert!(body.len() <= 2 << 20, "no byte of the damaged block was sent");
    assert_eq!(&body[..], &data[..body.len()]);
}

#[test]
fn status_and_metrics_report_the_node() {
    let node = TestNode::start(&[]);
    node.put("m", "a", b"12345");
    node.get("m", "a");
    let status = node.status();
    assert_eq!(status["node_id"].as_str().unwrap().len(), 16);
    assert_eq!(status["keys"]["need-replication"]["keys"], 1);
    assert_eq!(status["keys"]["need-replication"]["bytes"], 5);
    assert!(status["disks"][0]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["shards"].as_array().unwrap().len(), 2);
    let metrics = reply(common::http::get(&node.url("/metrics")).call());
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(text.contains("cairn_keys{state=\"need-replication\"} 1"), "{text}");
    assert!(text.contains("cairn_requests_total{method=\"PUT\",status=\"2xx\"} 1"), "{text}");
    assert!(text.contains("cairn_request_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"}"));
}

#[test]
fn node_id_and_keys_survive_restart() {
    let mut node = TestNode::start(&[]);
    node.put("p", "k", b"persist");
    let id = node.status()["node_id"].clone();
    node.restart();
    assert_eq!(node.status()["node_id"], id);
    assert_eq!(node.get("p", "k").body, b"persist");
    assert_eq!(node.status()["keys"]["need-replication"]["keys"], 1);
}

/// Sends `request` as raw bytes and reads the answer until the server
/// closes or goes quiet.
fn raw_exchange(node: &TestNode, request: &str) -> String {
    let port = node.base.rsplit(':').next().unwrap().to_string();
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut contents = std::fs::read(path).expect("fid exists");
    contents[offset] ^= 0x40;
    std::fs::write(path, contents).expect("write damaged fid");
}

/// Waits until the collector has decided on every blob waiting for it.
fn collector_done(node: &TestNode) -> bool {
    wait_for(WAIT, || (node.status()["keys"]["to-delete"]["blobs"] == 0).then_some(())).is_some()
}

/// Bytes held by all shards' blob caches.
fn cache_bytes(node: &TestNode) -> u64 {
    let status = node.status();
    status["shards"].as_array().unwrap().iter().map(|s| s["cache_bytes"].as_u64().unwrap()).sum()
}

fn count_fids(node: &TestNode) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum()
            })
            .unwrap_or(0)
    }
    walk(&node.dir.join("blobs"))
}

#[test]
fn full_disk_answers_507_and_keeps_earlier_keys() {
    let disk = common::disk::SmallDisk::tmpfs("24m");
    // No reserve: the body itself runs into ENOSPC half-way.
    let node = TestNode::start_in(&disk.path().join("data"), &["--disk-reserve", "0"]);
    let small = bytes(1 << 20, 21);
    assert_eq!(node.put("full", "small", &small).status, 201);
    let big = bytes(40 << 20, 22);
    // Chunked, so the body streams until the disk fills.
    let put = common::http::put(&node.key_url("full", "big")).send(&big[..]);
    match put {
        Err(ureq::Error::Status(507, response)) => {
            let body: serde_json::Value = response.into_json().unwrap();
            assert_eq!(body["error"], "disk_full");
        }
        other => panic!("expected 507, got {:?}", other.map(|r| r.status())),
    }
    assert!(wait_for(WAIT, || (node.tmp_entries() == 0).then_some(())).is_some());
    assert_eq!(node.get("full", "big").status, 404);
    assert_eq!(node.get("full", "small").body, small);
    drop(node);
}

#[test]
fn hot_small_blobs_are_served_from_the_shard_cache() {
    let node = TestNode::start(&[]);
    let data = bytes(300_000, 31);
    node.put("hot", "k", &data);
    assert_eq!(node.get("hot", "k").body, data);
    let cached = cache_bytes(&node);
    assert!(cached >= 300_000, "blob cached after its first GET ({cached} bytes)");
    let ranged =
        reply(common::http::get(&node.key_url("hot", "k")).set("Range", "bytes=1000-1999").call());
    assert_eq!(ranged.body, &data[1000..2000]);

    let uncached = TestNode::start(&["--cache-size", "0"]);
    uncached.put("hot", "k", &data);
    assert_eq!(uncached.get("hot", "k").body, data);
    assert_eq!(uncached.get("hot", "k").body, data);
    let cached = cache_bytes(&uncached);
    assert_eq!(cached, 0);
}

#[test]
fn put_of_equal_bytes_replaces_a_silently_damaged_file() {
    let node = TestNode::start(&[]);
    let data = bytes(200_000, 41);
    assert_eq!(node.put("heal", "first", &data).status, 201);
    // Damage nobody has read yet: dedup must not trust this file.
    flip_byte(&node.fid_path(&sha256_hex(&data)), 150_000);
    assert_eq!(node.put("heal", "second", &data).status, 201);
    assert_eq!(node.get("heal", "first").body, data);
    assert_eq!(node.get("heal", "second").body, data);
    assert_eq!(node.status()["corrupt_reads"], 0);
}

#[test]
fn client_that_stops_reading_is_dropped_after_the_write_timeout() {
    let node = TestNode::start(&["--write-timeout-ms", "500"]);
    let data = bytes(32 << 20, 51);
    assert_eq!(node.put("slow", "big", &data).status, 201);
    let port = node.base.rsplit(':').next().unwrap().to_string();
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    stream.write_all(b"GET /v1/slow/big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // The client stalls (this is the behaviour under test, not a wait for
    // a state): the socket buffers fill and the node stops making progress.
    std::thread::sleep(Duration::from_secs(2));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    assert!(received.len() < data.len(), "the node gave up on the stalled client");
    // The node itself is fine.
    assert_eq!(node.get("slow", "big").body.len(), data.len());
}

#[test]
fn every_metric_has_help_and_type_and_is_documented() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("m", "k", b"x").status, 201);
    let text =
        String::from_utf8(reply(common::http::get(&node.url("/metrics")).call()).body).unwrap();
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let mut seen = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        seen += 1;
        let help =
            text.lines().find(|l| l.starts_with(&format!("# HELP {name} "))).unwrap_or_default();
        assert!(help.len() > format!("# HELP {name} ").len(), "{name} has a # HELP line");
        let row = docs.lines().find(|l| l.starts_with(&format!("| `{name}` | {kind} |")));
        assert!(row.is_some(), "docs/metrics.md lists {name} as a {kind}");
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{name}: counters end in _total"),
            "histogram" => assert!(name.ends_with("_seconds"), "{name}: durations in seconds"),
            _ => {}
        }
        assert!(
            text.lines().any(|l| l.starts_with(name) && !l.starts_with('#')),
            "{name} has a sample"
        );
    }
    assert_eq!(seen, 16, "every series is exported");
}
