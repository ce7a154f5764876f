//! The client commands of the `cairn` binary against a real node.

mod common;

use std::process::Command;

use common::{bytes, TestNode};

fn cairn(node: &TestNode, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["--server", &node.base])
        .args(args)
        .output()
        .expect("run cairn")
}

#[test]
fn put_get_stat_ls_rm_through_the_cli() {
    let node = TestNode::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.bin");
    let target = dir.path().join("out.bin");
    let data = bytes(2 << 20, 5);
    std::fs::write(&source, &data).unwrap();

    let put = cairn(&node, &["put", "files/a dir/in.bin", source.to_str().unwrap()]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&put.stdout).unwrap();
    assert_eq!(answer["size"], data.len() as u64);
    assert_eq!(answer["key"], "a dir/in.bin");

    let get = cairn(&node, &["get", "files/a dir/in.bin", target.to_str().unwrap()]);
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    assert!(std::fs::read(&target).unwrap() == data);

    let stat = cairn(&node, &["stat", "files/a dir/in.bin"]);
    let stat: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    assert_eq!(stat["state"], "need-replication");

    let ls = cairn(&node, &["ls", "files", "--prefix", "a "]);
    assert_eq!(String::from_utf8(ls.stdout).unwrap(), format!("{}\ta dir/in.bin\n", data.len()));

    let status = cairn(&node, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["node_id"].is_string());

    assert!(cairn(&node, &["rm", "files/a dir/in.bin"]).status.success());
    let gone = cairn(&node, &["get", "files/a dir/in.bin", "-"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
    let bad = cairn(&node, &["put", "Bad/k", source.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("400"));
}

/// `cairn serve` run to its exit, for start-up refusals.
fn serve_refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["serve", "--data", data.path().to_str().unwrap(), "--shards", "1"])
        .args(["--listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"])
        .args(["--mogile-listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run cairn serve");
    assert!(!output.status.success(), "cairn serve {args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_cluster_secret_is_never_on_the_command_line_nor_readable_by_others() {
    use std::os::unix::fs::PermissionsExt as _;
    let seed = TestNode::start(&["--shards", "1"]);
    let secret = std::fs::read_to_string(seed.join_token_file()).unwrap();
    let join = ["--join", &seed.peer_address()];
    // On the command line every user would see it in `ps`.
    let told = serve_refused(&[&join[..], &["--join-token", secret.trim()]].concat(), &[]);
    assert!(told.contains("--join-token-file"), "{told}");
    // A token file others may read is refused, and says how to fix it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, &secret).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let told =
        serve_refused(&[&join[..], &["--join-token-file", file.to_str().unwrap()]].concat(), &[]);
    assert!(told.contains("chmod 600"), "{told}");
    // Joining with no token at all says where to get it.
    let told = serve_refused(&join, &[]);
    assert!(told.contains("cairn admin join-token"), "{told}");
    // The printed token is the one a joiner takes (here from the environment).
    let printed = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["admin", "join-token", "--data", seed.dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), secret.trim());
    let joiner = TestNode::start_with_env(
        &["--shards", "1", "--join", &seed.peer_address()],
        &[("CAIRN_JOIN_TOKEN", secret.trim())],
    );
    let joined = common::wait_for(std::time::Duration::from_secs(30), || {
        let report = common::cluster::cluster_report(&seed)?;
        (report["members"].as_array()?.len() == 2).then_some(())
    });
    drop(joiner);
    assert!(joined.is_some(), "a node given the token through CAIRN_JOIN_TOKEN joins");
}

#[test]
fn keys_are_made_granted_used_and_revoked_through_the_cli() {
    let node = TestNode::start(&["--shards", "1", "--auth-required"]);
    let data = node.dir.to_str().unwrap().to_owned();
    let admin_file = node.dir.join("admin-key");
    let made =
        common::wait_for(std::time::Duration::from_secs(30), || admin_file.exists().then_some(()));
    assert!(made.is_some(), "the node made its admin key");
    // The client finds the admin key in CAIRN_DATA by itself.
    let as_admin = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args(["--server", &node.base])
            .args(args)
            .env("CAIRN_DATA", &data)
            .output()
            .expect("run cairn");
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    let as_key = |key: Option<&str>, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command.args(["--server", &node.base]).args(args).env("CAIRN_DATA", "/nonexistent");
        if let Some(key) = key {
            command.env("CAIRN_KEY", key);
        }
        command.output().expect("run cairn")
    };
    let made: serde_json::Value =
        serde_json::from_slice(&as_admin(&["admin", "key", "add", "--name", "app"])).unwrap();
    let (id, secret) = (made["id"].as_str().unwrap(), made["secret"].as_str().unwrap());
    let key = format!("{id}:{secret}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"through a key").unwrap();
    let file = file.to_str().unwrap();

    let refused = as_key(Some(&key), &["put", "d/k", file]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403"), "no grant yet");
    as_admin(&["admin", "key", "allow", id, "d", "--read", "--write"]);
    let put = as_key(Some(&key), &["put", "d/k", file]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let listed = String::from_utf8(as_admin(&["admin", "key", "ls"])).unwrap();
    assert!(listed.contains(id) && listed.contains("\"write\": true") && !listed.contains(secret));
    let anonymous = as_key(None, &["get", "d/k", "-"]);
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("401"));
    as_admin(&["admin", "domain", "set", "d", "public-read=true"]);
    let public = as_key(None, &["get", "d/k", "-"]);
    assert_eq!(public.stdout, b"through a key", "{}", String::from_utf8_lossy(&public.stderr));
    as_admin(&["admin", "key", "rm", id]);
    let revoked = as_key(Some(&key), &["put", "d/k", file]);
    assert!(String::from_utf8_lossy(&revoked.stderr).contains("401"), "revoked");
}
