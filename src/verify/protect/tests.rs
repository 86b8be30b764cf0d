//! The protection table: every spelling that some server resolves to a
//! protected thing is refused; the site's ordinary pages stay open. The
//! same families run against real Apache, php-fpm and `php -S` in
//! tests/protection/engines.rs.

use super::*;
use crate::config::Passthrough;

fn site() -> Passthrough {
    Passthrough::for_tests(
        &["/tolq/callback.php", "/admin/", "/gengo/index.php"],
        &["/tolq/callback", "/hooks/tolq"],
        &[("action", "tolq_callback")],
    )
}

fn verdict(target: &str) -> Verdict {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    check(&site(), path, query, &HeaderMap::new())
}

/// Bypass attempts, as Apache (mod_php, php-fpm) and `php -S` read paths:
/// each reaches a protected script, directory or route path.
const REFUSED: &[&str] = &[
    "/tolq/callback.php",
    "/tolq/callback.php?token=x",
    "/TOLQ/Callback.PHP",
    "/tolq/callback.ph%70",
    "/tolq/callback%2Ephp",
    "/tolq%2Fcallback.php",
    "/%74olq/callback.php",
    "/tolq/callback.php%252E",
    "/tolq/callback%252Ephp",
    "/tolq/callback%25252Ephp",
    "//tolq/callback.php",
    "/tolq//callback.php",
    "/./tolq/callback.php",
    "/tolq/%2E/callback.php",
    "/x/../tolq/callback.php",
    "/x/%2E%2E/tolq/callback.php",
    "/x/%2e%2e%2ftolq/callback.php",
    "/../tolq/callback.php",
    "/tolq/x/../callback.php",
    "/tolq/callback.php/",
    "/tolq/callback.php/extra/more?x=1",
    "/tolq/callback.php%2Fextra",
    "/tolq/callback.php;jsessionid=1",
    "/tolq;x=1/callback.php",
    "/tolq/callback.php.",
    "/tolq/callback.php%20",
    "/tolq\\callback.php",
    "/tolq%5Ccallback.php",
    "\\tolq\\callback.php",
    "/tolq/callback.php%00",
    "/tolq/callback.php%C0%AE",
    "/%FF/../tolq/callback.php",
    // Issue 21: the script runs with the rest as PATH_INFO.
    "/tolq/callback.php/..;/",
    "/tolq/callback.php/%252e%252e/",
    "/tolq/callback.php/..%5c",
    "/tolq/callback.php/..%20/",
    "/tolq/callback.php/..%3b/",
    "/tolq/callback.php/x%5c..%5c..%5c",
    "/tolq/callback.php/../",
    "/admin/..;/",
    "/admin/x.php/..%5c..%5c",
    "/gengo/index.php/..;/",
    "/x/..;/tolq/callback.php",
    "/tolq/...;/callback.php",
    // MultiViews: `callback` runs callback.php.
    "/tolq/callback",
    "/tolq/callback.x",
    // The routes' own paths, in the site's spellings, and extended.
    "/tolq/callback_php",
    "/tolq/callbacks.php",
    "/tolq//callback",
    "/tolq/callback/",
    "/tolq/callbac%6b",
    "/hooks/tolq",
    "/hooks/tolq.php",
    "/HOOKS/Tolq/x",
    "/admin",
    "/ADMIN/x",
    "/admin%2Fx",
    "/admin.",
    "/gengo/",
    "/gengo",
    // A front controller: its parameter, wherever PHP reads it from.
    "/index.php?action=tolq_callback",
    "/?action=tolq_callback",
    "/anything?action=tolq_callback",
    "/page.php?action=TOLQ_CALLBACK",
    "/index.php?x=1;action=tolq_callback",
    "/index.php?acti%6Fn=tolq_callback",
    "/index.php?%20action=tolq_callback",
    "/index.php?action[]=tolq_callback",
    "/index.php?action=tolq%5Fcallback",
    "/index.php?action=tolq+callback&action=tolq_callback",
];

/// Ordinary pages of the same site: they pass.
const OPEN: &[&str] = &[
    "/",
    "/index.php",
    "/index.php?action=view",
    "/index.php?action=tolq_callbacks",
    "/?page=2",
    "/tolq/",
    "/tolq/other.php",
    "/tolq/callbac",
    "/tolq/call",
    "/hooks/",
    "/hooks/other",
    "/administrator/",
    "/admin.php",
    "/gengo.php",
    "/gengo/other.php",
    "/css/site.css",
    "/a%20b.html",
    "/%E2%82%AC.html",
    "/.well-known/security.txt",
    "/blog/2024/../2025/",
];

#[test]
fn every_spelling_of_a_protected_path_is_refused() {
    let leaked: Vec<&str> = REFUSED
        .iter()
        .copied()
        .filter(|t| verdict(t) == Verdict::Open)
        .collect();
    assert!(leaked.is_empty(), "reached a protected path: {leaked:?}");
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

/// With protect_values = false, the front controller's parameter is judged
/// by its name as PHP reads it: other names with the value pass, names PHP
/// cuts at NUL do not.
#[test]
fn without_values_names_are_read_as_php_reads_them() {
    let mut site = site();
    site.values = crate::values::Values::default();
    let by_name = |target: &str| {
        let (path, query) = target.split_once('?').unwrap();
        check(&site, path, Some(query), &HeaderMap::new())
    };
    for open in [
        "/index.php?actions=tolq_callback",
        "/index.php?action.=tolq_callback",
        "/index.php?x=tolq_callback",
    ] {
        assert_eq!(by_name(open), Verdict::Open, "{open}");
    }
    for refused in [
        "/?action%00%FF=tolq_callback",
        "/?action%00x=tolq_callback",
        "/?action%00=tolq_callback",
        "/?acti%6Fn%00%C3=tolq%5Fcallback",
    ] {
        assert_ne!(by_name(refused), Verdict::Open, "{refused}");
    }
    // By value, each is refused.
    for target in [
        "/index.php?actions=tolq_callback",
        "/?action%00%FF=tolq_callback",
    ] {
        assert_ne!(verdict(target), Verdict::Open, "{target}");
    }
}

#[test]
fn a_front_controllers_parameter_in_a_cookie_is_caught() {
    let mut h = HeaderMap::new();
    h.insert("cookie", "a=1; action=tolq_callback".parse().unwrap());
    assert_ne!(check(&site(), "/", None, &h), Verdict::Open);
    h.insert("cookie", "a=1; action=tolq%5fcallback".parse().unwrap());
    assert_ne!(check(&site(), "/x", None, &h), Verdict::Open);
    h.insert("cookie", "a=1; action=view".parse().unwrap());
    assert_eq!(check(&site(), "/", None, &h), Verdict::Open);
}

#[test]
fn doubt_is_refusal() {
    assert!(matches!(verdict("/x%00"), Verdict::Doubtful(_)));
    assert!(matches!(verdict("/%C0%AE%C0%AE/x"), Verdict::Doubtful(_)));
    assert!(matches!(verdict("/..;/x"), Verdict::Doubtful(_)));
}
