//! Keeps the tree honest: the README's code map names every source file,
//! every `docs/design.md §N` reference points at a section, crates depend
//! only on the crates below them, frontends never name each other, and
//! only the node and cluster crates write metadata.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Crate folder → the cairn crates it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("engine", &[]),
    ("net", &[]),
    ("raft", &[]),
    ("cluster", &["cairn-engine", "cairn-net", "cairn-raft"]),
    ("node", &["cairn-engine", "cairn-net", "cairn-raft", "cairn-cluster"]),
    ("api", &["cairn-engine", "cairn-net", "cairn-raft", "cairn-cluster", "cairn-node"]),
];

/// The frontends of `api/src`: none may name another (only the router and
/// the crate root name them all), and the plumbing names none.
const FRONTENDS: &[&str] = &["v1", "dav", "mogile", "s3"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A source file's text without its `#[cfg(test)]` module (tests may
/// build records by hand).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn code_map() -> String {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme.find("## Code map").expect("README has a code map");
    let rest = &readme[start + 2..];
    let end = rest.find("\n## ").map_or(rest.len(), |at| at + 2);
    rest[..end].to_string()
}

#[test]
fn the_code_map_names_every_source_file() {
    let map = code_map();
    let mut missing = Vec::new();
    for folder in ["engine", "net", "raft", "cluster", "node", "api", "."] {
        let src = Path::new(ROOT).join(folder).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            let name = match relative.strip_suffix("/mod.rs") {
                Some(dir) => format!("{dir}/"),
                None => relative,
            };
            if name == "lib.rs" || name == "main.rs" {
                continue;
            }
            if !map.contains(&format!("`{name}`")) {
                missing.push(format!("{folder}/src/{name}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in the README's code map: {missing:?}");
}

#[test]
fn design_references_point_at_sections() {
    let design = fs::read_to_string(Path::new(ROOT).join("docs/design.md")).unwrap();
    let sections: BTreeSet<String> = design
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .filter_map(|title| title.split_once(". ").map(|(number, _)| number.to_string()))
        .collect();
    let mut files = Vec::new();
    for folder in ["engine", "net", "raft", "cluster", "node", "api", "src", "tests", "docs"] {
        rust_files(&Path::new(ROOT).join(folder), &mut files);
    }
    for doc in ["README.md", "engine/FORMAT.md", "net/PROTOCOL.md", "docs/mogilefs.md"] {
        files.push(Path::new(ROOT).join(doc));
    }
    let mut broken = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("docs/design.md §") {
            // "§5", "§4–§6", "§1, §7": every number after the reference.
            let tail = &text[at + "docs/design.md ".len()..];
            let end = tail.find([')', '\n', ':']).unwrap_or(tail.len());
            for part in tail[..end].split('§').skip(1) {
                let number: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
                if !number.is_empty() && !sections.contains(&number) {
                    broken.push(format!("{}: §{number}", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "references to no section of docs/design.md: {broken:?}");
}

#[test]
fn crates_depend_only_on_the_layers_below() {
    for (folder, allowed) in LAYERS {
        let manifest = fs::read_to_string(Path::new(ROOT).join(folder).join("Cargo.toml")).unwrap();
        let dependencies = manifest
            .split("[dependencies]")
            .nth(1)
            .map(|rest| rest.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        for line in dependencies.lines() {
            let name = line.split(['.', ' ', '=']).next().unwrap_or("");
            if name.starts_with("cairn") {
                assert!(allowed.contains(&name), "{folder} may not depend on {name}");
            }
        }
    }
}

#[test]
fn no_frontend_names_another() {
    let api = Path::new(ROOT).join("api/src");
    for folder in FRONTENDS.iter().chain(&["http"]) {
        let mut files = Vec::new();
        rust_files(&api.join(folder), &mut files);
        for file in files {
            let code = code_of(&file);
            for other in FRONTENDS.iter().chain(&["router"]).filter(|other| *other != folder) {
                assert!(
                    !code.contains(&format!("crate::{other}")),
                    "{} names crate::{other}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn only_the_node_and_the_cluster_write_metadata() {
    let mut files = Vec::new();
    rust_files(&Path::new(ROOT).join("api/src"), &mut files);
    rust_files(&Path::new(ROOT).join("src"), &mut files);
    for file in files {
        let code = code_of(&file);
        for write in ["Batch::default()", ".commit(", ".write_unsynced("] {
            assert!(!code.contains(write), "{} writes metadata ({write})", file.display());
        }
    }
}

#[test]
fn every_http_error_code_is_in_the_readme() {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let map = fs::read_to_string(Path::new(ROOT).join("api/src/http/error.rs")).unwrap();
    let codes: Vec<&str> = map
        .lines()
        .filter_map(|line| line.trim().split_once(" => \"").map(|(_, code)| code))
        .filter_map(|code| code.strip_suffix("\","))
        .collect();
    assert!(codes.len() > 40, "the error map was read: {codes:?}");
    for code in codes {
        assert!(readme.contains(&format!("`{code}`")), "error code {code} is not in the README");
    }
}
