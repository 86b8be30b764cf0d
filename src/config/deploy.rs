//! What the shipped units and the production guide's setup need of a config:
//! privileged ports that only socket activation can give (the service has no
//! capabilities), and routes delivered to a script the site's own lock denies.

use super::{Listen, Passthrough, ProtectKind, Route};

/// The listeners the shipped socket units pass, and their ports.
const SOCKET_UNITS: [(&str, &str, u16); 2] = [
    ("https", "callgate.socket", 443),
    ("http", "callgate-http.socket", 80),
];

/// The first port a process without CAP_NET_BIND_SERVICE may bind.
pub(crate) fn unprivileged_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// `[listen]` addresses that callgate.service could not bind: a port below
/// `start` that no shipped socket unit passes (callgate.service runs with an
/// empty CapabilityBoundingSet=). `passed`: listener names systemd passes
/// to this very process (LISTEN_FDNAMES), which need nothing.
pub(crate) fn unbindable(listen: &Listen, start: u16, passed: &[&str]) -> Vec<String> {
    let configured = [
        ("https", listen.https),
        ("http", listen.http),
        ("admin", listen.admin),
    ];
    let mut problems = Vec::new();
    for (name, addr) in configured {
        let Some(addr) = addr else { continue };
        let port = addr.port();
        if port == 0 || port >= start || passed.contains(&name) {
            continue;
        }
        let said = format!("listen.{name} = \"{addr}\": port {port} is below {start}, and callgate.service has no capability to bind it");
        problems.push(match SOCKET_UNITS.iter().find(|(n, _, _)| *n == name) {
            Some((_, _, unit_port)) if *unit_port == port => continue,
            Some((_, unit, unit_port)) => format!("{said}; {unit} passes port {unit_port}: listen on {unit_port}, or set ListenStream={port} in {unit} (systemctl edit {unit})"),
            None => format!("{said}, and no shipped socket unit passes an {name} listener: use a port of {start} or more (e.g. 127.0.0.1:9090)"),
        });
    }
    problems
}

/// Routes delivered to a script on the origin a pass-through serves and
/// protects: the guide's Apache lock (step 4b) denies the script on that
/// vhost, so verified callbacks would get Apache's 403 there.
pub(crate) fn locked_routes<'a>(
    routes: impl Iterator<Item = &'a std::sync::Arc<Route>>,
    sites: &[std::sync::Arc<Passthrough>],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for route in routes {
        let up = &route.upstream;
        let (script, _) = crate::paths::configured(&up.path);
        for (i, site) in sites.iter().enumerate() {
            let same_origin =
                site.upstream.scheme == up.scheme && site.upstream.authority == up.authority;
            let protected = site.protect.iter().any(|p| match p.kind {
                ProtectKind::Script => p.segments == script,
                ProtectKind::Directory => script.starts_with(&p.segments),
                ProtectKind::RoutePath => false,
            });
            if same_origin && protected {
                warnings.push(format!(
                    "route {:?} delivers to {}://{}{}, which passthrough[{i}] also serves and protects: \
                     if the site's vhost denies the script (examples/site-behind-callgate.md, step 4b), \
                     verified callbacks get its 403. Serve the scripts on a vhost of their own \
                     (e.g. http://127.0.0.1:8081{}) and point the route's upstream there",
                    route.name, up.scheme, up.authority, up.path, up.path
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(https: &str, http: &str, admin: &str) -> Listen {
        Listen {
            https: https.parse().ok(),
            http: http.parse().ok(),
            admin: admin.parse().ok(),
            proxy_protocol: false,
            proxy_protocol_from: Vec::new(),
            http_redirect: true,
        }
    }

    #[test]
    fn ports_only_the_socket_units_pass_are_bindable() {
        let ok = listen("0.0.0.0:443", "0.0.0.0:80", "127.0.0.1:9090");
        assert!(unbindable(&ok, 1024, &[]).is_empty());
        let bad = listen("0.0.0.0:444", "0.0.0.0:81", "127.0.0.1:90");
        let said = unbindable(&bad, 1024, &[]);
        assert_eq!(said.len(), 3, "{said:?}");
        assert!(
            said[0].contains("callgate.socket passes port 443"),
            "{said:?}"
        );
        assert!(
            said[1].contains("callgate-http.socket passes port 80"),
            "{said:?}"
        );
        assert!(said[2].contains("no shipped socket unit passes an admin listener"));
        // Passed by systemd to this process, or allowed by the kernel.
        assert_eq!(unbindable(&bad, 1024, &["https", "http", "admin"]).len(), 0);
        assert_eq!(unbindable(&bad, 0, &[]).len(), 0);
    }
}
