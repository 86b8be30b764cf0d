//! How many request-body bytes callgate holds in memory at once: a global
//! budget (`buffered_body_bytes`) and a share per client address
//! (`buffered_body_bytes_per_client`, IPv6 counted per /64), so strangers
//! stalling uploads cannot make callgate grow without bound, and one
//! address cannot take the whole budget from the others.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The budget; cheap to share between threads.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    per_client: u64,
    held: Mutex<Books>,
}

#[derive(Debug, Default)]
struct Books {
    total: u64,
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
    /// A budget of `total` bytes, at most `per_client` of them for one address.
    pub(crate) fn new(total: u64, per_client: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            per_client,
            held: Mutex::new(Books::default()),
        })
    }

    /// The limits, to tell whether a reload changed them.
    pub(crate) fn limits(&self) -> (u64, u64) {
        (self.total, self.per_client)
    }

    /// An empty holding for one request from `client`.
    pub(crate) fn hold(self: &Arc<Self>, client: IpAddr) -> Held {
        Held {
            budget: self.clone(),
            client: crate::verify::client_ip::group(client),
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
    bytes: u64,
}

impl Held {
    /// Hold `n` more bytes, if the budget and the client's share allow.
    pub(crate) fn grow(&mut self, n: u64) -> Result<(), Exhausted> {
        let budget = &self.budget;
        let mut books = budget.books();
        let mine = books.by_client.get(&self.client).copied().unwrap_or(0);
        if mine + n > budget.per_client {
            return Err(Exhausted::Client);
        }
        if books.total + n > budget.total {
            return Err(Exhausted::Total);
        }
        books.total += n;
        books.by_client.insert(self.client, mine + n);
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
        if let Some(mine) = books.by_client.get_mut(&self.client) {
            *mine -= self.bytes;
            if *mine == 0 {
                books.by_client.remove(&self.client);
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
        let b = Budget::new(100, 40);
        let mut a = b.hold(ip("203.0.113.1"));
        assert_eq!(a.grow(30), Ok(()));
        assert_eq!(a.grow(20), Err(Exhausted::Client));
        let mut a2 = b.hold(ip("203.0.113.1"));
        assert_eq!(a2.grow(11), Err(Exhausted::Client));
        assert_eq!(a2.grow(10), Ok(()));
        let mut other = b.hold(ip("203.0.113.2"));
        assert_eq!(other.grow(40), Ok(()));
        assert_eq!(b.used(), 80);
    }

    #[test]
    fn the_total_is_shared_and_comes_back_when_requests_end() {
        let b = Budget::new(100, 60);
        let mut x = b.hold(ip("203.0.113.1"));
        let mut y = b.hold(ip("203.0.113.2"));
        assert_eq!(x.grow(60), Ok(()));
        assert_eq!(y.grow(41), Err(Exhausted::Total));
        assert_eq!(y.grow(40), Ok(()));
        drop(x);
        assert_eq!(b.used(), 40);
        let mut z = b.hold(ip("203.0.113.1"));
        assert_eq!(z.grow(60), Ok(()));
        drop((y, z));
        assert_eq!(b.used(), 0);
        assert!(b.books().by_client.is_empty(), "no address is remembered");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let b = Budget::new(100, 40);
        let mut a = b.hold(ip("2001:db8::1"));
        let mut same64 = b.hold(ip("2001:db8::ffff:1"));
        let mut other64 = b.hold(ip("2001:db8:0:1::1"));
        assert_eq!(a.grow(30), Ok(()));
        assert_eq!(same64.grow(20), Err(Exhausted::Client));
        assert_eq!(other64.grow(40), Ok(()));
    }
}
