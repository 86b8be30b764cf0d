//! `[[ip_list]]` and the built-in provider lists (`lists/*.toml`): address
//! lists a provider publishes, named in `allow_ips` as `"list:NAME"`. Only
//! where each list comes from is config; what it holds now is runtime
//! state (the gateway's `lists` module), refreshed from the publisher.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use serde::Deserialize;
use toml::Spanned;

use super::load::Loader;
use super::raw::Dur;
use super::ConfigError;

/// `[[ip_list]]`: name, url, format ("json" with path, or "lines"), ca, refresh.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpList {
    pub(crate) name: Spanned<String>,
    pub(crate) url: Spanned<String>,
    pub(crate) format: Spanned<String>,
    pub(crate) path: Option<Spanned<String>>,
    pub(crate) ca: Option<Spanned<String>>,
    pub(crate) refresh: Option<Spanned<Dur>>,
}

/// Shortest refresh period: a publisher is not a polling target.
pub(crate) const MIN_LIST_REFRESH: Duration = Duration::from_secs(60);
/// Longest: a list older than a month is stale, whatever the operator says.
pub(crate) const MAX_LIST_REFRESH: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default refresh period.
pub(crate) const DEFAULT_LIST_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// The built-in lists, one file each (URL, format, documentation).
const BUILTIN: &[&str] = &[
    include_str!("../../lists/github.toml"),
    include_str!("../../lists/stripe.toml"),
    include_str!("../../lists/zoom.toml"),
];

/// How a list's document names its ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListFormat {
    /// A JSON document; the ranges are the array of strings at `path`
    /// (keys separated by dots: `"hooks"`, `"WEBHOOKS"`).
    Json { path: Vec<String> },
    /// One address or CIDR a line; blank lines and `#` comments skipped.
    Lines,
}

impl ListFormat {
    /// `json (hooks)`, `lines`: for `check`.
    pub(crate) fn describe(&self) -> String {
        match self {
            ListFormat::Json { path } => format!("json ({})", path.join(".")),
            ListFormat::Lines => "lines".into(),
        }
    }
}

/// One named list: where it comes from and how often.
#[derive(Debug, Clone)]
pub(crate) struct IpList {
    pub(crate) name: String,
    /// `https://` only.
    pub(crate) url: http::Uri,
    pub(crate) format: ListFormat,
    /// Extra roots for this list's server (system roots always).
    pub(crate) ca: Vec<CertificateDer<'static>>,
    pub(crate) ca_path: Option<PathBuf>,
    pub(crate) refresh: Duration,
    /// The publisher's documentation (built-in lists).
    pub(crate) docs: Option<String>,
    pub(crate) builtin: bool,
}

impl IpList {
    /// Same publisher, same reading: a copy of one is a copy of the other.
    pub(crate) fn same_source(&self, other: &IpList) -> bool {
        self.name == other.name
            && self.url == other.url
            && self.format == other.format
            && self.ca == other.ca
    }

    /// The URL as shown in the log, `check` and the API: a query (which may
    /// carry a key) shown as `REDACTED`.
    pub(crate) fn shown_url(&self) -> String {
        let u = &self.url;
        let (scheme, host) = (u.scheme_str().unwrap_or("https"), u.authority());
        let host = host.map_or("", |a| a.as_str());
        match u.query() {
            Some(_) => format!("{scheme}://{host}{}?REDACTED", u.path()),
            None => format!("{scheme}://{host}{}", u.path()),
        }
    }
}

/// What the named address lists hold now (kept by the gateway, refreshed
/// from each publisher): `None` while a list has no copy at all.
pub(crate) trait NamedLists {
    fn contains(&self, list: &str, ip: std::net::IpAddr) -> Option<bool>;
}

/// No named list has a copy (unit tests).
#[cfg(test)]
pub(crate) struct NoLists;

#[cfg(test)]
impl NamedLists for NoLists {
    fn contains(&self, _: &str, _: std::net::IpAddr) -> Option<bool> {
        None
    }
}

/// Why an address is not admitted by an [`IpCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotAdmitted {
    /// In none of the addresses and lists.
    Outside,
    /// In none that has a copy; this named list has none yet.
    NoCopy(String),
}

impl super::IpCheck {
    /// Whether `ip` (canonical) is in the written addresses or in a named
    /// list's current copy. A list without a copy admits no one.
    pub(crate) fn admits(
        &self,
        ip: std::net::IpAddr,
        lists: &dyn NamedLists,
    ) -> Result<(), NotAdmitted> {
        // An IPv4 client on a dual-stack socket is judged as IPv4.
        let ip = ip.to_canonical();
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        let mut missing = None;
        for name in &self.lists {
            match lists.contains(name, ip) {
                Some(true) => return Ok(()),
                Some(false) => {}
                None => missing = missing.or(Some(name)),
            }
        }
        Err(missing.map_or(NotAdmitted::Outside, |n| NotAdmitted::NoCopy(n.clone())))
    }
}

/// A built-in list's file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    name: String,
    url: String,
    format: String,
    path: Option<String>,
    docs: String,
}

/// The built-in lists, parsed (their files are tested to parse).
pub(crate) fn builtin() -> Vec<IpList> {
    BUILTIN
        .iter()
        .map(|text| {
            let f: BuiltinFile = toml::from_str(text).expect("built-in list files parse");
            IpList {
                name: f.name,
                url: f.url.parse().expect("built-in list URLs parse"),
                format: format_of(&f.format, f.path.as_deref()).expect("built-in formats"),
                ca: Vec::new(),
                ca_path: None,
                refresh: DEFAULT_LIST_REFRESH,
                docs: Some(f.docs),
                builtin: true,
            }
        })
        .collect()
}

/// `format` and `path` → the reading, or what to write instead.
fn format_of(format: &str, path: Option<&str>) -> Result<ListFormat, String> {
    match (format, path) {
        ("json", Some(p)) if !p.is_empty() && p.split('.').all(|k| !k.is_empty()) => {
            Ok(ListFormat::Json {
                path: p.split('.').map(str::to_owned).collect(),
            })
        }
        ("json", _) => Err("format = \"json\" needs path = \"KEY\" naming the array of ranges (e.g. \"hooks\" for GitHub's meta, \"WEBHOOKS\" for Stripe's)".into()),
        ("lines", None) => Ok(ListFormat::Lines),
        ("lines", Some(_)) => Err("path is for format = \"json\"; a \"lines\" list has one range a line: remove path".into()),
        (other, _) => Err(format!("format = {other:?}: write \"json\" (with path) or \"lines\" (one range a line)")),
    }
}

/// A list name: what follows `list:` in allow_ips.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Loader<'_> {
    /// Every `[[ip_list]]`, ahead of the built-in lists (one of the same
    /// name replaces the built-in one: a mirror, or a test server).
    pub(super) fn ip_lists(
        &self,
        raw: Vec<Spanned<RawIpList>>,
    ) -> Result<Vec<IpList>, ConfigError> {
        let mut lists: Vec<IpList> = Vec::new();
        for (i, entry) in raw.into_iter().enumerate() {
            let list = self.ip_list(i, entry.into_inner())?;
            if lists.iter().any(|l| l.name == list.name) {
                return Err(self.error(None, format!("ip_list[{i}]: a list named {:?} is defined twice: give each [[ip_list]] its own name", list.name)));
            }
            lists.push(list);
        }
        for b in builtin() {
            if !lists.iter().any(|l| l.name == b.name) {
                lists.push(b);
            }
        }
        Ok(lists)
    }

    /// The lists some route names; an `[[ip_list]]` none names is noted.
    pub(super) fn named_lists(&self, lists: Vec<IpList>, routes: &super::Routes) -> Vec<IpList> {
        let named = |name: &str| {
            routes.iter().any(|r| {
                r.allow_ips
                    .as_ref()
                    .is_some_and(|a| a.lists.iter().any(|l| l == name))
            })
        };
        lists
            .into_iter()
            .filter(|l| match (named(&l.name), l.builtin) {
                (true, _) => true,
                (false, true) => false,
                (false, false) => {
                    self.warn(format!("[[ip_list]] {:?} is named by no route's allow_ips (as \"list:{}\"): it is not fetched", l.name, l.name));
                    false
                }
            })
            .collect()
    }

    fn ip_list(&self, i: usize, raw: RawIpList) -> Result<IpList, ConfigError> {
        let name = raw.name.get_ref().clone();
        if !valid_name(&name) {
            return Err(self.at(&raw.name, format!("ip_list[{i}].name {name:?}: use 1 to 64 of a-z, 0-9, - and _ (it is written \"list:{name}\" in allow_ips)")));
        }
        let label = format!("ip_list[{i}] ({name:?})");
        let url: http::Uri = raw.url.get_ref().parse().map_err(|_| {
            self.at(
                &raw.url,
                format!("{label}.url is not a URL: write it as \"https://example.com/ips.json\""),
            )
        })?;
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(self.at(&raw.url, format!("{label}.url carries a user and password (user:password@): callgate sends no credentials to a list server; remove them (a key the server wants may go in the query, which is never shown)")));
        }
        if url.scheme_str() != Some("https") || url.host().is_none() {
            return Err(self.at(&raw.url, format!("{label}.url must be an https:// URL: a list that decides who may call is fetched over verified TLS only")));
        }
        let format = format_of(
            raw.format.get_ref(),
            raw.path.as_ref().map(|p| p.get_ref().as_str()),
        )
        .map_err(|m| self.at(&raw.format, format!("{label}: {m}")))?;
        let refresh = match &raw.refresh {
            Some(d) if d.get_ref().0 < MIN_LIST_REFRESH || d.get_ref().0 > MAX_LIST_REFRESH => {
                return Err(self.at(d, format!("{label}.refresh must be between \"1m\" and \"30d\" (default \"24h\"): a publisher is not a polling target, and an older list is stale")));
            }
            Some(d) => d.get_ref().0,
            None => DEFAULT_LIST_REFRESH,
        };
        let ca = match &raw.ca {
            Some(_) if self.offline => Vec::new(),
            Some(path) => self.or_defer(self.list_roots(&label, path), Vec::new),
            None => Vec::new(),
        };
        Ok(IpList {
            name,
            url,
            format,
            ca,
            ca_path: raw.ca.map(|p| PathBuf::from(p.into_inner())),
            refresh,
            docs: None,
            builtin: false,
        })
    }

    fn list_roots(
        &self,
        label: &str,
        path: &Spanned<String>,
    ) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let roots = crate::trusted::pem_certs(Path::new(path.get_ref())).map_err(|e| {
            self.at(
                path,
                format!(
                    "{label}.ca: cannot read {}: {e} (give a PEM file of CA certificates)",
                    path.get_ref()
                ),
            )
        })?;
        if roots.is_empty() {
            return Err(self.at(
                path,
                format!("{label}.ca: {} holds no PEM certificate", path.get_ref()),
            ));
        }
        Ok(roots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_list_parses_and_is_https() {
        let lists = builtin();
        assert_eq!(lists.len(), BUILTIN.len());
        for l in &lists {
            assert_eq!(l.url.scheme_str(), Some("https"), "{}", l.name);
            assert!(valid_name(&l.name));
            assert!(l.docs.as_deref().is_some_and(|d| d.starts_with("https://")));
        }
        let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["github", "stripe", "zoom"]);
    }

    fn load(lists: &str) -> Result<super::super::Config, String> {
        let text = format!("[listen]\nhttp = \"127.0.0.1:0\"\n[[route]]\nname = \"r\"\npath = \"/cb\"\nupstream = \"http://127.0.0.1:9/x\"\nallow_ips = [\"list:acme\", \"list:github\"]\n{lists}");
        super::super::Config::from_str(&text, std::path::Path::new("t.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_ip_list_is_https_refreshed_at_most_every_minute_and_named_once() {
        let list = |extra: &str| {
            format!("[[ip_list]]\nname = \"acme\"\nurl = \"https://acme.example/ips\"\nformat = \"lines\"\n{extra}\n")
        };
        let c = load(&list("")).unwrap();
        let names: Vec<&str> = c.ip_lists.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["acme", "github"], "only the lists a route names");
        assert_eq!(c.ip_lists[0].refresh, DEFAULT_LIST_REFRESH);
        let e = load(&list("refresh = \"30s\"")).unwrap_err();
        assert!(e.contains("between \"1m\" and \"30d\""), "{e}");
        let e = load(&list("").replace("https://", "http://")).unwrap_err();
        assert!(e.contains("must be an https:// URL"), "{e}");
        let e = load(&format!("{}{}", list(""), list(""))).unwrap_err();
        assert!(e.contains("defined twice"), "{e}");
        let e = load(&list("").replace("\"acme\"", "\"Acme!\"")).unwrap_err();
        assert!(e.contains("use 1 to 64 of a-z"), "{e}");
    }

    #[test]
    fn formats_say_what_to_write() {
        assert!(format_of("json", None).unwrap_err().contains("path"));
        assert!(format_of("json", Some("a..b")).is_err());
        assert!(format_of("lines", Some("x"))
            .unwrap_err()
            .contains("remove path"));
        assert!(format_of("csv", None).unwrap_err().contains("\"lines\""));
        assert_eq!(
            format_of("json", Some("a.b")).unwrap(),
            ListFormat::Json {
                path: vec!["a".into(), "b".into()]
            }
        );
    }
}
