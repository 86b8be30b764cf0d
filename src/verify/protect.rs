//! Pass-through protection: would the upstream resolve this request target
//! to a protected path? Every spelling a server resolves to one
//! ([`crate::paths::canonical`]), and `/x.php/anything` for `/x.php`, is
//! caught; when in doubt, a target counts as protected. Pure: no I/O.

use crate::config::Protected;
use crate::paths::canonical;
use crate::php::php_name;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing protected is reached.
    Open,
    /// The target resolves to this protected path (as configured).
    Protected(String),
    /// The target cannot be resolved with confidence (NUL, an undecodable
    /// escape): refused as if protected.
    Doubtful(&'static str),
}

/// Decide a pass-through target. `body` is the form body when the request
/// has one that PHP would parse (needed only where [`needs_body`] says so).
pub(crate) fn check(
    protected: &[Protected],
    path: &str,
    query: Option<&str>,
    body: Option<&[u8]>,
) -> Verdict {
    let canon = match canonical(path) {
        Ok(c) => c,
        Err(why) => return Verdict::Doubtful(why),
    };
    for p in protected.iter().filter(|p| covers(p, &canon)) {
        if !p.has_params() {
            return Verdict::Protected(p.path.clone());
        }
        let in_query = query.is_some_and(|q| dispatched(p, q.as_bytes()));
        let in_body = body.is_some_and(|b| dispatched(p, b));
        if in_query || in_body {
            return Verdict::Protected(p.path.clone());
        }
    }
    Verdict::Open
}

/// Whether deciding `path` may need the form body: it reaches a script
/// protected only with its parameters.
pub(crate) fn needs_body(protected: &[Protected], path: &str) -> bool {
    canonical(path).is_ok_and(|c| protected.iter().any(|p| p.has_params() && covers(p, &c)))
}

/// Whether a request whose canonical path is `path` runs this script or
/// lies in this directory.
fn covers(protected: &Protected, path: &str) -> bool {
    let p = protected.path.as_str();
    if let Some(dir) = p.strip_suffix('/') {
        return path == dir || path.starts_with(p);
    }
    if path == p || path.starts_with(&format!("{p}/")) {
        return true;
    }
    // The directory's index script is run for the directory itself.
    match p.strip_suffix("index.php") {
        Some(dir) if dir.ends_with('/') => path == dir || path == dir.trim_end_matches('/'),
        _ => false,
    }
}

/// Whether `params` (a query, or a form body) carries one of the
/// protected parameters with its value.
fn dispatched(protected: &Protected, params: &[u8]) -> bool {
    form_urlencoded::parse(params).any(|(k, v)| {
        let Some(name) = php_name(&k) else {
            return false;
        };
        protected
            .params
            .iter()
            .any(|(n, value)| *n == name.base && v.to_lowercase() == *value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected() -> Vec<Protected> {
        vec![
            Protected::new("/tolq/callback.php", None),
            Protected::new("/admin/", None),
            Protected::new("/index.php", Some("action=tolq_callback")),
            Protected::new("/gengo/index.php", None),
        ]
    }

    fn verdict(target: &str) -> Verdict {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        check(&protected(), path, query, None)
    }

    /// Bypass attempts, as Apache+PHP-FPM and `php -S` resolve paths: each
    /// reaches a protected script or directory, and must be refused.
    const REFUSED: &[&str] = &[
        "/tolq/callback.php",
        "/tolq/callback.php?token=x",
        "/TOLQ/Callback.PHP",
        "/tolq/callback.ph%70",
        "/tolq/callback%2Ephp",
        "/tolq/callback%2ephp",
        "/tolq%2Fcallback.php",
        "/tolq%2fcallback.php",
        "/%74olq/callback.php",
        "/tolq/callback.php%252E",
        "/tolq/callback%252Ephp",
        "/tolq/callback%25252Ephp",
        "//tolq/callback.php",
        "/tolq//callback.php",
        "/tolq///callback.php",
        "/./tolq/callback.php",
        "/tolq/./callback.php",
        "/tolq/%2E/callback.php",
        "/x/../tolq/callback.php",
        "/x/%2E%2E/tolq/callback.php",
        "/x/%2e%2e%2ftolq/callback.php",
        "/../tolq/callback.php",
        "/tolq/x/../callback.php",
        "/tolq/callback.php/",
        "/tolq/callback.php/extra",
        "/tolq/callback.php/extra/more?x=1",
        "/tolq/callback.php%2Fextra",
        "/tolq/callback.php;jsessionid=1",
        "/tolq;x=1/callback.php",
        "/tolq/callback.php.",
        "/tolq/callback.php..",
        "/tolq/callback.php%20",
        "/tolq/callback.php%20.",
        "/tolq\\callback.php",
        "/tolq%5Ccallback.php",
        "/tolq%5ccallback.php",
        "\\tolq\\callback.php",
        "/tolq/callback.php%00",
        "/tolq/callback.php%00.jpg",
        "/tolq/%00/../callback.php",
        "/admin",
        "/admin/",
        "/admin/users.php",
        "/ADMIN/x",
        "/admin%2Fx",
        "/admin.",
        "/x/../admin/",
        "/index.php?action=tolq_callback",
        "/index.php?action=TOLQ_CALLBACK",
        "/index.php?x=1&action=tolq_callback",
        "/index.php?acti%6Fn=tolq_callback",
        "/index.php?%20action=tolq_callback",
        "/index.php?action[]=tolq_callback",
        "/index.php?action=tolq%5Fcallback",
        "/index.php?action=tolq_callback&action=view",
        "/INDEX.PHP?action=tolq_callback",
        "/index.php/x?action=tolq_callback",
        "/index.php%2F?action=tolq_callback",
        "/gengo/index.php",
        "/gengo/",
        "/gengo",
        "/GENGO/",
        "/gengo/index.php/x",
        "/tolq/callback.php%C0%AE",
        "/%FF/../tolq/callback.php",
    ];

    /// Ordinary pages of the same site: they pass.
    const OPEN: &[&str] = &[
        "/",
        "/index.php",
        "/index.php?action=view",
        "/index.php?action=tolq_callbacks",
        "/index.php?actions=tolq_callback",
        "/?page=2",
        "/tolq/",
        "/tolq/other.php",
        "/tolq/callback.php5",
        "/tolq/callback.phps",
        "/tolq/callback_php",
        "/administrator/",
        "/admin.php",
        "/gengo.php",
        "/gengo/other.php",
        "/css/site.css",
        "/tolq/callback.php.bak/../../index.php",
        "/a%20b.html",
        "/%E2%82%AC.html",
    ];

    #[test]
    fn every_spelling_of_a_protected_path_is_refused() {
        let leaked: Vec<&str> = REFUSED
            .iter()
            .copied()
            .filter(|t| verdict(t) == Verdict::Open)
            .collect();
        assert!(leaked.is_empty(), "reached a protected path: {leaked:?}");
        println!(
            "protection bypass table: {} refused, {} open",
            REFUSED.len(),
            OPEN.len()
        );
    }

    #[test]
    fn ordinary_pages_stay_open() {
        let refused: Vec<(&str, Verdict)> = OPEN
            .iter()
            .map(|t| (*t, verdict(t)))
            .filter(|(_, v)| *v != Verdict::Open)
            .collect();
        assert!(refused.is_empty(), "ordinary pages refused: {refused:?}");
    }

    #[test]
    fn a_front_controllers_parameter_in_a_form_body_is_caught() {
        let p = protected();
        assert!(needs_body(&p, "/index.php"));
        assert!(needs_body(&p, "/"));
        assert!(!needs_body(&p, "/page.php"));
        let body = Some(&b"x=1&action=tolq_callback"[..]);
        assert_ne!(check(&p, "/", None, body), Verdict::Open);
        assert_eq!(
            check(&p, "/", None, Some(&b"action=view"[..])),
            Verdict::Open
        );
    }

    #[test]
    fn doubt_is_refusal() {
        assert!(matches!(verdict("/x%00"), Verdict::Doubtful(_)));
        assert!(matches!(verdict("/%C0%AE%C0%AE/x"), Verdict::Doubtful(_)));
    }
}
