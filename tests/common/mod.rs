//! Starts real `cairn` processes on loopback for the integration tests and
//! talks to them like a client would.

#![allow(dead_code)]

pub mod cluster;
pub mod disk;
pub mod history;
pub mod http;
pub mod load;
pub mod netns;
pub mod tracker;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Starts tried with fresh ports before a test gives up.
const START_ATTEMPTS: u32 = 5;
/// Test nodes' ports come from here: below the ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 and up by default).
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A port in `TEST_PORTS` that nothing listens on right now.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: AtomicU64 = AtomicU64::new(0);
    let mut state = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64;
    loop {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let port = TEST_PORTS.start + (state % u64::from(TEST_PORTS.end - TEST_PORTS.start)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// How long a node gets to start before a test gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a node runs: on loopback in the test's own network namespace, or
/// at an address in a namespace of its own (`netns::Net`).
#[derive(Clone, Debug)]
pub struct Host {
    pub netns: Option<String>,
    pub address: String,
}

impl Host {
    pub fn loopback() -> Host {
        Host { netns: None, address: "127.0.0.1".into() }
    }
}

pub struct TestNode {
    pub dir: PathBuf,
    pub host: Host,
    pub base: String,
    pub http_port: u16,
    pub peer_port: u16,
    /// The MogileFS tracker port.
    pub mogile_port: u16,
    pub s3_port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// Environment of the next start (libfaketime, say).
    extra_env: Vec<(String, String)>,
    /// Where its cluster's admin key is, fixed at the first start (a
    /// restart drops the join flags it is found from).
    admin_key: Option<PathBuf>,
    _tempdir: Option<tempfile::TempDir>,
}

impl TestNode {
    pub fn start(extra_args: &[&str]) -> TestNode {
        TestNode::start_on(Host::loopback(), extra_args)
    }

    /// Starts a node on loopback with `env` set for its process.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> TestNode {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TestNode::start_on_with(Host::loopback(), extra_args, env)
    }

    /// Starts a node on `host`, in a temporary data directory.
    pub fn start_on(host: Host, extra_args: &[&str]) -> TestNode {
        TestNode::start_on_with(host, extra_args, Vec::new())
    }

    fn start_on_with(
        host: Host,
        extra_args: &[&str],
        extra_env: Vec<(String, String)>,
    ) -> TestNode {
        let tempdir = tempfile::Builder::new().prefix("cairn-test-").tempdir().expect("tempdir");
        let dir = tempdir.path().join("data");
        let mut node = TestNode {
            dir,
            host,
            base: String::new(),
            http_port: 0,
            peer_port: 0,
            mogile_port: 0,
            s3_port: 0,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env,
            admin_key: None,
            _tempdir: Some(tempdir),
        };
        node.launch();
        node
    }

    /// Starts a node on an existing data directory that the caller owns.
    pub fn start_in(dir: &Path, extra_args: &[&str]) -> TestNode {
        let mut node = TestNode {
            dir: dir.to_path_buf(),
            host: Host::loopback(),
            base: String::new(),
            http_port: 0,
            peer_port: 0,
            mogile_port: 0,
            s3_port: 0,
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
            admin_key: None,
            _tempdir: None,
        };
        node.launch();
        node
    }

    /// Starts the process; a restart keeps the ports of the first start,
    /// as a real node's fixed ports would be. The ports are picked below
    /// the kernel's ephemeral range, so that while a node is down no
    /// outgoing connection (or port-0 listener) of another test takes its
    /// port; a port another test picked at the same moment means a retry.
    fn launch(&mut self) {
        let first_start = self.http_port == 0;
        for attempt in 1..=START_ATTEMPTS {
            if first_start && self.host.netns.is_some() {
                // A namespace of its own: every port is free.
                (self.http_port, self.peer_port, self.mogile_port) = (7500, 7501, 7001);
                self.s3_port = 7800;
            } else if first_start {
                (self.http_port, self.peer_port, self.mogile_port) =
                    (free_port(), free_port(), free_port());
                self.s3_port = free_port();
            }
            if self.try_launch() {
                return;
            }
            self.kill();
            assert!(first_start && attempt < START_ATTEMPTS, "node did not start");
        }
    }

    /// Starts the process on the chosen ports; false if it exits first.
    fn try_launch(&mut self) -> bool {
        let _ = std::fs::remove_file(self.dir.join("ports.json"));
        // CAIRN_TEST_BIN runs the tests against another build (an older
        // one, to watch a test fail before its fix).
        let binary = std::env::var("CAIRN_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cairn").to_owned());
        let mut command = match &self.host.netns {
            // `ip netns exec` execs the binary: the child is the node itself.
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, &binary]);
                command
            }
            None => Command::new(binary),
        };
        let address = &self.host.address;
        command
            .arg("serve")
            .arg("--data")
            .arg(&self.dir)
            .args(["--listen", &format!("{address}:{}", self.http_port)])
            .args(["--peer-listen", &format!("{address}:{}", self.peer_port)])
            .args(["--mogile-listen", &format!("{address}:{}", self.mogile_port)])
            .args(["--s3-listen", &format!("{address}:{}", self.s3_port)])
            .args(&self.extra_args)
            .env("CAIRN_LOG", "warn,openraft=off")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if !self.extra_args.iter().any(|a| a == "--shards") {
            command.args(["--shards", "2"]);
        }
        self.child = Some(command.spawn().expect("spawn cairn"));
        let key = match &self.admin_key {
            Some(key) => key.clone(),
            None => self.admin_key.insert(self.admin_key_file()).clone(),
        };
        http::register(format!("{address}:{}", self.http_port), key);
        let ports = self.dir.join("ports.json");
        let started = wait_for(START_TIMEOUT, || {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(None);
            }
            let text = std::fs::read_to_string(&ports).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            let port = |name: &str| value[name].as_u64().map(|p| p as u16);
            Some(Some((port("http")?, port("peer")?, port("mogile")?, port("s3")?)))
        })
        .expect("node wrote ports.json or exited");
        let Some((http, peer, mogile, s3)) = started else {
            return false;
        };
        (self.http_port, self.peer_port, self.mogile_port, self.s3_port) = (http, peer, mogile, s3);
        self.base = format!("http://{}:{http}", self.host.address);
        // Any answer will do: a node of a cluster whose key this harness
        // does not know answers 401.
        let answering = |result: Result<ureq::Response, ureq::Error>| match result {
            Ok(_) | Err(ureq::Error::Status(..)) => Some(()),
            Err(_) => None,
        };
        wait_for(START_TIMEOUT, || answering(http::get(&self.url("/v1/status")).call()))
            .expect("node answers /v1/status");
        true
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn key_url(&self, domain: &str, key: &str) -> String {
        self.url(&format!("/v1/{domain}/{key}"))
    }

    /// The node's next start sees a wall clock `offset_s` seconds off
    /// (negative: behind), through libfaketime; monotonic time is real.
    pub fn set_clock_offset(&mut self, offset_s: i64) {
        let library = std::fs::read_dir("/usr/lib")
            .unwrap()
            .flatten()
            .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
            .find(|path| path.exists())
            .expect("libfaketime is installed (scripts/setup)");
        self.extra_env = vec![
            ("LD_PRELOAD".into(), library.display().to_string()),
            ("FAKETIME".into(), format!("{offset_s:+}")),
            ("DONT_FAKE_MONOTONIC".into(), "1".into()),
        ];
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// kill -9, then start again with only the flags a member needs (no
    /// `--join`: a member rejoins from its data directory).
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// kill -9, empty the data directory (a replaced disk), and start again
    /// on the same addresses, joining through `seed` as a new member.
    pub fn wipe_and_rejoin(&mut self, seed: &TestNode) {
        self.kill();
        std::fs::remove_dir_all(&self.dir).expect("wipe the data directory");
        let (address, token) = (seed.peer_address(), seed.join_token_file());
        self.drop_join_args();
        self.admin_key = None;
        self.extra_args.extend(["--join".into(), address, "--join-token-file".into(), token]);
        self.launch();
    }

    /// Starts a killed node again (see [`TestNode::restart`]).
    pub fn start_again(&mut self) {
        self.drop_join_args();
        self.launch();
    }

    fn drop_join_args(&mut self) {
        let mut kept = Vec::new();
        let mut args = std::mem::take(&mut self.extra_args).into_iter();
        while let Some(arg) = args.next() {
            if arg == "--join" || arg == "--join-token-file" {
                args.next();
            } else {
                kept.push(arg);
            }
        }
        self.extra_args = kept;
    }

    pub fn peer_address(&self) -> String {
        format!("{}:{}", self.host.address, self.peer_port)
    }

    /// Where this node's cluster keeps its first admin key: in the data
    /// directory of the node it was founded on (the one a joiner's
    /// `--join-token-file` is in).
    pub fn admin_key_file(&self) -> PathBuf {
        let joined_through =
            self.extra_args.iter().skip_while(|a| *a != "--join-token-file").nth(1);
        match joined_through {
            Some(secret) => Path::new(secret).with_file_name("admin-key"),
            None => self.dir.join("admin-key"),
        }
    }

    /// The file holding the cluster secret, for `--join-token-file`.
    pub fn join_token_file(&self) -> String {
        self.dir.join("cluster-secret").to_str().expect("a UTF-8 path").to_owned()
    }

    /// The cluster secret itself.
    pub fn cluster_secret(&self) -> String {
        std::fs::read_to_string(self.join_token_file()).expect("cluster-secret").trim().to_owned()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill {signal}");
    }

    pub fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.dir.join("tmp")).map(|d| d.count()).unwrap_or(0)
    }

    pub fn fid_path(&self, sha256_hex: &str) -> PathBuf {
        self.dir
            .join("blobs")
            .join(&sha256_hex[0..3])
            .join(&sha256_hex[3..6])
            .join(format!("{}.fid", &sha256_hex[6..]))
    }

    /// A WebDAV request (`path` under `/dav/`), through ureq (which
    /// normalises dot segments).
    pub fn dav(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut request = http::request(method, &self.url(&format!("/dav/{path}")));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        reply(request.send_bytes(body))
    }

    pub fn put(&self, domain: &str, key: &str, body: &[u8]) -> Reply {
        reply(http::put(&self.key_url(domain, key)).send_bytes(body))
    }

    pub fn get(&self, domain: &str, key: &str) -> Reply {
        reply(http::get(&self.key_url(domain, key)).call())
    }

    pub fn status(&self) -> serde_json::Value {
        reply(http::get(&self.url("/v1/status")).call()).json()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response read whole: status, headers we look at, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Asserts a JSON error answer with this status and error code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.json()["error"], code);
    }
}

pub fn reply(result: Result<ureq::Response, ureq::Error>) -> Reply {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("request failed: {error}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|name| {
            let value = response.header(&name).unwrap_or_default().to_string();
            (name, value)
        })
        .collect();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).expect("read body");
    Reply { status, headers, body }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Polls `probe` until it answers or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a program is installed; tells loudly when it is not.
pub fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "\n!!!!!!!! SKIPPED: `{program}` is not installed; run scripts/setup (CI installs it) !!!!!!!!\n"
        );
    }
    found
}

/// Runs a command, killing it if it outlives `timeout`.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Files under `dir`, in every folder below it.
pub fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| if entry.path().is_dir() { files_under(&entry.path()) } else { 1 })
        .sum()
}
