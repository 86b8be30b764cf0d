//! The console's logins: random session ids (kept only as SHA-256
//! digests), a CSRF token per session, a bounded number of sessions that
//! expire, and a brake on guessing per client address: wrong passwords and
//! wrong bearers count alike, and one address's failures never refuse
//! another's.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A session lasts this long after its login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions; the oldest goes first.
const MAX_SESSIONS: usize = 64;
/// Wrong passwords (or bearers) allowed per [`GUESS_WINDOW`] from one
/// client address (an IPv6 /64): then 429 until the window has passed.
const MAX_GUESSES: usize = 5;
const GUESS_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered; when more fail within
/// a window, the one that failed least recently is forgotten first.
const MAX_GUESSERS: usize = 4096;

/// A logged-in browser: the cookie's value and the token its forms carry.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) id: String,
    pub(crate) csrf: String,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Wrong,
    /// Too many wrong passwords lately: try again after this long.
    Throttled(Duration),
}

struct Session {
    csrf: String,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    /// By the digest of the session id.
    sessions: HashMap<[u8; 32], Session>,
    /// By client address (IPv6 by /64): its failures in the last window,
    /// oldest first, at most [`MAX_GUESSES`].
    wrong: HashMap<u128, VecDeque<Instant>>,
}

/// The brake's key for a client: an IPv4 address, or an IPv6 /64 (one
/// host's usual share).
fn guesser(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 64) - 1)) | 1,
    }
}

/// Every console session of this process.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Whether `given` is the password whose digest is `expected` (constant time).
pub(crate) fn password_matches(given: &[u8], expected: &[u8; 32]) -> bool {
    let d: [u8; 32] = Sha256::digest(given).into();
    d.ct_eq(expected).into()
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `client` must wait before its next try, if it failed
    /// [`MAX_GUESSES`] times in the last [`GUESS_WINDOW`].
    pub(crate) fn throttled(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let mut inner = self.lock();
        let key = guesser(client);
        let times = inner.wrong.get_mut(&key)?;
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= GUESS_WINDOW)
        {
            times.pop_front();
        }
        match times.front().copied() {
            Some(oldest) if times.len() >= MAX_GUESSES => {
                Some(GUESS_WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
            }
            Some(_) => None,
            None => {
                inner.wrong.remove(&key);
                None
            }
        }
    }

    /// One wrong password or bearer from `client` at `now`.
    pub(crate) fn failed(&self, client: IpAddr, now: Instant) {
        let mut inner = self.lock();
        let key = guesser(client);
        if !inner.wrong.contains_key(&key) && inner.wrong.len() >= MAX_GUESSERS {
            let live = |t: &VecDeque<Instant>| {
                t.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < GUESS_WINDOW)
            };
            inner.wrong.retain(|_, t| live(t));
            if inner.wrong.len() >= MAX_GUESSERS {
                let stalest = inner
                    .wrong
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| *k);
                if let Some(k) = stalest {
                    inner.wrong.remove(&k);
                }
            }
        }
        let times = inner.wrong.entry(key).or_default();
        times.push_back(now);
        while times.len() > MAX_GUESSES {
            times.pop_front();
        }
    }

    /// A login attempt from `client` at `now`: a new session, or why not.
    /// Throttled attempts are refused before the password is even looked at.
    pub(crate) fn login(
        &self,
        client: IpAddr,
        password_ok: impl FnOnce() -> bool,
        now: Instant,
    ) -> Result<Login, Refused> {
        if let Some(wait) = self.throttled(client, now) {
            return Err(Refused::Throttled(wait));
        }
        if !password_ok() {
            self.failed(client, now);
            return Err(Refused::Wrong);
        }
        let mut inner = self.lock();
        inner.sessions.retain(|_, s| s.expires > now);
        if inner.sessions.len() >= MAX_SESSIONS {
            let oldest = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                inner.sessions.remove(&k);
            }
        }
        let login = Login {
            id: random_hex(),
            csrf: random_hex(),
        };
        inner.sessions.insert(
            digest(&login.id),
            Session {
                csrf: login.csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        Ok(login)
    }

    /// End every session (the password changed).
    pub(crate) fn end_all(&self) {
        self.lock().sessions.clear();
    }

    /// The CSRF token of the live session `id`, if there is one.
    pub(crate) fn csrf(&self, id: &str, now: Instant) -> Option<String> {
        let inner = self.lock();
        let s = inner.sessions.get(&digest(id))?;
        (s.expires > now).then(|| s.csrf.clone())
    }

    /// End the session `id`.
    pub(crate) fn logout(&self, id: &str) {
        self.lock().sessions.remove(&digest(id));
    }
}

/// Whether `given` is the session's CSRF token (constant time).
pub(crate) fn csrf_matches(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_gives_a_session_with_its_own_csrf_token_until_logout_or_expiry() {
        let s = Sessions::default();
        let now = Instant::now();
        let a = s.login(ME, || true, now).unwrap();
        let b = s.login(ME, || true, now).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(s.csrf(&a.id, now).as_deref(), Some(a.csrf.as_str()));
        assert!(s.csrf("not-a-session", now).is_none());
        assert!(s.csrf(&a.id, now + SESSION_TTL).is_none(), "expired");
        s.logout(&a.id);
        assert!(s.csrf(&a.id, now).is_none());
        assert!(s.csrf(&b.id, now).is_some());
    }

    #[test]
    fn sessions_are_bounded() {
        let s = Sessions::default();
        let now = Instant::now();
        let first = s.login(ME, || true, now).unwrap();
        for i in 0..MAX_SESSIONS {
            s.login(ME, || true, now + Duration::from_millis(i as u64 + 1))
                .unwrap();
        }
        assert_eq!(s.lock().sessions.len(), MAX_SESSIONS);
        assert!(s.csrf(&first.id, now).is_none(), "the oldest went");
    }

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn guessing_is_throttled_per_address_even_with_the_right_password() {
        let s = Sessions::default();
        let now = Instant::now();
        let guesser: IpAddr = "2001:db8:1:2::7".parse().unwrap();
        for _ in 0..MAX_GUESSES {
            assert_eq!(s.login(guesser, || false, now).unwrap_err(), Refused::Wrong);
        }
        let later = now + Duration::from_secs(20);
        let looked = std::cell::Cell::new(false);
        let refused = s.login(guesser, || looked.replace(true), later);
        assert_eq!(
            refused.unwrap_err(),
            Refused::Throttled(Duration::from_secs(40))
        );
        assert!(!looked.get(), "a throttled try is not compared");
        // The same /64, another host: the same brake.
        let neighbour: IpAddr = "2001:db8:1:2::8".parse().unwrap();
        assert!(s.throttled(neighbour, later).is_some());
        // Another address logs in at once.
        assert!(s.login(ME, || true, later).is_ok());
        let other64: IpAddr = "2001:db8:1:3::7".parse().unwrap();
        assert!(s.login(other64, || true, later).is_ok());
        assert!(
            s.login(guesser, || true, now + GUESS_WINDOW).is_ok(),
            "the window passed"
        );
    }

    #[test]
    fn the_brake_forgets_before_it_grows() {
        let s = Sessions::default();
        let now = Instant::now();
        for i in 0..(MAX_GUESSERS as u32 + 100) {
            s.failed(IpAddr::V4(i.into()), now);
        }
        assert!(s.lock().wrong.len() <= MAX_GUESSERS);
        let logins = s.login(ME, || true, now);
        assert!(logins.is_ok());
    }

    #[test]
    fn passwords_and_tokens_compare_whole() {
        let d: [u8; 32] = Sha256::digest(b"correct horse battery").into();
        assert!(password_matches(b"correct horse battery", &d));
        assert!(!password_matches(b"correct horse batter", &d));
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("ab", "abc"));
        assert!(!csrf_matches("abd", "abc"));
    }
}
