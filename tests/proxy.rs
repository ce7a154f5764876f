//! The proxy role: a member started with `--no-store` holds no blobs and
//! is never a copy target, yet takes PUTs (streamed to a store), serves
//! reads, listings and deletions, and speaks `/v1/`, WebDAV and the
//! MogileFS protocol like any node.

mod common;

use common::cluster::{cluster_report, node_id, put_class, Cluster, SETTLE_TIMEOUT};
use common::tracker::{store, Tracker};
use common::{bytes, files_under, reply, sha256_hex, wait_for, Reply, TestNode};

/// Files under `dir` (recursively).
/// The node ids the key's homes name as holders, asked at `node`.
fn holders(node: &TestNode, domain: &str, key: &str) -> Vec<String> {
    let stat = reply(common::http::get(&format!("{}?stat", node.key_url(domain, key))).call());
    if stat.status != 200 {
        return Vec::new();
    }
    let listed = stat.json()["holders"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> =
        listed.iter().filter_map(|h| h.as_str().map(str::to_owned)).collect();
    ids.sort();
    ids
}

/// Waits until the key has exactly `copies` holders, none of them `proxy`.
fn wait_for_copies(node: &TestNode, domain: &str, key: &str, copies: usize, proxy: &str) {
    let settled = wait_for(SETTLE_TIMEOUT, || {
        let ids = holders(node, domain, key);
        (ids.len() == copies && !ids.iter().any(|id| id == proxy)).then_some(())
    });
    let ids = holders(node, domain, key);
    assert!(settled.is_some(), "{domain}/{key}: {copies} copies on stores, got {ids:?}");
}

fn start_with_proxy() -> Cluster {
    let mut cluster = Cluster::start(3, &["--mogile-admin"]);
    cluster.add(&["--no-store", "--mogile-admin"]);
    cluster.settle(4, 3);
    cluster
}

fn proxy_of(cluster: &Cluster) -> (&TestNode, String) {
    let proxy = &cluster.nodes[3];
    (proxy, node_id(proxy))
}

fn get_range(node: &TestNode, domain: &str, key: &str, range: &str) -> Reply {
    reply(common::http::get(&node.key_url(domain, key)).set("Range", range).call())
}

#[test]
fn a_proxy_takes_writes_for_the_stores_and_serves_every_interface_without_a_blob() {
    let cluster = start_with_proxy();
    let (proxy, proxy_id) = proxy_of(&cluster);
    roles_are_shown(proxy, &proxy_id);
    through_v1(&cluster, proxy, &proxy_id);
    through_webdav(&cluster, proxy, &proxy_id);
    through_mogile(&cluster, proxy, &proxy_id);

    // A class wanting more copies than there are stores never puts one
    // on the proxy.
    cluster.make_class("four", 4);
    let wide = bytes(90_000, 44);
    assert_eq!(put_class(proxy, "px", "wide", "four", &wide).status, 201);
    wait_for_copies(proxy, "px", "wide", 3, &proxy_id);

    // DELETE through the proxy removes the key everywhere.
    assert_eq!(reply(common::http::delete(&proxy.key_url("px", "v1/k1")).call()).status, 204);
    for node in &cluster.nodes {
        assert_eq!(node.get("px", "v1/k1").status, 404);
    }
    assert_eq!(files_under(&proxy.dir.join("blobs")), 0, "the proxy keeps no blob");
    let keys_here: u64 = proxy.status()["keys"]
        .as_object()
        .expect("key counts")
        .values()
        .filter_map(|state| state["keys"].as_u64())
        .sum();
    assert_eq!(keys_here, 0, "the proxy holds no key: {}", proxy.status());
}

fn roles_are_shown(proxy: &TestNode, proxy_id: &str) {
    let report = cluster_report(proxy).expect("a cluster report");
    let roles: Vec<(String, String)> = report["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    for (id, role) in &roles {
        let expected = if *id == proxy_id { "proxy" } else { "store" };
        assert_eq!(role, expected, "{roles:?}");
    }
}

/// `/v1/`: PUTs through the proxy land on stores; every node reads them.
fn through_v1(cluster: &Cluster, proxy: &TestNode, proxy_id: &str) {
    // PUTs through the proxy land on stores; every node reads them.
    let keys: Vec<(String, Vec<u8>)> =
        (0..8).map(|i| (format!("v1/k{i}"), bytes(150_000 + i * 1000, i as u64))).collect();
    for (key, data) in &keys {
        let put = proxy.put("px", key, data);
        assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
        assert_eq!(put.json()["sha256"], sha256_hex(data));
    }
    for (key, data) in &keys {
        for node in &cluster.nodes {
            let got = node.get("px", key);
            assert_eq!(got.status, 200, "{key} at {}", node.base);
            assert_eq!(sha256_hex(&got.body), sha256_hex(data), "{key} at {}", node.base);
        }
        wait_for_copies(proxy, "px", key, 2, proxy_id);
    }
    let (key, data) = &keys[0];
    let part = get_range(proxy, "px", key, "bytes=1000-1999");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, data[1000..2000]);
    let listed = reply(common::http::get(&proxy.url("/v1/px?prefix=v1/")).call()).json();
    assert_eq!(listed["keys"].as_array().expect("keys").len(), keys.len());

    // A store's refusal reaches the client as the store said it, and
    // nothing is stored.
    let wrong = reply(
        common::http::put(&proxy.key_url("px", "v1/bad"))
            .set("X-Content-Sha256", &"00".repeat(32))
            .send_bytes(&bytes(100_000, 99)),
    );
    wrong.assert_error(400, "digest_mismatch");
    assert_eq!(proxy.get("px", "v1/bad").status, 404);
    let unknown = put_class(proxy, "px", "v1/bad", "no-such-class", b"x");
    unknown.assert_error(400, "unknown_class");
    // Refused while the body is still on its way: the store answers first.
    let big = bytes(8 << 20, 98);
    put_class(proxy, "px", "v1/bad", "no-such-class", &big).assert_error(400, "unknown_class");
    assert_eq!(proxy.get("px", &keys[0].0).status, 200, "the proxy still serves");
}

fn through_webdav(cluster: &Cluster, proxy: &TestNode, proxy_id: &str) {
    // WebDAV: a folder, a file in it, COPY and MOVE, all at the proxy.
    assert_eq!(proxy.dav("MKCOL", "px/docs/", &[], b"").status, 201);
    let doc = bytes(120_000, 7);
    assert_eq!(proxy.dav("PUT", "px/docs/a.bin", &[], &doc).status, 201);
    let found = proxy.dav("PROPFIND", "px/docs/", &[("Depth", "1")], b"");
    assert_eq!(found.status, 207);
    assert!(String::from_utf8_lossy(&found.body).contains("a.bin"));
    let copied = proxy.dav(
        "COPY",
        "px/docs/a.bin",
        &[("Destination", &proxy.url("/dav/px/docs/b.bin"))],
        b"",
    );
    assert_eq!(copied.status, 201, "{}", String::from_utf8_lossy(&copied.body));
    let moved = proxy.dav(
        "MOVE",
        "px/docs/b.bin",
        &[("Destination", &proxy.url("/dav/px/docs/c.bin"))],
        b"",
    );
    assert_eq!(moved.status, 201, "{}", String::from_utf8_lossy(&moved.body));
    for node in &cluster.nodes {
        assert_eq!(node.dav("GET", "px/docs/b.bin", &[], b"").status, 404, "moved away");
        let got = node.dav("GET", "px/docs/c.bin", &[], b"");
        assert_eq!(sha256_hex(&got.body), sha256_hex(&doc), "the moved file at {}", node.base);
    }
    wait_for_copies(proxy, "px", "docs/c.bin", 2, proxy_id);
}

fn through_mogile(cluster: &Cluster, proxy: &TestNode, proxy_id: &str) {
    // MogileFS: the upload goes to a store's path; the rest is answered
    // at the proxy, and every store sees it.
    let mut tracker = Tracker::connect(proxy);
    tracker.ok("create_domain", &[("domain", "mfs")]);
    let file = bytes(200_000, 21);
    store(&mut tracker, "mfs", "m1", &file);
    let paths = tracker.ok("get_paths", &[("domain", "mfs"), ("key", "m1")]);
    assert!(!paths["path1"].contains(&format!(":{}/", proxy.http_port)), "{paths:?}");
    let got = reply(common::http::get(&paths["path1"]).call());
    assert_eq!(sha256_hex(&got.body), sha256_hex(&file));
    tracker.ok("rename", &[("domain", "mfs"), ("from_key", "m1"), ("to_key", "m2")]);
    tracker.ok("create_class", &[("domain", "mfs"), ("class", "three"), ("mindevcount", "3")]);
    tracker.ok("updateclass", &[("domain", "mfs"), ("key", "m2"), ("class", "three")]);
    for node in &cluster.nodes[..3] {
        let mut at_store = Tracker::connect(node);
        let info = at_store.ok("file_info", &[("domain", "mfs"), ("key", "m2")]);
        assert_eq!(info["length"], file.len().to_string());
        at_store.err("file_info", &[("domain", "mfs"), ("key", "m1")], "unknown_key");
    }
    wait_for_copies(proxy, "mfs", "m2", 3, proxy_id);
    tracker.ok("delete", &[("domain", "mfs"), ("key", "m2")]);
    for node in &cluster.nodes {
        assert_eq!(node.get("mfs", "m2").status, 404);
    }
}

#[test]
fn a_proxy_answers_503_when_no_store_can_be_reached() {
    let mut cluster = start_with_proxy();
    for node in &mut cluster.nodes[..3] {
        node.kill();
    }
    // A killed node's listening sockets may take connections for a moment
    // while the kernel tears down its io_uring: wait until they refuse.
    for node in &cluster.nodes[..3] {
        let port = node.http_port;
        let closed = wait_for(SETTLE_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        });
        assert!(closed.is_some(), "port {port} refuses connections");
    }
    let proxy = &cluster.nodes[3];
    proxy.put("px", "nowhere", b"bytes").assert_error(503, "no_store");
    assert_eq!(files_under(&proxy.dir.join("blobs")), 0);
}
