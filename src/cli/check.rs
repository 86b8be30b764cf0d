//! `callgate check`: load everything `run` would, then print the listeners
//! and the effective checks of each route, marking what a preset filled in.
//! Never prints a secret.

use std::fmt::Write;
use std::path::Path;

use crate::config::{Config, Delivery, Route};
use crate::queue;
use crate::verify::{Check, Passed};

/// Load the config as `run` would and print the effective routes;
/// `offline`: without reading secrets, certificates or state.
pub(super) fn check(path: &Path, offline: bool) -> anyhow::Result<()> {
    if offline {
        let config = Config::load_offline(path)?;
        println!("offline: secrets, certificates, CA files and state were not read");
        print!("{}", render(&config, false));
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        return Ok(());
    }
    let config = Config::load(path)?;
    bindable(&config)?;
    print!("{}", render(&config, true));
    // State is trusted only when it is ours: say whose it is, or refuse.
    for (what, dir) in config.state_dirs() {
        match crate::trusted::inspect_dir(&dir) {
            Ok(how) => println!("{what} {}: {how}", dir.display()),
            Err(e) => anyhow::bail!("{what}: {e}"),
        }
    }
    print!("{}", ip_lists(&config));
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// Each named address list: its source, and the stored copy's age and size
/// (or why routes naming it refuse until it has one).
fn ip_lists(c: &Config) -> String {
    let mut out = String::new();
    let now = crate::clock::unix_secs();
    for (l, copy) in crate::lists::OnDisk::read(c).0 {
        let origin = if l.builtin { "built in" } else { "[[ip_list]]" };
        let ca = l
            .ca_path
            .as_ref()
            .map_or(String::new(), |p| format!(", ca {}", p.display()));
        let _ = writeln!(
            out,
            "list:{} ({origin}) {} as {}, refreshed every {}{ca}",
            l.name,
            l.shown_url(),
            l.format.describe(),
            humantime::format_duration(l.refresh)
        );
        if let Some(docs) = &l.docs {
            let _ = writeln!(out, "  published as documented at {docs}");
        }
        let _ = match copy {
            Ok(Some(copy)) => writeln!(out, "  stored copy: {} ranges, fetched {} ago", copy.nets.len(), humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(copy.fetched_at).max(0) as u64))),
            Ok(None) => writeln!(out, "  no copy yet: routes naming it refuse callers outside their written addresses until it is fetched"),
            Err(e) => writeln!(out, "  stored copy not used ({e}): routes naming it refuse callers outside their written addresses until it is fetched"),
        };
    }
    out
}

// `writeln!` into a String cannot fail; the results are ignored below.
/// `files`: certificates and ACME state were read and can be described.
fn render(c: &Config, files: bool) -> String {
    let mut out = String::new();
    listeners(&mut out, c, files);
    gateway(&mut out, c);
    for r in c.routes.iter() {
        route(&mut out, c, r, files);
    }
    for (i, p) in c.passthroughs.iter().enumerate() {
        passthrough(&mut out, i, p);
    }
    out
}

/// One `[[passthrough]]`: where it goes, for which hosts, and every path
/// and parameter it never lets through unverified.
fn passthrough(out: &mut String, i: usize, p: &crate::config::Passthrough) {
    let hosts = p
        .hosts
        .as_ref()
        .map_or("any host".to_owned(), |h| h.join(", "));
    let _ = writeln!(out, "passthrough[{i}] {hosts} -> {}", p.upstream.authority);
    if let Some(tls) = &p.upstream.tls {
        let _ = writeln!(out, "  upstream {tls:?}");
    }
    let paths: Vec<&str> = p.protect.iter().map(|p| p.shown.as_str()).collect();
    let _ = writeln!(out, "  protected paths: {}", paths.join(", "));
    if !p.params.is_empty() {
        let params: Vec<String> = p.params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let _ = writeln!(
            out,
            "  protected parameters (any path; query, cookies, form bodies): {}",
            params.join(", ")
        );
    }
    match p.values.shown() {
        v if v.is_empty() => {
            let _ = writeln!(
                out,
                "  protected values: off (protect_values = false or none)"
            );
        }
        v => {
            let _ = writeln!(
                out,
                "  protected values (anywhere: path, query, headers, body; whole tokens): {}",
                v.join(", ")
            );
        }
    }
    if !p.websocket_paths.is_empty() {
        let _ = writeln!(out, "  websocket_paths: {}", p.websocket_paths.join(", "));
    }
    let rate = match p.min_body_rate {
        0 => "off".to_owned(),
        r => format!("{r} B/s after 10 s"),
    };
    let _ = writeln!(
        out,
        "  max_body_bytes {}, max_requests_per_client {}, min_body_rate {rate}, upgrades {}",
        p.max_body_bytes,
        p.max_requests_per_client,
        p.upgrades.join(", ")
    );
}

fn listeners(out: &mut String, c: &Config, files: bool) {
    let _ = writeln!(out, "config {}: OK", c.path.display());
    if let Some(a) = c.listen.https {
        let _ = writeln!(out, "listen https {a}");
    }
    if let Some(a) = c.listen.http {
        let _ = writeln!(out, "listen http  {a}");
    }
    if c.listen.proxy_protocol {
        let _ = writeln!(out, "listen proxy_protocol: every https/http connection must start with a PROXY v1/v2 header");
        let from: Vec<String> = c
            .listen
            .proxy_protocol_from
            .iter()
            .map(|n| n.to_string())
            .collect();
        let _ = writeln!(out, "listen proxy_protocol_from: {}", from.join(", "));
    }
    if let Some(a) = c.listen.admin {
        let _ = writeln!(out, "listen admin {a} (/healthz, /metrics)");
    }
    if let Some(t) = &c.tls {
        let _ = writeln!(out, "tls {}", t.description);
        let now = crate::clock::unix_secs();
        for (hosts, subject, not_after) in t.certificates.iter().filter(|_| files) {
            let expires =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs((*not_after).max(0) as u64);
            let days = (not_after - now) / 86_400;
            let _ = writeln!(
                out,
                "tls certificate for {}: {subject}, expires {} ({days} days)",
                hosts.join(", "),
                humantime::format_rfc3339_seconds(expires)
            );
        }
        if let Some(acme) = t.acme.as_ref().filter(|_| files) {
            acme_state(out, acme, now);
        }
    }
}

/// What is stored for `[tls.acme]`, read from disk: the ACME server is not asked.
fn acme_state(out: &mut String, acme: &crate::config::Acme, now: i64) {
    let _ = writeln!(
        out,
        "tls acme {} via {:?} from {}, state {}",
        acme.domains.join(", "),
        acme.challenge,
        acme.directory,
        acme.state.display()
    );
    if matches!(acme.store, crate::config::AcmeStore::Postgres { .. }) {
        let _ = writeln!(out, "tls acme store: the queue's PostgreSQL database, shared by every instance (keys sealed with store_key); below, this instance's local copy");
    }
    let (file, stored) = crate::acme::stored(acme);
    let Some(c) = stored else {
        let _ = writeln!(out, "tls acme certificate: none stored yet ({}); ordered when callgate starts; until then these names get the default certificate, if any", file.display());
        return;
    };
    let at = |t: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64),
        )
    };
    let renew = crate::acme::renewal_due(&c, acme.renew_before);
    let _ = writeln!(
        out,
        "tls acme certificate for {}: issuer {}, expires {} ({} days), renewal from {}",
        acme.domains.join(", "),
        c.issuer,
        at(c.not_after),
        (c.not_after - now) / 86_400,
        humantime::format_rfc3339_seconds(renew)
    );
}

fn gateway(out: &mut String, c: &Config) {
    let g = &c.gateway;
    let proxies: Vec<String> = g.trusted_proxies.iter().map(|n| n.to_string()).collect();
    let _ = writeln!(
        out,
        "gateway verified_header={} max_body_bytes={} trusted_proxies=[{}]",
        g.verified_header,
        g.max_body_bytes,
        proxies.join(", ")
    );
    let _ = writeln!(
        out,
        "gateway body buffers: {} bytes in all, {} per client address",
        g.buffered_body_bytes, g.buffered_body_bytes_per_client
    );
    if let Some(a) = &g.assertion {
        let _ = writeln!(
            out,
            "gateway assertion: {} {} on every forwarded callback (HMAC-SHA256, examples/verify-assertion.php checks it)",
            a.header,
            match a.version {
                crate::config::AssertionVersion::V1 => "v1",
                crate::config::AssertionVersion::V2 => "v2 (with id, host, ct)",
            }
        );
    }
    if let Some(d) = &g.damping {
        let _ = writeln!(
            out,
            "gateway damping: {} failed verifications within {} put an address in a {} cool-down (429)",
            d.failures,
            humantime::format_duration(d.window),
            humantime::format_duration(d.cooldown)
        );
    }
}

fn route(out: &mut String, c: &Config, r: &Route, files: bool) {
    let methods: Vec<&str> = r.methods.iter().map(|m| m.as_str()).collect();
    let _ = writeln!(
        out,
        "\nroute {:?}: {} {} -> {}",
        r.name,
        methods.join(","),
        r.path,
        r.upstream
    );
    if let Some(tls) = &r.upstream.tls {
        let _ = writeln!(out, "  upstream {tls:?}");
    }
    if let Some(p) = r.preset {
        let _ = writeln!(out, "  preset  {}", p.name());
    }
    if !r.enforce {
        let _ = writeln!(
            out,
            "  REPORT-ONLY (enforce = false): failed checks are logged as would_refuse and the callback is FORWARDED anyway"
        );
    }
    checks(out, r);
    if files {
        handed_over(out, r);
    }
    delivery(out, c, r);
}

/// Each check the gateway runs, in its order (`Check::ALL`): what the
/// route configures for it.
fn checks(out: &mut String, r: &Route) {
    for check in Check::ALL {
        if let Some(text) = check.describe(r) {
            // Names longer than the column still get a space after them.
            let name = format!("{check:<8}");
            let gap = if name.len() > 8 { " " } else { "" };
            let _ = writeln!(out, "  {name}{gap}{text}");
        }
    }
}

/// How many keys the provider has handed over so far (Asana's
/// handshake), counted in the route's `secret_file`, never shown.
fn handed_over(out: &mut String, r: &Route) {
    let Some(h) = &r.hmac else { return };
    let Some(file) = &h.secret_file else { return };
    let line = match crate::learned::keys_in(file, h.algorithm) {
        Ok(keys) => format!("{} key(s) handed over so far", keys.len()),
        Err(e) => format!("cannot read it: {e}"),
    };
    let _ = writeln!(out, "  {:<8} {line} ({})", "", file.display());
}

fn delivery(out: &mut String, c: &Config, r: &Route) {
    let duration = humantime::format_duration;
    if r.delivery == Delivery::Queue {
        let _ = writeln!(
            out,
            "  queue   store {}, answer {}, {} in flight, retry {}..{} up to {} attempts / {}",
            match &c.queue {
                crate::config::QueueBackend::Sqlite { dir } =>
                    dir.join(queue::FILE_NAME).display().to_string(),
                p => format!("{p:?}"),
            },
            r.ack_status.as_u16(),
            r.max_in_flight,
            duration(r.retry.base),
            duration(r.retry.cap),
            r.retry.max_attempts,
            duration(r.retry.max_age)
        );
    }
    if r.max_concurrency.is_some() || r.rate.is_some() || r.on_failure_queue {
        let _ = writeln!(
            out,
            "  shield  max_concurrency {}, rate {}, on_failure {}",
            r.max_concurrency.map_or("unlimited".into(), |n| n.to_string()),
            r.rate.map_or("unlimited".into(), |x| format!("{x:.3}/s")),
            match r.on_failure_queue {
                true => "queue (stored and answered ack_status; after 5 failures in a row the circuit opens for 30 s)",
                false => "fail (the receiver's failure is the answer)",
            }
        );
    }
    // What a callback that passes every check carries.
    let mut passed = Passed::default();
    for check in Check::ALL.into_iter().filter(|c| c.configured(r)) {
        passed.insert(check);
    }
    let _ = writeln!(
        out,
        "  forward {}: {}, upstream timeout {}",
        c.gateway.verified_header,
        passed.header_value(),
        duration(r.upstream_timeout)
    );
}

/// A listen address callgate.service could not bind (a port below 1024 that
/// no shipped socket unit passes: the service has no capabilities) fails
/// `check`, whoever runs it: `sudo callgate check` could bind it, the unit
/// cannot.
fn bindable(config: &Config) -> anyhow::Result<()> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let passed: Vec<&str> = names.split(':').filter(|n| !n.is_empty()).collect();
    let start = crate::config::deploy::unprivileged_start();
    let problems = crate::config::deploy::unbindable(&config.listen, start, &passed);
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{}: {}", config.path.display(), problems.join("; "))
}
