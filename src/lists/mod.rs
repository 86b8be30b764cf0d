//! Provider address lists at run time: what each named list
//! (`allow_ips = ["list:github"]`) holds now, where that copy came from,
//! and the background refresh that keeps it current. The last good copy
//! is kept on disk (`stored.rs`) and used at start and whenever a refresh
//! fails; a refresh that fails, is empty or absurd never replaces it.

mod fetch;
pub(crate) mod parse;
pub(crate) mod stored;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rand::RngExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::ip_list::IpList;
use crate::config::{Config, NamedLists};
use crate::metrics::Metrics;
pub(crate) use stored::Copy;

/// Every named list's current copy, by name. Requests read it; the
/// refresher and reloads replace entries whole.
#[derive(Default)]
pub(crate) struct Lists {
    held: ArcSwap<HashMap<String, Arc<Copy>>>,
    /// Wakes the refresher (SIGHUP): every list is fetched again now.
    wake: Notify,
    /// Each list's last refresh, by name (for `/api/health`).
    last: std::sync::Mutex<HashMap<String, Refreshed>>,
}

/// How a list's last refresh went.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Refreshed {
    /// Unix seconds.
    pub(crate) at: i64,
    pub(crate) ok: bool,
    /// Why it failed (no URL in it: the list names its source).
    pub(crate) error: Option<String>,
}

/// One list as `/api/health` shows it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ListHealth {
    pub(crate) name: String,
    /// The URL, its query shown as `REDACTED`.
    pub(crate) source: String,
    /// The copy in use: its ranges and age, or null with no copy yet.
    pub(crate) ranges: Option<usize>,
    pub(crate) age_seconds: Option<i64>,
    /// Null until the first refresh since start.
    pub(crate) last_refresh: Option<Refreshed>,
}

impl NamedLists for Lists {
    fn contains(&self, list: &str, ip: IpAddr) -> Option<bool> {
        let held = self.held.load();
        let copy = held.get(list)?;
        Some(copy.nets.iter().any(|n| n.contains(&ip)))
    }
}

impl Lists {
    /// The lists `config` names, each with the copy it had (when its
    /// source is the same as in `before`), else the stored one (a stored
    /// copy not callgate's own is refused, and said).
    pub(crate) fn install(&self, before: &[IpList], config: &Config) {
        let old = self.held.load_full();
        let mut held = HashMap::new();
        for list in &config.ip_lists {
            let kept = before
                .iter()
                .any(|b| b.same_source(list))
                .then(|| old.get(&list.name).cloned())
                .flatten();
            match kept.or_else(|| from_disk(&config.ip_lists_dir, list)) {
                Some(copy) => held.insert(list.name.clone(), copy),
                None => {
                    tracing::warn!(list = %list.name, "list:{} has no copy yet: routes naming it refuse every caller outside their written addresses until it is fetched from {}", list.name, list.shown_url());
                    None
                }
            };
        }
        self.held.store(Arc::new(held));
    }

    /// The copy `list` holds now.
    pub(crate) fn copy(&self, list: &str) -> Option<Arc<Copy>> {
        self.held.load().get(list).cloned()
    }

    /// Fetch every list again now (SIGHUP).
    pub(crate) fn refresh_now(&self) {
        self.wake.notify_one();
    }

    /// Each list's age, for `/metrics`.
    pub(crate) fn export(&self, metrics: &Metrics) {
        let now = clock::unix_secs();
        for (name, copy) in self.held.load().iter() {
            metrics.ip_list_age(name, now.saturating_sub(copy.fetched_at).max(0));
        }
    }

    /// Each list `config` names: source, copy, last refresh.
    pub(crate) fn health(&self, config: &Config) -> Vec<ListHealth> {
        let (held, now) = (self.held.load(), clock::unix_secs());
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        config
            .ip_lists
            .iter()
            .map(|l| {
                let copy = held.get(&l.name);
                ListHealth {
                    name: l.name.clone(),
                    source: l.shown_url(),
                    ranges: copy.map(|c| c.nets.len()),
                    age_seconds: copy.map(|c| now.saturating_sub(c.fetched_at).max(0)),
                    last_refresh: last.get(&l.name).cloned(),
                }
            })
            .collect()
    }

    fn note(&self, name: &str, error: Option<String>) {
        let r = Refreshed {
            at: clock::unix_secs(),
            ok: error.is_none(),
            error,
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.insert(name.to_owned(), r);
    }

    fn put(&self, name: &str, copy: Copy) {
        let mut held = HashMap::clone(&self.held.load());
        held.insert(name.to_owned(), Arc::new(copy));
        self.held.store(Arc::new(held));
    }
}

/// A stored copy, or None (absent, or refused: logged).
fn from_disk(dir: &Path, list: &IpList) -> Option<Arc<Copy>> {
    match stored::load(dir, list) {
        Ok(Some(copy)) => {
            tracing::info!(list = %list.name, ranges = copy.nets.len(), age_s = clock::unix_secs().saturating_sub(copy.fetched_at).max(0), "list:{} uses its stored copy", list.name);
            Some(Arc::new(copy))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!(list = %list.name, "list:{}: the stored copy is not used: {e}", list.name);
            None
        }
    }
}

/// Each list's stored copy, as `check` and `explain` see it (nothing is
/// fetched): the copy, or why there is none to use.
pub(crate) struct OnDisk(pub(crate) Vec<(IpList, Result<Option<Copy>, String>)>);

impl OnDisk {
    pub(crate) fn read(config: &Config) -> OnDisk {
        OnDisk(
            config
                .ip_lists
                .iter()
                .map(|l| {
                    let copy = stored::load(&config.ip_lists_dir, l).map_err(|e| e.to_string());
                    (l.clone(), copy)
                })
                .collect(),
        )
    }
}

impl NamedLists for OnDisk {
    fn contains(&self, list: &str, ip: IpAddr) -> Option<bool> {
        let (_, copy) = self.0.iter().find(|(l, _)| l.name == list)?;
        let copy = copy.as_ref().ok()?.as_ref()?;
        Some(copy.nets.iter().any(|n| n.contains(&ip)))
    }
}

/// The narrow handle the refresh task gets.
pub(crate) struct Refresher {
    pub(crate) config: Arc<ArcSwap<Config>>,
    pub(crate) lists: Arc<Lists>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stopping: CancellationToken,
}

/// Start the refresh task, once at start: reloads reach it through the
/// config it reads and [`Lists::refresh_now`].
pub(crate) fn spawn(r: Refresher) {
    tokio::spawn(Arc::new(r).run());
}

/// First wait after a failed refresh (no copy yet, or the refresh failed):
/// doubled at each failure in a row, at most the list's `refresh`.
pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(3);

/// When to try again after `failures` failed refreshes in a row.
fn retry_after(failures: u32, refresh: Duration) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    jittered(doubled.min(refresh))
}

/// The refresh task's schedule.
#[derive(Default)]
struct Schedule {
    /// When each list not being fetched is next due; absent: due now, or
    /// when its stored copy ages out.
    due: HashMap<String, Instant>,
    /// Failed refreshes in a row, by list.
    failures: HashMap<String, u32>,
    /// The lists being fetched now, each in a task of its own.
    busy: std::collections::HashSet<String>,
    running: tokio::task::JoinSet<(String, Duration, bool)>,
}

impl Schedule {
    /// A fetch ended: next due after `refresh`, or sooner after a failure.
    fn ended(&mut self, name: String, refresh: Duration, ok: bool) {
        self.busy.remove(&name);
        let wait = match ok {
            true => {
                self.failures.remove(&name);
                jittered(refresh)
            }
            false => {
                let n = self.failures.entry(name.clone()).or_default();
                *n += 1;
                retry_after(*n, refresh)
            }
        };
        self.due.insert(name, Instant::now() + wait);
    }
}

impl Refresher {
    /// Each due list fetched in a task of its own: one slow publisher
    /// holds up no other list.
    async fn run(self: Arc<Self>) {
        let mut s = Schedule::default();
        loop {
            let config = self.config.load_full();
            self.start_due(&config, &mut s);
            let named = |name: &String| config.ip_lists.iter().any(|l| &l.name == name);
            s.due.retain(|name, _| named(name));
            s.failures.retain(|name, _| named(name));
            let next = s.due.values().min().copied();
            let sleep = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = self.stopping.cancelled() => return,
                // SIGHUP: every list is due now.
                _ = self.lists.wake.notified() => s.due.values_mut().for_each(|at| *at = Instant::now()),
                Some(Ok((name, refresh, ok))) = s.running.join_next() => s.ended(name, refresh, ok),
                _ = tokio::time::sleep_until(sleep) => {}
            }
        }
    }

    /// Start a fetch of every list that is due and not being fetched.
    fn start_due(self: &Arc<Self>, config: &Config, s: &mut Schedule) {
        let now = Instant::now();
        for list in &config.ip_lists {
            if s.busy.contains(&list.name) {
                continue;
            }
            let at = *s
                .due
                .entry(list.name.clone())
                .or_insert_with(|| self.first_due(list, now));
            if at <= now {
                s.due.remove(&list.name);
                s.busy.insert(list.name.clone());
                let (me, dir, list) = (self.clone(), config.ip_lists_dir.clone(), list.clone());
                s.running.spawn(async move {
                    let ok = me.refresh(&dir, &list).await;
                    (list.name, list.refresh, ok)
                });
            }
        }
    }

    /// Due now without a copy, or with one dated in the future (a clock
    /// gone back, or a planted date: stale); else when it is `refresh` old.
    fn first_due(&self, list: &IpList, now: Instant) -> Instant {
        let Some(copy) = self
            .lists
            .copy(&list.name)
            .filter(|c| c.fetched_at <= clock::unix_secs())
        else {
            return now;
        };
        let age =
            Duration::from_secs(clock::unix_secs().saturating_sub(copy.fetched_at).max(0) as u64);
        now + list.refresh.saturating_sub(age)
    }

    /// Fetch, check, keep: a usable answer replaces the copy (memory and
    /// disk); anything else is logged and counted, and the copy stays.
    async fn refresh(&self, dir: &Path, list: &IpList) -> bool {
        let result = match fetch::fetch(list).await {
            Ok(doc) => parse::ranges(&list.format, &doc).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let nets = match result {
            Ok(nets) => nets,
            Err(why) => {
                self.metrics.ip_list_refresh(&list.name, false);
                self.lists.note(&list.name, Some(why.clone()));
                let kept = match self.lists.copy(&list.name) {
                    Some(c) => format!("the copy of {} ranges fetched {}s ago stays", c.nets.len(), clock::unix_secs().saturating_sub(c.fetched_at).max(0)),
                    None => "no copy yet: routes naming it refuse callers outside their written addresses".into(),
                };
                tracing::error!(list = %list.name, url = %list.shown_url(), "list:{} refresh failed ({why}); {kept}", list.name);
                return false;
            }
        };
        let copy = Copy {
            nets,
            fetched_at: clock::unix_secs(),
        };
        if let Err(e) = stored::save(dir, list, &copy) {
            tracing::error!(list = %list.name, "list:{}: cannot store the new copy ({e}); it is used until the next restart", list.name);
        }
        tracing::info!(list = %list.name, ranges = copy.nets.len(), "list:{} refreshed from {}", list.name, list.shown_url());
        self.metrics.ip_list_refresh(&list.name, true);
        self.lists.note(&list.name, None);
        self.lists.put(&list.name, copy);
        true
    }
}

/// `period`, less up to a tenth at random: instances started together
/// do not fetch together.
fn jittered(period: Duration) -> Duration {
    let tenth = period.as_millis() as u64 / 10;
    period - Duration::from_millis(rand::rng().random_range(0..=tenth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_start_at_seconds_double_and_stop_at_the_refresh_period() {
        let day = Duration::from_secs(86_400);
        assert!(retry_after(1, day) <= FIRST_RETRY);
        assert!(retry_after(2, day) > FIRST_RETRY);
        assert!(retry_after(40, Duration::from_secs(3600)) <= Duration::from_secs(3600));
    }

    #[test]
    fn jitter_stays_within_a_tenth_below() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(600));
            assert!(j <= Duration::from_secs(600) && j >= Duration::from_secs(540));
        }
    }
}
