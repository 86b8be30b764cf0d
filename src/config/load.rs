//! `Config::load`: read the file, deserialize it ([`super::raw`]), then
//! resolve every table into its typed value, with errors that name the file,
//! the line and column, and the fix.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::defaults::MIN_SECRET_BYTES;
use super::presets::Preset;
use super::queue::lists_dir;
use super::redact::{Redactor, MIN_REDACTED_BYTES};
use super::route::{Inherited, RawRoute};
use super::syntax::{parse_errors, without_values};
use super::{raw, secret, trial, Config, ConfigError, QueueBackend};
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
    pub(super) presets: RefCell<Vec<Preset>>,
    /// The address lists `allow_ips` may name (`"list:NAME"`).
    pub(super) ip_list_names: RefCell<Vec<String>>,
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
    pub(super) fn online_for(&self, route: &RawRoute) -> Option<Loader<'a>> {
        if !self.offline || self.only_route != Some(route.name.get_ref().as_str()) {
            return None;
        }
        let online = Loader::new(self.text, self.path, false);
        *online.presets.borrow_mut() = self.presets.borrow().clone();
        *online.ip_list_names.borrow_mut() = self.ip_list_names();
        Some(online)
    }

    /// What `other` found (problems, warnings), as found here.
    pub(super) fn absorb(&self, other: Loader<'_>) {
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

    fn resolve(&self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let listen_span = raw.listen.span();
        let listen = self.listen(raw.listen.into_inner(), &listen_span)?;
        let ip_lists_dir = lists_dir(raw.queue.as_ref());
        let queue = self.queue(raw.queue, true)?;
        let tls = self.tls(raw.tls, &listen, &queue)?;
        if listen.https.is_some() && tls.is_none() {
            return Err(self.error(Some(listen_span), "listen.https needs a [tls] table: give cert and key PEM files, or self_signed = true for a trial"));
        }

        let gateway = self.gateway(raw.gateway)?;
        if raw.routes.is_empty() {
            return Err(self.error(
                None,
                "no [[route]]: add at least one route (name, path, upstream and a check)",
            ));
        }

        self.define_presets(raw.presets)?;
        let ip_lists = self.ip_lists(raw.ip_lists)?;
        *self.ip_list_names.borrow_mut() = ip_lists.iter().map(|l| l.name.clone()).collect();
        let inherited = Inherited {
            upstream_timeout: gateway.upstream_timeout,
            max_body_bytes: gateway.max_body_bytes,
        };
        let routes = self.routes(raw.routes, inherited)?;
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
