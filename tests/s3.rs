//! The S3 API with the clients people use: boto3 (tests/s3/boto3_suite.py)
//! on one node and on a 3-node cluster (written at one node, read at the
//! others), the AWS CLI, s3cmd and rclone's S3 backend; the same keys over
//! `/v1/`; and bad requests (signatures, clocks, chunk signatures, short
//! bodies, long keys) refused with S3's error, nothing stored.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use cairn_api::s3::sigv4;
use common::cluster::Cluster;
use common::{bytes, files_under, installed, reply, run_bounded, sha256_hex, Reply, TestNode};

const TOOL_TIMEOUT: Duration = Duration::from_secs(240);

fn credentials(node: &TestNode) -> (String, String) {
    let text = std::fs::read_to_string(node.admin_key_file()).expect("the admin key");
    let (id, secret) = text.trim().split_once(':').expect("id:secret");
    (id.to_owned(), secret.to_owned())
}

fn endpoint(node: &TestNode) -> String {
    format!("http://{}:{}", node.host.address, node.s3_port)
}

fn boto3_suite(writer: &TestNode, readers: &[&TestNode], bucket: &str) {
    assert!(installed("python3"), "python3 runs the boto3 suite (scripts/setup)");
    let (id, secret) = credentials(writer);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/boto3_suite.py");
    let read: Vec<String> = readers.iter().map(|node| endpoint(node)).collect();
    let output = run_bounded(
        Command::new("python3")
            .arg(script)
            .env("S3_ENDPOINT", endpoint(writer))
            .env("S3_READ_ENDPOINTS", read.join(","))
            .env("S3_KEY_ID", id)
            .env("S3_SECRET", secret)
            .env("S3_BUCKET", bucket),
        TOOL_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "boto3 suite failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("boto3 suite passed"), "{text}");
}

#[test]
fn boto3_on_one_node() {
    let node = TestNode::start(&["--auth-required"]);
    boto3_suite(&node, &[], "single");
    // The same keys over /v1/: written over S3, read over HTTP, and back.
    let over_s3 = node.get("single", "copy.jpg");
    assert_eq!(over_s3.status, 200);
    let body = bytes(70_000, 3);
    assert_eq!(node.put("single", "from-v1", &body).status, 201);
    let signer = Signer::new(&node);
    let read = signer.send("GET", "/single/from-v1", &[], b"", Signer::now());
    assert_eq!(read.status, 200);
    assert_eq!(sha256_hex(&read.body), sha256_hex(&body));
    let etag = read.header("etag").unwrap_or_default().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", sha256_hex(&body)),
        "a key written elsewhere has its SHA-256 as ETag"
    );
}

#[test]
fn a_cluster_serves_s3_at_every_node() {
    let cluster = Cluster::start(3, &[]);
    let nodes: Vec<&TestNode> = cluster.running().collect();
    boto3_suite(nodes[0], &nodes[1..], "clustered");
    for node in &nodes {
        assert_eq!(node.get("clustered", "big.bin").body.len(), 15 * 1024 * 1024 + 1234);
    }
}

fn aws(node: &TestNode, config: &Path, args: &[&str]) -> String {
    let (id, secret) = credentials(node);
    let output = run_bounded(
        Command::new("aws")
            .args(args)
            .args(["--endpoint-url", &endpoint(node)])
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", config),
        TOOL_TIMEOUT,
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "aws {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn s3cmd(config: &Path, args: &[&str]) -> String {
    let output =
        run_bounded(Command::new("s3cmd").arg("--config").arg(config).args(args), TOOL_TIMEOUT);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "s3cmd {args:?} failed:\n{text}\n{errors}");
    assert!(!errors.contains("MD5 Sums don't match"), "s3cmd compared ETags:\n{errors}");
    text
}

fn rclone(node: &TestNode, args: &[&str]) -> String {
    let (id, secret) = credentials(node);
    let output = run_bounded(
        Command::new("rclone")
            // The machine's CA bundle setting breaks rclone's plain-HTTP S3 client.
            .env_remove("AWS_CA_BUNDLE")
            .args(args)
            .args(["--config", "/dev/null", "--s3-provider", "Other", "--s3-force-path-style"])
            .args(["--s3-access-key-id", &id, "--s3-secret-access-key", &secret])
            .args(["--s3-endpoint", &endpoint(node), "--s3-region", "us-east-1"]),
        TOOL_TIMEOUT,
    );
    let errors = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "rclone {args:?} failed:\n{errors}");
    errors
}

fn write_tree(root: &Path) {
    for (path, len) in
        [("a/one.bin", 10_000), ("a/b/two.bin", 200_000), ("c.txt", 5), ("d/e/f.bin", 70_000)]
    {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes(len, len as u64)).unwrap();
    }
}

#[test]
fn s3_through_a_proxy_lands_on_stores() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.add(&["--no-store"]);
    cluster.settle(4, 3);
    let nodes: Vec<&TestNode> = cluster.running().collect();
    let (proxy, stores) = (nodes[3], &nodes[..3]);
    boto3_suite(proxy, stores, "proxied");
    assert_eq!(files_under(&proxy.dir.join("blobs")), 0, "the proxy keeps no blob");
}

#[test]
fn the_aws_cli_s3cmd_and_rclone_round_trip() {
    for tool in ["aws", "s3cmd", "rclone"] {
        assert!(installed(tool), "{tool} is installed by scripts/setup");
    }
    let node = TestNode::start(&["--auth-required"]);
    let work = tempfile::tempdir().unwrap();
    aws_cli(&node, work.path());
    s3cmd_round_trip(&node, work.path());
    let tree = work.path().join("tree");
    rclone(&node, &["mkdir", ":s3:rc"]);
    rclone(&node, &["copy", tree.to_str().unwrap(), ":s3:rc/t"]);
    let log = rclone(&node, &["check", tree.to_str().unwrap(), ":s3:rc/t"]);
    assert!(log.contains("0 differences found"), "{log}");
    assert!(!log.contains("hashes could not be checked"), "rclone compared MD5s:\n{log}");
    std::fs::remove_file(tree.join("c.txt")).unwrap();
    rclone(&node, &["sync", tree.to_str().unwrap(), ":s3:rc/t"]);
    assert_eq!(node.get("rc", "t/c.txt").status, 404, "sync deleted what the source lost");
    let log = rclone(&node, &["check", tree.to_str().unwrap(), ":s3:rc/t"]);
    assert!(log.contains("0 differences found"), "{log}");
}

fn aws_cli(node: &TestNode, work: &Path) {
    let config = work.join("aws-config");
    std::fs::write(
        &config,
        "[default]\ns3 =\n  signature_version = s3v4\n  addressing_style = path\n",
    )
    .unwrap();
    let big = work.join("big.bin");
    let body = bytes(40 << 20, 9);
    std::fs::write(&big, &body).unwrap();
    aws(node, &config, &["s3", "mb", "s3://cli"]);
    aws(node, &config, &["s3", "cp", big.to_str().unwrap(), "s3://cli/big.bin"]);
    let stored = node.get("cli", "big.bin");
    assert_eq!(
        sha256_hex(&stored.body),
        sha256_hex(&body),
        "the 40 MiB upload (multipart) is whole"
    );
    let tree = work.join("tree");
    write_tree(&tree);
    aws(node, &config, &["s3", "sync", tree.to_str().unwrap(), "s3://cli/tree"]);
    let listed = aws(node, &config, &["s3", "ls", "--recursive", "s3://cli/"]);
    for key in ["big.bin", "tree/a/one.bin", "tree/a/b/two.bin", "tree/c.txt", "tree/d/e/f.bin"] {
        assert!(listed.contains(key), "{key} is listed:\n{listed}");
    }
    let url = aws(node, &config, &["s3", "presign", "s3://cli/tree/c.txt", "--expires-in", "300"]);
    let fetched = reply(ureq::get(url.trim()).call());
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, bytes(5, 5));
}

fn s3cmd_round_trip(node: &TestNode, work: &Path) {
    let (id, secret) = credentials(node);
    let host = format!("{}:{}", node.host.address, node.s3_port);
    let config = work.join("s3cfg");
    std::fs::write(
        &config,
        format!(
            "[default]\naccess_key = {id}\nsecret_key = {secret}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
        ),
    )
    .unwrap();
    s3cmd(&config, &["mb", "s3://tools"]);
    let file = work.join("one.bin");
    std::fs::write(&file, bytes(123_456, 4)).unwrap();
    s3cmd(&config, &["put", file.to_str().unwrap(), "s3://tools/one.bin"]);
    let fetched = work.join("fetched.bin");
    s3cmd(&config, &["get", "s3://tools/one.bin", fetched.to_str().unwrap()]);
    assert_eq!(std::fs::read(&fetched).unwrap(), bytes(123_456, 4));
    let listed = s3cmd(&config, &["ls", "s3://tools/"]);
    assert!(listed.contains("s3://tools/one.bin"), "{listed}");
    s3cmd(&config, &["sync", work.join("tree").to_str().unwrap(), "s3://tools/synced/"]);
    assert_eq!(node.get("tools", "synced/tree/a/b/two.bin").body, bytes(200_000, 200_000));
    s3cmd(&config, &["del", "s3://tools/one.bin"]);
    assert_eq!(node.get("tools", "one.bin").status, 404);
}

/// Signs requests by hand, to send what no client library would.
struct Signer {
    base: String,
    host: String,
    id: String,
    secret: String,
}

impl Signer {
    fn new(node: &TestNode) -> Signer {
        let (id, secret) = credentials(node);
        let host = format!("{}:{}", node.host.address, node.s3_port);
        Signer { base: format!("http://{host}"), host, id, secret }
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn amz_date(at: SystemTime) -> String {
        let text = humantime::format_rfc3339_seconds(at).to_string();
        text.replace(['-', ':'], "")
    }

    /// `path` (already %-encoded) signed with `headers` and `body`'s hash.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        at: SystemTime,
    ) -> Reply {
        let amz_date = Self::amz_date(at);
        let payload = sigv4::sha256_hex(body);
        let mut signed = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), payload.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        signed.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        signed.sort();
        self.send_signed(method, path, &signed, &payload, &amz_date, body, |_| {})
    }

    #[allow(clippy::too_many_arguments)]
    fn send_signed(
        &self,
        method: &str,
        path: &str,
        signed: &[(String, String)],
        payload: &str,
        amz_date: &str,
        body: &[u8],
        tamper: impl Fn(&mut String),
    ) -> Reply {
        let credential = sigv4::Credential::parse(&format!(
            "{}/{}/us-east-1/s3/aws4_request",
            self.id,
            &amz_date[..8]
        ))
        .unwrap();
        let request = sigv4::canonical_request(method, path, "", signed, payload);
        let to_sign = sigv4::string_to_sign(amz_date, &credential.scope(), &request);
        let mut signature =
            sigv4::signature(&sigv4::signing_key(&self.secret, &credential), &to_sign);
        tamper(&mut signature);
        let names: Vec<&str> = signed.iter().map(|(n, _)| n.as_str()).collect();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={},Signature={signature}",
            self.id,
            credential.scope(),
            names.join(";")
        );
        let mut request = ureq::request(method, &format!("{}{path}", self.base))
            .set("authorization", &authorization);
        for (name, value) in signed.iter().filter(|(n, _)| n != "host") {
            request = request.set(name, value);
        }
        reply(request.send_bytes(body))
    }
}

fn assert_s3_error(reply: &Reply, status: u16, code: &str) {
    let text = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, status, "{text}");
    assert!(text.contains(&format!("<Code>{code}</Code>")), "{code} expected:\n{text}");
}

#[test]
fn bad_s3_requests_are_refused_and_change_nothing() {
    let node = TestNode::start(&["--auth-required"]);
    let signer = Signer::new(&node);
    assert_eq!(signer.send("PUT", "/bad", &[], b"", Signer::now()).status, 200, "bucket made");
    assert_eq!(signer.send("PUT", "/bad/good", &[], b"good", Signer::now()).status, 200);

    let wrong = signer.send_signed(
        "PUT",
        "/bad/k1",
        &[
            ("host".into(), signer.host.clone()),
            ("x-amz-content-sha256".into(), sigv4::sha256_hex(b"x")),
            ("x-amz-date".into(), Signer::amz_date(Signer::now())),
        ],
        &sigv4::sha256_hex(b"x"),
        &Signer::amz_date(Signer::now()),
        b"x",
        |sig| sig.replace_range(0..2, if sig.starts_with("00") { "11" } else { "00" }),
    );
    assert_s3_error(&wrong, 403, "SignatureDoesNotMatch");
    let skewed =
        signer.send("PUT", "/bad/k2", &[], b"x", Signer::now() - Duration::from_secs(20 * 60));
    assert_s3_error(&skewed, 403, "RequestTimeTooSkewed");
    let long_key = format!("/bad/{}", "k".repeat(1025));
    assert_s3_error(
        &signer.send("PUT", &long_key, &[], b"x", Signer::now()),
        400,
        "KeyTooLongError",
    );
    let lying = signer.send_lying_hash();
    assert_s3_error(&lying, 400, "XAmzContentSHA256Mismatch");
    assert_s3_error(&signer.chunked("/bad/k4", true, 11), 403, "SignatureDoesNotMatch");
    assert_s3_error(&signer.chunked("/bad/k5", false, 100), 400, "IncompleteBody");
    assert_eq!(signer.chunked("/bad/k6", false, 11).status, 200, "a good chunked body is taken");
    assert_eq!(node.get("bad", "k6").body, b"hello world");
    let expired = format!(
        "{}/bad/good?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}%2F20200101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20200101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
        signer.base, signer.id
    );
    assert_s3_error(&reply(ureq::get(&expired).call()), 403, "AccessDenied");
    let anonymous = reply(ureq::get(&format!("{}/bad/good", signer.base)).call());
    assert_s3_error(&anonymous, 403, "AccessDenied");
    let public = serde_json::json!({ "public_read": true }).to_string();
    let made = common::http::post(&node.url("/v1/admin/domains/bad")).send_string(&public);
    assert_eq!(reply(made).status, 200, "the domain is made public-read");
    let anonymous = reply(ureq::get(&format!("{}/bad/good", signer.base)).call());
    assert_eq!(
        (anonymous.status, anonymous.body.as_slice()),
        (200, &b"good"[..]),
        "anyone reads it now"
    );
    let anonymous_put = reply(ureq::put(&format!("{}/bad/k1", signer.base)).send_bytes(b"x"));
    assert_s3_error(&anonymous_put, 403, "AccessDenied");
    // Multipart parts live in a domain no client names.
    assert_eq!(node.put("_parts", "bad/x/00001", b"forged").status, 404);
    assert_eq!(node.get("_parts", "bad/x/00001").status, 404);
    for key in ["k1", "k2", "k3", "k4", "k5"] {
        assert_eq!(node.get("bad", key).status, 404, "{key} was not stored");
    }
    assert_eq!(node.get("bad", "good").body, b"good", "the good key is as it was");
}

impl Signer {
    /// A PUT whose signed SHA-256 is another body's.
    fn send_lying_hash(&self) -> Reply {
        let amz_date = Self::amz_date(Self::now());
        let claimed = sigv4::sha256_hex(b"what was signed");
        let signed = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), claimed.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        self.send_signed("PUT", "/bad/k3", &signed, &claimed, &amz_date, b"what was sent", |_| {})
    }

    /// A signed aws-chunked PUT of "hello world" declared `declared` bytes
    /// long; `tamper` breaks the second chunk's signature.
    fn chunked(&self, path: &str, tamper: bool, declared: usize) -> Reply {
        let amz_date = Self::amz_date(Self::now());
        let streaming = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
        let declared = declared.to_string();
        let mut signed = vec![
            ("content-encoding".to_owned(), "aws-chunked".to_owned()),
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), streaming.to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            ("x-amz-decoded-content-length".to_owned(), declared),
        ];
        signed.sort();
        let credential = sigv4::Credential::parse(&format!(
            "{}/{}/us-east-1/s3/aws4_request",
            self.id,
            &amz_date[..8]
        ))
        .unwrap();
        let key = sigv4::signing_key(&self.secret, &credential);
        let request = sigv4::canonical_request("PUT", path, "", &signed, streaming);
        let seed = sigv4::signature(
            &key,
            &sigv4::string_to_sign(&amz_date, &credential.scope(), &request),
        );
        let chunk_sig = |previous: &str, data: &[u8]| {
            let to_sign = sigv4::chunk_string_to_sign(
                &amz_date,
                &credential.scope(),
                previous,
                &sigv4::sha256_hex(data),
            );
            sigv4::signature(&key, &to_sign)
        };
        let first = chunk_sig(&seed, b"hello ");
        let mut second = chunk_sig(&first, b"world");
        let last = chunk_sig(&second, b"");
        if tamper {
            second = "0".repeat(64);
        }
        let body = format!(
            "6;chunk-signature={first}\r\nhello \r\n5;chunk-signature={second}\r\nworld\r\n0;chunk-signature={last}\r\n\r\n"
        );
        self.send_signed("PUT", path, &signed, streaming, &amz_date, body.as_bytes(), |_| {})
    }
}

#[test]
fn virtual_host_style_names_the_bucket_by_its_host() {
    let node = TestNode::start(&["--s3-domain", "s3.test"]);
    let base = endpoint(&node);
    let host = format!("vhb.s3.test:{}", node.s3_port);
    assert_eq!(reply(ureq::put(&format!("{base}/vhb")).call()).status, 200, "bucket made");
    let put = ureq::put(&format!("{base}/dir/key.txt")).set("Host", &host).send_bytes(b"by host");
    assert_eq!(reply(put).status, 200);
    assert_eq!(node.get("vhb", "dir/key.txt").body, b"by host", "the Host named the bucket");
    let got = reply(ureq::get(&format!("{base}/dir/key.txt")).set("Host", &host).call());
    assert_eq!(got.body, b"by host");
    let path_style = reply(ureq::get(&format!("{base}/vhb/dir/key.txt")).call());
    assert_eq!(path_style.body, b"by host", "path style works beside it");
}
