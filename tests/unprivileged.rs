//! The node as an unprivileged service: no CAP_IPC_LOCK and the 8 MiB
//! locked-memory limit of the machines we ship to. glommio must register
//! its buffers within that limit, and the node must serve. (Tests run as
//! root, as CI does, so they can drop to `nobody`.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bytes, reply, wait_for};

const NOBODY: &str = "65534";

#[test]
fn node_serves_as_nobody_within_an_8_mib_memlock_limit() {
    let dir = tempfile::Builder::new().prefix("cairn-nobody-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // The test binary's directory may not be reachable by nobody: run a copy.
    let binary = dir.path().join("cairn");
    std::fs::copy(env!("CARGO_BIN_EXE_cairn"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("log");
    let script = format!(
        "ulimit -l 8192 && exec {} serve --data {} --listen 127.0.0.1:0 --mogile-listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 --peer-listen 127.0.0.1:0 --shards 2 2>{}",
        binary.display(),
        data.display(),
        log.display()
    );
    let mut child = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "--inh-caps=-all"])
        .args(["sh", "-c", &script])
        .env("CAIRN_LOG", "info")
        .stdout(Stdio::null())
        .spawn()
        .expect("setpriv (util-linux) runs");
    let port = wait_for(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(data.join("ports.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["http"].as_u64()
    });
    let result = std::panic::catch_unwind(|| {
        let port = port.expect("node started as nobody");
        let url = format!("http://127.0.0.1:{port}/v1/low/key");
        let body = bytes(300_000, 5);
        assert_eq!(reply(common::http::put(&url).send_bytes(&body)).status, 201);
        assert_eq!(reply(common::http::get(&url).call()).body, body);
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!log.contains("registering buffers"), "buffer registration failed:\n{log}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
