//! What `callgate check` prints: listeners and the effective checks of each
//! route, marking what a preset filled in. Never prints a secret.

use std::fmt::Write;

use super::Config;

pub(super) fn render(c: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "config {}: OK", c.path.display());
    if let Some(a) = c.listen.https {
        let _ = writeln!(out, "listen https {a}");
    }
    if let Some(a) = c.listen.http {
        let _ = writeln!(out, "listen http  {a}");
    }
    if c.listen.proxy_protocol {
        let _ = writeln!(out, "listen proxy_protocol: every https/http connection must start with a PROXY v1/v2 header");
    }
    if let Some(a) = c.listen.admin {
        let _ = writeln!(out, "listen admin {a} (/healthz, /metrics)");
    }
    if let Some(t) = &c.tls {
        let _ = writeln!(out, "tls {}", t.description);
    }
    let g = &c.gateway;
    let _ = writeln!(
        out,
        "gateway verified_header={} max_body_bytes={} trusted_proxies=[{}]",
        g.verified_header,
        g.max_body_bytes,
        g.trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(d) = &g.damping {
        let _ = writeln!(
            out,
            "gateway damping: {} failed verifications within {} put an address in a {} cool-down (429)",
            d.failures,
            humantime::format_duration(d.window),
            humantime::format_duration(d.cooldown)
        );
    }
    for r in c.routes.iter() {
        let methods: Vec<&str> = r.methods.iter().map(|m| m.as_str()).collect();
        let _ = writeln!(
            out,
            "\nroute {:?}: {} {} -> {}",
            r.name,
            methods.join(","),
            r.path,
            r.upstream
        );
        if let Some(p) = r.preset {
            let _ = writeln!(out, "  preset  {}", p.name());
        }
        let from = |yes: bool| if yes { " (from preset)" } else { "" };
        match &r.allow_ips {
            Some(ip) => {
                let nets: Vec<String> = ip.nets.iter().map(|n| n.to_string()).collect();
                let _ = writeln!(
                    out,
                    "  ip      allow {}{}",
                    nets.join(", "),
                    from(ip.from_preset)
                );
            }
            None => {
                let _ = writeln!(out, "  ip      (any source address)");
            }
        }
        match &r.token {
            Some(t) => {
                let _ = writeln!(
                    out,
                    "  token   query parameter {:?}, {} secret(s): {}{}",
                    t.param,
                    t.sources.len(),
                    t.sources.join(", "),
                    if r.strip_token {
                        "; stripped before forwarding"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(out, "  token   (none)");
            }
        }
        match &r.hmac {
            Some(h) => {
                let preset_note = if h.from_preset.is_empty() {
                    String::new()
                } else {
                    format!(" ({} from preset)", h.from_preset.join(", "))
                };
                let _ = writeln!(
                    out,
                    "  hmac    {} of the raw body, header {}, encoding {}, {} key(s): {}{}",
                    h.algorithm.name(),
                    h.header,
                    h.encoding.name(),
                    h.sources.len(),
                    h.sources.join(", "),
                    preset_note
                );
            }
            None => {
                let _ = writeln!(out, "  hmac    (none)");
            }
        }
        if let Some(p) = r.payload {
            let _ = writeln!(
                out,
                "  payload {p:?}: form body with a `job` or `comment` field holding a JSON object"
            );
        }
        let passed = crate::verify::Passed {
            ip: r.allow_ips.is_some(),
            token: r.token.is_some(),
            hmac: r.hmac.is_some(),
        };
        if r.delivery == crate::config::Delivery::Queue {
            let _ = writeln!(
                out,
                "  queue   store {}, answer {}, {} in flight, retry {}..{} up to {} attempts / {}",
                c.queue_dir.join(crate::queue::store::FILE_NAME).display(),
                r.ack_status.as_u16(),
                r.max_in_flight,
                humantime::format_duration(r.retry.base),
                humantime::format_duration(r.retry.cap),
                r.retry.max_attempts,
                humantime::format_duration(r.retry.max_age)
            );
        }
        if let Some(w) = r.dedupe_window {
            let _ = writeln!(
                out,
                "  dedupe  a body delivered within {} is answered 200, not forwarded",
                humantime::format_duration(w)
            );
        }
        let _ = writeln!(
            out,
            "  forward {}: {}, upstream timeout {}",
            g.verified_header,
            passed.header_value(),
            humantime::format_duration(r.upstream_timeout)
        );
    }
    out
}
