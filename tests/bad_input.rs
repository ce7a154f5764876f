//! A corpus of bad requests against a real node (issue 14): each gets a
//! clear 4xx with a JSON error code (WebDAV's XML ones excepted), the node
//! keeps serving, and nothing any of them asked for happened.

mod common;

use common::{reply, Reply, TestNode};

/// One request: method, path, headers, body.
struct Bad<'a> {
    method: &'a str,
    path: String,
    headers: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

fn bad<'a>(method: &'a str, path: &str, headers: &[(&'a str, &'a str)], body: &[u8]) -> Bad<'a> {
    Bad { method, path: path.to_owned(), headers: headers.to_vec(), body: body.to_vec() }
}

fn send(node: &TestNode, request: &Bad) -> Reply {
    let mut sent = common::http::request(request.method, &node.url(&request.path));
    for (name, value) in &request.headers {
        sent = sent.set(name, value);
    }
    reply(sent.send_bytes(&request.body))
}

/// The corpus: each request, its status, and its JSON error code (empty:
/// not a JSON answer).
fn corpus() -> Vec<(Bad<'static>, u16, &'static str)> {
    let long_key = "k".repeat(1025);
    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    vec![
        (bad("PUT", "/v1/Bad/k", &[], b"x"), 400, "bad_name"),
        (bad("PUT", &format!("/v1/d/{long_key}"), &[], b"x"), 400, "bad_name"),
        (bad("PUT", "/v1/d/a%00b", &[], b"x"), 400, "bad_name"),
        (bad("PUT", "/v1/d/%2E%2E", &[], b"x"), 400, "bad_name"),
        (bad("PUT", "/v1/d/k", &[("x-content-sha256", "zz")], b"x"), 400, "bad_digest"),
        (bad("PUT", "/v1/d/k", &[("x-content-sha256", ZEROS)], b"x"), 400, "digest_mismatch"),
        (bad("PUT", "/v1/d/k?class=nope", &[], b"x"), 400, "unknown_class"),
        (bad("PUT", "/v1/d/kept", &[("x-content-sha256", ZEROS)], b"new"), 400, "digest_mismatch"),
        (bad("GET", "/v1/d?limit=0", &[], b""), 400, "bad_limit"),
        (bad("GET", "/v1/d?limit=100000", &[], b""), 400, "bad_limit"),
        (
            bad("GET", "/v1/d/kept", &[("range", "bytes=100-200")], b""),
            416,
            "range_not_satisfiable",
        ),
        (bad("BREW", "/v1/d/kept", &[], b""), 405, "method_not_allowed"),
        (bad("GET", "/v1/nothing/here/at/all", &[], b""), 404, "not_found"),
        (bad("POST", "/v1/admin/classes", &[], b"{not json"), 400, "bad_json"),
        (
            bad("POST", "/v1/admin/classes", &[], br#"{"name":"x","replicas":0}"#),
            400,
            "bad_replicas",
        ),
        (
            bad("POST", "/v1/admin/classes", &[], br#"{"name":"x","replicas":2,"evil":1}"#),
            400,
            "bad_json",
        ),
        (
            bad("POST", "/v1/admin/classes", &[], br#"{"name":"a b","replicas":2}"#),
            400,
            "bad_class",
        ),
        (bad("POST", "/v1/admin/domains", &[], br#"{"name":"UPPER"}"#), 400, "bad_name"),
        (bad("POST", "/v1/admin/nodes/zz/state", &[], br#"{"state":"alive"}"#), 400, "bad_node_id"),
        (bad("DELETE", "/v1/admin/classes/default", &[], b""), 409, "default_class"),
        (
            bad("POST", "/v1/admin/keys/CKNONE/allow", &[], br#"{"domain":"d","read":true}"#),
            404,
            "unknown_access_key",
        ),
        (bad("PROPFIND", "/dav/d/", &[("depth", "1")], b"<propfind"), 400, "bad_xml"),
        (bad("PROPFIND", "/dav/d/", &[("depth", "infinity")], b""), 403, ""),
        (bad("MOVE", "/dav/d/kept", &[], b""), 400, "bad_destination"),
        (
            bad("COPY", "/dav/d/kept", &[("destination", "/dav/d/c"), ("overwrite", "X")], b""),
            400,
            "bad_overwrite",
        ),
        (bad("LOCK", "/dav/d/kept", &[], b"<lockinfo"), 400, "bad_xml"),
        (bad("PUT", "/v1/_mogile/1", &[], b"x"), 401, "unauthorized"),
    ]
}

#[test]
fn bad_requests_get_a_clear_4xx_and_change_nothing() {
    let node = TestNode::start(&["--shards", "1"]);
    assert_eq!(node.put("d", "kept", b"original").status, 201);
    let corpus = corpus();
    for (request, status, code) in &corpus {
        let answer = send(&node, request);
        let shown = String::from_utf8_lossy(&answer.body).into_owned();
        assert_eq!(answer.status, *status, "{} {}: {shown}", request.method, request.path);
        if !code.is_empty() && request.method != "HEAD" {
            let body: serde_json::Value =
                serde_json::from_slice(&answer.body).unwrap_or_else(|_| {
                    panic!("{} {}: not JSON: {shown}", request.method, request.path)
                });
            assert_eq!(body["error"], *code, "{} {}: {shown}", request.method, request.path);
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    // Nothing any of them asked for happened, and the node still serves.
    assert_eq!(node.get("d", "kept").body, b"original");
    let listed = reply(common::http::get(&node.url("/v1/d")).call()).json();
    let names: Vec<&str> =
        listed["keys"].as_array().unwrap().iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(names, ["kept"]);
    let classes = reply(common::http::get(&node.url("/v1/admin/classes")).call()).json();
    assert_eq!(classes["classes"].as_array().unwrap().len(), 1, "{classes}");
    let domains = reply(common::http::get(&node.url("/v1/admin/domains")).call()).json();
    assert_eq!(domains["domains"], serde_json::json!(["d"]));
    assert_eq!(node.put("d", "after", b"fine").status, 201);
}
