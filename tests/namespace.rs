//! One cluster, one namespace: every node lists every key of the cluster,
//! whichever nodes hold it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{node_id, put_class, Cluster, SETTLE_TIMEOUT};
use common::{bytes, reply, sha256_hex, wait_for, Reply, TestNode};

/// Keys of the default class (two copies): on three nodes, each node holds
/// about two thirds of them.
const KEYS: usize = 24;

fn list(node: &TestNode, domain: &str, query: &str) -> Reply {
    reply(common::http::get(&node.url(&format!("/v1/{domain}?{query}"))).call())
}

/// Every key of the listing at `node`, page by page (`limit` a page),
/// checking that pages come in order with no key twice.
fn list_all(node: &TestNode, domain: &str, limit: usize) -> Result<Vec<String>, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..1000 {
        let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let page = list(node, domain, &format!("limit={limit}{cursor}"));
        if page.status != 200 {
            return Err(format!("status {}: {}", page.status, String::from_utf8_lossy(&page.body)));
        }
        let page = page.json();
        let listed = page["keys"].as_array().unwrap();
        assert!(listed.len() <= limit, "a page holds at most its limit");
        for item in listed {
            let key = item["key"].as_str().unwrap().to_owned();
            assert!(keys.last().is_none_or(|last| *last < key), "{key} after {keys:?}");
            keys.push(key);
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(keys),
        }
    }
    Err("the listing never ended".into())
}

fn put_keys(cluster: &Cluster, domain: &str) -> BTreeSet<String> {
    (0..KEYS)
        .map(|i| {
            let key = format!("k{i:03}");
            let node = &cluster.nodes[i % cluster.nodes.len()];
            assert_eq!(node.put(domain, &key, &bytes(70_000 + i, i as u64)).status, 201);
            key
        })
        .collect()
}

#[test]
fn every_node_lists_every_key_of_the_cluster_while_a_node_joins() {
    let mut cluster = Cluster::start(3, &[]);
    let keys = put_keys(&cluster, "shared");
    let wanted: Vec<String> = keys.iter().cloned().collect();
    for node in &cluster.nodes {
        // A node's own keys are only a part of them.
        let local = list(node, "shared", "local=true").json();
        assert!(local["keys"].as_array().unwrap().len() < KEYS, "local listing is this node's");
        assert_eq!(list_all(node, "shared", 1000).unwrap(), wanted, "one page");
        assert_eq!(list_all(node, "shared", 5).unwrap(), wanted, "pages of five");
    }
    // A fourth node joins: while it does, and after, every node lists all.
    cluster.add(&[]);
    for _ in 0..3 {
        for node in &cluster.nodes {
            match list_all(node, "shared", 7) {
                Ok(listed) => assert_eq!(listed, wanted, "no key missing or twice"),
                // A member not yet answering fails the page, never shortens it.
                Err(error) => assert!(error.contains("members_unreachable"), "{error}"),
            }
        }
    }
    cluster.settle(4, 3);
    for node in &cluster.nodes {
        assert_eq!(list_all(node, "shared", 7).unwrap(), wanted);
    }
    // A deleted key leaves every node's listing.
    assert_eq!(
        reply(common::http::delete(&cluster.nodes[3].key_url("shared", "k005")).call()).status,
        204
    );
    for node in &cluster.nodes {
        let listed = list_all(node, "shared", 4).unwrap();
        assert!(!listed.contains(&"k005".to_owned()) && listed.len() == KEYS - 1, "{listed:?}");
    }
}

#[test]
fn a_listing_with_silent_members_fails_unless_partial_is_asked() {
    let cluster = Cluster::start(3, &[]);
    let keys = put_keys(&cluster, "shared");
    let asking = &cluster.nodes[0];
    // One member silent: each key has another home that answers.
    cluster.nodes[1].signal("-STOP");
    let one_silent = list_all(asking, "shared", 10);
    cluster.nodes[2].signal("-STOP");
    let both_silent = list(asking, "shared", "limit=1000");
    let partial = list(asking, "shared", "limit=1000&partial=true");
    cluster.nodes[1].signal("-CONT");
    cluster.nodes[2].signal("-CONT");
    assert_eq!(one_silent.unwrap(), keys.iter().cloned().collect::<Vec<_>>());
    both_silent.assert_error(503, "members_unreachable");
    assert_eq!(partial.status, 200);
    let partial = partial.json();
    assert_eq!(partial["unanswered"].as_array().unwrap().len(), 2, "{partial}");
    // Awake again, the whole listing is back.
    wait_for(SETTLE_TIMEOUT, || list_all(asking, "shared", 1000).ok().filter(|l| l.len() == KEYS))
        .expect("every key listed again");
}

/// The hrefs of a Depth 1 PROPFIND of `path` at `node`, the folder's own first.
fn dav_members(node: &TestNode, path: &str) -> Vec<String> {
    let found = node.dav("PROPFIND", path, &[("Depth", "1")], b"");
    assert_eq!(found.status, 207, "PROPFIND {path}");
    let text = String::from_utf8_lossy(&found.body).into_owned();
    text.split("<D:href>")
        .skip(1)
        .map(|rest| rest[..rest.find("</D:href>").expect("every href is closed")].to_owned())
        .collect()
}

#[test]
fn webdav_at_every_node_lists_reads_copies_and_deletes_every_key() {
    let cluster = Cluster::start(3, &[]);
    cluster.make_class("one", 1);
    // Keys of one copy, each at one node only.
    let bodies: Vec<Vec<u8>> = (0..9).map(|i| bytes(70_000 + i, 40 + i as u64)).collect();
    for (i, body) in bodies.iter().enumerate() {
        let node = &cluster.nodes[i % 3];
        assert_eq!(put_class(node, "web", &format!("dir/f{i}"), "one", body).status, 201);
    }
    let wanted: Vec<String> = (0..9).map(|i| format!("/dav/web/dir/f{i}")).collect();
    for node in &cluster.nodes {
        let members = dav_members(node, "web/dir/");
        assert_eq!(members[0], "/dav/web/dir/");
        assert_eq!(members[1..], wanted[..], "every file of the folder, at every node");
        assert_eq!(dav_members(node, "web/"), ["/dav/web/", "/dav/web/dir/"]);
        for (i, body) in bodies.iter().enumerate() {
            let got = node.dav("GET", &format!("web/dir/f{i}"), &[], b"");
            assert_eq!(got.status, 200, "GET f{i}");
            assert_eq!(sha256_hex(&got.body), sha256_hex(body));
            assert_eq!(node.dav("HEAD", &format!("web/dir/f{i}"), &[], b"").status, 200);
        }
    }
    // COPY and MOVE at a node that does not hold the source.
    let (holder, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    let to = |path: &str| other.url(&format!("/dav/{path}"));
    let copied = other.dav("COPY", "web/dir/f0", &[("Destination", &to("web/copied"))], b"");
    assert_eq!(copied.status, 201, "{}", String::from_utf8_lossy(&copied.body));
    let moved = other.dav("MOVE", "web/dir/f3", &[("Destination", &to("web/moved"))], b"");
    assert_eq!(moved.status, 201, "{}", String::from_utf8_lossy(&moved.body));
    for node in &cluster.nodes {
        let got = wait_for(SETTLE_TIMEOUT, || {
            Some(node.dav("GET", "web/copied", &[], b"")).filter(|r| r.status == 200)
        })
        .expect("the copy is read at every node");
        assert_eq!(sha256_hex(&got.body), sha256_hex(&bodies[0]));
        assert_eq!(node.dav("GET", "web/moved", &[], b"").body, bodies[3]);
        assert_eq!(node.dav("GET", "web/dir/f3", &[], b"").status, 404, "moved away");
        assert_eq!(node.dav("GET", "web/dir/f0", &[], b"").body, bodies[0], "copied, kept");
    }
    // DELETE of the folder at a node: every key under it goes, everywhere.
    assert_eq!(holder.dav("DELETE", "web/dir/", &[], b"").status, 204);
    for node in &cluster.nodes {
        for i in 0..9 {
            let gone = node.dav("GET", &format!("web/dir/f{i}"), &[], b"");
            assert_eq!(gone.status, 404, "dir/f{i} deleted, seen at every node");
        }
        assert_eq!(dav_members(node, "web/"), ["/dav/web/", "/dav/web/copied", "/dav/web/moved"]);
    }
}

#[test]
fn an_empty_folder_made_at_one_node_is_seen_everywhere_and_outlives_it() {
    let mut cluster = Cluster::start(3, &[]);
    assert_eq!(cluster.nodes[1].put("web", "top", b"x").status, 201);
    assert_eq!(cluster.nodes[1].dav("MKCOL", "web/empty/", &[], b"").status, 201);
    let listed = |node: &TestNode| dav_members(node, "web/").contains(&"/dav/web/empty/".into());
    for node in &cluster.nodes {
        assert!(listed(node), "the empty folder is listed at every node");
        assert_eq!(node.dav("PROPFIND", "web/empty/", &[("Depth", "0")], b"").status, 207);
        assert_eq!(node.dav("MKCOL", "web/empty/", &[], b"").status, 405, "it exists everywhere");
    }
    // The node that made it loses its disk: the folder stays.
    let seed = cluster.nodes.remove(0);
    cluster.nodes[0].wipe_and_rejoin(&seed);
    cluster.nodes.insert(0, seed);
    for node in &cluster.nodes {
        wait_for(SETTLE_TIMEOUT, || listed(node).then_some(()))
            .expect("the folder outlives the node that made it");
    }
    // Deleted at any node, it is gone at every node.
    assert_eq!(cluster.nodes[2].dav("DELETE", "web/empty/", &[], b"").status, 204);
    for node in &cluster.nodes {
        assert!(!listed(node));
        assert_eq!(node.dav("PROPFIND", "web/empty/", &[("Depth", "0")], b"").status, 404);
    }
}

#[test]
fn a_webdav_lock_binds_only_the_node_that_granted_it() {
    let cluster = Cluster::start(3, &[]);
    let (granting, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    assert_eq!(granting.put("web", "locked", b"v1").status, 201);
    let info = br#"<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>"#;
    let lock = granting.dav("LOCK", "web/locked", &[("Depth", "0")], info);
    assert_eq!(lock.status, 200, "{}", String::from_utf8_lossy(&lock.body));
    assert_eq!(granting.dav("PUT", "web/locked", &[], b"v2").status, 423, "held at its node");
    let shown = |node: &TestNode| {
        let found = node.dav("PROPFIND", "web/locked", &[("Depth", "0")], b"");
        String::from_utf8_lossy(&found.body).contains("opaquelocktoken")
    };
    assert!(shown(granting));
    // README (WebDAV): another node neither shows the lock nor is held back by it.
    assert!(!shown(other));
    assert_eq!(other.dav("PUT", "web/locked", &[], b"v2").status, 204);
    assert_eq!(granting.get("web", "locked").body, b"v2");
}

#[test]
fn webdav_if_conditions_see_a_key_held_elsewhere() {
    let cluster = Cluster::start(3, &[]);
    cluster.make_class("one", 1);
    let body = b"held at node 0 only".to_vec();
    assert_eq!(put_class(&cluster.nodes[0], "web", "cond", "one", &body).status, 201);
    let far = &cluster.nodes[1];
    let tag = format!("([\"{}\"])", sha256_hex(&body));
    let wrong = format!("([\"{}\"])", "0".repeat(64));
    assert_eq!(far.dav("PUT", "web/cond", &[("If", &wrong)], b"no").status, 412);
    assert_eq!(far.dav("PUT", "web/cond", &[("If", &tag)], b"yes").status, 204, "its ETag holds");
    assert_eq!(cluster.nodes[2].get("web", "cond").body, b"yes");
}

#[test]
fn dead_properties_are_seen_at_every_node_and_travel_with_new_copies() {
    let mut cluster = Cluster::start(3, &["--down-after", "1s", "--dead-after", "3s"]);
    assert_eq!(cluster.nodes[0].dav("PUT", "props/k", &[], b"body").status, 201);
    let stat_url = format!("{}?stat", cluster.nodes[0].key_url("props", "k"));
    let holders = wait_for(SETTLE_TIMEOUT, || {
        let holders = reply(common::http::get(&stat_url).call()).json()["holders"].clone();
        let holders: Vec<String> = serde_json::from_value(holders).ok()?;
        (holders.len() == 2).then_some(holders)
    })
    .expect("the key reaches its two copies");
    let ids: Vec<String> = cluster.nodes.iter().map(node_id).collect();
    let outside = ids.iter().position(|id| !holders.contains(id)).expect("a node without a copy");
    let set = br#"<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>
        <Z:colour>teal</Z:colour></D:prop></D:set></D:propertyupdate>"#;
    let patched = cluster.nodes[outside].dav("PROPPATCH", "props/k", &[], set);
    assert_eq!(patched.status, 207);
    assert!(String::from_utf8_lossy(&patched.body).contains("200 OK"));
    let ask =
        br#"<D:propfind xmlns:D="DAV:"><D:prop><Z:colour xmlns:Z="urn:z"/></D:prop></D:propfind>"#;
    let colour_at = |node: &TestNode| {
        let found = node.dav("PROPFIND", "props/k", &[("Depth", "0")], ask);
        String::from_utf8_lossy(&found.body).contains(">teal</")
    };
    for node in &cluster.nodes {
        assert!(colour_at(node), "the property is seen at {}", node.base);
    }
    // The holder other than the writer dies: the new copy, made at the node
    // that had none, brings the property with it.
    let victim = ids
        .iter()
        .position(|id| holders.contains(id) && *id != ids[0])
        .expect("two holders, so one is not the writer");
    cluster.nodes[victim].kill();
    let new_holder = &cluster.nodes[outside];
    let local_url = format!("{}?stat", new_holder.key_url("props", "k"));
    wait_for(SETTLE_TIMEOUT, || {
        let stat = reply(common::http::get(&local_url).call()).json();
        (stat["state"] == "stored" || stat["state"] == "need-replication").then_some(())
    })
    .expect("a new copy is made at the node that had none");
    assert!(
        wait_for(Duration::from_secs(5), || colour_at(new_holder).then_some(())).is_some(),
        "the new copy carries the property"
    );
}
