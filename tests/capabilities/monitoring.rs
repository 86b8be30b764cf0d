//! The alert rules and the Grafana dashboard shipped in
//! packaging/monitoring: the rules pass `promtool check rules` and their
//! unit tests (`promtool test rules`), and every metric the rules and the
//! dashboard query is one callgate exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/monitoring")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("promtool is not installed (apt-get install prometheus; .ci/run does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "callgate-alerts.yml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "callgate-alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Each alert has at least one test that expects it to fire.
    let rules = std::fs::read_to_string(dir().join("callgate-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("callgate-alerts.test.yml")).unwrap();
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - "
            )),
            "no test where {alert} fires"
        );
    }
}

/// `callgate_*` series names callgate exports: the names registered in
/// src/metrics.rs and src/metrics/, with the suffixes the exposition format
/// adds.
fn exported() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("metrics.rs")];
    for entry in std::fs::read_dir(root.join("metrics")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let src: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        if !line.trim_end().ends_with("add(") && !line.contains("= add(") {
            continue;
        }
        // add(registry, "name", "help", metric)
        let name = lines
            .by_ref()
            .map(str::trim)
            .find(|l| l.starts_with('"'))
            .unwrap()
            .trim_matches(|c| c == '"' || c == ',');
        for suffix in ["", "_total", "_bucket", "_sum", "_count"] {
            names.insert(format!("callgate_{name}{suffix}"));
        }
    }
    names
}

fn queried(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("callgate_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

#[test]
fn the_rules_and_the_dashboard_query_only_metrics_callgate_exports() {
    let exported = exported();
    assert!(exported.contains("callgate_requests_total"), "{exported:?}");
    let rules = std::fs::read_to_string(dir().join("callgate-alerts.yml")).unwrap();
    let dashboard = std::fs::read_to_string(dir().join("grafana-dashboard.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = parsed["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    let mut exprs = String::new();
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().unwrap());
            exprs.push('\n');
        }
    }
    for (what, text) in [("rules", rules.as_str()), ("dashboard", exprs.as_str())] {
        let unknown: Vec<String> = queried(text)
            .into_iter()
            .filter(|n| !exported.contains(n))
            .collect();
        assert!(
            unknown.is_empty(),
            "the {what} query metrics callgate does not export: {unknown:?}"
        );
    }
}
