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
