//! The console's logins: random session ids (kept only as SHA-256
//! digests), a CSRF token per session, a bounded number of sessions that
//! expire, and a brake on password guessing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A session lasts this long after its login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many sessions; the oldest goes first.
const MAX_SESSIONS: usize = 64;
/// Wrong passwords allowed per [`GUESS_WINDOW`], from anywhere.
const MAX_GUESSES: usize = 10;
const GUESS_WINDOW: Duration = Duration::from_secs(60);

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
    wrong: VecDeque<Instant>,
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

    /// A login attempt at `now`: a new session, or why not. Throttled
    /// attempts are refused before the password is even looked at.
    pub(crate) fn login(&self, password_ok: bool, now: Instant) -> Result<Login, Refused> {
        let mut inner = self.lock();
        while inner
            .wrong
            .front()
            .is_some_and(|t| now.duration_since(*t) >= GUESS_WINDOW)
        {
            inner.wrong.pop_front();
        }
        if inner.wrong.len() >= MAX_GUESSES {
            let oldest = inner.wrong.front().copied().unwrap_or(now);
            return Err(Refused::Throttled(
                GUESS_WINDOW.saturating_sub(now.duration_since(oldest)),
            ));
        }
        if !password_ok {
            inner.wrong.push_back(now);
            return Err(Refused::Wrong);
        }
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
        let a = s.login(true, now).unwrap();
        let b = s.login(true, now).unwrap();
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
        let first = s.login(true, now).unwrap();
        for i in 0..MAX_SESSIONS {
            s.login(true, now + Duration::from_millis(i as u64 + 1))
                .unwrap();
        }
        assert_eq!(s.lock().sessions.len(), MAX_SESSIONS);
        assert!(s.csrf(&first.id, now).is_none(), "the oldest went");
    }

    #[test]
    fn guessing_is_throttled_even_with_the_right_password() {
        let s = Sessions::default();
        let now = Instant::now();
        for _ in 0..MAX_GUESSES {
            assert_eq!(s.login(false, now).unwrap_err(), Refused::Wrong);
        }
        assert!(matches!(s.login(true, now), Err(Refused::Throttled(_))));
        assert!(
            s.login(true, now + GUESS_WINDOW).is_ok(),
            "the window passed"
        );
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
