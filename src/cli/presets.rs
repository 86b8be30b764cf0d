//! `callgate presets`: the providers callgate knows, as data: each one's
//! scheme, headers, replay default and the source of its test vector.

use std::fmt::Write;

use crate::config::presets::{Defaults, Preset, Signed};

/// One line per preset.
pub(super) fn list() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<44} {:<10} documentation; test vector",
        "preset", "scheme", "replay"
    );
    for p in Preset::all() {
        let (docs, vector) = p.source();
        let _ = writeln!(
            out,
            "{:<18} {:<44} {:<10} {docs}; {vector}",
            p.name(),
            scheme(&p.defaults()),
            replay(p),
        );
    }
    out
}

/// The list as README.md's provider table (a test keeps the two equal).
pub(super) fn markdown() -> String {
    let mut out = String::from(
        "| preset | what it checks | replay window | documentation | test vector |\n|---|---|---|---|---|\n",
    );
    for p in Preset::all() {
        let replay = replay(p);
        let (docs, vector) = p.source();
        let cell = |s: &str| s.replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{}` | {} | {replay} | <{docs}> | {} |",
            p.name(),
            cell(p.summary()),
            cell(vector)
        );
    }
    out
}

/// The preset's default replay window, as written in config ("off": none).
fn replay(p: Preset) -> String {
    p.defaults()
        .dedupe_window
        .map_or("off".into(), |w| humantime::format_duration(w).to_string())
}

/// A one-line summary of what a preset checks.
fn scheme(d: &Defaults) -> String {
    match &d.hmac {
        Some(h) => format!(
            "hmac-{} {} in {}",
            h.algorithm.name(),
            signed(h.scheme.signed),
            h.header
        ),
        None if d.signature.is_some() => {
            let sg = d.signature.expect("matched");
            format!("{} t+body in {}", sg.algorithm.name(), sg.header)
        }
        None if d.requires_token => "URL token (signs nothing)".into(),
        None => "—".into(),
    }
}

fn signed(s: Signed) -> &'static str {
    match s {
        Signed::Body => "body",
        Signed::TimestampBody => "t.body",
        Signed::IdTimestampBody => "id.t.body",
        Signed::SlackV0 => "v0:t:body",
        Signed::Twilio => "URL+params",
    }
}

/// One preset as TOML, in the `[[preset]]` schema: the built-in file as
/// written (with its comments), or a config's definition, ready to paste
/// into a config: under `[[preset]]`, its tables as `[preset.hmac]`.
pub(super) fn show(p: Preset) -> String {
    pasteable(p.text())
}

/// A preset file's text as a config's `[[preset]]`: the header before the
/// first key, every table header moved under `preset.` (comments kept).
fn pasteable(text: &str) -> String {
    let mut out = String::new();
    let mut started = false;
    for line in text.lines() {
        let t = line.trim_start();
        if !started && !t.is_empty() && !t.starts_with('#') {
            out.push_str("[[preset]]\n");
            started = true;
        }
        match table_header(t) {
            Some((brackets, name)) => {
                let (open, close) = (&"[["[..brackets], &"]]"[..brackets]);
                let _ = writeln!(out, "{open}preset.{name}{close}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `[name]` or `[[name]]` (bare dotted keys only; a trailing comment is
/// dropped): the bracket count and the name. Values never start a line
/// this way (an array of arrays holds quotes or numbers).
fn table_header(line: &str) -> Option<(usize, &str)> {
    let line = line.split('#').next()?.trim_end();
    let brackets = if line.starts_with("[[") { 2 } else { 1 };
    let name = line
        .strip_prefix(&"[["[..brackets])?
        .strip_suffix(&"]]"[..brackets])?
        .trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    (!name.is_empty() && name.chars().all(bare)).then_some((brackets, name))
}
