//! Which address is the client? The TCP peer, unless the peer is a trusted
//! proxy, in which case X-Forwarded-For is walked from the right, skipping
//! trusted hops (as nginx's `real_ip_recursive on` does).

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) is the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The unit a client is counted in (damping, body buffers): an IPv4
/// address, or an IPv6 /64, which one subscriber usually holds whole.
pub fn group(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// True when `ip` lies in one of `nets`.
pub fn is_in(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// The client's address, as the allowlist must judge it.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut client = canonical(peer);
    if !is_in(client, trusted) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match parse_hop(hop.trim()) {
            Some(ip) => {
                client = canonical(ip);
                if !is_in(client, trusted) {
                    return client;
                }
            }
            // Garbage from a hop we cannot vouch for: stop at the last trusted one.
            None => return client,
        }
    }
    client
}

/// One X-Forwarded-For element: a bare address, or one with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_xff_says() {
        let h = xff(&["84.22.114.141"]);
        assert_eq!(resolve(ip("203.0.113.9"), &h, &[]), ip("203.0.113.9"));
        assert_eq!(
            resolve(ip("203.0.113.9"), &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv4_mapped_peer_counts_as_ipv4() {
        assert_eq!(
            resolve(ip("::ffff:84.22.114.141"), &HeaderMap::new(), &[]),
            ip("84.22.114.141")
        );
        assert!(is_in(
            ip("::ffff:84.22.114.141"),
            &nets(&["84.22.114.141/32"])
        ));
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_hop() {
        let h = xff(&["1.1.1.1, 84.22.114.141", "10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &nets(&["10.0.0.0/8"])),
            ip("84.22.114.141")
        );
    }

    #[test]
    fn trusted_peer_without_xff_is_the_client() {
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &nets(&["10.0.0.0/8"])),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn garbage_hop_stops_the_walk_at_the_last_trusted_address() {
        let h = xff(&["84.22.114.141, nonsense, 10.0.0.3"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &nets(&["10.0.0.0/8"])),
            ip("10.0.0.3")
        );
    }

    #[test]
    fn hops_with_ports_are_understood() {
        let h = xff(&["84.22.114.141:5555", "[2001:db8::1]:443"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &nets(&["10.0.0.0/8"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let h = xff(&["10.9.9.9, 10.0.0.2"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &nets(&["10.0.0.0/8"])),
            ip("10.9.9.9")
        );
    }
}
