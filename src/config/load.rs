//! `Config::load`: read the file, deserialize it ([`super::raw`]), then
//! resolve every table into its typed value, with errors that name the file,
//! the line and column, and the fix.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::defaults::MIN_SECRET_BYTES;
use super::presets::{Preset, PresetFile};
use super::redact::{Redactor, MIN_REDACTED_BYTES};
use super::{hosts_overlap, raw, secret, trial, Config, ConfigError, Listen, QueueBackend, Routes};
use http::HeaderName;
use toml::Spanned;

impl Config {
    /// Read, parse and resolve the config file, loading secrets and certificates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_str(&read_file(path)?, path)
    }

    /// Read and resolve the config file without touching anything it names:
    /// no secret is resolved (env, files, credentials: placeholders stand in),
    /// no certificate or CA file is read. What `check --offline` shows.
    pub fn load_offline(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&read_file(path)?, path, true)
    }

    /// Read and resolve the config file for one route's use (`explain`):
    /// only that route's secrets and files are read, the rest is resolved
    /// as `check --offline` does.
    pub fn load_for_route(path: &Path, route: &str) -> Result<Config, ConfigError> {
        let text = read_file(path)?;
        let mut loader = Loader::new(&text, path, true);
        loader.only_route = Some(route);
        Config::parse_with(loader, &text)
    }

    /// Parse and resolve config text; `path` names the file in errors.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, path, false)
    }

    fn parse(text: &str, path: &Path, offline: bool) -> Result<Config, ConfigError> {
        Config::parse_with(Loader::new(text, path, offline), text)
    }

    fn parse_with(loader: Loader<'_>, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| parse_errors(&loader, text, e))?;
        let resolved = loader.resolve(raw);
        // Every problem found, the one that stopped resolution last.
        let mut found = loader.deferred.take();
        match resolved {
            Ok(config) => match ConfigError::all(found) {
                None => Ok(config),
                Some(e) => Err(e),
            },
            Err(e) => {
                found.push(e);
                Err(ConfigError::all(found).expect("one error at least"))
            }
        }
    }

    /// Just `[queue]` of a config file, without loading certificates or
    /// route secrets: what the `callgate queue` commands need.
    pub(crate) fn queue_of(path: &Path) -> Result<QueueBackend, ConfigError> {
        let text = read_file(path)?;
        let loader = Loader::new(&text, path, false);
        let raw: raw::RawConfig = toml::from_str(&text)
            .map_err(|e| loader.error(e.span(), without_values(e.message().trim_end())))?;
        loader.queue(raw.queue, false)
    }
}

/// What the parser found, every bad element of a list included: the
/// parser names the list; each element is tried alone to find which are
/// bad, those are blanked out (same length, so line:column stay true) and
/// the file read again, until an error that is not a bad element.
fn parse_errors(loader: &Loader<'_>, text: &str, first: toml::de::Error) -> ConfigError {
    let mut errors = Vec::new();
    let mut text = text.to_owned();
    let mut e = first;
    // Bounded: each round blanks at least one element.
    for _ in 0..16 {
        let bad = e
            .span()
            .map(|span| bad_elements(&text, span))
            .unwrap_or_default();
        if bad.is_empty() {
            errors.push(loader.error(e.span(), parse_message(&text, &e)));
            break;
        }
        for (at, why) in &bad {
            errors.push(loader.error(Some(at.clone()), parse_message(&text, why)));
        }
        let ats: Vec<Range<usize>> = bad.into_iter().map(|(at, _)| at).collect();
        text = blanked(&text, &ats);
        match toml::from_str::<raw::RawConfig>(&text) {
            Ok(_) => break,
            Err(next) => e = next,
        }
    }
    ConfigError::all(errors).expect("one error at least")
}

/// The parser's message, without values, with the fix where one is known.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = without_values(e.message().trim_end());
    if message.starts_with("unknown field") {
        message.push_str(
            " (callgate refuses unknown keys: a misspelt key could silently disable a check)",
        );
    }
    if let Some(hint) = single_for_list(text, &message) {
        message.push_str(&hint);
    }
    message
}

/// The string elements of the array at `span` that the parser refuses
/// alone (the others blanked), each with its error; none when `span` is
/// not an array of strings. At most 64 elements are tried.
fn bad_elements(text: &str, span: Range<usize>) -> Vec<(Range<usize>, toml::de::Error)> {
    let Some(array) = text.get(span.clone()) else {
        return Vec::new();
    };
    if !array.starts_with('[') || !array.ends_with(']') {
        return Vec::new();
    }
    let elements: Vec<Range<usize>> = string_literals(array)
        .into_iter()
        .take(64)
        .map(|r| r.start + span.start..r.end + span.start)
        .collect();
    let mut bad = Vec::new();
    for (i, el) in elements.iter().enumerate() {
        let others: Vec<Range<usize>> = (0..elements.len())
            .filter(|j| *j != i)
            .map(|j| elements[j].clone())
            .collect();
        if let Err(e) = toml::from_str::<raw::RawConfig>(&blanked(text, &others)) {
            if e.span().is_some_and(|s| s.start == span.start) {
                bad.push((el.clone(), e));
            }
        }
    }
    bad
}

/// The `"…"` literals of an array's text (escapes honoured), as ranges.
fn string_literals(array: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut open = None;
    let mut escaped = false;
    for (i, c) in array.char_indices() {
        match (c, open) {
            ('"', None) => open = Some(i),
            ('\\', Some(_)) if !escaped => {
                escaped = true;
                continue;
            }
            ('"', Some(start)) if !escaped => {
                out.push(start..i + 1);
                open = None;
            }
            ('#', None) => return out,
            _ => {}
        }
        escaped = false;
    }
    out
}

/// `text` with each element (and the comma after it) blanked out: spaces,
/// newlines kept, so every other position stays where it was.
fn blanked(text: &str, elements: &[Range<usize>]) -> String {
    let mut out: Vec<u8> = text.as_bytes().to_vec();
    for el in elements {
        let rest = &text[el.end..];
        let gap = rest.len() - rest.trim_start().len();
        let end = match rest.trim_start().starts_with(',') {
            true => el.end + gap + 1,
            false => el.end,
        };
        for b in &mut out[el.start..end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Tables that are lists in callgate's config (`[[route]]`): written with
/// single brackets, TOML reads a map where a list is expected.
const LIST_TABLES: [&str; 5] = [
    "route",
    "passthrough",
    "preset",
    "ip_list",
    "tls.certificate",
];

/// The hint for `[route]` written for `[[route]]`: serde says only
/// "invalid type: map, expected a sequence".
fn single_for_list(text: &str, message: &str) -> Option<String> {
    if !message.contains("expected a sequence") {
        return None;
    }
    let written = text.lines().find_map(|line| {
        let line = line.split('#').next()?.trim();
        let name = line.strip_prefix('[')?.strip_suffix(']')?.trim();
        LIST_TABLES.contains(&name).then_some(name)
    })?;
    Some(format!(
        " (write [[{written}]], with two brackets: each {written} is one entry of a list, and [{written}] is read as a single table)"
    ))
}

/// The config file's text, or an error naming it and the fix.
fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            path.to_owned(),
            String::new(),
            format!("cannot read the config file: {e} (check the path, and that callgate's user may read it)"),
        )
    })
}

/// Resolution context: the text, to turn byte spans into line:column.
pub(super) struct Loader<'a> {
    text: &'a str,
    path: &'a Path,
    warnings: RefCell<Vec<String>>,
    /// Trial values found (self_signed, placeholder secrets): what to edit.
    trial: RefCell<Vec<String>>,
    /// `check --offline`: secrets and the files the config names are not read.
    pub(super) offline: bool,
    /// Problems with what the config names (secrets, files) found so far:
    /// resolution goes on with a stand-in, so one run reports them all.
    deferred: RefCell<Vec<ConfigError>>,
    /// The config's own `[[preset]]`s, ahead of the built-in ones.
    presets: RefCell<Vec<Preset>>,
    /// The address lists `allow_ips` may name (`"list:NAME"`).
    ip_list_names: RefCell<Vec<String>>,
    /// Every secret resolved so far, with its key: what the [`Redactor`] hides.
    kept: RefCell<Vec<(String, secret::Secret)>>,
    /// Offline but for this route, whose secrets and files are read
    /// (`explain --route NAME`).
    only_route: Option<&'a str>,
}

impl<'a> Loader<'a> {
    fn new(text: &'a str, path: &'a Path, offline: bool) -> Loader<'a> {
        Loader {
            text,
            path,
            warnings: RefCell::new(Vec::new()),
            trial: RefCell::new(Vec::new()),
            offline,
            deferred: RefCell::new(Vec::new()),
            presets: RefCell::new(Vec::new()),
            ip_list_names: RefCell::new(Vec::new()),
            kept: RefCell::new(Vec::new()),
            only_route: None,
        }
    }

    /// Note a resolved secret (`key` names it in a warning), to be hidden
    /// by value in everything callgate shows.
    pub(super) fn keep(&self, key: &str, secret: &secret::Secret) {
        self.kept
            .borrow_mut()
            .push((key.to_owned(), secret.clone()));
    }

    /// The redactor of every secret kept; a warning for each too short to
    /// be searched for.
    fn redactor(&self) -> Redactor {
        let kept = self.kept.take();
        for (key, s) in kept
            .iter()
            .filter(|(_, s)| s.expose().len() < MIN_REDACTED_BYTES)
        {
            self.warn(format!("{key} is {} bytes: too short to be hidden by value in logs and the console (at least {MIN_REDACTED_BYTES}); use a longer one", s.expose().len()));
        }
        Redactor::new(kept.iter().map(|(_, s)| s.expose()))
    }

    /// For the one route an offline load reads in full: a loader that
    /// reads secrets and files, with this one's presets. Its findings are
    /// taken back with [`Loader::absorb`].
    fn online_for(&self, route: &raw::RawRoute) -> Option<Loader<'a>> {
        if !self.offline || self.only_route != Some(route.name.get_ref().as_str()) {
            return None;
        }
        let online = Loader::new(self.text, self.path, false);
        *online.presets.borrow_mut() = self.presets.borrow().clone();
        Some(online)
    }

    /// What `other` found (problems, warnings), as found here.
    fn absorb(&self, other: Loader<'_>) {
        self.deferred.borrow_mut().extend(other.deferred.take());
        self.warnings.borrow_mut().extend(other.warnings.take());
        self.kept.borrow_mut().extend(other.kept.take());
        self.trial.borrow_mut().extend(other.trial.take());
    }

    /// The value, or (noting the error for the end of the run) the stand-in
    /// that lets resolution go on to the next problem.
    pub(super) fn or_defer<T>(&self, r: Result<T, ConfigError>, stand_in: impl FnOnce() -> T) -> T {
        r.unwrap_or_else(|e| {
            self.deferred.borrow_mut().push(e);
            stand_in()
        })
    }

    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> ConfigError {
        let at = match span {
            Some(span) => {
                let before = &self.text[..span.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            }
            None => String::new(),
        };
        ConfigError::new(self.path.to_owned(), at, message.into())
    }

    /// The names `allow_ips` may give as `"list:NAME"`.
    pub(super) fn ip_list_names(&self) -> Vec<String> {
        self.ip_list_names.borrow().clone()
    }

    pub(super) fn warn(&self, text: String) {
        self.warnings.borrow_mut().push(text);
    }

    pub(super) fn at<T>(&self, value: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(value.span()), message)
    }

    /// `[listen]`: at least one of https and http.
    fn listen(&self, raw: raw::RawListen, span: &Range<usize>) -> Result<Listen, ConfigError> {
        let listen = Listen {
            https: raw.https.map(|a| a.0),
            http: raw.http.map(|a| a.0),
            admin: raw.admin.map(|a| a.0),
            proxy_protocol: raw.proxy_protocol.unwrap_or(false),
            proxy_protocol_from: raw
                .proxy_protocol_from
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.0)
                .collect(),
            http_redirect: raw.http_redirect.unwrap_or(false),
        };
        if listen.proxy_protocol && listen.proxy_protocol_from.is_empty() {
            return Err(self.error(Some(span.clone()), "listen.proxy_protocol = true needs listen.proxy_protocol_from = [\"10.0.0.0/8\"]: the addresses of your balancers, whose PROXY headers are believed (from any other peer, a PROXY header could name any client)"));
        }
        if let Some(all) = listen
            .proxy_protocol_from
            .iter()
            .find(|n| n.prefix_len() == 0)
        {
            return Err(self.error(Some(span.clone()), format!("listen.proxy_protocol_from = [\"{all}\"] believes every peer: list your balancers' addresses only")));
        }
        if listen.https.is_none() && listen.http.is_none() {
            return Err(self.error(Some(span.clone()), "[listen] has no listener: set https = \"0.0.0.0:443\" (with [tls]) or http = \"127.0.0.1:8080\""));
        }
        Ok(listen)
    }

    fn resolve(&self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let listen_span = raw.listen.span();
        let listen = self.listen(raw.listen.into_inner(), &listen_span)?;
        let ip_lists_dir = lists_dir(raw.queue.as_ref());
        let queue = self.queue(raw.queue, true)?;
        let tls = self.tls(raw.tls, &listen, &queue)?;
        if listen.https.is_some() && tls.is_none() {
            return Err(self.error(Some(listen_span), "listen.https needs a [tls] table: give cert and key PEM files, or self_signed = true for a trial"));
        }

        let (gateway, upstream_timeout) = self.gateway(raw.gateway)?;
        if raw.routes.is_empty() {
            return Err(self.error(
                None,
                "no [[route]]: add at least one route (name, path, upstream and a check)",
            ));
        }

        self.define_presets(raw.presets)?;
        let ip_lists = self.ip_lists(raw.ip_lists)?;
        *self.ip_list_names.borrow_mut() = ip_lists.iter().map(|l| l.name.clone()).collect();
        let routes = self.routes(raw.routes, upstream_timeout, gateway.max_body_bytes)?;
        let ip_lists = self.named_lists(ip_lists, &routes);
        let passthroughs = self.passthroughs(raw.passthroughs, &routes)?;
        for w in super::deploy::locked_routes(routes.iter(), &passthroughs) {
            self.warn(w);
        }
        // Folded once here, as PHP reads names (redaction per request
        // compares folded names).
        let mut redact_params: Vec<String> = routes
            .iter()
            .filter_map(|r| r.token.as_ref().map(|t| crate::php::folded(&t.param)))
            .collect();
        redact_params.sort();
        redact_params.dedup();

        if let Some(a) = listen
            .admin
            .filter(|a| !a.ip().to_canonical().is_loopback())
        {
            self.warn(format!("listen.admin = \"{a}\" is not a loopback address: it is plain HTTP, so the console's password and session cookie travel in clear, and /metrics and /healthz answer anyone who reaches it. Bind it to 127.0.0.1 or [::1] and reach it over an SSH tunnel, or make sure only a trusted network and a firewall reach it"));
        }
        if tls.as_ref().is_some_and(|t| t.self_signed) {
            self.warn("[tls] self_signed = true: an in-memory certificate for localhost. Providers will refuse it. TRIALS ONLY: set cert and key for production".into());
            self.trial
                .borrow_mut()
                .push("[tls] self_signed = true (give cert and key)".into());
        }
        let admin = self.admin(raw.admin, &listen)?;
        let off_loopback = trial::configured_off_loopback(&listen);
        if !self.trial.borrow().is_empty() && !off_loopback.is_empty() {
            let why = trial::refusal(&self.trial.borrow(), &off_loopback);
            return Err(self.error(Some(listen_span), why));
        }
        let redactor = self.redactor();
        Ok(Config {
            path: self.path.to_owned(),
            admin,
            listen,
            tls,
            gateway,
            passthroughs,
            redact_params,
            redactor,
            queue,
            routes,
            ip_lists,
            ip_lists_dir,
            warnings: self.warnings.take(),
            trial: self.trial.take(),
        })
    }

    /// A header callgate sets itself must not be one that frames or routes
    /// the request (every callback would break, or be smuggled).
    pub(super) fn own_header(&self, name: &HeaderName, key: &str) -> Result<(), ConfigError> {
        const FRAMING: &[&str] = &[
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "content-type",
            "content-encoding",
            "expect",
            "cookie",
            "authorization",
            "x-forwarded-for",
            "forwarded",
        ];
        if FRAMING
            .iter()
            .any(|f| crate::php::same_header(name.as_str(), f))
        {
            return Err(self.error(None, format!("{key} = \"{name}\" names a header that frames, routes or authenticates the request: choose a name of its own, such as X-Callgate-Verified")));
        }
        Ok(())
    }

    /// Every `[[preset]]`, resolved: a name given twice is refused, a
    /// built-in name is overridden (with a warning, so it is never a
    /// surprise).
    fn define_presets(&self, raw: Vec<Spanned<PresetFile>>) -> Result<(), ConfigError> {
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let file = spanned.into_inner();
            let label = format!("preset[{i}] ({:?})", file.name);
            // A repeated name is refused before anything is kept for the process.
            if self.presets.borrow().iter().any(|p| p.name() == file.name) {
                return Err(self.error(
                    Some(span),
                    format!("{label}: another [[preset]] has this name; names must be unique"),
                ));
            }
            let text = toml::to_string(&file).unwrap_or_default();
            let def = file.resolve(text).map_err(|e| {
                self.error(Some(span.clone()), format!("{label}: {e} (`callgate presets show NAME` prints a built-in preset in this schema)"))
            })?;
            let preset = Preset::define(def);
            if Preset::builtin(preset.name()).is_some() {
                self.warn(format!(
                    "{label} overrides the built-in preset of that name"
                ));
            }
            self.presets.borrow_mut().push(preset);
        }
        Ok(())
    }

    /// A route's `preset = "NAME"`: the config's own first, then the built-in ones.
    pub(super) fn preset(&self, name: &Spanned<String>) -> Result<Preset, ConfigError> {
        let wanted = name.get_ref().as_str();
        let own = self
            .presets
            .borrow()
            .iter()
            .copied()
            .find(|p| p.name() == wanted);
        own.or_else(|| Preset::builtin(wanted)).ok_or_else(|| {
            let near = super::presets::did_you_mean(wanted);
            self.at(name, format!("unknown preset {wanted:?}: {near}`callgate presets` lists the built-in ones; describe another with [[preset]]"))
        })
    }

    /// Every `[[route]]`; names unique, and one path served by two routes
    /// only for hosts that do not overlap.
    fn routes(
        &self,
        raw: Vec<Spanned<raw::RawRoute>>,
        upstream_timeout: Duration,
        max_body_bytes: u64,
    ) -> Result<Routes, ConfigError> {
        let mut routes = Routes::default();
        for (i, spanned) in raw.into_iter().enumerate() {
            let span = spanned.span();
            let raw_route = spanned.into_inner();
            let online = self.online_for(&raw_route);
            let loader = online.as_ref().unwrap_or(self);
            let route = loader.route(i, span.clone(), raw_route, upstream_timeout, max_body_bytes);
            if let Some(online) = online {
                self.absorb(online);
            }
            // A broken route is reported with the others; the next is checked.
            let Some(route) = self.or_defer(route.map(Some), || None) else {
                continue;
            };
            let taken = |msg: String| Err(self.error(Some(span.clone()), msg));
            if routes.in_order.iter().any(|r| r.name == route.name) {
                return taken(format!(
                    "route[{i}]: the name {:?} is used by another route; names must be unique",
                    route.name
                ));
            }
            let same_path = routes.by_path.entry(route.path.clone()).or_default();
            if let Some(other) = same_path
                .iter()
                .find(|o| hosts_overlap(o.hosts.as_deref(), route.hosts.as_deref()))
            {
                return taken(format!("route[{i}] ({:?}): path {:?} is already served by route {:?} for the same host; give each a distinct host = [...], or a distinct path", route.name, route.path, other.name));
            }
            let route = Arc::new(route);
            same_path.push(route.clone());
            routes.in_order.push(route);
        }
        self.no_shared_oracle_key(&routes.in_order)?;
        let report_only: Vec<&str> = routes
            .iter()
            .filter(|r| !r.enforce)
            .map(|r| r.name.as_str())
            .collect();
        if !report_only.is_empty() {
            self.warn(format!(
                "{} route(s) do not enforce their checks (enforce = false, report-only): {}; failed callbacks are forwarded and logged as would_refuse",
                report_only.len(),
                report_only.join(", ")
            ));
        }
        Ok(routes)
    }

    /// Host names as compared: lower case, no port, no trailing dot.
    pub(super) fn hosts(
        &self,
        label: &str,
        raw: Vec<Spanned<String>>,
    ) -> Result<Vec<String>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(None, format!("{label}: an empty host list would match nothing; list names, or remove the key")));
        }
        raw.iter()
            .map(|h| {
                let name = h.get_ref().trim().trim_end_matches('.').to_ascii_lowercase();
                let bare = name.strip_prefix("*.").unwrap_or(&name);
                let valid = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if valid {
                    Ok(name)
                } else {
                    Err(self.at(h, format!("{label}: {:?} is not a host name (write www.example.com, or *.example.com for one label)", h.get_ref())))
                }
            })
            .collect()
    }

    /// A duration from the file within `valid`, or `default` when absent.
    /// (Durations carry no position: the message names the key.)
    pub(super) fn duration(
        &self,
        value: Option<raw::Dur>,
        default: Duration,
        valid: std::ops::RangeInclusive<Duration>,
        key: &str,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = value else {
            return Ok(default);
        };
        if valid.contains(&v.0) {
            return Ok(v.0);
        }
        let show = |d: Duration| humantime::format_duration(d).to_string();
        Err(self.error(
            None,
            format!(
                "{key} = \"{}\" is out of range: give a duration from {} to {}",
                show(v.0),
                show(*valid.start()),
                show(*valid.end())
            ),
        ))
    }

    /// A number from the file within `valid`, or `default` when absent.
    pub(super) fn number<T: PartialOrd + Copy>(
        &self,
        value: Option<Spanned<T>>,
        default: T,
        valid: std::ops::RangeInclusive<T>,
        problem: &str,
    ) -> Result<T, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if valid.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.at(&v, problem)),
        }
    }

    /// One secret spec, resolved and long enough. A problem is noted (the
    /// run goes on with a stand-in); offline, the stand-in is all there is.
    pub(super) fn secret(&self, spec: &Spanned<String>, key: &str) -> secret::Secret {
        let stand_in = || secret::Secret::from(OFFLINE_SECRET.as_bytes().to_vec());
        if self.offline {
            // `explain --route X` needs no other route's secret but hides
            // every one it can read; `check --offline` reads nothing, but a
            // secret written in the file is still hidden by value.
            let readable =
                self.only_route.is_some() || secret::describe(spec.get_ref()) == "literal";
            if let Some(s) = readable
                .then(|| secret::resolve(spec.get_ref()).ok())
                .flatten()
            {
                self.keep(key, &s);
            }
            return stand_in();
        }
        let s = secret::resolve(spec.get_ref())
            .map_err(|e| e.to_string())
            .and_then(|s| match too_short(&s) {
                Some(why) => Err(why),
                None => Ok(s),
            })
            .map_err(|e| self.at(spec, format!("{key}: {e}")));
        if let Ok(s) = &s {
            self.keep(key, s);
            if trial::is_placeholder(s.expose()) {
                let edit =
                    format!("{key} (a CHANGE-ME placeholder: give the real secret, as cred:NAME)");
                self.trial.borrow_mut().push(edit);
            }
        }
        if secret::describe(spec.get_ref()) == "literal" {
            self.warn(format!("{key} is written in the config file: move it to env:, file: or cred: before production"));
        }
        self.or_defer(s, stand_in)
    }

    /// Resolve a non-empty list of secret specs; errors point at the failing entry.
    pub(super) fn secrets(
        &self,
        label: &str,
        table: &str,
        table_span: Range<usize>,
        specs: &[Spanned<String>],
    ) -> Result<(Vec<secret::Secret>, Vec<String>), ConfigError> {
        if specs.is_empty() {
            return Err(self.error(Some(table_span), format!("{label}.{table}.secrets is empty: give at least one, e.g. [\"env:NAME\"], [\"file:/etc/callgate/key\"] or [\"cred:NAME\"]")));
        }
        let secrets = specs
            .iter()
            .enumerate()
            .map(|(j, spec)| self.secret(spec, &format!("{label}.{table}.secrets[{j}]")))
            .collect();
        Ok((
            secrets,
            specs
                .iter()
                .map(|s| secret::describe(s.get_ref()))
                .collect(),
        ))
    }
}

/// What stands in for every secret offline: valid as a raw key and as a
/// `whsec_` key, and never a real one.
const OFFLINE_SECRET: &str = "whsec_b2ZmbGluZS1wbGFjZWhvbGRlci1ub3QtYS1zZWNyZXQ=";

/// A key or token short enough to guess protects nothing.
pub(super) fn too_short(secret: &secret::Secret) -> Option<String> {
    let n = secret.expose().len();
    (n < MIN_SECRET_BYTES).then(|| format!("a secret of {n} bytes is too short to protect anything: use at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)"))
}

/// A parser message without the string values it quotes: `invalid type:
/// string "tolq-token-…", expected a sequence` would print a secret written
/// in the wrong shape. The key and the position say where; the value is
/// the operator's to look at.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at + "string ".len()]);
        let quoted = &rest[at + "string \"".len()..];
        // The literal ends at the first quote not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        match end {
            Some(i) => {
                out.push_str("(value not shown)");
                rest = &quoted[i + 1..];
            }
            None => {
                out.push_str("(value not shown)");
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the named address lists are kept: the state directory, whichever
/// store the queue uses.
fn lists_dir(queue: Option<&raw::RawQueue>) -> std::path::PathBuf {
    Path::new(
        queue
            .and_then(|q| q.dir.as_deref())
            .unwrap_or(super::DEFAULT_QUEUE_DIR),
    )
    .join("ip-lists")
}

#[cfg(test)]
mod value_tests {
    use super::without_values;

    #[test]
    fn quoted_strings_in_parser_messages_are_not_shown() {
        assert_eq!(
            without_values("invalid type: string \"tolq-secret\", expected a sequence"),
            "invalid type: string (value not shown), expected a sequence"
        );
        assert_eq!(
            without_values("invalid type: string \"a\\\"b\", expected x"),
            "invalid type: string (value not shown), expected x"
        );
        assert_eq!(without_values("unknown field `x`"), "unknown field `x`");
    }
}
