//! Client authentication on real processes (README "Security"): once a
//! cluster has a second member every HTTP request needs an access key with
//! the right permission, refused requests change nothing, and the ways in
//! for clients without credentials (signed URLs, public-read domains) work.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::cluster::{node_id, Cluster};
use common::tracker::Tracker;
use common::{reply, wait_for, Reply, TestNode};
use serde_json::{json, Value};

/// Credentials a request is sent with.
#[derive(Clone, Copy)]
enum Who<'a> {
    Nobody,
    Bearer(&'a str),
    Basic(&'a str),
}

/// A plain client: sends exactly the credentials given, follows no
/// redirect.
fn send(node: &TestNode, method: &str, path: &str, who: Who, body: Option<&[u8]>) -> Reply {
    let agent = ureq::AgentBuilder::new().redirects(0).build();
    let mut request = agent.request(method, &node.url(path));
    request = match who {
        Who::Nobody => request,
        Who::Bearer(key) => request.set("Authorization", &format!("Bearer {key}")),
        Who::Basic(key) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(key);
            request.set("Authorization", &format!("Basic {encoded}"))
        }
    };
    if method == "PROPFIND" {
        request = request.set("Depth", "1");
    }
    if method == "COPY" {
        request = request.set("Destination", &node.url("/dav/logs/copied"));
    }
    reply(match body {
        Some(body) => request.send_bytes(body),
        None => request.call(),
    })
}

fn make_key(node: &TestNode, admin: &str, name: &str, grants: &[(&str, Value)]) -> String {
    let made = send(
        node,
        "POST",
        "/v1/admin/keys",
        Who::Bearer(admin),
        Some(json!({ "name": name }).to_string().as_bytes()),
    );
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    let made = made.json();
    let id = made["id"].as_str().unwrap();
    for (domain, grant) in grants {
        let mut body = grant.clone();
        body["domain"] = json!(domain);
        let path = format!("/v1/admin/keys/{id}/allow");
        let allowed =
            send(node, "POST", &path, Who::Bearer(admin), Some(body.to_string().as_bytes()));
        assert_eq!(allowed.status, 200, "{}", String::from_utf8_lossy(&allowed.body));
    }
    format!("{id}:{}", made["secret"].as_str().unwrap())
}

/// One request of the table: method, path, credentials, body, status.
type Row<'a> = (&'a str, String, Who<'a>, Option<&'a [u8]>, u16);

/// The founding node's admin key, once it has written it.
fn admin_key(seed: &TestNode) -> String {
    let admin_file = seed.dir.join("admin-key");
    let admin = wait_for(Duration::from_secs(30), || std::fs::read_to_string(&admin_file).ok())
        .expect("the founding node wrote its admin key");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&admin_file).unwrap().permissions().mode() & 0o777, 0o600);
    admin.trim().to_owned()
}

#[test]
fn every_plane_refuses_the_unauthenticated_and_the_wrong_scope() {
    let cluster = Cluster::start(2, &[]);
    let (seed, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    let admin = &admin_key(seed);
    for domain in ["photos", "logs"] {
        let body = json!({ "name": domain }).to_string();
        let made =
            send(seed, "POST", "/v1/admin/domains", Who::Bearer(admin), Some(body.as_bytes()));
        assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    }
    let reader = make_key(seed, admin, "reader", &[("photos", json!({ "read": true }))]);
    let writer = make_key(seed, admin, "writer", &[("photos", json!({ "write": true }))]);
    let stranger = make_key(seed, admin, "stranger", &[("logs", json!({ "read": true }))]);
    let metrics = make_key(seed, admin, "metrics", &[("metrics", json!({ "read": true }))]);
    let wrong = format!("{}:0000", writer.split_once(':').unwrap().0);
    let (unknown, bad_class) =
        ("CKNOSUCHKEY:00", json!({ "name": "default", "replicas": 1 }).to_string());
    let seed_id = node_id(seed);
    let state_path = format!("/v1/admin/nodes/{seed_id}/state");
    let readonly = json!({ "state": "readonly" }).to_string();
    let new_key = json!({ "name": "sneaky", "admin": true }).to_string();

    // Keys are known at every node: the table runs at the one that did
    // not make them.
    let table: Vec<Row> = vec![
        ("PUT", "/v1/photos/a".into(), Who::Nobody, Some(b"A"), 401),
        ("PUT", "/v1/photos/a".into(), Who::Bearer(&wrong), Some(b"A"), 401),
        ("PUT", "/v1/photos/a".into(), Who::Bearer(unknown), Some(b"A"), 401),
        ("PUT", "/v1/photos/a".into(), Who::Bearer(&reader), Some(b"A"), 403),
        ("PUT", "/v1/photos/a".into(), Who::Bearer(&stranger), Some(b"A"), 403),
        ("PUT", "/v1/photos/a".into(), Who::Bearer(&writer), Some(b"A"), 201),
        ("GET", "/v1/photos/a".into(), Who::Nobody, None, 401),
        ("GET", "/v1/photos/a".into(), Who::Bearer(&stranger), None, 403),
        ("GET", "/v1/photos/a".into(), Who::Bearer(&reader), None, 200),
        ("HEAD", "/v1/photos/a".into(), Who::Basic(&reader), None, 200),
        ("DELETE", "/v1/photos/a".into(), Who::Bearer(&reader), None, 403),
        ("GET", "/v1/photos".into(), Who::Nobody, None, 401),
        ("GET", "/v1/photos".into(), Who::Bearer(&reader), None, 200),
        ("POST", "/v1/admin/classes".into(), Who::Nobody, Some(bad_class.as_bytes()), 401),
        ("POST", "/v1/admin/classes".into(), Who::Bearer(&writer), Some(bad_class.as_bytes()), 403),
        ("POST", "/v1/admin/keys".into(), Who::Bearer(&writer), Some(new_key.as_bytes()), 403),
        ("GET", "/v1/admin/keys".into(), Who::Bearer(&reader), None, 403),
        ("GET", "/v1/admin/keys".into(), Who::Bearer(admin), None, 200),
        ("DELETE", "/v1/admin/domains/photos".into(), Who::Bearer(&writer), None, 403),
        ("POST", state_path.clone(), Who::Bearer(&writer), Some(readonly.as_bytes()), 403),
        ("GET", "/v1/cluster".into(), Who::Nobody, None, 401),
        ("GET", "/v1/cluster".into(), Who::Bearer(&reader), None, 200),
        ("GET", "/v1/status".into(), Who::Nobody, None, 401),
        ("GET", "/metrics".into(), Who::Nobody, None, 401),
        ("GET", "/metrics".into(), Who::Bearer(&reader), None, 403),
        ("GET", "/metrics".into(), Who::Bearer(&metrics), None, 200),
        ("PROPFIND", "/dav/photos/".into(), Who::Nobody, None, 401),
        ("PROPFIND", "/dav/photos/".into(), Who::Basic(&reader), None, 207),
        ("PUT", "/dav/photos/b".into(), Who::Basic(&reader), Some(b"B"), 403),
        ("MKCOL", "/dav/photos/dir/".into(), Who::Basic(&reader), None, 403),
        ("DELETE", "/dav/photos/a".into(), Who::Nobody, None, 401),
        ("COPY", "/dav/photos/a".into(), Who::Basic(&writer), None, 403),
        ("PUT", "/dav/photos/c".into(), Who::Basic(&writer), Some(b"C"), 201),
        ("GET", "/dav/photos/c".into(), Who::Basic(&reader), None, 200),
    ];
    run_table(other, &table);
    nothing_refused_happened(seed, other, admin);
    ways_in_without_credentials(seed, other, admin, &reader);

    // A revoked key is refused everywhere.
    let writer_id = writer.split_once(':').unwrap().0;
    let revoked =
        send(seed, "DELETE", &format!("/v1/admin/keys/{writer_id}"), Who::Bearer(admin), None);
    assert_eq!(revoked.status, 204);
    let refused = wait_for(Duration::from_secs(10), || {
        let put = send(other, "PUT", "/v1/photos/d", Who::Bearer(&writer), Some(b"D"));
        (put.status == 401).then_some(())
    });
    assert!(refused.is_some(), "a revoked key still writes");
}

fn run_table(node: &TestNode, table: &[Row]) {
    for (method, path, who, body, expected) in table {
        let answer = send(node, method, path, *who, *body);
        assert_eq!(
            answer.status,
            *expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        if answer.status == 401 {
            assert!(answer.header("www-authenticate").is_some_and(|v| v.contains("Basic")));
            assert_eq!(answer.json()["error"], "unauthorized");
        }
        if answer.status == 403 && !path.starts_with("/dav/") {
            assert_eq!(answer.json()["error"], "access_denied");
        }
    }
}

/// Nothing a refused request of the table asked for happened.
fn nothing_refused_happened(seed: &TestNode, other: &TestNode, admin: &str) {
    let keys = send(seed, "GET", "/v1/admin/keys", Who::Bearer(admin), None).json();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 5, "{keys}");
    assert!(!keys.to_string().contains("sneaky") && !keys.to_string().contains("secret"));
    let classes = send(seed, "GET", "/v1/admin/classes", Who::Bearer(admin), None).json();
    assert!(classes.to_string().contains(r#""name":"default","replicas":2"#), "{classes}");
    for node in [seed, other] {
        assert_eq!(send(node, "GET", "/v1/photos/a", Who::Bearer(admin), None).body, b"A");
        assert_eq!(send(node, "GET", "/v1/photos/b", Who::Bearer(admin), None).status, 404);
        assert_eq!(send(node, "GET", "/v1/logs/copied", Who::Bearer(admin), None).status, 404);
        let listed = send(node, "GET", "/v1/photos", Who::Bearer(admin), None).json();
        let names: Vec<&str> =
            listed["keys"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
        assert_eq!(names, ["a", "c"]);
    }
    let report = send(seed, "GET", "/v1/cluster", Who::Bearer(admin), None).json();
    assert!(report["members"].as_array().unwrap().iter().all(|m| m["state"] == "alive"));
}

fn ways_in_without_credentials(seed: &TestNode, other: &TestNode, admin: &str, reader: &str) {
    // A redirect hands a client without credentials a URL signed for
    // that one key; a changed signature or another key is refused.
    let redirected = send(other, "GET", "/v1/photos/a?redirect", Who::Bearer(reader), None);
    assert_eq!(redirected.status, 307);
    let location = redirected.header("location").unwrap().to_owned();
    assert!(location.contains("?sig="), "{location}");
    assert_eq!(reply(ureq::get(&location).call()).body, b"A");
    // The signature's last hex digit changed (and nothing else).
    let last = if location.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &location[..location.len() - 1]);
    assert_eq!(reply(ureq::get(&tampered).call()).status, 401);
    let elsewhere = location.replace("/photos/a?", "/photos/c?");
    assert_eq!(reply(ureq::get(&elsewhere).call()).status, 401);
    // MogileFS clients fetch get_paths URLs with no credentials.
    let mut tracker = Tracker::connect(other);
    let paths = tracker.ok("get_paths", &[("domain", "photos"), ("key", "a")]);
    assert_eq!(reply(ureq::get(&paths["path1"]).call()).body, b"A");

    // A public-read domain is read by anyone; writing still needs a key.
    let public = json!({ "public_read": true }).to_string();
    let set =
        send(seed, "POST", "/v1/admin/domains/photos", Who::Bearer(admin), Some(public.as_bytes()));
    assert_eq!(set.status, 200, "{}", String::from_utf8_lossy(&set.body));
    let read = wait_for(Duration::from_secs(10), || {
        let got = send(other, "GET", "/v1/photos/a", Who::Nobody, None);
        (got.status == 200).then_some(got.body)
    });
    assert_eq!(read.as_deref(), Some(&b"A"[..]));
    assert_eq!(send(other, "PUT", "/v1/photos/a", Who::Nobody, Some(b"X")).status, 401);
}

#[test]
fn a_lone_node_on_loopback_needs_no_key_unless_asked() {
    let open = TestNode::start(&["--shards", "1"]);
    assert_eq!(send(&open, "PUT", "/v1/d/k", Who::Nobody, Some(b"v")).status, 201);
    assert_eq!(send(&open, "GET", "/v1/d/k", Who::Nobody, None).body, b"v");

    let guarded = TestNode::start(&["--shards", "1", "--auth-required"]);
    assert_eq!(send(&guarded, "PUT", "/v1/d/k", Who::Nobody, Some(b"v")).status, 401);
    let admin = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(guarded.dir.join("admin-key")).ok()
    })
    .expect("an admin key");
    let key = admin.trim();
    let answer = wait_for(Duration::from_secs(10), || {
        let put = send(&guarded, "PUT", "/v1/d/k", Who::Bearer(key), Some(b"v"));
        (put.status == 201).then_some(put)
    });
    assert!(answer.is_some(), "the admin key writes");
    assert_eq!(send(&guarded, "GET", "/v1/d/k", Who::Basic(key), None).body, b"v");
    // curl, as users type it: -u for Basic, -H for Bearer.
    let curl = |args: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-s", "-o", "-", "-w", " %{http_code}"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, "curl body").unwrap();
    let url = guarded.url("/v1/d/curl");
    let bearer = format!("Authorization: Bearer {key}");
    let put = curl(&["-T", file.to_str().unwrap(), "-u", key, &url]);
    assert!(put.ends_with(" 201"), "{put}");
    assert_eq!(curl(&["-H", &bearer, &url]), "curl body 200");
    assert!(curl(&[&url]).ends_with(" 401"), "no credentials");
}
