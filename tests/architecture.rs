//! ARCHITECTURE.md is the map of src/: every file under src/ is on it, and
//! every file it names exists. Drift fails here.

use std::path::Path;

fn files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn every_source_file_is_on_the_map_and_the_map_names_no_missing_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let tree = map
        .split("```")
        .nth(1)
        .expect("the tree is the first fenced block");
    let named: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.ends_with(".rs"))
        .map(|w| w.rsplit('/').next().unwrap())
        .collect();
    let mut actual = Vec::new();
    files(&root.join("src"), &mut actual);
    let missing: Vec<&String> = actual
        .iter()
        .filter(|f| !named.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "not on ARCHITECTURE.md's tree: {missing:?}"
    );
    let gone: Vec<&&str> = named
        .iter()
        .filter(|n| !actual.iter().any(|a| a == *n))
        .collect();
    assert!(gone.is_empty(), "on the tree but not in src/: {gone:?}");
}
