//! Concurrent pass-through requests and tunnels per client address (IPv6
//! counted per /64): one address with many slow uploads or idle tunnels
//! cannot take every worker of the site behind callgate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The counts, shared by every serving thread.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    taken: Mutex<HashMap<IpAddr, usize>>,
}

/// One request's slot; given back when dropped (the request, its streamed
/// answer or its tunnel ended).
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    client: IpAddr,
}

impl Slots {
    /// A slot for `client` if it holds fewer than `max`.
    pub(crate) fn take(self: &Arc<Self>, client: IpAddr, max: usize) -> Option<Slot> {
        let client = crate::verify::client_ip::group(client);
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let n = taken.entry(client).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            slots: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = taken.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                taken.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_max_and_slots_come_back() {
        let slots = Arc::new(Slots::default());
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same64: IpAddr = "2001:db8::2".parse().unwrap();
        let held: Vec<Slot> = (0..3).map(|_| slots.take(a, 3).unwrap()).collect();
        assert!(slots.take(same64, 3).is_none());
        assert!(slots.take("127.0.0.2".parse().unwrap(), 3).is_some());
        drop(held);
        assert!(slots.take(a, 3).is_some());
        assert!(slots.taken.lock().unwrap().is_empty());
    }
}
