//! `callgate presets`: the providers callgate knows, as data: each one's
//! scheme, headers, replay default and the source of its test vector.

use std::fmt::Write;

use crate::config::presets::{Claims, Defaults, IdSource, KeyForm, Preset, Signed};

/// One line per preset.
pub(super) fn list() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<44} {:<10} source",
        "preset", "scheme", "replay"
    );
    for &p in Preset::all() {
        let d = p.defaults();
        let replay = d
            .dedupe_window
            .map_or("off".into(), |w| humantime::format_duration(w).to_string());
        let _ = writeln!(
            out,
            "{:<18} {:<44} {:<10} {}",
            p.name(),
            scheme(&d),
            replay,
            p.source().0
        );
    }
    out
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

/// One preset as TOML: everything it fills in, and its sources.
pub(super) fn show(p: Preset) -> String {
    let d = p.defaults();
    let (docs, vector) = p.source();
    let mut out = String::new();
    let _ = writeln!(out, "name = {:?}", p.name());
    let _ = writeln!(out, "# documented at {docs}\n# test vector: {vector}");
    if !d.allow_ips.is_empty() {
        let _ = writeln!(out, "allow_ips = {:?}", d.allow_ips);
    }
    if d.requires_token {
        let _ = writeln!(out, "token = \"required\"   # the provider signs nothing");
    }
    if let Some(b) = d.max_body_bytes {
        let _ = writeln!(out, "max_body_bytes = {b}");
    }
    let replay = d
        .dedupe_window
        .map_or("0".into(), |w| humantime::format_duration(w).to_string());
    let _ = writeln!(out, "dedupe_window = {replay:?}");
    if let Some(sg) = &d.signature {
        let _ = writeln!(out, "\n[signature]");
        let _ = writeln!(out, "algorithm = {:?}", sg.algorithm.name());
        let _ = writeln!(out, "header = {:?}", sg.header);
        let _ = writeln!(out, "encoding = {:?}", sg.encoding.name());
        if let Some((t, sep)) = sg.timestamp {
            let _ = writeln!(
                out,
                "timestamp_header = {t:?}\nsigned = \"timestamp{sep}body\"\ntolerance = \"5m\""
            );
        }
        let _ = writeln!(
            out,
            "public_keys = []   # the provider's public key(s): the route gives them"
        );
    }
    if let Some(h) = &d.hmac {
        let sc = &h.scheme;
        let _ = writeln!(out, "\n[hmac]");
        let _ = writeln!(out, "algorithm = {:?}", h.algorithm.name());
        let _ = writeln!(out, "header = {:?}", h.header);
        let _ = writeln!(out, "encoding = {:?}", h.encoding.name());
        let _ = writeln!(out, "signed = {:?}", signed(sc.signed));
        let claims = match sc.claims {
            Claims::Whole => "whole value".to_owned(),
            Claims::Prefixed(p) => format!("after {p:?}"),
            Claims::Fields { sig, ts } => format!("fields {sig}= (signatures), {ts}= (timestamp)"),
            Claims::List { prefix } => format!("space-separated {prefix:?} entries"),
        };
        let _ = writeln!(out, "claims = {claims:?}");
        if let Some(t) = sc.timestamp {
            let _ = writeln!(out, "timestamp_header = {t:?}");
        }
        if sc.timed() {
            let _ = writeln!(
                out,
                "tolerance = \"5m\"   # future timestamps too: {}",
                sc.both_ways
            );
        }
        match sc.id {
            IdSource::Header(h) => {
                let _ = writeln!(
                    out,
                    "id = {{ header = {h:?}, signed = {} }}",
                    sc.signed == Signed::IdTimestampBody
                );
            }
            IdSource::JsonField(f) => {
                let _ = writeln!(out, "id = {{ body_field = {f:?}, signed = true }}");
            }
            IdSource::None => {}
        }
        if sc.key == KeyForm::Whsec {
            let _ = writeln!(out, "key_form = \"whsec_ base64\"");
        }
    }
    out
}
