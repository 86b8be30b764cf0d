//! ARCHITECTURE.md is the map of src/: every file under src/ is on it, and
//! every file it names exists. Drift fails here.

use std::path::Path;

/// Every .rs file under `dir`, as a path from the checkout ("src/verify/mod.rs").
fn files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The tree's files as full paths, with the line count the map gives (if
/// any). Depth is indentation: a `dir/` line opens a directory for the lines
/// indented deeper than it; `protect/tests.rs` names a file in a subdirectory.
fn mapped(tree: &str) -> Vec<(String, Option<usize>)> {
    let mut dirs: Vec<(usize, String)> = Vec::new();
    let mut out = Vec::new();
    for line in tree.lines() {
        let indent = line.len() - line.trim_start().len();
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        while dirs.last().is_some_and(|(i, _)| *i >= indent) {
            dirs.pop();
        }
        let prefix: Vec<&str> = dirs.iter().map(|(_, d)| d.as_str()).collect();
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", prefix.join("/"))
        };
        if let Some(dir) = name.strip_suffix('/') {
            dirs.push((indent, dir.to_owned()));
        } else if name.ends_with(".rs") {
            let count = words.next().and_then(|w| w.parse().ok());
            out.push((path, count));
        }
    }
    out
}

#[test]
fn every_source_file_is_on_the_map_and_the_map_names_no_missing_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let tree = map
        .split("```")
        .nth(1)
        .expect("the tree is the first fenced block");
    let named = mapped(tree);
    let mut actual = Vec::new();
    files(root, &root.join("src"), &mut actual);
    let missing: Vec<&String> = actual
        .iter()
        .filter(|f| !named.iter().any(|(n, _)| n == *f))
        .collect();
    assert!(
        missing.is_empty(),
        "not on ARCHITECTURE.md's tree: {missing:?}"
    );
    let gone: Vec<&String> = named
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !actual.contains(n))
        .collect();
    assert!(gone.is_empty(), "on the tree but not in src/: {gone:?}");
    // The sizes it shows are the sizes there are (within a tenth, or 15 lines).
    let stale: Vec<String> = named
        .iter()
        .filter_map(|(path, count)| {
            let count = (*count)?;
            let real = std::fs::read_to_string(root.join(path))
                .unwrap()
                .lines()
                .count();
            let slack = (real / 10).max(15);
            (real.abs_diff(count) > slack).then(|| format!("{path}: map says {count}, has {real}"))
        })
        .collect();
    assert!(stale.is_empty(), "stale line counts on the map: {stale:#?}");
}

/// The `crate::` modules each top-level module of src/ uses (tests excluded).
fn computed_edges(
    root: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.ends_with("tests.rs") {
                continue;
            }
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_owned();
            if top == "main" || top == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    edges.entry(top.clone()).or_default().insert(name);
                }
            }
        }
    }
    edges
}

/// The diagram in ARCHITECTURE.md is the code's own: every `crate::` use
/// between top-level modules is listed, every listed one is used, and the
/// graph has no cycle.
#[test]
fn the_dependency_list_is_exactly_the_codes_and_has_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let block = map
        .split("```deps\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```deps block");
    let mut listed: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let (from, to) = line.split_once('→').expect("`from → a, b`");
        listed.insert(
            from.trim().to_owned(),
            to.split(',').map(|t| t.trim().to_owned()).collect(),
        );
    }
    let code = computed_edges(&root.join("src"));
    assert_eq!(
        listed, code,
        "ARCHITECTURE.md's deps block differs from the code"
    );
    // No cycle: repeatedly remove modules nothing left depends on.
    let mut left = code.clone();
    while !left.is_empty() {
        let used: std::collections::BTreeSet<String> = left.values().flatten().cloned().collect();
        let free: Vec<String> = left
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        assert!(
            !free.is_empty(),
            "a dependency cycle among {:?}",
            left.keys()
        );
        for k in free {
            left.remove(&k);
        }
    }
}

/// Every function of src/ (tests excluded) with its length in lines and
/// its parameter count (`self` not counted): a line-based reading of
/// rustfmt's layout, which is all src/ is written in.
fn functions(root: &Path) -> Vec<(String, usize, usize)> {
    let mut files = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                files.push(path);
            }
        }
    }
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if line.trim_start().starts_with("mod tests") {
                break;
            }
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "pub(super) fn ",
                "async fn ",
                "pub(crate) async fn ",
                "pub(super) async fn ",
                "pub async fn ",
                "const fn ",
                "pub(crate) const fn ",
            ]
            .iter()
            .any(|p| trimmed.starts_with(p));
            if !is_fn {
                i += 1;
                continue;
            }
            let name = trimmed
                .split("fn ")
                .nth(1)
                .unwrap()
                .split(['(', '<'])
                .next()
                .unwrap()
                .to_owned();
            // The signature runs to the line with the body's `{` (or `;`).
            let mut sig = String::new();
            let mut j = i;
            while !lines[j].contains('{') && !lines[j].trim_end().ends_with(';') {
                sig.push_str(lines[j]);
                j += 1;
            }
            sig.push_str(lines[j]);
            if lines[j].trim_end().ends_with(';') {
                i = j + 1;
                continue;
            }
            let close = format!("{}}}", " ".repeat(indent));
            let mut k = j + 1;
            while k < lines.len() && lines[k].trim_end() != close {
                k += 1;
            }
            let params = {
                let inner = &sig[sig.find('(').unwrap() + 1..];
                let mut depth = 1;
                let mut count = 0;
                let mut current = String::new();
                for c in inner.chars() {
                    match c {
                        '(' | '<' | '[' => depth += 1,
                        ')' | '>' | ']' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if c == ',' && depth == 1 {
                        if !current.trim().is_empty() && !current.trim().ends_with("self") {
                            count += 1;
                        }
                        current.clear();
                    } else {
                        current.push(c);
                    }
                }
                if !current.trim().is_empty() && !current.trim().ends_with("self") {
                    count += 1;
                }
                count
            };
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            out.push((format!("{rel} {name}"), k - i + 1, params));
            i = j + 1;
        }
    }
    out
}

#[test]
fn functions_stay_short_and_take_few_parameters() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let all = functions(root);
    assert!(
        all.len() > 300,
        "the reading found only {} functions",
        all.len()
    );
    let long: Vec<String> = all
        .iter()
        .filter(|(_, lines, _)| *lines > 80)
        .map(|(name, lines, _)| format!("{name}: {lines} lines"))
        .collect();
    assert!(long.is_empty(), "over 80 lines: {long:?}");
    let wide: Vec<String> = all
        .iter()
        .filter(|(_, _, params)| *params > 5)
        .map(|(name, _, params)| format!("{name}: {params} parameters"))
        .collect();
    assert!(wide.is_empty(), "over 5 parameters: {wide:?}");
    // The request phases (proxy/'s stages) at most 60 lines each.
    let stages = ["mod", "admission", "callback", "handshakes", "delivery"];
    let phases: Vec<String> = all
        .iter()
        .filter(|(name, lines, _)| {
            let stage = stages
                .iter()
                .any(|s| name.starts_with(&format!("src/proxy/{s}.rs ")));
            stage && *lines > 60
        })
        .map(|(name, lines, _)| format!("{name}: {lines} lines"))
        .collect();
    assert!(
        phases.is_empty(),
        "request phases over 60 lines: {phases:?}"
    );
    let (name, lines, _) = all.iter().max_by_key(|(_, l, _)| *l).unwrap();
    let (pname, _, params) = all.iter().max_by_key(|(_, _, p)| *p).unwrap();
    println!("longest: {name} ({lines} lines); most parameters: {pname} ({params})");
}

/// THREATS.md names its attacking tests as `tests/FILE.rs::name` or
/// `src/PATH.rs::name`: each must exist, as a function of that file, and
/// every promise must name at least one.
#[test]
fn threats_names_only_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let threats = std::fs::read_to_string(root.join("THREATS.md")).expect("THREATS.md");
    let mut missing = Vec::new();
    let mut named = 0;
    let mut section = String::new();
    let mut per_section: Vec<(String, usize)> = Vec::new();
    for line in threats.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_string();
            per_section.push((section.clone(), 0));
            continue;
        }
        for cell in line.split('`').skip(1).step_by(2) {
            let Some((file, name)) = cell.split_once("::") else {
                continue;
            };
            if !(file.starts_with("tests/") || file.starts_with("src/")) || !file.ends_with(".rs") {
                continue;
            }
            named += 1;
            if let Some(last) = per_section.last_mut() {
                last.1 += 1;
            }
            let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            let found =
                text.contains(&format!("fn {name}(")) || text.contains(&format!("fn {name}<"));
            if !found {
                missing.push(format!("{section}: {file}::{name}"));
            }
        }
    }
    assert!(named > 0, "THREATS.md names no test");
    assert!(
        missing.is_empty(),
        "THREATS.md names tests that do not exist: {missing:#?}"
    );
    let empty: Vec<_> = per_section
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(s, _)| s)
        .collect();
    assert!(
        empty.is_empty(),
        "promises with no attacking test: {empty:?}"
    );
}

/// The README's test command, run without root on a machine missing its
/// peers, stops within a minute, before building, and names every missing
/// peer at once with the line that installs them.
#[test]
fn the_test_command_names_every_missing_peer_before_building() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = tempfile::tempdir().unwrap();
    // A PATH with nothing but what the script itself needs, and an `id`
    // that says "not root".
    let dirname = ["/usr/bin/dirname", "/bin/dirname"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .unwrap();
    std::os::unix::fs::symlink(dirname, bin.path().join("dirname")).unwrap();
    let id = bin.path().join("id");
    std::fs::write(&id, "#!/bin/sh\necho 1000\n").unwrap();
    std::fs::set_permissions(&id, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("/bin/bash")
        .arg(root.join("tests/run"))
        .env_clear()
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    for package in [
        "php-cli",
        "curl",
        "pebble",
        "postgresql-client",
        "nodejs",
        "npm",
        "prometheus",
    ] {
        assert!(
            stderr.contains(&format!("  {package}: ")),
            "{package} not named: {stderr}"
        );
    }
    assert!(
        stderr.contains("sudo apt-get update && sudo apt-get install -y php-cli"),
        "{stderr}"
    );
    assert!(!stderr.contains("cargo"), "it went on to build: {stderr}");
}
