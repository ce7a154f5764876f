//! WebDAV (`/dav/`) against a real node: the mapping onto `/v1/` keys,
//! collections, COPY/MOVE without byte copies, properties, locks, hostile
//! input; then the litmus suite and an rclone round trip, when those
//! programs are installed (`scripts/setup` installs them).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{bytes, installed, reply, run_bounded, sha256_hex, wait_for, Reply, TestNode};

const WAIT: Duration = Duration::from_secs(20);
/// The node's default `--inline-max`: larger blobs get a file.
const INLINE_MAX_BYTES: usize = 64 * 1024;

fn dav_url(node: &TestNode, path: &str) -> String {
    node.url(&format!("/dav/{path}"))
}

/// A request with any method, through ureq (which normalises dot segments:
/// use [`raw`] for hostile paths).
fn send(node: &TestNode, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    node.dav(method, path, headers, body)
}

fn propfind(node: &TestNode, path: &str, depth: &str) -> Reply {
    send(node, "PROPFIND", path, &[("Depth", depth)], b"")
}

fn text(reply: &Reply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// One request written by hand on a socket, so the path reaches the node
/// exactly as written; answers the status and the body.
fn raw(node: &TestNode, method: &str, path: &str, extra: &str, body: &[u8]) -> (u16, String) {
    let address = node.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).expect("a status line");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Reads a whole XML answer with quick-xml; panics unless it is well-formed.
fn assert_well_formed(xml: &str) {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(error) => panic!("not well-formed XML ({error}): {xml}"),
        }
    }
    assert_eq!(depth, 0, "unbalanced XML: {xml}");
}

fn keys_of(node: &TestNode, domain: &str) -> Vec<String> {
    let listing = reply(common::http::get(&node.url(&format!("/v1/{domain}"))).call());
    if listing.status == 404 {
        return Vec::new();
    }
    listing.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn v1_and_dav_name_the_same_keys() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("d", "a/b.txt", b"from v1").status, 201);
    let get = reply(common::http::get(&dav_url(&node, "d/a/b.txt")).call());
    assert_eq!(get.status, 200);
    assert_eq!(get.body, b"from v1");

    let put = send(&node, "PUT", "d/a/c%20d.txt", &[], b"from dav");
    assert_eq!(put.status, 201, "{}", text(&put));
    assert_eq!(node.get("d", "a/c%20d.txt").body, b"from dav");
    assert_eq!(send(&node, "PUT", "d/a/c%20d.txt", &[], b"again").status, 204);

    let listing = propfind(&node, "d/", "1");
    assert_eq!(listing.status, 207);
    let body = text(&listing);
    assert!(body.contains("<D:href>/dav/d/a/</D:href>"), "{body}");
    assert!(body.contains("<D:collection/>"), "{body}");
    let inner = text(&propfind(&node, "d/a", "1"));
    let etag = format!("\"{}\"", sha256_hex(b"from v1"));
    assert!(inner.contains(&format!("<D:getetag>{}</D:getetag>", etag.replace('"', "&quot;"))));
    assert!(inner.contains("<D:href>/dav/d/a/c%20d.txt</D:href>"), "{inner}");
    assert!(inner.contains("<D:getcontentlength>7</D:getcontentlength>"), "{inner}");

    for depth in ["infinity", ""] {
        let refused = if depth.is_empty() {
            send(&node, "PROPFIND", "d/", &[], b"")
        } else {
            propfind(&node, "d/", depth)
        };
        assert_eq!(refused.status, 403, "depth {depth:?}");
        assert!(text(&refused).contains("<D:propfind-finite-depth/>"));
    }
    let options = send(&node, "OPTIONS", "d/", &[], b"");
    assert_eq!(options.header("dav"), Some("1, 2"));
    let root_options = reply(common::http::request("OPTIONS", &node.url("/")).call());
    assert_eq!(root_options.header("dav"), Some("1, 2"));

    // `/dav/` lists the domains.
    assert_eq!(node.put("e", "k", b"x").status, 201);
    let domains = text(&send(&node, "PROPFIND", "", &[("Depth", "1")], b""));
    assert_well_formed(&domains);
    for href in ["/dav/", "/dav/d/", "/dav/e/"] {
        assert!(domains.contains(&format!("<D:href>{href}</D:href>")), "{domains}");
    }
    assert!(domains.contains("<D:displayname>e</D:displayname>"), "{domains}");
    assert_eq!(propfind(&node, "d/nothing", "0").status, 404);
}

#[test]
fn collections_exist_empty_and_delete_as_trees() {
    let node = TestNode::start(&[]);
    assert_eq!(send(&node, "MKCOL", "d/empty", &[], b"").status, 201);
    assert_eq!(send(&node, "MKCOL", "d/empty", &[], b"").status, 405);
    assert_eq!(send(&node, "MKCOL", "d/empty/inner/", &[], b"").status, 201);
    assert_eq!(send(&node, "MKCOL", "d/no/parent", &[], b"").status, 409);
    assert_eq!(send(&node, "MKCOL", "d/body", &[], b"<x/>").status, 415);
    assert_eq!(send(&node, "PUT", "d/no/parent.txt", &[], b"x").status, 409);
    let made = text(&propfind(&node, "d/empty", "1"));
    assert!(made.contains("<D:href>/dav/d/empty/inner/</D:href>"), "{made}");
    assert!(keys_of(&node, "d").is_empty(), "an empty collection is no key");

    // More members than one page of a listing and one batch of a delete.
    let member_count = 300;
    for i in 0..member_count {
        assert_eq!(node.put("d", &format!("tree/f{i:03}"), &bytes(10, i)).status, 201);
    }
    assert_eq!(node.put("d", "tree/sub/deep/x", b"x").status, 201);
    assert_eq!(node.put("d", "treex", b"neighbour").status, 201);
    let listing = text(&propfind(&node, "d/tree/", "1"));
    assert_well_formed(&listing);
    // Itself, its files and one sub-collection.
    assert_eq!(listing.matches("<D:response>").count(), member_count as usize + 2);
    assert_eq!(listing.matches("<D:href>/dav/d/tree/sub/</D:href>").count(), 1);

    let deleted = send(&node, "DELETE", "d/tree/", &[], b"");
    assert_eq!(deleted.status, 204, "{}", text(&deleted));
    assert_eq!(keys_of(&node, "d"), ["treex"]);
    assert_eq!(propfind(&node, "d/tree", "0").status, 404);
    assert_eq!(send(&node, "DELETE", "d/empty", &[], b"").status, 204);
    assert_eq!(propfind(&node, "d/empty/inner/", "0").status, 404);
}

#[test]
fn copy_refers_to_the_same_blob_and_outlives_its_source() {
    let node = TestNode::start(&[]);
    let data = bytes(3 * INLINE_MAX_BYTES, 7);
    let sha = sha256_hex(&data);
    assert_eq!(node.put("d", "src", &data).status, 201);
    let destination = dav_url(&node, "other/copy");
    let copied = send(&node, "COPY", "d/src", &[("Destination", &destination)], b"");
    assert_eq!(copied.status, 201, "{}", text(&copied));
    let stat =
        reply(common::http::get(&format!("{}?stat", node.key_url("other", "copy"))).call()).json();
    assert_eq!(stat["sha256"], sha);
    assert_eq!(stat["size"], data.len());

    // The source goes; the copy's reference keeps the one blob file.
    assert_eq!(reply(common::http::delete(&node.key_url("d", "src")).call()).status, 204);
    assert!(collector_idle(&node));
    assert!(node.fid_path(&sha).exists(), "the copy still refers to the blob");
    assert_eq!(node.get("other", "copy").body, data);

    // Overwrite F on an existing destination changes nothing.
    assert_eq!(node.put("d", "other", b"other bytes").status, 201);
    let kept =
        send(&node, "COPY", "d/other", &[("Destination", &destination), ("Overwrite", "F")], b"");
    assert_eq!(kept.status, 412);
    assert_eq!(node.get("other", "copy").body, data);

    // MOVE: the destination gets the key, the source is gone.
    let moved =
        send(&node, "MOVE", "other/copy", &[("Destination", &dav_url(&node, "d/moved"))], b"");
    assert_eq!(moved.status, 201);
    assert_eq!(node.get("other", "copy").status, 404);
    assert_eq!(node.get("d", "moved").body, data);

    // The last reference goes: so does the file.
    assert_eq!(reply(common::http::delete(&node.key_url("d", "moved")).call()).status, 204);
    let removed = wait_for(WAIT, || (!node.fid_path(&sha).exists()).then_some(()));
    assert!(removed.is_some(), "a blob nobody refers to is collected");
}

#[test]
fn collections_copy_and_move_with_their_members() {
    let node = TestNode::start(&[]);
    assert_eq!(send(&node, "MKCOL", "d/c", &[], b"").status, 201);
    assert_eq!(send(&node, "MKCOL", "d/c/empty", &[], b"").status, 201);
    assert_eq!(node.put("d", "c/f", b"f").status, 201);
    assert_eq!(node.put("d", "c/s/g", b"g").status, 201);
    let copied = send(&node, "COPY", "d/c/", &[("Destination", &dav_url(&node, "e/c2/"))], b"");
    assert_eq!(copied.status, 201, "{}", text(&copied));
    assert_eq!(keys_of(&node, "e"), ["c2/f", "c2/s/g"]);
    assert_eq!(propfind(&node, "e/c2/empty/", "0").status, 207);
    let into_itself =
        send(&node, "COPY", "d/c/", &[("Destination", &dav_url(&node, "d/c/x/"))], b"");
    assert_eq!(into_itself.status, 403);
    let moved = send(&node, "MOVE", "d/c", &[("Destination", &dav_url(&node, "d/m"))], b"");
    assert_eq!(moved.status, 201, "{}", text(&moved));
    assert_eq!(keys_of(&node, "d"), ["m/f", "m/s/g"]);
    assert_eq!(propfind(&node, "d/c", "0").status, 404);
    assert_eq!(propfind(&node, "d/m/empty", "0").status, 207);
}

#[test]
fn dead_properties_follow_copies_and_die_with_their_key() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("d", "k", b"bytes").status, 201);
    let set = br#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z">
        <D:set><D:prop><Z:colour>blue &amp; green</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    let patched = send(&node, "PROPPATCH", "d/k", &[], set);
    assert_eq!(patched.status, 207);
    assert!(text(&patched).contains("HTTP/1.1 200 OK"));
    let ask =
        br#"<D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:z"/></D:prop></D:propfind>"#;
    let found = text(&send(&node, "PROPFIND", "d/k", &[("Depth", "0")], ask));
    assert_well_formed(&found);
    assert!(found.contains(">blue &amp; green</P:colour>"), "{found}");

    let copied = send(&node, "COPY", "d/k", &[("Destination", &dav_url(&node, "d/k2"))], b"");
    assert_eq!(copied.status, 201);
    assert!(text(&send(&node, "PROPFIND", "d/k2", &[("Depth", "0")], ask)).contains("blue"));

    // A PUT keeps them; a DELETE (through /v1/ too) drops them.
    assert_eq!(node.put("d", "k", b"new bytes").status, 201);
    assert!(text(&send(&node, "PROPFIND", "d/k", &[("Depth", "0")], ask)).contains("blue"));
    assert_eq!(reply(common::http::delete(&node.key_url("d", "k")).call()).status, 204);
    assert_eq!(node.put("d", "k", b"reborn").status, 201);
    let gone = text(&send(&node, "PROPFIND", "d/k", &[("Depth", "0")], ask));
    assert!(gone.contains("404 Not Found") && !gone.contains("blue"), "{gone}");

    // Live properties are protected: the whole PROPPATCH fails.
    let protected = br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>
        <D:getetag>x</D:getetag><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set></D:propertyupdate>"#;
    let refused = text(&send(&node, "PROPPATCH", "d/k", &[], protected));
    assert!(refused.contains("403 Forbidden") && refused.contains("424 Failed Dependency"));
    let none = text(&send(&node, "PROPFIND", "d/k", &[("Depth", "0")], b""));
    assert!(!none.contains("urn:z"), "{none}");
}

#[test]
fn hostile_paths_never_escape_the_domain() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("victim", "secret", b"secret").status, 201);
    for path in [
        "/dav/d/../victim/secret",
        "/dav/d/%2e%2e/victim/secret",
        "/dav/d/%2E%2E/%2E%2E/victim/secret",
        "/dav/d/..%2fvictim%2fsecret",
        "/dav/d/a%2F..%2F..%2Fvictim",
        "/dav/d/./x",
        "/dav/d/a%00b",
        "/dav/d//victim/secret",
        "/dav/../v1/victim/secret",
        "/dav/%2e%2e/victim/secret",
    ] {
        for method in ["PUT", "DELETE", "MKCOL", "GET"] {
            let (status, body) = raw(&node, method, path, "", b"overwritten");
            assert_eq!(status, 400, "{method} {path}: {body}");
        }
    }
    // Backslashes are ordinary characters of a name in its own domain.
    let (status, _) = raw(&node, "PUT", "/dav/d/..%5c..%5cvictim%5csecret", "", b"mine");
    assert_eq!(status, 201);
    assert_eq!(keys_of(&node, "d"), ["..\\..\\victim\\secret"]);
    assert_eq!(keys_of(&node, "victim"), ["secret"]);
    assert_eq!(node.get("victim", "secret").body, b"secret");
    // A Destination that tries the same tricks is refused too.
    let destination = format!("Destination: {}/dav/d/../victim/secret\r\n", node.base);
    let (status, _) = raw(&node, "COPY", "/dav/d/..%5c..%5cvictim%5csecret", &destination, b"");
    assert_eq!(status, 400);
    assert_eq!(node.get("victim", "secret").body, b"secret");
}

#[test]
fn xml_with_doctypes_or_entities_is_refused() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("d", "k", b"x").status, 201);
    let xxe = br#"<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>
        <D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">&x;</Z:a></D:prop>
        </D:set></D:propertyupdate>"#;
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">
        <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
        <D:propfind xmlns:D="DAV:"><D:prop><Z:a xmlns:Z="urn:z">&c;</Z:a></D:prop></D:propfind>"#;
    let undefined =
        br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">&x;</Z:a>
        </D:prop></D:set></D:propertyupdate>"#;
    for (method, body) in
        [("PROPPATCH", &xxe[..]), ("PROPFIND", &laughs[..]), ("PROPPATCH", &undefined[..])]
    {
        let refused = send(&node, method, "d/k", &[("Depth", "0")], body);
        refused.assert_error(400, "bad_xml");
    }
    let lock = br#"<!DOCTYPE x SYSTEM "http://evil.example/x.dtd"><D:lockinfo xmlns:D="DAV:"/>"#;
    send(&node, "LOCK", "d/k", &[], lock).assert_error(400, "bad_xml");
    let too_large = vec![b' '; (1 << 20) + 1];
    assert_eq!(send(&node, "PROPFIND", "d/k", &[("Depth", "0")], &too_large).status, 413);
    let none = text(&send(&node, "PROPFIND", "d/k", &[("Depth", "0")], b""));
    assert!(!none.contains("urn:z"), "nothing was stored: {none}");
}

#[test]
fn destination_on_another_host_is_refused() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("d", "k", b"x").status, 201);
    for destination in [
        "http://evil.example/dav/d/copy".to_string(),
        "https://127.0.0.2:1/dav/d/copy".to_string(),
        node.url("/v1/d/copy"),
    ] {
        for method in ["COPY", "MOVE"] {
            let refused = send(&node, method, "d/k", &[("Destination", &destination)], b"");
            refused.assert_error(502, "foreign_destination");
        }
    }
    assert_eq!(keys_of(&node, "d"), ["k"]);
}

#[test]
fn locks_guard_writes_until_unlocked() {
    let node = TestNode::start(&[]);
    assert_eq!(node.put("d", "k", b"x").status, 201);
    let info = br#"<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>
        <D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>"#;
    let locked = send(&node, "LOCK", "d/k", &[("Timeout", "Second-60")], info);
    assert_eq!(locked.status, 200, "{}", text(&locked));
    let token = locked.header("lock-token").unwrap().to_string();
    assert!(text(&locked).contains("Second-60"));
    assert_eq!(send(&node, "LOCK", "d/k", &[], info).status, 423);
    assert_eq!(send(&node, "PUT", "d/k", &[], b"y").status, 423);
    assert_eq!(send(&node, "DELETE", "d/k", &[], b"").status, 423);
    let held = format!("({token})");
    assert_eq!(send(&node, "PUT", "d/k", &[("If", &held)], b"y").status, 204);
    let discovered = text(&propfind(&node, "d/k", "0"));
    assert!(discovered.contains(token.trim_matches(|c| c == '<' || c == '>')), "{discovered}");
    assert_eq!(
        send(&node, "UNLOCK", "d/k", &[("Lock-Token", "<opaquelocktoken:x>")], b"").status,
        409
    );
    assert_eq!(send(&node, "UNLOCK", "d/k", &[("Lock-Token", &token)], b"").status, 204);
    assert_eq!(send(&node, "PUT", "d/k", &[], b"z").status, 204);
    // Locking an unmapped name makes an empty file.
    assert_eq!(send(&node, "LOCK", "d/new", &[], info).status, 201);
    assert_eq!(node.get("d", "new").body, b"");
}

fn collector_idle(node: &TestNode) -> bool {
    wait_for(WAIT, || (node.status()["keys"]["to-delete"]["blobs"] == 0).then_some(())).is_some()
}

/// `(passed, failed)` of one litmus suite, from its summary line.
fn litmus_summary(output: &str, suite: &str) -> Option<(u32, u32)> {
    let line = output.lines().find(|l| l.contains(&format!("summary for `{suite}'")))?;
    let numbers: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    // "of N tests run: P passed, F failed. X.Y%"
    Some((numbers[1], numbers[2]))
}

#[test]
fn litmus_basic_copymove_and_props_pass() {
    if !installed("litmus") {
        return;
    }
    litmus_passes(&TestNode::start(&[]));
}

#[test]
fn litmus_passes_against_a_node_of_a_cluster() {
    if !installed("litmus") {
        return;
    }
    let cluster = common::cluster::Cluster::start(3, &[]);
    litmus_passes(&cluster.nodes[1]);
}

/// Runs the litmus suites against `node` and checks their summaries.
fn litmus_passes(node: &TestNode) {
    let work = tempfile::tempdir().unwrap();
    // litmus stops at the first suite with a failure: `locks` runs alone, last.
    // In a cluster, litmus logs in with the admin key (HTTP Basic).
    let address = node.base.trim_start_matches("http://");
    let login: Vec<String> = common::http::authorization(address)
        .map(|bearer| {
            let (user, secret) = bearer.trim_start_matches("Bearer ").split_once(':').unwrap();
            vec![user.to_owned(), secret.to_owned()]
        })
        .unwrap_or_default();
    let run = |suites: &str| {
        let output = run_bounded(
            Command::new("litmus")
                .arg(dav_url(node, "litmus/"))
                .args(&login)
                .env("TESTS", suites)
                .current_dir(work.path()),
            Duration::from_secs(240),
        );
        let output = String::from_utf8_lossy(&output.stdout).into_owned();
        eprintln!("{output}");
        output
    };
    let output = run("basic copymove props http");
    for suite in ["basic", "copymove", "props", "http"] {
        let (passed, failed) = litmus_summary(&output, suite).unwrap_or_else(|| {
            panic!("no summary for litmus suite {suite}:\n{output}");
        });
        assert!(passed > 0 && failed == 0, "litmus {suite}: {passed} passed, {failed} failed");
    }
    // Known: complex_cond_put and fail_complex_cond_put send an If header
    // that litmus cuts short for 64-digit etags (README, WebDAV).
    let output = run("locks");
    let (passed, failed) = litmus_summary(&output, "locks").expect("locks summary");
    assert!(passed >= 39 && failed <= 2, "litmus locks: {passed} passed, {failed} failed");
}

fn write_tree(root: &Path) {
    for dir in ["a/b/c", "empty/inner", "d"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("a/x.txt"), b"hello\n").unwrap();
    std::fs::write(root.join("a/b/empty.bin"), b"").unwrap();
    std::fs::write(root.join("a/b/c/large.bin"), bytes(3 * INLINE_MAX_BYTES + 5, 3)).unwrap();
    std::fs::write(root.join("d/name with spaces & ü.txt"), b"spaces").unwrap();
    std::fs::write(root.join("top-empty"), b"").unwrap();
    for i in 0..20 {
        std::fs::write(root.join(format!("d/f{i}")), bytes(i * 1000, i as u64)).unwrap();
    }
}

/// Runs rclone's WebDAV backend against `url`, with the cluster's admin
/// key as user and password when the node asks for one (HTTP Basic).
fn rclone(args: &[&str], url: &str) -> Output {
    let mut command = Command::new("rclone");
    command.args(args).args(["--webdav-url", url, "--config", "/dev/null", "-v"]);
    let address = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    if let Some(bearer) = common::http::authorization(address) {
        let (user, secret) = bearer.trim_start_matches("Bearer ").split_once(':').unwrap();
        let obscured = Command::new("rclone").args(["obscure", secret]).output().unwrap();
        let pass = String::from_utf8(obscured.stdout).unwrap();
        command.args(["--webdav-user", user, "--webdav-pass", pass.trim()]);
    }
    let output = run_bounded(&mut command, Duration::from_secs(120));
    assert!(
        output.status.success(),
        "rclone {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn rclone_round_trip_copies_checks_and_syncs_deletions() {
    if !installed("rclone") {
        return;
    }
    let node = TestNode::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("tree");
    write_tree(&source);
    let source_arg = source.to_str().unwrap();
    let url = dav_url(&node, "rc");
    rclone(&["copy", "--create-empty-src-dirs", source_arg, ":webdav:"], &url);
    let checked = rclone(&["check", "--download", source_arg, ":webdav:"], &url);
    let log = String::from_utf8_lossy(&checked.stderr).into_owned();
    assert!(log.contains("0 differences found"), "{log}");
    assert_eq!(keys_of(&node, "rc").len(), 25);
    assert_eq!(propfind(&node, "rc/empty/inner/", "0").status, 207, "empty folders exist");

    std::fs::remove_file(source.join("a/x.txt")).unwrap();
    std::fs::remove_dir_all(source.join("d")).unwrap();
    std::fs::write(source.join("a/b/empty.bin"), b"not empty any more").unwrap();
    rclone(&["sync", "--create-empty-src-dirs", source_arg, ":webdav:"], &url);
    let checked = rclone(&["check", "--download", source_arg, ":webdav:"], &url);
    let log = String::from_utf8_lossy(&checked.stderr).into_owned();
    assert!(log.contains("0 differences found"), "{log}");
    let keys = keys_of(&node, "rc");
    assert_eq!(keys, ["a/b/c/large.bin", "a/b/empty.bin", "top-empty"]);
    assert_eq!(node.get("rc", "a/b/empty.bin").body, b"not empty any more");
    assert_eq!(propfind(&node, "rc/d", "0").status, 404, "deleted folders are gone");
}

#[test]
fn rclone_through_one_node_checks_clean_at_every_other_node() {
    if !installed("rclone") {
        return;
    }
    let cluster = common::cluster::Cluster::start(3, &[]);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("tree");
    write_tree(&source);
    let source_arg = source.to_str().unwrap();
    let at = |i: usize| dav_url(&cluster.nodes[i], "rc");
    rclone(&["copy", source_arg, ":webdav:"], &at(0));
    for i in 0..3 {
        let checked = rclone(&["check", "--download", source_arg, ":webdav:"], &at(i));
        let log = String::from_utf8_lossy(&checked.stderr).into_owned();
        assert!(log.contains("0 differences found"), "node {i}: {log}");
    }
    std::fs::remove_file(source.join("a/x.txt")).unwrap();
    std::fs::remove_dir_all(source.join("d")).unwrap();
    std::fs::write(source.join("a/b/empty.bin"), b"not empty any more").unwrap();
    rclone(&["sync", source_arg, ":webdav:"], &at(0));
    for i in 0..3 {
        let checked = rclone(&["check", "--download", source_arg, ":webdav:"], &at(i));
        let log = String::from_utf8_lossy(&checked.stderr).into_owned();
        assert!(log.contains("0 differences found"), "node {i} after sync: {log}");
        // Folders are keys named like them in a cluster (rclone makes them with MKCOL).
        let keys: Vec<String> =
            keys_of(&cluster.nodes[i], "rc").into_iter().filter(|k| !k.ends_with('/')).collect();
        assert_eq!(keys, ["a/b/c/large.bin", "a/b/empty.bin", "top-empty"]);
    }
}
