//! The MogileFS tracker protocol (docs/mogilefs.md), driven from the
//! outside by a small client written from the protocol's description:
//! one `command k=v&k=v` line per request over TCP, one `OK …` or
//! `ERR code message` line per answer.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use common::tracker::{parse_answer, store, Tracker};
use common::{bytes, reply, sha256_hex, wait_for, TestNode};

const WAIT: Duration = Duration::from_secs(20);

/// Starts a node and waits until it leads its one-node cluster (domain
/// and class changes need a leader).
fn start(args: &[&str]) -> TestNode {
    let node = TestNode::start(args);
    wait_for_leader(&node);
    node
}

fn wait_for_leader(node: &TestNode) {
    let led = wait_for(WAIT, || {
        let cluster = common::http::get(&node.url("/v1/cluster"))
            .call()
            .ok()?
            .into_json::<serde_json::Value>()
            .ok()?;
        cluster["leader"].as_str().map(|_| ())
    });
    assert!(led.is_some(), "the node became leader");
}

fn fetch(tracker: &mut Tracker, domain: &str, key: &str) -> Vec<u8> {
    let paths = tracker.ok("get_paths", &[("domain", domain), ("key", key)]);
    assert_eq!(paths["paths"], "1");
    let got = reply(common::http::get(&paths["path1"]).call());
    assert_eq!(got.status, 200);
    got.body
}

#[test]
fn store_fetch_describe_rename_and_delete_a_file() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    assert_eq!(tracker.raw(b"noop\r\n"), "OK \r\n");
    assert_eq!(tracker.ok("create_domain", &[("domain", "photos")])["domain"], "photos");
    tracker.err("create_domain", &[("domain", "photos")], "domain_exists");
    tracker.err("create_domain", &[], "no_domain");
    let domains = tracker.ok("get_domains", &[]);
    assert!(domains.values().any(|v| v == "photos"), "{domains:?}");

    // Large enough for a blob file, small enough to be kept in the record.
    for (key, len) in [("a/big file.bin", 300_000usize), ("a/small", 1000), ("a/empty", 0)] {
        let data = bytes(len, len as u64);
        let fid = store(&mut tracker, "photos", key, &data);
        assert_eq!(fetch(&mut tracker, "photos", key), data);
        let info = tracker.ok("file_info", &[("domain", "photos"), ("key", key)]);
        assert_eq!(info["fid"], fid.to_string());
        assert_eq!(info["length"], len.to_string());
        assert_eq!(info["class"], "default");
        assert_eq!(info["domain"], "photos");
        assert_eq!(info["key"], key);
        assert_eq!(info["devcount"], "1");
        assert_eq!(info["checksum"], format!("SHA-256:{}", sha256_hex(&data)));
    }

    // A new version replaces the old one, with a new fid.
    let old_fid =
        tracker.ok("file_info", &[("domain", "photos"), ("key", "a/small")])["fid"].clone();
    let newer = bytes(2000, 99);
    let new_fid = store(&mut tracker, "photos", "a/small", &newer);
    assert_ne!(old_fid, new_fid.to_string());
    assert_eq!(fetch(&mut tracker, "photos", "a/small"), newer);

    // The same key over HTTP is the same key.
    assert_eq!(node.get("photos", "a/small").body, newer);

    // list_fids walks the fids in order, from a fid on.
    let fids = tracker.ok("list_fids", &[("from", "0"), ("to", "10")]);
    assert_eq!(fids["fid_count"], "3");
    let listed: Vec<u64> =
        (1..=3).map(|n| fids[&format!("fid_{n}_fid")].parse().unwrap()).collect();
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
    assert!(listed.contains(&new_fid));
    assert!((1..=3).any(|n| fids[&format!("fid_{n}_key")] == "a/big file.bin"));
    let after = tracker.ok("list_fids", &[("from", &listed[1].to_string())]);
    assert_eq!(after["fid_count"], "1");
    assert_eq!(after["fid_1_fid"], listed[2].to_string());

    // rename keeps the fid and refuses to overwrite.
    tracker.ok("rename", &[("domain", "photos"), ("from_key", "a/small"), ("to_key", "b/small")]);
    tracker.err("get_paths", &[("domain", "photos"), ("key", "a/small")], "unknown_key");
    assert_eq!(fetch(&mut tracker, "photos", "b/small"), newer);
    let info = tracker.ok("file_info", &[("domain", "photos"), ("key", "b/small")]);
    assert_eq!(info["fid"], new_fid.to_string());
    let clash = [("domain", "photos"), ("from_key", "b/small"), ("to_key", "a/empty")];
    tracker.err("rename", &clash, "key_exists");
    let missing = [("domain", "photos"), ("from_key", "nope"), ("to_key", "x")];
    tracker.err("rename", &missing, "unknown_key");
    tracker.err("rename", &[("domain", "photos"), ("from_key", "b/small")], "no_key");

    // updateclass
    let to_default = [("domain", "photos"), ("key", "b/small"), ("class", "default")];
    tracker.ok("updateclass", &to_default);
    let unknown_class = [("domain", "photos"), ("key", "b/small"), ("class", "nope")];
    tracker.err("updateclass", &unknown_class, "class_not_found");
    let unknown_key = [("domain", "photos"), ("key", "nope"), ("class", "default")];
    tracker.err("updateclass", &unknown_key, "invalid_key");
    tracker.err("updateclass", &[("domain", "photos"), ("key", "b/small")], "no_class");

    // delete
    tracker.ok("delete", &[("domain", "photos"), ("key", "b/small")]);
    tracker.err("delete", &[("domain", "photos"), ("key", "b/small")], "unknown_key");
    tracker.err("file_info", &[("domain", "photos"), ("key", "b/small")], "unknown_key");
    assert_eq!(node.get("photos", "b/small").status, 404);

    // delete_domain refuses a domain with files, removes an empty one.
    tracker.err("delete_domain", &[("domain", "photos")], "domain_has_files");
    tracker.ok("create_domain", &[("domain", "spare")]);
    tracker.ok("delete_domain", &[("domain", "spare")]);
    tracker.err("delete_domain", &[("domain", "spare")], "domain_not_found");
    tracker.err("get_paths", &[("domain", "spare"), ("key", "x")], "unreg_domain");
}

#[test]
fn answers_are_byte_exact() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    assert_eq!(tracker.raw(b"noop\n"), "OK \r\n");
    assert_eq!(tracker.raw(b"NOOP\r\n"), "OK \r\n");
    assert_eq!(tracker.raw(b"frobnicate\r\n"), "ERR unknown_command Unknown+server+command\r\n");
    assert_eq!(
        tracker.raw(b"get_paths domain=nowhere&key=k\r\n"),
        "ERR unreg_domain Domain+name+invalid/not+found\r\n"
    );
    // Codes MogileFS has no message for carry the code as their message.
    assert_eq!(tracker.raw(b"create_domain domain=d\r\n"), "OK domain=d\r\n");
    assert_eq!(tracker.raw(b"get_paths domain=d&key=k\r\n"), "ERR unknown_key unknown_key\r\n");
    assert_eq!(tracker.raw(b"get_paths domain=d\r\n"), "ERR no_key no_key\r\n");
    assert_eq!(
        tracker.raw(b"create_open domain=d&key=k&class=x\r\n"),
        "ERR unreg_class unreg_class\r\n"
    );
    assert_eq!(
        tracker.raw(b"delete_domain domain=gone\r\n"),
        "ERR domain_not_found Domain+not+found\r\n"
    );
    let open = tracker.raw(b"create_open domain=d&key=k\r\n");
    let answer = parse_answer(&open).unwrap();
    let (fid, dev) = (&answer["fid"], &answer["devid"]);
    let port = node.http_port;
    // The path carries a token (eurl-escaped here: `?` and `=`).
    let prefix =
        format!("OK fid={fid}&devid={dev}&path=http://127.0.0.1:{port}/v1/_mogile/{fid}%3Ft%3D");
    assert!(open.starts_with(&prefix), "{open}");
    let multi = tracker.raw(b"create_open domain=d&key=k&multi_dest=1\r\n");
    let fid = parse_answer(&multi).unwrap()["fid"].clone();
    let prefix = format!(
        "OK fid={fid}&dev_count=1&devid_1={dev}&path_1=http://127.0.0.1:{port}/v1/_mogile/{fid}%3Ft%3D"
    );
    assert!(multi.starts_with(&prefix), "{multi}");
    assert_eq!(tracker.raw(b"create_domain domain=e\r\n"), "OK domain=e\r\n");
    assert_eq!(
        tracker.raw(b"create_class domain=e&class=gold&mindevcount=3\r\n"),
        "OK class=gold&mindevcount=3&domain=e\r\n"
    );
    assert_eq!(tracker.raw(b"delete_class domain=e&class=gold\r\n"), "OK domain=e&class=gold\r\n");
    // A key with characters eurl escapes comes back escaped that way.
    store(&mut tracker, "d", "x y&z", b"abc");
    assert_eq!(fetch(&mut tracker, "d", "x y&z"), b"abc");
    assert_eq!(
        tracker.raw(b"list_keys domain=d\r\n"),
        "OK key_count=1&next_after=x+y%26z&key_1=x+y%26z\r\n"
    );
}

#[test]
fn upload_errors() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    tracker.err("create_open", &[("key", "k")], "no_domain");
    tracker.err("create_open", &[("domain", "nope"), ("key", "k")], "unreg_domain");
    tracker.err("create_open", &[("domain", "d")], "no_key");
    tracker.err("create_open", &[("domain", "d"), ("key", "k"), ("class", "gold")], "unreg_class");

    let open = tracker.ok("create_open", &[("domain", "d"), ("key", "k")]);
    let (fid, path, devid) = (open["fid"].as_str(), open["path"].as_str(), open["devid"].as_str());
    let close = |size: &'static str| {
        vec![
            ("domain", "d"),
            ("key", "k"),
            ("fid", fid),
            ("devid", devid),
            ("path", path),
            ("size", size),
        ]
    };
    // Closed before any byte arrived.
    tracker.err("create_close", &close("3"), "size_verify_error");
    assert_eq!(reply(common::http::put(path).send_bytes(b"abc")).status, 201);
    tracker.err("create_close", &close("4"), "size_mismatch");
    let mut wrong_sum = close("3");
    let zeros = format!("SHA-256:{}", "0".repeat(64));
    wrong_sum.push(("checksum", &zeros));
    tracker.err("create_close", &wrong_sum, "checksum_mismatch");
    let mut bad_sum = close("3");
    bad_sum.push(("checksum", "CRC32:1234"));
    tracker.err("create_close", &bad_sum, "invalid_checksum_format");
    tracker.err("create_close", &[("domain", "d"), ("key", "k"), ("devid", devid)], "no_fid");
    let mut wrong_dev = close("3");
    wrong_dev[3] = ("devid", "7");
    tracker.err("create_close", &wrong_dev, "invalid_destdev");
    // Refusals changed nothing: the right close still works, once.
    let mut right_sum = close("3");
    let sum = format!("SHA-256:{}", sha256_hex(b"abc"));
    right_sum.push(("checksum", &sum));
    tracker.ok("create_close", &right_sum);
    tracker.err("create_close", &close("3"), "no_temp_file");
    assert_eq!(fetch(&mut tracker, "d", "k"), b"abc");
    // A PUT to a closed upload finds nothing; one to a guessed fid, or
    // with another upload's token, is refused before anything is read.
    assert_eq!(reply(common::http::put(path).send_bytes(b"x")).status, 404);
    let guessed = reply(common::http::put(&node.url("/v1/_mogile/12345")).send_bytes(b"x"));
    assert_eq!(guessed.status, 401);
    let other = tracker.ok("create_open", &[("domain", "d"), ("key", "k9")]);
    let token = path.split_once("?t=").unwrap().1;
    let swapped = node.url(&format!("/v1/_mogile/{}?t={token}", other["fid"]));
    assert_eq!(reply(common::http::put(&swapped).send_bytes(b"x")).status, 401);
    let mut md5 = close("3");
    let zeros = format!("MD5:{}", "0".repeat(32));
    md5[0] = ("domain", "d");
    md5.push(("checksum", &zeros));
    tracker.err("create_close", &md5, "unsupported_checksum");
    // An explicit fid is used as given, and refused while in use; 0 asks
    // for a new one (what MogileFS clients send).
    tracker.err("create_open", &[("domain", "d"), ("key", "k2"), ("fid", fid)], "fid_in_use");
    let chosen = tracker.ok("create_open", &[("domain", "d"), ("key", "k2"), ("fid", "424242")]);
    assert_eq!(chosen["fid"], "424242");
    tracker.err("create_open", &[("domain", "d"), ("key", "k3"), ("fid", "424242")], "fid_in_use");
    let auto = tracker.ok("create_open", &[("domain", "d"), ("key", "k3"), ("fid", "0")]);
    assert!(auto["fid"].parse::<u64>().unwrap() > 424242);
    // A size of -1 (unknown) is not checked, as in MogileFS.
    assert_eq!(reply(common::http::put(&auto["path"]).send_bytes(b"four")).status, 201);
    let unknown_size = [
        ("domain", "d"),
        ("key", "k3"),
        ("fid", auto["fid"].as_str()),
        ("devid", auto["devid"].as_str()),
        ("path", auto["path"].as_str()),
        ("size", "-1"),
    ];
    tracker.ok("create_close", &unknown_size);
    assert_eq!(fetch(&mut tracker, "d", "k3"), b"four");
}

#[test]
fn list_keys_pages_with_prefix_and_after() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    for key in ["a/1", "a/2", "a/3", "a/4", "a/5", "b/1"] {
        store(&mut tracker, "d", key, key.as_bytes());
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let mut args = vec![("domain", "d"), ("prefix", "a/"), ("limit", "2")];
        if !after.is_empty() {
            args.push(("after", after.as_str()));
        }
        match tracker.call("list_keys", &args) {
            Ok(page) => {
                let count: usize = page["key_count"].parse().unwrap();
                assert!(count <= 2);
                seen.extend((1..=count).map(|n| page[&format!("key_{n}")].clone()));
                after = page["next_after"].clone();
                assert_eq!(&after, seen.last().unwrap());
            }
            Err((code, _)) => {
                assert_eq!(code, "none_match");
                break;
            }
        }
    }
    assert_eq!(seen, ["a/1", "a/2", "a/3", "a/4", "a/5"]);
    let all = tracker.ok("list_keys", &[("domain", "d")]);
    assert_eq!(all["key_count"], "6");
    assert_eq!(all["key_6"], "b/1");
    let mismatch = [("domain", "d"), ("prefix", "a/"), ("after", "b/1")];
    tracker.err("list_keys", &mismatch, "after_mismatch");
    tracker.err("list_keys", &[("domain", "d"), ("prefix", "zzz")], "none_match");
    tracker.err("list_keys", &[], "no_domain");
}

#[test]
fn hosts_and_devices_describe_this_node_and_set_state_changes_it() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    let hosts = tracker.ok("get_hosts", &[]);
    assert_eq!(hosts["hosts"], "1");
    let hostid = hosts["host1_hostid"].clone();
    assert!(hostid.parse::<u32>().unwrap() > 0, "host ids fit 32 bits");
    assert_eq!(hosts["host1_status"], "alive");
    assert_eq!(hosts["host1_hostip"], "127.0.0.1");
    assert_eq!(hosts["host1_http_port"], node.http_port.to_string());
    assert_eq!(tracker.ok("get_hosts", &[("hostid", &hostid)])["hosts"], "1");
    let devices = tracker.ok("get_devices", &[]);
    assert_eq!(devices["devices"], "1");
    assert_eq!(devices["dev1_devid"], hostid);
    assert_eq!(devices["dev1_hostid"], hostid);
    assert_eq!(devices["dev1_status"], "alive");
    assert_eq!(devices["dev1_observed_state"], "writeable");
    let number = |name: &str| devices[name].parse::<u64>().expect(name);
    assert!(number("dev1_mb_total") > 0);
    assert_eq!(number("dev1_mb_used") + number("dev1_mb_free"), number("dev1_mb_total"));
    assert_eq!(tracker.ok("get_devices", &[("devid", "2")])["devices"], "0");
    let open = tracker.call("create_open", &[("domain", "nope"), ("key", "k")]);
    assert_eq!(open.unwrap_err().0, "unreg_domain");

    // A read-only device takes no new files.
    let hostname = hosts["host1_hostname"].clone();
    let readonly =
        [("host", hostname.as_str()), ("device", hostid.as_str()), ("state", "readonly")];
    tracker.ok("set_state", &readonly);
    assert_eq!(tracker.ok("get_devices", &[])["dev1_status"], "readonly");
    tracker.ok("create_domain", &[("domain", "d")]);
    tracker.err("create_open", &[("domain", "d"), ("key", "k")], "no_devices");
    let alive = [("host", hostname.as_str()), ("device", hostid.as_str()), ("state", "alive")];
    tracker.ok("set_state", &alive);
    tracker.ok("create_open", &[("domain", "d"), ("key", "k")]);
    let unknown = [("host", hostname.as_str()), ("device", hostid.as_str()), ("state", "sleepy")];
    tracker.err("set_state", &unknown, "bad_params");
    let elsewhere = [("host", "other"), ("device", hostid.as_str()), ("state", "alive")];
    tracker.err("set_state", &elsewhere, "host_mismatch");
    let no_device = [("host", hostname.as_str()), ("device", "3"), ("state", "alive")];
    tracker.err("set_state", &no_device, "no_device");
}

#[test]
fn domains_and_classes() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    tracker.err("create_domain", &[("domain", "Bad Name")], "bad_params");
    let gold = [("domain", "d"), ("class", "gold"), ("mindevcount", "3")];
    let answer = tracker.ok("create_class", &gold);
    assert_eq!((answer["class"].as_str(), answer["mindevcount"].as_str()), ("gold", "3"));
    tracker.err("create_class", &gold, "class_exists");
    tracker.err(
        "create_class",
        &[("domain", "d"), ("class", "x"), ("mindevcount", "0")],
        "invalid_mindevcount",
    );
    tracker.err("create_class", &[("domain", "d"), ("mindevcount", "1")], "no_class");
    tracker.err("create_class", &[("class", "x"), ("mindevcount", "1")], "no_domain");
    tracker.err(
        "create_class",
        &[("domain", "nope"), ("class", "x"), ("mindevcount", "1")],
        "domain_not_found",
    );
    tracker.err(
        "update_class",
        &[("domain", "d"), ("class", "silver"), ("mindevcount", "1")],
        "class_not_found",
    );
    tracker.ok("update_class", &[("domain", "d"), ("class", "gold"), ("mindevcount", "1")]);

    let domains = tracker.ok("get_domains", &[]);
    assert_eq!(domains["domains"], "1");
    assert_eq!(domains["domain1"], "d");
    let classes: usize = domains["domain1classes"].parse().unwrap();
    let listed: HashMap<String, String> = (1..=classes)
        .map(|n| {
            let name = domains[&format!("domain1class{n}name")].clone();
            (name, domains[&format!("domain1class{n}mindevcount")].clone())
        })
        .collect();
    assert_eq!(listed.get("gold").map(String::as_str), Some("1"));
    assert_eq!(listed.get("default").map(String::as_str), Some("2"));

    // A file of the class, and a class change of a file.
    let open = tracker.ok("create_open", &[("domain", "d"), ("key", "k"), ("class", "gold")]);
    assert_eq!(reply(common::http::put(&open["path"]).send_bytes(b"gold")).status, 201);
    let close = [
        ("domain", "d"),
        ("key", "k"),
        ("fid", open["fid"].as_str()),
        ("devid", open["devid"].as_str()),
        ("path", open["path"].as_str()),
    ];
    tracker.ok("create_close", &close);
    assert_eq!(tracker.ok("file_info", &[("domain", "d"), ("key", "k")])["class"], "gold");
    // One copy wanted, one held: the key is stored, not waiting for replication.
    let stat = reply(common::http::get(&node.url("/v1/d/k?stat")).call()).json();
    assert_eq!(stat["state"], "stored");
    tracker.err("delete_class", &[("domain", "d"), ("class", "gold")], "class_has_files");
    tracker.err("delete_class", &[("domain", "d"), ("class", "default")], "nodel_default_class");
    tracker.err("delete_class", &[("domain", "d"), ("class", "tin")], "class_not_found");
    tracker.err("delete_domain", &[("domain", "d")], "domain_not_empty");
    tracker.ok("updateclass", &[("domain", "d"), ("key", "k"), ("class", "default")]);
    assert_eq!(tracker.ok("file_info", &[("domain", "d"), ("key", "k")])["class"], "default");
    tracker.ok("delete_class", &[("domain", "d"), ("class", "gold")]);
    tracker.err("create_open", &[("domain", "d"), ("key", "k"), ("class", "gold")], "unreg_class");
    tracker.err("delete_domain", &[("domain", "d")], "domain_has_files");
    tracker.ok("delete", &[("domain", "d"), ("key", "k")]);
    tracker.ok("delete_domain", &[("domain", "d")]);
    tracker.err("create_open", &[("domain", "d"), ("key", "k")], "unreg_domain");
}

#[test]
fn malformed_lines_get_errors_and_the_connection_goes_on() {
    let node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    let code = |line: String| parse_answer(&line).map(|_| "OK".to_string()).unwrap_or_else(|e| e.0);

    assert_eq!(code(tracker.raw(b"get_paths domain=d&key=a%2\r\n")), "bad_params");
    assert_eq!(code(tracker.raw(b"get_paths domain=d&key=%zz\r\n")), "bad_params");
    assert_eq!(code(tracker.raw(b"get_paths domain=d&key=%ff%fe\r\n")), "bad_params");
    assert_eq!(code(tracker.raw(b"get_paths domain=d\r\n")), "no_key");
    assert_eq!(code(tracker.raw(b"get_paths key=k\r\n")), "no_domain");
    assert_eq!(code(tracker.raw(b"&&&\r\n")), "unknown_command");
    assert_eq!(code(tracker.raw(b"no_such_thing a=b\r\n")), "unknown_command");

    // Over 64 KiB: one ERR, the rest of the line is skipped, even when it
    // arrives in pieces.
    let mut long = b"get_paths domain=d&key=".to_vec();
    long.extend(std::iter::repeat_n(b'k', 100 * 1024));
    tracker.stream.write_all(&long[..50_000]).unwrap();
    tracker.stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    tracker.stream.write_all(&long[50_000..]).unwrap();
    assert_eq!(code(tracker.raw(b"\r\n")), "line_too_long");
    assert_eq!(tracker.raw(b"noop\r\n"), "OK \r\n");

    // Blank lines are ignored; pipelined requests are answered in order.
    tracker.stream.write_all(b"\r\n\nnoop\r\nfrob\r\nlist_keys domain=d\r\n").unwrap();
    assert_eq!(tracker.read_line(), "OK \r\n");
    assert_eq!(code(tracker.read_line()), "unknown_command");
    assert_eq!(code(tracker.read_line()), "none_match");

    // A key just under the limit is an ordinary (unknown) key.
    let mut near = b"get_paths domain=d&key=".to_vec();
    near.extend(std::iter::repeat_n(b'k', 1000));
    near.extend_from_slice(b"\r\n");
    assert_eq!(code(tracker.raw(&near)), "unknown_key");
    assert_eq!(tracker.raw(b"noop\n"), "OK \r\n");
}

#[test]
fn unclosed_upload_expires_and_leaves_nothing() {
    let node = start(&["--mogile-upload-ttl", "1s"]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    let data = bytes(200_000, 7);
    let open = tracker.ok("create_open", &[("domain", "d"), ("key", "k")]);
    assert_eq!(reply(common::http::put(&open["path"]).send_bytes(&data)).status, 201);
    let blob = node.fid_path(&sha256_hex(&data));
    assert!(blob.exists(), "the bytes are stored while the upload is open");
    let gone = wait_for(WAIT, || (!blob.exists()).then_some(()));
    assert!(gone.is_some(), "the expired upload's blob is collected");
    let size = data.len().to_string();
    let close = [
        ("domain", "d"),
        ("key", "k"),
        ("fid", open["fid"].as_str()),
        ("devid", open["devid"].as_str()),
        ("path", open["path"].as_str()),
        ("size", size.as_str()),
    ];
    tracker.err("create_close", &close, "no_temp_file");
    tracker.err("get_paths", &[("domain", "d"), ("key", "k")], "unknown_key");
    assert_eq!(node.tmp_entries(), 0);
}

#[test]
fn open_uploads_survive_a_restart() {
    let mut node = start(&[]);
    let mut tracker = Tracker::connect(&node);
    tracker.ok("create_domain", &[("domain", "d")]);
    let data = bytes(150_000, 3);
    let open = tracker.ok("create_open", &[("domain", "d"), ("key", "k")]);
    assert_eq!(reply(common::http::put(&open["path"]).send_bytes(&data)).status, 201);
    node.restart();
    wait_for_leader(&node);
    let mut tracker = Tracker::connect(&node);
    let size = data.len().to_string();
    let close = [
        ("domain", "d"),
        ("key", "k"),
        ("fid", open["fid"].as_str()),
        ("devid", open["devid"].as_str()),
        ("path", open["path"].as_str()),
        ("size", size.as_str()),
    ];
    tracker.ok("create_close", &close);
    assert_eq!(fetch(&mut tracker, "d", "k"), data);
}

#[test]
fn domains_classes_and_hosts_are_cluster_wide() {
    // A cluster asks HTTP clients for keys: the tracker port takes admin
    // commands only where the operator says so.
    let first = start(&["--shards", "1", "--mogile-admin"]);
    let (seed, token) = (first.peer_address(), first.join_token_file());
    let joining = ["--shards", "1", "--mogile-admin", "--join", &seed, "--join-token-file", &token];
    let second = TestNode::start(&joining);
    let mut on_first = Tracker::connect(&first);
    let mut on_second = Tracker::connect(&second);
    let joined = wait_for(Duration::from_secs(40), || {
        let hosts = on_second.ok("get_hosts", &[]);
        (hosts["hosts"] == "2").then_some(hosts)
    });
    let hosts = joined.expect("the second node joined");
    // Admin changes from a follower go to the leader (once one is known).
    let created = wait_for(Duration::from_secs(40), || {
        match on_second.call("create_domain", &[("domain", "shared")]) {
            Ok(_) => Some(()),
            Err((code, _)) if code == "domain_exists" => Some(()),
            Err(_) => None,
        }
    });
    assert!(created.is_some(), "the second node can change the cluster state");
    assert_ne!(hosts["host1_hostid"], hosts["host2_hostid"]);
    let ports = [hosts["host1_http_port"].as_str(), hosts["host2_http_port"].as_str()];
    assert!(ports.contains(&first.http_port.to_string().as_str()), "{hosts:?}");
    assert!(ports.contains(&second.http_port.to_string().as_str()), "{hosts:?}");

    // A change made on one node is seen on the other.
    let seen = |tracker: &mut Tracker, name: &str| {
        wait_for(WAIT, || {
            let domains = tracker.ok("get_domains", &[]);
            domains.values().any(|v| v == name).then_some(domains)
        })
    };
    let domains = seen(&mut on_first, "shared").expect("the domain reached the first node");
    assert_eq!(domains["domains"], "1");
    on_first.ok("create_class", &[("domain", "shared"), ("class", "gold"), ("mindevcount", "2")]);
    assert!(seen(&mut on_second, "gold").is_some(), "the class reached the second node");
    on_second.err("create_domain", &[("domain", "shared")], "domain_exists");

    // Each node stores what it is given.
    let fid = store(&mut on_second, "shared", "k", b"on the second node");
    let info = on_second.ok("file_info", &[("domain", "shared"), ("key", "k")]);
    assert_eq!(info["fid"], fid.to_string());
    assert_eq!(fetch(&mut on_second, "shared", "k"), b"on the second node");
    let devices = on_first.ok("get_devices", &[]);
    assert_eq!(devices["devices"], "2");
}

#[test]
fn every_node_of_a_cluster_serves_the_flow_and_lists_every_holder() {
    let cluster = common::cluster::Cluster::start(3, &["--mogile-admin"]);
    let mut trackers: Vec<Tracker> = cluster.nodes.iter().map(Tracker::connect).collect();
    wait_for(Duration::from_secs(40), || {
        match trackers[0].call("create_domain", &[("domain", "everywhere")]) {
            Ok(_) => Some(()),
            Err((code, _)) if code == "domain_exists" => Some(()),
            Err(_) => None,
        }
    })
    .expect("domain created");
    // The domain reaches the other nodes' state a moment later.
    wait_for(WAIT, || {
        trackers[1]
            .call(
                "create_class",
                &[("domain", "everywhere"), ("class", "all"), ("mindevcount", "3")],
            )
            .ok()
    })
    .expect("class created");
    for tracker in &mut trackers {
        wait_for(WAIT, || {
            let classes = tracker.ok("get_domains", &[]);
            classes.values().any(|v| v == "all").then_some(())
        })
        .expect("class seen by every node");
    }
    let data = bytes(500_000, 77);
    let open =
        trackers[2].ok("create_open", &[("domain", "everywhere"), ("key", "f"), ("class", "all")]);
    let put = reply(common::http::put(&open["path"]).send_bytes(&data));
    assert_eq!(put.status, 201);
    let size = data.len().to_string();
    trackers[2].ok(
        "create_close",
        &[
            ("domain", "everywhere"),
            ("key", "f"),
            ("fid", &open["fid"]),
            ("devid", &open["devid"]),
            ("path", &open["path"]),
            ("size", &size),
        ],
    );
    // Every node answers get_paths with the three holders, each serving the bytes.
    for tracker in &mut trackers {
        let paths = wait_for(Duration::from_secs(40), || {
            let paths = tracker
                .call("get_paths", &[("domain", "everywhere"), ("key", "f"), ("pathcount", "3")])
                .ok()?;
            (paths["paths"] == "3").then_some(paths)
        })
        .expect("three paths");
        let mut hosts = std::collections::HashSet::new();
        for i in 1..=3 {
            let url = &paths[&format!("path{i}")];
            hosts.insert(url.split('/').nth(2).unwrap().to_owned());
            let got = reply(common::http::get(url).call());
            assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
        }
        assert_eq!(hosts.len(), 3, "three distinct nodes: {paths:?}");
    }
    // A delete at one node reaches them all.
    trackers[0].ok("delete", &[("domain", "everywhere"), ("key", "f")]);
    for tracker in &mut trackers {
        wait_for(Duration::from_secs(40), || {
            matches!(tracker.call("get_paths", &[("domain", "everywhere"), ("key", "f")]), Err((code, _)) if code == "unknown_key")
                .then_some(())
        })
        .expect("deleted everywhere");
    }
}

/// Creates `domain` with classes `one` (1 copy) and `three` (3 copies) and
/// waits until every node knows them.
fn domain_with_classes(trackers: &mut [Tracker], domain: &str) {
    wait_for(Duration::from_secs(40), || {
        match trackers[0].call("create_domain", &[("domain", domain)]) {
            Ok(_) => Some(()),
            Err((code, _)) if code == "domain_exists" => Some(()),
            Err(_) => None,
        }
    })
    .expect("domain created");
    for (class, count) in [("one", "1"), ("three", "3")] {
        let args = [("domain", domain), ("class", class), ("mindevcount", count)];
        wait_for(WAIT, || trackers[1].call("create_class", &args).ok()).expect("class created");
    }
    for tracker in trackers.iter_mut() {
        wait_for(WAIT, || {
            let classes = tracker.ok("get_domains", &[]);
            (classes.values().filter(|v| *v == "one" || *v == "three").count() == 2).then_some(())
        })
        .expect("classes seen by every node");
    }
}

#[test]
fn rename_and_updateclass_reach_every_node() {
    let cluster = common::cluster::Cluster::start(3, &["--mogile-admin"]);
    let mut trackers: Vec<Tracker> = cluster.nodes.iter().map(Tracker::connect).collect();
    domain_with_classes(&mut trackers, "moves");
    let data = bytes(300_000, 5);
    let open =
        trackers[0].ok("create_open", &[("domain", "moves"), ("key", "f"), ("class", "one")]);
    assert_eq!(reply(common::http::put(&open["path"]).send_bytes(&data)).status, 201);
    let size = data.len().to_string();
    let close = [
        ("domain", "moves"),
        ("key", "f"),
        ("fid", open["fid"].as_str()),
        ("devid", open["devid"].as_str()),
        ("path", open["path"].as_str()),
        ("size", size.as_str()),
    ];
    trackers[0].ok("create_close", &close);
    trackers[0].ok("rename", &[("domain", "moves"), ("from_key", "f"), ("to_key", "g")]);
    // Every node finds the new name, and none the old one.
    for tracker in &mut trackers {
        let paths = wait_for(Duration::from_secs(40), || {
            tracker.call("get_paths", &[("domain", "moves"), ("key", "g")]).ok()
        })
        .expect("the renamed key is found at every node");
        assert_eq!(
            sha256_hex(&reply(common::http::get(&paths["path1"]).call()).body),
            sha256_hex(&data)
        );
        wait_for(Duration::from_secs(40), || {
            matches!(tracker.call("get_paths", &[("domain", "moves"), ("key", "f")]), Err((code, _)) if code == "unknown_key")
                .then_some(())
        })
        .expect("the old name is gone at every node");
    }
    // A class of three copies gets them.
    trackers[0].ok("updateclass", &[("domain", "moves"), ("key", "g"), ("class", "three")]);
    let args = [("domain", "moves"), ("key", "g"), ("pathcount", "3")];
    let paths = wait_for(Duration::from_secs(60), || {
        let paths = trackers[1].call("get_paths", &args).ok()?;
        (paths["paths"] == "3").then_some(paths)
    })
    .expect("updateclass to three copies makes three");
    for i in 1..=3 {
        let got = reply(common::http::get(&paths[&format!("path{i}")]).call());
        assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
    }
}

#[test]
fn list_keys_at_every_node_lists_the_cluster_keys() {
    let cluster = common::cluster::Cluster::start(3, &["--mogile-admin"]);
    let mut trackers: Vec<Tracker> = cluster.nodes.iter().map(Tracker::connect).collect();
    // Keys of the default class (two copies): each node holds only some.
    let keys: Vec<String> = (0..12).map(|i| format!("k{i:02}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let node = &cluster.nodes[i % 3];
        assert_eq!(node.put("listed", key, &bytes(70_000, i as u64)).status, 201);
    }
    for tracker in &mut trackers {
        // The domain, made by the first PUT, reaches every node through raft.
        wait_for(Duration::from_secs(40), || {
            tracker.call("list_keys", &[("domain", "listed"), ("limit", "1")]).ok()
        })
        .expect("the domain is known at every node");
        let mut listed = Vec::new();
        let mut after = String::new();
        loop {
            let mut args = vec![("domain", "listed"), ("limit", "5")];
            if !after.is_empty() {
                args.push(("after", after.as_str()));
            }
            let page = match tracker.call("list_keys", &args) {
                Ok(page) => page,
                Err((code, _)) if code == "none_match" => break,
                Err(other) => panic!("list_keys: {other:?}"),
            };
            let count: usize = page["key_count"].parse().unwrap();
            listed.extend((1..=count).map(|i| page[&format!("key_{i}")].clone()));
            after = page["next_after"].clone();
        }
        assert_eq!(listed, keys, "every key, in order, once");
    }
}

#[test]
fn file_info_rename_and_updateclass_work_at_a_node_without_a_copy() {
    let cluster = common::cluster::Cluster::start(3, &["--mogile-admin"]);
    let mut trackers: Vec<Tracker> = cluster.nodes.iter().map(Tracker::connect).collect();
    domain_with_classes(&mut trackers, "far");
    let data = bytes(200_000, 8);
    // One copy, at node 0 only.
    let url = format!("{}?class=one", cluster.nodes[0].key_url("far", "f"));
    assert_eq!(reply(common::http::put(&url).send_bytes(&data)).status, 201);
    let far = &mut trackers[1];
    let info = far.ok("file_info", &[("domain", "far"), ("key", "f"), ("devices", "1")]);
    assert_eq!(info["length"], data.len().to_string());
    assert_eq!(info["class"], "one");
    assert_eq!(info["devcount"], "1");
    far.ok("rename", &[("domain", "far"), ("from_key", "f"), ("to_key", "g")]);
    far.ok("updateclass", &[("domain", "far"), ("key", "g"), ("class", "three")]);
    for tracker in &mut trackers {
        let args = [("domain", "far"), ("key", "g"), ("pathcount", "3")];
        let paths = wait_for(Duration::from_secs(60), || {
            let paths = tracker.call("get_paths", &args).ok()?;
            (paths["paths"] == "3").then_some(paths)
        })
        .expect("the renamed key reaches three copies, seen at every node");
        for i in 1..=3 {
            let got = reply(common::http::get(&paths[&format!("path{i}")]).call());
            assert_eq!(sha256_hex(&got.body), sha256_hex(&data));
        }
        let old = tracker.call("file_info", &[("domain", "far"), ("key", "f")]);
        assert!(matches!(&old, Err((code, _)) if code == "unknown_key"), "{old:?}");
    }
}

#[test]
fn a_domain_or_class_with_files_on_other_nodes_is_not_deleted() {
    let cluster = common::cluster::Cluster::start(3, &["--mogile-admin"]);
    let mut trackers: Vec<Tracker> = cluster.nodes.iter().map(Tracker::connect).collect();
    domain_with_classes(&mut trackers, "kept");
    // One copy of class `one`, at node 0 only.
    let url = format!("{}?class=one", cluster.nodes[0].key_url("kept", "f"));
    assert_eq!(reply(common::http::put(&url).send_bytes(b"bytes")).status, 201);
    // One key of a domain without classes, on two of the three nodes.
    assert_eq!(cluster.nodes[0].put("bare", "f", b"bytes").status, 201);
    for tracker in &mut trackers {
        wait_for(WAIT, || {
            let domains = tracker.ok("get_domains", &[]);
            domains.values().any(|v| v == "bare").then_some(())
        })
        .expect("the domain is known everywhere");
        tracker.err("delete_class", &[("domain", "kept"), ("class", "one")], "class_has_files");
        tracker.err("delete_domain", &[("domain", "bare")], "domain_has_files");
    }
}

#[test]
fn where_http_asks_for_keys_the_tracker_takes_no_admin_commands_and_serves_only_its_domains() {
    use common::cluster::{post, Cluster};
    use serde_json::json;
    let mut cluster = Cluster::start(2, &["--mogile-domains", "open"]);
    let seed = &cluster.nodes[0];
    for name in ["open", "hidden"] {
        assert_eq!(post(seed, "/v1/admin/domains", json!({ "name": name })).status, 201);
    }
    let mut tracker = Tracker::connect(seed);
    // The protocol cannot authenticate: its admin commands are refused.
    for (command, args) in [
        ("create_domain", vec![("domain", "x")]),
        ("delete_domain", vec![("domain", "open")]),
        ("create_class", vec![("domain", "open"), ("class", "c"), ("mindevcount", "1")]),
        ("update_class", vec![("domain", "open"), ("class", "default"), ("mindevcount", "1")]),
        ("delete_class", vec![("domain", "open"), ("class", "default")]),
        ("set_state", vec![("host", "1"), ("device", "1"), ("state", "dead")]),
    ] {
        tracker.err(command, &args, "no_permission");
    }
    let report = common::cluster::cluster_report(seed).unwrap();
    assert!(report["members"].as_array().unwrap().iter().all(|m| m["state"] == "alive"));
    // Only the domains it was given are served there.
    let domains = tracker.ok("get_domains", &[]);
    assert_eq!((domains["domains"].as_str(), domains["domain1"].as_str()), ("1", "open"));
    tracker.err("create_open", &[("domain", "hidden"), ("key", "k")], "unreg_domain");
    tracker.err("get_paths", &[("domain", "hidden"), ("key", "k")], "unreg_domain");
    store(&mut tracker, "open", "k", b"through the tracker");
    let paths = tracker.ok("get_paths", &[("domain", "open"), ("key", "k")]);
    // No credentials: the path is signed for this key.
    assert_eq!(reply(ureq::get(&paths["path1"]).call()).body, b"through the tracker");
    // An operator who wants them there says so.
    let admin_node = cluster.add(&["--mogile-admin"]);
    let mut admin = Tracker::connect(admin_node);
    admin.ok("create_class", &[("domain", "open"), ("class", "c"), ("mindevcount", "1")]);
}
