//! How many request-body bytes callgate holds in memory at once: a global
//! budget (`buffered_body_bytes`) and a share per client address
//! (`buffered_body_bytes_per_client`, IPv6 counted per /64), so strangers
//! stalling uploads cannot make callgate grow without bound, and one
//! address cannot take the whole budget from the others.
//!
//! A part of the budget is **reserved** for requests vouched for before
//! their body: an allowlisted address or a valid URL token. Strangers (on an
//! HMAC-only route nothing can be checked before the body) never hold more
//! than the rest, so a provider's callback is buffered while strangers'
//! stalled uploads hold all they may.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The budget; cheap to share between threads.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    per_client: u64,
    /// Bytes strangers may never hold: kept for vouched requests.
    reserve: u64,
    held: Mutex<Books>,
}

#[derive(Debug, Default)]
struct Books {
    total: u64,
    /// Of `total`, what requests nobody vouched for hold.
    strangers: u64,
    by_client: HashMap<IpAddr, u64>,
}

/// Why bytes could not be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exhausted {
    /// Every buffer callgate allows is in use.
    Total,
    /// This client address holds its whole share.
    Client,
}

impl Budget {
    /// A budget of `total` bytes, at most `per_client` of them for one
    /// address, and a quarter of it (at least `one_body`, at most all)
    /// reserved for vouched requests.
    pub(crate) fn new(total: u64, per_client: u64, one_body: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            per_client,
            reserve: (total / 4).max(one_body).min(total),
            held: Mutex::new(Books::default()),
        })
    }

    /// The limits, to tell whether a reload changed them.
    pub(crate) fn limits(&self) -> (u64, u64, u64) {
        (self.total, self.per_client, self.reserve)
    }

    /// An empty holding for one request from `client`; `vouched`: its
    /// address or token was checked before the body.
    pub(crate) fn hold(self: &Arc<Self>, client: IpAddr, vouched: bool) -> Held {
        Held {
            budget: self.clone(),
            client: crate::verify::client_ip::group(client),
            vouched,
            bytes: 0,
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held now, in total.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.books().total
    }
}

/// Bytes one request holds; given back when it is dropped.
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    client: IpAddr,
    vouched: bool,
    bytes: u64,
}

impl Held {
    /// Hold `n` more bytes, if the budget and the client's share allow.
    /// (The client's entry is found once: its address is hashed once.)
    pub(crate) fn grow(&mut self, n: u64) -> Result<(), Exhausted> {
        let budget = &self.budget;
        let mut books = budget.books();
        let Books {
            total,
            strangers,
            by_client,
        } = &mut *books;
        let mine = by_client.entry(self.client).or_insert(0);
        let refused = if *mine + n > budget.per_client {
            Some(Exhausted::Client)
        } else if *total + n > budget.total
            || (!self.vouched && *strangers + n > budget.total - budget.reserve)
        {
            Some(Exhausted::Total)
        } else {
            None
        };
        if let Some(refused) = refused {
            if *mine == 0 {
                by_client.remove(&self.client);
            }
            return Err(refused);
        }
        *mine += n;
        *total += n;
        if !self.vouched {
            *strangers += n;
        }
        self.bytes += n;
        Ok(())
    }

    /// Bytes held so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let mut books = self.budget.books();
        books.total -= self.bytes;
        if !self.vouched {
            books.strangers -= self.bytes;
        }
        if let Entry::Occupied(mut mine) = books.by_client.entry(self.client) {
            *mine.get_mut() -= self.bytes;
            if *mine.get() == 0 {
                mine.remove();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let b = Budget::new(100, 40, 0);
        let mut a = b.hold(ip("203.0.113.1"), true);
        assert_eq!(a.grow(30), Ok(()));
        assert_eq!(a.grow(20), Err(Exhausted::Client));
        let mut a2 = b.hold(ip("203.0.113.1"), true);
        assert_eq!(a2.grow(11), Err(Exhausted::Client));
        assert_eq!(a2.grow(10), Ok(()));
        let mut other = b.hold(ip("203.0.113.2"), true);
        assert_eq!(other.grow(40), Ok(()));
        assert_eq!(b.used(), 80);
    }

    #[test]
    fn a_refused_address_is_not_remembered() {
        let b = Budget::new(100, 40, 0);
        let mut a = b.hold(ip("203.0.113.1"), false);
        assert_eq!(a.grow(41), Err(Exhausted::Client));
        let mut c = b.hold(ip("203.0.113.2"), false);
        assert_eq!(c.grow(30), Ok(()));
        let mut d = b.hold(ip("203.0.113.3"), false);
        assert_eq!(d.grow(30), Ok(()));
        let mut e = b.hold(ip("203.0.113.4"), false);
        assert_eq!(e.grow(30), Err(Exhausted::Total), "75 of 100 for strangers");
        drop((c, d));
        assert!(b.books().by_client.is_empty(), "no address is remembered");
    }

    #[test]
    fn the_total_is_shared_and_comes_back_when_requests_end() {
        let b = Budget::new(100, 60, 0);
        let mut x = b.hold(ip("203.0.113.1"), true);
        let mut y = b.hold(ip("203.0.113.2"), true);
        assert_eq!(x.grow(60), Ok(()));
        assert_eq!(y.grow(41), Err(Exhausted::Total));
        assert_eq!(y.grow(40), Ok(()));
        drop(x);
        assert_eq!(b.used(), 40);
        let mut z = b.hold(ip("203.0.113.1"), true);
        assert_eq!(z.grow(60), Ok(()));
        drop((y, z));
        assert_eq!(b.used(), 0);
        assert!(b.books().by_client.is_empty(), "no address is remembered");
    }

    #[test]
    fn strangers_never_take_the_reserve_from_vouched_requests() {
        // 100 bytes, 25 reserved; each address may hold 30.
        let b = Budget::new(100, 30, 10);
        let mut strangers: Vec<Held> = (1..=3)
            .map(|i| {
                let mut h = b.hold(ip(&format!("203.0.113.{i}")), false);
                assert_eq!(h.grow(25), Ok(()));
                h
            })
            .collect();
        let mut fourth = b.hold(ip("203.0.113.4"), false);
        assert_eq!(
            fourth.grow(1),
            Err(Exhausted::Total),
            "75 of 100: the rest is reserved"
        );
        let mut provider = b.hold(ip("84.22.114.141"), true);
        assert_eq!(
            provider.grow(25),
            Ok(()),
            "a vouched request gets the reserve"
        );
        drop(strangers.pop());
        assert_eq!(fourth.grow(25), Ok(()));
        assert_eq!(b.books().strangers, 75);
        drop((strangers, fourth, provider));
        assert_eq!((b.used(), b.books().strangers), (0, 0));
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let b = Budget::new(100, 40, 0);
        let mut a = b.hold(ip("2001:db8::1"), true);
        let mut same64 = b.hold(ip("2001:db8::ffff:1"), true);
        let mut other64 = b.hold(ip("2001:db8:0:1::1"), true);
        assert_eq!(a.grow(30), Ok(()));
        assert_eq!(same64.grow(20), Err(Exhausted::Client));
        assert_eq!(other64.grow(40), Ok(()));
    }
}
